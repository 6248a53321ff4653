"""Contextual chunk headers and the sparse tokenizer: what they produce, and that both are
part of the pipeline fingerprint (a change is a new index generation)."""

from __future__ import annotations

from typing import Any

import pytest

from ingest.context import HEADER_WORDS, contextual_text
from ingest.embed.sparse import BM25SparseEncoder, SparseConfig
from schemas.errors import ConfigurationError


def test_the_header_names_title_and_heading_path_once() -> None:
    assert contextual_text("Runbook", ("Runbook", "Severity 1"), "Page the on-call.") == (
        "Runbook > Severity 1\n\nPage the on-call.")
    headed = "# Runbook\n\nPage the on-call."
    assert contextual_text("Runbook", ("Runbook",), headed) == headed  # the chunk already begins with it
    assert contextual_text(None, (), "bare") == "bare"
    long = contextual_text(" ".join(["word"] * 50), (), "x")
    assert len(long.split("\n\n")[0].split()) == HEADER_WORDS + 1  # cut, with an ellipsis


def test_the_tokenizer_is_unicode_aware_and_stems() -> None:
    encoder = BM25SparseEncoder()
    assert encoder.tokenize("The Studies of IL-6 in naïve mice_cells, ﬁles") == [
        "studi", "il", "6", "naïv", "mice", "cell", "file"]
    assert encoder.tokenize("東京都") == ["東京", "京都"]  # CJK runs: overlapping bigrams
    plain = BM25SparseEncoder(SparseConfig(stemming=False, stopwords=False))
    assert plain.tokenize("The studies") == ["the", "studies"]


def test_document_weights_saturate_and_queries_count_terms() -> None:
    encoder = BM25SparseEncoder()
    one, many = encoder.encode_documents(["protein binds", "protein protein protein protein binds"])
    assert len(one.indices) == 2 and max(many.values) < 2.2  # k1 + 1 bounds a term's weight
    query = encoder.encode_query("protein protein")
    assert query.values == [2.0]


def test_a_language_without_stopwords_or_stemmer_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="STOPWORDS"):
        BM25SparseEncoder(SparseConfig(language="german"))
    BM25SparseEncoder(SparseConfig(language="german", stopwords=False))  # the Snowball stemmer exists
    with pytest.raises(ConfigurationError, match="LANGUAGE"):
        BM25SparseEncoder(SparseConfig(language="klingon", stopwords=False))


def test_headers_and_the_sparse_config_enter_the_fingerprint(make_components: Any) -> None:
    base = make_components().pipeline_fingerprint
    assert make_components(retrieval={"context_headers": False}).pipeline_fingerprint != base
    assert make_components(retrieval={"sparse": {"stemming": False}}).pipeline_fingerprint != base
    assert make_components().pipeline_fingerprint == base
