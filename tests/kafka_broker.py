"""A real Kafka broker for the tests (registered from tests/conftest.py as a plugin).

``make test`` starts one with ``deploy/dev/kafka.sh start`` and exports
``RAGLINE_TEST_KAFKA_BOOTSTRAP``. A plain ``pytest`` without it starts a broker of its
own, on a state dir under pytest's tmp dir, and deletes it at the end of the session.
Kafka tests never skip: a broker that cannot start fails them with the script's output.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

KAFKA_SH = Path(__file__).resolve().parents[1] / "deploy" / "dev" / "kafka.sh"


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # the first start ever fetches the broker's jars with Maven (about 45 MB)
    return subprocess.run([str(KAFKA_SH), *args], env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of a running single-node Kafka broker."""
    given = os.environ.get("RAGLINE_TEST_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return

    env = {**os.environ, "RAGLINE_KAFKA_STATE": str(tmp_path_factory.mktemp("kafka"))}
    try:
        started = _run("start", env=env)
        lines = started.stdout.strip().splitlines()
        if started.returncode != 0 or not lines or not lines[-1].startswith("bootstrap="):
            pytest.fail(
                f"{KAFKA_SH} start failed (exit {started.returncode}); set RAGLINE_TEST_KAFKA_BOOTSTRAP "
                f"to use a running broker\n--- stderr ---\n{started.stderr}--- stdout ---\n{started.stdout}",
                pytrace=False,
            )
        yield lines[-1].removeprefix("bootstrap=")
    finally:
        stopped = _run("stop", "--clean", env=env)
        if stopped.returncode != 0:
            print(f"{KAFKA_SH} stop --clean failed (exit {stopped.returncode}):\n{stopped.stderr}")
