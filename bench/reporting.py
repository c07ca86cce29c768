"""Reporting and evidence benchmark: confirmed cases to filed CyberTipline reports, in process, against the local
CyberTipline stand-in on loopback (NCMEC's real API is not reachable from here, and must never get test reports).

What it measures, in one run on one machine (embedded SQLite by default, ``--database-url`` for PostgreSQL):

- drafting: ``draft_from_case`` for every confirmed case (one report per account, ``--files`` cases bundled per
  report), which preserves each file in the encrypted evidence store: cases/s and evidence MB/s;
- documents: the report XML built from the database and validated against the schema, documents/s;
- filing: ``submit(wait=True)`` per report (``/submit``, ``/upload`` and ``/fileinfo`` per file, ``/finish``),
  latency percentiles and reports/s, checked at the stand-in: every report finished once, every file once;
- crash recovery: ``--chaos`` more reports, each filed by a run that dies at a random step (between any two
  requests) or loses a random answer from the stand-in, then resumed until finished; counts duplicate reports
  and duplicate files at the stand-in (both must be 0) and how many runs had to retract and start again;
- evidence: a law-enforcement export of one report (MB/s, checksum verified), then the retention purge one year
  and a month later (items/s), checked: every blob gone, one proof record per item.

No peer is named for this capability: Meta's HMA has no reporting, and ROOST Coop's NCMEC reporting needs its
Docker stack, which this machine cannot run.

Usage::

    python bench/reporting.py --reports 200 --files 2 --chaos 60 --out bench/results/reporting.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from sqlalchemy import func, select, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.media import jpeg  # noqa: E402
from tests.reporting.helpers import confirmed_case  # noqa: E402

from machine_info import cpu_model  # noqa: E402
from safehold.config import Settings  # noqa: E402
from safehold.reporting.cybertipline.standin import StandIn  # noqa: E402
from safehold.reporting.filing import Filer  # noqa: E402
from safehold.services import Services  # noqa: E402
from safehold.store.models import AuditRecord, EvidenceItem, Report  # noqa: E402

ACTOR = "legal:bench"
#: Steps a filing run can die between (the filer's hook points).
POINTS = [
    "leased",
    "submit:sent",
    "submit:saved",
    "upload:started",
    "upload:sent",
    "upload:saved",
    "fileinfo:sent",
    "fileinfo:saved",
    "document:saved",
    "finish:sent",
]
#: Answers the stand-in can lose after doing the work (the "crashed before we heard back" case).
LOST = ["submit", "upload", "fileinfo", "finish"]


class Crash(BaseException):
    """The filing process dies here (a BaseException: no handler in the filer sees it)."""


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))] if values else float("nan")


def latency(values: list[float], seconds: float) -> dict:
    return {
        "n": len(values),
        "per_second": round(len(values) / seconds, 1) if seconds else None,
        "p50_ms": round(pct(values, 50) * 1000, 2),
        "p99_ms": round(pct(values, 99) * 1000, 2),
    }


def audited(svc: Services, action: str) -> int:
    with svc.db.session() as s:
        return s.scalar(select(func.count()).select_from(AuditRecord).where(AuditRecord.action == action))


def make_reports(svc: Services, n: int, files: int, prefix: str, seed0: int) -> tuple[list[int], dict]:
    """``n`` reports of ``files`` confirmed cases each (one account per report); drafting timed per case."""
    ids, times, size = [], [], 0
    for r in range(n):
        account = f"{prefix}-{r}"
        for f in range(files):
            seed = seed0 + r * files + f
            data = jpeg(seed, (1024, 768))
            size += len(data)
            case_id, _ = confirmed_case(svc, seed, data=data, account_id=account, content_id=f"{account}-{f}")
            t = time.perf_counter()
            report = svc.reports.draft_from_case(case_id, ACTOR)
            times.append(time.perf_counter() - t)
        ids.append(report["id"])
    total = sum(times)
    return ids, {**latency(times, total), "mb_per_second": round(size / 1e6 / total, 1), "mb": round(size / 1e6, 1)}


def check_filed(standin: StandIn, svc: Services, ids: list[int], files: int) -> dict:
    """Compare what the stand-in holds with what Safehold says it filed."""
    finished = {rid: r for rid, r in standin.reports.items() if r.finished}
    ours = [svc.reports.get(i) for i in ids]
    external = [r["external_id"] for r in ours]
    by_account: dict[str, int] = {}
    for r in finished.values():
        xml = r.xml if isinstance(r.xml, bytes) else r.xml.encode()
        for report in ours:
            if f">{report['account_id']}<".encode() in xml:
                by_account[report["account_id"]] = by_account.get(report["account_id"], 0) + 1
    duplicate_files = sum(
        len(r.files) - len({md5 for _, md5, _, _ in r.files.values()}) for r in finished.values() if r.files
    )
    return {
        "reports": len(ids),
        "finished_here": sum(r["status"] == "finished" for r in ours),
        "finished_at_standin": sum(1 for e in external if e in finished),
        "duplicate_reports": sum(n - 1 for n in by_account.values() if n > 1),
        "duplicate_files": duplicate_files,
        "files_per_report_ok": all(len(finished[e].files) == files for e in external if e in finished),
    }


def chaos(svc: Services, standin: StandIn, ids: list[int], rng: random.Random) -> dict:
    """File each report with a run that dies or loses an answer, then resume until it is finished."""
    for report_id in ids:
        svc.reports.submit(report_id, ACTOR)
    runs = crashes = lost = 0
    for report_id in ids:
        if rng.random() < 0.5:
            point, nth = rng.choice(POINTS), rng.choice([1, 2])
            seen = []

            def hook(at: str, point=point, nth=nth, seen=seen) -> None:
                if at == point:
                    seen.append(at)
                    if len(seen) == nth:
                        raise Crash(at)
        else:
            standin.fail(rng.choice(LOST), drop=True, after=True)
            lost += 1

            def hook(at: str) -> None:
                return None

        status = None
        for _ in range(20):
            runs += 1
            try:
                status = Filer(svc.db, svc.audit, svc.evidence, svc.settings, hook=hook).file(report_id)
            except Crash:
                crashes += 1
            hook = lambda at: None  # noqa: E731  (the process restarts without the fault)
            if status == "finished":
                break
            with svc.db.session() as s:  # time passes: the dead run's lease lapses, the back-off is due
                s.execute(update(Report).where(Report.id == report_id).values(lease_until=None, next_attempt_at=None))
    restarts = audited(svc, "report.restart")
    return {"runs": runs, "crashes": crashes, "lost_answers": lost, "restarts_from_submit": restarts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reports", type=int, default=200)
    ap.add_argument("--files", type=int, default=2, help="confirmed cases (files) bundled per report")
    ap.add_argument("--chaos", type=int, default=60, help="reports filed through crashes and lost answers")
    ap.add_argument("--database-url", default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "reporting.json")
    args = ap.parse_args()
    rng = random.Random(2026)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", database_url=args.database_url)
        standin = StandIn(username="esp", password="bench-secret")
        settings.cybertip_url = standin.start()
        settings.cybertip_username, settings.cybertip_password = "esp", "bench-secret"
        settings.cybertip_backoff_seconds = settings.cybertip_backoff_max_seconds = 0.001
        settings.platform_name, settings.reporter_email = "Bench Social", "safety@example.org"
        svc = Services(settings, load_index=False)
        try:
            result: dict = {
                "benchmark": "reporting",
                "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
                "database": "postgresql" if args.database_url else "sqlite",
                "params": {"reports": args.reports, "files": args.files, "chaos": args.chaos, "image": "1024x768 JPEG"},
            }
            print(f"drafting {args.reports} reports × {args.files} files …", file=sys.stderr)
            ids, result["draft"] = make_reports(svc, args.reports, args.files, "acct", 1)

            times = []
            t0 = time.perf_counter()
            for report_id in ids:
                t = time.perf_counter()
                svc.reports.document(report_id)
                times.append(time.perf_counter() - t)
            result["document"] = latency(times, time.perf_counter() - t0)

            print("filing …", file=sys.stderr)
            times = []
            t0 = time.perf_counter()
            for report_id in ids:
                t = time.perf_counter()
                state = svc.reports.submit(report_id, ACTOR, wait=True)
                times.append(time.perf_counter() - t)
                assert state["status"] == "finished", state
            filed = check_filed(standin, svc, ids, args.files)
            result["filing"] = {**latency(times, time.perf_counter() - t0), **filed}

            print(f"chaos: {args.chaos} reports through crashes and lost answers …", file=sys.stderr)
            chaos_ids, _ = make_reports(svc, args.chaos, args.files, "chaos", 100_000)
            t0 = time.perf_counter()
            runs = chaos(svc, standin, chaos_ids, rng)
            result["chaos"] = {**runs, **check_filed(standin, svc, chaos_ids, args.files)}
            result["chaos"]["seconds"] = round(time.perf_counter() - t0, 2)

            print("export and purge …", file=sys.stderr)
            t = time.perf_counter()
            package = svc.reports.export(ids[0], ACTOR)
            seconds = time.perf_counter() - t
            data = Path(package["path"]).read_bytes()
            side = Path(package["path"] + ".sha256").read_text().split()[0]
            with zipfile.ZipFile(package["path"]) as z:
                manifest = json.loads(z.read("manifest.json"))
            result["export"] = {
                "seconds": round(seconds, 3),
                "files": package["files"],
                "mb": round(len(data) / 1e6, 2),
                "checksum_ok": hashlib.sha256(data).hexdigest() == package["sha256"] == side,
                "manifest_entries": len(manifest.get("files", [])),
            }

            with svc.db.session() as s:
                live = list(s.scalars(select(EvidenceItem.sha256).where(EvidenceItem.purged_at.is_(None))))
            later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365 + 31)
            t = time.perf_counter()
            purged = svc.evidence.purge("system:retention", now=later)
            seconds = time.perf_counter() - t
            blobs_left = sum(1 for sha in set(live) if svc.evidence_store.exists(sha))
            proofs = audited(svc, "evidence.purge")
            result["purge"] = {
                "items": purged["purged"],
                "live_before": len(live),
                "seconds": round(seconds, 2),
                "per_second": round(purged["purged"] / seconds, 1) if seconds else None,
                "mb": round(purged["bytes"] / 1e6, 1),
                "blobs_left": blobs_left,
                "proof_records": proofs,
            }
        finally:
            svc.close()
            standin.stop()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
