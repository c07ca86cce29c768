"""An image classifier's quality on data it never saw: false positives on benign public photos and art, and a
recall sanity check on classifier-positive material that is legal and non-abusive (adult nudes in public-domain
paintings and sculpture).

Each set (``benign``, ``positive``) is read from one or more sources:

- a **manifest** (``--manifest``, default ``bench/data/classifier_sources.json``): public repositories fetched at
  run time, each with its commit, the paths or prefixes to read, its licence and its set; the snapshots are found
  under ``--mirror`` (``owner+name/repo`` or ``owner+name/repo/.git``). Nothing fetched is ever committed
  (bench/data/classifier_sources.md).
- ``--benign`` / ``--positive`` SPEC, repeatable: a directory (read recursively) or ``GIT_DIR::PREFIX`` (the files
  under PREFIX at the snapshot's HEAD, or ``GIT_DIR::PREFIX@COMMIT``). ``@FILE`` reads more arguments from FILE,
  one per line.

Every image goes through ``Classifiers.classify_image``, the same decode caps and path a scan uses; a file that
cannot be decoded, or that the snapshot lacks (files of 4 MiB and more are not fetched), is counted and skipped.
Images are read one at a time (bounded memory); only scores and names are kept.

Figures per set: count, unreadable, score percentiles, the share at or above each threshold 0.5–0.95 and at the
classifier's default threshold (false-positive rate for ``benign``, recall for ``positive``), and for ``benign``
the names of the false positives at the default threshold (names only, never content); per source, how many
reached the default threshold; for ``positive`` (a short curated list) every image's score.

Usage::

    .venv/bin/python bench/classifier_quality.py --classifier opennsfw --mirror /work/.mirror \\
        [--manifest bench/data/classifier_sources.json] [--benign DIR] [--positive GIT_DIR::PREFIX] \\
        [--limit-per-source N] [--out bench/results/classifier_quality.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from machine_info import machine  # noqa: E402
from safehold.classifiers.registry import Classifiers, load  # noqa: E402

IMAGE_SUFFIXES = frozenset((".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"))
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
PERCENTILES = (1, 5, 25, 50, 75, 90, 95, 99)
SETS = ("benign", "positive")


@dataclass
class Source:
    """Where some images of one set come from, and what is known of them (repository, commit, licence)."""

    set: str
    label: str
    directory: Path | None = None
    git_dir: Path | None = None
    commit: str = "HEAD"
    paths: tuple[str, ...] = ("",)
    exclude: frozenset[str] = frozenset()
    repo: str | None = None
    licence: str = "unrecorded"
    note: str = ""
    expected: int | None = None
    counts: dict = field(default_factory=lambda: {"scored": 0, "unreadable": 0, "missing": 0})
    #: How many of its images scored at or above the classifier's default threshold.
    at_default: int = 0

    def describe(self) -> dict:
        out = {"set": self.set, "source": self.label, "licence": self.licence, **self.counts}
        out["at_or_above_default"] = self.at_default
        if self.repo:
            out["repository"] = self.repo
        if self.git_dir is not None:
            out["commit"] = self.commit
            out["paths"] = list(self.paths)
            if self.exclude:
                out["excluded"] = sorted(self.exclude)
        if self.note:
            out["note"] = self.note
        return out


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def is_image(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def git(git_dir: Path, *args: str) -> bytes:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True).stdout


def resolve_git_dir(path: Path) -> Path:
    """``path`` itself if it is a git directory, else its ``.git``; a fetched snapshot is either."""
    if (path / "objects").is_dir() and (path / "HEAD").exists():
        return path
    if (path / ".git" / "objects").is_dir():
        return path / ".git"
    raise SystemExit(f"{path} is not a git directory")


def git_source(set_name: str, spec: str) -> Source:
    """``GIT_DIR::PREFIX[@COMMIT]`` → a source reading PREFIX at COMMIT (HEAD by default)."""
    git_path, _, rest = spec.partition("::")
    prefix, _, commit = rest.partition("@")
    git_dir = resolve_git_dir(Path(git_path))
    commit = git(git_dir, "rev-parse", commit or "HEAD").decode().strip()
    return Source(set_name, spec, git_dir=git_dir, commit=commit, paths=(prefix,))


def cli_source(set_name: str, spec: str) -> Source:
    if "::" in spec:
        return git_source(set_name, spec)
    path = Path(spec)
    if not path.is_dir():
        raise SystemExit(f"--{set_name} {spec}: not a directory (use GIT_DIR::PREFIX for a snapshot)")
    return Source(set_name, spec, directory=path)


def manifest_sources(manifest: Path, mirror: Path, only: set[str] | None) -> list[Source]:
    """The manifest's sources whose snapshot is under ``mirror``; a missing snapshot stops the run (say which)."""
    entries = json.loads(manifest.read_text())["sources"]
    unknown = sorted((only or set()) - {entry["id"] for entry in entries})
    if unknown:
        raise SystemExit(f"no source {', '.join(unknown)} in {manifest}")
    out = []
    for entry in entries:
        if only and entry["id"] not in only:
            continue
        base = mirror / entry["repo"].replace("/", "+") / "repo"
        if not base.exists():
            raise SystemExit(f"snapshot of {entry['repo']} not under {mirror} (fetch github:{entry['repo']} first)")
        git_dir = resolve_git_dir(base)
        try:
            git(git_dir, "cat-file", "-e", f"{entry['commit']}^{{commit}}")
        except subprocess.CalledProcessError:
            raise SystemExit(f"{entry['repo']}: commit {entry['commit']} not in the snapshot at {git_dir}") from None
        out.append(
            Source(
                entry["set"],
                entry["id"],
                git_dir=git_dir,
                commit=entry["commit"],
                paths=tuple(entry["paths"]),
                exclude=frozenset(entry.get("exclude", ())),
                repo=entry["repo"],
                licence=entry["licence"],
                note=entry.get("note", ""),
                expected=entry.get("expected_images"),
            )
        )
    return out


def directory_files(source: Source, limit: int | None) -> Iterator[tuple[str, bytes | None]]:
    files = sorted(p for p in source.directory.rglob("*") if p.is_file() and is_image(p.name))
    for path in files[:limit]:
        try:
            yield str(path.relative_to(source.directory)), path.read_bytes()
        except OSError:
            yield str(path.relative_to(source.directory)), None


def git_files(source: Source, limit: int | None) -> Iterator[tuple[str, bytes | None]]:
    """The images under the source's paths at its commit, read one blob at a time through ``git cat-file
    --batch``; a blob the snapshot lacks comes back as ``None``."""
    listing = git(source.git_dir, "ls-tree", "-r", "-z", source.commit, "--", *[p for p in source.paths if p])
    entries = []
    for record in listing.split(b"\0"):
        if not record:
            continue
        meta, _, path = record.partition(b"\t")
        _mode, kind, sha = meta.split()
        name = path.decode("utf-8", "replace")
        if kind == b"blob" and is_image(name) and name not in source.exclude:
            entries.append((name, sha))
    entries.sort()
    with subprocess.Popen(
        ["git", f"--git-dir={source.git_dir}", "cat-file", "--batch"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as proc:
        try:
            for name, sha in entries[:limit]:
                proc.stdin.write(sha + b"\n")
                proc.stdin.flush()
                header = proc.stdout.readline().split()
                if len(header) < 3 or header[1] != b"blob":
                    yield name, None
                    continue
                data = proc.stdout.read(int(header[2]))
                proc.stdout.read(1)
                yield name, data
        finally:
            proc.stdin.close()


class Progress:
    """Progress on stderr: a bar redrawn in place on a terminal, a line every tenth of the way otherwise (a log)."""

    def __init__(self, total: int, width: int = 30) -> None:
        self.total, self.width, self.done, self.started = max(total, 1), width, 0, time.monotonic()
        self.tty, self.shown, self.next_line = sys.stderr.isatty(), 0.0, 0.1

    def step(self) -> None:
        self.done += 1
        now, share = time.monotonic(), min(self.done / self.total, 1)
        rate = self.done / max(now - self.started, 1e-9)
        if not self.tty:
            if share >= self.next_line:
                self.next_line += 0.1
                log(f"{self.done}/{self.total} images, {rate:.1f}/s")
            return
        if now - self.shown < 0.5 and self.done < self.total:
            return
        self.shown = now
        bar = "#" * int(self.width * share) + "." * (self.width - int(self.width * share))
        print(f"\r[{bar}] {self.done}/{self.total} {rate:.1f} img/s", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.tty:
            print(file=sys.stderr, flush=True)


def count_images(source: Source, limit: int | None) -> int:
    if source.directory is not None:
        n = sum(1 for p in source.directory.rglob("*") if p.is_file() and is_image(p.name))
    else:
        paths = [p for p in source.paths if p]
        listing = git(source.git_dir, "ls-tree", "-r", "--name-only", "-z", source.commit, "--", *paths)
        names = (name.decode("utf-8", "replace") for name in listing.split(b"\0") if name)
        n = sum(1 for name in names if is_image(name) and name not in source.exclude)
    return min(n, limit) if limit is not None else n


def score(classifiers: Classifiers, data: bytes, label: str | None) -> float | None:
    """The classifier's highest score (of ``label`` if given) on ``data``; None if it could not be decoded within
    the scan's caps (or the classifier raised on it, which ``Classifiers`` logs)."""
    results = classifiers.classify_image(data)
    scores = [s.score for c in results for s in c.scores if label is None or s.label == label]
    return max(scores) if scores else None


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def summarise(set_name: str, scored: list[tuple[str, float]], skipped: dict, default: float) -> dict:
    values = sorted(s for _, s in scored)
    rate_name = "false_positive_rate" if set_name == "benign" else "recall"
    out: dict = {"count": len(values), **skipped}
    if not values:
        return out
    out["scores"] = {f"p{p}": round(percentile(values, p), 4) for p in PERCENTILES}
    out["scores"].update(min=round(values[0], 4), max=round(values[-1], 4), mean=round(sum(values) / len(values), 4))

    def at(threshold: float) -> dict:
        hits = sum(1 for v in values if v >= threshold)
        return {"at_or_above": hits, rate_name: round(hits / len(values), 4)}

    out["thresholds"] = {str(t): at(t) for t in THRESHOLDS}
    out["default_threshold"] = {"threshold": default, **at(default)}
    if set_name == "benign":
        out["false_positives_at_default"] = sorted(name for name, s in scored if s >= default)
    else:
        out["missed_at_default"] = sorted(name for name, s in scored if s < default)
        # a positive set is a short curated list: every image's score is worth reading
        out["score_by_image"] = {name: round(s, 4) for name, s in sorted(scored)}
    return out


def run(args: argparse.Namespace) -> dict:
    sources: list[Source] = []
    if args.manifest and not args.no_manifest:
        sources += manifest_sources(args.manifest, args.mirror, set(args.source) if args.source else None)
    sources += [cli_source("benign", s) for s in args.benign] + [cli_source("positive", s) for s in args.positive]
    if not sources:
        raise SystemExit("no sources: give --manifest with --mirror, or --benign / --positive")

    classifiers = load([args.classifier])
    (classifier,) = classifiers.enabled
    default = float(classifier.threshold)
    total = sum(count_images(s, args.limit_per_source) for s in sources)
    log(f"{args.classifier} (threshold {default}) on {total} images from {len(sources)} sources")

    scored: dict[str, list[tuple[str, float]]] = {name: [] for name in SETS}
    skipped = {name: {"unreadable": 0, "missing": 0} for name in SETS}
    progress = Progress(total)
    started = time.monotonic()
    for source in sources:
        files = directory_files if source.directory is not None else git_files
        for name, data in files(source, args.limit_per_source):
            progress.step()
            ident = f"{source.label}:{name}"
            if data is None:
                source.counts["missing"] += 1
                skipped[source.set]["missing"] += 1
                continue
            value = score(classifiers, data, args.label)
            if value is None:
                source.counts["unreadable"] += 1
                skipped[source.set]["unreadable"] += 1
                continue
            source.counts["scored"] += 1
            source.at_default += value >= default
            scored[source.set].append((ident, value))
    progress.close()
    for source in sources:
        seen = sum(source.counts.values())
        if source.expected is not None and args.limit_per_source is None and seen != source.expected:
            log(f"warning: {source.label} has {seen} images, the manifest expects {source.expected}")
    seconds = time.monotonic() - started
    n = sum(len(v) for v in scored.values())
    return {
        "classifier": {"name": classifier.name, "version": classifier.version, "threshold": default},
        "label": args.label,
        "machine": machine(),
        "seconds": round(seconds, 1),
        "images_per_second": round(n / seconds, 2) if seconds else None,
        "sets": {name: summarise(name, scored[name], skipped[name], default) for name in SETS if scored[name]},
        "sources": [s.describe() for s in sources],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], fromfile_prefix_chars="@")
    parser.add_argument("--classifier", default="opennsfw", help="a name registry.load knows (default opennsfw)")
    parser.add_argument("--label", help="score only this label (default: the classifier's highest score)")
    parser.add_argument("--manifest", type=Path, default=REPO / "bench" / "data" / "classifier_sources.json")
    parser.add_argument("--no-manifest", action="store_true", help="only the --benign / --positive sources")
    parser.add_argument("--source", action="append", default=[], help="only this manifest source id (repeatable)")
    parser.add_argument("--mirror", type=Path, default=Path("/work/.mirror"), help="where fetched snapshots are")
    parser.add_argument("--benign", action="append", default=[], metavar="SPEC", help="DIR or GIT_DIR::PREFIX")
    parser.add_argument("--positive", action="append", default=[], metavar="SPEC", help="DIR or GIT_DIR::PREFIX")
    parser.add_argument("--limit-per-source", type=int, help="at most this many images of each source")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "classifier_quality.json")
    args = parser.parse_args(argv)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, figures in result["sets"].items():
        d = figures.get("default_threshold", {})
        rate = d.get("false_positive_rate", d.get("recall"))
        log(
            f"{name}: {figures['count']} scored, {figures['unreadable']} unreadable, {figures['missing']} missing, "
            f"rate at default {rate}"
        )
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
