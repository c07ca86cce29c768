"""URL signals: SHA-256 hashes of canonical URLs, compatible with Google Safe Browsing full hashes.

A bank holds URL *hashes*, never URL text, so URL lists can be stored and shared without spreading the URLs.

Canonicalisation follows Google Safe Browsing's published rules ("URLs and Hashing"): trim, drop tab/CR/LF,
drop the fragment, percent-unescape repeatedly, canonicalise the host (IDNA → punycode, leading/trailing dots
removed, runs of dots collapsed, any IPv4 spelling — decimal, octal, hex, fewer than four parts — turned into
dotted decimal, bracketed IPv6 compressed, IPv4-mapped and NAT64 IPv6 turned into IPv4, lower-case), resolve
``/./`` and ``/../``, collapse ``//`` in the path (not in the query), default the scheme to ``http`` and the
path to ``/``, drop the port and user-info, then percent-escape bytes ≤ 0x20, ≥ 0x7F, ``#`` and ``%``.

The *signal value* is the SHA-256 (hex) of the canonical URL **without its scheme** — ``host/path?query`` —
which is exactly Safe Browsing's "full hash" of the URL's exact expression. So ``http://`` and ``https://``
spellings of one URL share a hash, and a bank entry made from ``bad.example/folder/`` is found by
:func:`url_lookup_hashes` for ``http://a.bad.example/folder/page?x=1`` (host-suffix/path-prefix expressions).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import string
from typing import ClassVar

from safehold.errors import SafeholdError
from safehold.signals.base import Signal, SignalType

#: Longest URL accepted (characters, after trimming).
MAX_URL_LENGTH = 8192

_HEX = frozenset(string.hexdigits)
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_ESCAPE_RE = re.compile(rb"%([0-9A-Fa-f]{2})")


def _invalid(url: object, why: str) -> SafeholdError:
    shown = url if isinstance(url, str) and len(url) <= 200 else (str(url)[:200] + "…")
    return SafeholdError("url.invalid", f"not a usable URL ({why}): {shown!r}", detail={"reason": why})


def _unescape_fully(b: bytes) -> bytes:
    """Percent-unescape until no valid ``%XX`` escapes remain (each pass shortens, so this terminates)."""
    while True:
        nb = _ESCAPE_RE.sub(lambda m: bytes([int(m.group(1), 16)]), b)
        if nb == b:
            return b
        b = nb


def _escape(b: bytes) -> str:
    out = []
    for byte in b:
        if byte <= 0x20 or byte >= 0x7F or byte in (0x23, 0x25):  # '#', '%'
            out.append(f"%{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


def _parse_ipv4_part(part: str) -> int | None:
    if not part:
        return None
    try:
        if part[:2].lower() == "0x":
            return int(part[2:], 16) if part[2:] else 0
        if len(part) > 1 and part[0] == "0":
            return int(part, 8)
        return int(part, 10) if part.isdigit() else None
    except ValueError:
        return None


def _parse_ipv4(host: str) -> str | None:
    """Dotted-decimal form of ``host`` if it is any legal IPv4 spelling (inet_aton rules), else ``None``."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    nums = [_parse_ipv4_part(p) for p in parts]
    if any(n is None for n in nums):
        return None
    *head, last = nums
    if any(n > 255 for n in head) or last >= 1 << (8 * (5 - len(nums))):  # type: ignore[operator]
        return None
    value = 0
    for n in head:
        value = (value << 8) | n  # type: ignore[operator]
    value = (value << (8 * (5 - len(nums)))) | last  # type: ignore[operator]
    return str(ipaddress.IPv4Address(value))


def _canonical_ipv6(inner: str) -> str | None:
    try:
        addr = ipaddress.IPv6Address(inner)
    except ValueError:
        return None
    if addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    if addr in ipaddress.IPv6Network("64:ff9b::/96"):
        return str(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    return f"[{addr.compressed}]"


def _idna(label_text: str) -> str:
    """Punycode form of a host containing non-ASCII characters (UTS #46 when the ``idna`` package exists)."""
    try:
        import idna  # installed with httpx

        return idna.encode(label_text, uts46=True, transitional=False).decode("ascii")
    except ImportError:  # pragma: no cover - fallback to the standard library's IDNA 2003 codec
        return label_text.encode("idna").decode("ascii")


def _canonical_host(raw: bytes) -> str:
    host = _unescape_fully(raw)
    # IPv6 literal (percent-unescaping cannot produce one by accident: '[' is not a legal escape target here).
    if host.startswith(b"[") and host.endswith(b"]"):
        v6 = _canonical_ipv6(host[1:-1].decode("ascii", "replace"))
        if v6 is None:
            raise _invalid(raw.decode("utf-8", "replace"), "bad IPv6 address")
        return v6
    host = host.strip(b".")
    host = re.sub(rb"\.{2,}", b".", host)
    if not host:
        raise _invalid(raw.decode("utf-8", "replace"), "empty host")
    try:
        text = host.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not text.isascii():
        try:
            host = _idna(text).encode("ascii")
        except Exception:  # noqa: BLE001 - an un-encodable IDN is still hashed byte-for-byte, escaped
            host = text.lower().encode("utf-8")
    if host.isascii():
        ip = _parse_ipv4(host.decode("ascii"))
        if ip is not None:
            return ip
    return _escape(host.lower())


def _canonical_path(raw: bytes) -> str:
    path = _unescape_fully(raw)
    if not path.startswith(b"/"):
        path = b"/" + path
    trailing = path.endswith(b"/") or path.endswith(b"/.") or path.endswith(b"/..")
    out: list[bytes] = []
    for seg in path.split(b"/"):
        if seg in (b"", b"."):
            continue  # '' collapses '//' runs; '.' is the current directory
        if seg == b"..":
            if out:
                out.pop()
            continue
        out.append(seg)
    result = b"/" + b"/".join(out)
    if trailing and out:
        result += b"/"
    return _escape(result)


def _split(url: str) -> tuple[str, bytes, bytes, bytes | None]:
    """Trimmed, tab/CR/LF-free, fragment-free URL → (scheme, authority, path, query-or-None)."""
    if not isinstance(url, str):
        raise _invalid(url, "not a string")
    s = url.strip(" \t\r\n\f\v\x00")
    s = s.replace("\t", "").replace("\r", "").replace("\n", "")
    if not s:
        raise _invalid(url, "empty")
    if len(s) > MAX_URL_LENGTH:
        raise _invalid(url, f"longer than {MAX_URL_LENGTH} characters")
    s = s.split("#", 1)[0]
    m = _SCHEME_RE.match(s)
    if m:
        scheme = m.group(1).lower()
        rest = s[m.end() :]
    else:
        scheme = "http"
        rest = s
        if rest.startswith("//"):
            rest = rest[2:]
    # Split off the authority at the first '/' or '?'; then path and query at the first '?'.
    cut = len(rest)
    for sep in ("/", "?"):
        i = rest.find(sep)
        if i != -1:
            cut = min(cut, i)
    authority, tail = rest[:cut], rest[cut:]
    path, sep, query = tail.partition("?")
    return (
        scheme,
        authority.encode("utf-8", "surrogatepass"),
        path.encode("utf-8", "surrogatepass"),
        query.encode("utf-8", "surrogatepass") if sep else None,
    )


def _host_from_authority(authority: bytes, url: str) -> bytes:
    # Drop user-info: everything up to the last '@' (phishing URLs like http://bank.example@evil.example/).
    host = authority.rpartition(b"@")[2]
    if host.startswith(b"["):
        end = host.find(b"]")
        if end == -1:
            raise _invalid(url, "unterminated IPv6 address")
        port = host[end + 1 :]
        host = host[: end + 1]
        if port and not port.startswith(b":"):
            raise _invalid(url, "junk after IPv6 address")
        port = port[1:]
    else:
        host, _, port = host.partition(b":")
    if port and not port.isdigit():
        raise _invalid(url, "port is not a number")
    if not host:
        raise _invalid(url, "no host")
    return host


def _canonical_parts(url: str) -> tuple[str, str, str, str | None]:
    scheme, authority, path, query = _split(url)
    host = _canonical_host(_host_from_authority(authority, url))
    cpath = _canonical_path(path)
    cquery = _escape(_unescape_fully(query)) if query is not None else None
    return scheme, host, cpath, cquery


def canonicalize_url(url: str) -> str:
    """The Safe Browsing canonical form of ``url``, e.g. ``"HTTP://www.GOOgle.com:80/a/../b#x"`` →
    ``"http://www.google.com/b"``. Raises ``SafeholdError('url.invalid')`` for unusable input."""
    scheme, host, path, query = _canonical_parts(url)
    return f"{scheme}://{host}{path}" + (f"?{query}" if query is not None else "")


def url_expression(url: str) -> str:
    """The canonical URL without its scheme (``host/path?query``) — the string whose SHA-256 is the signal."""
    _, host, path, query = _canonical_parts(url)
    return f"{host}{path}" + (f"?{query}" if query is not None else "")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def url_hash(url: str) -> str:
    """SHA-256 hex of :func:`url_expression` (equal to Safe Browsing's full hash of the exact URL)."""
    return _sha256(url_expression(url))


def url_lookup_expressions(url: str) -> list[str]:
    """The Safe Browsing host-suffix/path-prefix expressions for ``url``, most specific first.

    Hosts: the exact host, then up to four hosts made from the last five components by removing leading
    components, never the bare top-level domain (IP addresses: exact host only). Paths: exact path with
    query, exact path without query, then up to four prefixes from ``/`` adding one component at a time.
    """
    _, host, path, query = _canonical_parts(url)
    is_ip = _parse_ipv4(host) == host or host.startswith("[")
    hosts = [host]
    if not is_ip:
        comps = host.split(".")
        tail = comps[-5:]
        for i in range(len(tail) - 1):
            candidate = ".".join(tail[i:])
            if candidate != host and candidate not in hosts and len(tail) - i >= 2:
                hosts.append(candidate)
    paths: list[str] = []
    if query is not None:
        paths.append(f"{path}?{query}")
    paths.append(path)
    comps = [c for c in path.split("/")[1:]]
    prefix = "/"
    prefixes = ["/"]
    for c in comps[:-1][:3]:  # directories only; the final component is the exact path already listed
        prefix += c + "/"
        prefixes.append(prefix)
    for p in prefixes:
        if p not in paths:
            paths.append(p)
    paths = paths[:6]
    return [h + p for h in hosts for p in paths]


def url_lookup_hashes(url: str) -> list[str]:
    """SHA-256 hex of each :func:`url_lookup_expressions` entry: look all of them up in a URL bank."""
    return [_sha256(e) for e in url_lookup_expressions(url)]


class UrlSignal(SignalType):
    """SHA-256 of a canonical URL expression (see module docs); banks hold hashes, never URL text."""

    name: ClassVar[str] = "url"
    description: ClassVar[str] = (
        "SHA-256 (64 hex) of the Safe-Browsing canonical URL without scheme (URL text is hashed on the way in); "
        "matched by exact hash and by host-suffix/path-prefix lookup"
    )
    matching: ClassVar[str] = "exact"

    @classmethod
    def normalize(cls, value: str) -> str:
        """The stored value for what an operator gives: a 64-hex SHA-256 (any case) is taken as an already-hashed
        URL; anything else is URL text, canonicalised and hashed exactly as the scanner does (:func:`url_hash`),
        so ``bad.example.net/`` in ``bank add-hash``, the API and a CSV row all block what a scan of
        ``https://www.bad.example.net/x`` looks up. Every way into a bank passes through here, so this is the
        one place that turns URLs into values.

        Refused (``signal.invalid_value``): a host without a dot that is not an IP address (``abc``, or a hash
        of the wrong length pasted into the wrong column), and anything :func:`canonicalize_url` cannot read."""
        if not isinstance(value, str):
            raise SafeholdError("signal.invalid_value", "url value must be a URL or the 64-hex SHA-256 of one")
        v = value.strip()
        if len(v) == 64 and all(c in _HEX for c in v):
            return v.lower()
        try:
            _, host, _, _ = _canonical_parts(v)
        except SafeholdError as exc:
            raise SafeholdError("signal.invalid_value", exc.message, detail={"type": cls.name}) from None
        if "." not in host and not host.startswith("["):
            raise SafeholdError(
                "signal.invalid_value",
                f"url value must be a URL with a domain or an IP address (e.g. bad.example.net/) or the 64-hex "
                f"SHA-256 of one, not {v[:80]!r}",
                detail={"type": cls.name},
            )
        return url_hash(v)

    @classmethod
    def from_url(cls, url: str) -> str:
        """The signal value for URL text (raises ``url.invalid``)."""
        return url_hash(url)

    @classmethod
    def signal(cls, url: str) -> Signal:
        """A :class:`Signal` for URL text."""
        return Signal(type=cls.name, value=url_hash(url))

    @classmethod
    def lookup_values(cls, url: str) -> list[str]:
        """Every value to look up in a bank for ``url`` (see :func:`url_lookup_hashes`)."""
        return url_lookup_hashes(url)
