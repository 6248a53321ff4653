"""Real ``ragline`` processes for the service tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

RAGLINE = str(Path(sys.executable).with_name("ragline"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def ragline_bin() -> str:
    """The installed ``ragline`` console script of this environment."""
    return RAGLINE


@pytest.fixture
def ragline_env(tmp_path: Path) -> dict[str, str]:
    """Environment of a ragline process with its own RAGLINE_HOME."""
    return {**os.environ, "RAGLINE_HOME": str(tmp_path / "home")}


@pytest.fixture
def serve(ragline_env: dict[str, str]) -> Iterator[Callable[[], tuple[str, subprocess.Popen[bytes]]]]:
    """Start ``ragline serve`` on a free port and wait for /healthz; stopped at teardown."""
    servers: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        server = subprocess.Popen([RAGLINE, "serve", "--port", str(port)], env=ragline_env,
                                  stderr=subprocess.DEVNULL)
        servers.append(server)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    return base, server
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"ragline serve did not become healthy on {base}")

    yield start
    for server in servers:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=30)
