"""``ragline eval`` on a tiny BEIR-format collection written here: the corpus goes into a
throwaway home, the queries run through the answering use case in every mode, the metrics
are the textbook ones, and ``--json`` prints {"modes": {mode: {metric: value}}}."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli import app
from services.evaluation import load_beir, mrr, ndcg, recall, run_eval
from services.settings import Settings

CORPUS = [
    ("d1", "Severity one incidents", "A severity one incident must be acknowledged within fifteen minutes."),
    ("d2", "Paid leave", "Employees accrue two days of paid leave per month, capped at thirty days."),
    ("d3", "Backups", "Nightly backups are kept for thirty five days and restored every quarter as a drill."),
    ("d4", "Freezer inventory", "The sample labelled ZEBRAQUUX was stored at minus eighty degrees."),
    ("d5", "Access reviews", "Quarterly access reviews are mandatory for every production system."),
    ("d6", "Expenses", "Travel expenses are reimbursed within thirty days of an approved claim."),
]
QUERIES = [("q1", "how quickly must a sev 1 incident be acknowledged", {"d1": 1}),
           ("q2", "ZEBRAQUUX", {"d4": 1}),
           ("q3", "how many vacation days do employees earn", {"d2": 1}),
           ("q4", "how long are backups retained", {"d3": 2, "d5": 0})]
MODES = {"dense", "sparse", "hybrid"}
METRICS = {"ndcg@10", "recall@10", "recall@100", "mrr@10"}


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n"
                                               for i, t, x in CORPUS))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t, _ in QUERIES)
                                        + json.dumps({"_id": "unjudged", "text": "not in qrels"}) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t{r}\n" for q, _, rels in QUERIES for d, r in rels.items()))
    return root


def test_metrics_are_the_textbook_ones() -> None:
    rels = {"a": 2, "b": 1, "z": 0}
    assert ndcg(["a", "b"], rels) == pytest.approx(1.0)
    assert ndcg(["x", "a"], rels) == pytest.approx((2 / 1.5849625) / (2 + 1 / 1.5849625), rel=1e-6)
    assert recall(["x", "b"], rels, 10) == 0.5 and recall(["a"] + ["x"] * 20, rels, 10) == 0.5
    assert mrr(["x", "z", "b"], rels) == pytest.approx(1 / 3) and mrr(["x"] * 10 + ["a"], rels) == 0.0


def test_only_judged_queries_are_evaluated(beir: Path) -> None:
    dataset = load_beir(beir)
    assert set(dataset.queries) == {"q1", "q2", "q3", "q4"} and dataset.qrels["q4"] == {"d3": 2, "d5": 0}


def test_eval_ingests_into_a_throwaway_home_and_scores_every_mode(beir: Path, tmp_path: Path) -> None:
    home = tmp_path / "configured-home"
    report = run_eval(Settings(home=home), beir)
    assert not home.exists()  # the configured home was never touched
    assert set(report.modes) == MODES and report.queries == 4 and report.documents == 6
    for scores in report.modes.values():
        assert set(scores) == METRICS and all(0.0 <= v <= 1.0 for v in scores.values())
        assert scores["recall@100"] == 1.0  # six documents: every relevant one is retrieved
    assert report.per_query["sparse"]["q2"]["mrr@10"] == 1.0  # the exact token, first
    assert report.per_query["hybrid"]["q2"]["mrr@10"] == 1.0
    assert report.modes["hybrid"]["ndcg@10"] >= 0.75 and report.duplicate_top10 == 0


def test_a_kept_home_is_reused_and_use_index_reads_it(beir: Path, tmp_path: Path) -> None:
    home = tmp_path / "eval-home"
    first = run_eval(Settings(), beir, home=home, modes=("dense",))
    again = run_eval(Settings(home=home), beir, use_index=True, modes=("dense",))
    assert again.modes == first.modes and again.collection == first.collection


def test_the_cli_prints_json_per_mode(beir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGLINE_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["eval", str(beir), "--json", "--mode", "sparse", "--mode", "hybrid"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["modes"]) == {"sparse", "hybrid"} and set(data["modes"]["hybrid"]) == METRICS
    bad = CliRunner().invoke(app, ["eval", str(beir), "--mode", "fuzzy"])
    assert bad.exit_code == 2


def test_a_kept_home_is_evaluated_on_the_generation_just_built(beir: Path, tmp_path: Path) -> None:
    home = tmp_path / "eval-home"
    before = run_eval(Settings(), beir, home=home, modes=("dense",))
    after = run_eval(Settings(retrieval={"context_headers": False}), beir, home=home, modes=("dense",))
    assert after.collection != before.collection  # a new pipeline fingerprint: a new generation, served
