"""Live streams through the API: register, push frames, a banked image interrupts the stream (signed webhook) and
the ring buffer is preserved as evidence; risk raises the rate; the roles and bounds of the routes."""

from __future__ import annotations

import io
import json
import subprocess
import time
import zipfile

import pytest

from safehold.actions.signing import verify
from safehold.errors import SafeholdError
from safehold.pipeline.live_claims import StreamClaims, this_process
from tests.actions.conftest import Receiver
from tests.media import jpeg, variant

KNOWN = jpeg(21, (320, 240))
T0 = 1_700_000_000.0  # in the past: a capture time may not be ahead of the clock


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def push(client, key, stream, data, ts, ctype="image/jpeg"):
    return client.post(
        f"/v1/live/streams/{stream}/frames", params={"captured_at": ts}, content=data,
        headers={**key, "Content-Type": ctype},
    )  # fmt: skip


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_banked_image_shown_in_a_stream_interrupts_it(svc, client, keys, receiver):
    svc.banks.create("known", created_by="test")
    svc.banks.add_file("known", KNOWN, filename="known.jpg", category="A1")
    _, secret = svc.webhooks.create("platform", receiver.url)
    platform = keys["platform"]
    body = {"id": "s-1", "broadcaster": "u-1", "source": "push", "viewers": ["v-1"]}
    r = client.post("/v1/live/streams", json=body, headers=platform)
    assert r.status_code == 201, r.text
    assert r.json()["rate"] == 0.5 and r.json()["risk"]["level"] == "baseline"

    answers = [push(client, platform, "s-1", jpeg(100 + i, (320, 240)), T0 + i * 0.5).json() for i in range(8)]
    assert [a["sampled"] for a in answers] == [True, False, False, False] * 2  # 2 frames/s pushed, 0.5 sampled
    assert {a["verdict"] for a in answers if a["sampled"]} == {"no_match"}
    assert svc.cases.list(status="all")["total"] == 0  # nothing recorded for frames that matched nothing

    hit = push(client, platform, "s-1", variant(KNOWN), T0 + 4.0).json()
    assert hit["sampled"] and hit["verdict"] == "match" and hit["interrupted"] and hit["status"] == "interrupted"
    case_id = hit["case"]["id"]
    assert hit["took_ms"] < 1000
    started = time.perf_counter()
    assert svc.dispatcher.run_once() == 1
    assert time.perf_counter() - started < 1.0
    (req,) = receiver.requests
    assert req.headers["safehold-event"] == "action.interrupt"
    assert verify(secret, req.headers["safehold-signature"], req.body)
    assert req.json["case"]["content_id"] == "live:s-1" and req.json["case"]["account_id"] == "u-1"
    assert req.json["action"]["params"]["stream_id"] == "s-1"

    assert hit["evidence"].startswith("live:s-1:clip:")
    svc.live.flush()
    case = svc.cases.get(case_id)
    assert case["source"] == "livestream" and case["queue"] == "live"
    assert [sig["source"] for sig in case["signals"]] == ["hash_match"]
    (record,) = svc.evidence.list(case_id=case_id)
    assert record["media_type"] == "application/zip"
    _, clip = svc.evidence.read(record["id"], "test", "check the clip")
    with zipfile.ZipFile(io.BytesIO(clip)) as z:
        frames = json.loads(z.read("manifest.json"))["frames"]
    assert [f["verdict"] for f in frames] == ["no_match", "no_match", "match"]

    listed = client.get("/v1/live/streams", headers=keys["reviewer"]).json()["streams"]
    assert [(s["id"], s["status"], s["case_id"]) for s in listed] == [("s-1", "interrupted", case_id)]
    assert client.delete("/v1/live/streams/s-1", headers=platform).json()["status"] == "ended"
    assert push(client, platform, "s-1", KNOWN, T0 + 9).status_code == 409


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_risk_raises_the_rate_and_a_minor_broadcaster_counts(svc, client, keys):
    svc.ages.record("test", "u-kid", "platform", band="13-15")
    platform = keys["platform"]
    r = client.post("/v1/live/streams", json={"id": "s-k", "broadcaster": "u-kid", "source": "push"}, headers=platform)
    assert r.json()["risk"]["reasons"] == {"minor_broadcaster": 1} and r.json()["rate"] == 1.0
    client.post("/v1/live/streams", json={"id": "s-2", "broadcaster": "u-2", "source": "push"}, headers=platform)
    r = client.post("/v1/live/streams/s-2/signals", json={"reason": "viewer_report"}, headers=platform)
    assert r.json()["rate"] == 1.0 and r.json()["risk"]["reasons"] == {"viewer_report": 1}
    r = client.post("/v1/live/streams/s-2/signals", json={"reason": "classifier_score", "score": 0.9}, headers=platform)
    assert r.json()["risk"]["level"] == "high" and r.json()["rate"] == 2.0
    sampled = [push(client, platform, "s-2", jpeg(5, (64, 64)), T0 + i * 0.5).json()["sampled"] for i in range(4)]
    assert sampled == [True, True, True, True]

    svc.live.chat_alert = lambda conversation_id: conversation_id == "chat-3"  # the chat's grooming alert
    body = {"id": "s-c", "broadcaster": "u-3", "source": "push", "chat_conversation": "chat-3"}
    assert client.post("/v1/live/streams", json=body, headers=platform).json()["risk"]["reasons"] == {
        "grooming_alert": 1
    }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_stream_another_process_holds_is_answered_elsewhere_not_unknown(svc, client, keys):
    platform = keys["platform"]
    body = {"id": "s-far", "broadcaster": "u-far", "source": "push"}
    other = StreamClaims(svc.db, "other-machine:4242")  # another API process, on another machine
    other.claim("s-far", "streams")
    for r in (
        push(client, platform, "s-far", KNOWN, T0),
        client.get("/v1/live/streams/s-far", headers=keys["reviewer"]),
        client.post("/v1/live/streams/s-far/signals", json={"reason": "viewer_report"}, headers=platform),
        client.delete("/v1/live/streams/s-far", headers=platform),
        client.post("/v1/live/streams", json=body, headers=platform),
    ):
        assert (r.status_code, r.json()["error"]["code"]) == (421, "live.elsewhere")
        assert r.json()["error"]["detail"]["process"] == "other-machine:4242"
    other.release("s-far")  # ended there: unknown here, and free to be registered here
    assert push(client, platform, "s-far", KNOWN, T0).json()["error"]["code"] == "live.stream_not_found"
    assert client.post("/v1/live/streams", json=body, headers=platform).status_code == 201
    assert (
        other.holder("s-far") == svc.live.process == client.get("/v1/live/streams", headers=platform).json()["process"]
    )
    with pytest.raises(SafeholdError) as e:
        other.claim("s-far", "streams")
    assert e.value.code == "live.elsewhere"
    assert client.delete("/v1/live/streams/s-far", headers=platform).status_code == 200
    assert other.holder("s-far") is None
    other.claim("s-far", "streams")  # registered there since: what this process remembers of it is stale
    r = client.get("/v1/live/streams/s-far", headers=platform)
    assert (r.status_code, r.json()["error"]["code"]) == (421, "live.elsewhere")
    # A holder on this machine whose process is gone is known dead: its stream may be registered again here.
    gone = subprocess.Popen(["true"])
    gone.wait()
    StreamClaims(svc.db, f"{this_process().rpartition(':')[0]}:{gone.pid}").claim("s-lost", "streams")
    assert push(client, platform, "s-lost", KNOWN, T0).json()["error"]["code"] == "live.stream_not_found"
    r = client.post("/v1/live/streams", json={**body, "id": "s-lost"}, headers=platform)
    assert r.status_code == 201


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_refusals(svc, client, keys):
    platform = keys["platform"]
    ok = {"id": "s-3", "broadcaster": "u-3", "source": "push"}
    assert client.post("/v1/live/streams", json=ok, headers=keys["reviewer"]).status_code == 403
    assert client.post("/v1/live/streams", json=ok, headers=platform).status_code == 201
    assert client.post("/v1/live/streams", json=ok, headers=platform).json()["error"]["code"] == "live.stream_exists"
    pulled = {**ok, "id": "s-4", "source": "url", "url": "rtmp://127.0.0.1/live/s4"}
    r = client.post("/v1/live/streams", json=pulled, headers=platform)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "live.pull_not_allowed")  # live_pull_allow is empty
    r = push(client, platform, "s-3", b"GIF89a" + bytes(64), T0, ctype="image/png")
    assert (r.status_code, r.json()["error"]["code"]) == (415, "live.frame_format")
    too_big = b"\xff\xd8\xff" + bytes(svc.settings.live_max_frame_bytes)
    assert push(client, platform, "s-3", too_big, T0 + 10).status_code == 413
    assert push(client, platform, "nope", KNOWN, T0).json()["error"]["code"] == "live.stream_not_found"
    r = push(client, platform, "s-3", KNOWN, time.time() + 3600)  # a clock an hour ahead
    assert (r.status_code, r.json()["error"]["code"]) == (422, "live.captured_at")
    svc.settings.live_pull_allow, svc.settings.live_max_pulls = ["127.0.0.0/8"], 1  # this test's own settings
    svc.live._pullers["busy"] = type("Busy", (), {"alive": True})()  # one ffmpeg already pulling
    r = client.post("/v1/live/streams", json=pulled, headers=platform)
    assert (r.status_code, r.json()["error"]["code"]) == (503, "live.too_many_pulls")
    del svc.live._pullers["busy"]
    r = client.post("/v1/live/streams/s-3/interrupt", json={}, headers=platform)
    assert r.status_code == 403
    r = client.post("/v1/live/streams/s-3/interrupt", json={"note": "seen"}, headers=keys["senior_reviewer"])
    assert r.status_code == 200 and r.json()["action"]["kind"] == "interrupt"
    assert r.json()["stream"]["status"] == "interrupted" and r.json()["stream"]["case_id"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_pulled_hls_stream_showing_a_banked_image_is_interrupted(tmp_path, svc):
    """A real ffmpeg-made HLS stream on loopback (6 s; the banked image from 1.5 s to 4.5 s), pulled by Safehold."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from tests.media import H264, ffmpeg, photo

    frames = tmp_path / "frames"
    frames.mkdir()
    known = photo(21, (320, 240))
    for i in range(24):  # 4 frames/s
        (known if 6 <= i < 18 else photo(200 + i, (320, 240))).save(frames / f"f{i:03d}.png")
    hls = tmp_path / "hls"
    hls.mkdir()
    ffmpeg(hls / "s.m3u8", "-framerate", "4", "-i", str(frames / "f%03d.png"), *H264, "-g", "4",
           "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod")  # fmt: skip
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(hls))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    svc.settings.live_pull_allow = ["127.0.0.0/8"]  # this test's own settings object
    try:
        svc.banks.create("known", created_by="test")
        svc.banks.add_file("known", encode_png(known), filename="known.png", category="A1")
        url = f"http://127.0.0.1:{server.server_address[1]}/s.m3u8"
        svc.live.register("apikey:platform", "pulled", "u-p", source="url", url=url)
        svc.live.puller("pulled").join(timeout=60)
        stream = svc.live.get("pulled")
        assert stream["pull"]["error"] is None and stream["pull"]["frames"] == 12  # 6 s at 2 frames/s
        assert stream["frames"]["sampled"] == 3 and stream["frames"]["matched"] >= 1  # at 0, 2 and 4 s
        assert stream["status"] == "ended" and stream["case_id"]  # the source ended: so did the watch
        assert [a["kind"] for a in svc.actions.list_for_case(stream["case_id"])] == ["interrupt"]
    finally:
        server.shutdown()
        server.server_close()


def encode_png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
