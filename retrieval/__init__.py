"""Vector indexes, retrieval, prompt templates and answer generators."""

from retrieval.retriever import RetrievalTimings, Retriever

__all__ = ["RetrievalTimings", "Retriever"]
