"""Vector indexes, retrieval, prompt templates and answer generators."""

from retrieval.retriever import Retrieval, RetrievalConfig, RetrievalTimings, Retriever

__all__ = ["Retrieval", "RetrievalConfig", "RetrievalTimings", "Retriever"]
