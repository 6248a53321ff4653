"""The pre-count of a run (its progress total) walks exactly as the run does: one per
document and one per refusal, through the same hardened walk, reading nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.sources import SourceOptions, count_sources, iter_sources

pytestmark = pytest.mark.timeout(10)  # a FIFO is counted, never opened


@pytest.mark.parametrize("follow", [False, True])
def test_the_count_matches_what_the_walk_yields(tmp_path: Path, follow: bool) -> None:
    root = Path(os.path.realpath(tmp_path)) / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    for name in ("a.txt", "sub/b.md", "sub/deeper/c.py", ".hidden"):
        (root / name).write_text("text")
    (root / "sub" / "alias.txt").symlink_to(root / "a.txt")  # refused, or followed inside the root
    (root / "loop").symlink_to(root)  # a loop: refused, or walked once
    (root / "outside").symlink_to("/etc/hostname")  # refused either way
    os.mkfifo(root / "pipe")  # refused, never opened
    lone = tmp_path / "lone.txt"
    lone.write_text("named on the command line")
    targets = [str(root), str(lone), str(tmp_path / "missing.txt"), "https://example.invalid/doc"]
    options = SourceOptions(tenant="t", follow_symlinks=follow)

    walked = [s.source_uri for s in iter_sources(targets[:-1], options)] + [targets[-1]]  # (no network here)
    assert count_sources(targets, options) == len(walked)
    assert len(walked) == 10  # 3 files, 4 refusals (or links followed), the lone file, the missing one, the URL
