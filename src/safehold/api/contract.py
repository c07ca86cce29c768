"""The request contract shared by every route: bounded integer parameters and the documented error answers.

**Integers.** Every id, page size, offset and sequence number in a path or query string is bounded to what the
database can hold (a signed 64-bit integer), so ``/v1/cases/99999999999999999999`` is a 422 ``request.invalid``
before any query runs, never a 500 from the driver. Routes take them as :data:`Id`, :data:`QueryId`,
:data:`Offset` and :data:`AfterId` (and :data:`BodyId` in a body) rather than a bare ``int``; the console uses the
same types, and its :class:`~safehold.web.deps.ConsoleRoute` answers an out-of-range id in a path with its 404 page.

**Errors.** :func:`error_responses` builds the OpenAPI ``responses`` of some statuses from one table, each with
the one error body (:class:`ErrorBody`). Every ``/v1`` router uses :class:`ContractRoute`, which documents the
answers of its route class (:data:`AUTHENTICATED`, plus :data:`BODY` for a method that takes a body) under the
route's own ``responses``, so the schema lists every status a route can answer with (checked by schemathesis in
tests/api/test_schemathesis.py). A route without a key (``/v1/health``) is a plain ``APIRoute``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

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
#: A row id in a JSON body or a form (``{"case_id": …}``).
BodyId = Annotated[int, Field(ge=1, le=MAX_DB_INT)]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, dotted, lower-case: clients may switch on it (see docs/api.md).")
    message: str = Field(description="For people; may change.")
    detail: dict[str, Any] | None = Field(None, description="Machine-readable context, e.g. the field errors.")


class ErrorBody(BaseModel):
    """Every error answer of ``/v1``: ``{"error": {"code", "message", "detail"?}}``."""

    error: ErrorDetail


#: What each error status means on this API (the OpenAPI description of the answer).
ERRORS: dict[int, str] = {
    400: "A request the route cannot act on (a bad value, malformed JSON, a missing field in a form).",
    401: "No API key, a key without the Bearer scheme, or a key that is unknown or revoked.",
    403: "The key's role does not allow this.",
    404: "No such resource.",
    409: "The resource's state does not allow this now (already exists, claimed by someone else, wrong status).",
    410: "The resource existed and is gone for good (e.g. purged evidence).",
    413: "The body or an uploaded file is larger than the configured limit.",
    415: "The body's content type is not one this route takes.",
    422: "A parameter or a body field is out of range or of the wrong type (every field error in detail.errors).",
    429: "Too many requests, or a daily cap reached; Retry-After says when to try again.",
    502: "An authority's service answered with an error or damaged what it received.",
}

#: The route classes: what any authenticated route can answer, and what a method that takes a body adds.
AUTHENTICATED = (400, 401, 403, 404, 409, 422, 429)
BODY = (413, 415)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entries of these error statuses, each with :class:`ErrorBody` (pass to a
    router's or a route's ``responses=``)."""
    return {status: {"model": ErrorBody, "description": ERRORS[status]} for status in statuses}


class ContractRoute(APIRoute):
    """An API route whose OpenAPI ``responses`` include the standard error answers of its class (the route's
    own entries, e.g. a 200's media types or a 410, come on top)."""

    def __init__(self, path: str, endpoint: Any, *, responses: dict | None = None, **kwargs: Any) -> None:
        methods = {m.upper() for m in kwargs.get("methods") or ()}
        statuses = AUTHENTICATED + (BODY if methods & BODY_METHODS else ())
        super().__init__(path, endpoint, responses={**error_responses(*statuses), **(responses or {})}, **kwargs)
