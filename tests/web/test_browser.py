"""The console and the API reference in real Chromium against a real server, with no network but loopback.

The review follows docs/quickstart.md §6 key for key: log in, ``c`` claims and opens the selected case, ``r``
reveals (and the reveal is recorded), ``1`` then ``Enter`` decides; then the signed webhook arrives at a local
receiver and the audit chain verifies. Another test moves through a queue with the keys and does the same work
with the buttons, and one loads ``/docs``. Every page blocks, and fails on, any request that would leave the
machine: the console and the API reference must work on a network with no internet.

The server is uvicorn on a free port with its background threads running (the webhook dispatcher included);
the receiver is a small http.server that checks each delivery's signature. Chromium is Debian's
(/usr/bin/chromium): no browser is downloaded.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn

from safehold.actions.signing import verify
from safehold.app import create_app
from safehold.auth import totp
from safehold.config import Settings
from safehold.services import Services
from tests.web.conftest import PASSWORD, open_media_case

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]  # fmt: skip

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Chromium is not installed at /usr/bin/chromium"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A platform's webhook endpoint: records each delivery and whether its signature verified."""

    def __init__(self):
        self.secret = ""
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 -- http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                signed = verify(receiver.secret, self.headers.get("Safehold-Signature", ""), body)
                receiver.received.append({"signed": signed, "event": self.headers["Safehold-Event"],
                                          "payload": json.loads(body)})  # fmt: skip
                self.send_response(200 if signed else 401)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/safehold"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for(self, event: str, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for got in self.received:
                if got["event"] == event:
                    return got
            time.sleep(0.1)
        raise AssertionError(f"no {event} delivery within {timeout}s; got {self.received}")


@pytest.fixture
def receiver():
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def server(tmp_path):
    """A real server process's worth of Safehold: uvicorn in a thread, background work (dispatcher) on."""
    settings = Settings(home=tmp_path / "home", webhook_poll_interval=0.2, webhook_backoff_seconds=0.2)
    svc = Services(settings)
    port = _free_port()
    config = uvicorn.Config(create_app(svc, background=True), host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield svc, f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module (starting it costs seconds); each test's pages have contexts of their own
    (``new_page``), so no cookies or storage pass between tests."""
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _watched(page) -> tuple[list[str], list[str]]:
    """Script errors and CSP violations (``problems``) and requests that would leave the machine (``outside``,
    aborted): both must stay empty."""
    problems: list[str] = []
    outside: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"{m.text} {m.location}"))
    page.on("pageerror", lambda e: problems.append(str(e)))

    def route(r):
        if urlsplit(r.request.url).hostname in LOOPBACK:
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return problems, outside


def _login(page, base: str, username: str) -> None:
    page.goto(f"{base}/console")
    assert "/login" in page.url  # signed out: sent to the log-in page
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()
    if page.locator("[data-totp-secret]").count():
        # A role that requires two-step log-in (admin), not yet enrolled: the page shows the setup key, as a
        # person would type it into their authenticator app; the app's code completes the enrolment.
        secret = page.locator("[data-totp-secret]").inner_text().replace(" ", "")
        page.get_by_label("Code from your authenticator app").fill(totp.code_at(secret))
        page.get_by_role("button", name="Set up and log in").click()
    page.wait_for_url(f"{base}/console")


def _loaded(page, selector: str) -> None:
    page.wait_for_function(
        f"() => {{ const i = document.querySelector('{selector}'); return i && i.naturalWidth > 0 }}"
    )


def test_review_in_a_real_browser(server, receiver, browser):
    svc, base = server
    svc.users.create("rita", PASSWORD, "reviewer", display_name="Rita")
    svc.users.create("ada", PASSWORD, "admin", display_name="Ada")
    _, receiver.secret = svc.webhooks.create("platform", receiver.url, actor="test")
    case_id, item_id, _ = open_media_case(svc)
    expect = playwright_api.expect

    page = browser.new_page()
    problems, outside = _watched(page)
    media_fetches: list[str] = []
    page.on("request", lambda r: "/media" in r.url and media_fetches.append(r.url))

    # docs/quickstart.md §6, key for key: the queue opens with the most urgent case selected; c claims and opens it.
    _login(page, base, "rita")
    expect(page.locator("tr[data-row]", has_text=f"#{case_id}")).to_have_attribute("aria-current", "true")
    page.keyboard.press("c")
    page.wait_for_url(re.compile(rf"/console/cases/{case_id}\?done=claimed"))
    expect(page.get_by_text("You hold the claim")).to_be_visible()

    # Only the server-blurred preview so far; the clear file has not been requested.
    _loaded(page, "img[data-preview]")
    assert "blur" in page.get_attribute("img[data-preview]", "class")
    assert media_fetches == []

    page.keyboard.press("r")  # Reveal: an explicit POST
    page.wait_for_url(re.compile(rf"/console/items/{item_id}/reveal"))
    _loaded(page, "img[data-revealed]")
    assert len(media_fetches) == 1

    page.keyboard.press("1")  # selects CSAM A1 and focuses the submit button; Enter submits
    assert page.is_checked('input[value="csam:A1"]')
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/console/cases/{case_id}\?done=decided"))
    expect(page.get_by_role("status").filter(has_text="Decision recorded")).to_be_visible()
    expect(page.locator(".case-head .status")).to_have_text("closed")
    expect(page.get_by_text("Revealed 1 time")).to_be_visible()  # the reveal is on the record
    expect(page.locator("details.reveals li")).to_contain_text("user:rita")
    assert len(media_fetches) == 1  # the case page after it reveals nothing

    got = receiver.wait_for("action.remove_content")
    assert got["signed"] and got["payload"]["case"]["id"] == case_id
    assert got["payload"]["case"]["classification"] == "A1"

    deadline = time.monotonic() + 10  # the receiver answered; the dispatcher records it a moment later
    while not svc.webhooks.deliveries(status="delivered") and time.monotonic() < deadline:
        time.sleep(0.1)
    admin = browser.new_page()
    admin_problems, admin_outside = _watched(admin)
    _login(admin, base, "ada")
    admin.goto(f"{base}/console/cases/{case_id}")
    expect(admin.locator(".delivery-delivered").first).to_be_visible()
    admin.goto(f"{base}/console/audit")
    admin.get_by_role("link", name="Verify the chain").click()
    expect(admin.get_by_role("status")).to_contain_text("The chain is intact")
    assert problems == admin_problems == []
    assert outside == admin_outside == []


def test_queue_keys_and_buttons(server, browser):
    """Enter on a fresh queue opens the selected (first) case without claiming it; j / k move the selection, o
    opens; the claim, reveal and wellness toggles work as buttons too; ? shows the shortcuts."""
    svc, base = server
    svc.users.create("rita", PASSWORD, "reviewer", display_name="Rita")
    open_media_case(svc, seed=1)
    open_media_case(svc, seed=2, known=False)
    expect = playwright_api.expect
    page = browser.new_page()
    problems, outside = _watched(page)

    _login(page, base, "rita")
    rows = page.locator("tr[data-row]")
    expect(rows).to_have_count(2)
    first, second = (rows.nth(i).locator("a[data-open]").inner_text().lstrip("#") for i in range(2))
    expect(rows.nth(0)).to_have_attribute("aria-current", "true")
    expect(page.locator(".keys-hint")).to_contain_text("c claims and opens")

    page.keyboard.press("Enter")  # nothing focused: opens the selected case, unclaimed
    page.wait_for_url(f"{base}/console/cases/{first}")
    expect(page.get_by_text("Nobody is working on this case")).to_be_visible()

    page.go_back()
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_attribute("aria-current", "true")
    expect(rows.nth(0)).not_to_have_attribute("aria-current", "true")
    page.keyboard.press("k")
    page.keyboard.press("j")
    page.keyboard.press("o")
    page.wait_for_url(f"{base}/console/cases/{second}")

    page.get_by_role("button", name="Claim").click()
    expect(page.get_by_text("You hold the claim")).to_be_visible()
    page.get_by_role("button", name=re.compile("^Reveal")).click()
    _loaded(page, "img[data-revealed]")
    grey = "el => getComputedStyle(el).filter"
    assert page.eval_on_selector("img[data-revealed]", grey) == "grayscale(1)"  # greyscale by default
    page.get_by_label("Show colour").check()
    assert page.eval_on_selector("img[data-revealed]", grey) == "none"

    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    assert problems == outside == []


def test_api_reference_works_offline(server, browser):
    """/docs renders the operations with every request kept on this machine (FastAPI's own page needs a CDN)."""
    _, base = server
    page = browser.new_page()
    problems, outside = _watched(page)
    page.goto(f"{base}/docs")
    # Swagger UI renders the whole schema in the browser: seconds on a loaded two-core machine.
    playwright_api.expect(page.locator('.opblock-summary-path[data-path="/v1/scan"]')).to_be_visible(timeout=30_000)
    assert page.title() == "Safehold · API reference"
    assert problems == outside == []
