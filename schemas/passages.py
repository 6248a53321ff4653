"""What makes two chunks "the same passage": one definition for ingest and query time.

At ingest, near-duplicate chunks are found with MinHash/LSH over these shingles
(``ingest.dedup``); at query time, hits are collapsed by the exact Jaccard of the same
shingles (``retrieval.retriever.collapse_duplicates``). Both compare at one threshold,
``RAGLINE_RETRIEVAL__DUPLICATE_SIMILARITY``, so a pair one side calls a copy the other does
too (at ingest up to the MinHash estimate's error: ±0.03 at 0.9 with 128 permutations).
"""

from __future__ import annotations

import unicodedata

#: Words per shingle. Changing it changes which passages are copies (stored signatures name it).
SHINGLE_WORDS = 3


def passage_key(text: str) -> str:
    """A passage up to Unicode form, case and whitespace: what makes two hits "the same"."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def shingles(key: str) -> list[str]:
    """The word shingles (``SHINGLE_WORDS`` long) of a :func:`passage_key` in order, repeats
    kept (its words when it has fewer). A MinHash signature is the same whether a shingle
    repeats or not."""
    words = key.split()
    if len(words) < SHINGLE_WORDS:
        return words
    return [" ".join(run) for run in zip(*(words[i:] for i in range(SHINGLE_WORDS)), strict=False)]


def word_shingles(key: str) -> frozenset[str]:
    """The set of :func:`shingles` of a :func:`passage_key`."""
    return frozenset(shingles(key))
