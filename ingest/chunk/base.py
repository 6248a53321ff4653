"""Shared pieces of the chunkers: config models, section lookups, chunk assembly, loading.

Chunkers are pure functions of an :class:`ExtractedDocument` and their frozen config:
the tokenizer is the only resource they hold, loaded once in ``__init__``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ingest.chunk.tokens import DEFAULT_ENCODING
from schemas.documents import Chunk, ExtractedDocument
from schemas.errors import ConfigurationError
from schemas.protocols import Chunker

ENTRY_POINT_GROUP = "ragline.chunkers"

# Bumped whenever a chunker's output changes for the same input and config: it enters
# ``config()`` and therefore the pipeline fingerprint.
ALGORITHM_VERSION = 2  # 2: no heading-only chunk (a lone heading joins the text after it)


class ChunkerConfig(BaseModel):
    """What every token-budgeted chunker is configured with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(default=512, ge=16, le=1_000_000)
    encoding: str = DEFAULT_ENCODING


C = TypeVar("C", bound="ChunkerConfig")


class FixedConfig(ChunkerConfig):
    overlap: int = Field(default=50, ge=0)

    @model_validator(mode="after")
    def _overlap_below_budget(self) -> FixedConfig:
        if self.overlap >= self.max_tokens:
            raise ValueError(
                f"overlap ({self.overlap}) must be smaller than max_tokens ({self.max_tokens})"
            )
        return self


class RecursiveConfig(ChunkerConfig):
    pass


class CodeConfig(ChunkerConfig):
    pass


def build_config(model: type[C], chunker: str, values: dict[str, object]) -> C:
    """Validate settings into a frozen model; a bad value is a ConfigurationError."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(f"invalid config for chunker {chunker!r}: {problems}") from exc


def describe(name: str, config: ChunkerConfig) -> dict[str, object]:
    """The fingerprint-relevant description of a chunker."""
    return {"chunker": name, "algorithm_version": ALGORITHM_VERSION, **config.model_dump()}


class Span(NamedTuple):
    """A chunk-to-be: char offsets, its exact token count and code metadata.

    A named tuple (immutable like the frozen dataclass it was, and made several times
    faster: chunkers build one per candidate piece).
    """

    start: int
    end: int
    tokens: int
    symbol: str | None = None
    context: str | None = None


class SectionLookup:
    """Pages and heading paths of the sections a char range overlaps."""

    __slots__ = ("_sections", "_starts", "_ends")

    def __init__(self, document: ExtractedDocument) -> None:
        self._sections = document.sections
        self._starts = [s.start for s in document.sections]
        self._ends = [s.end for s in document.sections]

    def overlapping(self, start: int, end: int) -> range:
        first = bisect_right(self._ends, start)
        last = bisect_left(self._starts, end)
        return range(first, max(first, last))

    def pages(self, start: int, end: int) -> tuple[int | None, int | None]:
        pages = [
            p for i in self.overlapping(start, end) if (p := self._sections[i].page) is not None
        ]
        return (min(pages), max(pages)) if pages else (None, None)

    def heading_path(self, start: int, end: int) -> tuple[str, ...]:
        """Heading path of the first section the range overlaps (or the one before it)."""
        found = self.overlapping(start, end)
        if found:
            return self._sections[found.start].heading_path
        before = bisect_right(self._starts, start) - 1
        return self._sections[before].heading_path if before >= 0 else ()


def assemble(
    document: ExtractedDocument,
    spans: Iterable[Span],
    heading_paths: Iterable[tuple[str, ...]] | None = None,
) -> list[Chunk]:
    """Turn spans into numbered chunks with pages and heading paths.

    Spans are expected in document order, non-empty and not whitespace-only.
    """
    lookup = SectionLookup(document)
    text = document.text
    paths = iter(heading_paths) if heading_paths is not None else None
    chunks: list[Chunk] = []
    for span in spans:
        page_start, page_end = lookup.pages(span.start, span.end)
        path = next(paths) if paths is not None else lookup.heading_path(span.start, span.end)
        chunks.append(
            Chunk(
                index=len(chunks),
                text=text[span.start : span.end],
                start=span.start,
                end=span.end,
                token_count=span.tokens,
                page_start=page_start,
                page_end=page_end,
                heading_path=path,
                symbol=span.symbol,
                context=span.context,
            )
        )
    return chunks


def available_chunkers() -> list[str]:
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def load_chunker(name: str, **config: object) -> Chunker:
    """Build a chunker registered in the ``ragline.chunkers`` entry-point group.

    Third parties register their own chunkers in the same group, so the name is
    looked up there rather than in a table of ours.
    """
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        raise ConfigurationError(
            f"unknown chunker {name!r}; available chunkers: "
            f"{', '.join(available_chunkers()) or '(none registered; is ragline installed?)'}"
        )
    try:
        factory = found[0].load()
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"chunker {name!r} is registered as {found[0].value!r} but cannot be loaded: {exc}"
        ) from exc
    try:
        chunker = factory(**config)
    except TypeError as exc:
        raise ConfigurationError(f"invalid config for chunker {name!r}: {exc}") from exc
    if not isinstance(chunker, Chunker):
        raise ConfigurationError(
            f"chunker {name!r} ({found[0].value}) does not implement the Chunker protocol"
        )
    return chunker
