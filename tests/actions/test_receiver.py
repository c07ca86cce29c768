"""The bundled receiver (`safehold webhook receive`) accepts only correctly signed deliveries."""

from __future__ import annotations

import json
import threading
import time

import httpx

from safehold.actions import receiver
from safehold.actions.signing import sign

SECRET = "whsec_test"


def test_receiver_verifies_signatures_and_notes_repeats():
    got: list[receiver.Delivery] = []
    server = receiver.make_server("127.0.0.1", 0, SECRET, got.append)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    body = json.dumps({"event": "action.remove_content", "case": {"id": 7}}).encode()
    headers = {"Safehold-Signature": sign(SECRET, body, int(time.time())), "Safehold-Idempotency-Key": "k1"}
    try:
        assert httpx.post(url, content=body, headers=headers).status_code == 204
        assert httpx.post(url, content=body, headers=headers).status_code == 204
        assert httpx.post(url, content=body + b" ", headers=headers).status_code == 401
        stale = {**headers, "Safehold-Signature": sign(SECRET, body, int(time.time()) - 3600)}
        assert httpx.post(url, content=body, headers=stale).status_code == 401
        assert httpx.post(url, content=body, headers={"Safehold-Signature": sign("other", body, 1)}).status_code == 401
    finally:
        server.shutdown()
        server.server_close()
    assert [(d.valid, d.repeat) for d in got] == [
        (True, False),
        (True, True),
        (False, False),
        (False, False),
        (False, False),
    ]
    assert got[0].body["case"]["id"] == 7 and got[0].idempotency_key == "k1"
