"""The classifier interface: content in, labelled scores out.

A classifier is a pure detector, like a signal type's hasher: it knows nothing of cases, storage or HTTP. What
becomes of its scores is the pipeline's decision (:mod:`safehold.pipeline.service`): a score at or above the
classifier's ``threshold`` is a *hit*, which opens a case for human review (with an age signal, for labels legal
for adults) and never an automatic action or report unless the operator's policy says so (a classifier
guesses; a bank match recognises).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

if TYPE_CHECKING:
    from PIL import Image

#: What a classifier may take: a still image, one frame of a video (or a livestream), or text.
ContentKind = Literal["image", "video_frame", "text"]
CONTENT_KINDS: tuple[ContentKind, ...] = ("image", "video_frame", "text")


@dataclass(frozen=True)
class Content:
    """One piece of content to classify: ``image`` (decoded, bounded) for images and frames, ``text`` for text."""

    kind: ContentKind
    image: Image.Image | None = None
    text: str | None = None


@dataclass(frozen=True)
class Score:
    """One label's score in [0, 1]; ``detail`` is what the classifier wants a reviewer to see (its reasons)."""

    label: str
    score: float
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Classification:
    """What one classifier said about one piece of content, with what the pipeline needs to judge it."""

    classifier: str
    version: str
    threshold: float
    scores: tuple[Score, ...]

    @property
    def hits(self) -> tuple[Score, ...]:
        """The scores at or above the classifier's threshold."""
        return tuple(s for s in self.scores if s.score >= self.threshold)

    def to_dict(self) -> dict:
        """As the API and ``safehold classifier run --json`` show it: every score, and the labels that are hits."""
        return {
            "classifier": self.classifier,
            "version": self.version,
            "threshold": self.threshold,
            "scores": [{"label": s.label, "score": s.score, "detail": s.detail} for s in self.scores],
            "hits": [s.label for s in self.hits],
        }


class Classifier(ABC):
    """A detector of new material: which content it takes, which labels it emits, and how it scores.

    Subclasses set the class attributes and implement :meth:`classify`; they are built with no arguments (a
    model file comes from the classifier's own setting or package data, never a download at run time).
    """

    #: Lower-case ``[a-z][a-z0-9_]*``; what ``SAFEHOLD_CLASSIFIERS`` names and what cases show.
    name: ClassVar[str]
    description: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    #: The content kinds it takes; it is never called with another.
    takes: ClassVar[frozenset[ContentKind]]
    #: Every label it may emit; a score's label is a case category (a taxonomy code such as ``csam`` or a slug).
    labels: ClassVar[tuple[str, ...]]
    #: A score at or above this is a hit: a case for human review.
    threshold: ClassVar[float] = 0.5
    #: The shortest image side it needs (``None``: full resolution). When every enabled classifier names one,
    #: images and video frames are decoded at reduced size, never below the largest named (a JPEG by DCT scaling).
    min_side: ClassVar[int | None] = None
    #: Whether a hit opens a case only together with an age signal (the operator's policy may say otherwise);
    #: ``None``: by its labels — needed unless every label is a child-abuse category (``csam``, A1…B2), since
    #: a label such as ``explicit`` is legal for adults (docs/classifiers.md, "Classifier policy").
    needs_age_signal: ClassVar[bool | None] = None

    @abstractmethod
    def classify(self, content: Content) -> list[Score]:
        """Score ``content`` (of a kind in :attr:`takes`); labels from :attr:`labels`, scores in [0, 1]."""
