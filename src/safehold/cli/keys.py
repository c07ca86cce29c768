"""``safehold keys …``: rotate the instance and evidence keys without downtime, see what each key still seals,
retire previous keys (docs/security.md, "Key rotation"). Key ids only: key material is never printed."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from safehold.cli.common import console, fail, progress, services

app = typer.Typer(help="Rotate, inspect and retire the instance and evidence keys.", no_args_is_help=True)
out = console()

Which = Annotated[str, typer.Option("--which", help="instance or evidence.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("status")
def status(which: Which, as_json: AsJson = False) -> None:
    """The current key id, the previous ones, and how many values each key still seals."""
    from safehold.keys import rotation

    with fail():
        result = rotation.status(services(load_index=False), which)
    if as_json:
        print(json.dumps(result))
        return
    out.print(f"{which} key: {result['current']} (from {result['source']})", highlight=False)
    for kid in result["previous"]:
        where = " (environment)" if kid in result["previous_from_environment"] else ""
        out.print(f"previous: {kid}{where}", highlight=False)
    for kid, n in sorted(result["sealed"].items()):
        out.print(f"sealed by {kid}: {n}", highlight=False)
    if result["rotation_unfinished"]:
        out.print("a rotation is unfinished: run `safehold keys rotate` again to finish it", highlight=False)


@app.command("rotate")
def rotate(
    which: Which,
    rewrap_only: Annotated[
        bool, typer.Option("--rewrap-only", help="Make no new key: re-wrap what older keys seal to the current one.")
    ] = False,
    batch: Annotated[int, typer.Option("--batch", help="Rows read per query (1-10000).")] = 200,
    as_json: AsJson = False,
) -> None:
    """Make a new key current (the old one kept as previous) and re-wrap everything under it. Safe to re-run:
    an interrupted rotation resumes."""
    from safehold.keys import rotation

    with fail(), progress() as bar:
        task = bar.add_task("re-wrapping", total=None)

        def on_progress(place: str, done: int, total: int) -> None:
            bar.update(task, description=place, completed=done, total=total)

        result = rotation.rotate(
            services(load_index=False), which, new_key=not rewrap_only, batch=batch, on_progress=on_progress
        )
    if as_json:
        print(json.dumps(result))
        return
    how = "new key" if result["new_key"] else ("resumed" if result["resumed"] else "current key")
    out.print(
        f"{which} key {result['key_id']} ({how}): {result['rewrapped']} re-wrapped, {result['unchanged']} already "
        f"current, {result['unreadable']} unreadable, in {result['seconds']} s",
        highlight=False,
    )


@app.command("retire")
def retire(
    which: Which,
    key_id: Annotated[str, typer.Option("--key-id", help="The previous key's id (see `safehold keys status`).")],
    as_json: AsJson = False,
) -> None:
    """Delete a previous key, refused while anything is still sealed by it."""
    from safehold.keys import rotation

    with fail():
        result = rotation.retire(services(load_index=False), which, key_id)
    if as_json:
        print(json.dumps(result))
        return
    out.print(f"{which} key {key_id} retired", highlight=False)
