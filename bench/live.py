"""Live streams: many pushed streams at once against a real ``safehold serve``; how fast a sampled frame gets its
verdict, whether a known image shown for two seconds is caught, how soon the interrupt webhook arrives, and the
server's CPU per stream.

Each of ``--streams`` streams (registered through the API, push source) sends one frame every ``1 / --push-fps``
seconds for ``--seconds`` — open loop (:mod:`loadgen`): frames leave on schedule whether or not earlier ones have
been answered, and each one's capture time *is* its scheduled time, so a latency is from capture to verdict. The
server samples at its baseline rate (0.5 frames/s, the target of issue [13]), so at 1 frame/s pushed half of the
frames are answered ``skipped`` without being decoded.

Frames are benign synthetic "photos" (tests/media.py), 640×360 JPEG. Each stream shows the banked image for
``--shown`` seconds once, at a random moment, re-encoded differently per stream (full-screen, a slight crop,
stretched to 16:9, a brightness shift, another JPEG quality: what a re-streamed picture looks like). A stream
counts as caught when a frame of that window is answered ``match``; the interrupt webhook's arrival at a local
receiver is timed from the capture time of the matching frame.

Usage: ``.venv/bin/python bench/live.py [--streams 200] [--seconds 60] [--push-fps 1] [--shown 2]
[--out bench/results/live.json]`` (SQLite in a temporary home).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from PIL import Image, ImageEnhance

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.media import photo  # noqa: E402

import loadgen  # noqa: E402
from machine_info import machine  # noqa: E402
from server import Server  # noqa: E402

SIZE = (640, 360)


def jpeg(img: Image.Image, quality: int = 80) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def shown_in_stream(known: Image.Image, rng: random.Random) -> bytes:
    """The banked picture as a stream would show it full-screen: up to 1 % cropped at each edge (overscan),
    stretched to the stream's 16:9, brightness shifted ±15 %, re-encoded at JPEG quality 55–85. (PDQ does not
    survive letterboxing or crops of several per cent: docs/live.md says so.)"""
    crop = rng.uniform(0, 0.01)
    w, h = known.size
    pic = known.crop((int(w * crop), int(h * crop), int(w * (1 - crop)), int(h * (1 - crop))))
    pic = ImageEnhance.Brightness(pic.resize(SIZE, Image.BILINEAR)).enhance(rng.uniform(0.85, 1.15))
    return jpeg(pic, quality=rng.randint(55, 85))


class Receiver:
    """The platform's webhook endpoint: when each interrupt arrived (wall clock) and for which stream/capture."""

    def __init__(self):
        self.arrivals: list[tuple[float, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.arrivals.append((time.time(), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, int(round(q / 100 * len(s))) - 1))] * 1000, 1)


def spread(values: list[float]) -> dict:
    return {"n": len(values), "p50": pct(values, 50), "p99": pct(values, 99), "max": pct(values, 100)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--push-fps", type=float, default=1.0)
    ap.add_argument("--shown", type=float, default=2.0, help="seconds the banked image is shown in each stream")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/live.json")
    args = ap.parse_args()
    rng = random.Random(13)
    known = photo(4242, (800, 600))
    pool = [jpeg(photo(1000 + i, SIZE)) for i in range(64)]
    shows = [shown_in_stream(known, rng) for _ in range(args.streams)]
    # Each stream shows the known picture once, from a random frame on: `shown` seconds of pushed frames.
    per_window = max(1, round(args.shown * args.push_fps))
    frames_per_stream = int(args.seconds * args.push_fps)
    starts = [rng.randrange(5, frames_per_stream - per_window - 5) for _ in range(args.streams)]

    with tempfile.TemporaryDirectory(prefix="safehold-live-bench-") as tmp:
        home = Path(tmp)
        server = Server(home, env={"SAFEHOLD_RATE_LIMIT": "0"}, log=home / "server.log")
        try:
            admin, platform = server.key("admin"), server.token("platform")
            with httpx.Client(base_url=server.base, timeout=30) as c:
                c.post("/v1/banks", json={"name": "known"}, headers=admin).raise_for_status()
                files = {"file": ("known.jpg", jpeg(known, 95), "image/jpeg")}
                c.post("/v1/banks/known/files", files=files, headers=admin).raise_for_status()
                receiver = Receiver()
                c.post("/v1/webhooks", json={"name": "platform", "url": receiver.url}, headers=admin).raise_for_status()
                auth = {"Authorization": f"Bearer {platform}"}
                for n in range(args.streams):
                    body = {"id": f"s{n}", "broadcaster": f"u{n}", "source": "push"}
                    c.post("/v1/live/streams", json=body, headers=auth).raise_for_status()

            rate = args.streams * args.push_fps
            wall0 = time.time() + 0.05  # loadgen's first request is due 50 ms after it starts
            answers: dict[int, dict] = {}
            latency: dict[int, float] = {}
            t_begin = time.perf_counter() + 0.05

            def make(i: int) -> loadgen.Request:
                n, k = i % args.streams, i // args.streams
                captured = wall0 + i / rate
                data = shows[n] if starts[n] <= k < starts[n] + per_window else pool[(i * 7 + n) % len(pool)]
                return loadgen.Request(f"/v1/live/streams/s{n}/frames?captured_at={captured:.6f}", data,
                                       content_type="image/jpeg")  # fmt: skip

            def on_answer(i: int, status: int, body: bytes) -> None:
                latency[i] = time.perf_counter() - (t_begin + i / rate)
                answers[i] = json.loads(body) if status == 200 else {"status": status}

            cpu0 = loadgen.cpu_seconds(server.proc.pid)
            result = loadgen.run_sync(server.base, platform, make, rate, args.seconds, timeout=30, on_answer=on_answer)
            cpu = loadgen.cpu_seconds(server.proc.pid) - cpu0
            time.sleep(3)  # the last webhooks
            rss = loadgen.rss_mb(server.proc.pid)
        finally:
            server.stop()

    sampled = [i for i, a in answers.items() if a.get("sampled")]
    skipped = [i for i, a in answers.items() if a.get("sampled") is False]
    match = [i for i in sampled if answers[i].get("verdict") == "match"]
    clear = [i for i in sampled if answers[i].get("verdict") != "match"]
    caught = set()
    false_matches = 0
    for i in match:
        n, k = i % args.streams, i // args.streams
        if starts[n] <= k < starts[n] + per_window:
            caught.add(n)
        else:
            false_matches += 1
    interrupts = {}
    for arrived, payload in receiver.arrivals:
        params = payload.get("action", {}).get("params", {})
        if payload.get("action", {}).get("kind") == "interrupt":
            interrupts.setdefault(params["stream_id"], arrived - params["captured_at"])
    webhook = list(interrupts.values())
    out = {
        "benchmark": "live",
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "streams": args.streams,
        "seconds": args.seconds,
        "push_fps_per_stream": args.push_fps,
        "sampling_fps_baseline": 0.5,
        "frames_pushed": result.sent,
        "errors": dict((str(k), v) for k, v in result.statuses.items() if not str(k).startswith("2")),
        "frames_sampled": len(sampled),
        "frames_skipped": len(skipped),
        "sampled_per_second": round(len(sampled) / args.seconds, 1),
        "capture_to_verdict_ms": {
            "sampled_no_match": spread([latency[i] for i in clear]),
            "sampled_match": spread([latency[i] for i in match]),
            "all_sampled": spread([latency[i] for i in sampled]),
            "skipped": spread([latency[i] for i in skipped]),
        },
        "detection": {
            "shown_seconds": args.shown,
            "streams_showing": args.streams,
            "caught": len(caught),
            "probability": round(len(caught) / args.streams, 4),
            "false_matches": false_matches,
        },
        "interrupt_webhook_ms_from_capture": {
            "received": len(webhook),
            "p50": pct(webhook, 50),
            "p99": pct(webhook, 99),
            "max": pct(webhook, 100),
            "within_1s": round(sum(1 for w in webhook if w <= 1.0) / len(webhook), 4) if webhook else None,
        },
        "server_cpu": {
            "seconds": round(cpu, 1),
            "cores_used": round(cpu / args.seconds, 3),
            "per_stream_percent_of_a_core": round(100 * cpu / args.seconds / args.streams, 3),
            "ms_per_sampled_frame_all_in": round(1000 * cpu / max(1, len(sampled)), 2),
        },
        "server_rss_mb": round(rss, 1),
        "mean_answer_bytes": round(statistics.mean(len(json.dumps(a)) for a in answers.values()), 1) if answers else 0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
