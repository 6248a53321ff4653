"""PII redaction: every detector on positives and on the look-alikes it must leave alone
(checksum failures, hashes, UUIDs, versions, dates), both modes, per-tenant policies,
configuration errors, and the offsets of redacted documents under every chunker."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ingest.chunk import load_chunker
from ingest.redact import ENTITY_TYPES, PiiPolicy, PiiRedactor, TenantRule, redact_document
from schemas.documents import ExtractedDocument, Section
from schemas.errors import ConfigurationError
from schemas.privacy import Redaction
from schemas.protocols import Redactor
from services.settings import Settings
from services.wiring import build_redactor

KEY = b"k" * 32
MASK = PiiRedactor(PiiPolicy())


def found(text: str, redactor: PiiRedactor = MASK) -> list[tuple[str, str]]:
    """(entity, original value) of every replacement."""
    return [(s.entity, text[s.start:s.end]) for s in redactor.redact(text, "t").spans]


@pytest.mark.parametrize(("text", "entity", "value"), [
    ("write to Jane.Doe+hr@example.co.uk today", "email", "Jane.Doe+hr@example.co.uk"),
    ("call (212) 555-0143 or", "phone", "(212) 555-0143"),
    ("tel +44 20 7946 0958.", "phone", "+44 20 7946 0958"),
    ("ruf 030 12345678 an", "phone", "030 12345678"),
    ("fictional 555-0123 number", "phone", "555-0123"),
    ("phone: 2125550143", "phone", "2125550143"),
    ("card 4111 1111 1111 1111 exp", "card", "4111 1111 1111 1111"),
    ("amex 3782-822463-10005.", "card", "3782-822463-10005"),
    ("card 5555555555554444", "card", "5555555555554444"),
    ("IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX", "iban", "DE89 3704 0044 0532 0130 00"),
    ("pay GB82WEST12345698765432.", "iban", "GB82WEST12345698765432"),
    ("SSN 078-05-1120 (the wallet sample)", "us_ssn", "078-05-1120"),
    ("ssn: 536224187", "us_ssn", "536224187"),
    ("NINO QQ 12 34 56 C", "uk_nino", "QQ 12 34 56 C"),
    ("national insurance AB123456C", "uk_nino", "AB123456C"),
    ("Steuer-ID 65929970489", "de_tax_id", "65929970489"),
    ("IdNr 86 095 742 719", "de_tax_id", "86 095 742 719"),
    ("from 192.168.10.20, then", "ip_address", "192.168.10.20"),
    ("v6 2001:db8::8a2e:370:7334 seen", "ip_address", "2001:db8::8a2e:370:7334"),
    ("key AKIAIOSFODNN7EXAMPLE", "credential", "AKIAIOSFODNN7EXAMPLE"),
    ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "credential", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("OPENAI_API_KEY=sk-proj-Abcdefghij0123456789xyz", "credential", "sk-proj-Abcdefghij0123456789xyz"),
    ("slack xoxb-1234567890-abcdefghijkl", "credential", "xoxb-1234567890-abcdefghijkl"),
    ('aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"', "credential",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ('db_password: "Tr0ub4dor&3"', "credential", "Tr0ub4dor&3"),
    ("postgres://app:s3cretPa55@db.internal:5432/x", "credential", "s3cretPa55"),
])
def test_detects(text: str, entity: str, value: str) -> None:
    assert (entity, value) in found(text)


def test_private_key_block_is_one_credential() -> None:
    text = "before\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAA==\n" \
           "-----END OPENSSH PRIVATE KEY-----\nafter"
    redaction = MASK.redact(text, "t")
    assert redaction.text == "before\n[CREDENTIAL]\nafter" and redaction.counts == {"credential": 1}


@pytest.mark.parametrize("text", [
    "order 4111111111111112 shipped",  # 16 digits failing Luhn
    "id 1234567812345678",  # Luhn-valid? no network: Visa starts with 4
    "uuid 550e8400-e29b-41d4-a716-446655440000 ok",
    "uuid 12345678-1234-1234-1234-123456789012",
    "commit 3f9a1c0d2b4e5f60718293a4b5c6d7e8f9012345 and a1b2c3d",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "release v1.2.3.4 and version 10.0.19041.1 and 2.31.0",
    "at line 12345, col 678; offset 1234567",
    "date 2024-01-15 12:30:45, 15/01/2024",
    "pi 3.14159265358979 and 0.4111111111111111",
    "DE89 3704 0044 0532 0130 01 (bad check digits)",
    "SSN-shaped 000-12-3456 and 666-12-3456",
    "eleven digits 12345678901 with no context",
    "loopback 127.0.0.1 and 0.0.0.0 and mask 255.255.255.0 and ::1",
    "std::vector a::b fmt::Debug",
    "timestamp 1700000000 and 1700000000123",
    'token = self.token; password = getpass(); secret = os.environ["SECRET"]',
    'password = "${DB_PASSWORD}"; api_key = "<your-api-key>"',
    "user@localhost and pkg@1.2.3",
    "ISBN 978-3-16-148410-0",
    "port 8080, pid 31337, HTTP 404",
])
def test_leaves_look_alikes(text: str) -> None:
    assert found(text) == []


def test_mask_replaces_each_type_with_its_label_and_counts() -> None:
    redaction = MASK.redact("a@b.io, c@d.io and 4242 4242 4242 4242", "t")
    assert redaction.text == "[EMAIL], [EMAIL] and [CARD]"
    assert redaction.counts == {"email": 2, "card": 1}


def test_pseudonyms_are_stable_per_tenant_and_differ_across_tenants() -> None:
    redactor = PiiRedactor(PiiPolicy(mode="pseudonymize", key=KEY))
    a1 = redactor.redact("mail Jane@Example.com", "acme").text
    a2 = redactor.redact("jane@example.com wrote", "acme").text
    b = redactor.redact("mail jane@example.com", "beta").text
    token = re.search(r"\[EMAIL:[0-9a-f]{8}\]", a1)
    assert token and token.group() in a2  # normalized: case does not change the pseudonym
    assert token.group() not in b
    other_key = PiiRedactor(PiiPolicy(mode="pseudonymize", key=b"z" * 32)).redact("mail jane@example.com", "acme")
    assert token.group() not in other_key.text
    assert "jane" not in a1.lower()


def test_tenant_overrides() -> None:
    redactor = PiiRedactor(PiiPolicy(tenants={
        "open": TenantRule(mode="off"), "mails": TenantRule(entities=frozenset({"email"})),
        "pseudo": TenantRule(mode="pseudonymize")}, key=KEY))
    text = "jane@example.com 4111 1111 1111 1111"
    assert redactor.redact(text, "open").text == text
    assert redactor.redact(text, "mails").text == "[EMAIL] 4111 1111 1111 1111"
    assert redactor.redact(text, "other").text == "[EMAIL] [CARD]"
    assert re.fullmatch(r"\[EMAIL:[0-9a-f]{8}\] \[CARD:[0-9a-f]{8}\]", redactor.redact(text, "pseudo").text)


def test_entities_setting_limits_what_is_acted_on() -> None:
    redactor = PiiRedactor(PiiPolicy(entities=frozenset({"card"})))
    assert redactor.redact("jane@example.com 4111 1111 1111 1111", "t").text == "jane@example.com [CARD]"


def test_configuration_errors_name_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="RAGLINE_PII__KEY"):
        PiiPolicy(mode="pseudonymize")
    with pytest.raises(ConfigurationError, match="RAGLINE_PII__KEY"):
        PiiPolicy(tenants={"acme": TenantRule(mode="pseudonymize")})
    with pytest.raises(ConfigurationError, match="RAGLINE_PII__KEY is too short"):
        PiiPolicy(mode="pseudonymize", key=b"short")
    with pytest.raises(ConfigurationError, match="unknown entity"):
        PiiPolicy(entities=frozenset({"email", "dna"}))


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODE", "ENTITIES", "TENANTS", "KEY", "QUERIES"):
        monkeypatch.delenv(f"RAGLINE_PII__{name}", raising=False)
    default = Settings()
    assert default.pii.mode == "mask" and set(default.pii.entities) == set(ENTITY_TYPES)
    monkeypatch.setenv("RAGLINE_PII__MODE", "pseudonymize")
    with pytest.raises(ValidationError, match="RAGLINE_PII__KEY"):
        Settings()
    monkeypatch.setenv("RAGLINE_PII__MODE", "mask")
    monkeypatch.setenv("RAGLINE_PII__TENANTS", '{"acme": {"mode": "pseudonymize"}}')
    with pytest.raises(ValidationError, match=r"RAGLINE_PII__TENANTS\['acme'\].mode=pseudonymize needs RAGLINE_PII"):
        Settings()
    monkeypatch.setenv("RAGLINE_PII__KEY", "s" * 40)
    monkeypatch.setenv("RAGLINE_PII__ENTITIES", "email, card")
    configured = Settings()
    assert configured.pii.entities == ("email", "card")
    redactor = build_redactor(configured)
    assert isinstance(redactor, Redactor)
    assert redactor.redact("a@b.io 4111111111111111 10.1.2.3", "x").text == "[EMAIL] [CARD] 10.1.2.3"
    assert redactor.redact("a@b.io", "acme").text.startswith("[EMAIL:")
    config = redactor.config()
    assert "s" * 40 not in str(config) and config["key_id"]  # a keyed id of the key, never the key
    monkeypatch.setenv("RAGLINE_PII__ENTITIES", "email,dna")
    with pytest.raises(ValidationError, match="unknown PII entity type"):
        Settings()


def test_config_changes_with_everything_that_changes_the_output() -> None:
    base = PiiPolicy(mode="pseudonymize", key=KEY).config()
    assert PiiPolicy(mode="pseudonymize", key=b"y" * 32).config() != base
    assert PiiPolicy(mode="mask").config() != base
    assert PiiPolicy(mode="pseudonymize", key=KEY, entities=frozenset({"email"})).config() != base
    assert PiiPolicy(mode="pseudonymize", key=KEY, tenants={"a": TenantRule(mode="off")}).config() != base
    assert PiiPolicy(mode="mask", key=KEY).config() == PiiPolicy(mode="mask").config()  # an unused key


# -- offsets --------------------------------------------------------------------------------

def test_offset_mapping() -> None:
    text = "x a@b.io y 4111111111111111 z"
    redaction = MASK.redact(text, "t")
    assert redaction.text == "x [EMAIL] y [CARD] z"
    for original, redacted in [("x", "x"), ("y", "y"), ("z", "z")]:
        assert redaction.text[redaction.map_offset(text.index(original))] == redacted
    inside = text.index("@")
    assert redaction.map_offset(inside) == redaction.text.index("]") + 1  # inside a value: end of its mask
    assert Redaction("same").map_offset(3) == 3


SENTENCES = ["Contact jane.doe@example.com about the invoice.", "Card 4111 1111 1111 1111 was charged twice.",
             "The meeting is in room 4.", "Call +44 20 7946 0958 after lunch.", "Nothing personal here at all.",
             "IBAN DE89 3704 0044 0532 0130 00 is the payee."]


def _document(parts: list[str]) -> ExtractedDocument:
    text, sections, pos = "", [], 0
    for i, part in enumerate(parts):
        chunk = part + "\n\n"
        sections.append(Section(pos, pos + len(part), "paragraph", page=i // 2 + 1,
                                heading_path=("Notes for jane.doe@example.com",)))
        text += chunk
        pos += len(chunk)
    return ExtractedDocument("mem://doc", "text/plain", text, tuple(sections),
                             metadata={"title": "Ticket from jane.doe@example.com", "pages": 3})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(SENTENCES), min_size=1, max_size=30))
def test_redacted_documents_keep_every_chunker_invariant(parts: list[str]) -> None:
    document = _document(parts)
    redacted, counts = redact_document(MASK, document, "t")
    assert "jane.doe" not in redacted.text and "4111" not in redacted.text
    assert redacted.metadata["title"] == "Ticket from [EMAIL]" and redacted.metadata["pages"] == 3
    assert counts["email"] == sum("jane.doe" in p for p in parts) + 1  # the text's and the title's
    previous_end = 0
    for original, section in zip(document.sections, redacted.sections, strict=True):
        assert previous_end <= section.start < section.end <= len(redacted.text)
        assert section.heading_path == ("Notes for [EMAIL]",) and section.page == original.page
        assert redacted.section_text(section) == MASK.redact(document.section_text(original), "t").text
        previous_end = section.end
    for name in ("fixed", "recursive"):
        chunker = load_chunker(name, max_tokens=24, **({"overlap": 4} if name == "fixed" else {}))
        chunks = chunker.chunk(redacted)
        assert chunks
        for chunk in chunks:
            assert redacted.text[chunk.start:chunk.end] == chunk.text  # offsets index the redacted text
            assert "jane.doe" not in chunk.text and "4111" not in chunk.text
            assert all("jane" not in h for h in chunk.heading_path)


def test_code_chunker_on_redacted_source() -> None:
    source = 'API_KEY = "sk-proj-Abcdefghij0123456789xyz"\n\n\ndef owner():\n    return "ops@example.com"\n'
    document = ExtractedDocument("mem://a.py", "text/x-python", source, (Section(0, len(source), "code"),),
                                 language="python")
    redacted, counts = redact_document(MASK, document, "t")
    assert counts == {"credential": 1, "email": 1}
    chunks = load_chunker("code", max_tokens=64).chunk(redacted)
    assert "".join(c.text for c in chunks).count("[EMAIL]") == 1
    assert all(redacted.text[c.start:c.end] == c.text for c in chunks)


def test_off_returns_the_document_unchanged() -> None:
    document = _document(SENTENCES)
    off = PiiRedactor(PiiPolicy(mode="off"))
    assert redact_document(off, document, "t") == (document, {})
