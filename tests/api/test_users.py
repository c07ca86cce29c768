"""Console users over HTTP (admins only): create, read, change, password, unlock; never a password hash."""

from __future__ import annotations

PW = "correct horse battery"


def test_user_lifecycle(client, keys, svc):
    admin = keys["admin"]
    body = {"username": "Alice", "password": PW, "role": "reviewer", "display_name": "Alice"}
    r = client.post("/v1/users", json=body, headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["username"] == "alice" and created["role"] == "reviewer" and not created["disabled"]
    assert "password" not in r.text and "argon2" not in r.text

    r = client.post("/v1/users", json=body, headers=admin)
    assert r.status_code == 409 and r.json()["error"]["code"] == "user.exists"

    assert [u["username"] for u in client.get("/v1/users", headers=admin).json()] == ["alice"]
    assert client.get("/v1/users/ALICE", headers=admin).json() == created
    r = client.get("/v1/users/nobody", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "user.not_found"

    r = client.patch("/v1/users/alice", json={"role": "senior_reviewer", "disabled": True}, headers=admin)
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "senior_reviewer" and r.json()["disabled"] is True
    r = client.patch("/v1/users/alice", json={"disabled": False}, headers=admin)
    assert r.json()["disabled"] is False

    r = client.put("/v1/users/alice/password", json={"password": "a new long passphrase"}, headers=admin)
    assert r.status_code == 204 and r.content == b""
    assert svc.users.authenticate("alice", "a new long passphrase").username == "alice"

    r = client.post("/v1/users/alice/unlock", headers=admin)
    assert r.status_code == 200 and r.json()["locked_until"] is None

    actors = {(rec["actor"], rec["action"]) for rec in svc.audit.list() if rec["target"] == "user:alice"}
    assert {("apikey:test-admin", a) for a in ("user.create", "user.update", "user.password", "user.unlock")} <= actors


def test_user_validation(client, keys):
    admin = keys["admin"]
    for body, code in [
        ({"username": "a b", "password": PW, "role": "reviewer"}, "request.invalid"),
        ({"username": "alice", "password": "short", "role": "reviewer"}, "request.invalid"),
        ({"username": "alice", "password": "a" * 12, "role": "reviewer"}, "user.weak_password"),
        ({"username": "alice", "password": PW, "role": "platform"}, "request.invalid"),
        ({"username": "alice", "password": PW}, "request.invalid"),
        ({"username": "alice", "password": "x" * 2000, "role": "reviewer"}, "request.invalid"),
    ]:
        r = client.post("/v1/users", json=body, headers=admin)
        assert r.status_code in (400, 422), (body, r.text)
        assert r.json()["error"]["code"] == code, body
        assert "x" * 100 not in r.text  # a rejected password is not echoed back
    r = client.put("/v1/users/nobody/password", json={"password": PW}, headers=admin)
    assert r.status_code == 404


def test_an_admin_resets_a_users_totp(client, keys, svc):
    svc.users.create("lost", PW, "legal")
    svc.users.enrol("lost", actor="cli")
    r = client.delete("/v1/users/lost/totp", headers=keys["reviewer"])
    assert r.status_code == 403 and svc.users.get("lost").totp_enrolled
    r = client.delete("/v1/users/lost/totp", headers=keys["admin"])
    assert r.status_code == 200 and r.json()["username"] == "lost" and not svc.users.get("lost").totp_enrolled
    assert svc.audit.list(action="user.totp_reset")[-1]["actor"] == "apikey:test-admin"
    assert client.delete("/v1/users/nobody/totp", headers=keys["admin"]).status_code == 404
