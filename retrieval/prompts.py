"""Versioned prompt templates: files in ``retrieval/templates/`` named ``<name>.v<N>.txt``.

A template's version and the SHA-256 of its bytes travel with every answer, so a
replay can prove it rebuilt the exact prompt that was sent.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

from schemas.errors import ConfigurationError, NotFoundError
from schemas.retrieval import RetrievedChunk

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_TEMPLATE = "grounded_answer.v1"
_SECTION = re.compile(r"^\[(system|user|assistant)\]\s*$", re.MULTILINE)


@dataclass(frozen=True)
class PromptTemplate:
    version: str  # e.g. "grounded_answer.v1"
    sha256: str
    parts: tuple[tuple[str, str], ...]  # (role, template text)

    def render(self, query: str, chunks: list[RetrievedChunk]) -> list[dict[str, str]]:
        """Chat messages for ``query`` grounded in ``chunks`` (numbered by rank)."""
        context = "\n\n".join(_source_block(c) for c in chunks) or "(no sources found)"
        values = {"query": query, "context": context}
        return [{"role": role, "content": Template(text).safe_substitute(values).strip()} for role, text in self.parts]


def _source_block(chunk: RetrievedChunk) -> str:
    where = chunk.source_uri
    if chunk.page_start:
        where += f", page {chunk.page_start}" + (f"-{chunk.page_end}" if chunk.page_end != chunk.page_start else "")
    return f"[{chunk.rank}] ({where})\n{chunk.text}"


@cache
def load_template(version: str = DEFAULT_TEMPLATE) -> PromptTemplate:
    if not re.fullmatch(r"[a-z0-9_]+\.v\d+", version):
        raise ConfigurationError(f"prompt template {version!r}: expected <name>.v<N>")
    path = TEMPLATES / f"{version}.txt"
    if not path.is_file():
        raise NotFoundError(f"prompt template {version!r} not found in {TEMPLATES}")
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    pieces = _SECTION.split(text)
    parts = tuple((pieces[i], pieces[i + 1]) for i in range(1, len(pieces) - 1, 2))
    if not parts:
        raise ConfigurationError(f"prompt template {path}: no [system]/[user] sections")
    return PromptTemplate(version, hashlib.sha256(raw).hexdigest(), parts)
