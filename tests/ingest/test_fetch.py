"""The SSRF-safe fetcher against a real HTTP server on loopback.

Loopback stands in for every private address: with the default policy nothing on it may
be reached, under any spelling, directly or through a redirect.
"""

from __future__ import annotations

import gzip
import ipaddress
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from ingest.fetch import FetchPolicy, FetchRefused, _GuardedBackend, _Hop, fetch, is_public


class _Handler(BaseHTTPRequestHandler):
    hits: list[str]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        port = self.server.server_address[1]
        if self.path == "/doc":
            body = b"internal wiki page"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", self.path.removeprefix("/to/").replace("PORT", str(port)))
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/drip":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):  # 10 s in all, a byte at a time
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.1)
        elif self.path == "/gzip-bomb":
            body = gzip.compress(b"\0" * 20_000_000)  # 20 MB of zeros in ~20 KB
            self.send_response(200)
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/big":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")  # no Content-Length to trust
            self.end_headers()
            block = b"y" * 65536
            for _ in range(40):
                try:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                except OSError:
                    return
            self.wfile.write(b"0\r\n\r\n")


@pytest.fixture(scope="module")
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()


def _port(server: ThreadingHTTPServer) -> int:
    return int(server.server_address[1])


LOOPBACK_SPELLINGS = [
    "http://127.0.0.1:{port}/doc",
    "http://localhost:{port}/doc",
    "http://2130706433:{port}/doc",  # decimal
    "http://0x7f.0.0.1:{port}/doc",  # hex
    "http://0177.0.0.1:{port}/doc",  # octal
    "http://127.1:{port}/doc",
    "http://[::1]:{port}/doc",
    "http://[::ffff:127.0.0.1]:{port}/doc",  # IPv4-mapped
]


@pytest.mark.parametrize("template", LOOPBACK_SPELLINGS)
def test_default_policy_refuses_loopback_in_every_spelling(server: ThreadingHTTPServer, template: str) -> None:
    before = len(server.hits)  # type: ignore[attr-defined]
    with pytest.raises(FetchRefused, match="non-public|resolve|not a valid URL"):
        fetch(template.format(port=_port(server)), FetchPolicy(timeout_s=5))
    assert len(server.hits) == before, "the refused address must never receive the request"  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[fe80::1]/",
                                 "http://0.0.0.0/", "http://[::]/", "http://224.0.0.1/", "http://100.64.0.1/"])
def test_default_policy_refuses_private_link_local_multicast_unspecified(url: str) -> None:
    with pytest.raises(FetchRefused, match="non-public"):
        fetch(url, FetchPolicy(timeout_s=2))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/", "gopher://x/", "http://user:pw@x.org/"])
def test_only_plain_http_urls(url: str) -> None:
    with pytest.raises(FetchRefused):
        fetch(url, FetchPolicy())


@pytest.mark.parametrize(("address", "public"), [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("255.255.255.255", False),
    ("224.0.0.1", False), ("240.0.0.1", False), ("::1", False), ("::", False), ("fe80::1", False),
    ("fc00::1", False), ("ff02::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False),
    ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
    ("64:ff9b::a00:1", False),  # NAT64 around 10.0.0.1
    ("::ffff:8.8.8.8", True),
])
def test_is_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_allow_list_admits_a_private_host_and_checks_every_redirect(server: ThreadingHTTPServer) -> None:
    port = _port(server)
    policy = FetchPolicy(allow=("127.0.0.1/32",), timeout_s=5)
    fetched = fetch(f"http://127.0.0.1:{port}/doc", policy)
    assert fetched.data == b"internal wiki page"
    assert fetched.address == "127.0.0.1"
    # a redirect from the allowed address to another loopback address is refused
    with pytest.raises(FetchRefused, match="redirected to '127.0.0.2'"):
        fetch(f"http://127.0.0.1:{port}/to/http://127.0.0.2:PORT/doc", policy)
    # ... and one to itself is followed
    assert fetch(f"http://127.0.0.1:{port}/to/http://127.0.0.1:PORT/doc", policy).data == b"internal wiki page"


def test_allow_list_by_host_name(server: ThreadingHTTPServer) -> None:
    fetched = fetch(f"http://localhost:{_port(server)}/doc", FetchPolicy(allow=("LOCALHOST",), timeout_s=5))
    assert fetched.data == b"internal wiki page"


def test_redirects_are_capped(server: ThreadingHTTPServer) -> None:
    with pytest.raises(FetchRefused, match="more than 3 redirects"):
        fetch(f"http://127.0.0.1:{_port(server)}/loop", FetchPolicy(allow=("127.0.0.1",), max_redirects=3))


def test_redirect_to_another_scheme_is_refused(server: ThreadingHTTPServer) -> None:
    with pytest.raises(FetchRefused, match="only http"):
        fetch(f"http://127.0.0.1:{_port(server)}/to/file:///etc/passwd", FetchPolicy(allow=("127.0.0.1",)))


def test_one_overall_deadline_stops_a_slow_drip(server: ThreadingHTTPServer) -> None:
    # Each byte arrives well within any per-read timeout; only an overall deadline stops it.
    with pytest.raises((FetchRefused, httpx.TimeoutException)):
        fetch(f"http://127.0.0.1:{_port(server)}/drip", FetchPolicy(allow=("127.0.0.1",), timeout_s=1.0))


def test_byte_cap_holds_without_content_length(server: ThreadingHTTPServer) -> None:
    with pytest.raises(FetchRefused, match="exceeds the limit of 1,000,000"):
        fetch(f"http://127.0.0.1:{_port(server)}/big", FetchPolicy(allow=("127.0.0.1",), max_bytes=1_000_000))


def test_operator_policy_reaches_a_private_origin(server: ThreadingHTTPServer) -> None:
    fetched = fetch(f"http://127.0.0.1:{_port(server)}/doc", FetchPolicy(private_origin=True, timeout_s=5))
    assert fetched.data == b"internal wiki page"


def test_operator_policy_refuses_a_redirect_from_public_into_private() -> None:
    """The redirect rule at the point of connection: after a public hop, a private address is refused."""
    hop = _Hop(public=True, address="93.184.216.34")
    backend = _GuardedBackend(FetchPolicy(private_origin=True), lambda host, port: ["127.0.0.1"],
                              time.monotonic() + 5, hop)
    backend.first_hop = False
    with pytest.raises(FetchRefused, match="redirected to"):
        backend._checked_address("rebound.example", 80)
    hop.public = False  # private -> private stays inside the operator's network
    assert str(backend._checked_address("wiki.corp", 80)) == "127.0.0.1"


def test_a_name_resolving_to_any_private_address_is_refused() -> None:
    """Resolution happens once, where the socket opens, and every answer is checked: a name
    that also resolves to a private address (a rebinding set-up) is refused outright."""
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["8.8.8.8", "127.0.0.1"]

    with pytest.raises(FetchRefused, match="127.0.0.1"):
        fetch("http://rebind.example/", FetchPolicy(timeout_s=2), resolver=resolver)
    assert calls == ["rebind.example"]


def test_a_compressed_body_is_refused_not_inflated(server: ThreadingHTTPServer) -> None:
    with pytest.raises(FetchRefused, match="'gzip'-encoded"):
        fetch(f"http://127.0.0.1:{_port(server)}/gzip-bomb", FetchPolicy(allow=("127.0.0.1",), max_bytes=1_000_000))
