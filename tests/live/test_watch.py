"""The live detector alone: sampling by risk, the ring buffer's bounds, frames judged against a bare PDQ index."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from safehold.errors import SafeholdError
from safehold.live.buffer import BufferPool, Frame, RingBuffer
from safehold.live.pull import Guard, Puller, check_url, split_jpegs
from safehold.live.sampling import Rates, Risk, Sampler
from safehold.live.watch import IndexJudge, Watch
from safehold.matching.pdq_index import PdqIndex
from safehold.signals import pdq
from tests.media import jpeg, variant

KNOWN, OTHER = jpeg(11, (320, 240)), jpeg(12, (320, 240))


def test_the_sampler_takes_one_frame_per_slot_at_the_current_rate():
    s = Sampler()
    taken = [t / 10 for t in range(0, 100) if s.take(t / 10, 0.5)]  # 10 frames/s for 10 s at 0.5/s
    assert taken == [0.0, 2.0, 4.0, 6.0, 8.0]
    s = Sampler()
    assert sum(s.take(t / 10, 2.0) for t in range(0, 100)) == 20
    assert not s.take(1.0, 2.0)  # out of order: older than the last one taken


def test_frames_out_of_order_leave_no_gap_wider_than_the_interval():
    s = Sampler()
    order = [0, 1, 3, 2, 4, 6, 5, 7, 8, 9, 11, 10]  # 1 frame/s, some overtaking the one before
    taken = sorted(t for t in order if s.take(float(t), 0.5))
    assert max(b - a for a, b in zip(taken, taken[1:], strict=False)) <= 2.0
    assert len(taken) <= 8  # an extra sample only where the order broke
    assert not s.take(3.0, 0.5)  # a time already sampled is not sampled twice


def test_one_frame_stamped_far_ahead_does_not_make_every_later_frame_sampled():
    s = Sampler()
    assert s.take(0.0, 0.5) and s.take(1e6, 0.5)  # a wrong clock: far in the future
    taken = [t / 10 for t in range(1, 101) if s.take(t / 10, 0.5)]  # 10 frames/s for 10 s
    assert taken == [2.0, 4.0, 6.0, 8.0, 10.0]  # still the stream's rate, not every frame


def test_risk_reasons_raise_the_level_and_the_rate():
    rates, risk = Rates(0.5, 1.0, 2.0), Risk()
    assert rates.at(risk.level()) == 0.5
    risk.add("minor_viewer")
    assert risk.level() == "elevated" and rates.at(risk.level()) == 1.0
    risk.add("grooming_alert")
    assert risk.level() == "high"
    assert Risk(classifier=0.9).level() == "high"
    with pytest.raises(ValueError):
        risk.add("bored")
    with pytest.raises(ValueError):
        Rates(1.0, 0.5, 2.0)


def test_the_ring_buffer_keeps_the_last_seconds_within_its_bytes():
    b = RingBuffer(seconds=10, max_bytes=1000)
    for t in range(30):
        b.add(Frame(float(t), b"x" * 100, "jpeg"))
    assert [f.ts for f in b.frames()] == [float(t) for t in range(20, 30)]  # 10 s back (bytes allow exactly 10)
    b.add(Frame(30.0, b"y" * 450, "jpeg"))
    assert b.bytes <= 1000 and b.newest.ts == 30.0 and len(b) == 6
    b.add(Frame(31.0, b"z" * 5000, "jpeg"))  # larger than the whole buffer: not kept
    assert b.newest.ts == 30.0
    with zipfile.ZipFile(io.BytesIO(b.clip({"stream": "s1"}))) as z:
        manifest = json.loads(z.read("manifest.json"))
        assert manifest["stream"] == "s1" and len(manifest["frames"]) == 6
        assert z.read(manifest["frames"][-1]["file"]) == b"y" * 450


def test_the_streams_buffers_together_stay_within_the_pool_the_fullest_giving_first():
    pool = BufferPool(max_bytes=1000)
    big, small = RingBuffer(30, 800, pool), RingBuffer(30, 800, pool)
    for t in range(8):
        big.add(Frame(float(t), b"b" * 100, "jpeg"))
    small.add(Frame(0.0, b"s" * 100, "jpeg"))
    small.add(Frame(1.0, b"s" * 100, "jpeg"))
    assert pool.bytes == 1000 and pool.shed == 0
    small.add(Frame(2.0, b"s" * 100, "jpeg"))  # over the pool: the oldest frame of the fullest buffer goes
    assert pool.bytes == 1000 == big.bytes + small.bytes and pool.shed == 1
    assert [f.ts for f in big.frames()][0] == 1.0 and len(small) == 3
    for t in range(3, 9):  # the small one grows until it is the fullest, then loses its own oldest frames
        small.add(Frame(float(t), b"s" * 100, "jpeg"))
    assert pool.bytes <= 1000 and abs(big.bytes - small.bytes) <= 100
    assert small.newest.ts == 8.0 and big.newest.ts == 7.0  # each keeps its newest seconds
    big.clear()
    assert pool.bytes == small.bytes and pool.to_dict()["buffers"] == 1
    w = Watch(buffer_bytes=800, max_buffer_bytes=1000)
    a, b = w.register("a", "u1"), w.register("b", "u2")
    assert a.buffer.pool is b.buffer.pool is w.pool


@pytest.fixture
def watch():
    index = PdqIndex()
    index.add(np.array([1]), [pdq.hash_image(KNOWN)[0]])
    return Watch(rates=Rates(0.5, 1.0, 2.0), max_streams=2, max_frame_bytes=200_000), IndexJudge(index)


def test_a_known_frame_matches_and_others_do_not_and_skipped_frames_are_not_judged(watch):
    w, judge = watch
    w.register("s1", "u1")
    calls = []

    def counting(stream, data):
        calls.append(data)
        return judge(stream, data)

    first = w.offer("s1", OTHER, 100.0, counting)
    assert first.sampled and first.verdict.verdict == "no_match"
    skipped = w.offer("s1", b"not even an image", 100.5, counting)  # refused only if it had been sampled
    assert not skipped.sampled and len(calls) == 1
    hit = w.offer("s1", variant(KNOWN), 102.0, counting)
    assert hit.verdict.verdict == "match" and hit.verdict.detail[0][0] == 1
    stream = w.get("s1")
    assert (stream.received, stream.sampled, stream.matches, len(stream.buffer)) == (3, 2, 1, 2)


def test_a_stream_at_risk_is_sampled_faster(watch):
    w, judge = watch
    w.register("s1", "u1")
    w.raise_risk("s1", "viewer_report")
    w.raise_risk("s1", "minor_broadcaster")
    sampled = sum(w.offer("s1", OTHER, 100 + t / 4, judge).sampled for t in range(8))  # 2 s at 4 frames/s
    assert sampled == 4  # 2 frames/s


def test_bounds_and_refusals(watch):
    w, judge = watch
    w.register("s1", "u1")
    with pytest.raises(SafeholdError) as e:
        w.register("s1", "u1")
    assert e.value.code == "live.stream_exists"
    w.register("s2", "u2")
    with pytest.raises(SafeholdError) as e:
        w.register("s3", "u3")
    assert e.value.code == "live.too_many_streams" and e.value.status == 503
    with pytest.raises(SafeholdError) as e:
        w.offer("s1", b"GIF89a" + bytes(100), 1.0, judge)
    assert e.value.code == "live.frame_format"
    with pytest.raises(SafeholdError) as e:
        w.offer("s2", b"\xff\xd8\xff" + bytes(300_000), 1.0, judge)
    assert e.value.code == "live.frame_too_large"
    w.end("s1")
    with pytest.raises(SafeholdError) as e:
        w.offer("s1", OTHER, 5.0, judge)
    assert e.value.code == "live.stream_ended"
    w.register("s1", "u1")  # an ended stream's id may be registered again
    assert [s.id for s in w.streams()] == ["s1", "s2"]


def test_a_refused_frame_does_not_hide_the_next_one(watch):
    w, judge = watch
    w.register("s1", "u1")
    with pytest.raises(SafeholdError):
        w.offer("s1", b"GIF89a" + bytes(100), 10.0, judge)  # sampled, then refused: not an image
    assert w.offer("s1", OTHER, 10.5, judge).sampled  # so the next frame is looked at in its place


def test_one_key_cannot_take_every_stream():
    w = Watch(max_streams=10, max_per_owner=2)
    w.register("a1", "u", owner="apikey:a")
    w.register("a2", "u", owner="apikey:a")
    with pytest.raises(SafeholdError) as e:
        w.register("a3", "u", owner="apikey:a")
    assert (e.value.code, e.value.status, e.value.detail) == ("live.too_many_streams_for_key", 429, {"limit": 2})
    w.register("b1", "u", owner="apikey:b")  # another key still may
    w.end("a1")
    w.register("a3", "u", owner="apikey:a")  # an ended stream frees its place


def test_only_allowed_private_networks_may_be_pulled():
    assert check_url("rtmp://127.0.0.1/live/s1", ["127.0.0.0/8"])
    for url, allow, code in [
        ("rtmp://127.0.0.1/live/s1", [], "live.pull_not_allowed"),
        ("rtsp://10.0.0.5/s1", ["127.0.0.0/8"], "live.pull_not_allowed"),
        ("http://8.8.8.8/s.m3u8", ["8.8.8.0/24"], "live.pull_not_allowed"),
        ("file:///etc/passwd", ["127.0.0.0/8"], "live.invalid_url"),
    ]:
        with pytest.raises(SafeholdError) as e:
            check_url(url, allow)
        assert e.value.code == code, url


def test_the_pull_guard_passes_allowed_hosts_only_whatever_a_playlist_names():
    """An HLS playlist on an allowed host may name segments anywhere: ffmpeg's requests go through the guard."""
    import http.client
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self):
            body = self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    guard = Guard(["127.0.0.1/32"])
    port = server.server_address[1]
    try:

        def get(host):
            c = http.client.HTTPConnection("127.0.0.1", int(guard.url.rsplit(":", 1)[1]), timeout=5)
            c.request("GET", f"http://{host}:{port}/seg.ts?x=1")
            r = c.getresponse()
            return r.status, r.read()

        assert get("127.0.0.1") == (200, b"/seg.ts?x=1")  # passed on in origin form
        assert get("127.0.0.2")[0] == 403 and get("8.8.8.8")[0] == 403 and guard.refused == 2
        assert "-http_proxy" in Puller("http://127.0.0.1/s.m3u8", bool, fps=2, proxy=guard.url).command()
        assert "-http_proxy" not in Puller("rtmp://127.0.0.1/s", bool, fps=2, proxy=guard.url).command()
    finally:
        guard.close()
        server.shutdown()
        server.server_close()


def test_jpegs_are_split_off_ffmpegs_pipe():
    a, b = jpeg(1, (32, 32)), jpeg(2, (32, 32))
    buf = bytearray(a + b[:20])
    assert split_jpegs(buf) == [a] and bytes(buf) == b[:20]
    buf += b[20:]
    assert split_jpegs(buf) == [b] and not buf
