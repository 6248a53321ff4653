"""The offline default generator: quotes the retrieved sentences that best answer the query.

It never writes a word of its own: every sentence of the answer is copied verbatim from a
retrieved chunk and followed by that chunk's citation number, so there is nothing to
hallucinate. Sentences are scored by IDF-weighted overlap with the query's terms
(computed over the retrieved sentences only), with the chunk's retrieval score as a
tie-breaker so semantically matched chunks still surface.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from schemas.retrieval import Generation, RetrievedChunk

MODEL_VERSION = "ragline-extractive@1"
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(\[])|\n\s*\n|\n(?=[-*#|] )")
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP_WORDS = """
a an and are as at be but by can do does for from has have how i if in is it its may must of on or should so
than that the their them then there these they this to was we what when where which who why will with would
you your"""
_STOP = frozenset(_STOP_WORDS.split())


@dataclass(frozen=True)
class _Sentence:
    rank: int
    position: int
    text: str
    terms: frozenset[str]
    retrieval_score: float


class ExtractiveGenerator:
    model_version = MODEL_VERSION

    def __init__(self, max_sentences: int = 4) -> None:
        self.max_sentences = max_sentences

    def generate(self, query: str, chunks: Sequence[RetrievedChunk], messages: list[dict[str, str]]) -> Generation:
        """With no sentence in the chunks to quote (tables of figures, fragments) there is no
        answer: ``no_answer`` and no text; the answer path words the abstention."""
        picked = self._select(query, chunks)
        if not picked:
            return Generation(text="", model_version=self.model_version, no_answer=True)
        quotes: dict[int, str] = {}
        for s in picked:
            quotes[s.rank] = f"{quotes[s.rank]} {s.text}" if s.rank in quotes else s.text
        return Generation(
            text=" ".join(f"{s.text} [{s.rank}]" for s in picked),
            cited_ranks=sorted(quotes), model_version=self.model_version, quotes=quotes,
        )

    def stream(self, query: str, chunks: Sequence[RetrievedChunk],
               messages: list[dict[str, str]]) -> Iterator[str | Generation]:
        result = self.generate(query, chunks, messages)
        for i, piece in enumerate(re.split(r"(?<=\]) ", result.text) if result.text else []):
            yield piece if i == 0 else " " + piece
        yield result

    def _select(self, query: str, chunks: Sequence[RetrievedChunk]) -> list[_Sentence]:
        sentences = [s for c in chunks for s in _sentences(c)]
        if not sentences:
            return []
        wanted = _terms(query)
        df: dict[str, int] = {}
        for s in sentences:
            for term in s.terms & wanted:
                df[term] = df.get(term, 0) + 1
        n = len(sentences)

        def score(s: _Sentence) -> float:
            overlap = sum(math.log(1 + n / (1 + df[t])) for t in s.terms & wanted)
            return overlap + s.retrieval_score

        ranked = sorted(sentences, key=lambda s: (-score(s), s.rank, s.position))
        top = score(ranked[0])
        # Keep only sentences that answer nearly as well as the best one.
        best = [s for s in ranked if s.terms & wanted and score(s) >= 0.5 * top][: self.max_sentences] or ranked[:2]
        return sorted(best, key=lambda s: (s.rank, s.position))


def _sentences(chunk: RetrievedChunk) -> list[_Sentence]:
    out = []
    pos = 0
    for i, match in enumerate([*_SENTENCE_END.finditer(chunk.text), None]):
        end = match.start() if match else len(chunk.text)
        text = " ".join(chunk.text[pos:end].split())
        if len(text) >= 12:
            out.append(_Sentence(chunk.rank, i, text, _terms(text), chunk.score))
        pos = match.end() if match else end
    return out


def _terms(text: str) -> frozenset[str]:
    words = (m.group().lower() for m in _WORD.finditer(text))
    return frozenset(_stem(w) for w in words if w not in _STOP and len(w) > 1)


def _stem(word: str) -> str:
    """Crude suffix folding ("incidents" ~ "incident", "acknowledged" ~ "acknowledge")."""
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word
