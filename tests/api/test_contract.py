"""Integers beyond what the database holds are a 422 with the standard error body (never a 500 from the driver), on
every integer parameter of every route, in bodies too; and every operation documents its error answers."""

from __future__ import annotations

import re

import pytest

from safehold.api.contract import AUTHENTICATED, BODY, BODY_METHODS
from safehold.api.hma import is_hma_path
from safehold.app import create_app
from safehold.http.params import MAX_DB_INT

HUGE = 10**20  # 99999999999999999999 + 1: beyond a signed 64-bit integer
SCHEMA = create_app(None, background=False).openapi()


def _integer_params() -> list[tuple[str, str, str, str]]:
    """(method, path, location, name) of every integer path or query parameter of the API."""
    out = []
    for path, item in SCHEMA["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                schema = param["schema"]
                types = {s.get("type") for s in schema.get("anyOf", [schema])}
                if "integer" in types:
                    out.append((method.upper(), path, param["in"], param["name"]))
    return out


INTEGER_PARAMS = _integer_params()


def test_the_probe_found_integer_parameters():
    assert len(INTEGER_PARAMS) >= 30  # ids, offsets, after_id/after_seq, versions, limits, days


def _role_for(method: str, path: str) -> str:
    """A role that may use the route: admin holds every permission but the peer routes' (other instances' keys)."""
    return "peer" if path.startswith("/v1/peer/") and (method, path) != ("GET", "/v1/peer/feedback") else "admin"


def test_an_integer_beyond_the_database_range_is_a_422_on_every_integer_parameter(client, keys):
    wrong = []
    for method, path, where, name in INTEGER_PARAMS:
        for value in (HUGE, -HUGE, MAX_DB_INT + 1):
            if where == "path":
                url, params = re.sub(r"\{[^}]+\}", "1", path.replace("{" + name + "}", str(value))), {}
            else:
                url, params = re.sub(r"\{[^}]+\}", "1", path), {name: str(value)}
            r = client.request(method, url, params=params, headers=keys[_role_for(method, path)])
            error = r.json().get("error", {}) if r.headers["content-type"] == "application/json" else {}
            if r.status_code != 422 or error.get("code") != "request.invalid":
                wrong.append((method, url, params, r.status_code, r.text[:200]))
            elif [where, name] not in [
                e["loc"] for e in error["detail"]["errors"]
            ]:  # other required params may be missing
                wrong.append((method, url, params, error))
    assert not wrong


def test_the_largest_database_id_is_a_plain_404(client, keys):
    r = client.get(f"/v1/cases/{MAX_DB_INT}", headers=keys["admin"])
    assert r.status_code == 404 and r.json()["error"]["code"] == "case.not_found"


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("/v1/evidence/holds", {"case_id": HUGE, "reason": "preservation request"}),
        ("/v1/evidence/export", {"case_id": HUGE, "reason": "court order"}),
        ("/v1/reports", {"case_id": HUGE}),
        ("/v1/cases/1/bank", {"item_id": HUGE, "bank": "known"}),
    ],
)
def test_an_id_beyond_the_database_range_in_a_body_is_a_422(client, keys, url, body):
    r = client.post(url, json=body, headers=keys["admin"])
    assert r.status_code == 422, r.text
    # beyond 64 bits the request limits refuse it before the route; the route's bound catches the rest
    assert r.json()["error"]["code"] in ("request.number_out_of_range", "request.invalid")


#: The routes without a key (probes) and the error statuses each documents.
PROBES = {"/v1/health": set(), "/livez": set(), "/readyz": {503}}


def test_every_operation_documents_its_error_answers_with_the_error_body():
    for path, item in SCHEMA["paths"].items():
        for method, op in item.items():
            documented = {int(s) for s in op["responses"] if s.isdigit() and int(s) >= 400}
            if path in PROBES:  # no key: none of the authenticated answers; /readyz's 503 is its own body
                assert documented == PROBES[path], path
                continue
            expected = set(AUTHENTICATED) | (set(BODY) if method.upper() in BODY_METHODS else set())
            assert expected <= documented, (method, path, expected - documented)
            # HMA's routes answer the same error object beside HMA's "message" (safehold.api.routes.hma)
            body = "HmaErrorBody" if is_hma_path(path) else "ErrorBody"
            for status in documented:
                content = op["responses"][str(status)]["content"]["application/json"]["schema"]
                assert content == {"$ref": f"#/components/schemas/{body}"}, (method, path, status)
