"""Media-type detection by content first, extension second.

Hand-written rather than libmagic/puremagic: we accept a dozen formats, the OOXML and
ODF containers must be told apart by the names inside the zip (which generic magic
databases get wrong or need libmagic for), and an unknown type must stay unknown
rather than be guessed.

Detection runs in the ingesting process itself, before any sandbox, on bytes anyone
may have sent. So a zip is never opened with ``zipfile`` here (it parses every
central-directory entry, and inflates a member whole): the central directory is read
by hand, at most its first 2,000 entries within 1 MiB, and of one member (``mimetype``)
at most 100 bytes are inflated. Work and memory stay small whatever the archive claims.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

PDF = "application/pdf"
HTML = "text/html"
MARKDOWN = "text/markdown"
PLAIN = "text/plain"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODT = "application/vnd.oasis.opendocument.text"
EPUB = "application/epub+zip"
RTF = "application/rtf"
EML = "message/rfc822"
ZIP = "application/zip"
UNKNOWN_BINARY = "application/octet-stream"

#: Source-code languages by file extension; media type is ``text/x-<language>``.
CODE_EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".jsx": "javascript", ".ts": "typescript", ".mts": "typescript",
    ".tsx": "tsx", ".go": "go", ".java": "java", ".rs": "rust", ".c": "c", ".h": "c",
    ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".rb": "ruby", ".sh": "shell",
    ".kt": "kotlin", ".scala": "scala", ".swift": "swift", ".php": "php", ".cs": "csharp",
    ".sql": "sql",
}
_SHEBANGS = {"python": "python", "node": "javascript", "bash": "shell", "sh": "shell",
             "ruby": "ruby", "deno": "typescript"}
_TEXT_EXTENSIONS = {".txt": PLAIN, ".text": PLAIN, ".log": PLAIN, ".rst": PLAIN,
                    ".md": MARKDOWN, ".markdown": MARKDOWN, ".mdx": MARKDOWN,
                    ".htm": HTML, ".html": HTML, ".xhtml": HTML, ".eml": EML}
_OFFICE_EXTENSIONS = {".docx": DOCX, ".pptx": PPTX, ".xlsx": XLSX, ".odt": ODT,
                      ".epub": EPUB, ".rtf": RTF}


def claimed_binary_type(source_uri: str) -> str | None:
    """The binary format a file's extension claims (".pdf" -> PDF), if any."""
    suffix = PurePosixPath(source_uri.split("?", 1)[0]).suffix.lower()
    return PDF if suffix == ".pdf" else _OFFICE_EXTENSIONS.get(suffix)


def code_media_type(language: str) -> str:
    return f"text/x-{language}"


def language_of(media_type: str) -> str | None:
    """The programming language of a ``text/x-<language>`` media type, else None."""
    if media_type.startswith("text/x-"):
        return media_type.removeprefix("text/x-")
    return None


def detect_media_type(data: bytes, source_uri: str) -> str:
    """The document's media type, decided by its bytes where they are distinctive."""
    head = data[:4096]
    suffix = PurePosixPath(source_uri.split("?", 1)[0]).suffix.lower()
    if b"%PDF-" in head[:1024]:
        return PDF
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_container_type(data, suffix)
    if head.startswith(b"{\\rtf"):
        return RTF
    if _looks_binary(head):
        return UNKNOWN_BINARY
    if suffix in CODE_EXTENSIONS:
        return code_media_type(CODE_EXTENSIONS[suffix])
    shebang = _shebang_language(head)
    if shebang:
        return code_media_type(shebang)
    if suffix in (".md", ".markdown", ".mdx"):
        return MARKDOWN
    if _looks_like_email(head):
        return EML
    if _looks_html(head):
        return HTML
    return _TEXT_EXTENSIONS.get(suffix, PLAIN)


def _zip_container_type(data: bytes, suffix: str) -> str:
    members = _zip_members(data)
    if members is None:
        return _OFFICE_EXTENSIONS.get(suffix, ZIP)
    names = [m.name for m in members]
    if any(n.startswith("word/") for n in names):
        return DOCX
    if any(n.startswith("ppt/") for n in names):
        return PPTX
    if any(n.startswith("xl/") for n in names):
        return XLSX
    mimetype = next((_member_prefix(data, m) for m in members if m.name == "mimetype"), b"")
    if mimetype.startswith(b"application/epub+zip"):
        return EPUB
    if mimetype.startswith(b"application/vnd.oasis.opendocument.text"):
        return ODT
    return _OFFICE_EXTENSIONS.get(suffix, ZIP)


#: Central-directory entries looked at, and the bytes of directory read to find them. The
#: names that tell the formats apart come first in real files; a hostile archive can
#: declare millions of entries (zipfile would build an object for each: a 34 MB archive
#: of 400,000 empty entries cost 220 MB and 1.6 s to open).
_MAX_ENTRIES = 2000
_MAX_DIRECTORY_BYTES = 1 << 20
#: The ``mimetype`` member is ~40 bytes in every ODF and EPUB file: a larger declared size
#: is not one, and more than this prefix is never inflated whatever the size claims.
_MAX_MIMETYPE_SIZE = 1024
_MIMETYPE_PREFIX = 100

_END = struct.Struct("<4s4H2LH")  # end of central directory record
_END64_LOCATOR = struct.Struct("<4sLQL")
_END64 = struct.Struct("<4sQ2H2L4Q")
_CENTRAL = struct.Struct("<4s6H3L5H2L")  # central directory file header
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header
_STORED, _DEFLATED = 0, 8


@dataclass(frozen=True)
class _ZipMember:
    name: str
    flags: int
    method: int
    compressed_size: int
    size: int
    header_offset: int


def _zip_members(data: bytes) -> list[_ZipMember] | None:
    """The first central-directory entries, or None when no directory is found."""
    span = _central_directory_span(data)
    if span is None:
        return None
    pos, shift = span
    end = min(len(data), pos + _MAX_DIRECTORY_BYTES)
    members: list[_ZipMember] = []
    while len(members) < _MAX_ENTRIES and pos + _CENTRAL.size <= end:
        (sig, _, _, flags, method, _, _, _, csize, size,
         name_len, extra_len, comment_len, _, _, _, offset) = _CENTRAL.unpack_from(data, pos)
        if sig != b"PK\x01\x02":
            break
        raw_name = data[pos + _CENTRAL.size:pos + _CENTRAL.size + name_len]
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        members.append(_ZipMember(name, flags, method, csize, size, offset + shift))
        pos += _CENTRAL.size + name_len + extra_len + comment_len
    return members


def _central_directory_span(data: bytes) -> tuple[int, int] | None:
    """Where the central directory starts, and how far member offsets are shifted.

    Found as zipfile finds it: the end record within the last 64 KiB (its comment), the
    ZIP64 end record just before it when present, and the directory right before those,
    so that bytes prepended to the archive (self-extractors) shift every offset alike.
    """
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - (1 << 16) - _END.size))
    if at < 0 or at + _END.size > len(data):
        return None
    _, _, _, _, _, dir_size, dir_offset, _ = _END.unpack_from(data, at)
    locator = at - _END64_LOCATOR.size
    if locator - _END64.size >= 0 and data.startswith(b"PK\x06\x07", locator):
        record = locator - _END64.size
        fields = _END64.unpack_from(data, record)
        if fields[0] == b"PK\x06\x06":
            at, dir_size, dir_offset = record, fields[8], fields[9]
    start = at - dir_size
    return (start, start - dir_offset) if start >= 0 else None


def _member_prefix(data: bytes, member: _ZipMember) -> bytes:
    """At most ``_MIMETYPE_PREFIX`` bytes of a small stored or deflated member, else b"".

    The declared size is checked first and the output is capped anyway, as the declared
    size may lie. The ODF and EPUB specs store ``mimetype`` uncompressed; deflate is read
    for lenience, other methods (bzip2, LZMA, encrypted) are not read at all.
    """
    if member.flags & 0x1 or member.size > _MAX_MIMETYPE_SIZE or member.method not in (_STORED, _DEFLATED):
        return b""
    header = member.header_offset
    if header < 0 or header + _LOCAL.size > len(data) or not data.startswith(b"PK\x03\x04", header):
        return b""
    name_len, extra_len = _LOCAL.unpack_from(data, header)[-2:]
    start = header + _LOCAL.size + name_len + extra_len
    raw = data[start:start + min(member.compressed_size, _MAX_MIMETYPE_SIZE)]
    if member.method == _STORED:
        return raw[:_MIMETYPE_PREFIX]
    try:
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw, _MIMETYPE_PREFIX)
    except zlib.error:
        return b""


def _looks_binary(head: bytes) -> bool:
    if not head:
        return False
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return False  # a BOM: text in some Unicode encoding
    control = sum(1 for b in head if b < 9 or 13 < b < 32)
    return control / len(head) > 0.10


_HEADER_FIELD = re.compile(rb"([A-Za-z][A-Za-z0-9-]{0,76})[ \t]*:")
#: Header fields of mail messages; a message starts with its header section and has From.
_MAIL_FIELDS = frozenset({b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"mime-version", b"received",
                          b"return-path", b"reply-to", b"delivered-to", b"sender", b"in-reply-to", b"references"})


def _looks_like_email(head: bytes) -> bool:
    """An RFC 5322 header section from the first byte (fields and folded continuation lines)
    holding a From with an address and two more mail fields (a saved message without its
    ``.eml`` name; a YAML file with from/to/date keys has no address in its ``from``)."""
    names: set[bytes] = set()
    name = b""
    sender = False
    lines = head.split(b"\n")
    for line in lines[:-1] if len(head) >= 4096 else lines:  # the last line of a cut head may be cut too
        line = line.rstrip(b"\r")
        if not line:
            break  # the blank line that ends the header section
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the field above
            if not names:
                return False
        else:
            field = _HEADER_FIELD.match(line)
            if field is None:
                return False
            name = field.group(1).lower()
            names.add(name)
        sender = sender or (name == b"from" and b"@" in line)
    return sender and len(names & _MAIL_FIELDS) >= 3


def _looks_html(head: bytes) -> bool:
    lowered = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return True
    return any(tag in lowered for tag in (b"<html", b"<head", b"<body"))


def _shebang_language(head: bytes) -> str | None:
    if not head.startswith(b"#!"):
        return None
    line = head.split(b"\n", 1)[0].decode("latin-1")
    words = line[2:].replace("/usr/bin/env", " ").split()
    if not words:
        return None
    interpreter = PurePosixPath(words[0]).name.rstrip("0123456789.")
    return _SHEBANGS.get(interpreter)
