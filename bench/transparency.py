"""Transparency benchmark: the figures, reports and overview of a store filled by ``bench/transparency_data.py``
(1 M cases and 10 M scans by default), on SQLite or PostgreSQL.

What it measures, each step in a fresh process of its own so its peak RSS is its own:

- ``first_refresh``: the daily facts rolled up from nothing (the facts are cleared first), seconds and peak RSS;
- ``incremental_refresh``: a forced refresh right after (the days since the last refresh, as the overview's
  periodic refresh does), seconds;
- ``figures``: ``Facts.figures()`` for the data's first half-year, second half-year and whole year (facts fresh:
  no refresh inside), seconds and peak RSS per period;
- ``report_<format>``: a report for the first half-year in each format of ``transparency.formats.FORMATS``,
  through the service (``svc.transparency.generate``) when there is one, else the figures, the small-cell rule
  (``transparency.privacy``, when there) and the format's ``render``; seconds, peak RSS and bytes;
- ``overview``: the facts refreshed first (``refresh_before``), then ``GET /v1/transparency/overview?period=…``
  against a real ``safehold serve`` with an admin API key, for the first half-year and for the data's last 30 days
  (as a range of days: ``last-30d`` would be relative to today): the first request on its own (``first_ms``), then
  ``--requests`` more one after the other: p50/p99 in ms (skipped with a note when the route answers 404).

The results are written to ``--out`` after every step; a step that fails is recorded with its error (for a 5xx
from the server, the tail of its stderr, kept in ``<home>/bench-server.log``) and the run goes on.

The data's year is read from the store (its first case). Usage::

    python bench/transparency_data.py --home var/bench-transparency
    python bench/transparency.py --home var/bench-transparency --out bench/results/transparency.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from sqlalchemy import delete, func, select  # noqa: E402

from machine_info import machine  # noqa: E402
from safehold.config import Settings  # noqa: E402
from safehold.store.db import open_database  # noqa: E402
from safehold.store.models import Case  # noqa: E402
from safehold.transparency.periods import parse_period  # noqa: E402


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def timed(call) -> tuple[object, float]:
    started = time.perf_counter()
    out = call()
    return out, round(time.perf_counter() - started, 3)


# ---------------------------------------------------------------------------------------------- steps (child)


def data_year(db) -> int:
    with db.session() as s:
        first = s.scalar(select(func.min(Case.opened_at)))
    if first is None:
        raise SystemExit("the store has no cases: fill it with bench/transparency_data.py first")
    return first.year


def step_first_refresh(settings: Settings, year: int) -> dict:
    from safehold.transparency.engine import Facts

    db = open_database(settings, create=False)
    facts = Facts(db)
    if not hasattr(facts, "refresh"):
        return {"skipped": "the engine has no refresh() yet"}
    from safehold.store import models

    with db.session() as s:  # from nothing, however often the benchmark ran before
        for name in ("TransparencyFact", "TransparencyRefresh"):
            s.execute(delete(getattr(models, name)))
    rss = peak_rss_mb()
    days, seconds = timed(facts.refresh)
    return {"seconds": seconds, "days": days, "rss_before_mb": rss, "peak_rss_mb": peak_rss_mb()}


def step_incremental_refresh(settings: Settings, year: int) -> dict:
    from safehold.transparency.engine import Facts

    facts = Facts(open_database(settings, create=False))
    if not hasattr(facts, "refresh"):
        return {"skipped": "the engine has no refresh() yet"}
    days, seconds = timed(lambda: facts.refresh(force=True))
    return {"seconds": seconds, "days": days, "peak_rss_mb": peak_rss_mb()}


def step_figures(settings: Settings, year: int) -> dict:
    from safehold.transparency.engine import Facts

    try:  # facts fresh for the whole run: the figures alone are measured
        facts = Facts(open_database(settings, create=False), refresh_seconds=10**9)
    except TypeError:
        facts = Facts(open_database(settings, create=False))
    out = {}
    for name in (f"{year}-H1", f"{year}-H2", f"{year}"):
        figures, seconds = timed(lambda name=name: facts.figures(parse_period(name)))
        rows = sum(len(f.rows) for f in figures.figures.values())
        out[name] = {"seconds": seconds, "rows": rows, "peak_rss_mb": peak_rss_mb()}
    return out


def step_report(settings: Settings, year: int, fmt: str) -> dict:
    """One report in format ``fmt`` for the first half-year: through the service when it exists."""
    period = f"{year}-H1"
    from safehold.services import Services

    svc = Services(settings)
    try:
        service = getattr(svc, "transparency", None)
        if service is not None:
            meta, seconds = timed(lambda: service.generate(period, fmt, "bench"))
            size = meta.get("content_bytes") if isinstance(meta, dict) else None
            return {"seconds": seconds, "bytes": size, "via": "service", "peak_rss_mb": peak_rss_mb()}
        data, seconds = timed(lambda: _render(svc, settings, period, fmt))
        return {"seconds": seconds, "bytes": len(data), "via": "facts+format", "peak_rss_mb": peak_rss_mb()}
    finally:
        svc.close()


def _render(svc, settings: Settings, period: str, fmt: str) -> bytes:
    """What the service does, without storing: figures, the small-cell rule when present, the format."""
    from safehold.transparency import formats
    from safehold.transparency.engine import Facts

    figures = Facts(svc.db).figures(parse_period(period))
    min_cell = int(getattr(settings, "transparency_min_cell", 0) or 0)
    try:
        from safehold.transparency import privacy

        figures = privacy.suppress(figures, min_cell)
    except (ImportError, AttributeError):
        pass
    context = formats.ReportContext("Bench provider", "Bench service", dt.datetime.now(dt.UTC), min_cell)
    return formats.FORMATS[fmt].render(figures, context)


def run_step(settings: Settings, name: str) -> dict:
    db = open_database(settings, create=False)
    year = data_year(db)
    db.dispose()
    if name.startswith("report_"):
        return step_report(settings, year, name.removeprefix("report_"))
    return globals()[f"step_{name}"](settings, year)


# ---------------------------------------------------------------------------------------------- the run (parent)


def child(args: argparse.Namespace, name: str) -> dict:
    """Run step ``name`` in a new process (its peak RSS is the step's own); its last output line is JSON. A step
    that fails is recorded with its error (the tail of its stderr), and the run goes on."""
    cmd = [sys.executable, __file__, "--home", str(args.home), "--step", name]
    if args.database_url:
        cmd += ["--database-url", args.database_url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=7200)
    if out.returncode:
        tail = out.stderr.strip().splitlines()[-20:]
        return {"error": tail[-1] if tail else f"exit {out.returncode}", "stderr_tail": "\n".join(tail)}
    return json.loads(out.stdout.strip().splitlines()[-1])


def data_days(db) -> tuple[dt.date, dt.date]:
    """The first and last day with a case opened: the data's own calendar, not today's."""
    with db.session() as s:
        first, last = s.execute(select(func.min(Case.opened_at), func.max(Case.opened_at))).one()
    return first.date(), last.date()


def overview(args: argparse.Namespace, periods: list[str]) -> dict:
    """The overview over HTTP against a real server on this store, for each of ``periods``: the facts refreshed
    first (so no request pays for a refresh), then the first request timed on its own and ``--requests`` more for
    p50/p99. A 5xx answer carries the tail of the server's stderr (kept in ``<home>/bench-server.log``)."""
    from safehold.transparency.engine import Facts
    from server import Server

    db = open_database(Settings(home=args.home, database_url=args.database_url), create=False)
    try:
        days, seconds = timed(lambda: Facts(db).refresh(force=True))
    finally:
        db.dispose()
    out: dict = {"refresh_before": {"seconds": seconds, "days": days}}
    env = {"SAFEHOLD_DATABASE_URL": args.database_url} if args.database_url else None
    log = args.home / "bench-server.log"
    log.unlink(missing_ok=True)
    server = Server(args.home, env, log=log)
    try:
        headers = server.key("admin")
        with httpx.Client(headers=headers, timeout=300) as client:
            for period in periods:
                try:
                    out[period] = overview_period(args, server, client, period)
                except Exception as exc:  # noqa: BLE001 (recorded; the other periods still run)
                    out[period] = {"error": f"{type(exc).__name__}: {exc}", "server_log_tail": server.log_tail()}
    finally:
        server.stop()
    return out


def overview_period(args: argparse.Namespace, server, client: httpx.Client, period: str) -> dict:
    url = f"{server.base}/v1/transparency/overview"

    def failed(r: httpx.Response) -> dict:
        out = {"error": f"{r.status_code}: {r.text[:300]}"}
        if r.status_code >= 500:
            out["server_log_tail"] = server.log_tail()
        return out

    first, first_seconds = timed(lambda: client.get(url, params={"period": period}))
    if first.status_code == 404:
        return {"skipped": f"GET /v1/transparency/overview answered 404: {first.text[:200]}"}
    if first.status_code != 200:
        return failed(first)
    latencies = []
    for _ in range(args.requests):
        r, took = timed(lambda: client.get(url, params={"period": period}))
        if r.status_code != 200:
            return failed(r) | {"after_requests": len(latencies)}
        latencies.append(took * 1000)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "first_ms": round(first_seconds * 1000, 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(cuts[98], 1),
        "max_ms": round(max(latencies), 1),
        "bytes": len(first.content),
    }


def save(results: dict, out: Path) -> None:
    """Write what is measured so far: a step that fails later leaves the others on disk."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--home", type=Path, default=ROOT / "var" / "bench-transparency")
    p.add_argument("--database-url", default=None)
    p.add_argument("--requests", type=int, default=200, help="overview requests over HTTP, per period")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "transparency.json")
    p.add_argument("--overview-only", action="store_true", help="only the overview (keeps the other steps in --out)")
    p.add_argument("--step", default=None, help=argparse.SUPPRESS)  # one step, in a child process
    args = p.parse_args()
    if args.database_url:
        os.environ["SAFEHOLD_DATABASE_URL"] = args.database_url
    settings = Settings(home=args.home, database_url=args.database_url)
    if args.step:
        print(json.dumps(run_step(settings, args.step)))
        return

    from safehold.transparency.formats import FORMATS

    db = open_database(settings, create=False)
    year = data_year(db)
    _, last = data_days(db)
    with db.session() as s:
        cases = s.scalar(select(func.count()).select_from(Case))
    db.dispose()
    results: dict = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "database": "postgresql" if args.database_url else "sqlite",
        "cases": cases,
        "year": year,
    }
    if args.overview_only and args.out.exists():  # measure the overview again beside the steps on file
        results = json.loads(args.out.read_text()) | {"overview_date": results["date"], "overview_machine": machine()}
    save(results, args.out)
    steps = ("first_refresh", "incremental_refresh", "figures", *(f"report_{f}" for f in sorted(FORMATS)))
    for name in () if args.overview_only else steps:
        print(f"{name} …", file=sys.stderr, flush=True)
        results[name] = child(args, name)
        save(results, args.out)
    print("overview …", file=sys.stderr, flush=True)
    # the data's last 30 days as a range: ``last-30d`` relative to today would show an empty month
    last_30d = f"{(last - dt.timedelta(days=29)).isoformat()}..{last.isoformat()}"
    try:
        results["overview"] = overview(args, [f"{year}-H1", last_30d])
    except (Exception, SystemExit) as exc:  # noqa: BLE001 (recorded: the steps before stay)
        results["overview"] = {"error": f"{type(exc).__name__}: {exc}"}
    save(results, args.out)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
