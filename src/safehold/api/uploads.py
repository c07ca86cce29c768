"""Reading uploads with a size cap, so a huge body is refused before it is held in memory."""

from __future__ import annotations

from fastapi import UploadFile

from safehold.errors import SafeholdError

CHUNK = 1024 * 1024


async def read_capped(upload: UploadFile, max_bytes: int) -> bytes:
    chunks, size = [], 0
    while chunk := await upload.read(CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise SafeholdError("media.too_large", f"The upload is larger than {max_bytes} bytes.", status=413)
        chunks.append(chunk)
    if size == 0:
        raise SafeholdError("media.empty", "The uploaded file is empty.")
    return b"".join(chunks)
