"""Many rows in one short statement on PostgreSQL: ``INSERT … SELECT … FROM unnest(arrays)``.

SQLAlchemy sends an executemany with ``RETURNING`` as multi-row ``VALUES`` pages: one placeholder per value, so a
page of 1,000 rows of 11 columns is a statement of 11,000 placeholders, which psycopg parses again for every page
(its parsed-query cache only keeps short statements). Profiling a bank import put half of its time there. Sent as
one array per column instead, the statement has a placeholder per column whatever the row count, is parsed once
and the arrays travel in psycopg's binary-friendly array format.

Column defaults declared in Python (``default=utcnow``, ``default=dict``) are applied here, once per call, since
the statement bypasses SQLAlchemy's own default handling; server defaults apply as usual.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import JSON, Table, text
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from safehold.store import jsoncodec


def insert_unnest(
    s: Session,
    table: Table,
    rows: Sequence[dict],
    *,
    conflict: Sequence[str] | None = None,
    returning: Sequence[str] = (),
) -> list[Row]:
    """Insert ``rows`` (dicts of column name to value, the same keys in each) into ``table`` on PostgreSQL;
    ``conflict`` names the unique columns whose clash skips a row (``ON CONFLICT … DO NOTHING``); returns the
    ``returning`` columns of the rows inserted."""
    if not rows:
        return []
    dialect = s.bind.dialect
    names = list(rows[0])
    defaults = {}
    for column in table.columns:
        default = column.default
        if column.name not in rows[0] and default is not None and (default.is_scalar or default.is_callable):
            defaults[column.name] = default.arg(None) if default.is_callable else default.arg
    names += list(defaults)
    params, selected, casts = {}, [], []
    for i, name in enumerate(names):
        column = table.c[name]
        values = [r[name] for r in rows] if name in rows[0] else [defaults[name]] * len(rows)
        processor = column.type.bind_processor(dialect)
        if isinstance(column.type, JSON) or isinstance(getattr(column.type, "impl", None), JSON):
            params[f"p{i}"] = [None if v is None else jsoncodec.dumps(v) for v in values]
            casts.append(f"CAST(:p{i} AS TEXT[])")
            selected.append(f"CAST(u.c{i} AS {column.type.compile(dialect)})")
            continue
        params[f"p{i}"] = [processor(v) for v in values] if processor else values
        casts.append(f"CAST(:p{i} AS {column.type.compile(dialect)}[])")
        selected.append(f"u.c{i}")
    sql = (
        f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(selected)} "
        f"FROM unnest({', '.join(casts)}) AS u({', '.join(f'c{i}' for i in range(len(names)))})"
    )
    if conflict:
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    result = s.execute(text(sql), params)
    return result.all() if returning else []
