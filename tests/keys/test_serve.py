"""A running ``safehold serve`` picks up a key rotated by another process without a restart."""

from __future__ import annotations

import json

import httpx

from tests.test_serve import _cli, _serve, wait_until_serving


def test_a_running_server_seals_with_the_rotated_key_without_a_restart(tmp_path):
    server, base, env = _serve(tmp_path, SAFEHOLD_KEY_CHECK_SECONDS="0.5")
    try:
        wait_until_serving(server, base)
        token = next(
            w for w in _cli(env, "apikey", "create", "--role", "admin", "--name", "me").split() if w.startswith("sh_")
        )
        headers = {"Authorization": f"Bearer {token}"}

        def add(name: str) -> None:
            body = {"name": name, "url": "https://receiver.example/hook"}
            assert httpx.post(f"{base}/v1/webhooks", json=body, headers=headers).status_code == 201

        add("before")
        first = json.loads(_cli(env, "keys", "status", "--which", "instance", "--json"))["current"]
        rotated = json.loads(_cli(env, "keys", "rotate", "--which", "instance", "--json"))
        assert rotated["new_key"] and rotated["by_place"]["webhooks.secret"]["rewrapped"] == 1
        add("after")  # the rotation waited SAFEHOLD_KEY_CHECK_SECONDS: the server has seen the new key
        status = json.loads(_cli(env, "keys", "status", "--which", "instance", "--json"))
        assert status["sealed"] == {rotated["key_id"]: 2} and status["previous"] == [first]
        _cli(env, "keys", "retire", "--which", "instance", "--key-id", first)
        add("retired")
        listed = httpx.get(f"{base}/v1/webhooks", headers=headers).json()
        assert sorted(h["name"] for h in listed) == ["after", "before", "retired"]
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=60)
