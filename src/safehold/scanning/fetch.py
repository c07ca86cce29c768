"""Fetch a URL for scanning without becoming a proxy into the operator's own network (SSRF guard).

Each hop's host is resolved once, every address it resolves to must be public (not private, loopback,
link-local, multicast, reserved or unspecified) unless the operator allow-listed the host or network, and the
connection is then pinned to the checked address (TLS still verifies the real host name through SNI), so a
DNS answer that changes between the check and the connection cannot redirect the fetch. Redirects are followed
by hand, each re-checked.

**Deadline.** ``timeout`` bounds connecting and each read; ``deadline`` bounds the whole fetch (every hop, the
headers and the body). It is enforced inside the network layer: every connect, read and write of the fetch waits
at most until the deadline, so a server that sends one byte every few seconds is cut at the deadline itself
(``url.timeout``), not one read timeout later.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpcore
import httpx

from safehold.errors import SafeholdError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Fetched:
    url: str
    data: bytes
    content_type: str | None


class UrlGuard:
    """Decides which addresses a fetch may reach."""

    def __init__(self, allow: list[str] | None = None):
        self.allow_hosts: set[str] = set()
        self.allow_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for item in allow or []:
            try:
                self.allow_nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.allow_hosts.add(item.lower().rstrip("."))

    def check(self, host: str, addresses: list[IPAddress]) -> None:
        if host.lower().rstrip(".") in self.allow_hosts:
            return
        for addr in addresses:
            if any(addr in net for net in self.allow_nets):
                continue
            if forbidden_address(addr):
                raise SafeholdError(
                    "url.forbidden_address",
                    f"Refusing to fetch {host}: it resolves to a non-public address ({addr}). An operator can "
                    "allow it with SAFEHOLD_URL_FETCH_ALLOW.",
                )


def _nets(*cidrs: str) -> tuple:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


#: IPv4 ranges a fetch never reaches: the IANA IPv4 Special-Purpose Address Registry's entries that are not
#: globally reachable, the deprecated 6to4 relay anycast, and multicast. Explicit, so the guard does not depend
#: on the interpreter's ``is_private``/``is_global`` tables (older ones miss 192.0.0.0/24, for one).
DENY_V4 = _nets(
    "0.0.0.0/8",  # "this network"
    "10.0.0.0/8",  # private
    "100.64.0.0/10",  # shared address space (carrier-grade NAT)
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local (cloud metadata services live here)
    "172.16.0.0/12",  # private
    "192.0.0.0/24",  # IETF protocol assignments
    "192.0.2.0/24",  # documentation (TEST-NET-1)
    "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
    "192.168.0.0/16",  # private
    "198.18.0.0/15",  # benchmarking
    "198.51.100.0/24",  # documentation (TEST-NET-2)
    "203.0.113.0/24",  # documentation (TEST-NET-3)
    "224.0.0.0/4",  # multicast
    "240.0.0.0/4",  # reserved
    "255.255.255.255/32",  # limited broadcast
)
#: IPv6: only global unicast (2000::/3) is reachable at all; inside it, these are refused.
GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
DENY_V6 = _nets(
    "::/128",  # unspecified
    "::1/128",  # loopback
    "::/96",  # IPv4-compatible (deprecated)
    "64:ff9b:1::/48",  # local-use IPv4/IPv6 translation
    "100::/64",  # discard-only
    "100:0:0:1::/64",  # dummy prefix
    "2001::/23",  # IETF protocol assignments (Teredo 2001::/32 included)
    "2001:db8::/32",  # documentation
    "3fff::/20",  # documentation
    "5f00::/16",  # segment routing SIDs
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
    "fec0::/10",  # site-local (deprecated)
    "ff00::/8",  # multicast
)
#: Ranges that carry an IPv4 address: the embedded address decides (IPv4-mapped, well-known NAT64 prefix, 6to4).
MAPPED_V6 = ipaddress.ip_network("::ffff:0:0/96")
NAT64_V6 = ipaddress.ip_network("64:ff9b::/96")
SIX_TO_FOUR_V6 = ipaddress.ip_network("2002::/16")


def forbidden_address(addr: IPAddress) -> bool:
    """True unless ``addr`` is a public address (see ``DENY_V4``/``DENY_V6``)."""
    if isinstance(addr, ipaddress.IPv4Address):
        return any(addr in net for net in DENY_V4)
    if addr in MAPPED_V6 or addr in NAT64_V6:
        return forbidden_address(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    if addr in SIX_TO_FOUR_V6:
        return forbidden_address(ipaddress.IPv4Address((int(addr) >> 80) & 0xFFFFFFFF))
    return addr not in GLOBAL_UNICAST_V6 or any(addr in net for net in DENY_V6)


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise SafeholdError("url.unresolvable", f"Cannot resolve host {host!r}.") from exc
    out: list[IPAddress] = []
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if addr not in out:
            out.append(addr)
    if not out:
        raise SafeholdError("url.unresolvable", f"Cannot resolve host {host!r}.")
    return out


class _Deadline:
    """Seconds left until a monotonic deadline, as a timeout for one network operation."""

    def __init__(self, at: float):
        self.at = at

    def left(self, timeout: float | None) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the fetch deadline has passed")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, deadline: _Deadline):
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.left(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, self._deadline.left(timeout)), self._deadline
        )

    def get_extra_info(self, info: str):
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own synchronous backend with every wait cut at the deadline."""

    def __init__(self, deadline: _Deadline):
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        stream = self._inner.connect_tcp(
            host, port, self._deadline.left(timeout), local_address=local_address, socket_options=socket_options
        )
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(self, path, timeout=None, socket_options=None):  # pragma: no cover - never used
        raise httpcore.ConnectError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:  # pragma: no cover - only used for retries, which are off
        time.sleep(min(seconds, max(0.0, self._deadline.at - time.monotonic())))


def _client(timeout: float, deadline: _Deadline) -> httpx.Client:
    transport = httpx.HTTPTransport(trust_env=False)
    pool = getattr(transport, "_pool", None)
    if pool is not None and hasattr(pool, "_network_backend"):
        pool._network_backend = _DeadlineBackend(deadline)
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False, transport=transport)


def fetch(
    url: str,
    *,
    guard: UrlGuard,
    max_bytes: int,
    timeout: float = 10.0,
    max_redirects: int = 5,
    deadline: float | None = None,
) -> Fetched:
    """GET ``url`` through the guard; raise ``SafeholdError`` with a ``url.*`` code on any refusal or failure.

    ``timeout``: seconds to connect and between two reads; ``deadline``: seconds for the whole fetch (default:
    ``timeout``), after which it fails with ``url.timeout`` whatever the server is doing.
    """
    total = float(deadline if deadline is not None else timeout)
    limit = _Deadline(time.monotonic() + total)
    current = url
    with _client(timeout, limit) as client:
        for _ in range(max_redirects + 1):
            parts = urlsplit(current)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SafeholdError("url.invalid", "Only absolute http:// and https:// URLs can be scanned.")
            host = parts.hostname
            try:
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError as exc:
                raise SafeholdError("url.invalid", f"Invalid port in {current!r}.") from exc
            addresses = _resolve(host, port)
            guard.check(host, addresses)
            pinned = addresses[0]
            netloc = f"[{pinned}]:{port}" if pinned.version == 6 else f"{pinned}:{port}"
            target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
            host_header = host if parts.port is None else f"{host}:{parts.port}"
            request = client.build_request(
                "GET",
                target,
                headers={"Host": host_header, "User-Agent": "Safehold-scanner"},
                extensions={"sni_hostname": host} if parts.scheme == "https" else {},
            )
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise _timed_out(current, total, limit) from exc
            except httpx.HTTPError as exc:
                raise SafeholdError("url.fetch_failed", f"Fetching {current} failed: {exc}.") from exc
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise SafeholdError("url.fetch_failed", f"{current} redirected without a location.")
                    current = urljoin(current, location)
                    continue
                if response.status_code >= 400:
                    raise SafeholdError(
                        "url.http_error", f"{current} answered HTTP {response.status_code}.", status=422
                    )
                try:
                    data = _read_capped(response, max_bytes)
                except SafeholdError as exc:
                    if exc.code == "url.timeout":
                        raise _timed_out(current, total, limit) from None
                    raise
                return Fetched(current, data, response.headers.get("content-type"))
            finally:
                response.close()
    raise SafeholdError("url.too_many_redirects", f"More than {max_redirects} redirects from {url}.")


def _timed_out(url: str, total: float, limit: _Deadline) -> SafeholdError:
    if time.monotonic() >= limit.at:
        return SafeholdError(
            "url.timeout",
            f"Fetching {url} took longer than the {total:g} s allowed for a whole fetch.",
            detail={"deadline_seconds": total},
        )
    return SafeholdError("url.timeout", f"Fetching {url} timed out.")


def _read_capped(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise SafeholdError("url.too_large", f"The resource is larger than {max_bytes} bytes.", status=413)
    chunks, size = [], 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise SafeholdError("url.too_large", f"The resource is larger than {max_bytes} bytes.", status=413)
            chunks.append(chunk)
    except httpx.TimeoutException as exc:
        raise SafeholdError("url.timeout", "Reading the resource timed out.") from exc
    except httpx.HTTPError as exc:
        raise SafeholdError("url.fetch_failed", f"Reading the resource failed: {exc}.") from exc
    return b"".join(chunks)
