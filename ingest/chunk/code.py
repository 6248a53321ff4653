"""Source code split at function, class and method boundaries (tree-sitter).

Only the top of the syntax tree is walked: a definition that fits the budget becomes
one piece without visiting its insides, a container (class, impl, interface, module)
that does not fit is opened and its members become pieces carrying the container's
header as ``context``, and any other oversize definition is split by lines like the
recursive chunker (its ``symbol`` stays set). Comments and decorators in front of a
definition travel with it when they fit. Small neighbours with the same context are
merged up to the budget, on exact counts. Chunk text is always the exact source slice.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import tree_sitter

from ingest.chunk.base import CodeConfig, Span, assemble, build_config, describe
from ingest.chunk.recursive import (
    CODE_LEVELS,
    PROSE_LEVELS,
    Splitter,
    chunk_recursively,
)
from ingest.chunk.tokens import DEFAULT_ENCODING, TokenMap, check_encoding, get_encoding
from schemas.documents import Chunk, ExtractedDocument

if TYPE_CHECKING:
    import tiktoken

Node = tree_sitter.Node


@dataclass(frozen=True, slots=True)
class Grammar:
    """What the chunker needs to know about one language's tree."""

    load: Callable[[], object]
    definitions: frozenset[str]
    containers: frozenset[str]  # definitions whose ``body`` members become pieces
    separator: str = "."


_JS_DEFS = frozenset({
    "function_declaration", "generator_function_declaration", "class_declaration",
    "method_definition", "export_statement", "lexical_declaration", "variable_declaration",
})
_TS_DEFS = _JS_DEFS | {
    "interface_declaration", "type_alias_declaration", "enum_declaration",
    "abstract_class_declaration", "module", "internal_module", "function_signature",
    "method_signature", "abstract_method_signature",
}
_TS_CONTAINERS = frozenset({
    "class_declaration", "abstract_class_declaration", "interface_declaration",
    "module", "internal_module",
})


def _load(module: str, attribute: str = "language") -> Callable[[], object]:
    def loader() -> object:
        return getattr(__import__(module), attribute)()

    return loader


GRAMMARS: dict[str, Grammar] = {
    "python": Grammar(
        _load("tree_sitter_python"),
        frozenset({"function_definition", "class_definition", "decorated_definition"}),
        frozenset({"class_definition"}),
    ),
    "javascript": Grammar(
        _load("tree_sitter_javascript"), _JS_DEFS, frozenset({"class_declaration"})
    ),
    "typescript": Grammar(
        _load("tree_sitter_typescript", "language_typescript"), _TS_DEFS, _TS_CONTAINERS
    ),
    "tsx": Grammar(_load("tree_sitter_typescript", "language_tsx"), _TS_DEFS, _TS_CONTAINERS),
    "go": Grammar(
        _load("tree_sitter_go"),
        frozenset({"function_declaration", "method_declaration", "type_declaration"}),
        frozenset(),
    ),
    "java": Grammar(
        _load("tree_sitter_java"),
        frozenset({
            "class_declaration", "interface_declaration", "enum_declaration",
            "record_declaration", "annotation_type_declaration", "method_declaration",
            "constructor_declaration",
        }),
        frozenset({
            "class_declaration", "interface_declaration", "enum_declaration",
            "record_declaration",
        }),
    ),
    "rust": Grammar(
        _load("tree_sitter_rust"),
        frozenset({
            "function_item", "struct_item", "enum_item", "union_item", "impl_item",
            "trait_item", "mod_item", "macro_definition", "type_item", "const_item",
            "static_item", "function_signature_item",
        }),
        frozenset({"impl_item", "trait_item", "mod_item"}),
        separator="::",
    ),
}
_ALIASES = {"py": "python", "js": "javascript", "jsx": "javascript", "ts": "typescript",
            "golang": "go", "rs": "rust"}


@functools.cache
def _language(name: str) -> tree_sitter.Language:
    """Grammars are immutable and shared; parsers are made per call (not thread-safe)."""
    return tree_sitter.Language(GRAMMARS[name].load())


def grammar_name(language: str | None) -> str | None:
    if language is None:
        return None
    name = _ALIASES.get(language.lower(), language.lower())
    return name if name in GRAMMARS else None


class CodeChunker:
    """Definition-aligned chunks with ``symbol`` and enclosing ``context``."""

    name = "code"

    def __init__(self, *, max_tokens: int = 512, encoding: str = DEFAULT_ENCODING) -> None:
        self.settings = build_config(
            CodeConfig, self.name, {"max_tokens": max_tokens, "encoding": encoding}
        )
        check_encoding(self.settings.encoding)  # loaded on first use: a fingerprint needs only the name

    @property
    def _encoding(self) -> tiktoken.Encoding:
        return get_encoding(self.settings.encoding)

    def config(self) -> dict[str, object]:
        return {**describe(self.name, self.settings), "languages": sorted(GRAMMARS)}

    def chunk(self, document: ExtractedDocument) -> list[Chunk]:
        tokens = TokenMap(document.text, self._encoding)
        language = grammar_name(document.language)
        if language is None:
            return chunk_recursively(document, tokens, self.settings.max_tokens, PROSE_LEVELS)
        source = document.text.encode("utf-8", "surrogatepass")
        tree = tree_sitter.Parser(_language(language)).parse(source)
        walker = _Walker(tokens, self.settings.max_tokens, GRAMMARS[language], source)
        root = tree.root_node
        spans = walker.level(root.children, 0, len(document.text), None, None, None)
        return assemble(document, walker.merge(spans))


class _Walker:
    """Turns the children of one tree level into spans within the budget."""

    def __init__(self, tokens: TokenMap, budget: int, grammar: Grammar, source: bytes) -> None:
        self.tokens = tokens
        self.budget = budget
        self.grammar = grammar
        self.source = source
        self.splitter = Splitter(tokens, budget, CODE_LEVELS, _trim_code)
        self._char_at_byte = _byte_to_char(tokens.text, source)

    def char(self, byte: int) -> int:
        table = self._char_at_byte
        return byte if table is None else int(table[byte])

    def span(self, a: int, b: int, symbol: str | None, context: str | None) -> list[Span]:
        """[a, b) trimmed as one span if it fits, else split by lines; tagged."""
        return [Span(p.start, p.end, p.tokens, symbol, context) for p in self.splitter.split(a, b)]

    def level(
        self, children: list[Node], lo: int, hi: int,
        owner: str | None, context: str | None, qualifier: str | None,
    ) -> list[Span]:
        """Spans for [lo, hi) whose definitions are among ``children``."""
        spans: list[Span] = []
        cursor = lo
        tokens, text, budget = self.tokens, self.tokens.text, self.budget
        definitions = self.grammar.definitions
        for node in children:
            if node.type not in definitions:
                continue
            name = self.name_of(node)
            if name is None:
                continue
            start, end = self.char(node.start_byte), self.char(node.end_byte)
            if start < cursor:
                continue
            a, b = _trim_code(text, cursor, end)  # the definition and what leads it
            lead = tokens.count(a, b)
            trimmed: tuple[int, int, int] | None = (a, b, lead)
            # The definition alone is counted only when that can exceed ``lead``: not
            # when [a, b) is [start, end), nor when counts add up across ``start``.
            if lead > budget or (
                not (b == end and (a == start or tokens.is_count_cut(start)))
                and tokens.count(start, end) > budget
            ):
                spans += self.span(cursor, start, owner, context)  # leading comments alone
                cursor, trimmed = start, None
            qualified = f"{qualifier}{self.grammar.separator}{name}" if qualifier else name
            spans += self.definition(node, cursor, end, qualified, context, trimmed)
            cursor = end
        spans += self.span(cursor, hi, owner, context)
        return spans

    def definition(
        self, node: Node, start: int, end: int, symbol: str, context: str | None,
        trimmed: tuple[int, int, int] | None = None,
    ) -> list[Span]:
        """Spans of [start, end) holding ``node``; ``trimmed`` is its trimmed bounds and
        count when the caller has them."""
        if trimmed is None:
            a, b = _trim_code(self.tokens.text, start, end)
            count = self.tokens.count(a, b)
        else:
            a, b, count = trimmed
        if count <= self.budget:
            return [Span(a, b, count, symbol, context)] if a < b else []
        inner = _unwrap(node) or node  # (``level`` only passes nodes that have a name)
        body = inner.child_by_field_name("body")
        header = self.tokens.text[self.char(inner.start_byte) : self.char(body.start_byte)] if (
            body is not None) else self.tokens.text[self.char(inner.start_byte) : end].split(
            "\n", 1)[0]
        header = " ".join(header.split()) if len(header) < 400 else header[:400].rstrip()
        nested = header if context is None else f"{context}\n{header}"
        if inner.type in self.grammar.containers and body is not None:
            members = _text(inner.child_by_field_name("type") or inner) if (
                inner.type == "impl_item") else symbol
            return self.level(body.children, start, end, symbol, nested, members)
        return self.span(start, end, symbol, nested)

    def name_of(self, node: Node) -> str | None:
        """The definition's name, or None for a declaration that defines no symbol."""
        inner = _unwrap(node)
        if inner is None:
            return None
        kind = inner.type
        if kind in ("lexical_declaration", "variable_declaration"):
            return _declared_function(inner)
        if kind == "method_declaration" and inner.child_by_field_name("receiver") is not None:
            return _go_method_name(inner)
        if kind == "impl_item":
            return _rust_impl_name(inner)
        if kind == "type_declaration":  # Go: the names are on its type_spec children
            specs = [c.child_by_field_name("name") for c in inner.named_children]
            return ", ".join(_text(n) for n in specs if n is not None) or None
        name = inner.child_by_field_name("name")
        return _text(name) if name is not None else None

    def merge(self, spans: list[Span]) -> list[Span]:
        """Join neighbours that share a context while the exact count fits."""
        merged: list[Span] = []
        for span in spans:
            if merged:
                last = merged[-1]
                if last.context == span.context and last.tokens + span.tokens <= self.budget + 8:
                    joined = self.tokens.count(last.start, span.end)
                    if joined <= self.budget:
                        merged[-1] = Span(last.start, span.end, joined,
                                          _join_symbols(last.symbol, span.symbol), last.context)
                        continue
            merged.append(span)
        return merged


_NON_SPACE = re.compile(r"\S")  # ``\S`` is exactly ``not str.isspace()``


def _trim_code(text: str, a: int, b: int) -> tuple[int, int]:
    """``recursive.trim_code`` (the same result) with the leading whitespace skipped in C."""
    if b <= a:
        return a, b
    found = _NON_SPACE.search(text, a, b)
    if found is None:
        return b, b
    first = found.start()
    while text[b - 1].isspace():  # stops at ``first`` at the latest
        b -= 1
    return max(a, text.rfind("\n", a, first) + 1), b


def _unwrap(node: Node) -> Node | None:
    """The definition inside a decorator or export wrapper."""
    if node.type == "decorated_definition":
        return node.child_by_field_name("definition")
    if node.type == "export_statement":
        return node.child_by_field_name("declaration")
    return node


def _text(node: Node) -> str:
    return (node.text or b"").decode("utf-8", "replace")


def _declared_function(node: Node) -> str | None:
    """``const f = () => …`` and friends define a function named f."""
    for child in node.named_children:
        if child.type == "variable_declarator":
            value = child.child_by_field_name("value")
            name = child.child_by_field_name("name")
            if value is not None and name is not None and value.type in (
                "arrow_function", "function_expression", "function", "class",
                "generator_function",
            ):
                return _text(name)
    return None


def _go_method_name(node: Node) -> str | None:
    receiver = node.child_by_field_name("receiver")
    name = node.child_by_field_name("name")
    if name is None or receiver is None:
        return None
    for param in receiver.named_children:
        kind = param.child_by_field_name("type")
        if kind is not None:
            return f"({_text(kind)}).{_text(name)}"
    return _text(name)


def _rust_impl_name(node: Node) -> str | None:
    kind = node.child_by_field_name("type")
    trait = node.child_by_field_name("trait")
    if kind is None:
        return None
    if trait is not None:
        return f"impl {_text(trait)} for {_text(kind)}"
    return f"impl {_text(kind)}"


def _join_symbols(left: str | None, right: str | None) -> str | None:
    if left is None or right is None or left == right:
        return left or right
    names = left.split(", ")
    return left if right in names else f"{left}, {right}"


def _byte_to_char(text: str, source: bytes) -> np.ndarray | None:
    """Char offset of every byte offset (None when they coincide: ASCII text)."""
    if len(source) == len(text):
        return None
    raw = np.frombuffer(source, dtype=np.uint8)
    starts = np.zeros(len(raw) + 1, dtype=np.int64)
    np.cumsum((raw & 0xC0) != 0x80, out=starts[1:])
    return starts
