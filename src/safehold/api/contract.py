"""The request contract shared by every route: typed fields and the documented error answers.

**Integers.** Ids, offsets and sequence numbers in paths, query strings and bodies are the bounded types of
:mod:`safehold.http.params`, shared with the console.

**Errors.** :func:`error_responses` builds the OpenAPI ``responses`` of some statuses from one table, each with
the one error body (:class:`ErrorBody`). Every ``/v1`` router uses :class:`ContractRoute`, which documents the
answers of its route class (:data:`AUTHENTICATED`, plus :data:`BODY` for a method that takes a body) under the
route's own ``responses``, so the schema lists every status a route can answer with (checked by schemathesis in
tests/api/test_schemathesis.py). A route without a key (``/v1/health``) is a plain ``APIRoute``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from fastapi.routing import APIRoute
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    model_validator,
)


def matching(pattern: str, rule: str) -> Any:
    """A string that matches ``pattern`` (an ECMAScript regex, published as the schema's ``pattern``), refused
    with ``rule`` — a sentence a person can act on ("a bank name is …") rather than pydantic's "String should match
    pattern '^[A-Za-z0-9]…'" — as 422 ``request.invalid``. A final ``$`` is the end of the text, as in JSON
    Schema (Python's ``$`` would also take a final newline)."""
    compiled = re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)

    def check(value: str) -> str:
        if not compiled.search(value):
            raise ValueError(rule)
        return value

    return Annotated[str, AfterValidator(check), Field(json_schema_extra={"pattern": pattern})]


#: An absolute http(s) URL with a host name or an IPv4 address, as webhook receivers and URL scans take them
#: (``webhook.invalid_url`` / ``url.invalid`` otherwise). International names are sent in their ASCII form; an
#: IPv6 literal (``http://[…]/``) is not taken: an exact pattern for it would be longer than this whole check.
HttpUrl = matching(
    r"^https?://[A-Za-z0-9][A-Za-z0-9.-]{0,252}"
    r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"  # a port, 0-65535
    r"(?:[/?#][!-~]*)?$",
    "an absolute http:// or https:// URL with a host name or an IPv4 address (an international name in ASCII)",
)


def _known_signal_types(schema: dict[str, Any]) -> None:
    from safehold.signals import registry

    schema["enum"] = sorted(registry.all_signal_types())


#: A signal type's name. The schema lists the types this server knows (built in and plug-ins, read when the schema
#: is made); the service checks it and answers ``signal.unknown_type`` (400) with the list, as the CLI does.
SignalTypeName = Annotated[str, Field(max_length=64, json_schema_extra=_known_signal_types)]


def whole_number(ge: int, le: int) -> Any:
    """A bounded whole number as JSON Schema's ``integer`` means it: ``5`` and ``5.0``, never ``true`` or ``"5"``
    (pydantic's strict int refuses ``5.0``, which the schema allows; its lax int takes ``true`` and ``"5"``, which
    the schema does not)."""
    return Annotated[
        StrictInt,
        Field(ge=ge, le=le),
        BeforeValidator(lambda v: int(v) if isinstance(v, float) and v.is_integer() else v),
    ]


#: A text field that must say something (a reason, a reference): the service strips it, so blanks are refused.
NotBlank = matching(r"\S", "it is blank")


def body_schema(tp: Any) -> dict[str, Any]:
    """The JSON Schema of a body that a route reads itself (it is declared in ``openapi_extra``), with its
    definitions written in place. Pydantic's own ``{"$defs": …, "$ref": "#/$defs/…"}`` would point at the root
    of the OpenAPI document, where no ``$defs`` are, once the schema is placed inside it. (The models are not
    recursive, so writing them in place ends.)"""
    schema = TypeAdapter(tp).json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline({**defs[ref.removeprefix("#/$defs/")], **{k: v for k, v in node.items() if k != "$ref"}})
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return inline(schema)


def _one_of_schema(schema: dict[str, Any], cls: type[OneOf]) -> None:
    schema["oneOf"] = [{"required": [name]} for name in cls.one_of]


class OneOf(BaseModel):
    """A body that names exactly one of the fields in ``one_of`` (say, a case or an account). The schema says so
    (``oneOf`` of the ``required`` alternatives) and the model checks it (422 ``request.invalid``). The fields
    are left out when not meant, never sent as ``null`` (their ``None`` defaults are not values), so that a
    field's presence is what the schema and the check both count."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of_schema)
    one_of: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _exactly_one(self) -> OneOf:
        if len(self.model_fields_set & set(self.one_of)) != 1:
            raise ValueError(f"give exactly one of {' or '.join(self.one_of)}")
        return self


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
    503: "The service is busy or not configured for this (e.g. a classifier the policy names is not enabled).",
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
