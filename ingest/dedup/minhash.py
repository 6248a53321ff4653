"""MinHash signatures (rensa) and their LSH band keys.

A chunk's text is folded as query time folds it (``schemas.passages``: Unicode form, case,
whitespace) and cut into word 3-shingles; rensa's ``RMinHash`` (Rust) turns the shingle
set into ``permutations`` 32-bit minimums. The estimated Jaccard similarity of two chunks
is the share of positions where their signatures agree. For the LSH index the signature is
cut into ``bands`` runs; a run's key is a 64-bit BLAKE2b digest keyed by the chunk's scope,
so two chunks are candidates exactly when one band agrees within one scope.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

import numpy as np
import rensa

from ingest.dedup.base import DedupConfig, Sketches
from schemas.passages import SHINGLE_WORDS, passage_key, shingles


class MinHashSketcher:
    def __init__(self, config: DedupConfig) -> None:
        self.config = config
        self._rows = config.permutations // config.bands

    @property
    def sketch_id(self) -> str:
        """What a signature and its band keys depend on; stored with every row (via the scope)."""
        c = self.config
        return (f"rensa-rminhash{rensa.RMinHash.ALGORITHM_VERSION}-p{c.permutations}-b{c.bands}-s{c.seed}"
                f"-w{SHINGLE_WORDS}")

    def scope(self, collection: str, access_tags: Sequence[str]) -> str:
        """Besides the tenant, what two chunks must share to be copies: the index generation,
        the exact set of access tags and the sketch (a SHA-256, hex)."""
        key = json.dumps([collection, sorted(set(access_tags)), self.sketch_id], separators=(",", ":"))
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def sketch(self, texts: Sequence[str], scope: str) -> Sketches:
        c = self.config
        signatures = np.empty((len(texts), c.permutations), dtype=np.uint32)
        empty = np.zeros(len(texts), dtype=bool)
        for i, text in enumerate(texts):
            tokens = shingles(passage_key(text))
            empty[i] = not tokens
            # One sketch at a time, on the calling thread: rensa's batch calls fan out to a thread
            # pool of their own, which costs more than it saves beside extraction and the model.
            minhash = rensa.RMinHash(c.permutations, c.seed)
            minhash.update(tokens)
            signatures[i] = minhash.digest()
        return Sketches(scope=scope, signatures=signatures, bands=self.band_keys(scope, signatures), empty=empty)

    def band_keys(self, scope: str, signatures: np.ndarray) -> np.ndarray:
        """(n, bands) signed 64-bit keys of each signature's bands within ``scope``."""
        keys = np.empty((len(signatures), self.config.bands), dtype=np.int64)
        base = hashlib.blake2b(digest_size=8, key=bytes.fromhex(scope))
        rows = self._rows
        for i, signature in enumerate(np.ascontiguousarray(signatures, dtype="<u4")):
            for band in range(self.config.bands):
                h = base.copy()
                h.update(band.to_bytes(2, "little"))
                h.update(signature[band * rows : (band + 1) * rows].tobytes())
                keys[i, band] = int.from_bytes(h.digest(), "little", signed=True)
        return keys

    @staticmethod
    def similarity(a: np.ndarray, b: np.ndarray) -> float:
        """The MinHash estimate of the Jaccard similarity of two chunks' shingle sets."""
        return float(np.count_nonzero(a == b)) / len(a)

    @staticmethod
    def to_bytes(signature: np.ndarray) -> bytes:
        return np.ascontiguousarray(signature, dtype="<u4").tobytes()

    @staticmethod
    def from_bytes(blob: bytes) -> np.ndarray:
        return np.frombuffer(blob, dtype="<u4")
