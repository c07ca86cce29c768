"""Bounds on JSON: nesting depth, numbers that fit, and a safe view of stored JSON that may predate the bounds.

Python's ``json`` accepts what RFC 8259 does not (``NaN``, ``Infinity``), turns ``1e999999`` into ``inf`` and
integers of any length into ``int``; none of them can be stored (PostgreSQL JSONB, 64-bit columns) or answered
(JSON encoders refuse non-finite floats), so each used to surface later as a 500. :func:`loads` refuses them at the
door with a 4xx and a stable code. :func:`clip` makes JSON read back from the database safe to answer whatever it
holds (metadata stored before the bounds existed: 400 levels deep, ``inf``, megabytes).
"""

from __future__ import annotations

import json
import math

from safehold.errors import SafeholdError, invalid_json

#: Default nesting depth of a request body (``SAFEHOLD_MAX_JSON_DEPTH``).
MAX_DEPTH = 32
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_CONSTANTS = ("-Infinity", "Infinity", "NaN")


def _no_constant(token: str):
    raise _Constant(token)


class _Constant(ValueError):
    def __init__(self, token: str):
        super().__init__(token)
        self.token = token


#: One decoder (json.loads with a hook builds a new one per call, which costs more than parsing a small body).
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def too_deep(max_depth: int, what: str = "the request body") -> SafeholdError:
    return SafeholdError(
        "request.json_too_deep",
        f"{what[0].upper()}{what[1:]} is nested more than {max_depth} levels deep.",
        detail={"max_depth": max_depth},
    )


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH, what: str = "the request body") -> object:
    """``raw`` parsed as JSON within bounds, or a :class:`SafeholdError`:

    - not JSON (``NaN`` and ``Infinity`` included): 400 ``request.invalid_json``;
    - nested deeper than ``max_depth``: 400 ``request.json_too_deep``;
    - a number that is not a finite double (``1e999999``) or an integer outside 64 bits:
      422 ``request.number_out_of_range`` with its location in ``detail.loc``.
    """
    try:
        # bytes are read as json.loads reads them (UTF-8, or UTF-16/32 by their BOM), so every parser agrees
        text = raw.decode(json.detect_encoding(raw), "surrogatepass") if isinstance(raw, (bytes, bytearray)) else raw
        value = _DECODER.decode(text)
    except _Constant as exc:
        raise invalid_json(f"{exc.token} is not a JSON number", max(text.find(exc.token), 0), what) from None
    except RecursionError:
        raise too_deep(max_depth, what) from None
    except json.JSONDecodeError as exc:
        raise invalid_json(exc.msg, exc.pos, what) from None
    except UnicodeDecodeError as exc:
        raise invalid_json("not UTF-8 text", exc.start, what) from None
    except ValueError:  # an integer literal longer than Python converts (sys.get_int_max_str_digits)
        raise SafeholdError(
            "request.number_out_of_range",
            f"{what[0].upper()}{what[1:]} holds an integer with too many digits.",
            status=422,
            detail={"loc": []},
        ) from None
    check(value, max_depth, what)
    return value


def check(value: object, max_depth: int = MAX_DEPTH, what: str = "the request body") -> None:
    """Raise as :func:`loads` does if ``value`` (parsed JSON) is too deep or holds a number out of range."""
    stack: list[tuple[object, int, tuple]] = [(value, 0, ())]
    while stack:
        node, depth, loc = stack.pop()
        if isinstance(node, dict):
            items = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            _number(node, loc, what)
            continue
        if depth >= max_depth:
            raise too_deep(max_depth, what)
        for key, child in items:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1, loc + (key,)))
            elif child.__class__ is int or child.__class__ is float:
                _number(child, loc + (key,), what)


def _number(node: object, loc: tuple, what: str) -> None:
    if node.__class__ is int:
        if INT_MIN <= node <= INT_MAX:
            return
        problem = "an integer outside the 64-bit range"
    elif node.__class__ is float:
        if math.isfinite(node):
            return
        problem = "a number too large for a double"
    else:
        return
    where = ".".join(str(p) for p in loc) or "the top level"
    raise SafeholdError(
        "request.number_out_of_range",
        f"{what[0].upper()}{what[1:]} holds {problem} at {where}.",
        status=422,
        detail={"loc": list(loc)},
    )


def depth(value: object, stop: int | None = None) -> int:
    """Nesting depth of ``value`` (a scalar is 0, ``{}`` is 1); stops counting past ``stop``."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        d += 1
        deepest = max(deepest, d)
        if stop is not None and deepest > stop:
            return deepest
        stack.extend((c, d) for c in children if isinstance(c, (dict, list)))
    return deepest


CLIPPED = "[clipped: nested too deep or too large to show]"


def clip(value: object, max_depth: int = 16, max_nodes: int = 20_000) -> object:
    """A copy of stored JSON that any encoder can answer: containers deeper than ``max_depth`` and everything past
    ``max_nodes`` values become :data:`CLIPPED`, non-finite floats become strings. Cost: O(min(size, max_nodes))."""
    budget = [max_nodes]

    def walk(node: object, d: int) -> object:
        budget[0] -= 1
        if budget[0] < 0:
            return CLIPPED
        if isinstance(node, dict):
            if d >= max_depth:
                return CLIPPED
            out: dict = {}
            for k, v in node.items():
                if budget[0] <= 0:
                    out["…"] = CLIPPED
                    break
                out[str(k)] = walk(v, d + 1)
            return out
        if isinstance(node, list):
            if d >= max_depth:
                return CLIPPED
            items = []
            for v in node:
                if budget[0] <= 0:
                    items.append(CLIPPED)
                    break
                items.append(walk(v, d + 1))
            return items
        if node.__class__ is float and not math.isfinite(node):
            return str(node)
        return node

    return walk(value, 0)
