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
"""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from safehold import entrypoints
from safehold.classifiers.base import CONTENT_KINDS, Classification, Classifier, Content, Score
from safehold.entrypoints import EntryPointLike
from safehold.errors import SafeholdError

if TYPE_CHECKING:
    from safehold.signals.budget import WorkBudget

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "safehold.classifiers"
#: Built-in classifiers: name → (module, class), imported only when enabled.
BUILTIN: dict[str, tuple[str, str]] = {"test_brightness": ("safehold.classifiers.testing", "BrightnessClassifier")}
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

    def classify_image(self, data: bytes) -> list[Classification]:
        """Decode ``data`` with a scan's caps (pixels, JPEG structure), holding its pixels in the scans' budget,
        and classify it; nothing when no classifier takes images or the file cannot be decoded (the scan already
        said why). A ``media.busy`` budget is raised, as for the scan: the caller should try again."""
        if not self.takes("image"):
            return []
        from safehold.signals.image import decode, prepare

        try:
            lazy = prepare(
                data,
                max_pixels=self.max_pixels,
                max_jpeg_scans=self.max_jpeg_scans,
                max_jpeg_segments=self.max_jpeg_segments,
            )
            width, height = lazy.size
            with self.budget.hold(width * height) if self.budget is not None else nullcontext():
                image = decode(lazy)
                del lazy
                return self.classify(Content("image", image=image))
        except SafeholdError as exc:
            if exc.status in (429, 503):
                raise
            log.info("image not classified: %s", exc.code)
            return []


def _check_scores(c: Classifier, scores: Sequence[Score]) -> None:
    for s in scores:
        if not isinstance(s, Score) or s.label not in c.labels or not 0.0 <= float(s.score) <= 1.0:
            raise ValueError(f"score {s!r} is not a Score of one of its labels in [0, 1]")


def load(
    names: Iterable[str],
    *,
    entry_points: Iterable[EntryPointLike] | None = None,
    **bounds: Any,
) -> Classifiers:
    """The classifiers ``names`` lists, built once: built-ins by name, the rest from the installed plug-ins
    (only imported when some name is not a built-in). ``classifier.unavailable`` if one cannot be had.
    ``bounds`` are the decode bounds of :class:`Classifiers` (``max_pixels``, ``budget``, …)."""
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
    return Classifiers(tuple(found[n]() for n in names), errors, **bounds)
