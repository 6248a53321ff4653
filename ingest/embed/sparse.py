"""Lexical sparse vectors (BM25-style), computed by ragline for every index backend.

A chunk's vector holds, for each distinct term, BM25's saturated and length-normalised
term frequency ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))``; a query's
holds each term's count. The engine multiplies by IDF (Qdrant's ``idf`` modifier, on
Qdrant Edge and on a Qdrant server alike), so the dot product is the BM25 score and no
inverted index is kept by ragline.

Tokenization: NFKC normalisation and case folding; words are runs of Unicode letters and
digits (underscores and punctuation split); Han and kana runs, which carry no spaces,
become overlapping character bigrams (as Lucene's CJK analyzer does); optional stopwords
and Snowball stemming (PyStemmer) per language. Terms are hashed to 32-bit ids with
MurmurHash3, so the vocabulary is open and needs no shared state. Every setting enters
the pipeline fingerprint through :meth:`BM25SparseEncoder.config`.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import mmh3
from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.errors import ConfigurationError
from schemas.retrieval import SparseVector

#: Bumped when the tokenizer or the weighting changes (it is part of the fingerprint).
SPARSE_VERSION = "bm25-v1"

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]+|(?:(?![{_CJK}])[^\W_])+")
_CJK_START = re.compile(rf"[{_CJK}]")

#: Lucene's English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET): short, so that
#: content words such as "not" or "no" are the only price paid in rare phrase queries.
ENGLISH_STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with"))
STOPWORDS: dict[str, frozenset[str]] = {"english": ENGLISH_STOPWORDS}


class SparseConfig(BaseModel):
    """The lexical side of hybrid search (``RAGLINE_RETRIEVAL__SPARSE__*``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: str = Field("english", description="Snowball stemmer and stopword language")
    stemming: bool = True
    stopwords: bool = Field(True, description="drop the language's stopwords (built in for english only)")
    min_token_chars: int = Field(1, ge=1)
    max_token_chars: int = Field(40, ge=1, description="longer runs (hashes, base64) are dropped")
    k1: float = Field(1.2, ge=0)
    b: float = Field(0.75, ge=0, le=1)
    avg_len: float = Field(128.0, gt=0, description="expected terms per chunk (BM25's average length)")

    @field_validator("language")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


class BM25SparseEncoder:
    """:class:`schemas.protocols.SparseEncoder` for BM25 with the engine's IDF."""

    version = SPARSE_VERSION

    def __init__(self, config: SparseConfig | None = None) -> None:
        self._config = config or SparseConfig()
        cfg = self._config
        if cfg.stopwords and cfg.language not in STOPWORDS:
            raise ConfigurationError(f"RAGLINE_RETRIEVAL__SPARSE__STOPWORDS: no built-in stopwords for "
                                     f"{cfg.language!r} (have: {', '.join(sorted(STOPWORDS))}); set it to false")
        self._stop = STOPWORDS.get(cfg.language, frozenset()) if cfg.stopwords else frozenset()
        if cfg.stemming:
            _ = self._stemmer  # an unknown language fails here, at start, not on the first document

    @cached_property
    def _stemmer(self) -> Any:
        import Stemmer

        try:
            return Stemmer.Stemmer(self._config.language)
        except KeyError as exc:
            raise ConfigurationError(
                f"RAGLINE_RETRIEVAL__SPARSE__LANGUAGE={self._config.language!r}: no Snowball stemmer "
                f"(have: {', '.join(Stemmer.algorithms())})") from exc

    def config(self) -> dict[str, object]:
        return {"version": self.version, **self._config.model_dump()}

    def tokenize(self, text: str) -> list[str]:
        """The terms of ``text``, in order (stopwords dropped, stems when stemming)."""
        cfg = self._config
        words: list[str] = []
        for match in _TOKEN.finditer(unicodedata.normalize("NFKC", text).casefold()):
            word = match.group()
            if _CJK_START.match(word):
                words.extend(word[i : i + 2] for i in range(max(len(word) - 1, 1)))
            elif cfg.min_token_chars <= len(word) <= cfg.max_token_chars and word not in self._stop:
                words.append(word)
        if cfg.stemming and words:
            stems: list[str] = self._stemmer.stemWords(words)
            return stems
        return words

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        cfg = self._config
        vectors = []
        for text in texts:
            terms = self.tokenize(text)
            norm = cfg.k1 * (1 - cfg.b + cfg.b * len(terms) / cfg.avg_len)
            weights = {term: tf * (cfg.k1 + 1) / (tf + norm) for term, tf in Counter(terms).items()}
            vectors.append(_vector(weights))
        return vectors

    def encode_query(self, text: str) -> SparseVector:
        return _vector({term: float(n) for term, n in Counter(self.tokenize(text)).items()})


def term_id(term: str) -> int:
    """A term's index in the sparse space: MurmurHash3 (32-bit, unsigned)."""
    return int(mmh3.hash(term, signed=False))


def _vector(weights: dict[str, float]) -> SparseVector:
    merged: dict[int, float] = {}
    for term, weight in weights.items():  # two terms hashing alike add up (rare, and harmless)
        key = term_id(term)
        merged[key] = merged.get(key, 0.0) + weight
    ordered = sorted(merged)
    return SparseVector(indices=ordered, values=[merged[i] for i in ordered])
