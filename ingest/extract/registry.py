"""Which extractor handles which media type, and the one entry point that runs it.

Built-in extractors are registered here; third-party ones register through the
``ragline.extractors`` entry-point group (a class with ``media_types`` and
``extract``) and take precedence for the media types they declare.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache
from importlib.metadata import entry_points

from ingest.extract import detect
from ingest.extract.ocr import OcrConfig
from ingest.extract.sandbox import PoolConfig, SandboxLimits, shared_pool
from schemas.documents import ExtractedDocument, SourceDocument
from schemas.errors import ExtractionError, LimitExceededError
from schemas.protocols import Extractor

#: Built-in extractors by name: "module:Class", imported only when first used.
_BUILTIN = {
    "pdf": "ingest.extract.pdf:PdfExtractor",
    "html": "ingest.extract.html:HtmlExtractor",
    "text": "ingest.extract.text:TextExtractor",
    "code": "ingest.extract.code:CodeExtractor",
    "office": "ingest.extract.office:OfficeExtractor",
    "email": "ingest.extract.email:EmailExtractor",
}
#: Formats parsed by third-party C/Python parsers that follow untrusted structure.
_SANDBOXED = {"pdf", "html", "office", "email"}


@dataclass(frozen=True)
class ExtractionLimits:
    max_bytes: int = 50 * 1024 * 1024
    max_pages: int = 2000
    timeout_s: float = 60.0  # pdfplumber needs ~0.15 s per page of dense text
    #: Address space one file may add to its sandbox worker (RLIMIT_AS above the worker's size
    #: when the file starts). 1 GiB: a 137-page, 5 MB PDF built from the corpus peaks ~60 MB
    #: above the worker's size now that pages are released as they are read (pdfplumber kept
    #: every page: ~620 MB), so 1 GiB leaves ~15x headroom for large legitimate files, while
    #: a bomb stops at 1 GiB per worker (2 GiB on 2 cores) on a machine that also holds the model.
    memory_mb: int = 1024
    ocr: OcrConfig = field(default_factory=OcrConfig)  # image-only PDF pages
    #: The sandbox workers: how many (0: one per core) and when each is replaced.
    pool: PoolConfig = field(default_factory=PoolConfig)


@cache
def _media_type_table() -> dict[str, str]:
    """media type -> extractor name, built-ins first, then third-party overrides."""
    table: dict[str, str] = {}
    for name, target in _BUILTIN.items():
        for media_type in _load_class(target).media_types:
            table[media_type] = name
    for ep in entry_points(group="ragline.extractors"):
        for media_type in ep.load().media_types:
            table[media_type] = f"ep:{ep.name}"
    return table


def _load_class(target: str) -> type[Extractor]:
    module_name, _, attr = target.partition(":")
    module = __import__(module_name, fromlist=[attr])
    return getattr(module, attr)  # type: ignore[no-any-return]


def _build(name: str, max_pages: int, ocr: OcrConfig | None = None) -> Extractor:
    if name.startswith("ep:"):
        (ep,) = entry_points(group="ragline.extractors", name=name[3:])
        return ep.load()()  # type: ignore[no-any-return]
    cls = _load_class(_BUILTIN[name])
    return cls(max_pages=max_pages, ocr_config=ocr) if name == "pdf" else cls()  # type: ignore[call-arg]


def supported_media_types() -> list[str]:
    return sorted(_media_type_table())


def extract_document(source: SourceDocument, limits: ExtractionLimits) -> ExtractedDocument:
    """Detect the type by content, enforce limits, and extract (sandboxed where untrusted)."""
    if len(source.data) > limits.max_bytes:
        raise LimitExceededError(
            source.source_uri, f"{len(source.data):,} bytes exceeds the limit of {limits.max_bytes:,}"
        )
    if not source.data:
        raise ExtractionError(source.source_uri, "file is empty (0 bytes)")
    media_type = detect.detect_media_type(source.data, source.source_uri)
    claimed = detect.claimed_binary_type(source.source_uri)
    if claimed and media_type in (detect.PLAIN, detect.HTML, detect.UNKNOWN_BINARY, detect.ZIP):
        raise ExtractionError(
            source.source_uri, f"named as {claimed} but the content is not (detected {media_type})"
        )
    name = _media_type_table().get(media_type)
    if name is None:
        raise ExtractionError(source.source_uri, f"unsupported media type {media_type}")
    # OCR starts no page after 3/4 of the time limit: the rest of a scan is named in a warning
    # instead of the whole file timing out.
    ocr = replace(limits.ocr, time_budget_s=0.75 * limits.timeout_s)
    if name in _SANDBOXED or name.startswith("ep:"):
        sandbox = SandboxLimits(timeout_s=limits.timeout_s, memory_mb=limits.memory_mb)
        return shared_pool(limits.pool).run(
            _extract_with, sandbox, source.source_uri,
            name, source.data, source.source_uri, source.password, limits.max_pages, ocr,
        )
    return _extract_with(name, source.data, source.source_uri, source.password, limits.max_pages, ocr)


def _extract_with(name: str, data: bytes, source_uri: str, password: str | None, max_pages: int,
                  ocr: OcrConfig | None = None) -> ExtractedDocument:
    return _build(name, max_pages, ocr).extract(data, source_uri, password=password)
