"""One error type for every layer, so the API and CLI can show a stable code and a clear message.

Codes are dotted, lower-case and stable (``media.truncated``, ``bank.not_found``); clients may switch
on them. Messages are for humans and may change. ``status`` is the HTTP status the API answers with.
"""

from __future__ import annotations

import json
import traceback
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # pydantic is imported by validated() alone: the CLI's start-up does without it
    from pydantic import BaseModel, TypeAdapter

M = TypeVar("M", bound="BaseModel")


class SafeholdError(Exception):
    """A user-facing failure with a stable ``code``."""

    def __init__(
        self, code: str, message: str, *, status: int = 400, detail: dict | None = None, headers: dict | None = None
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.detail = detail or {}
        #: HTTP headers the API adds to the error response (e.g. ``Retry-After`` on 429/503).
        self.headers = headers or {}

    def __reduce__(self):
        # Survives pickling (the CLI hashes in worker processes and sends errors back).
        return (_restore, (self.__class__, self.code, self.message, self.status, self.detail, self.headers))

    def to_dict(self) -> dict:
        out: dict = {"code": self.code, "message": self.message}
        if self.detail:
            out["detail"] = self.detail
        return out

    def __repr__(self) -> str:
        return f"SafeholdError({self.code!r}, {self.message!r})"


class NotFound(SafeholdError):
    def __init__(self, code: str, message: str, **kw):
        super().__init__(code, message, status=404, **kw)


class Conflict(SafeholdError):
    def __init__(self, code: str, message: str, **kw):
        super().__init__(code, message, status=409, **kw)


E = TypeVar("E", bound=BaseException)


def detached(exc: E) -> E:
    """``exc`` made safe to keep after it was handled: no traceback, no cause, and the frames behind it cleared.

    A kept exception otherwise holds every frame it passed through (and, through ``f_back``, their callers), each
    with its locals: an upload's bytes, a decoded bitmap, the very list the exception is kept in. ``raise ... from
    err`` inside an ``except`` block also leaves ``err`` in its own frame. Both are reference cycles that only
    Python's cyclic collector frees, which may run long after the request: a server refusing 65 MB uploads under
    load kept gigabytes that way. Only the error's code, message and detail are kept.
    """
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        traceback.clear_frames(link.__traceback__)
        link = link.__cause__ or link.__context__
    exc.__cause__ = exc.__context__ = None
    return exc.with_traceback(None)


def validated(model: type[M] | TypeAdapter, payload: object, what: str = "the request body") -> M:
    """``payload`` parsed as ``model`` (a model, or a ``TypeAdapter`` of a union of models), or 422
    ``request.invalid`` (see :func:`invalid_fields`)."""
    from pydantic import TypeAdapter, ValidationError

    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(payload)
        return model.model_validate(payload)
    except ValidationError as exc:
        raise invalid_fields(json.loads(exc.json(include_url=False)), what) from None


def invalid_fields(errors: list[dict], what: str = "the request body") -> SafeholdError:
    """422 ``request.invalid`` with every field error in ``detail.errors`` and the first one in the message.

    ``what`` is a lower-case noun phrase (``the event``, ``the messages``): the message is worded so that it reads
    right for a singular or a plural, which "<what> is not valid" did not ("The messages is not valid").
    """
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
    hint = f" ({where}: {first.get('msg')})" if where else f" ({first['msg']})" if first.get("msg") else ""
    return SafeholdError(
        "request.invalid", f"Some fields of {what} are not valid{hint}.", status=422, detail={"errors": errors}
    )


def invalid_json(reason: str, position: int, what: str = "the request body") -> SafeholdError:
    """400 ``request.invalid_json``: every route answers a body that is not JSON with this, whoever parsed it
    (a route's own ``json.loads`` or FastAPI's body parsing), so clients meet one code, status and wording."""
    return SafeholdError(
        "request.invalid_json",
        f"{what[0].upper()}{what[1:]} is not valid JSON: {reason} at character {position}.",
        detail={"position": position},
    )


def _restore(cls, code, message, status, detail, headers=None):
    err = SafeholdError.__new__(cls)
    SafeholdError.__init__(err, code, message, status=status, detail=detail, headers=headers)
    return err
