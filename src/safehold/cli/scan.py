"""``safehold hash`` and ``safehold scan``: hash files in parallel worker processes, match in this one.

Matching needs the in-memory index, which lives once in the parent; hashing is the CPU-heavy part and
parallelises over cores. One JSON line per file with ``--json`` (the same fields as the API's scan answer).

``safehold scan --record --content-id … / --account-id …`` is the scan door of the API from the command line:
each file's result goes to the pipeline through the same call as ``POST /v1/scan`` with a subject
(:meth:`safehold.pipeline.events.EventService.scanned`), so the same file opens the same case either way. The
actor on the cases and in the audit log is ``cli:<operating-system user>``.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from safehold.cli.common import collect_files, console, err, fail, problem, progress, services
from safehold.errors import SafeholdError

if TYPE_CHECKING:  # hashing and matching (numpy, numba) load only in the commands that use them
    from safehold.auth.apikeys import Principal
    from safehold.scanning.service import ScanResult
    from safehold.services import Services
    from safehold.signals.registry import HashResult

out = console()
#: Below this many files a process pool costs more than it saves.
POOL_MIN_FILES = 8


def _hash_one(path: str, options: dict):
    """Hash one file in a worker with ``options`` (:func:`~safehold.scanning.service.hash_options`: the API's caps)."""
    from safehold.signals import registry

    try:
        max_bytes = options["max_bytes"]
        if os.path.getsize(path) > max_bytes:  # checked before reading it into memory
            raise SafeholdError("media.too_large", f"{path} is larger than {max_bytes} bytes.")
        with open(path, "rb") as f:
            data = f.read()
        hashed = registry.hash_content(data, filename=path, **options)
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
) -> Iterator[tuple[str, HashResult | None, SafeholdError | None]]:
    """Hash files in order, in ``workers`` processes (0: one per core), with a progress bar.

    ``pdq_mode`` defaults to the configured scanning mode."""
    from safehold.config import get_settings
    from safehold.scanning.service import hash_options

    options = hash_options(get_settings(), dihedral=dihedral, pdq_mode=pdq_mode)
    workers = workers or os.cpu_count() or 1
    with progress() as bar:
        task = bar.add_task(label, total=len(files))
        if workers == 1 or len(files) < POOL_MIN_FILES:
            for f in files:
                yield _hash_one(str(f), options)
                bar.advance(task)
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            chunk = max(1, min(64, len(files) // (workers * 8)))
            for res in pool.map(_hash_one, [str(f) for f in files], [options] * len(files), chunksize=chunk):
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
    from safehold.scanning.service import signal_dict

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
        out.print(Text(path, style="bold") + (f"  ({hashed.media})" if hashed else ""), soft_wrap=True)
        for s in hashed.signals if hashed else []:
            q = f"  quality {s.quality}" if s.quality is not None else ""
            out.print(f"  {s.type:<7} {s.value if len(s.value) <= 80 else s.value[:77] + '...'}{q}", soft_wrap=True)
        if error:
            out.print(problem(error, "  "))
    if failed:
        raise typer.Exit(2)


#: The longest platform id (as the API's ``content_id`` / ``account_id``).
MAX_ID = 128


def scan_paths(
    paths: Paths,
    workers: Workers = 0,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per file, as the API answers.")] = False,
    fail_on_match: Annotated[bool, typer.Option(help="Exit with status 3 if anything matched.")] = False,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="Open or update the subject's case as POST /v1/scan with a content or account id does "
            "(needs --content-id or --account-id).",
        ),
    ] = False,
    content_id: Annotated[
        str | None,
        typer.Option(help="With --record: the platform's id of the content; {name} is replaced by the file's name."),
    ] = None,
    account_id: Annotated[str | None, typer.Option(help="With --record: the platform's id of the account.")] = None,
    depicted_minor: Annotated[
        bool, typer.Option(help="With --record: the person shown is a suspected minor (an age signal for classifiers).")
    ] = False,
    grooming_conversation: Annotated[
        str | None,
        typer.Option(help="With --record: the conversation the files came in (it must have an open grooming alert)."),
    ] = None,
) -> None:
    """Scan files against every bank. Nothing is stored but aggregate counts, unless --record names a subject."""
    if (content_id or account_id) and not record:
        raise typer.BadParameter("--content-id and --account-id name what --record records; add --record.")
    if (depicted_minor or grooming_conversation) and not record:
        raise typer.BadParameter("--depicted-minor and --grooming-conversation are about what --record records.")
    age = {"depicted_minor": depicted_minor, "grooming_conversation": grooming_conversation}
    if record and not (content_id or account_id):
        raise typer.BadParameter("--record needs --content-id or --account-id: a case is about a subject.")
    with fail():
        files = collect_files(paths)
    for given in [account_id, grooming_conversation] + [_content_id(content_id, f) for f in files]:
        if given is not None and not 1 <= len(given) <= MAX_ID:
            raise typer.BadParameter(f"a platform id is 1 to {MAX_ID} characters; {given!r} is not.")
    with fail():
        svc = services()
    who = operator()
    verdicts: Counter[str] = Counter()
    listed = []
    flushed = time.monotonic()
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
                # A video's keyframes are matched against image banks here, in this process (its bytes again).
                data = Path(path).read_bytes() if hashed.media == "video" else None
                result = svc.scans.evaluate(hashed, channel="cli", name=path, data=data)
                if record:
                    with fail():
                        row = _recorded(svc, who, result, Path(path), content_id, account_id, age)
                    if time.monotonic() - flushed >= svc.settings.index_sync_interval:
                        svc.seen.flush()  # as a server's flush task would: re-matching waits this long, no more
                        flushed = time.monotonic()
                else:
                    row = result.to_dict(provenance=True)  # the operator
            verdicts[row["verdict"]] += 1
            if row["verdict"] != "no_match" or row.get("cases"):
                listed.append(row)
            if as_json:
                print(json.dumps(row), flush=True)
    finally:  # what the scans left in memory: the verdict counts, and (--record) the hashes seen for re-matching
        svc.scans.flush_counts()
        svc.seen.flush()
    if not as_json:
        _print_results(listed)
        summary = ", ".join(f"{verdicts[v]} {v}" for v in ("match", "allowlisted", "no_match", "unhashable"))
        err.print(f"{len(files)} file(s): {summary}")
    if fail_on_match and verdicts["match"]:
        raise typer.Exit(3)


def operator() -> Principal:
    """Who runs the command, as the cases and the audit log name them: ``cli:<user>`` (no API key: the key scope
    of its idempotent scans is the same label)."""
    from safehold.auth.apikeys import Principal

    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment or the password database
        user = "unknown"
    return Principal(name=f"cli:{user}", role="admin")


def _recorded(
    svc: Services,
    who: Principal,
    result: ScanResult,
    path: Path,
    content_id: str | None,
    account_id: str | None,
    age: dict,
) -> dict:
    """The scan door's answer for one file: read again here (the worker hashed it) only to be classified and kept
    if the pipeline records something about it. ``age`` holds the caller's age signals for classifier hits."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SafeholdError("cli.read_failed", f"Cannot read {path}: {exc.strerror}.") from None
    cid = _content_id(content_id, path)
    return svc.events.scanned(who, result, data, filename=path.name, content_id=cid, account_id=account_id, **age)


def _content_id(template: str | None, path: Path) -> str | None:
    return template.replace("{name}", path.name) if template is not None else None


def unhashable_reason(row: dict) -> str:
    """``[code] message`` for an unhashable scan answer: its error, else what its warnings say."""
    from safehold.signals.pdq import MIN_QUALITY

    # Why a file that raised no error is still unhashable, by scan warning.
    reasons = {"pdq.low_quality": f"too featureless to match (PDQ quality below {MIN_QUALITY})"}
    if row["error"]:
        return f"[{row['error']['code']}] {row['error']['message']}"
    if row["warnings"]:
        return "; ".join(f"[{w}] {reasons.get(w, w)}" for w in row["warnings"])
    return "no perceptual hash could be computed"


def _findings(row: dict) -> list[tuple[str, str, str, str]]:
    """What to say about one listed file: (bank, signal, distance, entry) per match, or ("", "", "", reason), and
    the case it opened or updated with --record."""
    cases = [("", "", "", _case_line(c, row.get("duplicate", False))) for c in row.get("cases", [])]
    if row["verdict"] == "unhashable":
        return [("", "", "", unhashable_reason(row)), *cases]
    found = []
    for m in row["matches"]:
        e = m["entry"]
        ref = e.get("external_id") or e.get("note") or f"#{e['id']}"
        variant = "" if m["variant"] == "original" else f" ({m['variant']})"
        # an allow-list hit overrides the block banks' matches: say so beside each, or they read as allow-listed
        bank = m["bank"] + (
            " (block, overridden)" if row["verdict"] == "allowlisted" and m["bank_kind"] == "block" else ""
        )
        found.append((bank, m["signal_type"] + variant, str(m["distance"]), str(ref)))
    return found + cases


def _case_line(case: dict, duplicate: bool) -> str:
    what = "recorded before" if duplicate else "opened" if case["created"] else "updated"
    return f"case {case['id']} {what} ({case['band']}, {case['status']})"


VERDICT_STYLE = {"match": "bold red", "allowlisted": "green", "unhashable": "yellow"}


def _print_results(rows: list[dict]) -> None:
    """Matches, allow-list hits and unhashable files (with why), the path always whole.

    For a pipe or a file: one tab-separated line per finding (verdict, bank, signal, distance, entry or reason,
    file), which nothing wraps or cuts. On a terminal: the verdict and the path on one line, each finding
    indented below it; lines are soft-wrapped by the terminal, so a long path stays one piece to copy."""
    for row in rows:
        findings = _findings(row)
        if not out.is_terminal:
            for finding in findings:
                print("\t".join((row["verdict"], *finding, row["name"])))
            continue
        verdict = row["verdict"]
        out.print(Text.assemble((f"{verdict:<12}", VERDICT_STYLE.get(verdict, "")), row["name"]), soft_wrap=True)
        for bank, signal, distance, entry in findings:
            said = f"{bank}: {signal} distance {distance}, entry {entry}" if bank else entry
            out.print(Text(" " * 12 + said), soft_wrap=True)
