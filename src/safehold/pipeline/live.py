"""The live door: streams registered, frames pushed or pulled, and what a sampled frame's verdict becomes.

The detector (:mod:`safehold.live`) decides which frames are looked at and keeps the last seconds; this module
judges a sampled frame through the scan service — the frame is hashed within the image bounds and matched
against the banks, whose own settings (threshold, enabled, allow banks) decide — and hands it to the pipeline
like any other door:

- a **known-material match** on a block bank opens (or updates) the stream's case (subject
  ``content:live:<stream id>``, the broadcaster's account) with the frame, and the door's own ``interrupt``
  action (``params``: the stream, the capture time) in the same transaction, so its signed webhook is queued
  when the case commits; the ring buffer's frames are then sealed into the evidence store as one clip
  (``live:<stream>:clip:<capture time>``) by the evidence thread, off the frame's path, and the stream is marked
  ``interrupted``;
- anything else the pipeline's policies find on the frame (an enabled classifier's hit, an operator rule) opens
  a review case the same way, without the interrupt; a classifier score at the high mark raises the risk;
- a frame nothing is found on leaves nothing behind but its place in the ring buffer (memory only).

Risk comes from the age signals of the broadcaster and the viewers named at registration (and any joining later
through ``signals``), from the stream's chat conversation (a grooming alert, looked at when the stream is
registered and again every :data:`CHAT_EVERY` seconds of frames), from classifier scores and from what the
platform reports. Frames are judged on the caller's thread; a stream's frames one at a time, in order.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from safehold.actions.service import ActionService
from safehold.agebands import is_minor
from safehold.audit import AuditService
from safehold.cases.detection import CaseRef, Detection, DetectionSignal
from safehold.config import Settings
from safehold.errors import Conflict, NotFound, SafeholdError
from safehold.evidence.service import EvidenceService
from safehold.live.buffer import Frame
from safehold.live.pull import Guard, Puller, check_url
from safehold.live.sampling import Rates
from safehold.live.watch import RECENT, Offered, Stream, Verdict, Watch, image_kind
from safehold.pipeline.live_claims import StreamClaims, elsewhere, this_process
from safehold.pipeline.service import Pipeline, Submission
from safehold.review import media
from safehold.scanning.service import ScanService

log = logging.getLogger(__name__)

#: Seconds between two looks at a stream's chat conversation for a grooming alert.
CHAT_EVERY = 30.0
#: The door's name on the actions it takes (``CaseAction.policy``).
DOOR = "live"
MAX_VIEWERS = 200
#: How far ahead of this server's clock a pushed frame's capture time may be (clocks drift, by seconds): a frame
#: from further ahead would sit in the ring buffer as its newest and evict every real frame before it.
MAX_AHEAD = 60.0

Bands = Callable[[list[str]], dict[str, str]]
ChatAlert = Callable[[str], bool]


def watch_for(settings: Settings) -> Watch:
    st = settings
    return Watch(
        rates=Rates(st.live_rate_baseline, st.live_rate_elevated, st.live_rate_high),
        max_streams=st.live_max_streams,
        max_per_owner=st.live_max_streams_per_key,
        max_frame_bytes=st.live_max_frame_bytes,
        buffer_seconds=st.live_buffer_seconds,
        buffer_bytes=st.live_buffer_bytes,
        max_buffer_bytes=st.live_max_buffer_bytes,
        high_score=st.live_high_score,
    )


@dataclass(frozen=True)
class Admitted:
    """A pushed frame's sampling decision, taken before its body is looked at."""

    stream: Stream
    ts: float
    sampled: bool
    received: float


class LiveService:
    def __init__(
        self,
        settings: Settings,
        scans: ScanService,
        pipeline: Pipeline,
        actions: ActionService,
        evidence: EvidenceService,
        audit: AuditService,
        *,
        bands: Bands | None = None,
        chat_alert: ChatAlert | None = None,
        watch: Watch | None = None,
        claims: StreamClaims | None = None,
    ):
        self.settings, self.scans, self.pipeline = settings, scans, pipeline
        self.actions, self.evidence, self.audit = actions, evidence, audit
        self.bands = bands or (lambda ids: {})
        self.chat_alert = chat_alert or (lambda conversation_id: False)
        self.watch = watch or watch_for(settings)
        #: Which process holds each stream, in the database (``None``: this process alone, as in bench/).
        self.claims = claims
        self._pullers: dict[str, Puller] = {}
        #: The proxy every pulled HTTP(S) request goes through (started with the first pull).
        self._guard: Guard | None = None
        self._chat_at: dict[str, float] = {}
        self._lock = threading.Lock()
        #: Seals alert clips into the evidence store, one at a time, off the frames' path.
        self._evidence = ThreadPoolExecutor(1, thread_name_prefix="live-evidence")

    # ------------------------------------------------------------------ streams

    def register(
        self,
        actor: str,
        stream_id: str,
        broadcaster: str,
        *,
        source: str = "push",
        url: str | None = None,
        viewers: list[str] | None = None,
        chat_conversation: str | None = None,
    ) -> dict:
        if viewers is not None and len(viewers) > MAX_VIEWERS:
            raise SafeholdError("live.too_many_viewers", f"At most {MAX_VIEWERS} viewers at registration.", status=422)
        if source == "url" and url is not None:
            check_url(url, self.settings.live_pull_allow)
            self._check_pulls()
        if self.claims is not None:
            self.claims.claim(stream_id, actor)
        try:
            stream = self.watch.register(
                stream_id, broadcaster, source=source, url=url, viewers=viewers, chat=chat_conversation, owner=actor
            )
        except SafeholdError as e:
            if e.code != "live.stream_exists":  # (that one is held here: its claim stands)
                self._release(stream_id)
            raise
        self._age_risk(stream, [broadcaster], "minor_broadcaster")
        self._age_risk(stream, stream.viewers, "minor_viewer")
        self._chat_risk(stream, force=True)
        if source == "url":
            self._pull(stream)
        detail = {"broadcaster": broadcaster, "source": source, "viewers": len(stream.viewers)}
        self.audit.record(None, actor, "live.register", f"stream:{stream_id}", detail)
        return self.describe(stream)

    def describe(self, stream: Stream) -> dict:
        out = stream.to_dict(self.watch.rates, self.watch.high_score)
        puller = self._pullers.get(stream.id)
        if puller is not None:
            out["pull"] = {"frames": puller.frames, "error": puller.error}
        return out

    def stream(self, stream_id: str) -> Stream:
        """The stream this process holds; ``live.elsewhere`` (421) when another process does, so a misrouted
        request is told apart from a stream nobody watches (``live.stream_not_found``)."""
        try:
            stream = self.watch.get(stream_id)
        except NotFound:
            stream = None
        if (stream is None or stream.status == "ended") and self.claims is not None:
            holder = self.claims.holder(stream_id)  # (ended here, the id may have been registered elsewhere since)
            if holder is not None:
                raise elsewhere(stream_id, holder)
        if stream is None:
            raise NotFound("live.stream_not_found", f"No stream {stream_id!r} under watch.")
        return stream

    def _release(self, stream_id: str) -> None:
        if self.claims is not None:
            self.claims.release(stream_id)

    def get(self, stream_id: str) -> dict:
        return self.describe(self.stream(stream_id))

    def list(self, *, ended: bool = False) -> list[dict]:
        return [self.describe(s) for s in self.watch.streams(ended=ended)]

    @property
    def process(self) -> str:
        """``host:pid`` of this process: the streams listed are the ones it holds."""
        return self.claims.process if self.claims is not None else this_process()

    def buffers(self) -> dict:
        """What this process's ring buffers hold together, within ``live_max_buffer_bytes``, and how many frames
        that bound has dropped (each a second less of some stream's clip)."""
        return self.watch.pool.to_dict()

    def end(self, actor: str, stream_id: str) -> dict:
        stream = self.watch.close(self.stream(stream_id))
        self._release(stream_id)
        with self._lock:
            puller = self._pullers.pop(stream_id, None)
            self._chat_at.pop(stream_id, None)
        if puller is not None:
            puller.stop()
        self.audit.record(None, actor, "live.end", f"stream:{stream_id}", {"sampled": stream.sampled})
        return self.describe(stream)

    def puller(self, stream_id: str) -> Puller | None:
        """The reader of a pulled stream (``None`` for a pushed or ended one)."""
        return self._pullers.get(stream_id)

    def flush(self) -> None:
        """Wait until every clip taken so far is sealed in the evidence store."""
        self._evidence.submit(lambda: None).result()

    def close(self) -> None:
        """Stop every pulled stream and seal the clips still waiting (the process is stopping)."""
        with self._lock:
            pullers, self._pullers = list(self._pullers.values()), {}
            guard, self._guard = self._guard, None
        for p in pullers:
            p.stop()
        if guard is not None:
            guard.close()
        self._evidence.shutdown(wait=True)
        if self.claims is not None:
            try:
                self.claims.release_all()
            except Exception:  # the database is away: the claims name a dead pid, known dead on this machine
                log.warning("live: could not release this process's stream claims", exc_info=True)

    # --------------------------------------------------------------------- risk

    def signal(self, actor: str, stream_id: str, reason: str, *, score: float | None = None, viewers=()) -> dict:
        """What the platform reports about a stream: a reason of :data:`safehold.live.sampling.REASONS`, or
        viewers joining (``viewers``), whose age signals are looked up."""
        stream = self.stream(stream_id)
        if viewers:
            new = [v for v in viewers if v not in stream.viewers][: max(0, MAX_VIEWERS - len(stream.viewers))]
            stream.viewers.extend(new)
            self._age_risk(stream, new, "minor_viewer")
        if reason is not None:
            self.watch.raise_risk(stream_id, reason, score)
        return self.describe(stream)

    def _age_risk(self, stream: Stream, accounts: list[str], reason: str) -> None:
        if accounts and any(is_minor(b) for b in self.bands(list(accounts)).values()):
            stream.risk.add(reason)

    def _chat_risk(self, stream: Stream, *, force: bool = False) -> None:
        if stream.chat is None or "grooming_alert" in stream.risk.reasons:
            return
        now = time.monotonic()
        if not force and now - self._chat_at.get(stream.id, 0.0) < CHAT_EVERY:
            return
        self._chat_at[stream.id] = now
        try:
            alert = self.chat_alert(stream.chat)
        except SafeholdError:
            alert = False  # no such conversation (yet)
        if alert:
            stream.risk.add("grooming_alert")

    # ------------------------------------------------------------------- frames

    def push(self, actor: str, stream_id: str, data: bytes, captured_at: float | None = None) -> dict:
        """A frame the platform pushes, captured at ``captured_at`` (seconds since the epoch; default: now)."""
        admitted = self.admit(stream_id, captured_at)
        return self.judge(actor, admitted, data) if admitted.sampled else self.skipped(admitted)

    def admit(self, stream_id: str, captured_at: float | None = None) -> Admitted:
        """Whether a frame captured then is sampled: in memory, no I/O (the API asks it on its event loop and
        sends only sampled frames to a worker thread)."""
        received = time.perf_counter()
        now = time.time()
        if captured_at is not None and captured_at > now + MAX_AHEAD:
            message = f"A frame's captured_at is at most {MAX_AHEAD:g} s ahead of this server's clock ({now:.3f})."
            raise SafeholdError("live.captured_at", message, status=422, detail={"now": now})
        ts = now if captured_at is None else captured_at
        self.stream(stream_id)  # (the database is read only for a stream this process does not hold)
        stream, sampled = self.watch.admit(stream_id, ts)
        return Admitted(stream, ts, sampled, received)

    def skipped(self, admitted: Admitted) -> dict:
        return self._answer(Offered(admitted.stream, False), admitted.ts, admitted.received)

    def judge(self, actor: str, admitted: Admitted, data: bytes) -> dict:
        """A sampled frame judged: hashed, matched, and what the pipeline makes of it."""
        ts = admitted.ts
        offered = self.watch.judge(
            admitted.stream, data, ts, lambda stream, frame: self._judge(actor, stream, frame, ts)
        )
        return self._answer(offered, ts, admitted.received)

    def _answer(self, offered: Offered, ts: float, received: float) -> dict:
        stream = offered.stream
        out = {
            "stream": stream.id,
            "captured_at": ts,
            "sampled": offered.sampled,
            "rate": self.watch.rate(stream),
            "risk": stream.risk.level(self.watch.high_score),
            "status": stream.status,
        }
        if offered.sampled:
            v = offered.verdict
            out["verdict"] = v.verdict
            out["pdq"] = v.pdq
            detail = v.detail or {}
            out["case"] = detail.get("case")
            out["interrupted"] = detail.get("interrupted", False)
            out["evidence"] = detail.get("evidence")
            out["took_ms"] = round((time.perf_counter() - received) * 1000, 1)
        return out

    def _judge(self, actor: str, stream: Stream, data: bytes, ts: float) -> Verdict:
        self._chat_risk(stream)
        scan = self.scans.evaluate(self.scans.hash_bytes(data), channel="live")
        pdq = next((s for s in scan.signals if s["type"] == "pdq"), None)
        matched = scan.verdict == "match"
        sub = Submission(
            detection=Detection(
                source="livestream",
                content_id=f"live:{stream.id}",
                account_id=stream.broadcaster,
                item_metadata={"stream": stream.id, "captured_at": ts, "live": True},
            ),
            scans=[scan],
            media=data,
            filename=f"{stream.id}-{ts:.3f}.{_extension(data)}",
            source="livestream",  # the case waits in the live queue, whatever found the frame
            sighting=False,  # a live frame is transient: not a sighting kept for re-matching
            age_reasons=[],
            on_match=[(DOOR, "interrupt", {"stream_id": stream.id, "captured_at": ts, "reason": "known_material"})],
        )
        ruled = self.pipeline.rule(sub)
        score = _classifier_score(ruled.detection) if ruled is not None else None
        detail: dict = {}
        if ruled is not None:
            # Scoped to the caller, stream and capture time; hashed, so a long actor and stream id still fit the key.
            key = "live:" + hashlib.sha256(f"{actor}\0{stream.id}\0{ts!r}".encode()).hexdigest()
            digest = hashlib.sha256(data).hexdigest()

            def answer(ref: CaseRef | None) -> dict:
                return {"case": ref.to_dict() if ref else None}

            try:
                result = self.pipeline.commit(ruled, key=key, digest=digest, actor=actor, answer=answer) or {}
            except Conflict:
                result = {}  # the same capture time again with another frame: judged, not recorded twice
            case = result.get("case")
            detail["case"] = case
            if case is not None:
                stream.case_id = case["id"]
            if matched and ruled.door and case is not None:
                detail["interrupted"] = True
                stream.status = "interrupted"
                detail["evidence"] = self._preserve(actor, stream, case["id"], ts, data, pdq)
        return Verdict(
            scan.verdict,
            pdq["value"] if pdq else None,
            pdq.get("quality") if pdq else None,
            detail=detail,
            score=score,
        )

    def _preserve(self, actor: str, stream: Stream, case_id: int, ts: float, data: bytes, pdq: dict | None) -> str:
        """The ring buffer (with the matching frame, not yet in it) taken now and sealed as one clip on the case by
        the evidence thread, off the frame's path: the verdict (and the interrupt, queued with the case) does not
        wait for the encryption and the write. Returns the clip's source key."""
        buffer = stream.buffer
        with stream.lock:
            if not any(f.ts == ts for f in buffer.frames(last=2)):
                buffer.add(Frame(ts, data, image_kind(data) or "jpeg", pdq["value"] if pdq else None, "match"))
            clip = buffer.clip({"stream": stream.id, "broadcaster": stream.broadcaster, "alert_at": ts})
            frames = len(buffer)
        key = f"live:{stream.id}:clip:{ts:.3f}"[:128]
        self._evidence.submit(self._seal, actor, stream, case_id, key, clip, frames, ts)
        return key

    def _seal(self, actor: str, stream: Stream, case_id: int, key: str, clip: bytes, frames: int, ts: float) -> None:
        try:
            self.evidence.preserve_bytes(
                case_id,
                key,
                clip,
                kind="media",
                actor=actor,
                filename=f"{stream.id}-clip.zip"[:256],
                media_type="application/zip",
                account_id=stream.broadcaster,
                metadata={"stream": stream.id, "frames": frames, "alert_at": ts},
            )
        except Exception:  # logged, never lost silently: the case and its matching frame are recorded already
            log.exception("live: the clip of stream %s could not be preserved", stream.id)

    def recent(self, stream_id: str) -> list[dict]:
        """The last sampled frames of a stream (the console's timeline): capture time and verdict, no content."""
        frames = self.stream(stream_id).buffer.frames(last=RECENT)
        return [{"captured_at": f.ts, "verdict": f.verdict, "pdq": f.pdq} for f in frames]

    def preview(self, stream_id: str, n: int) -> tuple[bytes, str]:
        """The ``n``-th of :meth:`recent` as a blurred greyscale preview (made here: the clear frame never leaves)."""
        frames = self.stream(stream_id).buffer.frames(last=RECENT)
        if not 0 <= n < len(frames):
            raise NotFound("live.frame_not_found", f"Stream {stream_id!r} has no buffered frame {n}.")
        return media.preview(frames[n].data, "image")

    # --------------------------------------------------------------------- pull

    def _check_pulls(self) -> None:
        """Each pulled stream is an ffmpeg process decoding every frame: far dearer than a pushed one, so bounded
        on its own (``live_max_pulls``), below the streams' bound."""
        with self._lock:
            pulling = sum(1 for p in self._pullers.values() if p.alive)
        if pulling >= self.settings.live_max_pulls:
            raise SafeholdError(
                "live.too_many_pulls",
                f"{pulling} streams are being pulled, the most this server pulls at once (live_max_pulls).",
                status=503,
                headers={"Retry-After": "10"},
                detail={"limit": self.settings.live_max_pulls},
            )

    def _pull(self, stream: Stream) -> None:
        def on_frame(data: bytes, ts: float) -> bool:
            if stream.status == "ended":
                return False
            try:
                self.watch.offer(stream.id, data, ts, lambda s, frame: self._judge("live:pull", s, frame, ts))
            except SafeholdError as e:
                log.warning("live: a pulled frame of stream %s was refused: %s", stream.id, e.code)
            return stream.status != "ended"

        with self._lock:
            if self._guard is None:
                self._guard = Guard(self.settings.live_pull_allow)
            proxy = self._guard.url

        def on_end(error: str | None) -> None:
            # The source ended or failed: nothing is watched any more, so the stream is not shown as watching,
            # nor holds a place under the bounds. (Ended by the platform already: nothing to do.)
            if stream.status != "ended":
                self.watch.close(stream)
                self._release(stream.id)
                detail = {"error": error, "sampled": stream.sampled}
                self.audit.record(None, "live:pull", "live.pull_ended", f"stream:{stream.id}", detail)

        puller = Puller(
            stream.url,
            on_frame,
            fps=self.watch.rates.high,
            ffmpeg=self.settings.live_ffmpeg,
            proxy=proxy,
            on_end=on_end,
        )
        with self._lock:
            self._pullers[stream.id] = puller
        try:
            puller.start()
        except SafeholdError:
            self.watch.end(stream.id)
            self._release(stream.id)
            raise

    # ---------------------------------------------------------------- by hand

    def interrupt(self, actor: str, stream_id: str, note: str | None = None) -> dict:
        """A person interrupts a stream (the console's button): the stream's case (opened now if it has none)
        gets an ``interrupt`` action taken by hand, whose webhook the platform receives."""
        stream = self.stream(stream_id)
        case_id = stream.case_id
        if case_id is None:
            signal = DetectionSignal(
                source="livestream",
                signal_type="interrupt",
                category="livestream",
                detail={"by": actor, "note": note or "", "risk": stream.risk.to_dict(self.watch.high_score)},
            )
            d = Detection(
                source="livestream", content_id=f"live:{stream.id}", account_id=stream.broadcaster, signals=[signal]
            )
            case_id = stream.case_id = self.pipeline.cases.record(d, actor).id
        action = self.actions.take(
            case_id, "interrupt", actor, params={"stream_id": stream.id, "reason": "manual", "note": note or ""}
        )
        stream.status = "interrupted"
        return {"stream": self.describe(stream), "action": action}


def _classifier_score(d: Detection) -> float | None:
    scores = [sig.confidence for sig in d.signals if sig.source == "classifier"]
    noted = [n["score"] for n in d.item_metadata.get("classifier_scores", [])]
    return max(scores + noted, default=None)


def _extension(data: bytes) -> str:
    return "png" if image_kind(data) == "png" else "jpg"
