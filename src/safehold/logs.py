"""Log records: the request id on each, JSON lines on demand, secrets never written.

A request's id (``X-Request-ID``, see :mod:`safehold.api.telemetry`) lives in a context variable for as long as the
request is served, so every record logged while serving it, in the event loop or a worker thread the request
runs in, carries it (``request_id``; ``-`` outside a request). ``SAFEHOLD_LOG_FORMAT=json`` writes one JSON object
a line, for a log shipper; the default stays human text.

Secrets: the app never logs headers or bodies, and as a second line of defence every record's message is scrubbed
of API keys (``sh_…``), bearer tokens and console session cookies before any handler formats it.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import itertools
import json
import logging
import os
import re
import secrets

FORMATS = ("text", "json")
#: An accepted ``X-Request-ID``: 1–128 characters of a conservative set (ids of proxies, UUIDs, ULIDs), nothing a
#: log line or a header could be broken with.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")
#: The text lines as they always were, with ``[request id]`` before the message of a request's records.
TEXT_FORMAT = "%(levelname)s %(request_tag)s%(message)s"

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("safehold_request_id", default="-")

_SECRETS = re.compile(
    r"(?i)(?P<bearer>bearer\s+)\S+"
    r"|(?P<cookie>safehold_session=)[^;\s]+"
    r"|\bsh_[A-Za-z0-9_-]{6,}"
)


def redact(text: str) -> str:
    """``text`` with API keys, bearer tokens and session cookies replaced by ``[redacted]``."""
    return _SECRETS.sub(lambda m: (m.group("bearer") or m.group("cookie") or "") + "[redacted]", text)


#: New ids: this process's random prefix and a count, unique across processes and restarts without a system call
#: per request (an id is for following a request through the logs, not a secret).
_PREFIX = secrets.token_hex(8)
_COUNT = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNT):08x}"


def accept_request_id(value: str | None) -> str:
    """The caller's id when it is well formed, else a new one (an invalid id is replaced, never refused: a
    request is not failed for its tracing header)."""
    if value is not None and REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


class RequestContext(logging.Filter):
    """Puts the request id on every record and scrubs secrets from its message (a handler's filter: records
    propagated from any logger pass through it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = rid = request_id.get()
        record.request_tag = f"[{rid}] " if rid != "-" else ""
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class TextLines(logging.Formatter):
    """The text lines; a traceback is scrubbed too (an exception's message may quote what it was given)."""

    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def formatException(self, ei) -> str:  # noqa: N802 (logging's name)
        return redact(super().formatException(ei))


class JsonLines(TextLines):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, request id, message, and the exception's
    traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def log_format() -> str:
    """``SAFEHOLD_LOG_FORMAT`` read from the environment alone (the CLI configures logging before it loads any
    settings); an unknown value is an error, as the setting's own validation would make it."""
    value = os.environ.get("SAFEHOLD_LOG_FORMAT", "text").strip().lower() or "text"
    if value not in FORMATS:
        raise ValueError(f"SAFEHOLD_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {value!r}")
    return value


def configure(level: int, fmt: str = "text", stream=None) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) in ``fmt`` with the request context, in place of the
    handler an earlier call installed; returns the handler."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContext())
    handler.setFormatter(JsonLines() if fmt == "json" else TextLines())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_safehold", False)]:
        root.removeHandler(old)
    handler._safehold = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return handler
