"""One error type for every layer, so the API and CLI can show a stable code and a clear message.

Codes are dotted, lower-case and stable (``media.truncated``, ``bank.not_found``); clients may switch
on them. Messages are for humans and may change. ``status`` is the HTTP status the API answers with.
"""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class SafeholdError(Exception):
    """A user-facing failure with a stable ``code``."""

    def __init__(self, code: str, message: str, *, status: int = 400, detail: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.detail = detail or {}

    def __reduce__(self):
        # Survives pickling (the CLI hashes in worker processes and sends errors back).
        return (_restore, (self.__class__, self.code, self.message, self.status, self.detail))

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


def validated(model: type[M], payload: object, what: str = "The request body") -> M:
    """``payload`` parsed as ``model``, or 422 ``request.invalid`` with every field error in ``detail.errors``."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise SafeholdError(
            "request.invalid",
            f"{what} is not valid.",
            status=422,
            detail={"errors": json.loads(exc.json(include_url=False))},
        ) from None


def _restore(cls, code, message, status, detail):
    err = SafeholdError.__new__(cls)
    SafeholdError.__init__(err, code, message, status=status, detail=detail)
    return err
