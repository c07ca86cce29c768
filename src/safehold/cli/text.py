"""``safehold text …``: the text-safety library from the command line — score a post (and, if asked, open a case
for it), check a search query, read the search-guard counters, train and evaluate the grooming detector on a
PAN-2012-format corpus. ``check`` and ``search`` use the installation's active term lists and, unless
``--open-case`` is given, change nothing: no case, no counter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from safehold.cli.common import console, fail, program, progress, services
from safehold.errors import SafeholdError

app = typer.Typer(help="Text safety: solicitation, search guard, grooming detector training and evaluation.")

Corpus = Annotated[Path, typer.Argument(help="PAN-2012 conversations XML.")]
Predators = Annotated[Path, typer.Argument(help="PAN-2012 predator list: one author id per line.")]


def _show(data: dict) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


@app.command("check")
def check(
    text: Annotated[str, typer.Argument(help="The post, profile, listing or comment.")],
    kind: Annotated[str, typer.Option(help="post, profile, listing, comment or message.")] = "post",
    open_case: Annotated[
        bool, typer.Option("--open-case", help="Match its links against the URL banks and open a case if warranted.")
    ] = False,
    content_id: Annotated[str | None, typer.Option(help="The item's id (needed with --open-case).")] = None,
    account_id: Annotated[str | None, typer.Option(help="The author's account id (with --open-case).")] = None,
) -> None:
    """Score text for offering, requesting or trading abuse material or access to children."""
    with fail():
        if not open_case:
            _show(services(load_index=False).terms.current().solicitation.score(text, kind).to_dict())
            return
        if not content_id:
            raise SafeholdError("cli.missing_content_id", "--open-case needs --content-id (the item's id).")
        from safehold.auth.apikeys import Principal

        body = {"text": text, "kind": kind, "content_id": content_id, "account_id": account_id}
        _show(services(load_index=True).posts.check(Principal(name="cli", role="admin"), body))


@app.command("search")
def search(
    query: Annotated[str, typer.Argument(help="A search query.")],
    locale: Annotated[str, typer.Option(help="The searcher's locale, e.g. en, pt-BR.")] = "en",
) -> None:
    """Check a search query: allow, support, warn or block, with the message and help that would be shown."""
    with fail():
        _show(services(load_index=False).terms.current().guard.check(query, locale).to_dict())


@app.command("stats")
def stats(
    days: Annotated[int, typer.Option(min=1, max=3660, help="How many days back (today included).")] = 30,
) -> None:
    """The search-guard counters: checks per action, category, variant and locale; suggestions removed; help
    clicks. Never a query."""
    from rich.table import Table

    from safehold.rules.search import variant_summary

    with fail():
        rows = services(load_index=False).search.stats(days)
    table = Table("day", "kind", "action", "category", "variant", "locale", "count", title=f"search, last {days} days")
    for r in rows:
        cells = [r[k] or "-" for k in ("day", "kind", "action", "category", "variant", "locale")]
        table.add_row(*cells, str(r["count"]))
    out = console()
    out.print(table)
    summary = variant_summary(rows)
    if summary:
        variants = Table("variant", "messages shown", "help clicks", "click rate", title="variants")
        for name, v in summary.items():
            rate = "-" if v["click_rate"] is None else f"{v['click_rate']:.2%}"
            variants.add_row(name, str(v["shown"]), str(v["help_clicks"]), rate)
        out.print(variants)


def _conversations(corpus: Path, description: str):
    """The corpus read twice: once to count (for the progress bar), once to use."""
    from safehold.text.grooming.pan2012 import read_conversations

    total = sum(1 for _ in read_conversations(corpus))
    bar = progress()
    task = bar.add_task(description, total=total)
    return bar, read_conversations(corpus), lambda n: bar.update(task, completed=n)


@app.command("train")
def train(
    corpus: Corpus,
    predators: Predators,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the model (JSON). Default: <home>/models/grooming-model.json."),
    ] = None,
) -> None:
    """Fit the grooming model on a labelled corpus; evaluate it with ``safehold text eval --model``.

    A fifth of the conversations is held out of the fit to calibrate the model: the threshold with the best F0.5 on
    them becomes risk 0.7, the default alert threshold. Needs scikit-learn (``pip install 'safehold[train]'``).
    The model goes under Safehold's home (``var/`` by default, kept out of version control) unless ``--out``
    says otherwise: a model is data of the installation, not a file of the working tree."""
    from safehold.config import get_settings
    from safehold.store.db import require_store
    from safehold.text.grooming.model import train as fit
    from safehold.text.grooming.pan2012 import read_predators

    with fail():
        if out is None:  # the default lives in the store: never create one just to put a model in it
            settings = get_settings()
            require_store(settings)
            out = settings.home / "models" / "grooming-model.json"
        out = out.absolute()
        labels = read_predators(predators)
        bar, conversations, tick = _conversations(corpus, "training")
        with bar:
            model = fit(conversations, labels, progress=tick)
        try:
            out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            model.save(out)
        except OSError as exc:
            raise SafeholdError("cli.write_failed", f"Cannot write {out}: {exc.strerror}.") from None
    typer.echo(f"model written to {out}")
    typer.echo(f"measure it:  {program()} text eval {corpus} {predators} --model {out}")
    typer.echo(f"use it:      SAFEHOLD_GROOMING_MODEL={out}, then restart the server")


@app.command("eval")
def evaluate(
    corpus: Corpus,
    predators: Predators,
    model: Annotated[
        Path | None, typer.Option(help="A model from 'safehold text train' (default: the shipped model).")
    ] = None,
    rules_only: Annotated[
        bool, typer.Option("--rules-only", help="Measure the stage rules alone, without a learned model.")
    ] = False,
    threshold: Annotated[float, typer.Option(help="Alert threshold, 0-1.")] = 0.7,
) -> None:
    """Author-level precision, recall and F0.5 (PAN-2012), latency (messages until the alert, share of offenders
    flagged before the midpoint of their conversation) and false positives per source (the optional ``source``
    attribute of each ``<conversation>``)."""
    from safehold.text.grooming.evaluate import evaluate as run
    from safehold.text.grooming.model import GroomingModel
    from safehold.text.grooming.pan2012 import read_predators
    from safehold.text.grooming.scorer import GroomingScorer

    with fail():
        if model and rules_only:
            raise SafeholdError("cli.conflicting_options", "--model and --rules-only exclude each other.")
        trained = GroomingModel.load(model) if model else None
        scorer = GroomingScorer(model=trained, rules_only=rules_only, alert_threshold=threshold)
        labels = read_predators(predators)
        bar, conversations, tick = _conversations(corpus, "evaluating")
        with bar:
            result = run(scorer, conversations, labels, progress=tick)
    _show(result)
