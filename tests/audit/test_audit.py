"""The audit log: every change is recorded, the chain verifies, and each kind of tampering is caught at the
right record, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import threading

import pytest
from sqlalchemy import delete, select, update

from safehold.audit import GENESIS, record_hash
from safehold.store.models import AuditRecord

MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def _operations(svc) -> list[str]:
    """A realistic series of changes; returns the API key tokens it created."""
    tokens = [
        svc.apikeys.create("ops", "admin", created_by="cli").token,
        svc.apikeys.create("viewer", "auditor", created_by="apikey:ops").token,
    ]
    svc.banks.create("ncmec", created_by="apikey:ops")
    e = svc.banks.add_hash("ncmec", "md5", MD5, source="ncmec", added_by="apikey:ops")
    svc.banks.add_hash("ncmec", "sha256", "ab" * 32, added_by="apikey:ops")
    svc.banks.update("ncmec", pdq_threshold=20, description="NCMEC list", actor="apikey:ops")
    svc.banks.set_entry_enabled(e["id"], False, actor="apikey:ops")
    svc.banks.set_entry_enabled(e["id"], True, actor="apikey:ops")
    svc.banks.update_entry(e["id"], note="checked", actor="apikey:ops")
    svc.banks.import_stream(
        "ncmec",
        io.BytesIO(f"{'1' * 32}\n{'2' * 32}\n".encode()),
        fmt="list",
        default_signal_type="md5",
        added_by="apikey:ops",
    )
    svc.banks.export("ncmec", io.BytesIO(), actor="apikey:viewer")
    svc.banks.delete_entry(e["id"], actor="apikey:ops")
    svc.apikeys.revoke(tokens[1].split("_")[1], actor="apikey:ops")
    svc.banks.create("own", created_by="cli")
    svc.banks.delete("own", actor="cli")
    return tokens


ACTIONS = [
    "apikey.create",
    "apikey.create",
    "bank.create",
    "entry.add",
    "entry.add",
    "bank.update",
    "entry.disable",
    "entry.enable",
    "entry.update",
    "bank.import",
    "bank.export",
    "entry.delete",
    "apikey.revoke",
    "bank.create",
    "bank.delete",
]


def _set(svc, at_seq: int, **values) -> None:
    with svc.db.session() as s:
        s.execute(update(AuditRecord).where(AuditRecord.seq == at_seq).values(**values))


def test_operations_are_recorded_and_chain_verifies(svc):
    _operations(svc)
    rows = svc.audit.list(limit=1000)
    assert [r["action"] for r in rows] == ACTIONS
    assert [r["seq"] for r in rows] == list(range(1, len(ACTIONS) + 1))
    assert rows[0]["prev_hash"] == GENESIS and all(
        b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False)
    )
    by_action = {r["action"]: r for r in rows}
    assert by_action["bank.update"]["detail"] == {
        "changes": {"description": ["", "NCMEC list"], "thresholds.pdq": [31, 20]}
    }
    assert by_action["bank.update"]["actor"] == "apikey:ops" and by_action["bank.update"]["target"] == "bank:ncmec"
    assert by_action["bank.import"]["detail"]["added"] == 2
    assert by_action["bank.export"]["actor"] == "apikey:viewer"
    assert by_action["entry.delete"]["detail"]["fingerprint"] == MD5
    result = svc.audit.verify()
    assert result.ok and result.checked == len(ACTIONS) and result.head_seq == len(ACTIONS)
    assert result.head_hash == rows[-1]["hash"]
    assert [r["action"] for r in svc.audit.list(action="entry.")] == [a for a in ACTIONS if a.startswith("entry.")]
    assert [r["seq"] for r in svc.audit.list(limit=3, after_seq=3)] == [4, 5, 6]


def test_failed_and_dry_run_changes_leave_no_record(svc):
    from safehold.errors import SafeholdError

    svc.banks.create("b", created_by="cli")
    with pytest.raises(SafeholdError):
        svc.banks.create("b", created_by="cli")
    svc.banks.import_stream(
        "b", io.BytesIO(f"{'3' * 32}\n".encode()), fmt="list", default_signal_type="md5", dry_run=True, added_by="cli"
    )
    svc.banks.update("b", pdq_threshold=31, actor="cli")  # no change: nothing to record
    assert [r["action"] for r in svc.audit.list()] == ["bank.create"]


def test_edited_record_is_detected(svc):
    _operations(svc)
    _set(svc, 6, detail={"changes": {"thresholds.pdq": [31, 63]}})
    r = svc.audit.verify()
    assert not r.ok and r.first_bad_seq == 6 and r.checked == 5 and "altered" in r.reason
    _set(svc, 6, detail={"changes": {"description": ["", "NCMEC list"], "thresholds.pdq": [31, 20]}})
    assert svc.audit.verify().ok  # restored exactly
    _set(svc, 2, actor="cli")
    assert svc.audit.verify().first_bad_seq == 2


def test_deleted_record_is_detected(svc):
    _operations(svc)
    with svc.db.session() as s:
        s.execute(delete(AuditRecord).where(AuditRecord.seq == 4))
    r = svc.audit.verify()
    assert not r.ok and r.first_bad_seq == 4 and "missing" in r.reason


def test_deleted_first_record_is_detected(svc):
    _operations(svc)
    with svc.db.session() as s:
        s.execute(delete(AuditRecord).where(AuditRecord.seq == 1))
    assert svc.audit.verify().first_bad_seq == 1


def test_rehashed_record_is_detected(svc):
    """An attacker who edits a record and recomputes its hash still breaks the next record's link."""
    _operations(svc)
    row = svc.audit.list(limit=1, after_seq=6)[0]
    detail = {**row["detail"], "bank": "other"}
    new_hash = record_hash(7, row["at"], row["actor"], row["action"], row["target"], detail, row["prev_hash"])
    _set(svc, 7, detail=detail, hash=new_hash)
    r = svc.audit.verify()
    assert not r.ok and r.first_bad_seq == 7 and "rewritten" in r.reason and r.checked == 7


def test_reordered_records_are_detected(svc):
    _operations(svc)
    _set(svc, 3, seq=-3)
    _set(svc, 4, seq=3)
    _set(svc, -3, seq=4)
    r = svc.audit.verify()
    assert not r.ok and r.first_bad_seq == 3


def _independent_verify(records: list[dict]) -> int:
    """A re-implementation of the recipe in docs/audit.md, sharing no code with safehold."""
    prev, seq = "0" * 64, 0
    for r in records:
        seq += 1
        assert r["seq"] == seq and r["prev_hash"] == prev
        body = {k: r[k] for k in ("seq", "at", "actor", "action", "target", "detail", "prev_hash")}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        assert hashlib.sha256(canonical.encode()).hexdigest() == r["hash"], seq
        prev = r["hash"]
    return seq


def test_export_round_trip_verifies_independently(svc):
    _operations(svc)
    svc.audit.record(None, "cli", "test.unicode", "bank:é", {"note": "ünïcode ✓", "n": 1.5, "none": None})
    buf = io.BytesIO()
    n = svc.audit.export(buf, fmt="jsonl")
    lines = buf.getvalue().decode().splitlines()
    assert n == len(lines) == len(ACTIONS) + 1
    assert _independent_verify([json.loads(line) for line in lines]) == n

    buf = io.BytesIO()
    assert svc.audit.export(buf, fmt="csv") == n
    rows = []
    for row in csv.DictReader(io.StringIO(buf.getvalue().decode())):
        row["seq"] = int(row["seq"])
        row["detail"] = json.loads(row["detail"])
        row["target"] = row["target"] or None
        rows.append(row)
    assert _independent_verify(rows) == n

    # A time window: the first exported record links to the one before it.
    last = json.loads(lines[-1])
    buf = io.BytesIO()
    assert svc.audit.export(buf, since=dt.datetime.fromisoformat(last["at"])) >= 1
    assert json.loads(buf.getvalue().decode().splitlines()[-1])["hash"] == last["hash"]


def test_no_api_key_secret_in_the_log(svc):
    tokens = _operations(svc)
    buf = io.BytesIO()
    svc.audit.export(buf, fmt="jsonl")
    text = buf.getvalue().decode()
    from safehold.store.models import ApiKey

    with svc.db.session() as s:
        secret_hashes = list(s.scalars(select(ApiKey.secret_hash)))
    for token in tokens:
        secret = token.split("_", 2)[2]
        assert secret not in text and token not in text
    for h in secret_hashes:
        assert h not in text
    # Defence in depth: a caller passing a secret-looking key does not get it stored.
    rec = svc.audit.record(None, "cli", "test.secret", None, {"token": tokens[0], "name": "x"})
    assert rec["detail"] == {"name": "x"}


def test_concurrent_appenders_keep_the_chain(svc):
    n, errors = 15, []

    def worker(i: int) -> None:
        try:
            for j in range(n):
                if j % 5 == 0:
                    svc.banks.create(f"t{i}-{j}", created_by=f"thread{i}")
                else:
                    svc.audit.record(None, f"thread{i}", "test.append", None, {"j": j})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    r = svc.audit.verify()
    assert r.ok and r.checked == 3 * n, r


def test_denied_is_recorded_and_throttled(client, keys, svc):
    for _ in range(3):
        assert client.get("/v1/audit", headers=keys["reviewer"]).status_code == 403
    denied = svc.audit.list(action="auth.denied")
    assert len(denied) == 1
    assert denied[0]["actor"] == "apikey:test-reviewer" and denied[0]["target"] == "permission:audit.read"
    assert denied[0]["detail"] == {"route": "GET /v1/audit", "suppressed": 0}


def test_audit_routes(client, keys, svc):
    svc.banks.create("b", created_by="cli")
    for role in ("admin", "auditor"):
        body = client.get("/v1/audit", params={"limit": 1000}, headers=keys[role]).json()
        assert "apikey.create" in {r["action"] for r in body["records"]} and body["next_after_seq"] is None
        page = client.get("/v1/audit", params={"limit": 2}, headers=keys[role]).json()
        assert [r["seq"] for r in page["records"]] == [1, 2] and page["next_after_seq"] == 2
        v = client.get("/v1/audit/verify", headers=keys[role]).json()
        assert v["ok"] is True and v["first_bad_seq"] is None
    r = client.get("/v1/audit/export", params={"format": "jsonl"}, headers=keys["auditor"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    records = [json.loads(line) for line in r.text.splitlines()]
    assert records[-1]["action"] == "audit.export" and records[-1]["actor"] == "apikey:test-auditor"
    assert _independent_verify(records) == len(records)
    r = client.get("/v1/audit/export", params={"format": "csv"}, headers=keys["admin"])
    assert r.status_code == 200 and r.text.startswith("seq,at,actor,action,target,detail,prev_hash,hash")
    _set(svc, 2, target="bank:x")
    v = client.get("/v1/audit/verify", headers=keys["auditor"]).json()
    assert v["ok"] is False and v["first_bad_seq"] == 2


def test_route_actor_is_the_key(client, keys, svc):
    assert client.post("/v1/banks", json={"name": "b"}, headers=keys["admin"]).status_code == 201
    assert client.patch("/v1/banks/b", json={"enabled": False}, headers=keys["senior_reviewer"]).status_code == 200
    assert client.delete("/v1/banks/b", headers=keys["admin"]).status_code == 200
    rows = svc.audit.list(action="bank.")
    assert [(r["action"], r["actor"]) for r in rows] == [
        ("bank.create", "apikey:test-admin"),
        ("bank.update", "apikey:test-senior_reviewer"),
        ("bank.delete", "apikey:test-admin"),
    ]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cli_verify_export_list(cli, tmp_path):
    from safehold.cli import common

    cli("bank", "create", "b1")
    cli("bank", "create", "b2")
    cli("bank", "delete", "b2", "--yes")
    assert "3 records verified" in cli("audit", "verify").output
    assert json.loads(cli("audit", "verify", "--json").stdout)["ok"] is True
    out = tmp_path / "audit.jsonl"
    cli("audit", "export", out)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["action"] for r in records] == ["bank.create", "bank.create", "bank.delete", "audit.export"]
    assert _independent_verify(records) == 4
    cli("audit", "export", tmp_path / "audit.csv", "--format", "csv")
    assert (tmp_path / "audit.csv").read_text().startswith("seq,")
    cli("audit", "export", "--format", "xml", code=2)
    listed = cli("audit", "list", "--json", "--action", "bank.delete").stdout.splitlines()
    assert [json.loads(x)["actor"] for x in listed] == ["cli"]
    assert "bank.create" in cli("audit", "list").output

    _set(common._services, 2, detail={"kind": "allow"})
    result = cli("audit", "verify", code=2)
    assert "record 2" in result.output
    assert json.loads(cli("audit", "verify", "--json", code=2).stdout)["first_bad_seq"] == 2


def test_migration_matches_model(svc):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from safehold.store.models import Base

    with svc.db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert not [d for d in diffs if "audit_log" in repr(d)], diffs


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_script_in_docs_verifies_an_export(svc, tmp_path):
    """The ten-line script in docs/audit.md accepts a real export and rejects a tampered one."""
    import subprocess
    import sys

    from tests.conftest import REPO

    doc = (REPO / "docs" / "audit.md").read_text()
    script = doc.split("## Verify an export yourself", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "verify_audit.py").write_text(script)
    _operations(svc)
    export = tmp_path / "audit.jsonl"
    with open(export, "wb") as f:
        svc.audit.export(f)
    run = [sys.executable, str(tmp_path / "verify_audit.py"), str(export)]
    ok = subprocess.run(run, capture_output=True, text=True)
    assert ok.returncode == 0 and f"ok: {len(ACTIONS)} records" in ok.stdout, ok.stderr
    lines = export.read_text().splitlines()
    lines[4] = lines[4].replace('"added":1', '"added":2')
    export.write_text("\n".join(lines) + "\n")
    bad = subprocess.run(run, capture_output=True, text=True)
    assert bad.returncode == 1 and "broken at record 5" in bad.stderr
