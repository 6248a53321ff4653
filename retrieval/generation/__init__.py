"""Answer generators behind the ``Generator`` protocol (loaded on first use, PEP 562:
the OpenAI client is imported only when the OpenAI generator is chosen)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {"ExtractiveGenerator": "retrieval.generation.extractive",
         "OpenAIChatGenerator": "retrieval.generation.openai_chat"}

__all__ = ["ExtractiveGenerator", "OpenAIChatGenerator"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'retrieval.generation' has no attribute {name!r}")
