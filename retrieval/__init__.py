"""Vector indexes, retrieval, prompt templates and answer generators.

The retriever loads on first use (PEP 562), so importing a submodule (settings read
``retrieval.index.base``) does not pull in the whole answer path."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retrieval.retriever import Retrieval, RetrievalConfig, RetrievalTimings, Retriever

__all__ = ["Retrieval", "RetrievalConfig", "RetrievalTimings", "Retriever"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(import_module("retrieval.retriever"), name)
    raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
