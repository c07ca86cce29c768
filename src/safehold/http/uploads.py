"""Reading uploads with a size cap, so a huge body is refused before it is held in memory, and with a share of
the process's upload memory, so concurrency cannot multiply it.

An upload is hashed from memory: collecting its pieces and joining them holds about twice its size for a moment,
and the joined copy until the request ends. Fifty clients each sending a 65 MB file would hold gigabytes. So the
request-limits middleware gives every upload request an :class:`UploadHold` on a process-wide
:class:`~safehold.signals.budget.WorkBudget` of ``SAFEHOLD_MAX_UPLOAD_BYTES_IN_FLIGHT`` bytes;
:func:`read_capped` (files that Starlette spooled) and :func:`safehold.api.multipart.read_upload_form` (the
scanning routes) reserve the upload's share before reading it, and the middleware gives the share back when the
response is sent.
A request that cannot get its share within ``SAFEHOLD_MEDIA_BUSY_WAIT_SECONDS`` is refused with 503 ``media.busy``
and ``Retry-After`` before the file is read.
"""

from __future__ import annotations

from contextvars import ContextVar

from fastapi import UploadFile
from starlette.concurrency import run_in_threadpool

from safehold.errors import SafeholdError
from safehold.signals.budget import WorkBudget

CHUNK = 1024 * 1024
#: Bytes held per byte uploaded: the pieces read and the joined copy exist together for a moment.
HELD_PER_BYTE = 2


class UploadHold:
    """The upload memory one request has reserved; released as a whole when the request ends."""

    def __init__(self, budget: WorkBudget):
        self.budget = budget
        self.weights: list[int] = []

    async def reserve(self, size: int) -> None:
        weight = size * HELD_PER_BYTE
        try:
            got = self.budget.acquire(weight, wait=0)  # the usual case: room at once, no thread needed
        except SafeholdError:
            got = await run_in_threadpool(self.budget.acquire, weight)
        self.weights.append(got)

    def release(self) -> None:
        while self.weights:
            self.budget.release(self.weights.pop())


#: The hold of the request being served (set by the request-limits middleware for upload routes).
current_hold: ContextVar[UploadHold | None] = ContextVar("safehold_upload_hold", default=None)


async def read_capped(upload: UploadFile, max_bytes: int) -> bytes:
    size = upload.size
    if size is not None and size > max_bytes:
        raise SafeholdError("media.too_large", f"The upload is larger than {max_bytes} bytes.", status=413)
    hold = current_hold.get()
    if hold is not None:
        await hold.reserve(max_bytes if size is None else size)
    chunks, size = [], 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise SafeholdError("media.too_large", f"The upload is larger than {max_bytes} bytes.", status=413)
        chunks.append(chunk)
    if size == 0:
        raise SafeholdError("media.empty", "The uploaded file is empty.")
    return b"".join(chunks)
