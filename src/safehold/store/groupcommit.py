"""Group commit: many requests' writes in one database transaction, each request answered once its own committed.

One transaction per chat message or event costs more than the detectors that decide it (a commit on PostgreSQL is
a round trip and a WAL flush; on SQLite a file sync): at one transaction per item a server takes about a hundred
items a second. With group commit a request hands its *work* — a function of a session that does the request's
reads and writes and returns its answer — to a committer thread, which runs the work of every request waiting
(up to ``max_batch``) in one transaction, then answers each.

The guarantees, the same as one transaction per request:

- **Acknowledged means durable.** A request is answered only after the transaction holding its writes committed;
  a crash before that loses only unacknowledged work, which the client retries.
- **Idempotency in the same transaction.** Each door's idempotency records (a conversation's message ids, an
  event's key) are written by the work itself, so they commit or vanish with what they protect. A retry that
  arrives while the first attempt waits in a batch goes to the same writer (same ``key``) and runs after it, in
  the same or a later transaction, so it sees the first attempt's record: it is a duplicate, never counted twice.
- **Order and no lost update.** Work is partitioned by ``key`` (a conversation, an event's subject): one key
  always goes to the same writer, which runs its work in arrival order, each seeing the writes before it (the
  same session). Rows are still locked as before (``SELECT … FOR UPDATE``, SQLite's writer lock), so other
  writers and other processes stay correct too.
- **One bad item fails alone.** When one work raises (bad data, a constraint), the transaction is rolled back,
  that request is answered with its error, and the rest of the batch is run again without it. When the commit
  itself fails, each item of the batch is run in its own transaction, so each gets its own answer.
- **Observable.** ``/metrics`` shows the items waiting (``safehold_group_commit_waiting``), the batch sizes
  (``safehold_group_commit_batch_size``) and the refusals (``safehold_group_commit_refused``).
- **Bounded.** At most ``max_queue`` items wait; one more is refused at once with 503 ``intake.busy`` and
  ``Retry-After`` (the client retries later), instead of memory growing under overload.
- **Shed by age.** An item that waited longer than ``max_wait_ms`` (longer than its client waits) is answered
  503 ``intake.busy`` *without running its work*: it was never acknowledged, so the client's retry is safe, and
  an overload does not turn into work done for clients that already gave up (which keeps the queue old for
  everyone behind them).
- **Batch-shaped where a door allows.** A work wrapped in :class:`Batched` names a *runner* that does the work of
  all its batch's items together (one multi-row claim, one read and one update per conversation: a few statements
  per batch instead of a few per item). The runner answers each item (a result, or an exception returned for that
  item). If a runner raises, the batch's transaction is rolled back and the batch is run again the plain way,
  item by item, where one bad item fails alone as above.

SQLite has one writer: it gets one committer. PostgreSQL gets ``writers`` of them, so one batch's commit overlaps
the next batch's work. ``interval_ms = 0`` turns group commit off: each work runs in its own transaction in the
caller's thread, as before.

A work may *return* an exception (say a 409 for a reused key): its caller raises it, while the batch (and the
work's own writes, usually none) commits. A work that *raises* is rolled back.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from safehold.errors import SafeholdError
from safehold.metrics import GROUP_COMMIT_BATCH, GROUP_COMMIT_REFUSED, GROUP_COMMIT_SHED, GROUP_COMMIT_WAITING
from safehold.store.db import Database

log = logging.getLogger(__name__)

Work = Callable[[Session], Any]
#: Shed items are logged at most this often (seconds), with how many since the last line.
SHED_LOG_EVERY = 10.0


@dataclass(frozen=True)
class Batched:
    """A work that may run together with the other works of its ``runner`` in a batch.

    ``runner(session, args)`` does the work of every item (``args``, in arrival order) and returns one answer per
    item, in order: what ``work`` would have returned. ``work`` is the same item alone (the fallback). Called as a
    plain work it runs ``work``, so a door's work can be used with group commit off too."""

    runner: Callable[[Session, list[Any]], list[Any]]
    arg: Any
    work: Work

    def __call__(self, s: Session) -> Any:
        return self.work(s)


@dataclass
class _Item:
    """A queued work and what waits for its answer: a thread's :class:`Future`, or an asyncio future with its
    ``loop`` (:meth:`GroupCommit.run_async`: answered on that loop, with no thread and no second future)."""

    key: str
    work: Work
    future: Future | asyncio.Future
    loop: asyncio.AbstractEventLoop | None = None
    enqueued: float = field(default_factory=time.monotonic)


class _Writer:
    def __init__(self) -> None:
        self.items: collections.deque[_Item] = collections.deque()
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None


class GroupCommit:
    """Runs works in shared transactions; see the module docs. ``GroupCommit(db)`` alone is off."""

    def __init__(
        self,
        db: Database,
        *,
        interval_ms: float = 0.0,
        max_batch: int = 200,
        max_queue: int = 10_000,
        writers: int = 1,
        max_wait_ms: float = 5_000.0,
    ):
        self.db = db
        self.interval = interval_ms / 1000.0
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.max_wait = max_wait_ms / 1000.0
        sqlite = db.engine.dialect.name == "sqlite"
        self._writers = [_Writer() for _ in range(1 if sqlite else max(1, writers))]
        self._lock = threading.Lock()
        self._shed_logged, self._shed_since_log = -SHED_LOG_EVERY, 0
        self._waiting = 0
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def run(self, key: str, work: Work) -> Any:
        """Run ``work`` (in a shared transaction when on), wait for its commit and return its answer."""
        if not self.enabled:
            with self.db.session() as s:
                result = work(s)
        else:
            result = self.submit(key, work).result()
        if isinstance(result, BaseException):
            raise result
        return result

    async def run_async(self, key: str, work: Work) -> Any:
        """:meth:`run` for a caller on an event loop (group commit on): waits for the commit without a thread."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._enqueue(_Item(key, work, future, loop))
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    def submit(self, key: str, work: Work) -> Future:
        """Queue ``work`` on ``key``'s writer; the future is done once its transaction committed (or it failed).
        Raises ``intake.busy`` (503) when ``max_queue`` items already wait."""
        item = _Item(key, work, Future())
        self._enqueue(item)
        return item.future

    def _enqueue(self, item: _Item) -> None:
        with self._lock:
            if self._closed:
                raise SafeholdError("intake.closed", "The server is shutting down; retry.", status=503)
            if self._waiting >= self.max_queue:
                GROUP_COMMIT_REFUSED.inc()
                raise _busy(
                    f"{self._waiting} items are waiting to be written; retry in a second.",
                    {"retry_after": 1, "max_queue": self.max_queue},
                )
            self._waiting += 1
        GROUP_COMMIT_WAITING.inc()
        writer = self._writers[zlib.crc32(item.key.encode()) % len(self._writers)]
        with writer.cond:
            if writer.thread is None:
                writer.thread = threading.Thread(
                    target=self._loop, args=(writer,), name="safehold-groupcommit", daemon=True
                )
                writer.thread.start()
            writer.items.append(item)
            writer.cond.notify()

    def close(self) -> None:
        """Refuse new work, finish what is queued, stop the writers."""
        with self._lock:
            self._closed = True
        for writer in self._writers:
            with writer.cond:
                writer.cond.notify_all()
            if writer.thread is not None:
                writer.thread.join(timeout=30)

    # ---------------------------------------------------------------- the writer

    def _loop(self, writer: _Writer) -> None:
        while True:
            with writer.cond:
                while not writer.items and not self._closed:
                    writer.cond.wait()
                if not writer.items:
                    return
                # Commit when the oldest item has waited the interval or a batch is full: items that queued
                # during the previous commit have waited already, so a busy writer never idles.
                deadline = writer.items[0].enqueued + self.interval
                while len(writer.items) < self.max_batch and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    writer.cond.wait(left)
                batch = [writer.items.popleft() for _ in range(min(self.max_batch, len(writer.items)))]
            try:
                self._commit(self._shed(batch))
            except BaseException as exc:  # never leave a caller waiting
                log.exception("group commit failed")
                for item in batch:
                    _settle(item, error=exc)
            finally:
                with self._lock:
                    self._waiting -= len(batch)
                GROUP_COMMIT_WAITING.dec(len(batch))
                GROUP_COMMIT_BATCH.observe(len(batch))

    def _shed(self, batch: list[_Item]) -> list[_Item]:
        """The items of ``batch`` still worth doing; those that waited past ``max_wait`` are answered 503 without
        their work being run (their clients have given up, or are about to: they retry)."""
        cutoff = time.monotonic() - self.max_wait
        if batch[0].enqueued >= cutoff:  # arrival order: the oldest is first
            return batch
        kept = [item for item in batch if item.enqueued >= cutoff]
        GROUP_COMMIT_SHED.inc(len(batch) - len(kept))
        with self._lock:  # one log line per SHED_LOG_EVERY seconds at most: an overload sheds in every batch
            self._shed_since_log += len(batch) - len(kept)
            now = time.monotonic()
            if now - self._shed_logged >= SHED_LOG_EVERY:
                log.warning(
                    "shed %d items (503 intake.busy) that waited over %.0f ms for a commit, since the last such line",
                    self._shed_since_log, self.max_wait * 1000,
                )  # fmt: skip
                self._shed_logged, self._shed_since_log = now, 0
        for item in batch:
            if item.enqueued < cutoff:
                waited = round((time.monotonic() - item.enqueued) * 1000)
                _settle(item, error=_busy(f"The item waited {waited} ms to be written; retry in a second.",
                                                 {"retry_after": 1, "waited_ms": waited}))  # fmt: skip
        return kept

    def _commit(self, batch: list[_Item]) -> None:
        if not batch:
            return
        if any(isinstance(item.work, Batched) for item in batch):
            try:
                with self.db.session() as s:
                    results = self._batched(s, batch)
            except Exception as exc:  # run it again the plain way, where one bad item fails alone
                log.info("a batch of %d failed as one (%s); running its items one by one", len(batch), exc)
            else:
                for item, result in zip(batch, results, strict=True):
                    _settle(item, result)
                return
        pending = list(batch)
        while pending:
            failed: tuple[_Item, BaseException] | None = None
            results = []
            try:
                with self.db.session() as s:
                    for item in pending:
                        try:
                            results.append(item.work(s))
                        except Exception as exc:
                            failed = (item, exc)
                            raise
            except Exception as exc:
                if failed is not None:  # that item alone: answer it, run the others again
                    _settle(failed[0], error=failed[1])
                    pending.remove(failed[0])
                    continue
                if len(pending) == 1:
                    _settle(pending[0], error=exc)
                    return
                log.warning("a batch of %d failed to commit (%s); committing its items one by one", len(pending), exc)
                for item in pending:
                    self._alone(item)
                return
            for item, result in zip(pending, results, strict=True):
                _settle(item, result)
            return

    @staticmethod
    def _batched(s: Session, batch: list[_Item]) -> list[Any]:
        """Every item's answer, the :class:`Batched` ones run by their runners. Order per key is kept: a plain
        work, or a work of another runner, whose key has items waiting in a runner's group runs after that group."""
        results: list[Any] = [None] * len(batch)
        groups: dict[Callable, list[int]] = {}
        owner: dict[str, Callable] = {}  # key -> the runner holding its waiting items

        def flush() -> None:
            for runner, idx in groups.items():
                answers = runner(s, [batch[i].work.arg for i in idx])
                if len(answers) != len(idx):
                    raise RuntimeError(f"{runner!r} answered {len(answers)} of {len(idx)} items")
                for i, answer in zip(idx, answers, strict=True):
                    results[i] = answer
            groups.clear()
            owner.clear()

        for i, item in enumerate(batch):
            runner = item.work.runner if isinstance(item.work, Batched) else None
            held = owner.get(item.key)
            if held is not None and held != runner:
                flush()
            if runner is None:
                results[i] = item.work(s)
            else:
                groups.setdefault(runner, []).append(i)
                owner[item.key] = runner
        flush()
        return results

    def _alone(self, item: _Item) -> None:
        try:
            with self.db.session() as s:
                result = item.work(s)
        except Exception as exc:
            _settle(item, error=exc)
        else:
            _settle(item, result)


def _busy(message: str, detail: dict) -> SafeholdError:
    return SafeholdError("intake.busy", message, status=503, detail=detail, headers={"Retry-After": "1"})


def _settle(item: _Item, result: Any = None, *, error: BaseException | None = None) -> None:
    """Answer ``item`` unless its waiter gave up (a cancelled request): what its work wrote stands either way
    (a client's retry finds it), and one cancelled waiter must not spoil the answers of the rest of its batch.
    An asyncio waiter is answered on its own loop."""
    if item.loop is None:
        _answer(item.future, result, error)
        return
    try:
        item.loop.call_soon_threadsafe(_answer, item.future, result, error)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


def _answer(future: Future | asyncio.Future, result: Any, error: BaseException | None) -> None:
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except (InvalidStateError, asyncio.InvalidStateError):  # cancelled (or already answered)
        pass
