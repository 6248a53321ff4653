"""The extraction sandbox's boundary: what a child hands back is checked before the
parent trusts it."""

from __future__ import annotations

import collections

import pytest

from ingest.extract.sandbox import SandboxLimits, run_sandboxed
from schemas.documents import ExtractedDocument, Section
from schemas.errors import ExtractionError


def returns_a_document(text: str) -> ExtractedDocument:
    return ExtractedDocument("mem://doc", "text/plain", text, (Section(0, len(text)),), {"title": "t"})


def returns_something_else() -> object:
    return collections.OrderedDict(a=1)  # stands in for any object a subverted parser might smuggle


def test_a_parse_result_crosses_the_boundary() -> None:
    doc = run_sandboxed(returns_a_document, SandboxLimits(timeout_s=20, memory_mb=256), "mem://doc", "hello")
    assert doc.text == "hello" and doc.sections == (Section(0, 5),) and doc.metadata == {"title": "t"}


def test_an_object_that_is_no_parse_result_is_refused() -> None:
    with pytest.raises(ExtractionError, match="collections.OrderedDict, which is not a parse result"):
        run_sandboxed(returns_something_else, SandboxLimits(timeout_s=20, memory_mb=256), "mem://x")
