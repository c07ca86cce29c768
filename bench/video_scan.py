"""Upload video scanning speed: minutes of 1080p video scanned per minute, Safehold against Meta's ``vpdq``.

Videos: generated with ffmpeg (benign lavfi patterns, H.264, 1920×1080, 30 fps): ``cuts`` has three scenes
(testsrc2, moving gradients, HD colour bars) and a generated picture pasted full-frame for 2 s at t = 33 s (the
"known image inside a video" case); ``still`` is one testsrc2 scene (few cuts, keyframes only at the GOP).

Measured, each on each video, interleaved round after round (a load spike of the shared machine hits all alike):

- ``vpdq_tool``: the peer, Meta's ``vpdq`` package as installed (``vpdq.computeHash``, one frame a second, one
  decoding thread; the package ships no command-line tool, its Python API is the tool);
- ``safehold_vpdq``: Safehold's vPDQ hasher (the same ``vpdq`` library in an isolated child process with probe,
  timeout and limits);
- ``safehold_keyframes``: keyframes and scene changes (``KeyframeSampler``, one ffmpeg decoding thread, frames
  scaled to 512 px) PDQ-hashed — the new "video against image banks" part;
- ``safehold_keyframes_only``: the same with ``scenes=False`` (``-skip_frame nokey``: only keyframes decoded);
- ``safehold_scan``: what an upload scan does — vPDQ then keyframes + scenes, one after the other.

Figure: minutes of video per minute of wall-clock time (``video seconds / wall seconds``), and CPU seconds per
video minute (this process and its children). Also recorded: frames hashed per video and the PDQ distance of the
best frame to the pasted picture (found when ≤ 31).

Usage: ``.venv/bin/python bench/video_scan.py [--seconds 60] [--rounds 3] [--out bench/results/video_scan.json]``
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from tests.media import ellipses  # noqa: E402 - the same generated picture the tests bank

from machine_info import machine  # noqa: E402
from safehold.signals.keyframes import KeyframeSampler  # noqa: E402
from safehold.signals.pdq import hamming, hash_image  # noqa: E402
from safehold.signals.vpdq import VpdqHasher  # noqa: E402

W, H, FPS = 1920, 1080, 30


def make_videos(d: Path, seconds: int) -> dict[str, Path]:
    ffmpeg = shutil.which("ffmpeg")
    picture = d / "picture.png"
    picture.write_bytes(ellipses(size=(W, H)))
    part = max(1, seconds // 3)
    enc = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-r", str(FPS)]
    cuts, still = d / "cuts.mp4", d / "still.mp4"
    at = min(33, seconds - 3)
    graph = f"[0][1][2]concat=n=3:v=1:a=0[v];[3]scale={W}:{H}[p];[v][p]overlay=enable='between(t,{at},{at + 2})'"
    src = [
        "-f", "lavfi", "-i", f"testsrc2=s={W}x{H}:r={FPS}:d={part}",
        "-f", "lavfi", "-i", f"gradients=s={W}x{H}:r={FPS}:d={part}:speed=0.05",
        "-f", "lavfi", "-i", f"smptehdbars=s={W}x{H}:r={FPS}:d={seconds - 2 * part}",
        "-i", str(picture),
    ]  # fmt: skip
    subprocess.run([ffmpeg, "-v", "error", "-y", *src, "-filter_complex", graph, *enc, str(cuts)], check=True)
    lavfi = ["-f", "lavfi", "-i", f"testsrc2=s={W}x{H}:r={FPS}:d={seconds}"]
    subprocess.run([ffmpeg, "-v", "error", "-y", *lavfi, *enc, str(still)], check=True)
    return {"cuts": cuts, "still": still}


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def keyframe_hashes(path: Path, scenes: bool) -> list[tuple[float, str]]:
    sampler = KeyframeSampler(scenes=scenes, timeout_seconds=3600)
    return [(f.timestamp, hash_image(f.image)[0]) for f in sampler.frames_of_path(str(path))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=int, default=60, help="length of each generated video")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench/results/video_scan.json"))
    args = ap.parse_args()
    import vpdq

    hasher = VpdqHasher(thread_count=1, timeout_seconds=3600, max_duration_seconds=24 * 3600)
    picture_pdq = hash_image(ellipses(size=(W, H)))[0]
    with tempfile.TemporaryDirectory(prefix="bench-video-") as tmp:
        t = time.perf_counter()
        videos = make_videos(Path(tmp), args.seconds)
        generated = time.perf_counter() - t
        frames: dict = {}

        def peer(p: Path):
            return vpdq.computeHash(str(p), seconds_per_hash=1.0, thread_count=1)

        def ours_keyframes(p: Path, scenes: bool = True):
            found = keyframe_hashes(p, scenes)
            key = f"{p.stem}:{'scenes' if scenes else 'keyframes_only'}"
            best = min(found, key=lambda f: hamming(f[1], picture_pdq))
            frames[key] = {
                "frames": len(found),
                "best": {"timestamp": best[0], "distance": hamming(best[1], picture_pdq)},
            }
            return found

        configs = {
            "vpdq_tool": peer,
            "safehold_vpdq": lambda p: hasher.hash_file(p),
            "safehold_keyframes": ours_keyframes,
            "safehold_keyframes_only": lambda p: ours_keyframes(p, scenes=False),
            "safehold_scan": lambda p: (hasher.hash_file(p), ours_keyframes(p)),
        }
        walls: dict = {(c, v): [] for c in configs for v in videos}
        cpus: dict = {(c, v): [] for c in configs for v in videos}
        for r in range(args.rounds):
            for v, path in videos.items():
                for c, fn in configs.items():
                    c0, t0 = cpu_seconds(), time.perf_counter()
                    fn(path)
                    walls[(c, v)].append(time.perf_counter() - t0)
                    cpus[(c, v)].append(cpu_seconds() - c0)
                    print(f"round {r + 1} {v:6} {c:26} {walls[(c, v)][-1]:7.2f} s", flush=True)
    minutes = args.seconds / 60
    results: dict = {}
    for (c, v), ws in walls.items():
        wall = statistics.median(ws)
        results.setdefault(c, {})[v] = {
            "wall_seconds_median": round(wall, 3),
            "wall_seconds": [round(w, 3) for w in ws],
            "video_minutes_per_minute": round(args.seconds / wall, 2),
            "cpu_seconds_per_video_minute": round(statistics.median(cpus[(c, v)]) / minutes, 2),
        }
    out = {
        "benchmark": "video_scan",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {"vpdq": metadata.version("vpdq"), "ffmpeg": _ffmpeg_version()},
        "videos": {"width": W, "height": H, "fps": FPS, "seconds": args.seconds, "codec": "h264 veryfast"},
        "generation_seconds": round(generated, 1),
        "rounds": args.rounds,
        "results": results,
        "frames": frames,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({c: {v: x["video_minutes_per_minute"] for v, x in r.items()} for c, r in results.items()}))
    print(json.dumps(frames))


def _ffmpeg_version() -> str:
    line = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    return line.split(" ")[2] if line.count(" ") >= 2 else line


if __name__ == "__main__":
    main()
