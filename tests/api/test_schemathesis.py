"""The API keeps the contract its OpenAPI schema states, checked by schemathesis against the live app in-process.

Every ``/v1`` operation gets requests generated from its schema (parameters, bodies, multipart forms), sent with an
admin key (every route is allowed, so the requests reach the routes' own validation and services) and once with a
platform key on the operations a platform calls. Each answer must: not be a 5xx; have a status the schema
documents for that operation; have a documented content type; have a body that matches the documented schema
(the one error body for every error); and accept what the schema allows (see :func:`schema_valid_is_accepted`).
The budget is fixed (``MAX_EXAMPLES`` per operation, derandomized: the same requests on every run), so CI is
deterministic; run more locally with ``SAFEHOLD_SCHEMATHESIS_EXAMPLES=200``.

Skipped operations (they would break the run, not the contract):
- ``DELETE /v1/apikeys/{prefix}``: revoking a key could revoke the key the run authenticates with.

URL scans would fetch what they name: name resolution is stubbed to fail, so a generated URL is a clean
``url.unresolvable`` and the run never touches the network.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = int(os.environ.get("SAFEHOLD_SCHEMATHESIS_EXAMPLES", "8"))
#: The answers that say "your request is malformed": the ones a request the schema allows must never get.
REJECTED = frozenset({400, 422})
#: Refusals of a schema-valid request for a reason no request schema can state, by stable error code. Everything
#: else a route's request model can say (patterns, lengths, enums, ranges, required and one-of fields) it does say,
#: so any other 400/422 to a generated request is a fault in the schema. The other refusals are not counted at
#: all, being about the state of things rather than the request: 401/403 (the key), 404 (no such id or name),
#: 409 (taken, claimed, wrong status), 410 (purged), 413/429 (size and rate limits).
BEYOND_THE_SCHEMA = {
    # Bounds on every JSON body, whatever its schema says (docs/security.md, request limits): a free-form
    # object (metadata, params) takes any JSON, but not an integer beyond 64 bits or nesting beyond the limit.
    "request.number_out_of_range": "a number beyond 64 bits anywhere in a body",
    "request.json_too_deep": "nesting deeper than SAFEHOLD_MAX_JSON_DEPTH anywhere in a body",
    "event.metadata_too_large": "metadata over SAFEHOLD_MAX_METADATA_BYTES as JSON",
    "event.metadata_too_deep": "metadata nested deeper than SAFEHOLD_MAX_METADATA_DEPTH",
    # What the bytes of an uploaded file hold: a schema says "a file", not "a decodable image" or "a term list".
    "media.empty": "an empty file",
    "media.unsupported_format": "a file that is not an image or a video",
    "media.invalid": "a file that does not decode",
    "media.unreadable": "a file that does not decode",
    "media.truncated": "a file cut short",
    "media.corrupt": "a file that does not decode",
    "media.too_complex": "a JPEG with too many scans or segments",
    "media.low_quality": "an image too plain to bank by its perceptual hash",
    "terms.invalid_csv": "a term list file whose rows are not valid",
    "import.invalid_rows": "a bank file whose rows are not valid",
    "import.unknown_format": "a bank file of no known format",
    # A hash value's form depends on its signal type, which plug-ins define (in code, not in a schema).
    "signal.invalid_value": "a hash value malformed for its signal type",
    # Rules across the header and the body, or about the relation of two values.
    "event.missing_idempotency_key": "an idempotency key in neither the header nor the body",
    "event.idempotency_key_mismatch": "different idempotency keys in the header and the body",
    "text.idempotency_key_mismatch": "different idempotency keys in the header and the body",
    "user.weak_password": "a password that is the username or one character repeated",
    "policy.duplicate_action": "an action kind listed both as a name and as an object",
    # The store's state: whether the platform's conversation has an open grooming alert or case.
    "classifier.grooming_not_flagged": "a grooming conversation with no open alert or case",
    "age.invalid": "a birth date in the future or over 130 years ago (relative to today); an unprintable account id",
    # One rule for account ids at every door (safety.ages.account_problem): printable, not blank.
    "contact.invalid": "an unprintable or blank account id",
    "media.invalid_check": "an unprintable or blank account id",
    "contact.invalid_policy": "a contact policy whose fields contradict each other (a friction without a prompt, "
    "two rules of one name, a relaxed block without its prompt)",
    # An exchange's settings and credentials are its type's (in code; GET /v1/exchanges/types publishes them).
    "exchange.invalid_settings": "settings the exchange type does not take",
    "exchange.invalid_credentials": "credentials the exchange type does not take",
    # So are a screening service's (GET /v1/screening/types publishes them).
    "screening.invalid_settings": "settings the screening service type does not take",
    "screening.invalid_credentials": "credentials the screening service type does not take",
    # A report's period is a name (2026-H1, 2026-11-01..2026-11-30) checked against the calendar and today; its
    # format is one of the formats installed (plug-ins may add some): neither is a fixed schema.
    "transparency.period_not_started": "a period that starts after today",
    "transparency.unknown_format": "a report format that is not installed",
    # The operator's configuration: the deterrence-message variants come from the messages file.
    "search.unknown_variant": "a message variant the configured messages do not have",
    # What happens when a URL is fetched: the name does not resolve, the host is private, the server fails.
    "url.unresolvable": "a host name that does not resolve",
    "live.unresolvable": "a live stream's pull url whose host name does not resolve",
    "live.captured_at": "a pushed frame's capture time more than 60 s ahead of the server's clock (now moves)",
    "url.forbidden_address": "a host on a private or reserved address",
    "url.fetch_failed": "a fetch that failed",
    "url.timeout": "a fetch that timed out",
    "url.too_many_redirects": "a fetch redirected too often",
    "url.http_error": "a fetched server that answered an error",
    # HMA's query parameters that go together (url, or signal with signal_type; a url or an upload), which a
    # query string's schema cannot state, and what an HMA content_type or types= says about the fetched bytes.
    "hma.missing_input": "neither a url nor a hash (or upload) given to an HMA route",
    "hma.content_type_mismatch": "an HMA content_type the fetched content is not",
    "hma.no_signal_types": "HMA types= naming no signal type the content is hashed with",
    "hma.invalid_metadata": "an HMA metadata form field (a string) that is not a JSON object",
    # A transparency period is a calendar name (no 30 February, a range that ends after it starts, at most ten
    # years); the row of a drill-down is named by the figure's own dimensions, which depend on the figure's key.
    "transparency.bad_period": "a period name that is no calendar period, or one out of range",
    "transparency.bad_row": "a drill-down row named by something other than the figure's dimensions",
    "transparency.no_records": "a drill-down of a figure counted from aggregate counters",
    # A rule's expression is CEL, parsed and type-checked against the variables and the named lists in the store.
    "rules.syntax": "a rule expression that does not parse as CEL",
    "rules.type": "a rule expression that is not a boolean or mixes types",
    "rules.macro": "a rule expression with a macro over a computed list",
    "rules.too_deep": "a rule expression nested too deeply",
    "rules.too_large": "a rule expression with too many nodes",
    "rules.unknown_variable": "a rule expression naming no variable",
    "rules.unknown_function": "a rule expression calling a function not allowed",
    "rules.unknown_list": "a rule expression reading a named list that does not exist",
    # A user report's idempotency key, as for events; its screenshots are images (base64 of a PNG, JPEG, GIF or
    # WebP), as many and as large as the operator's settings allow.
    "user_report.missing_idempotency_key": "an idempotency key in neither the header nor the body",
    "user_report.idempotency_key_mismatch": "different idempotency keys in the header and the body",
    "user_report.invalid_screenshot": "a screenshot that is not base64 of an image",
}


def schema_valid_is_accepted(ctx, response, case):
    """schemathesis's ``positive_data_acceptance``, counting only 400 and 422 answers as refusals and leaving out
    the error codes of :data:`BEYOND_THE_SCHEMA`: a request generated from the schema is never refused as
    malformed for a reason the schema could have stated."""
    if response.status_code not in REJECTED or _error_code(response) in BEYOND_THE_SCHEMA:
        return None
    return positive_data_acceptance(ctx, response, case)


def _error_code(response) -> str | None:
    try:  # HMA's routes answer the same error object beside HMA's "message"
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    schema_valid_is_accepted,
]
SKIPPED = {("DELETE", "/v1/apikeys/{prefix}")}
#: The operations a platform's key is for (the rest answer it 403, which the admin run does not reach).
PLATFORM_PATHS = (
    "/v1/scan",
    "/v1/hash",
    "/v1/events",
    "/v1/user-reports",
    "/v1/appeals",
    "/v1/text/",
    "/v1/search/",
    "/v1/conversations",
    "/v1/live/",
    "/v1/accounts/",
    "/m/",
    "/h/",
)
BUDGET = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the same requests on every run: CI is deterministic
    database=None,  # no example database: what ran before does not change what runs now
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=list(HealthCheck),
)


def _operations() -> list[tuple[str, str]]:
    """Every (method, path) of the schema, read at collection from an app without services (the schema needs
    none), so each operation is its own test; schemathesis's own pytest plugin does not run on pytest 9."""
    from safehold.app import create_app

    paths = create_app(None, background=False).openapi()["paths"]
    ops = [(method.upper(), path) for path, item in paths.items() for method in item]
    return [op for op in ops if op not in SKIPPED]


OPERATIONS = _operations()
PLATFORM_OPERATIONS = [op for op in OPERATIONS if op[1].startswith(PLATFORM_PATHS)]


@pytest.fixture(scope="module")
def contract(tmp_path_factory, sqlite_template):
    """The live app on one SQLite store for the module, its loaded schema and a key per role."""
    from safehold.app import create_app
    from safehold.config import Settings
    from safehold.services import Services

    home = tmp_path_factory.mktemp("contract")
    path = home / "safehold.db"
    with sqlite3.connect(sqlite_template) as src, sqlite3.connect(path) as dst:
        src.backup(dst)

    def no_dns(*_args, **_kwargs):
        raise socket.gaierror("name resolution is off in this test")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket, "getaddrinfo", no_dns)
        # The tarpit off: the run sends refused requests (files that do not decode, ...) as fast as it can, which is
        # what the tarpit slows down (tests/api/test_tarpit.py).
        settings = Settings(home=home / "home", database_url=f"sqlite:///{path}", tarpit_max_delay_seconds=0)
        svc = Services(settings)
        app = create_app(svc, background=False)
        keys = {
            role: {"Authorization": f"Bearer {svc.apikeys.create(f'contract-{role}', role).token}"}
            for role in ("admin", "platform")
        }
        try:
            yield schemathesis.openapi.from_asgi("/openapi.json", app), keys
        finally:
            svc.close()


def _run(contract, method: str, path: str, role: str) -> None:
    schema, keys = contract
    operation = schema[path][method]

    @given(case=operation.as_strategy())
    @BUDGET
    def run(case):
        case.call_and_validate(headers=keys[role], checks=CHECKS)

    run()


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_keeps_its_contract_for_an_admin(contract, method, path):
    _run(contract, method, path, "admin")


@pytest.mark.parametrize(("method", "path"), PLATFORM_OPERATIONS, ids=[f"{m} {p}" for m, p in PLATFORM_OPERATIONS])
def test_the_platform_operations_keep_their_contract_for_a_platform_key(contract, method, path):
    _run(contract, method, path, "platform")


def test_the_codes_left_out_are_documented_codes():
    """Each code :data:`BEYOND_THE_SCHEMA` leaves out of the check is one the API answers with (docs/api.md lists
    every code raised), so a renamed code cannot linger here and hide nothing, or something else."""
    from tests.api.test_errors import API_DOC

    documented = set(re.findall(r"`([a-z0-9_]+\.[a-z0-9_.]+)`", API_DOC.read_text(encoding="utf-8")))
    assert sorted(set(BEYOND_THE_SCHEMA) - documented) == []
