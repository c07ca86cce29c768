"""``safehold classifier …``: the classifiers of new material, their policy and their reviewed precision
(docs/classifiers.md)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from safehold.cli.common import console, fail, services

app = typer.Typer(help="Classifiers of new material: scores, thresholds, policy, precision.", no_args_is_help=True)


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
