"""Issue [9]'s "Done when", as the steps a new user takes (docs/sharing.md, "Walkthrough"), in one test.

The user's side goes through the CLI (``cli``) and the API (``client``) only. Internals are touched only to start
what stands in for the outside world: NCMEC's API (its stand-in), a second Safehold instance sharing a bank (its
own database, served on 127.0.0.1), and the periodic tasks ``safehold serve`` would run on their schedule.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sqlite3
import threading
import time

import pytest
import uvicorn

from safehold.sharing.exchanges.ncmec_standin import REASONS, NcmecStandIn
from safehold.store.models import utcnow
from tests.media import jpeg

IMAGE = jpeg(7)  # benign, generated: the image NCMEC's list (the stand-in's) happens to hold
EARLIER = jpeg(8)  # an upload whose hash reaches a bank only later
FLOOD_FLOOR = 5


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def settings(tmp_path, database_url, monkeypatch):
    """The conftest's settings with what a trial turns on: the seen-hash store, and a flood floor low enough to
    see a flood in a few matches. Set in the environment too, so that the CLI's own services read the same."""
    from safehold.config import Settings

    monkeypatch.setenv("SAFEHOLD_SEEN_HASHES", "true")
    monkeypatch.setenv("SAFEHOLD_FLOOD_MIN_MATCHES", str(FLOOD_FLOOR))
    return Settings(home=tmp_path / "home", database_url=database_url, tarpit_max_delay_seconds=0)


@pytest.fixture
def ncmec():
    """NCMEC's hash-sharing API (the stand-in): a few synthetic entries, one of them the image's PDQ and MD5."""
    with NcmecStandIn(username="esp", password="secret") as standin:
        yield standin


@pytest.fixture
def source(tmp_path, sqlite_template):
    """A second Safehold instance ("alpha") on its own database and home, its API served on 127.0.0.1."""
    from safehold.app import create_app
    from safehold.config import Settings
    from safehold.services import Services

    path = tmp_path / "alpha.db"
    with sqlite3.connect(sqlite_template) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    alpha = Services(
        Settings(home=tmp_path / "alpha", database_url=f"sqlite:///{path}", tarpit_max_delay_seconds=0),
        load_index=False,
        lazy=True,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(alpha, background=False), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    alpha.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    yield alpha
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()
    alpha.close()


def poll(svc, *tasks: str) -> None:
    """Run now what ``safehold serve`` runs on its schedule (``index.sync`` picks up what the CLI wrote)."""
    for name in tasks:
        svc.tasks.run_now(name)


def upload(client, key: dict, data: bytes, **ids: str) -> dict:
    """A platform's upload through ``POST /v1/scan``, naming the content (and account) so a match opens a case."""
    return client.post("/v1/scan", files={"file": ("up.jpg", data, "image/jpeg")}, data=ids, headers=key).json()


def scan_md5(client, key: dict, value: str, **ids: str) -> dict:
    return client.post("/v1/scan", json={"signal_type": "md5", "value": value, **ids}, headers=key).json()


def as_json(result) -> object:
    return json.loads(result.output)


def rows(result) -> list[dict]:
    """A listing printed as JSON lines, one object a line."""
    return [json.loads(line) for line in result.output.splitlines() if line.strip()]


def write(path, value: dict) -> str:
    path.write_text(json.dumps(value))
    path.chmod(0o600)
    return str(path)


def test_a_new_user_walks_through_sharing(svc, cli, client, keys, ncmec, source, tmp_path):
    reviewer, platform = keys["reviewer"], keys["platform"]
    pdq = svc.scans.hash_bytes(IMAGE).get("pdq").value
    now = int(time.time())

    # 1. NCMEC's list: three entries, one of them the image's.
    ncmec.put(42, "walk-1", {"md5": md5(IMAGE), "pdq": pdq}, classification="A1", timestamp=now - 3600)
    for i in (2, 3):
        ncmec.put(42, f"walk-{i}", {"md5": md5(b"synthetic %d" % i)}, classification="B2", timestamp=now - 3600)

    # 2. An exchange of type ncmec into a new bank; fetch; its status counts what was added.
    cli("bank", "create", "ncmec")
    settings = {"base_url": ncmec.url, "lag_seconds": 0, "feedback_reasons": {"not_violating": "Not CSAM"}}
    cli(
        "exchange", "add", "ncmec", "--type", "ncmec", "--bank", "ncmec",
        "--settings-file", write(tmp_path / "ncmec.json", settings),
        "--credentials-file", write(tmp_path / "ncmec-creds.json", {"username": "esp", "password": "secret"}),
    )  # fmt: skip
    cli("exchange", "fetch", "ncmec")
    status = as_json(cli("exchange", "status", "ncmec", "--json"))
    assert status["totals"]["added"] == 4 and status["last_error"] is None, status
    entries = rows(cli("bank", "entries", "ncmec", "--json"))
    assert {(e["signal_type"], e["value"]) for e in entries} >= {("md5", md5(IMAGE)), ("pdq", pdq)}
    assert {e["external_id"] for e in entries} == {"42-walk-1", "42-walk-2", "42-walk-3"}

    # 3. A peer: alpha shares a bank with us; we follow it with an exchange of type peer. Its matches act at once.
    shared = [md5(b"alpha %d" % i) for i in range(4)]
    source.banks.create("confirmed", kind="block")
    for value in shared:
        source.banks.add_hash("confirmed", "md5", value, category="A2")
    our_key = cli("peer", "key").output.strip()
    token = source.peers.add_peer("beta", public_key=our_key, actor="alpha-operator").token
    source.peers.share("confirmed", "beta", actor="alpha-operator")
    cli("bank", "create", "alpha", "--on-match", "auto")
    cli("policy", "add", "alpha-auto", "--trigger", "auto", "--match", '{"bank": "alpha"}', "--action", "block_content")
    peer = {"url": source.url, "bank": "confirmed", "public_key": source.peers.public_key()}
    cli(
        "exchange", "add", "alpha", "--type", "peer", "--bank", "alpha",
        "--settings-file", write(tmp_path / "alpha.json", peer),
        "--credentials-file", write(tmp_path / "alpha-creds.json", {"token": token}),
    )  # fmt: skip
    cli("exchange", "fetch", "alpha")
    assert {e["value"] for e in rows(cli("bank", "entries", "alpha", "--json"))} == set(shared)
    poll(svc, "index.sync")

    # 4. An upload of the image matches the NCMEC entry and opens a case.
    answer = upload(client, platform, IMAGE, content_id="c-1")
    assert answer["verdict"] == "match", answer
    [ref] = answer["cases"]
    case = client.get(f"/v1/cases/{ref['id']}", headers=reviewer).json()
    assert {s["bank"] for s in case["signals"]} == {"ncmec"}

    # 5. The reviewer finds it benign; the feedback reaches NCMEC as a negative vote, and shows as sent.
    assert client.post(f"/v1/cases/{ref['id']}/claim", headers=reviewer).status_code == 200
    decided = client.post(f"/v1/cases/{ref['id']}/decision", json={"decision": "not_violating"}, headers=reviewer)
    assert decided.status_code == 200 and decided.json()["status"] == "closed", decided.json()
    cli("feedback", "run")
    assert {(f["entry_id"], f["type"], f["vote"]) for f in ncmec.feedback} == {
        ("walk-1", "MD5", "negative"),
        ("walk-1", "PDQ", "negative"),
    }
    assert all(f["reasons"] == [next(g for g, n in REASONS.items() if n == "Not CSAM")] for f in ncmec.feedback)
    matched = [e for e in entries if e["external_id"] == "42-walk-1"]
    for entry in matched:
        [opinion] = client.get(f"/v1/feedback?entry_id={entry['id']}", headers=reviewer).json()["feedback"]
        assert (opinion["status"], opinion["verdict"], opinion["case_id"]) == ("sent", "false_positive", ref["id"])

    # 6. A flood: one of alpha's entries matches far more than its peers; the flood check quarantines it, and its
    #    next match opens a case for review without the automatic action the other entries still take.
    for _ in range(FLOOD_FLOOR * 3):
        assert scan_md5(client, platform, shared[0])["verdict"] == "match"
    poll(svc, "counters.flush", "banks.flood_check")
    [flooded] = client.get("/v1/quarantine", headers=reviewer).json()["entries"]
    assert flooded["value"] == shared[0] and flooded["quarantine"]["reason"]["rule"] == "flood"
    assert flooded["quarantine"]["reason"]["message"]
    [ref] = scan_md5(client, platform, shared[0], content_id="c-2")["cases"]
    held_case = client.get(f"/v1/cases/{ref['id']}", headers=reviewer).json()
    assert held_case["status"] == "open" and held_case["actions"] == []
    [ref] = scan_md5(client, platform, shared[1], content_id="c-3")["cases"]
    assert [a["kind"] for a in client.get(f"/v1/cases/{ref['id']}", headers=reviewer).json()["actions"]] == [
        "block_content"
    ]

    # 7. An upload no bank knows yet is kept (hashes only); when its hash arrives from the peer, it is found.
    poll(svc, "seen.rematch")  # the store's first round starts at the entries' end
    before = upload(client, platform, EARLIER, content_id="c-old", account_id="acct-old")
    assert before["verdict"] == "no_match" and not before.get("cases"), before
    poll(svc, "counters.flush")  # the scans' buffered hashes, written on the upkeep poll
    source.banks.add_hash("confirmed", "md5", md5(EARLIER), category="A1")  # alpha's reviewer confirmed it
    cli("exchange", "fetch", "alpha")
    # A round takes entries older than its lag (every process has flushed the sightings before them): a user
    # waits SAFEHOLD_INDEX_SYNC_INTERVAL + 30 s; the test runs the round as of then.
    assert svc.rematch.run_once(now=utcnow() + svc.rematch.lag) == 1
    found = client.get("/v1/cases", params={"account_id": "acct-old"}, headers=reviewer).json()
    [rematched] = found["cases"]
    assert (rematched["content_id"], rematched["source"]) == ("c-old", "rematch"), rematched

    # 8. An HMA client's lookup, unchanged: the fetched NCMEC entry answers for the image's PDQ.
    [pdq_entry] = [e for e in matched if e["signal_type"] == "pdq"]
    lookup = client.get("/m/raw_lookup", params={"signal_type": "pdq", "signal": pdq}, headers=platform)
    assert lookup.status_code == 200 and lookup.json() == {"matches": [pdq_entry["id"]]}
