"""Rerankers behind the ``Reranker`` protocol: an HTTP ``/rerank`` endpoint (Cohere, Jina,
Hugging Face TEI, or any server speaking one of their shapes). ``none`` is no reranker."""

from retrieval.rerank.http import HttpReranker, RerankError

__all__ = ["HttpReranker", "RerankError"]
