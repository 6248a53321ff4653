"""Fetch a document over http(s) without becoming a proxy into the private network.

One fetcher serves the API, the CLI and the Kafka worker. The address check lives in
the network backend, where the socket is opened: the host is resolved once, every
address it resolves to is checked, and the connection goes to a checked address. So a
DNS answer that changes between a check and the connect (rebinding) cannot slip
through, and every redirect hop goes through the same check. httpx has no hook at that
level, so the backend is ours; everything else (HTTP/1.1, TLS, chunked bodies) is
httpcore's.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]


class FetchRefused(Exception):
    """The URL may not be fetched (scheme, address, redirect, size, deadline)."""


@dataclass(frozen=True)
class FetchPolicy:
    """What a fetch may reach, and how much of it.

    ``private_origin`` lets the first hop reach a private address (the operator's CLI);
    a redirect from a public address into a private one is refused even then.
    ``allow`` names hosts and networks that count as reachable whatever their address
    (an intranet wiki).
    """

    allow: tuple[str, ...] = ()
    timeout_s: float = 30.0
    max_bytes: int = 50 * 1024 * 1024
    max_redirects: int = 5
    private_origin: bool = False
    _networks: tuple[Network, ...] = field(init=False, repr=False, compare=False)
    _hosts: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks: list[Network] = []
        hosts: set[str] = set()
        for entry in self.allow:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        object.__setattr__(self, "_networks", tuple(networks))
        object.__setattr__(self, "_hosts", frozenset(hosts))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self._hosts

    def allows_address(self, address: IPAddress) -> bool:
        return any(address in net for net in self._networks if net.version == address.version)


def is_public(address: IPAddress) -> bool:
    """True for globally routable unicast addresses, looking inside IPv6 forms that
    carry an IPv4 address (mapped, 6to4, Teredo, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)  # the socket reaches the IPv4 address
    for embedded in _embedded_ipv4(address):
        if not is_public(embedded):
            return False
    if address.is_multicast or address.is_unspecified or address.is_reserved or address.is_loopback:
        return False
    if address.is_link_local or address.is_private:
        return False
    return address.is_global


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(address: IPAddress) -> Iterable[ipaddress.IPv4Address]:
    if not isinstance(address, ipaddress.IPv6Address):
        return ()
    found: list[ipaddress.IPv4Address] = []
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass
class _Hop:
    """What the last connection of a fetch reached (read by the redirect check)."""

    public: bool | None = None
    address: str | None = None


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every read and write is clamped to the fetch's one deadline,
    so a server that drips a byte per second cannot hold the fetch beyond it."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner = inner
        self._deadline = deadline

    def _remaining(self, timeout: float | None) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ReadTimeout("the fetch's overall deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._remaining(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(ssl_context, server_hostname, self._remaining(timeout))
        return _DeadlineStream(tls, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    def __init__(self, policy: FetchPolicy, resolver: Resolver, deadline: float, hop: _Hop) -> None:
        self._policy = policy
        self._resolver = resolver
        self._deadline = deadline
        self._hop = hop
        self._plain = httpcore.SyncBackend()
        self.first_hop = True

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        address = self._checked_address(host, port)
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise httpcore.ConnectTimeout("the fetch's overall deadline passed")
        stream = self._plain.connect_tcp(str(address), port, min(timeout or left, left), local_address,
                                         socket_options)
        return _DeadlineStream(stream, self._deadline)

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        raise FetchRefused("unix sockets are never fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _checked_address(self, host: str, port: int) -> IPAddress:
        try:
            resolved = [ipaddress.ip_address(a.split("%", 1)[0]) for a in self._resolver(host, port)]
        except (OSError, UnicodeError) as exc:
            raise FetchRefused(f"cannot resolve {host!r}: {exc}") from exc
        if not resolved:
            raise FetchRefused(f"{host!r} resolves to no address")
        host_allowed = self._policy.allows_host(host)
        for address in resolved:
            public = is_public(address)
            reachable = public or host_allowed or self._policy.allows_address(address)
            if not reachable and self.first_hop and self._policy.private_origin:
                reachable = True
            if not reachable and not self.first_hop and self._policy.private_origin and self._hop.public is False:
                reachable = True  # private -> private stays inside the network the operator chose
            if not reachable:
                where = "redirected to " if not self.first_hop else ""
                raise FetchRefused(
                    f"{where}{host!r} resolves to {address}, a non-public address "
                    "(allow it with RAGLINE_FETCH__ALLOW)")
        chosen = resolved[0]
        self._hop.public, self._hop.address = is_public(chosen), str(chosen)
        return chosen


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    data: bytes
    content_type: str | None
    address: str | None  # the address the body came from


def fetch(url: str, policy: FetchPolicy, resolver: Resolver = system_resolver) -> Fetched:
    """GET ``url`` under ``policy``: one overall deadline, a byte cap, checked redirects.

    Raises FetchRefused for what the policy forbids and httpx.HTTPError for what the
    network or the server did.
    """
    deadline = time.monotonic() + policy.timeout_s
    hop = _Hop()
    backend = _GuardedBackend(policy, resolver, deadline, hop)
    pool = httpcore.ConnectionPool(ssl_context=ssl.create_default_context(), network_backend=backend,
                                   max_connections=1, retries=0)
    transport = httpx.HTTPTransport()
    transport._pool = pool  # httpx offers no other way to give its transport a network backend
    timeout = httpx.Timeout(policy.timeout_s)
    with httpx.Client(transport=transport, follow_redirects=False, timeout=timeout, trust_env=False) as client:
        current = _checked_url(url)
        for redirects in range(policy.max_redirects + 1):
            with client.stream("GET", current, headers={"Accept-Encoding": "identity"}) as response:
                if response.is_redirect:
                    location = response.headers.get("location", "")
                    if redirects == policy.max_redirects:
                        raise FetchRefused(f"more than {policy.max_redirects} redirects")
                    current = _checked_url(str(response.url.join(location)))
                    backend.first_hop = False
                    continue
                response.raise_for_status()
                data = _read_capped(response, policy.max_bytes, deadline)
                return Fetched(str(response.url), data, response.headers.get("content-type"), hop.address)
    raise FetchRefused(f"more than {policy.max_redirects} redirects")  # unreachable: the loop returns or raises


def _checked_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchRefused(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise FetchRefused(f"only http(s) URLs are fetched, not {parsed.scheme or 'a relative URL'!r}")
    if not parsed.host:
        raise FetchRefused("the URL has no host")
    if parsed.userinfo:
        raise FetchRefused("URLs with credentials are not fetched")
    return str(parsed)


def _read_capped(response: httpx.Response, max_bytes: int, deadline: float) -> bytes:
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Asked for identity; inflating a compressed body here would let one network read
        # expand without a cap (a 32 KB zstd body decodes to 1 GiB in one block).
        raise FetchRefused(f"the server sent a {encoding!r}-encoded body; only identity is accepted")
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchRefused(f"response of {int(declared):,} bytes exceeds the limit of {max_bytes:,}")
    data = bytearray()
    for block in response.iter_raw():
        data += block
        if len(data) > max_bytes:
            raise FetchRefused(f"response exceeds the limit of {max_bytes:,} bytes")
        if time.monotonic() > deadline:
            raise FetchRefused("the fetch's overall deadline passed")
    return bytes(data)
