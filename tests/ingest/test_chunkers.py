"""Chunker invariants, run against every chunker, plus real code and prose files."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ingest.chunk as chunk_pkg
from ingest.chunk import CodeChunker, FixedTokenChunker, RecursiveChunker, load_chunker
from ingest.chunk.tokens import TokenMap, _fast_tokenizer, get_encoding
from schemas.documents import Chunk, ExtractedDocument, Section
from schemas.errors import ConfigurationError
from schemas.protocols import Chunker
from tests.conftest import CORPORA

CODE = CORPORA / "code"
ENC = get_encoding("cl100k_base")
BUDGET = 64  # small, so short generated texts still need several chunks

CHUNKERS = {
    "fixed": lambda: FixedTokenChunker(max_tokens=BUDGET, overlap=8),
    "recursive": lambda: RecursiveChunker(max_tokens=BUDGET),
    "code": lambda: CodeChunker(max_tokens=BUDGET),
}

# Text that exercises tiktoken's pre-tokenizer: contractions, digits, mixed scripts,
# combining marks, CRLF, runs of spaces and line breaks, punctuation clusters.
ATOMS = st.sampled_from([
    "the", " cat", "'s", "'LL", " 12345", "3.14", "é", "e\u0301", "日本語", "。", "Привет",
    "  ", "\n", "\n\n", "\r\n", "\t", "    ", "...", "!?", " (", ")", "{", "}\n", "def ",
    "x_1", "🙂", "\u00a0", "\x1c", "ﬁ", "Ⅻ", "²", "a", "Z", "-", "\"", "→",
])
TEXTS = st.one_of(
    st.lists(ATOMS, max_size=120).map("".join),
    st.text(max_size=400),
)
LANGUAGES = st.sampled_from([None, "python", "javascript", "rust", "go"])


def documents(text: str, language: str | None = None, n_sections: int = 0) -> ExtractedDocument:
    """A document with up to ``n_sections`` sections over paragraphs of ``text``."""
    spans = [m.span() for m in re.finditer(r"\S(?:.*\S)?", text)][:n_sections]
    sections = tuple(
        Section(a, b, "paragraph", page=i // 2 + 1, heading_path=(f"h{i // 3}",))
        for i, (a, b) in enumerate(spans)
    )
    return ExtractedDocument("mem://t", "text/plain", text, sections, language=language)


def check_invariants(doc: ExtractedDocument, chunks: list[Chunk], budget: int) -> None:
    covered = [False] * len(doc.text)
    for i, c in enumerate(chunks):
        assert c.index == i
        assert doc.text[c.start : c.end] == c.text
        assert c.text.strip(), "empty or whitespace-only chunk"
        assert c.token_count == len(ENC.encode_ordinary(c.text))
        assert c.token_count <= budget
        if i:
            assert c.start >= chunks[i - 1].start
        for k in range(c.start, c.end):
            covered[k] = True
    missed = [k for k, ch in enumerate(doc.text) if not covered[k] and not ch.isspace()]
    assert not missed, f"text not in any chunk at {missed[:5]}"


@pytest.mark.parametrize("name", sorted(CHUNKERS))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, language=LANGUAGES, n_sections=st.integers(0, 6))
def test_chunk_invariants(name: str, text: str, language: str | None, n_sections: int) -> None:
    doc = documents(text, language, n_sections)
    check_invariants(doc, CHUNKERS[name]().chunk(doc), BUDGET)


@settings(max_examples=150, deadline=None)
@given(text=TEXTS, a=st.integers(0, 400), b=st.integers(0, 400))
def test_span_counts_are_exact(text: str, a: int, b: int) -> None:
    tokens = TokenMap(text, ENC)
    a, b = sorted((min(a, len(text)), min(b, len(text))))
    assert tokens.count(a, b) == len(ENC.encode_ordinary(text[a:b]))


@settings(max_examples=300, deadline=None)
@given(text=TEXTS)
def test_bpe_openai_ids_equal_tiktoken(text: str) -> None:
    """bpe-openai (a core dependency) is only used for the whole-document pass because of this property."""
    fast = _fast_tokenizer("cl100k_base")
    assert fast is not None, "bpe-openai is a dependency of ragline and must be installed"
    assert list(fast.encode(text)) == ENC.encode_ordinary(text)  # type: ignore[attr-defined]


def test_the_fast_tokenizer_loads_without_the_package_wrapper() -> None:
    """Only the compiled binding is loaded: the package's ``__init__`` builds every encoding's
    merge tables in Python (~56 MB and 0.3 s per process) that the binding does not need."""
    import subprocess
    import sys

    probe = ("import sys; from ingest.chunk.tokens import _fast_tokenizer; "
             "assert _fast_tokenizer('cl100k_base') is not None; print(sorted(m for m in sys.modules "
             "if m.startswith('bpe_openai')))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['bpe_openai._bindings']"


def _code_files() -> list[dict[str, object]]:
    return [json.loads(line) for line in (CODE / "manifest.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("entry", _code_files(), ids=lambda e: Path(str(e["file"])).name)
def test_code_files_split_at_definitions(entry: dict[str, object]) -> None:
    text = (CODE / str(entry["file"])).read_text(encoding="utf-8")
    doc = ExtractedDocument(str(entry["file"]), "text/x-code", text, (),
                            language=str(entry["language"]))
    chunks = CodeChunker(max_tokens=512).chunk(doc)
    check_invariants(doc, chunks, 512)
    lines = text.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    for symbol in entry["symbols"]:  # type: ignore[attr-defined]
        if "parent" in symbol or symbol["kind"] == "impl":
            continue
        if lines[symbol["start_line"] - 1][:1].isspace():
            continue  # nested in an expression (e.g. a callback), not a top-level definition
        start = offsets[symbol["start_line"] - 1]
        end = offsets[symbol["end_line"]]
        if len(ENC.encode_ordinary(text[start:end])) > 512:
            continue
        holders = [c for c in chunks if c.start <= start + len(text[start:end]) - len(
            text[start:end].lstrip()) and c.end >= end - (len(text[start:end]) - len(
                text[start:end].rstrip()))]
        assert holders, f"{symbol['name']} is split although it fits"
        names = {n.rsplit(".", 1)[-1].rsplit("::", 1)[-1] for c in holders
                 for n in (c.symbol or "").split(", ")} | {
            n for c in holders for n in (c.symbol or "").split(", ")}
        assert symbol["name"] in names, (symbol["name"], [c.symbol for c in holders])


def test_method_chunks_carry_class_context() -> None:
    path = CODE / "files/python/cpython-3.11.7-textwrap.py"
    doc = ExtractedDocument(str(path), "text/x-python", path.read_text(), (), language="python")
    chunks = CodeChunker(max_tokens=256).chunk(doc)
    split = [c for c in chunks if c.symbol and "TextWrapper._split" in c.symbol.split(", ")]
    assert split and all(c.context and c.context.startswith("class TextWrapper") for c in split)


def _prose(n: int) -> list[dict[str, str]]:
    """Up to ``n`` docstrings (English prose, some with examples) of the Python files in the code corpus."""
    records = []
    for path in sorted((CODE / "files" / "python").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef | ast.FunctionDef) and len(doc := ast.get_docstring(node) or "") >= 150:
                records.append({"title": f"{path.stem} {node.name}", "text": doc})
    assert len(records) >= min(n, 30)
    return records[:n]


@pytest.mark.parametrize("name", sorted(CHUNKERS))
def test_prose_documents(name: str) -> None:
    records = _prose(60)
    text, sections = "", []
    for i, r in enumerate(records):
        start = len(text)
        text += r["title"] + "\n" + r["text"]
        sections.append(Section(start, len(text), "paragraph", page=i // 10 + 1,
                                heading_path=("Docstrings", r["title"][:30]) if i % 20 == 0 else
                                sections[-1].heading_path if sections else ()))
        text += "\n\n"
    doc = ExtractedDocument("docstrings", "text/plain", text, tuple(sections))
    factory = {"fixed": FixedTokenChunker, "recursive": RecursiveChunker, "code": CodeChunker}
    chunks = factory[name]().chunk(doc)
    check_invariants(doc, chunks, 512)
    assert any(c.page_end and c.page_start and c.page_end >= c.page_start for c in chunks)
    if name == "recursive":
        assert all(c.heading_path for c in chunks)
        assert sum(c.token_count for c in chunks) >= 0.9 * len(ENC.encode_ordinary(text))


def test_fixed_overlap_and_window_size() -> None:
    text = " ".join(r["text"] for r in _prose(20))
    doc = ExtractedDocument("s", "text/plain", text, ())
    chunks = FixedTokenChunker(max_tokens=100, overlap=20).chunk(doc)
    for prev, nxt in zip(chunks, chunks[1:], strict=False):
        assert nxt.start < prev.end  # windows overlap
        assert prev.token_count >= 50  # cuts back off to a word boundary, not far


def test_config_errors_name_the_problem() -> None:
    with pytest.raises(ConfigurationError, match="overlap"):
        FixedTokenChunker(max_tokens=100, overlap=100)
    with pytest.raises(ConfigurationError, match="o200k_base"):
        RecursiveChunker(encoding="o200k_base")
    with pytest.raises(ConfigurationError, match="available chunkers: .*fixed"):
        load_chunker("semantic")


@pytest.mark.parametrize("name", sorted(CHUNKERS))
def test_entry_points_build_protocol_chunkers(name: str) -> None:
    chunker = load_chunker(name, max_tokens=256)
    assert isinstance(chunker, Chunker) and chunker.name == name
    config = chunker.config()
    assert config["max_tokens"] == 256 and config["encoding"] == "cl100k_base"
    json.dumps(config, sort_keys=True)  # enters the pipeline fingerprint


def test_public_surface() -> None:
    assert sorted(chunk_pkg.__all__) == [
        "ChunkerConfig", "CodeChunker", "CodeConfig", "FixedConfig", "FixedTokenChunker",
        "RecursiveChunker", "RecursiveConfig", "available_chunkers", "count_tokens",
        "get_encoding", "load_chunker",
    ]


def _headed(*parts: tuple[str, str, tuple[str, ...]]) -> ExtractedDocument:
    """A document of (kind, text, heading path) sections separated by blank lines."""
    text, sections = "", []
    for kind, body, path in parts:
        start = len(text)
        text += body + "\n\n"
        sections.append(Section(start, start + len(body), kind, heading_path=path))
    return ExtractedDocument("mem://h.md", "text/markdown", text, tuple(sections))


@pytest.mark.parametrize("budget", [40, 64, 200])
def test_no_heading_only_chunk(budget: int) -> None:
    """A title over a paragraph longer than the budget, and headings right under headings,
    join the text after them; every invariant still holds."""
    long = " ".join(f"Sentence {i} says something about cerebral white matter." for i in range(30))
    title = "Microstructural development of human newborn cerebral white matter"
    doc = _headed(("heading", f"# {title}", (title,)), ("paragraph", long, (title,)),
                  ("heading", "## Methods", (title, "Methods")),
                  ("heading", "### Subjects", (title, "Methods", "Subjects")),
                  ("paragraph", "Thirty infants were scanned.", (title, "Methods", "Subjects")))
    chunks = RecursiveChunker(max_tokens=budget).chunk(doc)
    check_invariants(doc, chunks, budget)
    heading_texts = {f"# {title}", "## Methods", "### Subjects"}
    assert not [c.text for c in chunks if c.text.strip() in heading_texts or c.text.strip().startswith("#")
                and "\n" not in c.text.strip()]
    assert chunks[0].text.startswith(f"# {title}\n\nSentence 0")
    last = chunks[-1]
    assert last.text.startswith("## Methods") and last.heading_path == (title, "Methods", "Subjects")
