"""``safehold hash`` and ``safehold scan``: hash files in parallel worker processes, match in this one.

Matching needs the in-memory index, which lives once in the parent; hashing is the CPU-heavy part and
parallelises over cores. One JSON line per file with ``--json`` (the same fields as the API's scan answer).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from safehold.cli.common import collect_files, err, fail, problem, progress, services
from safehold.config import get_settings
from safehold.errors import SafeholdError
from safehold.scanning.service import signal_dict
from safehold.signals import registry

out = Console()
#: Below this many files a process pool costs more than it saves.
POOL_MIN_FILES = 8


def _hash_one(path: str, pdq_mode: str | None, dihedral: bool, max_bytes: int):
    try:
        if os.path.getsize(path) > max_bytes:  # checked before reading it into memory
            raise SafeholdError("media.too_large", f"{path} is larger than {max_bytes} bytes.")
        with open(path, "rb") as f:
            data = f.read()
        hashed = registry.hash_content(data, filename=path, pdq_mode=pdq_mode, dihedral=dihedral, max_bytes=max_bytes)
        return path, hashed, None
    except SafeholdError as exc:
        return path, None, exc
    except OSError as exc:
        return path, None, SafeholdError("cli.read_failed", f"Cannot read {path}: {exc.strerror}.")


def hash_paths(
    files: list[Path],
    *,
    workers: int,
    dihedral: bool = False,
    label: str = "hashing",
    pdq_mode: str | None = None,
) -> Iterator[tuple[str, registry.HashResult | None, SafeholdError | None]]:
    """Hash files in order, in ``workers`` processes (0: one per core), with a progress bar.

    ``pdq_mode`` defaults to the configured scanning mode."""
    settings = get_settings()
    args = (pdq_mode or settings.pdq_mode, dihedral, settings.max_upload_bytes)
    workers = workers or os.cpu_count() or 1
    with progress() as bar:
        task = bar.add_task(label, total=len(files))
        if workers == 1 or len(files) < POOL_MIN_FILES:
            for f in files:
                yield _hash_one(str(f), *args)
                bar.advance(task)
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            chunk = max(1, min(64, len(files) // (workers * 8)))
            for res in pool.map(_hash_one, [str(f) for f in files], *([a] * len(files) for a in args), chunksize=chunk):
                yield res
                bar.advance(task)


Paths = Annotated[list[Path], typer.Argument(help="Files or folders (walked recursively).")]
Workers = Annotated[int, typer.Option("--workers", "-j", help="Hashing processes (0: one per core).")]


def hash_files(
    paths: Paths,
    workers: Workers = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per file.")] = False,
) -> None:
    """Print the hashes (PDQ with quality, MD5, SHA-1, SHA-256, vPDQ) of files."""
    with fail():
        files = collect_files(paths)
    failed = 0
    for path, hashed, exc in hash_paths(files, workers=workers):
        error = exc or (hashed.errors[0] if hashed and hashed.errors else None)
        failed += error is not None
        if as_json:
            print(
                json.dumps(
                    {
                        "name": path,
                        "media": hashed.media if hashed else None,
                        "signals": [signal_dict(s) for s in hashed.signals] if hashed else [],
                        "error": error.to_dict() if error else None,
                    }
                )
            )
            continue
        out.print(f"[bold]{path}[/]" + (f"  ({hashed.media})" if hashed else ""), highlight=False)
        for s in hashed.signals if hashed else []:
            q = f"  quality {s.quality}" if s.quality is not None else ""
            out.print(f"  {s.type:<7} {s.value if len(s.value) <= 80 else s.value[:77] + '...'}{q}", highlight=False)
        if error:
            out.print(problem(error, "  "))
    if failed:
        raise typer.Exit(2)


def scan_paths(
    paths: Paths,
    workers: Workers = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per file, as the API answers.")] = False,
    fail_on_match: Annotated[bool, typer.Option(help="Exit with status 3 if anything matched.")] = False,
) -> None:
    """Scan files against every bank. Nothing is stored but aggregate counts."""
    with fail():
        files = collect_files(paths)
        svc = services()
    verdicts: Counter[str] = Counter()
    matched = []
    try:
        for path, hashed, exc in hash_paths(files, workers=workers, dihedral=svc.index.any_dihedral, label="scanning"):
            if exc is not None:
                row = {
                    "name": path,
                    "verdict": "unhashable",
                    "media": None,
                    "signals": [],
                    "matches": [],
                    "error": exc.to_dict(),
                    "warnings": [],
                }
                svc.scans.count("cli", "unreadable", "unhashable")
            else:
                row = svc.scans.evaluate(hashed, channel="cli", name=path).to_dict()
            verdicts[row["verdict"]] += 1
            if row["verdict"] in ("match", "allowlisted"):
                matched.append(row)
            if as_json:
                print(json.dumps(row), flush=True)
    finally:
        svc.scans.flush_counts()
    if not as_json:
        _print_summary(matched, verdicts, len(files))
    if fail_on_match and verdicts["match"]:
        raise typer.Exit(3)


def _print_summary(matched: list[dict], verdicts: Counter[str], total: int) -> None:
    if matched:
        table = Table("verdict", "bank", "signal", "distance", "entry", "file")
        for row in matched:
            for m in row["matches"]:
                e = m["entry"]
                ref = e.get("external_id") or e.get("note") or f"#{e['id']}"
                variant = "" if m["variant"] == "original" else f" ({m['variant']})"
                table.add_row(
                    row["verdict"],
                    m["bank"],
                    m["signal_type"] + variant,
                    str(m["distance"]),
                    str(ref),
                    row["name"],
                )
        out.print(table)
    summary = ", ".join(f"{verdicts[v]} {v}" for v in ("match", "allowlisted", "no_match", "unhashable"))
    err.print(f"{total} file(s): {summary}")
