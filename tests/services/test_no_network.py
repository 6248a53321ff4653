"""The README promises no network at run time: an ingest and a search with the offline
model open no connection anywhere (issue 9: onnxruntime's native telemetry did).

The CLI runs where leaving the machine is impossible and every attempt is recorded:
- in a user + network namespace (``unshare -rn``: only a loopback device, no route out),
  where success proves nothing needed the network;
- under ``strace -f`` recording ``connect`` system calls, which sees native code
  (onnxruntime's telemetry is C++ and never goes through Python's socket module);
- with a ``sitecustomize`` audit hook logging every non-loopback Python connect or name
  lookup, in every Python process (the extraction forkserver too);
- with HOME pointed at an empty folder, where onnxruntime's telemetry queues its events
  from the moment it loads: that queue must not appear, however short the run.
The test needs no outside network either way. strace and unshare are on this machine
(``make test``'s image); the assertions on them run whenever they are present.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.isolation import network_namespace

RAGLINE = str(Path(sys.executable).with_name("ragline"))

AUDIT_HOOK = '''
import os, sys

_LOG = os.environ.get("RAGLINE_TEST_NET_LOG")
_LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "", None}


def _local(host):
    host = host.decode() if isinstance(host, bytes) else host
    return host in _LOCAL_NAMES or (isinstance(host, str) and host.startswith("127."))


def _record(line):
    with open(_LOG, "a") as log:
        log.write(line + "\\n")


def _hook(event, args):
    if event in ("socket.connect", "socket.sendto") and isinstance(args[1], tuple) and not _local(args[1][0]):
        _record(f"NET {os.getpid()} {event} {args[1]!r}")
    elif event == "socket.getaddrinfo" and not _local(args[0]):
        _record(f"NET {os.getpid()} {event} {args[0]!r}")


if _LOG:
    _record(f"HOOKED {os.getpid()} {sys.argv[:2]!r}")
    sys.addaudithook(_hook)
'''

_QUOTED = re.compile(r'"([^"]*)"')


def outbound_connects(strace_log: Path) -> list[str]:
    """Every IPv4/IPv6 connect() to anything but loopback, from any process or thread (an
    address strace printed in a form not parsed here counts as outbound)."""
    outbound = []
    for line in strace_log.read_text().splitlines():
        if "connect(" in line and "sa_family=AF_INET" in line:
            addresses = _QUOTED.findall(line)
            if not addresses or not all(a.startswith("127.") or a == "::1" for a in addresses):
                outbound.append(line)
    return outbound


class Recorder:
    """Runs commands cut off from the network, recording every attempt to reach it."""

    def __init__(self, tmp_path: Path) -> None:
        hook_dir = tmp_path / "hook"
        hook_dir.mkdir()
        (hook_dir / "sitecustomize.py").write_text(AUDIT_HOOK)
        self.user_home = tmp_path / "user-home"
        self.user_home.mkdir()
        self.net_log, self.strace_log = tmp_path / "net.log", tmp_path / "connect.strace"
        self.cwd = tmp_path
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("RAGLINE_") and k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME")}
        env.update(RAGLINE_HOME=str(tmp_path / "home"), HOME=str(self.user_home),
                   RAGLINE_TEST_NET_LOG=str(self.net_log),
                   PYTHONPATH=os.pathsep.join(p for p in (str(hook_dir), env.get("PYTHONPATH")) if p))
        self.env = env
        self.strace = shutil.which("strace")
        assert self.strace, "strace is missing: deploy/dev/os-deps.sh installs it"
        self.prefix = [*network_namespace(), self.strace, "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect",
                       "-o", str(self.strace_log), "-A"]

    def run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, *command], env=self.env, cwd=self.cwd, capture_output=True,
                              text=True, timeout=240)

    def assert_no_network_used(self, processes: int) -> None:
        """Every kind of evidence at once, so a failure shows all that was seen."""
        lines = self.net_log.read_text().splitlines()
        assert len([line for line in lines if line.startswith("HOOKED")]) >= processes, "audit hook not loaded"
        seen = [line for line in lines if line.startswith("NET")]
        if (self.user_home / ".cache" / "Microsoft").exists():
            seen.append("onnxruntime telemetry started: its event queue is in ~/.cache/Microsoft")
        assert self.strace_log.exists(), "strace did not run"
        seen += outbound_connects(self.strace_log)
        assert seen == []


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "incidents.md").write_text(
        "# Incident policy\n\nA severity 1 incident is acknowledged within 15 minutes, day or night.\n")
    (folder / "holidays.txt").write_text("Office holidays: the office closes between Christmas and New Year.\n")
    return folder


def test_ingest_and_search_open_no_connection(tmp_path: Path, corpus: Path) -> None:
    recorder = Recorder(tmp_path)

    ingested = recorder.run(RAGLINE, "ingest", str(corpus), "--json")
    assert ingested.returncode == 0, ingested.stderr
    assert json.loads(ingested.stdout)["documents"]["new"] == 2
    found = recorder.run(RAGLINE, "search", "how fast is a severity 1 incident acknowledged", "--k", "1", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["source_uri"].endswith("incidents.md")
    recorder.assert_no_network_used(processes=2)


#: onnxruntime's telemetry uploads ~9 s after loading (measured: DNS lookups from its
#: native threads at +9.2 s): a short CLI run ends before that, a server does not.
LONG_LIVED = """
import time
from ingest.embed.local import LocalMiniLMEmbedder
LocalMiniLMEmbedder(threads=1).embed_batch(["a server embeds queries for hours"])
time.sleep(15)
"""


def test_a_long_lived_embedder_never_reaches_out(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path)

    result = recorder.run(sys.executable, "-c", LONG_LIVED)
    assert result.returncode == 0, result.stderr
    recorder.assert_no_network_used(processes=1)
