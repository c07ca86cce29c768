"""``safehold classifier …``: the classifiers of new material, their policy and their reviewed precision
(docs/classifiers.md)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from safehold.cli.common import collect_files, console, err, fail, problem, progress, services
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


# ------------------------------------------------------------------ policy and precision

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ACTOR = "cli"
out = console()


@app.command("list")
def list_classifiers(as_json: AsJson = False) -> None:
    """The enabled classifiers (SAFEHOLD_CLASSIFIERS) with the policy in force for each."""
    with fail():
        rows = services(load_index=False).classifier_policies.list()
    if as_json:
        print(json.dumps(rows))
        return
    if not rows:
        out.print("No classifier is enabled (SAFEHOLD_CLASSIFIERS).")
    for c in rows:
        p = c["policy"]
        out.print(f"{c['name']}  v{c['version']}  labels {', '.join(c['labels'])}  {c['description']}", highlight=False)
        out.print(f"  {_policy_line(p)}", highlight=False)


def _policy_line(p: dict) -> str:
    age = (
        f"needs an age signal (alone: {p['alone']}; with one: {p['category']})"
        if p["needs_age_signal"]
        else ("opens a case alone")
    )
    return f"threshold {p['threshold']}, {age}, automatic actions {'ON' if p['auto_action'] else 'off'}"


@app.command("policy")
def policy(
    name: Annotated[str, typer.Argument(help="The classifier's name.")],
    threshold: Annotated[float | None, typer.Option(help="A score at or above it is a hit (0 < t ≤ 1).")] = None,
    needs_age_signal: Annotated[
        bool | None, typer.Option("--needs-age-signal/--no-needs-age-signal", help="A hit needs an age signal.")
    ] = None,
    alone: Annotated[str | None, typer.Option(help="A hit without the age signal it needs: ignore or case.")] = None,
    auto_action: Annotated[
        bool | None, typer.Option("--auto-action/--no-auto-action", help="Run automatic action policies for hits.")
    ] = None,
    category: Annotated[str | None, typer.Option(help="The case category of a hit with an age signal.")] = None,
    reset: Annotated[
        list[str] | None, typer.Option(help="Put a setting back to its default (repeatable): threshold, alone, …")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Show a classifier's policy, or change it (audited); the change is in force everywhere within seconds."""
    given = {"threshold": threshold, "needs_age_signal": needs_age_signal, "alone": alone,
             "auto_action": auto_action, "category": category}  # fmt: skip
    changes = {k: v for k, v in given.items() if v is not None}
    changes.update({k: None for k in reset or ()})
    with fail():
        svc = services(load_index=False).classifier_policies
        result = svc.change(name, ACTOR, changes) if changes else svc.describe(name)
    if as_json:
        print(json.dumps(result))
        return
    out.print(f"{result['name']}: {_policy_line(result['policy'])}", highlight=False)
    if result["set"]:
        out.print(f"  set by the operator: {json.dumps(result['set'])}", highlight=False)


@app.command("precision")
def precision(name: Annotated[str, typer.Argument(help="The classifier's name.")], as_json: AsJson = False) -> None:
    """Reviewed hits and precision per label at each threshold (scores below the threshold in force were never
    reviewed, so precision below it is unknown)."""
    with fail():
        result = services(load_index=False).classifier_policies.precision(name)
    if as_json:
        print(json.dumps(result))
        return
    if not result["labels"]:
        out.print(f"No reviewed hits of {name} yet.")
    for label in result["labels"]:
        out.print(f"{name} / {label['label']}: {label['reviewed']} reviewed", highlight=False)
        out.print("  threshold  reviewed  true+  false+  precision")
        for row in label["thresholds"]:
            value = f"{row['precision']:.2f}" if row["precision"] is not None else "unknown"
            mark = "  ← current" if row["current"] else ""
            out.print(
                f"  {row['threshold']:>9}  {row['reviewed']:>8}  {row['true_positives']:>5}  "
                f"{row['false_positives']:>6}  {value:>9}{mark}",
                highlight=False,
            )
    out.print(result["note"], highlight=False)
