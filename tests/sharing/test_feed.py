"""The plain feed: a whole list from a local file or an HTTP(S) URL, checkpointed by its content."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from safehold.banks.formats import EntryRecord, write
from safehold.errors import SafeholdError


def md5(i: int) -> str:
    return hashlib.md5(f"feed {i}".encode()).hexdigest()


def csv_of(ids, extra: str = "") -> bytes:
    rows = "".join(f"md5,{md5(i)},id-{i}\n" for i in ids)
    return f"signal_type,value,external_id\n{rows}{extra}".encode()


def enabled(svc) -> set[str]:
    return {e["value"] for e in svc.banks.entries("feeds", limit=1000) if e["enabled"]}


@pytest.fixture
def bank(svc):
    svc.banks.create("feeds")
    svc.settings.feeds_dir.mkdir(parents=True, exist_ok=True)
    return svc.settings.feeds_dir


class Server:
    """A feed served on 127.0.0.1: ``body`` with an ETag of its hash; 304 for a matching If-None-Match."""

    def __init__(self):
        self.body, self.status, self.headers_seen, self.extra = b"", 200, [], {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.headers_seen.append(dict(self.headers))
                etag = '"' + hashlib.sha256(server.body).hexdigest()[:16] + '"'
                if server.status != 200:
                    self.send_response(server.status)
                    for k, v in server.extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/list.csv"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def test_a_local_file_is_a_whole_list(svc, bank):
    (bank / "list.csv").write_bytes(csv_of(range(4)))
    svc.exchanges.create("local", "feed", "feeds", {"url": "list.csv"})
    first = svc.exchanges.fetch_once("local")
    assert first["added"] == 4 and enabled(svc) == {md5(i) for i in range(4)}
    assert svc.exchanges.fetch_once("local")["fetched"] == 0  # same bytes: nothing to do
    (bank / "list.csv").write_bytes(csv_of([0, 1, 3, 4]))  # 2 withdrawn, 4 added
    report = svc.exchanges.fetch_once("local")
    assert (report["added"], report["removed"]) == (1, 1)
    assert enabled(svc) == {md5(i) for i in (0, 1, 3, 4)}
    (bank / "list.csv").write_bytes(csv_of(range(5)))  # 2 is back
    assert svc.exchanges.fetch_once("local")["added"] == 1
    assert enabled(svc) == {md5(i) for i in range(5)}


def test_an_ncmec_xml_feed_with_its_deletions(svc, bank):
    records = [EntryRecord("md5", md5(i), external_id=f"img-{i}") for i in range(3)]
    with (bank / "ncmec.xml").open("wb") as f:
        write("ncmec-xml", records, f)
    svc.exchanges.create("xml", "feed", "feeds", {"url": "ncmec.xml", "format": "ncmec-xml"})
    assert svc.exchanges.fetch_once("xml")["added"] == 3
    with (bank / "ncmec.xml").open("wb") as f:
        write("ncmec-xml", records[:1], f)
    assert svc.exchanges.fetch_once("xml")["removed"] == 2
    assert enabled(svc) == {md5(0)}


def test_a_list_without_ids_is_compared_by_value(svc, bank):
    (bank / "plain.txt").write_text("".join(f"{md5(i)}\n" for i in range(3)))
    svc.exchanges.create("plain", "feed", "feeds", {"url": "plain.txt", "format": "list", "signal_type": "md5"})
    svc.exchanges.fetch_once("plain")
    (bank / "plain.txt").write_text(f"{md5(0)}\n")
    assert svc.exchanges.fetch_once("plain")["removed"] == 2
    assert enabled(svc) == {md5(0)}


def test_a_person_disabling_an_entry_is_not_undone_by_the_feed(svc, bank):
    (bank / "list.csv").write_bytes(csv_of(range(2)))
    svc.exchanges.create("local", "feed", "feeds", {"url": "list.csv"})
    svc.exchanges.fetch_once("local")
    svc.banks.set_enabled_by_value("feeds", "md5", md5(1), False)
    (bank / "list.csv").write_bytes(csv_of(range(3)))
    svc.exchanges.fetch_once("local")
    assert enabled(svc) == {md5(0), md5(2)}


def test_malformed_rows_and_unknown_types_are_counted_not_lost(svc, bank):
    extra = "md5,not-a-hash,bad-1\nphotodna,AAAABBBBCCCC,pdna-1\n"
    (bank / "list.csv").write_bytes(csv_of(range(2), extra))
    svc.exchanges.create("local", "feed", "feeds", {"url": "list.csv"})
    report = svc.exchanges.fetch_once("local")
    assert report["added"] == 2 and report["malformed"] == 1 and report["unknown"] == 1
    assert report["problems"] and "bad" not in svc.exchanges.get("local")["unknown_types"]
    assert svc.exchanges.get("local")["unknown_types"] == {"photodna": 1}


def test_local_files_are_read_only_from_the_feeds_folder(svc, bank, tmp_path):
    (tmp_path / "outside.csv").write_bytes(csv_of(range(1)))
    svc.exchanges.create("escape", "feed", "feeds", {"url": "../../outside.csv"})
    with pytest.raises(SafeholdError) as refused:
        svc.exchanges.fetch_once("escape")
    assert refused.value.code == "exchange.forbidden_path"
    assert svc.exchanges.get("escape")["last_error"]["code"] == "exchange.forbidden_path"
    assert enabled(svc) == set()


def test_only_https_or_this_machine(svc, bank):
    for url in ("http://example.org/list.csv", "ftp://example.org/x", "file:///etc/passwd"):
        with pytest.raises(SafeholdError) as refused:
            svc.exchanges.create("web", "feed", "feeds", {"url": url})
        assert refused.value.code == "exchange.invalid_settings"
    svc.exchanges.create("web", "feed", "feeds", {"url": "https://example.org/list.csv"})


def test_no_private_or_metadata_address_but_loopback(svc, bank):
    for url in ("https://10.0.0.5:8443/internal", "https://169.254.169.254/latest", "https://[fd00::1]/x"):
        with pytest.raises(SafeholdError) as refused:
            svc.exchanges.create("web", "feed", "feeds", {"url": url})
        assert refused.value.code == "exchange.invalid_settings"
        assert "non-public address" in refused.value.message
    svc.exchanges.create("here", "feed", "feeds", {"url": "https://127.0.0.1:8443/list.csv"})


def test_the_token_does_not_follow_a_redirect_to_another_origin(svc, bank, server):
    other = Server()
    try:
        other.body = csv_of(range(2))
        server.status, server.extra = 302, {"Location": other.url.replace("127.0.0.1", "localhost")}
        svc.exchanges.create("web", "feed", "feeds", {"url": server.url}, {"bearer_token": "feed-token-789"})
        assert svc.exchanges.fetch_once("web")["added"] == 2
        assert server.headers_seen[0]["Authorization"] == "Bearer feed-token-789"
        assert "Authorization" not in other.headers_seen[0]
    finally:
        other.close()


def test_http_feed_with_etag_and_bearer_token(svc, bank, server):
    server.body = csv_of(range(3))
    svc.exchanges.create("web", "feed", "feeds", {"url": server.url}, {"bearer_token": "feed-token-789"})
    assert svc.exchanges.fetch_once("web")["added"] == 3
    assert server.headers_seen[0]["Authorization"] == "Bearer feed-token-789"
    assert svc.exchanges.fetch_once("web")["fetched"] == 0
    assert server.headers_seen[1]["If-None-Match"]  # asked conditionally: 304
    server.body = csv_of(range(1))
    assert svc.exchanges.fetch_once("web")["removed"] == 2
    assert "feed-token-789" not in str(svc.exchanges.get("web"))


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [(503, "exchange.unavailable", True), (401, "exchange.auth", False), (429, "exchange.rate_limited", True),
     (404, "exchange.protocol", False)],
)  # fmt: skip
def test_http_errors_are_classified(svc, bank, server, status, code, retryable):
    server.status, server.extra = status, {"Retry-After": "1200"} if status == 429 else {}
    svc.exchanges.create("web", "feed", "feeds", {"url": server.url})
    with pytest.raises(SafeholdError) as failed:
        svc.exchanges.fetch_once("web")
    assert failed.value.code == code and failed.value.retryable is retryable
    if status == 429:
        assert failed.value.retry_after == 1200


@pytest.mark.parametrize("location", ["file:///etc/passwd", "https://169.254.169.254/latest/meta-data"])
def test_redirects_to_other_schemes_or_private_addresses_are_refused(svc, bank, server, location):
    server.status, server.extra = 302, {"Location": location}
    svc.exchanges.create("web", "feed", "feeds", {"url": server.url})
    with pytest.raises(SafeholdError) as refused:
        svc.exchanges.fetch_once("web")
    assert refused.value.code == "exchange.forbidden_url"


def test_the_download_is_bounded(svc, bank, server):
    svc.settings.exchange_max_body_bytes = 2048
    server.body = csv_of(range(100))
    svc.exchanges.create("web", "feed", "feeds", {"url": server.url})
    with pytest.raises(SafeholdError) as refused:
        svc.exchanges.fetch_once("web")
    assert refused.value.code == "exchange.too_large"
    assert enabled(svc) == set()


def test_an_unreachable_feed_is_retried(svc, bank):
    svc.exchanges.create("web", "feed", "feeds", {"url": "http://127.0.0.1:9/list.csv"})
    with pytest.raises(SafeholdError) as failed:
        svc.exchanges.fetch_once("web")
    assert failed.value.code == "exchange.unavailable" and failed.value.retryable
