"""Hash-and-match over HTTP, side by side with Meta's Hasher-Matcher-Actioner (HMA 2.0, OpenMediaMatch): the same
bank, the same requests, the same machine, the same run, both on the same PostgreSQL, each in its own database.

What it measures (open loop, :mod:`loadgen`), for each server:

- ``hash_lookup``: ``GET /m/lookup?signal_type=pdq&signal=…`` — HMA's API on both (Safehold speaks it);
- ``native_hash_scan``: Safehold's own ``POST /v1/scan`` of a raw hash (JSON ``{signal_type, value}``);
- ``image_lookup``: an uploaded JPEG hashed and looked up — HMA's ``POST /m/lookup`` (multipart ``photo``) on
  both, and Safehold's own ``POST /v1/scan`` (multipart ``file``).

Requests mix hits (a banked hash with 1–8 bits flipped; a banked image) and misses (a fresh random hash; an image
not banked), half each. Before a sweep, the first requests are sent one by one and every answer is checked (hits
match, misses do not), so a fast wrong answer cannot pass. For each part: the highest rate with p99 <= 50 ms and
no error (:func:`loadgen.sweep`), p50/p99 per rate, the server's CPU ms per request (its whole process tree), its
RSS after the part, and the ratio Safehold/HMA of the highest rates.

The bank: ``--bank-size`` random PDQ hashes (fixed seed) plus the hashes of the banked images. HMA gets them by
direct import into its tables (it has no bulk API: its curation API adds one content per request), then its own
index build (``flask build_indices``, HMA's "build_index" background task run once) and its matcher's index
cache; Safehold by ``safehold bank import`` (its bulk path). Both loads are skipped when the bank is already there
with the same size and seed (``--reload`` forces them), since loading 1 M takes minutes: the JSON says how long.

HMA is not on PyPI: the operator installs it outside this repository, from HMA's own repository, and this script
only configures and runs it. ``--hma-python`` is the Python of the virtualenv HMA runs in (its dependencies and
gunicorn; HMA's package installs no module, so, as in HMA's Docker image, its code runs from its ``src``), and
``--hma-src`` the checkout's ``hasher-matcher-actioner/src``. The script writes HMA's config (``OMM_CONFIG``: a
Python file; hasher, matcher and curator roles, index cache on, no fetcher, no UI), creates its database, runs
its migrations (``flask --app OpenMediaMatch.app db upgrade``) and serves it with gunicorn as HMA's image does,
with ``--workers`` processes (and ``--hma-threads`` threads each: gunicorn's gthread worker). Safehold is one
``safehold serve`` process (uvicorn; async routes on its event loop, sync ones on its thread pool).

Usage (PostgreSQL admin URL, trust auth, as in the tests):
    PYTHONPATH=src .venv/bin/python bench/hma_http.py --hma-python /tmp/hma-venv/bin/python \\
        --hma-src /tmp/hma-src/hasher-matcher-actioner/src --bank-size 1000000 --seconds 20 \\
        --rates 100,200,400,800,1200,1600,2400,3200 --out bench/results/hma_http.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psycopg
from PIL import Image, ImageDraw

import loadgen
from machine_info import machine
from server import Server, free_port

REPO = Path(__file__).resolve().parent.parent
BANK = "hma-bench"
SEED = 20261204
#: HMA's config (OMM_CONFIG): the roles a one-box HMA runs, its matcher's index cache refreshed often.
OMM_CONFIG = """\
from OpenMediaMatch.storage.postgres.impl import DefaultOMMStore
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.content_type.photo import PhotoContent
from threatexchange.content_type.video import VideoContent

DATABASE_URI = {uri!r}
PRODUCTION = True
ROLE_HASHER = True
ROLE_MATCHER = True
ROLE_CURATOR = True
UI_ENABLED = False
TASK_FETCHER = False
TASK_INDEXER = False
TASK_INDEX_CACHE = True
TASK_INDEX_CACHE_INTERVAL_SECONDS = 5
INDEX_CACHE_MAX_STALE_SEC = 0
STORAGE_IFACE_INSTANCE = DefaultOMMStore(
    signal_types=[PdqSignal, VideoMD5Signal], content_types=[PhotoContent, VideoContent], exchange_types=[]
)
"""


# ------------------------------------------------------------------ data


def bank_hashes(size: int) -> list[str]:
    """``size`` random 256-bit PDQ hashes, the same for the same size (fixed seed)."""
    raw = np.random.default_rng(SEED).integers(0, 256, (size, 32), dtype=np.uint8)
    return [row.tobytes().hex() for row in raw]


def flipped(value: str, bits: int, rng: random.Random) -> str:
    n = int(value, 16)
    for b in rng.sample(range(256), bits):
        n ^= 1 << b
    return f"{n:064x}"


def photo(seed: int) -> bytes:
    """A benign 640×480 JPEG: a colour gradient with coloured boxes and discs, different for each seed."""
    rng = random.Random(seed)
    x = np.linspace(0, 1, 640)[None, :, None]
    y = np.linspace(0, 1, 480)[:, None, None]
    tint = np.array([rng.random() for _ in range(6)]).reshape(2, 1, 1, 3)
    img = Image.fromarray((255 * (x * tint[0] + y * tint[1]) / 2).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = rng.randrange(600), rng.randrange(440)
        box = [x0, y0, x0 + rng.randrange(20, 240), y0 + rng.randrange(20, 200)]
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=88)
    return buf.getvalue()


def multipart(field: str, data: bytes) -> tuple[bytes, str]:
    boundary = "hmabench7d93f0"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{field}.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


class Workload:
    """The bank and the queries, made once and sent alike to both servers."""

    def __init__(self, bank_size: int, images: int):
        from safehold.signals import pdq

        rng = random.Random(SEED)
        self.photos = [photo(i) for i in range(images)]
        self.banked_photos = images // 2  # the first half is banked: hits; the rest are misses
        photo_hashes = [pdq.hash_image(p)[0] for p in self.photos[: self.banked_photos]]
        self.hashes = bank_hashes(bank_size - len(photo_hashes)) + photo_hashes
        #: (hash, expected hit) — alternating hit (a banked hash, 1–8 bits flipped) and miss (a fresh hash).
        self.queries = [
            (flipped(rng.choice(self.hashes), rng.randint(1, 8), rng), True)
            if i % 2 == 0
            else (f"{rng.getrandbits(256):064x}", False)
            for i in range(4096)
        ]

    def photo(self, i: int) -> tuple[bytes, bool]:
        """Alternately a banked photo (hit) and one that is not (miss)."""
        k = (i // 2) % self.banked_photos
        return (self.photos[k], True) if i % 2 == 0 else (self.photos[self.banked_photos + k], False)


# ------------------------------------------------------------------ HMA


def _admin(url: str, db: str) -> str:
    return url.rsplit("/", 1)[0] + f"/{db}"


def ensure_database(admin_url: str, name: str, reload: bool) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if reload:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _status(url: str) -> int | None:
    """The status ``url`` answers, or None while nothing listens."""
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


class Hma:
    """HMA configured on ``db`` and served by gunicorn."""

    def __init__(self, args, db_url: str, work: Path):
        work.mkdir(parents=True, exist_ok=True)
        self.python, self.src, self.url = args.hma_python, args.hma_src, db_url
        config = work / "omm_config.py"
        uri = db_url.replace("postgresql://", "postgresql+psycopg2://")
        config.write_text(OMM_CONFIG.format(uri=uri))
        self.env = {**os.environ, "OMM_CONFIG": str(config), "PYTHONPATH": str(self.src)}
        self.env.pop("SAFEHOLD_DATABASE_URL", None)
        self.log = work / "hma.log"
        self.proc: subprocess.Popen | None = None

    def flask(self, *cmd: str, migrations: bool = False) -> None:
        env = {**self.env, **({"MIGRATION_COMMAND": "1"} if migrations else {})}
        argv = [str(Path(self.python).parent / "flask"), "--app", "OpenMediaMatch.app", *cmd]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=3600)
        if out.returncode:
            raise SystemExit(f"HMA: {' '.join(cmd)} failed:\n{out.stderr[-3000:]}")

    def migrate(self) -> None:
        self.flask("db", "upgrade", "--directory", str(Path(self.src) / "OpenMediaMatch/migrations"), migrations=True)

    def banked(self) -> int:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM content_signal s JOIN bank_content c ON c.id = s.content_id"
                " JOIN bank b ON b.id = c.bank_id WHERE b.name = %s AND s.signal_type = 'pdq'",
                (BANK,),
            ).fetchone()
        return row[0]

    def load(self, hashes: list[str]) -> dict:
        """Direct import into HMA's tables (bank, bank_content, content_signal) with COPY, then HMA's index
        build; times both."""
        start = time.perf_counter()
        with psycopg.connect(self.url) as conn:
            conn.execute("DELETE FROM bank WHERE name = %s", (BANK,))
            bank_id = conn.execute(
                "INSERT INTO bank (name, enabled_ratio) VALUES (%s, 1.0) RETURNING id", (BANK,)
            ).fetchone()[0]
            first = conn.execute(
                "SELECT setval('bank_content_id_seq', nextval('bank_content_id_seq') + %s)", (len(hashes),)
            ).fetchone()[0] - len(hashes)
            with conn.cursor().copy("COPY bank_content (id, bank_id, disable_until_ts) FROM STDIN") as copy:
                for i in range(len(hashes)):
                    copy.write_row((first + i, bank_id, 1))
            with conn.cursor().copy("COPY content_signal (content_id, signal_type, signal_val) FROM STDIN") as copy:
                for i, value in enumerate(hashes):
                    copy.write_row((first + i, "pdq", value))
        loaded = time.perf_counter() - start
        self.flask("build_indices")
        return {"import_s": round(loaded, 1), "index_build_s": round(time.perf_counter() - start - loaded, 1)}

    def start(self, workers: int, threads: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        argv = [self.python, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
                "--threads", str(threads), "--timeout", "120", "OpenMediaMatch.app:create_app()"]  # fmt: skip
        self._log = open(self.log, "ab")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(argv, env=self.env, cwd=self.log.parent, stdout=self._log, stderr=self._log)
        # The matcher loads its index (1 M hashes: minutes) before /status answers 200.
        for _ in range(900):
            if self.proc.poll() is not None:
                break
            status = _status(f"{self.base}/status")
            if status == 200:
                return
            time.sleep(1)
        raise SystemExit(f"HMA did not start; see {self.log}")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self._log.close()


# ------------------------------------------------------------------ Safehold


def safehold_bank(env: dict, hashes: list[str], reload: bool, work: Path) -> dict | None:
    """The Safehold bank, imported with ``safehold bank import`` unless already there at this size."""

    def cli(*args: str) -> str:
        out = subprocess.run([sys.executable, "-m", "safehold", *args], env=env, capture_output=True, text=True,
                             timeout=7200)  # fmt: skip
        if out.returncode:
            raise SystemExit(f"safehold {' '.join(args)}: {out.stderr[-3000:]}")
        return out.stdout

    cli("db", "upgrade")
    banks = {b["name"]: b for b in json.loads(cli("bank", "list", "--json"))}
    if not reload and banks.get(BANK, {}).get("entries") == len(hashes):
        return None
    if BANK in banks:
        cli("bank", "delete", BANK, "--yes")
    cli("bank", "create", BANK)
    listing = work / "bank.txt"
    listing.write_text("\n".join(hashes) + "\n")
    start = time.perf_counter()
    cli("bank", "import", BANK, str(listing), "--format", "list", "--signal-type", "pdq")
    listing.unlink()
    return {"import_s": round(time.perf_counter() - start, 1)}


# ------------------------------------------------------------------ measuring


def is_hit(body: bytes) -> bool:
    """Whether an answer reports a match: HMA's ``{bank: [...]}`` / ``{pdq: {bank: [...]}}``, or Safehold's scan."""
    answer = json.loads(body)
    if "verdict" in answer:
        return answer["verdict"] == "match"
    if "pdq" in answer:
        answer = answer["pdq"]
    return bool(answer.get(BANK))


def check(base: str, token: str, make, expected, n: int = 40) -> None:
    """Send the first ``n`` requests one by one; every answer must be a 200 with the expected hit or miss."""
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(n):
            req = make(i)
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            if req.method == "GET":
                r = client.get(req.path, headers=headers)
            else:
                r = client.post(req.path, content=req.body, headers={**headers, "Content-Type": req.content_type})
            if r.status_code != 200 or is_hit(r.content) != expected(i):
                raise SystemExit(f"{base}{req.path[:60]}: request {i} answered {r.status_code} {r.text[:300]}")


def part(name: str, base: str, token: str, pid: int, make, expected, args) -> dict:
    check(base, token, make, expected)
    runs, best = loadgen.sweep(base, token, make, args.rates, args.seconds, pid=pid, p99_ms=args.p99_ms)
    print(f"  {name}: best {best}/s; " + ", ".join(f"{r['rate']}/s p99 {r['p99_ms']} ms" for r in runs), flush=True)
    return {"best_rate": best, "runs": runs, "rss_mb": loadgen.rss_mb(pid)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bank-size", type=int, default=1_000_000)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--rates", default="50,100,200,400,800,1200,1600,2400,3200")
    p.add_argument("--p99-ms", type=float, default=50.0)
    p.add_argument("--images", type=int, default=32, help="Distinct JPEGs (half banked).")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres", help="Admin URL.")
    p.add_argument("--hma-python", required=True, help="Python of the virtualenv HMA's dependencies are in.")
    p.add_argument("--hma-src", required=True, type=Path, help="HMA's checkout: hasher-matcher-actioner/src.")
    p.add_argument("--workers", type=int, default=1, help="Server processes (HMA: gunicorn workers).")
    p.add_argument("--hma-threads", type=int, default=4, help="Threads per HMA gunicorn worker.")
    p.add_argument("--work", type=Path, default=Path("/tmp/hma-http-bench"), help="Homes, configs and logs.")
    p.add_argument("--parts", default="hash_lookup,native_hash_scan,image_lookup")
    p.add_argument("--reload", action="store_true", help="Load both banks again even if they are there.")
    p.add_argument("--out", type=Path, default=REPO / "bench/results/hma_http.json")
    args = p.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    parts = set(args.parts.split(","))
    if args.workers != 1:
        raise SystemExit("--workers > 1 needs `safehold serve --workers`; this script serves one process each")

    result: dict = {
        "benchmark": "HMA-compatible hash lookup over HTTP, Safehold vs HMA",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "machine": machine(),
        "uptime_load_before": os.getloadavg(),
        "bank_size": args.bank_size,
        "seconds_per_rate": args.seconds,
        "p99_bound_ms": args.p99_ms,
        "workers": args.workers,
        "hma_threads": args.hma_threads,
        "setup": {},
    }
    t0 = time.perf_counter()
    work = Workload(args.bank_size, args.images)
    result["setup"]["make_data_s"] = round(time.perf_counter() - t0, 1)

    hma_db, sh_db = _admin(args.database_url, "hma_bench"), _admin(args.database_url, "safehold_hma_bench")
    ensure_database(args.database_url, "hma_bench", args.reload)
    ensure_database(args.database_url, "safehold_hma_bench", args.reload)
    hma = Hma(args, hma_db, args.work / "hma")
    hma.migrate()
    result["setup"]["hma_load"] = hma.load(work.hashes) if hma.banked() != len(work.hashes) else "reused"
    home = args.work / "safehold"
    home.mkdir(parents=True, exist_ok=True)
    env = {"SAFEHOLD_DATABASE_URL": sh_db.replace("postgresql://", "postgresql+psycopg://")}
    loaded = safehold_bank({**os.environ, "SAFEHOLD_HOME": str(home), **env}, work.hashes, args.reload, args.work)
    result["setup"]["safehold_load"] = loaded or "reused"
    print(f"setup: {result['setup']}", flush=True)

    t0 = time.perf_counter()
    safehold = Server(home, env=env, log=args.work / "safehold.log", start_timeout=1800)
    token = safehold.token("platform")
    t1 = time.perf_counter()
    hma.start(args.workers, args.hma_threads)
    result["setup"]["start_s"] = {"safehold": round(t1 - t0, 1), "hma": round(time.perf_counter() - t1, 1)}
    servers = {"safehold": (safehold.base, token, safehold.proc.pid), "hma": (hma.base, "", hma.proc.pid)}
    result["rss_mb_idle"] = {name: loadgen.rss_mb(pid) for name, (_, _, pid) in servers.items()}

    def lookup(i: int) -> loadgen.Request:
        signal = work.queries[i % len(work.queries)][0]
        return loadgen.Request(f"/m/lookup?signal_type=pdq&signal={signal}", method="GET")

    def scan(i: int) -> loadgen.Request:
        signal = work.queries[i % len(work.queries)][0]
        return loadgen.Request("/v1/scan", json.dumps({"signal_type": "pdq", "value": signal}).encode())

    def upload(field: str, path: str):
        bodies = [multipart(field, work.photo(i)[0]) for i in range(2 * work.banked_photos)]
        return lambda i: loadgen.Request(path, bodies[i % len(bodies)][0], content_type=bodies[i % len(bodies)][1])

    def hash_hit(i: int) -> bool:
        return work.queries[i % len(work.queries)][1]

    def photo_hit(i: int) -> bool:
        return work.photo(i % (2 * work.banked_photos))[1]

    plan = {
        "hash_lookup": [(s, "GET /m/lookup", lookup, hash_hit) for s in ("hma", "safehold")],
        "native_hash_scan": [("safehold", "POST /v1/scan (hash)", scan, hash_hit)],
        "image_lookup": [
            ("hma", "POST /m/lookup (photo)", upload("photo", "/m/lookup"), photo_hit),
            ("safehold", "POST /m/lookup (photo)", upload("photo", "/m/lookup"), photo_hit),
            ("safehold", "POST /v1/scan (file)", upload("file", "/v1/scan"), photo_hit),
        ],
    }
    result["parts"] = {}
    try:
        for name, entries in plan.items():
            if name not in parts:
                continue
            print(name, flush=True)
            out = result["parts"][name] = {}
            for system, route, make, expected in entries:
                base, key, pid = servers[system]
                out[f"{system}: {route}"] = part(f"{system} {route}", base, key, pid, make, expected, args)
            hma_best = next((v["best_rate"] for k, v in out.items() if k.startswith("hma")), None)
            for key, value in out.items():
                if key.startswith("safehold") and hma_best and value["best_rate"]:
                    value["ratio_to_hma"] = round(value["best_rate"] / hma_best, 2)
    finally:
        safehold.stop()
        hma.stop()
    result["uptime_load_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
