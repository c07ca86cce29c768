"""What the regulatory report formats share: sums over a figure set's rows that stay honest about suppressed small
cells, a record of exactly which rows each reported value sums (so a reader can trace it back to the figure), the
detection technologies the reports group detectors into, and the two kinds of report entry (filled from the figures,
or left for the operator to write).

A suppressed small cell holds ``"<N"`` (a count from 1 to N-1); a cell hidden only to protect another holds
``"x"`` (:data:`~safehold.transparency.privacy.SECONDARY`: any value, possibly large). A sum over exact cells is a
number; a sum with an ``"x"`` part is ``"x"`` (nothing bounds it); otherwise a sum that includes suppressed cells is
the string ``"<N"`` when the whole could itself be below N, else the range it must lie in, ``"lo..hi"`` (each hidden
cell counted as at least 1 and at most N-1). A ratio is computed only from exact numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from safehold.transparency.figures import FigureSet
from safehold.transparency.privacy import SECONDARY

#: A reported count: a number, ``"<N"`` (suppressed), ``"x"`` (unknown) or ``"lo..hi"`` (a sum over suppressed
#: small cells).
Cell = int | float | str

#: The detection technologies the reports speak of, and the ``detector_kind`` values of ``errors.false_positives``
#: (and the ``source`` values of ``detections.by_source``) that belong to each. A kind none of them lists is
#: reported under ``other`` rather than dropped.
TECHNOLOGIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("hash_matching", "Hash matching against hash banks and exchanges (known material)", ("bank", "exchange")),
    ("classifier", "Classifiers of unknown material (local models and external services)", ("classifier",)),
    ("text", "Text detection of grooming and solicitation of children", ("grooming", "solicitation", "text")),
)
#: Every kind a technology above lists.
KNOWN_KINDS: tuple[str, ...] = tuple(k for _, _, kinds in TECHNOLOGIES for k in kinds)


def _pairs(d: dict[str, Iterable[str]] | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple(sorted((k, tuple(sorted(v))) for k, v in (d or {}).items()))


@dataclass(frozen=True)
class Pick:
    """The rows of one figure a value is summed from: each row whose dimension ``d`` is one of ``where[d]`` and
    none of ``exclude[d]``; ``column`` is the value column summed."""

    figure: str
    column: str
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def matches(self, row: dict) -> bool:
        return all(str(row.get(d, "")) in vals for d, vals in self.where) and not any(
            str(row.get(d, "")) in vals for d, vals in self.exclude
        )

    def record(self) -> dict:
        out: dict = {"figure": self.figure, "column": self.column}
        if self.where:
            out["where"] = {d: list(v) for d, v in self.where}
        if self.exclude:
            out["except"] = {d: list(v) for d, v in self.exclude}
        return out


def pick(
    figure: str,
    column: str,
    where: dict[str, Iterable[str]] | None = None,
    exclude: dict[str, Iterable[str]] | None = None,
) -> Pick:
    return Pick(figure, column, _pairs(where), _pairs(exclude))


def _bound(cell: str, min_cell: int) -> int:
    """The largest count a suppressed cell ``"<N"`` can hide."""
    try:
        return int(cell.lstrip("<")) - 1
    except ValueError:
        return min_cell - 1


def combine(cells: Iterable[Cell], min_cell: int) -> Cell:
    """The sum of ``cells`` by the rule in the module docstring."""
    exact: list[int | float] = []
    hidden: list[int] = []
    for c in cells:
        if c == SECONDARY:
            return SECONDARY
        if isinstance(c, str):
            hidden.append(_bound(c, min_cell))
        else:
            exact.append(c or 0)
    total = sum(exact)
    if not hidden:
        return total
    lo, hi = total + len(hidden), total + sum(hidden)
    if hi < min_cell:
        return f"<{min_cell}"
    return f"{lo}..{hi}"


def ratio(numerator: Cell, denominator: Cell, digits: int = 4) -> float | None:
    """``numerator / denominator`` when both are exact and the denominator is not zero, else None."""
    if isinstance(numerator, str) or isinstance(denominator, str) or not denominator:
        return None
    return round(numerator / denominator, digits)


class Tally:
    """Reads one figure set for a report: rows, sums and breakdowns, each traceable to a :class:`Pick`."""

    def __init__(self, figures: FigureSet, min_cell: int):
        self.figures = figures
        self.min_cell = min_cell

    def rows(self, p: Pick) -> list[dict]:
        figure = self.figures.figures.get(p.figure)
        if figure is None:
            return []
        return [r for r in figure.dicts() if p.matches(r)]

    def sum(self, p: Pick) -> Cell:
        return combine((r[p.column] for r in self.rows(p)), self.min_cell)

    def values(self, p: Pick, dim: str) -> list[str]:
        """The distinct values of ``dim`` among the rows ``p`` picks, sorted."""
        return sorted({str(r.get(dim, "")) for r in self.rows(p)})

    def breakdown(self, p: Pick, dim: str) -> list[dict]:
        """``p``'s sum per value of ``dim``: ``[{dim: value, "value": sum}, ...]`` in the order of the values."""
        out = []
        for v in self.values(p, dim):
            narrowed = Pick(p.figure, p.column, _pairs({**dict(p.where), dim: (v,)}), p.exclude)
            out.append({dim: v, "value": self.sum(narrowed)})
        return out

    def entry(self, entry_id: str, field: str, p: Pick, by: str | None = None, **extra) -> dict:
        """A filled entry: ``p``'s sum, and its breakdown by dimension ``by`` when given."""
        if by is not None:
            extra["breakdown"] = self.breakdown(p, by)
        return filled(entry_id, field, self.sum(p), [p], **extra)

    def names(self, entry_id: str, field: str, p: Pick, dim: str, **extra) -> dict:
        """A filled entry listing the distinct values of ``dim`` among ``p``'s rows (banks, classifiers, …)."""
        return filled(entry_id, field, self.values(p, dim), [p], "names", **extra)

    def technology_errors(self) -> list[dict]:
        """Per technology of :data:`TECHNOLOGIES` (and ``other`` when any detector kind is none of theirs): cases
        reviewers decided that it contributed to, those found not violating, the ratio, and the picks behind them."""
        groups = [
            (key, title, pick("errors.false_positives", "reviewed", {"detector_kind": kinds}))
            for key, title, kinds in TECHNOLOGIES
        ]
        other = pick("errors.false_positives", "reviewed", exclude={"detector_kind": KNOWN_KINDS})
        if self.rows(other):
            groups.append(("other", "Other detectors", other))
        out = []
        for key, title, reviewed in groups:
            fp = Pick(reviewed.figure, "false_positives", reviewed.where, reviewed.exclude)
            r, f = self.sum(reviewed), self.sum(fp)
            out.append(
                {
                    "technology": key,
                    "title": title,
                    "reviewed": r,
                    "false_positives": f,
                    "rate": ratio(f, r),
                    "picks": (reviewed, fp),
                    "detectors": [
                        {k: d[k] for k in ("detector_kind", "detector", "reviewed", "false_positives", "rate")}
                        for d in self.rows(reviewed)
                    ],
                }
            )
        return out


def filled(entry_id: str, field: str, value, sources: Iterable[Pick] = (), derivation: str = "sum", **extra) -> dict:
    """An entry Safehold filled: ``value`` derived (``sum``, ``ratio``, ``names``, ``yes_no``, ``context``) from the
    rows ``sources`` pick."""
    return {
        "id": entry_id,
        "field": field,
        "status": "filled",
        "value": value,
        "derivation": derivation,
        "sources": [s.record() for s in sources],
        **extra,
    }


def operator(entry_id: str, field: str, what: str, **extra) -> dict:
    """An entry the operator writes: ``what`` says what to write, or why Safehold cannot fill it."""
    return {"id": entry_id, "field": field, "status": "operator_to_complete", "value": None, "operator": what, **extra}


class JsonReport:
    """A regulatory report as one JSON document: :func:`header`, what :meth:`body` adds (its parts, each a list of
    groups holding ``entries``), and a summary of how many entries are filled. Subclasses set ``name``, ``title``
    and :meth:`body`."""

    name: str
    title: str
    media_type = "application/json"
    extension = "json"

    def body(self, t: Tally, context) -> dict:
        raise NotImplementedError

    def render(self, figures: FigureSet, context) -> bytes:
        doc = header(self.name, self.title, figures, context)
        doc.update(self.body(Tally(figures, context.min_cell), context))
        counts = {"filled": 0, "operator_to_complete": 0}
        for part in doc.values():
            for group in part if isinstance(part, list) else ():
                for e in group["entries"]:
                    counts[e["status"]] += 1
        doc["summary"] = counts
        return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def header(name: str, title: str, figures: FigureSet, context) -> dict:
    """What every regulatory report says about itself: who publishes it, for which period, from which numbers."""
    return {
        "format": name,
        "title": title,
        "provider": context.provider,
        "service": context.service,
        "period": figures.period.record(),
        "as_of": figures.as_of.isoformat(),
        "generated_at": context.generated_at.isoformat(),
        "report_id": context.report_id,
        "figures_version": figures.version,
        "figures_digest": figures.digest(),
        "filters": dict(sorted(figures.filters.items())),
        "small_cells": f"counts from 1 to {context.min_cell - 1} are shown as <{context.min_cell}; a sum over such "
        f"cells is <{context.min_cell} or the range lo..hi it lies in; a count hidden so that a small one cannot be "
        f"worked out, and any sum including it, is shown as {SECONDARY} (its value may be anything); a ratio is "
        "given only from exact counts",
    }
