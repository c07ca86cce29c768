"""A figure set with rows in every catalogue figure, built by hand (no engine needed): the overview, the API and
the console are tested against the figure-set contract, whatever the engine computes."""

from __future__ import annotations

import datetime as dt

from safehold.transparency.figures import CATALOGUE, Figure, FigureSet
from safehold.transparency.periods import Period

#: Dimension values by dimension name; a name not listed gets "x1", "x2".
DIMS = {
    "source": ("hash_match", "classifier"),
    "queue": ("media", "text"),
    "band": ("P1", "P3"),
    "status": ("finished", "draft"),
    "decision": ("csam", "not_violating"),
    "classification": ("A1", ""),
    "authority": ("ncmec", "nca"),
    "bank": ("known", "peer-bank"),
    "exchange": ("", "ncmec"),
}

#: Distinctive numbers the tests look for (first row, second row) per value column.
VALUES = {
    "signals": (4242, 17),
    "opened": (311, 9),
    "closed": (205, 4),
    "cases": (73, 5),
    "breached": (6, 1),
    "open_overdue": (2, 0),
    "reports": (12, 3),
    "p50_seconds": (7200, 600),
    "p90_seconds": (86400, 3600),
    "decided": (40, 2),
    "rate": (0.125, 0.5),
}


def sample(period: Period, filters: dict[str, str] | None = None, as_of: dt.datetime | None = None) -> FigureSet:
    figures = {}
    for key, spec in CATALOGUE.items():
        rows = []
        for i in range(2):
            dims = [
                (period.start + dt.timedelta(days=i)).isoformat() if d == "day" else DIMS.get(d, (f"x{1 + i}",) * 2)[i]
                for d in spec.dims
            ]
            values = [VALUES.get(v, (10 + i, 1 + i))[i] for v in spec.values]
            rows.append(tuple(dims + values))
        figures[key] = Figure(spec, tuple(rows))
    return FigureSet(period, as_of or dt.datetime.now(dt.UTC), figures, dict(filters or {}))
