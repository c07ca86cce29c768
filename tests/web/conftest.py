"""Console test helpers: staff users of every role, and a signed-in browser-like client per user."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from safehold.api.app import create_app
from safehold.cases.detection import Detection, DetectionSignal
from tests.media import jpeg

PASSWORD = "a calm test password"
#: One user per staff role: the user name is the role's, shortened where the pattern asks.
ROLES = {"admin": "ada", "senior_reviewer": "sam", "reviewer": "rita", "auditor": "otto", "legal": "lena"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


class Console:
    """A TestClient with its own cookie jar, signed in as one user; ``post`` adds the CSRF field."""

    def __init__(self, client: TestClient):
        self.client = client
        self.csrf = ""

    def login(self, username: str, password: str = PASSWORD, next_path: str = ""):
        form = self.client.get("/login")
        data = {"username": username, "password": password, "csrf": csrf_of(form.text), "next": next_path}
        r = self.client.post("/login", data=data, follow_redirects=False)
        if r.status_code == 303:
            self.csrf = csrf_of(self.client.get("/console/me").text)
        return r

    def get(self, path: str, **kw):
        return self.client.get(path, follow_redirects=False, **kw)

    def post(self, path: str, data: dict | None = None, **kw):
        return self.client.post(path, data={"csrf": self.csrf, **(data or {})}, follow_redirects=False, **kw)


@pytest.fixture
def app(svc):
    return create_app(svc, background=False)


@pytest.fixture
def open_console(app):
    """``open_console()`` → a new signed-out client; ``open_console("rita")`` → signed in as rita."""
    clients = []

    def make(username: str | None = None) -> Console:
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        console = Console(client)
        if username:
            assert console.login(username).status_code == 303
        return console

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def staff_users(svc):
    for role, name in ROLES.items():
        svc.users.create(name, PASSWORD, role, display_name=name.title())
    return ROLES


def open_media_case(svc, *, seed: int = 1, known: bool = True, content_id: str | None = None, account="acct-1"):
    """A case with one stored image, as a bank match (``known``) or a classifier hit would open it."""
    data = jpeg(seed)
    stored = svc.vault.put(data)
    source = "hash_match" if known else "classifier"
    signal = DetectionSignal(source, signal_type="md5" if known else None, bank="known" if known else None,
                             category="A1" if known else "csam", confidence=1.0 if known else 0.9)  # fmt: skip
    ref = svc.cases.record(
        Detection(
            source=source,
            content_id=content_id or f"content-{seed}",
            account_id=account,
            signals=[signal],
            media=stored,
            media_type="image",
            filename=f"upload-{seed}.jpg",
            known_match=known,
        ),
        "apikey:platform",
    )
    item = svc.cases.get(ref.id)["items"][0]
    return ref.id, item["id"], data
