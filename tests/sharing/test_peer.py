"""The peer exchange between two Safehold instances, each with its own database and instance key.

The source is the test's ``svc`` (SQLite or PostgreSQL) served by a real uvicorn on 127.0.0.1; the subscriber is a
second :class:`Services` on its own SQLite store. The subscriber's side is :class:`PeerExchange`, its fetched
batches applied to a bank of the subscriber the way the exchange service applies them (records, then checkpoint).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import sqlite3
import threading
import time

import httpx
import pytest
import uvicorn

from safehold.banks.service import validate_record
from safehold.sharing import registry
from safehold.sharing.base import ExchangeError, Opinion
from safehold.sharing.exchanges.peer import PeerExchange


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@pytest.fixture
def source_url(svc):
    """The source instance's API on a real server: uvicorn in a thread, on a port the OS picked."""
    from safehold.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(svc, background=False), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture
def subscriber(tmp_path, sqlite_template):
    """The second instance: its own home (so its own instance key) and its own database."""
    from safehold.config import Settings
    from safehold.services import Services

    path = tmp_path / "subscriber.db"
    with sqlite3.connect(sqlite_template) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    settings = Settings(home=tmp_path / "subscriber", database_url=f"sqlite:///{path}", tarpit_max_delay_seconds=0)
    sub = Services(settings, load_index=False, lazy=True)
    yield sub
    sub.close()


@pytest.fixture
def alpha(svc, subscriber):
    """The source ("alpha") with a bank of confirmed hashes shared with the subscriber, registered as "beta"."""
    svc.banks.create("confirmed", kind="block")
    for i in range(5):
        svc.banks.add_hash("confirmed", "md5", md5(f"c{i}"), category="A1" if i % 2 else "b2")
    svc.banks.create("private", kind="block")
    svc.banks.add_hash("private", "md5", md5("private"))
    beta = svc.peers.add_peer("beta", public_key=subscriber.peers.public_key(), actor="test")
    svc.peers.share("confirmed", "beta", actor="test")
    return beta.token


def exchange(
    svc, url, token, bank="confirmed", *, page_size=500, key=None, transport=None, signing_key=None, bank_kind=None,
    **settings,
):  # fmt: skip
    cls = registry.get("peer")
    settings = cls.settings_model(
        url=url, bank=bank, public_key=key or svc.peers.public_key(), page_size=page_size, **settings
    )
    creds = cls.credentials_model(token=token, signing_key=signing_key)
    return cls(settings, creds, timeout=10, transport=transport, bank_kind=bank_kind)


def apply(sub, bank: str, batch) -> None:
    """What the exchange service does with a batch: its records into the bank, attributed to the exchange."""
    records = []
    for rec in batch.records:
        rec.source = "alpha"
        records.append(validate_record(rec))
    sub.banks.add_records(bank, records, added_by="exchange:alpha")


def follow(sub, ex, bank: str, checkpoint=None) -> dict | None:
    for batch in ex.fetch(checkpoint):
        apply(sub, bank, batch)
        checkpoint = batch.checkpoint
    return checkpoint


def enabled(service, bank: str) -> dict[str, str | None]:
    return {e["value"]: e["category"] for e in service.banks.entries(bank, limit=1000) if e["enabled"]}


def test_the_peer_exchange_is_a_builtin_exchange_type():
    assert registry.get("peer") is PeerExchange
    assert PeerExchange.accepts_feedback and PeerExchange.accepts_contributions


def test_a_subscriber_follows_additions_and_withdrawals_with_their_categories(svc, subscriber, source_url, alpha):
    subscriber.banks.create("from-alpha", kind="block")
    ex = exchange(svc, source_url, alpha)
    ex.check()
    checkpoint = follow(subscriber, ex, "from-alpha")
    assert enabled(subscriber, "from-alpha") == enabled(svc, "confirmed")
    assert set(enabled(subscriber, "from-alpha").values()) == {"A1", "B2"}
    assert md5("private") not in enabled(subscriber, "from-alpha")  # an unshared bank stays private

    ids = {e["value"]: e["id"] for e in svc.banks.entries("confirmed")}
    svc.banks.set_entry_enabled(ids[md5("c0")], False)  # withdrawn
    svc.banks.delete_entry(ids[md5("c1")])  # deleted
    svc.banks.add_hash("confirmed", "md5", md5("c-new"), category="a2")
    svc.banks.add_hash("private", "md5", md5("private-new"))
    batches = list(ex.fetch(checkpoint))
    withdrawn = {r.external_id for b in batches for r in b.records if r.is_tombstone}
    assert withdrawn == {str(ids[md5("c0")]), str(ids[md5("c1")])}
    for batch in batches:
        apply(subscriber, "from-alpha", batch)
    assert enabled(subscriber, "from-alpha") == enabled(svc, "confirmed")
    assert enabled(subscriber, "from-alpha")[md5("c-new")] == "A2"
    assert batches[-1].done

    again = list(ex.fetch(batches[-1].checkpoint))  # nothing new: one empty, final page
    assert [b.records for b in again] == [[]] and again[-1].done


def test_shared_allow_lists_flow_to_every_peer(svc, subscriber, source_url, alpha):
    svc.banks.create("known-benign", kind="allow")
    svc.banks.add_hash("known-benign", "md5", md5("meme"))
    svc.peers.share("known-benign", actor="test")  # no --to: every peer, now and later
    subscriber.banks.create("alpha-allow", kind="allow")
    ex = exchange(svc, source_url, alpha, bank="known-benign")
    follow(subscriber, ex, "alpha-allow")
    assert enabled(subscriber, "alpha-allow") == {md5("meme"): None}
    banks = {b["name"]: b for b in httpx.get(f"{source_url}/v1/peer/banks", headers=_bearer(alpha)).json()}
    assert banks["known-benign"]["kind"] == "allow" and banks["confirmed"]["entries"] == 5
    assert "private" not in banks

    svc.peers.unshare("known-benign", actor="test")
    with pytest.raises(ExchangeError) as refused:
        list(ex.fetch(None))
    assert refused.value.code == "exchange.rejected" and "peer.bank_not_shared" in refused.value.message


class Tamper(httpx.BaseTransport):
    """Forwards to the real server and lets a test rewrite each feed page on the way back."""

    def __init__(self, change):
        self.inner = httpx.HTTPTransport()
        self.change = change

    def handle_request(self, request):
        answer = self.inner.handle_request(request)
        answer.read()
        doc = json.loads(answer.content)
        if request.url.path == "/v1/peer/feed":
            doc = self.change(request, doc)
        return httpx.Response(answer.status_code, json=doc)

    def close(self):
        self.inner.close()


def test_a_tampered_page_a_replayed_page_or_another_key_stops_the_fetch(svc, subscriber, source_url, alpha):
    def altered(_request, doc):
        doc["page"]["entries"][0]["value"] = md5("not what alpha said")
        return doc

    def replayed(request, doc):
        doc["page"]["after"] = "log.0" if "after" not in request.url.params else None
        return doc

    cases = {
        "a changed value": exchange(svc, source_url, alpha, transport=Tamper(altered)),
        "a page of another cursor": exchange(svc, source_url, alpha, transport=Tamper(replayed)),
        "another instance's key": exchange(svc, source_url, alpha, key=subscriber.peers.public_key()),
    }
    for what, ex in cases.items():
        with pytest.raises(ExchangeError) as refused:
            next(ex.fetch(None))
        assert refused.value.code == "exchange.protocol" and not refused.value.retryable, what
    with pytest.raises(ExchangeError) as refused:
        exchange(svc, source_url, alpha, key=subscriber.peers.public_key()).check()
    assert refused.value.code == "exchange.protocol"


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_callers_without_a_peer_key_are_refused(svc, source_url, alpha, keys):
    feed = f"{source_url}/v1/peer/feed?bank=confirmed"
    assert httpx.get(feed).json()["error"]["code"] == "auth.missing_key"
    for role in ("admin", "platform", "reviewer"):  # an admin's key is not another instance's
        r = httpx.get(feed, headers=keys[role])
        assert (r.status_code, r.json()["error"]["code"]) == (403, "auth.forbidden"), role
    r = httpx.get(feed, headers=keys["peer"])  # a peer-role key no peer was issued
    assert (r.status_code, r.json()["error"]["code"]) == (404, "peer.unknown")
    r = httpx.get(f"{source_url}/v1/peer/feed?bank=private", headers=_bearer(alpha))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "peer.bank_not_shared")
    r = httpx.get(f"{source_url}/v1/peer/feed?bank=confirmed&after=nonsense", headers=_bearer(alpha))
    assert r.status_code == 422

    with pytest.raises(ExchangeError) as refused:
        next(exchange(svc, source_url, "sh_dead_beef").fetch(None))
    assert refused.value.code == "exchange.auth" and not refused.value.retryable

    svc.peers.remove_peer("beta", actor="test")  # its key is revoked with it
    with pytest.raises(ExchangeError) as refused:
        next(exchange(svc, source_url, alpha).fetch(None))
    assert refused.value.code == "exchange.auth"


def test_feedback_reaches_the_source_and_is_listed_per_entry(svc, source_url, alpha, client, keys):
    entries = {e["value"]: e["id"] for e in svc.banks.entries("confirmed")}
    ex = exchange(svc, source_url, alpha)
    ex.send_feedback(Opinion(str(entries[md5("c2")]), "md5", md5("c2"), "false_positive", reason="meme"))
    ex.send_feedback(Opinion(None, "md5", md5("c3"), "true_positive"))  # by its hash
    ex.send_feedback(Opinion(str(entries[md5("c2")]), "md5", md5("c2"), "true_positive", reason="rechecked"))

    on_c2 = svc.peers.feedback(entry_id=entries[md5("c2")])
    assert [(f["peer"], f["verdict"], f["reason"]) for f in on_c2] == [("beta", "true_positive", "rechecked")]
    listed = client.get("/v1/peer/feedback", headers=keys["auditor"]).json()
    assert {(f["entry_id"], f["verdict"]) for f in listed} == {
        (entries[md5("c2")], "true_positive"),
        (entries[md5("c3")], "true_positive"),
    }
    assert client.get("/v1/peer/feedback", headers=keys["platform"]).status_code == 403

    private_id = svc.banks.entries("private")[0]["id"]
    with pytest.raises(ExchangeError) as refused:  # an entry of a bank not shared with the peer
        ex.send_feedback(Opinion(str(private_id), "md5", md5("private"), "false_positive"))
    assert refused.value.code == "exchange.rejected" and "entry.not_found" in refused.value.message


def test_contributions_are_refused_by_default_then_land_disabled_for_review(svc, subscriber, source_url, alpha):
    records = [validate_record(_record(md5(f"beta-{i}"), f"b{i}")) for i in range(3)]
    seed = subscriber.peers.secret_seed()
    ex = exchange(svc, source_url, alpha, signing_key=seed)
    with pytest.raises(ExchangeError) as refused:
        ex.contribute(records)
    assert "peer.contributions_disabled" in refused.value.message

    svc.banks.create("from-peers", kind="block")
    svc.peers.update_peer("beta", contributions_bank="from-peers", actor="test")
    assert ex.contribute(records) == 3
    assert ex.contribute(records) == 0  # the same hashes again: duplicates, nothing new
    landed = svc.banks.entries("from-peers")
    assert {e["value"] for e in landed} == {r.value for r in records}
    assert all(not e["enabled"] and e["source"] == "peer:beta" for e in landed)  # they match nothing yet
    assert {e["external_id"] for e in landed} == {"b0", "b1", "b2"}

    other_seed = svc.peers.secret_seed()  # a key that is not the one registered for beta
    with pytest.raises(ExchangeError) as refused:
        exchange(svc, source_url, alpha, signing_key=other_seed).contribute(records)
    assert "peer.bad_signature" in refused.value.message
    with pytest.raises(ExchangeError) as refused:
        exchange(svc, source_url, alpha).contribute(records)
    assert refused.value.code == "exchange.not_supported"


def _record(value: str, external_id: str):
    from safehold.banks.formats import EntryRecord

    return EntryRecord("md5", value, external_id=external_id, category="A1")


def test_small_pages_lose_nothing_while_the_bank_changes_during_paging(svc, subscriber, source_url, alpha):
    for i in range(5, 23):
        svc.banks.add_hash("confirmed", "md5", md5(f"c{i}"))
    subscriber.banks.create("from-alpha", kind="block")
    ex = exchange(svc, source_url, alpha, page_size=4)
    checkpoint, pages, changed_in_log = None, 0, False
    for batch in ex.fetch(None):
        apply(subscriber, "from-alpha", batch)
        checkpoint = batch.checkpoint
        pages += 1
        ids = sorted(e["id"] for e in svc.banks.entries("confirmed", limit=1000) if e["enabled"])
        if pages == 2:  # mid-copy: a new entry, one delivered withdrawn, one not yet delivered deleted
            svc.banks.add_hash("confirmed", "md5", md5("during-copy"))
            svc.banks.set_entry_enabled(ids[0], False)
            svc.banks.delete_entry(ids[-2])
        elif checkpoint["cursor"].startswith("log.") and not changed_in_log:  # the copy is done: the log is next
            changed_in_log = True
            for i in range(5):
                svc.banks.add_hash("confirmed", "md5", md5(f"during-log-{i}"))
            svc.banks.set_entry_enabled(ids[1], False)
            svc.banks.delete_entry(ids[2])
    assert pages > 8 and changed_in_log
    assert enabled(subscriber, "from-alpha") == enabled(svc, "confirmed")
    svc.banks.add_hash("confirmed", "md5", md5("after"))
    follow(subscriber, ex, "from-alpha", checkpoint)
    assert enabled(subscriber, "from-alpha") == enabled(svc, "confirmed")


def test_the_cli_connects_two_instances(cli, svc):
    key = cli("peer", "key")
    assert key.stdout.strip() == svc.peers.public_key()
    svc.banks.create("confirmed", kind="block")
    added = cli("peer", "add-peer", "beta", "--key", svc.peers.public_key())
    token = added.stdout.strip().splitlines()[-1]
    assert token.startswith("sh_") and svc.apikeys.authenticate(token)[0].role == "peer"
    assert "peer.exists" in cli("peer", "add-peer", "beta", code=2).output
    cli("peer", "share", "confirmed", "--to", "beta")
    assert json.loads(cli("peer", "shares", "--json").stdout) == [
        {"bank": "confirmed", "kind": "block", "peer": "beta"}
    ]
    assert "no longer" in cli("peer", "unshare", "confirmed", "--to", "beta").stdout
    assert json.loads(cli("peer", "list", "--json").stdout)[0]["name"] == "beta"
    cli("peer", "remove-peer", "beta")
    assert cli("peer", "list", "--json").stdout.strip() == "[]"


def _resigned(svc, change):
    """A Tamper rewrite that changes the page and signs it again with the source's own key: what a source that
    misbehaves (or an old page it really signed) looks like, past the signature check."""

    def rewrite(request, doc):
        change(request, doc["page"])
        doc["signature"] = svc.peers.sign("feed", doc["page"])
        return doc

    return rewrite


def _refused(ex, checkpoint=None) -> ExchangeError:
    with pytest.raises(ExchangeError) as refused:
        for _ in ex.fetch(checkpoint):
            pass
    assert refused.value.code == "exchange.protocol" and not refused.value.retryable
    return refused.value


def test_a_page_for_another_peer_another_kind_or_signed_long_ago_is_refused(svc, source_url, alpha):
    assert "another peer" in _refused(exchange(svc, source_url, alpha, peer_name="gamma")).message
    assert next(exchange(svc, source_url, alpha, peer_name="beta").fetch(None)).records  # our name: taken

    svc.banks.create("known-benign", kind="allow")
    svc.banks.add_hash("known-benign", "md5", md5("meme"))
    svc.peers.share("known-benign", "beta", actor="test")
    allow_into_block = exchange(svc, source_url, alpha, bank="known-benign", bank_kind="block")
    assert "'allow' bank" in _refused(allow_into_block).message
    with pytest.raises(ExchangeError) as refused:
        allow_into_block.check()
    assert refused.value.code == "exchange.rejected"
    assert next(exchange(svc, source_url, alpha, bank="known-benign", bank_kind="allow").fetch(None)).records

    def long_ago(_request, page):
        page["at"] = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat()

    old = exchange(svc, source_url, alpha, transport=Tamper(_resigned(svc, long_ago)), max_page_age_seconds=3600)
    assert "signed 7200 s ago" in _refused(old).message


def test_a_source_that_says_more_without_moving_its_cursor_is_stopped(svc, source_url, alpha):
    checkpoint = follow_only(exchange(svc, source_url, alpha))

    def stuck(request, page):
        page["next"], page["more"] = request.url.params.get("after"), True

    looping = exchange(svc, source_url, alpha, transport=Tamper(_resigned(svc, stuck)))
    assert "forward" in _refused(looping, checkpoint).message


def test_a_round_reads_at_most_max_pages_and_the_next_goes_on(svc, source_url, alpha):
    ex = exchange(svc, source_url, alpha, page_size=1, max_pages=2)
    first = list(ex.fetch(None))
    assert len(first) == 2 and not first[-1].done
    rest = list(ex.fetch(first[-1].checkpoint))
    assert len(rest) == 2 and not rest[-1].done
    values = {r.value for b in first + rest + list(ex.fetch(rest[-1].checkpoint)) for r in b.records}
    assert values == set(enabled(svc, "confirmed"))


def test_the_service_hands_the_exchange_its_bank_kind(svc):
    svc.banks.create("benign", kind="allow")
    settings = {"url": "https://alpha.example.org", "bank": "b", "public_key": svc.peers.public_key()}
    svc.exchanges.create("from-alpha", "peer", "benign", settings, {"token": "t"}, enabled=False)
    assert svc.exchanges.adapter("from-alpha").bank_kind == "allow"


def follow_only(ex) -> dict:
    checkpoint = None
    for batch in ex.fetch(None):
        checkpoint = batch.checkpoint
    return checkpoint
