"""``ragline ingest DIR`` on a hostile folder (issue 9): the real console script, a FIFO
and a dangling symlink beside a good file. The run finishes, indexes the good file, lists
each refused entry and exits 3 (some failed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RAGLINE = str(Path(sys.executable).with_name("ragline"))


def ingest_json(home: Path, *args: str) -> tuple[int, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    proc = subprocess.run([RAGLINE, "ingest", *args, "--json"], capture_output=True, text=True, timeout=120,
                          cwd=home.parent, env={**env, "RAGLINE_HOME": str(home)})
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_ingest_lists_a_fifo_and_a_dangling_symlink_and_indexes_the_rest(tmp_path: Path) -> None:
    tree = Path(os.path.realpath(tmp_path)) / "tree"
    tree.mkdir()
    (tree / "policy.md").write_text("# Incident policy\n\nA severity 1 incident is acknowledged within 15 minutes.\n")
    os.mkfifo(tree / "pipe")
    (tree / "dangling").symlink_to(tree / "nowhere")
    home = tmp_path / "home"

    code, data = ingest_json(home, str(tree))
    assert code == 3
    assert data["documents"] == {"new": 1, "updated": 0, "unchanged": 0, "failed": 2}
    assert data["chunks"] >= 1
    assert {e["source"]: e["error"] for e in data["errors"]} == {
        str(tree / "pipe"): "not a regular file (FIFO); skipped",
        str(tree / "dangling"): "symlink not followed; use --follow-symlinks",
    }

    code, data = ingest_json(home, str(tree), "--follow-symlinks")
    assert code == 3
    assert data["documents"] == {"new": 0, "updated": 0, "unchanged": 1, "failed": 2}
    errors = {e["source"]: e["error"] for e in data["errors"]}
    assert errors[str(tree / "dangling")] == "dangling symlink: its target does not exist"
