"""EPUB, ODT and RTF through unstructured and the pandoc the office extra installs, offline;
e-mail headers, bodies and attachments; generated documentation (DocBook XSL, Texinfo) and
Q&A pages in HTML.

The EPUB, ODT and RTF files are written at test time by that same pandoc from one Markdown
source; the e-mails by the standard library's ``email`` package; the HTML pages are written
here in the shape their generators give them (DocBook XSL 1.79's chunked output, Texinfo 6's
and 7's ``makeinfo --html``, Stack Exchange's schema.org microdata).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from ingest.extract import ExtractionLimits, detect_media_type, extract_document
from ingest.extract.office import pandoc_path
from schemas.documents import ExtractedDocument, SourceDocument
from tests.isolation import network_namespace

REPO = Path(__file__).resolve().parents[2]
LIMITS = ExtractionLimits(timeout_s=60, memory_mb=768)

SOURCE_MARKDOWN = """---
title: Harbour survey 2026
author: Jane Roe
---

# Northern quay

The harbour authority reopened the northern quay on Tuesday after eleven weeks of repairs.

## Sea wall

Engineers replaced forty metres of cracked concrete and drove new steel piles.

- fender panels renewed
- bollards load-tested

| berth | depth (m) |
|-------|-----------|
| N1    | 7.5       |
| N2    | 6.8       |

# Southern slipway

Fishing crews unloaded at the southern slipway since January.
"""

#: Run in a child interpreter: extract each file through the sandbox and print the results as JSON.
EXTRACT_SCRIPT = """
import json, socket, sys
from ingest.extract import ExtractionLimits, extract_document
from schemas.documents import SourceDocument

def main():
    try:
        socket.create_connection(("192.0.2.1", 80), timeout=1).close()
        network = True
    except OSError:
        network = False
    out = {"network": network, "documents": {}}
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            doc = extract_document(SourceDocument(path, f.read()), ExtractionLimits(timeout_s=60, memory_mb=768))
        out["documents"][path] = {
            "media_type": doc.media_type, "text": doc.text, "metadata": doc.metadata,
            "warnings": list(doc.warnings),
            "sections": [[s.start, s.end, s.kind, list(s.heading_path)] for s in doc.sections],
        }
    print(json.dumps(out))

if __name__ == "__main__":
    main()
"""


@pytest.fixture(scope="module")
def office_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """EPUB, ODT and RTF written by pandoc, extracted offline: in a child process with no
    network and an empty HOME that must stay empty (no model,
    NLTK data or pandoc download, no cache written)."""
    pandoc = pandoc_path()
    assert pandoc, "pandoc missing: the office extra installs it (pypandoc-binary)"
    folder = tmp_path_factory.mktemp("office")
    source = folder / "survey.md"
    source.write_text(SOURCE_MARKDOWN)
    paths = {}
    for ext in ("epub", "odt", "rtf"):
        paths[ext] = folder / f"survey.{ext}"
        subprocess.run([pandoc, "--standalone", str(source), "-o", str(paths[ext])], check=True)
    home = folder / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "NLTK_", "HF_"))}
    env.update(HOME=str(home), PYTHONPATH=str(REPO))
    run = subprocess.run([*network_namespace(), sys.executable, "-c", EXTRACT_SCRIPT, *map(str, paths.values())],
                         capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert list(home.iterdir()) == [], "something was written to HOME: a download or a cache"
    assert result["network"] is False, "the extraction child could reach the network"
    return {ext: result["documents"][str(path)] for ext, path in paths.items()}


def check_offsets(doc: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Every section is true to the text (no padding, in order); returns text -> heading path."""
    previous_end = 0
    paths = {}
    for start, end, _kind, path in doc["sections"]:
        piece = doc["text"][start:end]
        assert piece and piece == piece.strip() and start >= previous_end
        previous_end = end
        paths[piece] = tuple(path)
    return paths


@pytest.mark.parametrize("ext", ["epub", "odt", "rtf"])
def test_epub_odt_rtf_extract_offline_with_structure(office_files: dict[str, Any], ext: str) -> None:
    doc = office_files[ext]
    assert doc["media_type"] == {"epub": "application/epub+zip", "odt": "application/vnd.oasis.opendocument.text",
                                 "rtf": "application/rtf"}[ext]
    assert doc["warnings"] == []
    paths = check_offsets(doc)
    assert paths["Engineers replaced forty metres of cracked concrete and drove new steel piles."] == (
        "Northern quay", "Sea wall")
    assert paths["Fishing crews unloaded at the southern slipway since January."] == ("Southern slipway",)
    assert "- fender panels renewed" in doc["text"] and "- bollards load-tested" in doc["text"]
    assert "| berth | depth (m) |\n|---|---|\n| N1 | 7.5 |\n| N2 | 6.8 |" in doc["text"]


def test_epub_title_and_author_come_from_its_package(office_files: dict[str, Any]) -> None:
    """pandoc reads an EPUB's title page into its metadata, not the text: the package document gives them."""
    epub = office_files["epub"]["metadata"]
    assert (epub["title"], epub["author"]) == ("Harbour survey 2026", "Jane Roe")
    assert office_files["odt"]["text"].startswith("Harbour survey 2026\n\nJane Roe\n\nNorthern quay")
    assert office_files["rtf"]["metadata"]["title"] == "Northern quay"  # the first heading


# --- e-mail ------------------------------------------------------------------------------


def extract_bytes(data: bytes, name: str) -> ExtractedDocument:
    return extract_document(SourceDocument(name, data), LIMITS)


def message(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    return msg


SENT = datetime(2026, 3, 3, 10, 15, tzinfo=timezone(timedelta(hours=1)))


def test_email_headers_are_a_section_of_the_text_and_metadata() -> None:
    """Non-ASCII subject and sender (RFC 2047 on the wire), plain and HTML alternatives (plain
    wins), a PDF attachment named but not parsed."""
    msg = message(From="Alïce Martin <alice@example.org>", To="Bob Stone <bob@example.com>, carol@example.com",
                  Cc="Dan <dan@example.net>", Subject="Quay repairs – revised schedule",
                  Date=format_datetime(SENT), Message_ID="<quay-1@example.org>")
    msg.set_content("Hi Bob,\n\nThe northern quay reopens on Tuesday.\n\nRegards,\nAlice\n")
    msg.add_alternative("<p>Hi Bob,</p><p>The northern quay reopens on <b>Tuesday</b>.</p>", subtype="html")
    msg.add_attachment(b"%PDF-1.4 not really", maintype="application", subtype="pdf", filename="survey 2026.pdf")
    raw = msg.as_bytes()
    assert b"=?utf-8?" in raw  # the subject and the sender are encoded words on the wire
    doc = extract_bytes(raw, "inbox/quay.eml")
    header = ("Subject: Quay repairs – revised schedule\n"
              "From: Alïce Martin <alice@example.org>\n"
              "To: Bob Stone <bob@example.com>, carol@example.com\n"
              "Cc: Dan <dan@example.net>\n"
              "Date: Tue, 03 Mar 2026 10:15:00 +0100\n"
              "Attachments: survey 2026.pdf")
    assert doc.media_type == "message/rfc822"
    assert doc.text == header + "\n\nHi Bob,\n\nThe northern quay reopens on Tuesday.\n\nRegards,\nAlice"
    assert [doc.section_text(s) for s in doc.sections] == [
        header, "Hi Bob,", "The northern quay reopens on Tuesday.", "Regards,\nAlice"]
    assert doc.metadata == {
        "title": "Quay repairs – revised schedule", "subject": "Quay repairs – revised schedule",
        "from": "Alïce Martin <alice@example.org>", "to": ["Bob Stone <bob@example.com>", "carol@example.com"],
        "cc": ["Dan <dan@example.net>"], "date": "2026-03-03T10:15:00+01:00", "message_id": "<quay-1@example.org>",
        "attachments": [{"name": "survey 2026.pdf", "media_type": "application/pdf", "bytes": 19}],
        "body_media_type": "text/plain",
    }
    assert doc.warnings == ()


def test_email_with_only_html_reads_the_whole_body() -> None:
    """A short HTML-only message (a main-content extractor would drop it as too short): headings,
    lists and paragraphs kept, the hidden preheader, styles and the tracking image left out."""
    msg = message(From="ops@example.org", To="crew@example.org", Subject="Berth allocation", Date=format_datetime(SENT))
    msg.set_content(
        "<html><head><style>p {color: red}</style></head><body>"
        "<div style='display:none'>Preview: berths for next week</div>"
        "<h2>Next week</h2><ul><li>N1: Morning Star</li><li>N2: Sea Lark</li></ul>"
        "<p>Call the harbour office<br>before 18:00.</p><img src='https://t.example.org/p.gif' alt='pixel'>"
        "</body></html>", subtype="html")
    doc = extract_bytes(msg.as_bytes(), "allocation.eml")
    body = doc.text.split("\n\n", 1)[1]
    assert body == "Next week\n\n- N1: Morning Star\n- N2: Sea Lark\n\nCall the harbour office\nbefore 18:00."
    assert doc.metadata["body_media_type"] == "text/html"
    listing = next(s for s in doc.sections if doc.section_text(s).startswith("- N1"))
    assert listing.heading_path == ("Next week",)


def test_email_attachments_and_forwarded_messages_are_listed() -> None:
    inner = message(From="carol@example.com", To="alice@example.org", Subject="Tide tables")
    inner.set_content("Attached are the spring tides.")
    msg = message(From="alice@example.org", To="bob@example.com", Subject="Fwd: Tide tables")
    msg.set_content("See below.")
    msg.add_attachment(inner)
    msg.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="tides.csv")
    doc = extract_bytes(msg.as_bytes(), "fwd.eml")
    assert "Attachments: forwarded message: Tide tables, tides.csv" in doc.text
    assert "spring tides" not in doc.text  # listed, not parsed
    assert [a["name"] for a in doc.metadata["attachments"]] == ["forwarded message: Tide tables", "tides.csv"]


def test_email_with_broken_headers_still_extracts() -> None:
    raw = (b"From: =?bogus-charset?q?x?= <a@example.org>\r\nTo: ;;;@@@\r\nSubject: Tide tables\r\n"
           b"Date: not a date\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n\r\n"
           b"Spring tides: 6.1 m at 07:40.\r\n")
    doc = extract_bytes(raw, "broken.eml")
    assert doc.metadata["date"] == "not a date" and doc.metadata["subject"] == "Tide tables"
    assert doc.text.endswith("Spring tides: 6.1 m at 07:40.")


def test_email_is_detected_without_its_extension() -> None:
    """A Maildir file has no .eml name; Markdown and text with a "From:" line stay what they are."""
    msg = message(Return_Path="<alice@example.org>", From="alice@example.org", To="bob@example.com",
                  Subject="Quay", Date=format_datetime(SENT))
    msg.set_content("Reopens Tuesday.")
    assert detect_media_type(msg.as_bytes(), "Maildir/cur/1740990900.M5P6.host:2,S") == "message/rfc822"
    assert detect_media_type(b"From: the harbour master\nTo: all crews\nSubject: quay\n\nx", "memo.md") == \
        "text/markdown"
    assert detect_media_type(b"From: the harbour master\n\nThe quay reopens.", "memo") == "text/plain"
    assert detect_media_type(b"Subject: quay\nThe quay reopens.\n", "memo.txt") == "text/plain"
    assert detect_media_type(b"from: 2026-01-01\nto: 2026-02-01\ndate: 2026-03-01\n", "window.yaml") == "text/plain"


# --- HTML: generated documentation and Q&A pages ----------------------------------------


def extract_html(page: str, name: str = "page.html") -> ExtractedDocument:
    return extract_document(SourceDocument(name, page.encode()), LIMITS)


NAV_WORDS = ("Prev", "Next", "Up", "Home", "Table of Contents", "Previous:", "[Contents]", "[Index]", "¶")

DOCBOOK_PAGE = """<html><head><meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<title>Chapter 9. Massif: a heap profiler</title><link rel="stylesheet" type="text/css" href="vg_basic.css">
<meta name="generator" content="DocBook XSL Stylesheets V1.79.1">
<link rel="home" href="index.html" title="Valgrind Documentation"><link rel="prev" href="drd-manual.html"
title="8. DRD"></head>
<body bgcolor="white" text="black" link="#0000FF" vlink="#840084" alink="#0000FF">
<div class="navheader"><table width="100%" summary="Navigation header"><tr><th colspan="3" align="center">
Chapter 9. Massif: a heap profiler</th></tr><tr><td width="20%" align="left"><a accesskey="p"
href="drd-manual.html">Prev</a> </td><th width="60%" align="center">Part I. User Manual</th>
<td width="20%" align="right"> <a accesskey="n" href="dh-manual.html">Next</a></td></tr></table><hr></div>
<div class="chapter"><div class="titlepage"><div><div><h1 class="title"><a name="ms-manual"></a>Chapter 9.
Massif: a heap profiler</h1></div></div></div>
<div class="toc"><p><b>Table of Contents</b></p><dl class="toc"><dt><span class="sect1"><a
href="ms-manual.html#ms-manual.overview">9.1. Overview</a></span></dt><dt><span class="sect1"><a
href="ms-manual.html#ms-manual.options">9.2. Command-line options</a></span></dt></dl></div>
<p>To use this tool, you must specify <code class="option">--tool=massif</code> on the command line.</p>
<div class="sect1"><div class="titlepage"><div><div><h2 class="title" style="clear: both"><a
name="ms-manual.overview"></a>9.1. Overview</h2></div></div></div>
<p>Massif is a heap profiler. It measures how much heap memory your program uses.</p></div>
<div class="sect1"><div class="titlepage"><div><div><h2 class="title" style="clear: both"><a
name="ms-manual.options"></a>9.2. Command-line options</h2></div></div></div>
<div class="variablelist"><dl class="variablelist"><dt><a name="opt.heap"></a><span class="term"><code
class="option">--heap=&lt;yes|no&gt; [default: yes] </code></span></dt><dd><p>Specifies whether heap profiling
should be done.</p></dd><dt><a name="opt.depth"></a><span class="term"><code class="option">--depth=&lt;number&gt;
[default: 30] </code></span></dt><dd><p>Maximum depth of the allocation trees recorded for detailed
snapshots.</p><pre class="programlisting">valgrind --tool=massif --depth=10 prog</pre></dd></dl></div>
<div class="glosslist"><dl><dt><span class="glossterm">Snapshot</span></dt><dd class="glossdef"><p>A record of
the heap at one moment.</p></dd></dl></div></div></div>
<div class="navfooter"><hr><table width="100%" summary="Navigation footer"><tr><td width="40%" align="left"><a
accesskey="p" href="drd-manual.html">Prev</a> </td><td width="20%" align="center"><a accesskey="u"
href="manual.html">Up</a></td><td width="40%" align="right"> <a accesskey="n" href="dh-manual.html">Next</a></td>
</tr><tr><td width="40%" align="left" valign="top">8. DRD: a thread error detector </td><td width="20%"
align="center"><a accesskey="h" href="index.html">Home</a></td><td width="40%" align="right" valign="top">
 10. DHAT: a dynamic heap analysis tool</td></tr></table></div></body></html>"""


def test_docbook_headings_and_definition_terms_survive() -> None:
    doc = extract_html(DOCBOOK_PAGE, "ms-manual.html")
    paths = {doc.section_text(s): s.heading_path for s in doc.sections}
    chapter = "Chapter 9. Massif: a heap profiler"
    assert [doc.section_text(s) for s in doc.sections if s.kind == "heading"] == [
        chapter, "9.1. Overview", "9.2. Command-line options"]
    assert paths["Massif is a heap profiler. It measures how much heap memory your program uses."] == (
        chapter, "9.1. Overview")
    options = (chapter, "9.2. Command-line options")
    assert paths["--heap=<yes|no> [default: yes]"] == options
    assert paths["Specifies whether heap profiling should be done."] == options
    assert paths["valgrind --tool=massif --depth=10 prog"] == options
    assert doc.text.index("--depth=<number> [default: 30]") < doc.text.index("Maximum depth of the allocation")
    assert "Snapshot\n\nA record of the heap at one moment." in doc.text
    assert not [w for w in NAV_WORDS if w in doc.text.split("\n\n")]
    assert "DHAT" not in doc.text and "DRD" not in doc.text and "Part I. User Manual" not in doc.text
    assert doc.metadata["title"] == chapter


TEXINFO6_PAGE = """<!DOCTYPE html PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<html><head><title>The Basics (libffi)</title><meta name="description" content="The Basics (libffi)">
<meta name="Generator" content="makeinfo"><link href="Using-libffi.html" rel="up" title="Using libffi">
<link href="Simple-Example.html" rel="next" title="Simple Example"></head>
<body lang="en">
<div class="section" id="The-Basics">
<div class="header"><p>
Next: <a href="Simple-Example.html" accesskey="n" rel="next">Simple Example</a>, Previous: <a
href="Introduction.html" accesskey="p" rel="prev">Introduction</a>, Up: <a href="Using-libffi.html" accesskey="u"
rel="up">Using libffi</a> &nbsp; [<a href="index.html#SEC_Contents" title="Table of contents"
rel="contents">Contents</a>][<a href="Index.html" title="Index" rel="index">Index</a>]</p></div><hr>
<span id="The-Basics-1"></span><h3 class="section">2.1 The Basics</h3>
<p><code>libffi</code> assumes that you have a pointer to the function you wish to call.</p>
<dl class="def"><dt id="index-ffi_005fprep_005fcif"><span class="category">Function: </span><span><strong
>ffi_status</strong> <em>ffi_prep_cif (ffi_cif *<var>cif</var>, ffi_abi <var>abi</var>)</em><a
href='#index-ffi_005fprep_005fcif' class='copiable-anchor'> &para;</a></span></dt>
<dd><p>This initializes <var>cif</var> according to the given parameters.</p></dd></dl>
<table class="menu" border="0" cellspacing="0"><tr><td align="left" valign="top">&bull; <a
href="Simple-Example.html" accesskey="1">Simple Example</a>:</td><td>&nbsp;&nbsp;</td><td align="left"
valign="top">A first call</td></tr></table>
</div></body></html>"""

TEXINFO7_PAGE = """<!DOCTYPE html><html><head><title>Closures (libffi)</title>
<meta name="Generator" content="texi2any 7.1"></head><body lang="en">
<div class="section-level-extent" id="Closures">
<div class="nav-panel"><p>Next: <a href="Closure-Example.html" accesskey="n" rel="next">Closure Example</a>,
Previous: <a href="Types.html" accesskey="p" rel="prev">Types</a>, Up: <a href="Using-libffi.html" accesskey="u"
rel="up">Using libffi</a> &nbsp; [<a href="index.html#SEC_Contents" rel="contents">Contents</a>]</p></div><hr>
<h3 class="section" id="Closure-API"><span>2.4 Closure API<a class="copiable-link" href="#Closure-API"> &para;</a>
</span></h3>
<p>The closure API lets you create a pointer to a function that calls into libffi.</p>
<dl class="first-deftypefn"><dt class="deftypefn" id="index-ffi_005fclosure_005falloc"><span class="category-def"
>Function: </span><span><code class="def-type">void *</code> <strong class="def-name">ffi_closure_alloc</strong>
<code class="def-code-arguments">(size_t <var class="var">size</var>)</code><a class="copiable-link"
href="#index-ffi_005fclosure_005falloc"> &para;</a></span></dt>
<dd><p>Allocate a chunk of memory holding <var class="var">size</var> bytes.</p></dd></dl>
<ul class="mini-toc"><li><a href="Closure-Example.html" accesskey="1">Closure Example</a></li></ul>
</div></body></html>"""


@pytest.mark.parametrize(("page", "heading", "term", "definition"), [
    (TEXINFO6_PAGE, "2.1 The Basics", "Function: ffi_status ffi_prep_cif (ffi_cif *cif, ffi_abi abi)",
     "This initializes cif according to the given parameters."),
    (TEXINFO7_PAGE, "2.4 Closure API", "Function: void * ffi_closure_alloc (size_t size)",
     "Allocate a chunk of memory holding size bytes."),
])
def test_texinfo_navigation_is_removed_and_definitions_kept(page: str, heading: str, term: str,
                                                            definition: str) -> None:
    doc = extract_html(page)
    assert doc.text.startswith(heading + "\n\n")
    assert f"{term}\n\n{definition}" in doc.text
    assert "Next:" not in doc.text and "Previous:" not in doc.text and "Up:" not in doc.text
    assert "¶" not in doc.text and "Contents" not in doc.text
    assert "Simple Example" not in doc.text and "Closure Example" not in doc.text  # menus
    assert all(s.heading_path == (heading,) for s in doc.sections)


QA_PAGE = """<!DOCTYPE html><html itemscope itemtype="https://schema.org/QAPage"><head>
<title>python - Why does my quay list sort wrong? - Stack Overflow</title></head><body>
<header class="top-bar"><a href="/">Stack Exchange</a> <a href="/users/login">Log in</a></header>
<div id="content"><div itemprop="mainEntity" itemscope itemtype="https://schema.org/Question">
<h1 itemprop="name"><a href="/q/1">Why does my quay list sort wrong?</a></h1>
<div class="js-vote-count" itemprop="upvoteCount">7</div>
<div class="s-prose js-post-body" itemprop="text"><p>I sort berth names and N10 comes before N2.</p>
<pre><code>sorted(["N2", "N10"])</code></pre></div>
<div class="post-signature"><div itemprop="author" itemscope itemtype="http://schema.org/Person">
<span itemprop="name">harbourdev</span></div><span class="relativetime">asked 2 months ago</span></div>
<div class="comments"><span class="comment-copy">Did you try natsort?</span>
<span class="comment-date">20:37</span></div>
<div id="answers"><div class="answers-subheader">2 Answers Sorted by: Highest score</div>
<div class="answer" itemprop="acceptedAnswer" itemscope itemtype="https://schema.org/Answer">
<div class="s-prose js-post-body" itemprop="text"><p>Strings sort character by character; use a key that
splits the number out.</p></div>
<div itemprop="author" itemscope itemtype="http://schema.org/Person"><span itemprop="name">tidal</span></div></div>
<div class="answer" itemprop="suggestedAnswer" itemscope itemtype="https://schema.org/Answer">
<div class="s-prose js-post-body" itemprop="text"><h2>Alternative</h2><p>Zero-pad the numbers when you
name the berths.</p></div></div></div></div></div>
<footer>site design / logo © 2026 Stack Exchange Inc</footer></body></html>"""


def test_qa_page_keeps_the_question_and_every_answer() -> None:
    doc = extract_html(QA_PAGE)
    title = "Why does my quay list sort wrong?"
    assert doc.text == (f"{title}\n\nI sort berth names and N10 comes before N2.\n\n"
                        'sorted(["N2", "N10"])\n\n'
                        "Strings sort character by character; use a key that splits the number out.\n\n"
                        "Alternative\n\nZero-pad the numbers when you name the berths.")
    assert doc.sections[-1].heading_path == (title, "Alternative")
    for boilerplate in ("asked 2 months ago", "20:37", "natsort", "Sorted by", "harbourdev", "Log in", "©"):
        assert boilerplate not in doc.text


def test_article_keeps_text_after_headings_and_drops_pagination() -> None:
    """trafilatura leaves text that follows a heading outside any paragraph as the heading's
    tail (a deals page lost half its words); a "Previous post / Next post" block is navigation."""
    page = """<html><head><title>Deals of the day</title></head><body>
<header><nav><a href="/">Home</a></nav></header><article><h1>Deals of the day</h1>
<div class="deal"><h2>Crystal controller for $39.99</h2>The price of the crystal controller has dropped to
holiday levels, the lowest we have seen this year for this model.</div>
<div class="deal"><h2>Curved monitor for $649.99</h2>This is the lowest price we have ever seen for one of
the best wide gaming monitors, with a fast panel and wide viewing angles.</div>
<div class="pager"><a rel="prev" href="/deals/41">« Previous deals</a> | <a rel="next" href="/deals/43">Next
deals »</a></div></article><footer>All rights reserved</footer></body></html>"""
    doc = extract_html(page)
    paths = {doc.section_text(s): s.heading_path for s in doc.sections}
    controller = ("The price of the crystal controller has dropped to holiday levels, the lowest we have seen "
                  "this year for this model.")
    assert paths[controller] == ("Deals of the day", "Crystal controller for $39.99")
    assert doc.text.endswith("with a fast panel and wide viewing angles.")
    assert "Previous deals" not in doc.text and "Next deals" not in doc.text
