"""The network namespace the offline tests run their child processes in.

``unshare -rn`` gives a user + network namespace with only a loopback device: nothing in
it can reach outside. ``make test`` installs util-linux and strace (deploy/dev/os-deps.sh);
a machine that refuses the namespace fails the test rather than proving less quietly.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest


def network_namespace() -> list[str]:
    """The command prefix that runs a process with no route out."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare is missing: deploy/dev/os-deps.sh installs util-linux", pytrace=False)
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"this machine refuses a network namespace (unshare -rn): {probe.stderr.strip()}",
                    pytrace=False)
    return [unshare, "-rn"]
