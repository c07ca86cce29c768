"""Which classifiers exist and which run: built-ins plus plug-ins of the entry-point group
``safehold.classifiers``, of which only those ``SAFEHOLD_CLASSIFIERS`` names are loaded and run.

A plug-in package declares its classifier class::

    [project.entry-points."safehold.classifiers"]
    nudity = "acme_nudity:NudityClassifier"      # a safehold.classifiers.base.Classifier subclass

A plug-in that fails to import, is malformed or reuses a built-in's name is reported (``plugin.load_failed``,
``plugin.invalid``, ``plugin.name_clash``) and skipped; naming a classifier that is then not available stops
the process at start (``classifier.unavailable``): an operator who asked for a detector must not run without it
unknowingly. A classifier that raises on one piece of content is logged and skipped for it, never failing the
scan or event it came with.

A classifier whose constructor takes a ``threads`` keyword (one running a local model) is given
``SAFEHOLD_CLASSIFIER_THREADS``: the threads one classification may use.

Images are decoded at reduced size when every enabled classifier says how little it needs
(:attr:`~safehold.classifiers.base.Classifier.min_side`); videos are classified by their sampled frames
(:meth:`Classifiers.classify_video`, :class:`~safehold.signals.frames.FrameSampler`), the video's score for a label
being its highest frame's, with that frame's time.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from safehold import entrypoints
from safehold.classifiers.base import CONTENT_KINDS, Classification, Classifier, Content, Score
from safehold.entrypoints import EntryPointLike
from safehold.errors import SafeholdError

if TYPE_CHECKING:
    from PIL import Image

    from safehold.signals.budget import WorkBudget

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "safehold.classifiers"
#: Built-in classifiers: name → (module, class), imported only when enabled.
BUILTIN: dict[str, tuple[str, str]] = {
    "test_brightness": ("safehold.classifiers.testing", "BrightnessClassifier"),
    "opennsfw": ("safehold.classifiers.opennsfw", "OpenNsfwClassifier"),
}
#: The short side video frames are scaled to when some enabled classifier wants full resolution.
FULL_FRAME_SIDE = 720
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def check(cls: object, ep_name: str = "built-in") -> type[Classifier]:
    """``cls`` if it is a usable :class:`Classifier` subclass, else ``plugin.invalid``."""

    def invalid(message: str) -> SafeholdError:
        return entrypoints.plugin_error("plugin.invalid", "classifier", ep_name, message)

    if not (isinstance(cls, type) and issubclass(cls, Classifier)):
        raise invalid(f"{cls!r} is not a Classifier subclass")
    what = cls.__qualname__
    if inspect.isabstract(cls):
        raise invalid(f"{what} is abstract (does it implement classify()?)")
    if not isinstance(getattr(cls, "name", None), str) or not _NAME_RE.match(cls.name):
        raise invalid(f"{what}.name must be lower-case [a-z][a-z0-9_]*")
    takes = getattr(cls, "takes", None)
    if not isinstance(takes, frozenset) or not takes or not takes <= set(CONTENT_KINDS):
        raise invalid(f"{what}.takes must be a non-empty frozenset of {CONTENT_KINDS}")
    labels = getattr(cls, "labels", None)
    if not isinstance(labels, tuple) or not labels or not all(isinstance(x, str) and x for x in labels):
        raise invalid(f"{what}.labels must be a non-empty tuple of strings")
    threshold = getattr(cls, "threshold", None)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold <= 1:
        raise invalid(f"{what}.threshold must be a number in (0, 1]")
    side = getattr(cls, "min_side", None)
    if side is not None and (isinstance(side, bool) or not isinstance(side, int) or not 1 <= side <= 8192):
        raise invalid(f"{what}.min_side must be None or a whole number of pixels from 1 to 8192")
    if getattr(cls, "needs_age_signal", None) not in (None, True, False):
        raise invalid(f"{what}.needs_age_signal must be True, False or None")
    return cls


@dataclass
class Classifiers:
    """The enabled classifiers of one process (empty by default) and the plug-in problems met loading them."""

    enabled: tuple[Classifier, ...] = ()
    errors: list[SafeholdError] = field(default_factory=list)
    #: Most pixels of an image decoded for classification (``SAFEHOLD_MAX_IMAGE_PIXELS``).
    max_pixels: int = 50_000_000
    #: Most scans and segments of a JPEG decoded for classification (``SAFEHOLD_JPEG_MAX_SCANS`` / ``_SEGMENTS``).
    max_jpeg_scans: int = 100
    max_jpeg_segments: int = 64
    #: The process's budget of pixels being decoded (the scans'), held while an image is decoded for classification.
    budget: WorkBudget | None = None
    #: Most frames of a video classified (``SAFEHOLD_CLASSIFIER_VIDEO_FRAMES``), and the video bounds of a scan.
    video_frames: int = 16
    video_max_seconds: float = 900.0
    video_max_pixels: int = 4096 * 2160
    video_timeout: float = 60.0
    max_bytes: int = 256 * 1024 * 1024
    #: The process's video slots (the scans'), one held while a video's frames are sampled.
    video_slots: WorkBudget | None = None

    def __bool__(self) -> bool:
        return bool(self.enabled)

    def takes(self, kind: str) -> bool:
        return any(kind in c.takes for c in self.enabled)

    def classify(self, content: Content) -> list[Classification]:
        """What every enabled classifier that takes ``content.kind`` says about it. A classifier that raises, or
        answers out of its contract, is logged and left out."""
        out = []
        for c in self.enabled:
            if content.kind not in c.takes:
                continue
            try:
                scores = tuple(c.classify(content))
                _check_scores(c, scores)
            except Exception:  # noqa: BLE001 - a detector's bug must not lose the content it came with
                log.exception("classifier %r failed on %s content; skipped", c.name, content.kind)
                continue
            out.append(Classification(c.name, c.version, float(c.threshold), scores))
        return out

    def min_side(self, kind: str) -> int | None:
        """The shortest side the enabled classifiers of ``kind`` need; ``None`` if one wants full resolution."""
        sides = [c.min_side for c in self.enabled if kind in c.takes]
        return None if not sides or None in sides else max(sides)

    def classify_image(self, data: bytes) -> list[Classification]:
        """Decode ``data`` with a scan's caps (pixels, JPEG structure), holding its pixels in the scans' budget,
        and classify it; nothing when no classifier takes images or the file cannot be decoded (the scan already
        said why). A JPEG is decoded at reduced size (libjpeg's DCT scaling, far cheaper) when the classifiers
        need less than its full size (:meth:`min_side`). A ``media.busy`` budget is raised, as for the scan: the
        caller should try again."""
        if not self.takes("image"):
            return []
        try:
            return self.classify(Content("image", image=self.decode_image(data)))
        except SafeholdError as exc:
            if exc.status in (429, 503):
                raise
            log.info("image not classified: %s", exc.code)
            return []

    def decode_image(self, data: bytes) -> Image.Image:
        """``data`` decoded as :meth:`classify_image` decodes it (its errors raised)."""
        from safehold.signals.image import decode, prepare

        side = self.min_side("image")
        lazy = prepare(
            data,
            max_pixels=self.max_pixels,
            max_jpeg_scans=self.max_jpeg_scans,
            max_jpeg_segments=self.max_jpeg_segments,
            draft=(side, side) if side else None,
        )
        width, height = lazy.size
        with self.budget.hold(width * height) if self.budget is not None else nullcontext():
            return decode(lazy)

    def classify_frames(self, data: bytes) -> Iterator[FrameClassification]:
        """What the enabled classifiers that take video frames say about each sampled frame of the video
        ``data`` (at most :attr:`video_frames`, evenly spread, within a scan's video bounds); the video's own
        errors (``media.*``, ``signal.unavailable`` without ffmpeg) are raised."""
        from safehold.signals.frames import FrameSampler

        if not self.takes("video_frame"):
            return
        sampler = FrameSampler(
            count=self.video_frames,
            side=self.min_side("video_frame") or FULL_FRAME_SIDE,
            max_duration_seconds=self.video_max_seconds,
            max_pixels=self.video_max_pixels,
            timeout_seconds=self.video_timeout,
            max_bytes=self.max_bytes,
            slots=self.video_slots,
        )
        for frame in sampler.frames(data):
            yield FrameClassification(frame.timestamp, self.classify(Content("video_frame", image=frame.image)))

    def classify_video(self, data: bytes) -> list[Classification]:
        """The video's classifications (:func:`video_scores` of :meth:`classify_frames`); nothing when no
        classifier takes frames or the video cannot be decoded (the scan already said why). ``media.busy`` is
        raised, as for the scan."""
        try:
            return video_scores(list(self.classify_frames(data)))
        except SafeholdError as exc:
            if exc.status in (429, 503):
                raise
            log.info("video not classified: %s", exc.code)
            return []

    def classify_media(self, data: bytes) -> list[Classification]:
        """:meth:`classify_video` for a video (by its magic bytes), else :meth:`classify_image`."""
        from safehold.signals.media import sniff

        return self.classify_video(data) if sniff(data) == "video" else self.classify_image(data)

    def classify_file(self, data: bytes, filename: str | None = None) -> FileClassification:
        """What every enabled classifier says about one image or video, a video frame by frame, for an operator
        trying them: the file's own problems are raised with the scan's codes (``media.*``), and so is
        ``classifier.none_enabled`` when there is nothing to try."""
        from safehold.signals.media import sniff

        if not self.enabled:
            raise none_enabled()
        if sniff(data, filename) == "video":
            frames = list(self.classify_frames(data))
            return FileClassification("video", video_scores(frames), frames)
        image = self.decode_image(data)  # undecodable bytes raise here, whatever classifiers are enabled
        return FileClassification("image", self.classify(Content("image", image=image)))


@dataclass(frozen=True)
class FrameClassification:
    """What the classifiers said about one sampled frame of a video, shown ``timestamp`` seconds in."""

    timestamp: float
    classifications: list[Classification]


@dataclass(frozen=True)
class FileClassification:
    """One file's classifications; for a video, those of its frames too."""

    media: str
    classifications: list[Classification]
    frames: list[FrameClassification] = field(default_factory=list)

    def to_dict(self) -> dict:
        out: dict = {"media": self.media, "classifications": [c.to_dict() for c in self.classifications]}
        if self.media == "video":
            out["frames"] = [
                {"timestamp": f.timestamp, "classifications": [c.to_dict() for c in f.classifications]}
                for f in self.frames
            ]
        return out


def video_scores(frames: Sequence[FrameClassification]) -> list[Classification]:
    """A video's classification by each classifier: for each label the highest score of any frame, with that
    frame's ``timestamp`` and the number of ``frames`` scored in its detail."""
    best: dict[str, Classification] = {}
    top: dict[tuple[str, str], tuple[Score, float]] = {}
    for frame in frames:
        for c in frame.classifications:
            best.setdefault(c.classifier, c)
            for s in c.scores:
                key = (c.classifier, s.label)
                if key not in top or s.score > top[key][0].score:
                    top[key] = (s, frame.timestamp)
    scored = {name: sum(1 for f in frames if any(c.classifier == name for c in f.classifications)) for name in best}
    out = []
    for name, c in best.items():
        scores = tuple(
            Score(s.label, s.score, {**s.detail, "timestamp": t, "frames": scored[name]})
            for (clf, _), (s, t) in top.items()
            if clf == name
        )
        out.append(Classification(c.classifier, c.version, c.threshold, scores))
    return out


def none_enabled() -> SafeholdError:
    """409 ``classifier.none_enabled``: an operator asked to try the classifiers and none is enabled."""
    return SafeholdError(
        "classifier.none_enabled",
        "No classifier is enabled: set SAFEHOLD_CLASSIFIERS, e.g. SAFEHOLD_CLASSIFIERS=opennsfw (docs/classifiers.md).",
        status=409,
        detail={"available": sorted(BUILTIN)},
    )


def _check_scores(c: Classifier, scores: Sequence[Score]) -> None:
    for s in scores:
        if not isinstance(s, Score) or s.label not in c.labels or not 0.0 <= float(s.score) <= 1.0:
            raise ValueError(f"score {s!r} is not a Score of one of its labels in [0, 1]")


def load(
    names: Iterable[str],
    *,
    entry_points: Iterable[EntryPointLike] | None = None,
    threads: int = 1,
    **bounds: Any,
) -> Classifiers:
    """The classifiers ``names`` lists, built once: built-ins by name, the rest from the installed plug-ins
    (only imported when some name is not a built-in). ``classifier.unavailable`` if one cannot be had.
    ``threads`` goes to each classifier whose constructor takes it; ``bounds`` are the decode bounds of
    :class:`Classifiers` (``max_pixels``, ``budget``, …)."""
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    found: dict[str, type[Classifier]] = {}
    errors: list[SafeholdError] = []
    for name in names:
        if name in BUILTIN:
            found[name] = check(getattr(importlib.import_module(BUILTIN[name][0]), BUILTIN[name][1]))
    if set(names) - set(found):
        eps = list(entry_points) if entry_points is not None else entrypoints.installed(ENTRY_POINT_GROUP)
        for ep in sorted(eps, key=lambda e: str(e.name)):
            try:
                cls = check(entrypoints.load(ep, "classifier"), ep.name)
                if cls.name in BUILTIN or cls.name in found:
                    raise entrypoints.plugin_error(
                        "plugin.name_clash", "classifier", ep.name, f"classifier name {cls.name!r} is already taken"
                    )
            except SafeholdError as exc:
                log.warning("skipping %s", exc.message)
                errors.append(exc)
                continue
            if cls.name in names:
                found[cls.name] = cls
    missing = [n for n in names if n not in found]
    if missing:
        raise SafeholdError(
            "classifier.unavailable",
            f"SAFEHOLD_CLASSIFIERS names {', '.join(missing)}, which no built-in or installed plug-in provides"
            + (f" ({'; '.join(e.message for e in errors)})" if errors else "."),
            status=500,
            detail={"missing": missing, "available": sorted(BUILTIN)},
        )
    return Classifiers(tuple(_build(found[n], threads) for n in names), errors, **bounds)


def _build(cls: type[Classifier], threads: int) -> Classifier:
    try:
        takes_threads = "threads" in inspect.signature(cls).parameters
    except (TypeError, ValueError):  # a signature Python cannot read (a C extension's)
        takes_threads = False
    return cls(threads=threads) if takes_threads else cls()


def available(enabled: Iterable[str] = (), *, entry_points: Iterable[EntryPointLike] | None = None) -> list[dict]:
    """Every classifier this installation could run, built-ins first: name, where it comes from, what it takes
    and emits, its default threshold, and whether ``enabled`` (``SAFEHOLD_CLASSIFIERS``) names it. Installed
    plug-ins are imported to be described; one that cannot be is listed with its ``error``."""
    on = set(enabled)
    out = []

    def row(name: str, source: str, cls: type[Classifier]) -> dict:
        return {
            "name": name,
            "source": source,
            "description": cls.description,
            "version": cls.version,
            "takes": sorted(cls.takes),
            "labels": list(cls.labels),
            "threshold": float(cls.threshold),
            "enabled": name in on,
        }

    for name, (module, attr) in BUILTIN.items():
        try:
            out.append(row(name, "built-in", check(getattr(importlib.import_module(module), attr))))
        except SafeholdError as exc:  # its model package missing or damaged
            out.append({"name": name, "source": "built-in", "enabled": name in on, "error": exc.code})
    eps = list(entry_points) if entry_points is not None else entrypoints.installed(ENTRY_POINT_GROUP)
    for ep in sorted(eps, key=lambda e: str(e.name)):
        try:
            cls = check(entrypoints.load(ep, "classifier"), ep.name)
        except SafeholdError as exc:
            out.append({"name": ep.name, "source": f"plug-in {ep.value}", "enabled": ep.name in on, "error": exc.code})
            continue
        out.append(row(cls.name, f"plug-in {ep.value}", cls))
    return out
