"""The PII redactor: runs the detectors a tenant's policy enables, settles overlaps, and
replaces each value with a mask (``[EMAIL]``) or a keyed pseudonym (``[EMAIL:3f9a1c02]``).

Pseudonyms are ``HMAC-SHA256(key, tenant | type | normalized value)``: stable for a tenant
(equal values still match each other, in the index and across documents), different across
tenants, and not reversible without the key.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Callable, Iterable

from ingest.redact.base import ENTITY_TYPES, PSEUDONYM_HEX, Finding, PiiPolicy
from ingest.redact.detectors import cards, de_tax_ids, emails, ibans, ip_addresses, phones, uk_ninos, us_ssns
from ingest.redact.secrets import credentials
from schemas.privacy import RedactedSpan, Redaction

_PRIORITY = {entity: i for i, entity in enumerate(ENTITY_TYPES)}


class PiiRedactor:
    """:class:`schemas.protocols.Redactor` over the built-in detectors."""

    def __init__(self, policy: PiiPolicy) -> None:
        self.policy = policy
        regions = policy.phone_regions
        self._detectors: dict[str, Callable[[str], Iterable[Finding]]] = {
            "credential": credentials, "email": emails, "iban": ibans, "card": cards, "us_ssn": us_ssns,
            "uk_nino": uk_ninos, "de_tax_id": de_tax_ids, "ip_address": ip_addresses,
            "phone": lambda text: phones(text, regions),
        }

    def config(self) -> dict[str, object]:
        return self.policy.config()

    def find(self, text: str, entities: Iterable[str]) -> list[Finding]:
        """The values to replace, in text order, never overlapping. A credential beats any
        value it overlaps (``user:pa55w0rd@host`` is a password, not an e-mail); otherwise of
        two overlapping findings the longer wins, then the type listed first in ``ENTITY_TYPES``."""
        found = [f for entity in entities for f in self._detectors[entity](text) if f.end > f.start]
        secrets = _settle([f for f in found if f.entity == "credential"])
        others = _settle([f for f in found if f.entity != "credential"])
        if not secrets or not others:
            return secrets or others
        merged, i = list(secrets), 0
        for f in others:  # both in text order: keep a value only where no credential is
            while i < len(secrets) and secrets[i].end <= f.start:
                i += 1
            if i == len(secrets) or f.end <= secrets[i].start:
                merged.append(f)
        merged.sort(key=lambda f: f.start)
        return merged

    def redact(self, text: str, tenant: str) -> Redaction:
        mode = self.policy.mode_for(tenant)
        if mode == "off" or not text:
            return Redaction(text)
        findings = self.find(text, [e for e in ENTITY_TYPES if e in self.policy.entities_for(tenant)])
        if not findings:
            return Redaction(text)
        parts: list[str] = []
        spans: list[RedactedSpan] = []
        pos = out = 0
        for f in findings:
            parts.append(text[pos:f.start])
            out += f.start - pos
            token = self._token(f, tenant) if mode == "pseudonymize" else f"[{f.entity.upper()}]"
            parts.append(token)
            spans.append(RedactedSpan(f.start, f.end, out, out + len(token), f.entity))
            out += len(token)
            pos = f.end
        parts.append(text[pos:])
        return Redaction("".join(parts), dict(Counter(f.entity for f in findings)), tuple(spans))

    def _token(self, finding: Finding, tenant: str) -> str:
        assert self.policy.key is not None  # PiiPolicy refuses pseudonymize without a key
        message = "\x1f".join((tenant, finding.entity, finding.normalized)).encode("utf-8")
        digest = hmac.new(self.policy.key, message, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]
        return f"[{finding.entity.upper()}:{digest}]"


def _settle(found: list[Finding]) -> list[Finding]:
    """Non-overlapping findings in text order: the longest of overlapping ones, then the
    type listed first."""
    found.sort(key=lambda f: (f.start, -(f.end - f.start), _PRIORITY[f.entity]))
    kept: list[Finding] = []
    for finding in found:
        if kept and finding.start < kept[-1].end:
            last = kept[-1]
            if finding.end - finding.start > last.end - last.start and (len(kept) < 2 or
                                                                        kept[-2].end <= finding.start):
                kept[-1] = finding  # a longer value starting inside the last one
            continue
        kept.append(finding)
    return kept
