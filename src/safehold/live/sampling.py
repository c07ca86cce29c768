"""Adaptive sampling: a baseline rate for every stream, raised while its risk is raised.

Looking at every frame of every stream is neither affordable nor needed: a frame shown for two seconds is caught
at 0.5 sampled frames per second with high probability (bench/live.py measures it). What raises the rate is
what makes abuse likelier on *this* stream — the reasons of :data:`REASONS`: a broadcaster or viewer the age
signals call a minor, a grooming alert in the stream's chat, a classifier's explicit-imagery score on a sampled
frame, viewers' reports. One reason raises the stream to ``elevated``, two or more (or a classifier score at
the high mark) to ``high``; each level has its rate (settings ``live_rate_*``).

The decision is made on the frame's capture timestamp alone, before anything is decoded: a pushed frame beyond
the current rate costs a comparison, not a decode.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

#: Why a stream's risk is raised (the ``reason`` of ``POST /v1/live/streams/{id}/signals`` and what Safehold
#: finds itself).
REASONS = ("minor_broadcaster", "minor_viewer", "grooming_alert", "classifier_score", "viewer_report")
LEVELS = ("baseline", "elevated", "high")
#: A frame arriving this much earlier than its slot is still taken (capture clocks jitter).
JITTER = 0.05
#: Sampled capture times a stream remembers, to place frames that arrive out of order.
KEPT = 16


@dataclass(frozen=True)
class Rates:
    """Sampled frames per second at each risk level."""

    baseline: float = 0.5
    elevated: float = 1.0
    high: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.baseline <= self.elevated <= self.high:
            raise ValueError("live sampling rates must satisfy 0 < baseline <= elevated <= high")

    def at(self, level: str) -> float:
        return getattr(self, level)


@dataclass
class Risk:
    """A stream's risk: the reasons seen (each with how many times) and the level they make."""

    reasons: dict[str, int] = field(default_factory=dict)
    #: The highest classifier score seen on a sampled frame (0 without one).
    classifier: float = 0.0

    def add(self, reason: str, score: float | None = None) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown live risk reason {reason!r}")
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if score is not None:
            self.classifier = max(self.classifier, score)

    def level(self, high_score: float = 0.8) -> str:
        if len(self.reasons) >= 2 or self.classifier >= high_score or self.reasons.get("viewer_report", 0) >= 3:
            return "high"
        return "elevated" if self.reasons else "baseline"

    def to_dict(self, high_score: float = 0.8) -> dict:
        return {"level": self.level(high_score), "reasons": dict(self.reasons), "classifier": self.classifier}


class Sampler:
    """Whether a frame captured at ``ts`` (seconds) is sampled at ``rate`` frames per second.

    In order, the first frame is sampled, then one whenever ``1 / rate`` seconds have passed since the last one
    sampled: a picture on screen for that long is sampled at least once. Frames pushed at once may arrive out of
    order (two requests of one stream overtaking each other on a busy server); a late frame is sampled when it
    falls in a gap between two sampled frames wider than ``1 / rate``, so the guarantee holds whatever the order,
    at the cost of an extra sample only when the order was broken. A late frame close to the sample before it and
    far from the one after is skipped (the next frame of the gap is taken instead): otherwise one frame stamped far
    in the future would open a gap that every later frame falls into, and the stream would be sampled at every
    frame. The last :data:`KEPT` sampled times are kept; a frame older than all of them is skipped."""

    __slots__ = ("taken",)

    def __init__(self) -> None:
        self.taken: list[float] = []

    @property
    def last(self) -> float | None:
        return self.taken[-1] if self.taken else None

    def take(self, ts: float, rate: float) -> bool:
        interval = 1.0 / rate
        taken = self.taken
        i = bisect.bisect_left(taken, ts)
        if i == len(taken):  # the newest frame: in order
            if taken and ts - taken[-1] < interval - JITTER:
                return False
        elif i == 0 or taken[i] == ts or taken[i] - taken[i - 1] <= interval + JITTER:
            return False  # older than all kept, already sampled, or in a gap the samples cover
        elif ts - taken[i - 1] < interval - JITTER and taken[i] - ts > interval + JITTER:
            return False  # the gap is wide but this frame narrows neither side to the interval: a later one will
        taken.insert(i, ts)
        if len(taken) > KEPT:
            del taken[0]
        return True

    def release(self, ts: float) -> None:
        """Give back the slot :meth:`take` gave a frame captured at ``ts`` that was then refused unlooked-at (not
        an image, too large): the next frame must be sampled in its place, or a refused frame would hide the
        picture after it for a whole interval."""
        i = bisect.bisect_left(self.taken, ts)
        if i < len(self.taken) and self.taken[i] == ts:
            del self.taken[i]
