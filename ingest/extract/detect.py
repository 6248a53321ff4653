"""Media-type detection by content first, extension second.

Hand-written rather than libmagic/puremagic: we accept a dozen formats, the OOXML and
ODF containers must be told apart by the names inside the zip (which generic magic
databases get wrong or need libmagic for), and an unknown type must stay unknown
rather than be guessed.
"""

from __future__ import annotations

import io
import zipfile
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
    if _looks_html(head):
        return HTML
    return _TEXT_EXTENSIONS.get(suffix, PLAIN)


def _zip_container_type(data: bytes, suffix: str) -> str:
    # Only the central directory is read (names, not contents): safe on hostile zips.
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()[:2000]
            mimetype = zf.read("mimetype")[:100] if "mimetype" in names else b""
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, NotImplementedError, EOFError):
        return _OFFICE_EXTENSIONS.get(suffix, ZIP)
    if any(n.startswith("word/") for n in names):
        return DOCX
    if any(n.startswith("ppt/") for n in names):
        return PPTX
    if any(n.startswith("xl/") for n in names):
        return XLSX
    if mimetype.startswith(b"application/epub+zip"):
        return EPUB
    if mimetype.startswith(b"application/vnd.oasis.opendocument.text"):
        return ODT
    return _OFFICE_EXTENSIONS.get(suffix, ZIP)


def _looks_binary(head: bytes) -> bool:
    if not head:
        return False
    if head.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        return False  # a BOM: text in some Unicode encoding
    control = sum(1 for b in head if b < 9 or 13 < b < 32)
    return control / len(head) > 0.10


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
