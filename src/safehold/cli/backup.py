"""``safehold backup …``: a consistent backup of the store while the server runs, checked and restored
(docs/deployment.md, "Backups")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from safehold.cli.common import console, err, fail, progress, services

app = typer.Typer(help="Back up, verify and restore the store, its sealed files and keys.", no_args_is_help=True)
out = console()

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@contextmanager
def _bars() -> Iterator:
    """A progress callback for the service: one bar per step, created when the step starts."""
    with progress() as bar:
        tasks: dict[str, int] = {}

        def on_progress(step: str, done: int, total: int | None) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        yield on_progress


@app.command("create")
def create(
    archive: Annotated[Path, typer.Argument(help="The backup file to write (must not exist).")],
    keys_out: Annotated[
        Path | None, typer.Option("--keys-out", help="Also write the key files to this separate file (mode 0600).")
    ] = None,
    include_keys: Annotated[
        bool, typer.Option("--include-keys", help="Put the keys in the backup itself (anyone holding it can read all).")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Back up the database (SQLite online backup, or pg_dump -Fc), vault/ and evidence/ into one archive."""
    from safehold.backup import service

    if include_keys:
        err.print(
            "[bold red]WARNING[/]: --include-keys puts the keys in the same file as the sealed data: whoever "
            "gets this backup can read all the preserved evidence. Store it as you would the keys."
        )
    with fail(), _bars() as on_progress:
        manifest = service.create(
            services(load_index=False), archive, keys_out=keys_out, include_keys=include_keys, on_progress=on_progress
        )
    if as_json:
        print(json.dumps(manifest))
        return
    c = manifest["counts"]
    out.print(
        f"backup written to {archive}: {manifest['engine']} database ({c['database_bytes']} bytes), "
        f"{c['vault_files']} vault files, {c['evidence_files']} evidence files; schema {manifest['schema_revision']}",
        highlight=False,
        soft_wrap=True,
    )
    if keys_out is not None:
        out.print(f"keys written to {keys_out} (mode 0600): keep it apart from the backup", highlight=False)
    elif not include_keys:
        err.print("the keys are not in this backup: keep a copy of them elsewhere (--keys-out FILE writes one)")


@app.command("verify")
def verify(
    archive: Annotated[Path, typer.Argument(help="A backup or keys file.")],
    as_json: AsJson = False,
) -> None:
    """Check an archive's manifest and every file's SHA-256 without restoring it. Exit 0 if intact, 2 if not."""
    from safehold.backup import service

    with fail(), _bars() as on_progress:
        summary = service.verify(archive, on_progress)
    if as_json:
        print(json.dumps(summary))
        return
    created = summary.get("created_at", "?")
    out.print(
        f"{archive} intact: {summary['kind']} backup of {created}, {summary['files']} files, {summary['bytes']} bytes",
        highlight=False,
        soft_wrap=True,
    )


@app.command("restore")
def restore(
    archive: Annotated[Path, typer.Argument(help="The backup file.")],
    home: Annotated[Path, typer.Option("--home", help="The new home (must not exist, or be empty).")],
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="An empty database to restore into; default: a SQLite file in --home."),
    ] = None,
    keys: Annotated[Path | None, typer.Option("--keys", help="The keys file written by --keys-out.")] = None,
    as_json: AsJson = False,
) -> None:
    """Restore into an empty home (and database), then check the audit chain and every evidence item."""
    from safehold.backup import service
    from safehold.config import Settings

    with fail():
        settings = Settings(home=home.expanduser().resolve(), database_url=database_url)
        with _bars() as on_progress:
            result = service.restore(archive, settings, keys=keys, on_progress=on_progress)
    if as_json:
        print(json.dumps(result))
    else:
        _print_restore(result)
    if not result["ok"]:
        raise typer.Exit(2)


def _print_restore(r: dict) -> None:
    out.print(f"restored into {r['restored']['home']}: {r['archive']['files']} files checked", highlight=False)
    if r["upgraded_from"]:
        out.print(f"schema upgraded from {r['upgraded_from']} to {r['restored']['schema_revision']}", highlight=False)
    a, e = r["audit"], r["evidence"]
    if a["ok"] and r["anchor_found"]:
        out.print(f"audit log intact: {a['checked']} records verified, the backup's own among them", highlight=False)
    elif not a["ok"]:
        err.print(f"audit log TAMPERED at record {a['first_bad_seq']}: {a['reason']}", highlight=False)
    else:
        err.print("audit log verifies but lacks the backup's own record: this is not the store that was backed up")
    if e["corrupt"] == 0:
        out.print(f"evidence intact: {e['checked']} items open and match their hashes", highlight=False)
    else:
        ids = ", ".join(map(str, e["corrupt_ids"]))
        err.print(f"evidence CORRUPT: {e['corrupt']} of {e['checked']} items do not match (ids {ids})", highlight=False)
