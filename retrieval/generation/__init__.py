"""Answer generators behind the ``Generator`` protocol."""

from retrieval.generation.extractive import ExtractiveGenerator
from retrieval.generation.openai_chat import OpenAIChatGenerator

__all__ = ["ExtractiveGenerator", "OpenAIChatGenerator"]
