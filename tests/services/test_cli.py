"""The ``ragline`` console script as other tools call it: a real process, real model, real
index, on a temporary RAGLINE_HOME. One home is ingested once per module (each process
loads the model), and the commands that follow read it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "deploy" / "samples"
RAGLINE = Path(sys.executable).parent / "ragline"
INGEST_KEYS = {"documents", "chunks", "near_duplicates", "embedded_texts", "embedding_requests", "errors"}
HIT_KEYS = {"chunk_id", "document_id", "source_uri", "score", "rank_score", "text", "page_start", "page_end"}


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        lines = self.stdout.splitlines()
        assert len(lines) == 1, f"--json prints exactly one line on stdout, got {self.stdout!r}"
        return json.loads(lines[0])


def ragline(home: Path, *args: str, **env: str) -> Result:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")}
    proc = subprocess.run(
        [str(RAGLINE), *args], capture_output=True, text=True, timeout=240, cwd=home.parent,
        env={**clean, "RAGLINE_HOME": str(home), **env},
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli") / "home"


@pytest.fixture(scope="module")
def first_ingest(home: Path) -> Result:
    return ragline(home, "ingest", str(SAMPLES), "--json")


def test_ingest_prints_the_json_contract(first_ingest: Result) -> None:
    assert first_ingest.code == 0, first_ingest.stderr
    data = first_ingest.json()
    assert set(data) >= INGEST_KEYS
    assert data["documents"] == {"new": 5, "updated": 0, "unchanged": 0, "failed": 0}
    assert data["chunks"] > 0 and data["embedded_texts"] == data["chunks"]
    assert data["embedding_requests"] >= 1 and data["errors"] == []


def test_failed_documents_exit_3_and_are_listed(first_ingest: Result, home: Path, corpora: Path) -> None:
    broken = corpora / "malformed" / "pdf" / "qpdf-bad1.pdf"
    missing = home.parent / "no-such-file.pdf"
    result = ragline(home, "ingest", str(SAMPLES), str(broken), str(missing), "--json")

    assert result.code == 3, result.stderr
    data = result.json()
    assert data["documents"] == {"new": 0, "updated": 0, "unchanged": 5, "failed": 2}
    assert data["embedding_requests"] == 0
    assert all(set(e) == {"source", "error"} for e in data["errors"])
    errors = {e["source"]: e["error"] for e in data["errors"]}
    assert set(errors) == {str(broken), str(missing)}
    assert "no such file" in errors[str(missing)] and errors[str(broken)]


def test_search_prints_a_json_list_of_hits(first_ingest: Result, home: Path) -> None:
    result = ragline(home, "search", "how fast must a severity 1 incident be acknowledged", "--k", "2", "--json")

    assert result.code == 0, result.stderr
    hits = result.json()
    assert isinstance(hits, list) and len(hits) == 2
    assert all(set(h) == HIT_KEYS for h in hits)
    assert Path(hits[0]["source_uri"]).name == "incident-runbook.pdf"
    assert hits[0]["page_start"] >= 1 and hits[0]["rank_score"] >= hits[1]["rank_score"]  # fused order (hybrid)
    assert "acknowledge" in hits[0]["text"].lower()
    same = ragline(home, "search", "how fast must a severity 1 incident be acknowledged", "--k", "2", "--json",
                   "--mmr", "1")
    assert same.code == 0, same.stderr
    assert [h["chunk_id"] for h in same.json()] == [h["chunk_id"] for h in hits]  # λ = 1 keeps the ranking


def test_reconcile_reports_a_consistent_index(first_ingest: Result, home: Path) -> None:
    result = ragline(home, "reconcile", "--json")

    assert result.code == 0, result.stderr
    report = result.json()
    assert report["consistent"] is True and report["discrepancies"] == []
    assert report["documents"] == 5 and report["points"] == first_ingest.json()["chunks"]


def test_a_budget_stop_exits_1_with_a_message(first_ingest: Result, home: Path, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Another note, long enough to cost more than a hundredth of a cent at this price.\n")
    result = ragline(home, "ingest", str(note), "--json", RAGLINE_EMBEDDING__PRICE_PER_MILLION_TOKENS="1000",
                     RAGLINE_EMBEDDING__BUDGET_USD="0.0001")

    assert result.code == 1
    assert "budget" in result.stderr
    assert result.json()["embedding_requests"] == 0


def test_an_invalid_setting_exits_1_naming_the_variable(home: Path) -> None:
    result = ragline(home, "search", "anything", RAGLINE_EMBEDDING__PROVIDER="nope")

    assert result.code == 1
    assert "RAGLINE_EMBEDDING__PROVIDER" in result.stderr and "nope" in result.stderr
    assert result.stdout == ""


def test_usage_errors_exit_2(home: Path) -> None:
    result = ragline(home, "search", "--k", "0", "query")
    assert result.code == 2 and "--k" in result.stderr and result.stdout == ""
    result = ragline(home, "search", "--mmr", "1.5", "query")
    assert result.code == 2 and "--mmr" in result.stderr and result.stdout == ""
