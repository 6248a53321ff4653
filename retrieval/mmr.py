"""Maximal marginal relevance (Carbonell & Goldstein, SIGIR 1998): ranked candidates re-ordered
so that each next one is relevant and unlike the ones already chosen::

    next = argmax over the rest of  λ · relevance(c) − (1 − λ) · max cos(c, chosen)

``λ = 1`` keeps the ranking as it is; ``λ = 0`` chooses by dissimilarity alone (after the
first, the most relevant). Pure functions over numpy: no I/O, no index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from schemas.retrieval import RetrievedChunk


def mmr_order(relevance: Sequence[float], vectors: np.ndarray, lam: float) -> list[int]:
    """Indices of every candidate in MMR order. ``vectors`` holds one row per candidate (a
    zero row: nothing known, never redundant); ties go to the earlier candidate."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"MMR lambda must lie in [0, 1], got {lam}")
    n = len(relevance)
    if n == 0:
        return []
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors, dtype=np.float64), where=norms > 0)
    similarity = unit @ unit.T
    gain = lam * np.asarray(relevance, dtype=np.float64)
    redundancy = np.zeros(n)  # nothing chosen yet: the first is the most relevant
    left = np.ones(n, dtype=bool)
    order: list[int] = []
    for step in range(n):
        score = np.where(left, gain - (1.0 - lam) * redundancy, -np.inf)
        best = int(np.argmax(score))  # the first of equal scores: the original order breaks ties
        order.append(best)
        left[best] = False
        redundancy = similarity[best] if step == 0 else np.maximum(redundancy, similarity[best])
    return order


def diversify(chunks: Sequence[RetrievedChunk], vectors: Mapping[str, Sequence[float]],
              lam: float) -> list[RetrievedChunk]:
    """``chunks`` (ranked) re-ordered by MMR; redundancy is the cosine of their dense vectors
    (``vectors`` by chunk id), relevance comes from :func:`relevance`."""
    if len(chunks) < 2 or not vectors:
        return list(chunks)
    scores = [c.rank_score if c.rank_score is not None else c.score for c in chunks]
    dims = len(next(iter(vectors.values())))
    matrix = np.zeros((len(chunks), dims))
    for i, chunk in enumerate(chunks):
        vector = vectors.get(chunk.chunk_id)
        if vector is not None and len(vector) == dims:
            matrix[i] = vector
    return [chunks[i] for i in mmr_order(relevance(scores), matrix, lam)]


def relevance(scores: Sequence[float]) -> list[float]:
    """The ranking's own scores (cosine, BM25, RRF or the reranker's, best first) as relevance
    in [0, 1]: relative to the best one, so one λ means about the same in every mode (cosine,
    BM25 and RRF all have a natural zero; a negative score counts as 0). Min-max scaling
    instead would give the weakest candidate fetched 0 whatever it scored, so relevance would
    depend on how many were fetched. Scores that are all <= 0 (a reranker's raw logits) are
    min-max scaled. Relevance never rises down the list, so λ = 1 keeps the order exactly."""
    values = np.minimum.accumulate(np.asarray(scores, dtype=np.float64))
    if values[0] > 0:
        values = np.clip(values, 0.0, None) / values[0]
    else:
        spread = values[0] - values[-1]
        values = (values - values[-1]) / spread if spread > 0 else np.ones(len(values))
    return [float(v) for v in values]
