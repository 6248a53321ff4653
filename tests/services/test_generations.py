"""Index generations: a new pipeline fingerprint builds a new collection beside the old one,
and the serving alias moves only once every document lives in the new one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ingest.sources import SourceOptions, iter_sources
from services.application import Application

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"


def test_alias_moves_only_when_the_new_generation_is_complete(make_components: Any, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(SAMPLES, corpus)
    home = tmp_path / "home"
    options = SourceOptions(tenant="default")
    first = make_components(home=home, chunking={"max_tokens": 120})
    first.pipeline().ingest(iter_sources([str(corpus)], options))
    assert "now serves" in Application(first).ingestion.promote_if_complete()
    old = first.collection
    assert first.index.resolve_alias(first.alias) == old
    first.close()

    second = make_components(home=home, chunking={"max_tokens": 160})  # new chunking: new fingerprint
    assert second.collection != old
    pipeline = second.pipeline()
    pipeline.ingest(iter_sources([str(corpus / "ragline-overview.md")], options))
    assert "incomplete" in Application(second).ingestion.promote_if_complete()
    assert second.serving_collection == old  # queries still go to the complete generation
    assert second.index.count(old) > 0 and second.index.count(second.collection) > 0
    summary = pipeline.ingest(iter_sources([str(corpus)], options))
    assert summary.documents["updated"] == 4 and summary.documents["unchanged"] == 1
    assert "now serves" in Application(second).ingestion.promote_if_complete()
    assert second.index.resolve_alias(second.alias) == second.collection
