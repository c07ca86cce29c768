"""``safehold classifier …``: the classifiers of new material, their policy and their reviewed precision
(docs/classifiers.md)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from safehold.cli.common import collect_files, err, fail, problem, progress
from safehold.errors import SafeholdError

app = typer.Typer(help="Classifiers of new material: scores, thresholds, policy, precision.", no_args_is_help=True)


# ------------------------------------------------------------------ trying the classifiers on local files


@app.command("run")
def run(
    paths: Annotated[list[Path], typer.Argument(help="Images or videos; a folder means every file under it.")],
    classifier: Annotated[
        list[str] | None,
        typer.Option("--classifier", "-c", help="Use this classifier (repeatable); default: SAFEHOLD_CLASSIFIERS."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON line per file, as POST /v1/classify answers.")
    ] = False,
) -> None:
    """Score local images and videos with the classifiers, here, without a server: nothing is recorded.

    Each file is bounded as a scan is (size, pixels, JPEG structure, video length); one that cannot be read or
    decoded gets its error and the others go on."""
    from safehold.classifiers.registry import none_enabled
    from safehold.config import get_settings
    from safehold.services import load_classifiers
    from safehold.signals.media import check_size

    with fail():
        files = collect_files(paths)
        settings = get_settings()
        found = load_classifiers(settings, classifier or None)
        if not found:
            raise none_enabled()
    counts: Counter[str] = Counter()
    with progress() as bar:
        task = bar.add_task("classifying", total=len(files))
        for path in files:
            try:
                check_size(path.stat().st_size, settings.max_upload_bytes)
                row = {"name": str(path), **found.classify_file(path.read_bytes(), path.name).to_dict()}
                counts["hit" if any(c["hits"] for c in row["classifications"]) else "no hit"] += 1
            except OSError as exc:
                row = {"name": str(path), "error": {"code": "cli.read_failed", "message": f"Cannot read it: {exc}"}}
                counts["not classified"] += 1
            except SafeholdError as exc:
                row = {"name": str(path), "error": exc.to_dict()}
                counts["not classified"] += 1
            bar.advance(task)
            if as_json:
                print(json.dumps(row), flush=True)
            else:
                _print_row(row)
    if not as_json:
        err.print(
            f"{len(files)} file(s): " + ", ".join(f"{counts[k]} {k}" for k in ("hit", "no hit", "not classified"))
        )


def _print_row(row: dict) -> None:
    """One tab-separated line per score: score, ``hit`` or ``-``, classifier, label, the frame's time (videos),
    file; or ``error [code]: message`` and the file."""
    if "error" in row:
        err.print(problem(SafeholdError(row["error"]["code"], row["error"]["message"]), f"{row['name']}: "))
        return
    for c in row["classifications"]:
        for s in c["scores"]:
            at = s["detail"].get("timestamp") if row["media"] == "video" else None
            hit = "hit" if s["label"] in c["hits"] else "-"
            at_text = f"{at:g}s" if at is not None else ""
            print("\t".join((f"{s['score']:.4f}", hit, c["classifier"], s["label"], at_text, row["name"])))


@app.command("available")
def available(
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list.")] = False,
) -> None:
    """The classifiers this installation could run (built-ins and installed plug-ins), and which
    SAFEHOLD_CLASSIFIERS enables."""
    from safehold.classifiers.registry import available as listed
    from safehold.config import get_settings

    with fail():
        rows = listed(get_settings().classifiers)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        state = "enabled" if r["enabled"] else "off"
        if "error" in r:
            print("\t".join((r["name"], state, r["source"], f"cannot load: {r['error']}")))
            continue
        what = f"{'/'.join(r['labels'])} from {', '.join(r['takes'])}, threshold {r['threshold']:g}"
        print("\t".join((r["name"], state, r["source"], what, r["description"])))
