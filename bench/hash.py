"""PDQ hashing throughput and fidelity: Safehold (reference and fast modes) against HMA's hasher.

HMA's hasher is ``threatexchange.signal_type.pdq.signal.PdqSignal.hash_from_bytes`` (python-threatexchange
1.2.17: Pillow decode → ``np.asarray`` → ``pdqhash.compute``, i.e. Meta's C++ core at full resolution). Every
method gets the same JPEG bytes and includes decoding. Single thread (NUMBA/OMP/OPENBLAS/MKL threads = 1).

Inputs are benign and generated here: smooth colour fields with shapes and sensor-like noise ("synthetic
photos") and crops of the public-domain bridge reference photo, upscaled; JPEG quality 90.

Fidelity: Hamming distance of each method's hash from the hashes Meta's C++ ``pdq-photo-hasher`` printed for
the 8 reference images (``../shared/data/pdq-reference``), and of ``fast`` (and ``cimg512``) from
``reference`` on the 4000×3000 photos.

Usage: ``.venv/bin/python bench/hash.py [--quick] [--out bench/results/hash.json]``
"""

from __future__ import annotations

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime as _dt  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from machine_info import cpu_model  # noqa: E402
from safehold.signals import pdq  # noqa: E402

REF_DIR = REPO.parent / "shared" / "data" / "pdq-reference"
SIZES = [(256, 256), (1024, 1024), (4000, 3000)]


# --- benign inputs ----------------------------------------------------------------------------------------


def synthetic_photo(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    sw, sh = max(8, w // 8), max(8, h // 8)
    yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
    base = np.zeros((sh, sw, 3), np.float32)
    for c in range(3):
        a, b, cc = rng.uniform(-1, 1, 3)
        base[..., c] = 128 + 60 * np.sin(a * xx / sw * 6 + b * yy / sh * 4 + cc * 3)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(25):
        x0, y0 = int(rng.integers(0, sw)), int(rng.integers(0, sh))
        x1, y1 = x0 + int(rng.integers(2, max(3, sw // 3))), y0 + int(rng.integers(2, max(3, sh // 3)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(1.5)).resize((w, h), Image.BICUBIC)
    arr = np.asarray(img).astype(np.int16) + rng.normal(0, 6, (h, w, 1)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def bridge_photo(w: int, h: int, k: int) -> Image.Image:
    """A different crop (and mirror) of the public-domain bridge photo per ``k``, upscaled, with noise."""
    im = Image.open(REF_DIR / "bridge-1-original.jpg").convert("RGB")
    if k % 2:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    box = (k * 37 % 200, k * 23 % 120, 1600 - k * 41 % 200, 1004 - k * 19 % 120)
    im = im.crop(box).resize((w, h), Image.BICUBIC)
    rng = np.random.default_rng(k)
    arr = np.asarray(im).astype(np.int16) + rng.normal(0, 4, (h, w, 1)).astype(np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def inputs(size: tuple[int, int], n: int) -> list[bytes]:
    w, h = size
    have_bridge = (REF_DIR / "bridge-1-original.jpg").exists()
    out = []
    for i in range(n):
        if have_bridge and i % 2:
            out.append(jpeg(bridge_photo(w, h, i)))
        else:
            out.append(jpeg(synthetic_photo(w, h, i)))
    return out


# --- methods ----------------------------------------------------------------------------------------------


def hma_hash(data: bytes) -> str:
    from threatexchange.signal_type.pdq.signal import PdqSignal

    return PdqSignal.hash_from_bytes(data)


def methods() -> dict:
    out = {
        "safehold_reference": lambda d: pdq.hash_image(d, "reference")[0],
        "safehold_fast": lambda d: pdq.hash_image(d, "fast")[0],
        "safehold_cimg512": lambda d: pdq.hash_image(d, "cimg512")[0],
    }
    try:
        hma_hash(jpeg(synthetic_photo(64, 64, 0)))
        out["hma"] = hma_hash
    except Exception as exc:  # noqa: BLE001
        print(f"HMA hasher unavailable: {exc}", file=sys.stderr)
    return out


def throughput(fn, data: list[bytes], min_seconds: float) -> dict:
    fn(data[0])  # warm-up (numba kernels load from cache / compile here, not in the timing)
    per_image = []
    t0 = time.perf_counter()
    n = 0
    while True:
        for d in data:
            t = time.perf_counter()
            fn(d)
            per_image.append(time.perf_counter() - t)
            n += 1
        if time.perf_counter() - t0 >= min_seconds:
            break
    elapsed = time.perf_counter() - t0
    return {
        "images": n,
        "seconds": round(elapsed, 4),
        "images_per_s": round(n / elapsed, 2),
        "ms_per_image_median": round(statistics.median(per_image) * 1000, 2),
    }


def startup(cache_dir: str | None) -> float:
    """Seconds for a fresh process to import safehold.signals.pdq and hash one small image."""
    code = (
        "import time; t=time.perf_counter(); from safehold.signals.pdq import hash_image; "
        "from PIL import Image; import io; b=io.BytesIO(); "
        "Image.new('RGB',(300,200),(9,99,199)).save(b,'PNG'); "
        "hash_image(b.getvalue()); print(time.perf_counter()-t)"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return round(float(res.stdout.strip().splitlines()[-1]), 3)


def fidelity_reference(fns: dict) -> dict:
    if not (REF_DIR / "expected.csv").exists():
        return {}
    with open(REF_DIR / "expected.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for name, fn in fns.items():
        d = [pdq.hamming(fn((REF_DIR / r["file"]).read_bytes()), r["pdq_hex"]) for r in rows]
        out[name] = {"distances": d, "mean": round(float(np.mean(d)), 2), "max": int(max(d))}
    return out


def machine() -> dict:
    cpu = cpu_model()
    versions = {}
    for pkg in ("numpy", "numba", "pillow", "pdqhash", "threatexchange"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads": 1,
        "versions": versions,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and shorter timing (smoke run)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "hash.json"))
    args = ap.parse_args()
    counts = {(256, 256): 16, (1024, 1024): 6, (4000, 3000): 12} if not args.quick else {s: 2 for s in SIZES}
    min_seconds = 0.3 if args.quick else 2.0

    fns = methods()
    result: dict = {
        "benchmark": "pdq_hash",
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "default_mode": pdq.DEFAULT_MODE,
        "fast_min_side": pdq.FAST_MIN_SIDE,
        "jpeg_quality": 90,
        "throughput": {},
        "fidelity": {},
    }

    with tempfile.TemporaryDirectory() as empty_cache:
        result["startup_seconds"] = {"cold_compile": startup(empty_cache), "cached": startup(None)}

    for size in SIZES:
        data = inputs(size, counts[size])
        key = f"{size[0]}x{size[1]}"
        result["throughput"][key] = {name: throughput(fn, data, min_seconds) for name, fn in fns.items()}
        if size == (4000, 3000):
            ref = [fns["safehold_reference"](d) for d in data]
            dev = {}
            for name in [n for n in fns if n != "safehold_reference"]:
                d = [pdq.hamming(fns[name](x), r) for x, r in zip(data, ref, strict=True)]
                dev[name] = {"distances": d, "mean": round(float(np.mean(d)), 2), "max": int(max(d))}
            result["fidelity"]["vs_safehold_reference_4000x3000"] = dev
            cimg = [fns["safehold_cimg512"](d) for d in data]
            result["fidelity"]["vs_safehold_cimg512_4000x3000"] = {
                name: (lambda d: {"distances": d, "mean": round(float(np.mean(d)), 2), "max": int(max(d))})(
                    [pdq.hamming(fns[name](x), c) for x, c in zip(data, cimg, strict=True)]
                )
                for name in ("safehold_reference", "safehold_fast")
            }

    result["fidelity"]["vs_cpp_reference_hashes"] = fidelity_reference(fns)

    big = result["throughput"].get("4000x3000", {})
    if "hma" in big:
        result["speedup_vs_hma_4000x3000"] = {
            n: round(v["images_per_s"] / big["hma"]["images_per_s"], 2) for n, v in big.items() if n != "hma"
        }

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    names = list(fns)
    print(f"\nPDQ throughput, images/s, single thread, JPEG q90 ({result['machine']['cpu']})")
    print(f"{'size':>10} " + " ".join(f"{n:>20}" for n in names))
    for key, row in result["throughput"].items():
        print(f"{key:>10} " + " ".join(f"{row[n]['images_per_s']:>20.2f}" for n in names))
    if "speedup_vs_hma_4000x3000" in result:
        print("speed-up vs HMA at 4000x3000:", result["speedup_vs_hma_4000x3000"])
    print("\nDistance from Meta's C++ reference hashes (8 bridge images):")
    for n, v in result["fidelity"]["vs_cpp_reference_hashes"].items():
        print(f"  {n:>20}: {v['distances']} mean {v['mean']} max {v['max']}")
    for ref_name in ("reference", "cimg512"):
        print(f"Distance from safehold_{ref_name} on the 4000x3000 photos:")
        for n, v in result["fidelity"].get(f"vs_safehold_{ref_name}_4000x3000", {}).items():
            print(f"  {n:>20}: {v['distances']} mean {v['mean']} max {v['max']}")
    print("start-up (import + first hash), s:", result["startup_seconds"])
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
