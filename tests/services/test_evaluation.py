"""``ragline eval`` on a tiny BEIR-format collection written here: the corpus goes into a
throwaway home, the queries run through the answering use case in every mode, the metrics
are the textbook ones, and ``--json`` prints {"modes": {mode: {metric: value}}}.
``--compare A.toml B.toml`` evaluates two configurations side by side with a paired
randomization test; a bad settings file is refused naming the file and the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas.errors import ConfigurationError
from services.cli import app
from services.evaluation import (
    load_beir,
    load_configuration,
    mrr,
    ndcg,
    paired_randomization_test,
    recall,
    run_compare,
    run_eval,
)
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


def test_the_paired_randomization_test() -> None:
    same = [0.1, 0.5, 0.9, 0.3]
    assert paired_randomization_test(same, same) == 1.0
    # Ten queries, all better by 0.1: exact over 2**10 sign flips, only "all +" and "all -" reach it.
    assert paired_randomization_test([0.5] * 10, [0.6] * 10) == pytest.approx(2 / 1024)
    # Thirty queries: sampled with a fixed seed, counted with the observed assignment (never 0).
    assert paired_randomization_test([0.5] * 30, [0.6] * 30) == pytest.approx(1 / 10_001)
    noisy_a = [0.1 * (i % 7) for i in range(40)]
    noisy_b = [x + (0.05 if i % 2 else -0.04) for i, x in enumerate(noisy_a)]
    p = paired_randomization_test(noisy_a, noisy_b)
    assert 0.05 < p < 1.0 and p == paired_randomization_test(noisy_a, noisy_b)  # repeatable
    assert paired_randomization_test([0.2, 0.4], [0.4, 0.2]) == 1.0  # mean difference 0


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_compare_prints_two_configurations_side_by_side(beir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    a = write(tmp_path / "headers.toml", "[retrieval]\ncontext_headers = true\n")
    b = write(tmp_path / "plain.toml", "[retrieval]\ncontext_headers = false\n[chunking]\nmax_tokens = 16\n")
    monkeypatch.setenv("RAGLINE_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, ["eval", str(beir), "--json", "--mode", "dense", "--mode", "sparse",
                                      "--compare", str(a), str(b), "--home", str(tmp_path / "kept")])
    assert result.exit_code == 0, result.output
    compare = json.loads(result.stdout)["compare"]
    assert compare["a"] == str(a) and compare["b"] == str(b) and compare["queries"] == 4
    assert compare["collections"]["a"] != compare["collections"]["b"]  # two pipelines, two generations
    assert (tmp_path / "kept" / "a").is_dir() and (tmp_path / "kept" / "b").is_dir()  # one kept home each
    assert set(compare["modes"]) == {"dense", "sparse"}
    for metrics in compare["modes"].values():
        assert set(metrics) == METRICS
        for c in metrics.values():
            assert set(c) == {"a", "b", "delta", "p"} and 0 < c["p"] <= 1
            assert c["delta"] == pytest.approx(c["b"] - c["a"], abs=1e-3)
    assert "paired randomization" in compare["test"]["method"]


def test_identical_configurations_differ_by_nothing(beir: Path, tmp_path: Path) -> None:
    same = write(tmp_path / "same.toml", "[retrieval]\nrrf_k = 30\n")
    report = run_compare(Settings(), beir, same, same, modes=("hybrid",))
    assert report.reports[0].collection == report.reports[1].collection
    for c in report.modes["hybrid"].values():
        assert c.delta == 0.0 and c.p == 1.0
    assert report.to_dict()["compare"]["modes"]["hybrid"]["ndcg@10"]["p"] == 1.0


def test_a_bad_settings_file_names_the_file_and_the_field(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.toml", "[retrieval]\nrrf_k = 0\ncontext_headers = true\nbogus = 1\n")
    with pytest.raises(ConfigurationError) as caught:
        load_configuration(bad, Settings())
    message = str(caught.value)
    assert message.startswith(f"{bad}: ")
    assert "retrieval.rrf_k = 0: Input should be greater than or equal to 1" in message
    assert "retrieval.bogus: no such setting" in message
    secret = write(tmp_path / "secret.toml", '[embedding]\napi_key = 5\n')
    with pytest.raises(ConfigurationError, match=r"embedding\.api_key: ") as caught:
        load_configuration(secret, Settings())
    assert "5" not in str(caught.value).replace(str(secret), "")  # a secret's value is never echoed
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_configuration(write(tmp_path / "broken.toml", "[retrieval\n"), Settings())


def test_the_cli_refuses_a_bad_settings_file_on_stderr(beir: Path, tmp_path: Path) -> None:
    good = write(tmp_path / "good.toml", "")
    bad = write(tmp_path / "bad.toml", "[chunking]\nmax_tokens = 'many'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGLINE_")} | {"RAGLINE_HOME": str(tmp_path / "h")}
    proc = subprocess.run([str(Path(sys.executable).parent / "ragline"), "eval", str(beir), "--json",
                           "--compare", str(good), str(bad)], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert f"{bad}: chunking.max_tokens = 'many': Input should be a valid integer" in " ".join(proc.stderr.split())
    assert not (tmp_path / "h").exists()  # refused before anything ran
