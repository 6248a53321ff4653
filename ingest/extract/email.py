"""E-mail (message/rfc822): headers indexed, the body as text, attachments named.

Parsed with the standard library's ``email`` package under ``policy.default`` (RFC 2047
encoded words and RFC 2231 file names decoded, address lists parsed). unstructured's
e-mail partitioner indexed neither subject nor sender nor date.

* **Headers.** Subject, From, To, Cc and Date open the text as a block of their own
  (its own section), so they are searched, quoted and redacted like the body; the same
  fields are in metadata: ``title`` and ``subject``, ``from``, ``to`` and ``cc`` (lists of
  addresses), ``date`` (ISO 8601; as written when it does not parse), ``message_id``.
* **Body.** The text/plain part, else the text/html part walked whole
  (:mod:`ingest.extract.html_blocks`: an e-mail has no site chrome for a main-content
  extractor to cut, and a short message would fall under its minimum length).
* **Attachments** are listed, not parsed: their names in the header block, and name,
  media type and size in metadata ``attachments``. Each is a document of its own format,
  which would need its own extractor, limits and sandbox; ingest it as a file of its own.
"""

from __future__ import annotations

import re
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import Any

from trafilatura.utils import load_html

from ingest.extract import detect, html_blocks
from ingest.extract.text import decode_text, paragraph_sections
from schemas.documents import ExtractedDocument, Section

#: More attachments than this are counted, not listed (a message is not an archive index).
MAX_LISTED_ATTACHMENTS = 100
_LABELS = (("subject", "Subject"), ("from", "From"), ("to", "To"), ("cc", "Cc"), ("date", "Date"))


class EmailExtractor:
    media_types = frozenset({detect.EML})

    def extract(self, data: bytes, source_uri: str, *, password: str | None = None) -> ExtractedDocument:
        message = BytesParser(policy=policy.default).parsebytes(data)
        assert isinstance(message, EmailMessage)
        headers, metadata = _headers(message)
        body = _body_part(message)
        attachments = _attachments(message, body)
        names = [a["name"] for a in attachments[:MAX_LISTED_ATTACHMENTS]]
        if attachments:
            metadata["attachments"] = attachments[:MAX_LISTED_ATTACHMENTS]
            more = len(attachments) - len(names)
            headers.append("Attachments: " + ", ".join(names) + (f" and {more} more" if more > 0 else ""))
        header_block = "\n".join(headers)

        body_text, body_sections = "", list[Section]()
        if body is not None:
            metadata["body_media_type"] = body.get_content_type()
            body_text, body_sections = _body_text(body, source_uri)
        parts = [p for p in (header_block, body_text) if p]
        text = "\n\n".join(parts)
        sections: list[Section] = []
        if header_block:
            sections.append(Section(0, len(header_block), "paragraph"))
        shift = len(header_block) + 2 if header_block else 0
        sections += [Section(s.start + shift, s.end + shift, s.kind, s.page, s.heading_path) for s in body_sections]
        warnings = () if body_text.strip() else (f"{source_uri}: message has no body text",)
        return ExtractedDocument(source_uri, detect.EML, text, tuple(sections), metadata, warnings)


def _headers(message: EmailMessage) -> tuple[list[str], dict[str, Any]]:
    """The header block's lines and the metadata fields."""
    lines: list[str] = []
    metadata: dict[str, Any] = {}
    for key, label in _LABELS:
        values = _values(message, label)
        if not values:
            continue
        shown = ", ".join(values)
        lines.append(f"{label}: {shown}")
        if key in ("to", "cc"):
            metadata[key] = [a for v in values for a in _addresses(message, label)] or values
            metadata[key] = list(dict.fromkeys(metadata[key]))
        elif key == "date":
            metadata["date"] = _iso_date(message) or shown
        else:
            metadata[key] = shown
    if "subject" in metadata:
        metadata["title"] = metadata["subject"]
    message_id = _values(message, "Message-ID")
    if message_id:
        metadata["message_id"] = message_id[0]
    return lines, metadata


def _values(message: Message, name: str) -> list[str]:
    """Each ``name`` header's value, decoded, on one line; a header the parser cannot make
    sense of is read raw (encoded words decoded where they can be)."""
    out = []
    for raw_name, raw in message.raw_items():
        if raw_name.lower() != name.lower():
            continue
        try:
            value = str(message.policy.header_fetch_parse(raw_name, raw))
        except Exception:  # noqa: BLE001 - a malformed header is read raw, not a failed file
            try:
                value = str(make_header(decode_header(raw)))
            except Exception:  # noqa: BLE001
                value = str(raw)
        value = " ".join(value.split())
        if value:
            out.append(value)
    return out


def _addresses(message: EmailMessage, name: str) -> list[str]:
    try:
        return [str(a) for header in message.get_all(name, []) for a in header.addresses]
    except Exception:  # noqa: BLE001 - unparseable address list: the caller keeps the raw value
        return []


def _iso_date(message: EmailMessage) -> str | None:
    try:
        header = message["date"]
        moment = header.datetime if header is not None else None
    except Exception:  # noqa: BLE001
        return None
    return moment.isoformat() if moment is not None else None


def _body_part(message: EmailMessage) -> EmailMessage | None:
    """text/plain when it says something, else text/html, else text/plain even if blank."""
    plain = message.get_body(preferencelist=("plain",))
    if plain is not None and _content(plain).strip():
        return plain  # type: ignore[return-value]
    html = message.get_body(preferencelist=("html",))
    return (html or plain)  # type: ignore[return-value]


def _content(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except (LookupError, ValueError, AssertionError, KeyError):  # unknown charset, bad transfer encoding
        pass
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload:
        return ""
    try:
        return decode_text(payload, "body")[0]
    except Exception:  # noqa: BLE001 - undecodable body: no text, a warning says so
        return ""


def _body_text(part: Message, source_uri: str) -> tuple[str, list[Section]]:
    content = _content(part)
    if part.get_content_type() == "text/html":
        tree = load_html(content) if content.strip() else None
        if tree is None:
            return "", []
        body = tree.find(".//body")
        text, sections = html_blocks.assemble(html_blocks.blocks([body if body is not None else tree]))
        return text, sections
    text = re.sub(r"\r\n?", "\n", content).strip("\n").rstrip()
    return text, list(paragraph_sections(text, 0, len(text)))


def _attachments(message: EmailMessage, body: Message | None) -> list[dict[str, Any]]:
    """Every part that is a file (a name, or disposition ``attachment``), in order."""
    found: list[dict[str, Any]] = []
    for part in message.walk():
        media_type = part.get_content_type()
        forwarded = media_type == "message/rfc822"
        if part is body or (part.is_multipart() and not forwarded):
            continue
        try:
            name = part.get_filename()
            disposition = part.get_content_disposition()
        except Exception:  # noqa: BLE001 - a malformed parameter: the part is listed unnamed
            name, disposition = None, "attachment"
        if not name and disposition != "attachment" and not forwarded:
            continue
        if not name and forwarded:
            inner = part.get_payload(0) if part.is_multipart() else None
            subject = _values(inner, "Subject") if isinstance(inner, Message) else []
            name = f"forwarded message: {subject[0]}" if subject else "forwarded message"
        entry: dict[str, Any] = {"name": " ".join((name or f"unnamed {media_type}").split()), "media_type": media_type}
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            entry["bytes"] = len(payload) if isinstance(payload, bytes) else 0
        found.append(entry)
    return found
