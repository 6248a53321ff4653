"""The CLI starts at once (issue 11): ``ragline --help`` imports no model runtime, database
engine, lineage lake or pipeline, and ``ragline search`` no lineage lake, ingest pipeline,
extractor or migration tool. Checked by what a fresh interpreter has imported, never by
the clock. And progress: a known total, and a line every few seconds off a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services import output

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "deploy" / "samples"
RAGLINE = Path(sys.executable).parent / "ragline"
#: Modules that cost a CLI start 0.1-0.7 s each.
HEAVY = ("onnxruntime", "sqlalchemy", "alembic", "pyiceberg", "numpy", "qdrant_edge", "tiktoken", "trafilatura",
         "pdfplumber", "ingest.pipeline", "lineage.iceberg", "httpx")
#: What search may load, but not these: the ingest side and the lineage lake.
NOT_FOR_SEARCH = ("pyiceberg", "lineage.iceberg", "ingest.pipeline", "ingest.extract.registry", "trafilatura",
                  "pdfplumber", "alembic", "ingest.fetch")

REPORT = "import json, sys; print(json.dumps(sorted(sys.modules)), file=sys.stderr)"


def run(code: str, home: Path) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                          env={**env, "RAGLINE_HOME": str(home)}, cwd=REPO)
    modules = json.loads(proc.stderr.strip().splitlines()[-1])
    return proc, set(modules)


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if n in modules]


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    code = ("import sys; sys.argv = ['ragline', '--help']\nfrom services.cli import main\n"
            f"try:\n    main()\nexcept SystemExit:\n    pass\n{REPORT}")
    proc, modules = run(code, tmp_path / "home")
    assert "ingest" in proc.stdout and "search" in proc.stdout
    assert loaded(modules, HEAVY) == []


def test_search_imports_only_the_answer_path(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    subprocess.run([str(RAGLINE), "ingest", str(SAMPLES / "ragline-overview.md"), "--json"], check=True,
                   capture_output=True, timeout=240, env={**env, "RAGLINE_HOME": str(home)})
    code = ("import sys; sys.argv = ['ragline', 'search', 'what is ragline', '--json']\n"
            f"from services.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n{REPORT}")
    proc, modules = run(code, home)
    hits = json.loads(proc.stdout)
    assert hits and hits[0]["source_uri"].endswith("ragline-overview.md")
    assert "onnxruntime" in modules and "qdrant_edge" in modules  # the real answer path ran
    assert loaded(modules, NOT_FOR_SEARCH) == []


def test_off_a_terminal_progress_prints_a_line_every_few_seconds(capsys: pytest.CaptureFixture[str]) -> None:
    with output.progress("ingesting", enabled=True, total=4, interval_s=0.05) as bar:
        assert bar is not None
        bar.advance("a.pdf")
        deadline = time.monotonic() + 20
        while "a.pdf" not in capsys.readouterr().err and time.monotonic() < deadline:
            time.sleep(0.05)
        bar.advance("b.html")
        deadline = time.monotonic() + 20
        line = ""
        while "b.html" not in line and time.monotonic() < deadline:
            time.sleep(0.05)
            line = capsys.readouterr().err
    last = line.strip().splitlines()[-1]
    assert last.startswith("ingesting 2/4 (50%) · ") and "docs/s" in last and "left" in last
    assert last.endswith("last: b.html")
    with output.progress("ingesting", enabled=False, total=4) as none:
        assert none is None
