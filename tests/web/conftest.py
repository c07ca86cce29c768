"""Console test helpers: staff users of every role, and a signed-in browser-like client per user."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from safehold.app import create_app
from safehold.auth import totp
from safehold.cases.detection import Detection, DetectionSignal
from safehold.store.models import User
from tests.media import jpeg

PASSWORD = "a calm test password"
#: One user per staff role: the user name is the role's, shortened where the pattern asks.
ROLES = {"admin": "ada", "senior_reviewer": "sam", "reviewer": "rita", "auditor": "otto", "legal": "lena"}
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def totp_code(svc, username: str, secret: str) -> str:
    """The current code for a user's TOTP secret, as their phone would show it. A code works once per 30 s
    step; tests log the same admin in several times a second, so the record of the last step used is cleared
    first (as if the next step had come)."""
    with svc.db.session() as s:
        s.execute(update(User).where(User.username == username).values(totp_last_step=None))
    return totp.code_at(secret)


class Console:
    """A TestClient with its own cookie jar, signed in as one user; ``post`` adds the CSRF field. A user with a
    TOTP secret in ``secrets`` (the admin and legal users: their roles require it) gets the second step done
    with a code computed from it, as a phone would."""

    def __init__(self, client: TestClient, secrets: dict[str, str] | None = None):
        self.client = client
        self.csrf = ""
        self.secrets = {} if secrets is None else secrets

    def login(self, username: str, password: str = PASSWORD, next_path: str = "", code: str | None = None):
        form = self.client.get("/login")
        data = {"username": username, "password": password, "csrf": csrf_of(form.text), "next": next_path}
        r = self.client.post("/login", data=data, follow_redirects=False)
        if r.status_code == 200 and 'action="/login/totp"' in r.text and (code or username in self.secrets):
            svc = self.client.app.state.services
            code = code or totp_code(svc, username, self.secrets[username])
            data = {"code": code, "csrf": csrf_of(r.text), "next": next_path}
            r = self.client.post("/login/totp", data=data, follow_redirects=False)
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
def totp_secrets() -> dict[str, str]:
    """The TOTP secrets of the test users who have one (filled by ``staff_users``)."""
    return {}


@pytest.fixture
def open_console(app, totp_secrets):
    """``open_console()`` → a new signed-out client; ``open_console("rita")`` → signed in as rita."""
    clients = []

    def make(username: str | None = None) -> Console:
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        console = Console(client, totp_secrets)
        if username:
            assert console.login(username).status_code == 303
        return console

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def staff_users(svc, totp_secrets):
    """One user per role; those whose role requires TOTP (admin, legal by default) are enrolled, as
    ``safehold user create`` does, and their secrets kept for the log-in helper."""
    for role, name in ROLES.items():
        svc.users.create(name, PASSWORD, role, display_name=name.title())
        if svc.users.totp_required(role):
            totp_secrets[name] = svc.users.enrol(name, actor="cli")[0]
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
