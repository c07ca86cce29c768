"""The JSON codec of the store's JSON columns: orjson, with Python's ``json`` for what orjson refuses.

Every chat message rewrites its conversation's scoring state (a few kilobytes of JSON), and every event, case and
audit record carries JSON too; with the standard library, encoding and decoding those columns took a tenth of the
server's CPU per chat message. orjson does the same several times faster.

The values stored are those ``json`` stored, with two differences of form and one of substance: no spaces and
UTF-8 instead of ``\\u`` escapes (the same JSON in fewer bytes), and a NaN or infinite float is written as
``null`` — it is not JSON: PostgreSQL refused the statement before, and the request doors refuse such numbers
anyway (:mod:`safehold.jsonlimits`). Where orjson refuses a value ``json`` accepts (an integer beyond 64 bits, a
string with a lone surrogate), the value goes through ``json`` as before; so does stored text orjson cannot read
(``NaN`` written by ``json`` on SQLite), and any text with a run of 19 digits: orjson reads an integer beyond 64
bits as a float, without a word.
"""

from __future__ import annotations

import json
import re

import orjson

#: Dict keys that are not strings (ints, say) become strings, as ``json`` makes them; a dataclass or a datetime is
#: written only through a ``to_json`` (``json`` refuses both), not field by field or as a string.
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
#: A run of 19 digits: a number orjson may read as a float (it reads integers beyond 64 bits as floats, silently).
_LONG_NUMBER = re.compile(rb"\d{19}")
_LONG_NUMBER_TEXT = re.compile(r"\d{19}")


def _default(value):
    """An object with a ``to_json()`` method is written as what it returns: a JSON-shaped view that may share
    the object's own containers, since it is encoded at once (a conversation's scoring state, written on every
    chat message, so without a copy of it)."""
    to_json = getattr(value, "to_json", None)
    if to_json is None:
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    return to_json()


def dumps_bytes(value) -> bytes:
    """``value`` as JSON in UTF-8 (PostgreSQL's driver takes bytes)."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a big integer, a lone surrogate
        return json.dumps(value, default=_default).encode()


def dumps(value) -> str:
    """``value`` as JSON text (SQLite stores text)."""
    return dumps_bytes(value).decode()


def loads(data: bytes | str):
    """JSON text or UTF-8 bytes as Python values (a long number, or a string with 19 digits in a row, is read by
    ``json``: orjson would read an integer beyond 64 bits as a float)."""
    if (_LONG_NUMBER if isinstance(data, bytes) else _LONG_NUMBER_TEXT).search(data):
        return json.loads(data)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # NaN or Infinity stored by json
        return json.loads(data)
