"""Multipart uploads read straight into memory, in the event loop, counted as they arrive.

Starlette's form parser spools every file to a temporary file and, once past 1 MiB, hands each 64 KB piece to a
worker thread to write it; the route then reads the file back to hash it. For one 65 MB upload that is about a
thousand thread hand-offs and the file written and read once more. Under hostile load those hand-offs were the
largest holder of the interpreter lock in the server (py-spy), and every other request waited behind them.

The scanning routes hash from memory anyway, and the memory an upload may hold is reserved before its body is
read (:class:`safehold.http.uploads.UploadHold`), so their forms are parsed here instead: ``python-multipart``'s
parser over the request stream, file parts collected as ``bytes``, text fields capped. A file over the size limit
stops being collected at once and is reported on its part (``media.too_large``), so a batch can answer the other
files; bank imports, which may be far larger than memory should hold, keep Starlette's spooled parser.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from safehold.errors import SafeholdError
from safehold.http.uploads import current_hold

#: Text fields of an upload form are short (ids, a JSON event); each is capped at this many bytes.
MAX_FIELD_BYTES = 1024 * 1024
MAX_FIELDS = 32
MAX_PART_HEADERS = 8
#: RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
MAX_BOUNDARY = 70
#: Fields that hold files whether or not their part names a file (``curl -F 'file=<photo.jpg'`` sends none);
#: ``photo`` and ``video`` are HMA's (its upload field is named after the content type).
FILE_FIELDS = frozenset({"file", "files", "photo", "video"})


def invalid(message: str) -> SafeholdError:
    return SafeholdError("request.invalid_multipart", message)


@dataclass
class FilePart:
    """One uploaded file: its form field, its file name, its bytes, or the reason it was not kept."""

    field: str
    filename: str | None
    data: bytes = b""
    error: SafeholdError | None = None

    def content(self) -> bytes:
        """The bytes, or the part's error raised (``media.too_large``, ``media.empty``)."""
        if self.error is not None:
            raise self.error
        return self.data


@dataclass
class UploadForm:
    files: list[FilePart] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def file(self, name: str) -> FilePart | None:
        return next((f for f in self.files if f.field == name), None)

    def all_files(self, name: str) -> list[FilePart]:
        return [f for f in self.files if f.field == name]


class _Collector:
    """python-multipart callbacks that build an :class:`UploadForm` within the limits."""

    def __init__(self, max_file_bytes: int, max_files: int):
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.form = UploadForm()
        self._header_name = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._pieces: list[bytes] = []
        self._size = 0
        self._file: FilePart | None = None
        self._field: str | None = None
        #: A part has begun and not ended: the body stopped in the middle of it.
        self.unfinished = False

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_val,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self._headers, self._pieces, self._size = {}, [], 0
        self._file, self._field = None, None
        self.unfinished = True

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_val(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if len(self._headers) >= MAX_PART_HEADERS:
            raise invalid(f"A part of the form has more than {MAX_PART_HEADERS} headers.")
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_done(self) -> None:
        disposition, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in params:
            raise invalid("Every part of the form needs 'Content-Disposition: form-data; name=...'.")
        name = _text(params[b"name"], "a field name")
        if b"filename" in params or name in FILE_FIELDS:
            if len(self.form.files) >= self.max_files:
                raise invalid(f"The form has more than {self.max_files} files.")
            # a file name is only a label: a client's other encoding must not refuse the file
            filename = params.get(b"filename", b"").decode(errors="replace")
            self._file = FilePart(name, filename or None)
            self.form.files.append(self._file)
        else:
            if len(self.form.fields) >= MAX_FIELDS:
                raise invalid(f"The form has more than {MAX_FIELDS} text fields.")
            self._field = name

    def _data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        part = self._file
        if part is None:
            if self._size > MAX_FIELD_BYTES:
                raise invalid(f"A text field of the form is longer than {MAX_FIELD_BYTES} bytes.")
        elif part.error is not None:
            return
        elif self._size > self.max_file_bytes:
            part.error = SafeholdError(
                "media.too_large", f"The upload is larger than {self.max_file_bytes} bytes.", status=413
            )
            self._pieces = []  # what was collected goes now, not when the request ends
            return
        self._pieces.append(data[start:end])

    def _end(self) -> None:
        self.unfinished = False
        body = b"".join(self._pieces)
        self._pieces = []
        if self._file is not None:
            if self._file.error is None:
                if not body:
                    self._file.error = SafeholdError("media.empty", "The uploaded file is empty.")
                self._file.data = body
        elif self._field is not None:
            self.form.fields[self._field] = _text(body, f"the field {self._field!r}")


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise invalid(f"{what[0].upper()}{what[1:]} of the form is not UTF-8.") from None


async def read_upload_form(request: Request, *, max_file_bytes: int, max_files: int = 1) -> UploadForm:
    """The multipart form of ``request``, files in memory.

    The request's upload hold (set by the request-limits middleware) is charged for the whole body before the
    first byte is read: its ``Content-Length``, or the most a file may be when the body is chunked.
    """
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > MAX_BOUNDARY:
        raise invalid(f"A multipart request needs a boundary of 1 to {MAX_BOUNDARY} characters in its Content-Type.")
    hold = current_hold.get()
    if hold is not None:
        declared = request.headers.get("content-length", "")
        await hold.reserve(min(int(declared), max_file_bytes) if declared.isdigit() else max_file_bytes)
    collector = _Collector(max_file_bytes, max_files)
    try:
        parser = MultipartParser(boundary, collector.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise invalid(f"The multipart body is malformed: {exc}.") from None
    except ClientDisconnect:
        raise invalid("The client went away before the whole body arrived.") from None
    if collector.unfinished:
        raise invalid("The multipart body ends in the middle of a part.")
    return collector.form
