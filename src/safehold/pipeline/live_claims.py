"""Which API process holds each live stream, in the database, so that every process can tell a stream it has never
heard of from one another process watches.

A stream's sampler, risk and ring buffer live in the memory of the process that registered it (a frame's path never
touches the database). With several API processes (``safehold serve --workers N``, or several machines) a request
for a stream must reach that process; one that reaches another is answered ``421 live.elsewhere`` naming the
holder, never ``404`` — the platform's balancer is misrouting, the stream is not gone. Only registration, ending
and a request this process cannot answer from memory read or write this table.

A claim outlives its process when that process dies without ending its streams. A holder on this machine
(``host:pid``) whose pid is gone is known dead, so its streams may be registered again here; a holder on another
machine cannot be checked from here and is believed until the stream is ended there, or that process ends (a
process releases its claims when it closes).
"""

from __future__ import annotations

import os
import socket

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from safehold.errors import SafeholdError
from safehold.store.db import Database
from safehold.store.models import LiveStreamClaim, utcnow

_HOST = socket.gethostname()[:100] or "host"


def this_process() -> str:
    return f"{_HOST}:{os.getpid()}"


def _alive(process: str) -> bool:
    """Whether ``host:pid`` may still be running: checked for this machine's processes, believed for others."""
    host, _, pid = process.rpartition(":")
    if host != _HOST or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def elsewhere(stream_id: str, process: str) -> SafeholdError:
    return SafeholdError(
        "live.elsewhere",
        f"Stream {stream_id!r} is watched by another Safehold process ({process}), which alone holds its frames: "
        "route every request of a stream to one process (docs/deployment.md, 'Live streams behind several "
        "processes').",
        status=421,
        detail={"process": process, "this_process": this_process()},
    )


class StreamClaims:
    def __init__(self, db: Database, process: str | None = None):
        self.db = db
        self.process = process or this_process()

    def claim(self, stream_id: str, owner: str | None) -> None:
        """Record that this process holds ``stream_id``; ``live.elsewhere`` if a live process holds it."""
        try:
            with self.db.session() as s:
                row = s.get(LiveStreamClaim, stream_id, with_for_update=True)
                if row is None:
                    s.add(LiveStreamClaim(stream_id=stream_id, process=self.process, owner=owner))
                    return
                if row.ended_at is None and row.process != self.process and _alive(row.process):
                    raise elsewhere(stream_id, row.process)
                row.process, row.owner, row.registered_at, row.ended_at = self.process, owner, utcnow(), None
        except IntegrityError:  # another process claimed it at the same moment
            raise elsewhere(stream_id, self.holder(stream_id) or "another process") from None

    def release(self, stream_id: str) -> None:
        """The stream ended here (only this process's own claim is touched)."""
        with self.db.session() as s:
            s.execute(
                update(LiveStreamClaim)
                .where(LiveStreamClaim.stream_id == stream_id, LiveStreamClaim.process == self.process)
                .where(LiveStreamClaim.ended_at.is_(None))
                .values(ended_at=utcnow())
            )

    def release_all(self) -> None:
        """This process is closing: its streams end with it."""
        with self.db.session() as s:
            s.execute(
                update(LiveStreamClaim)
                .where(LiveStreamClaim.process == self.process, LiveStreamClaim.ended_at.is_(None))
                .values(ended_at=utcnow())
            )

    def holder(self, stream_id: str) -> str | None:
        """The live process other than this one that holds ``stream_id``, or ``None``."""
        with self.db.session() as s:
            row = s.get(LiveStreamClaim, stream_id)
            if row is None or row.ended_at is not None or row.process == self.process:
                return None
            return row.process if _alive(row.process) else None
