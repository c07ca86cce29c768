"""Bounded integer parameters, shared by the API and the console.

Every id, page size, offset and sequence number in a path or query string is bounded to what the database can hold
(a signed 64-bit integer), so ``/v1/cases/99999999999999999999`` is a 422 ``request.invalid`` before any query runs,
never a 500 from the driver. Routes take them as :data:`Id`, :data:`QueryId`, :data:`Offset` and :data:`AfterId`
(and :data:`BodyId` in a body) rather than a bare ``int``; the console's
:class:`~safehold.web.deps.ConsoleRoute` answers an out-of-range id in a path with its 404 page.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query
from pydantic import Field

#: The largest value of the database's integer columns (BIGINT / SQLite INTEGER): a signed 64-bit integer.
MAX_DB_INT = 2**63 - 1

#: A row id in a path: ``/v1/cases/{case_id}``.
Id = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="A positive id.")]
#: An optional row id in a query string: ``?case_id=``.
QueryId = Annotated[int | None, Query(ge=1, le=MAX_DB_INT)]
#: How many rows to skip: ``?offset=``.
Offset = Annotated[int, Query(ge=0, le=MAX_DB_INT, description="How many rows to skip.")]
#: Keyset pagination: rows after this id or sequence number (``?after_id=``, ``?after_seq=``).
AfterId = Annotated[int, Query(ge=0, le=MAX_DB_INT, description="Only rows after this one (0: from the start).")]
#: A row id in a JSON body or a form (``{"case_id": …}``). Bounded by ``lt=2**63`` rather than
#: ``le=MAX_DB_INT``: FastAPI's OpenAPI models hold a body schema's bounds as floats, and 2**63 - 1 as a float is
#: 2**63, which would publish one id too many; 2**63 is exact as a float and excludes the same integers.
BodyId = Annotated[int, Field(ge=1, lt=MAX_DB_INT + 1)]
