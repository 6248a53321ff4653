"""The redaction stage's data types: entity types, the policy (global and per tenant) and findings.

Entity types are lowercase ids: they name the settings (``RAGLINE_PII__ENTITIES``), the
counts recorded per document and the mask (``email`` -> ``[EMAIL]``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from schemas.errors import ConfigurationError

Mode = Literal["off", "mask", "pseudonymize"]
MODES: tuple[Mode, ...] = ("off", "mask", "pseudonymize")

#: Every entity type the detectors know, in the order overlaps are settled (earlier wins a tie).
ENTITY_TYPES: tuple[str, ...] = (
    "credential",  # cloud keys, sk-/ghp_/xox tokens, private-key blocks, secrets assigned in code, URL passwords
    "email",
    "iban",
    "card",
    "us_ssn",
    "uk_nino",
    "de_tax_id",
    "ip_address",
    "phone",
)

#: Bumped whenever a detector finds something else in the same text: it enters ``config()``
#: and so the pipeline fingerprint (a new index generation, ``ragline reindex``).
DETECTOR_VERSION = 1

#: Shortest HMAC key accepted for pseudonyms (a short key could be guessed from the tokens).
MIN_KEY_CHARS = 32
#: Hex digits of a pseudonym: 32 bits, so two values of one type in one tenant share a token
#: only past ~77k distinct values (birthday bound at 50%).
PSEUDONYM_HEX = 8


@dataclass(frozen=True, slots=True)
class Finding:
    """A detected value: ``text[start:end]``, its type and its normalized form (what a
    pseudonym is derived from, so ``A@X.com`` and ``a@x.com`` get one token)."""

    start: int
    end: int
    entity: str
    normalized: str


@dataclass(frozen=True, slots=True)
class TenantRule:
    """What a tenant overrides; ``None`` keeps the deployment's setting."""

    mode: Mode | None = None
    entities: frozenset[str] | None = None


@dataclass(frozen=True)
class PiiPolicy:
    """The deployment's redaction policy and its per-tenant overrides."""

    mode: Mode = "mask"
    entities: frozenset[str] = frozenset(ENTITY_TYPES)
    tenants: Mapping[str, TenantRule] = field(default_factory=dict)
    key: bytes | None = field(default=None, repr=False)
    phone_regions: tuple[str, ...] = ("US", "GB", "DE", "FR")

    def __post_init__(self) -> None:
        unknown = sorted((set(self.entities).union(*(r.entities or () for r in self.tenants.values())))
                         - set(ENTITY_TYPES))
        if unknown:
            raise ConfigurationError(f"RAGLINE_PII__ENTITIES: unknown entity type(s) {', '.join(unknown)}; "
                                     f"known: {', '.join(ENTITY_TYPES)}")
        needs_key = [t for t, r in self.tenants.items() if r.mode == "pseudonymize"]
        if self.mode == "pseudonymize":
            needs_key.insert(0, "(all)")
        if needs_key and not self.key:
            raise ConfigurationError(f"RAGLINE_PII__KEY is required when pseudonymizing (tenants: "
                                     f"{', '.join(needs_key)}): the HMAC key of the pseudonyms, at least "
                                     f"{MIN_KEY_CHARS} characters")
        if self.key is not None and len(self.key) < MIN_KEY_CHARS:
            raise ConfigurationError(f"RAGLINE_PII__KEY is too short ({len(self.key)} bytes): use at least "
                                     f"{MIN_KEY_CHARS}, e.g. `openssl rand -hex 32`")

    def mode_for(self, tenant: str) -> Mode:
        rule = self.tenants.get(tenant)
        return rule.mode if rule and rule.mode else self.mode

    def entities_for(self, tenant: str) -> frozenset[str]:
        rule = self.tenants.get(tenant)
        return rule.entities if rule and rule.entities is not None else self.entities

    def pseudonymizes(self) -> bool:
        return self.mode == "pseudonymize" or any(r.mode == "pseudonymize" for r in self.tenants.values())

    def key_id(self) -> str | None:
        """A keyed id of the key (never the key): it changes when the key is rotated. Only a
        key that makes pseudonyms counts (rotating an unused key re-indexes nothing)."""
        if not self.key or not self.pseudonymizes():
            return None
        return hmac.new(self.key, b"ragline-pii-key-id", hashlib.sha256).hexdigest()[:16]

    def config(self) -> dict[str, object]:
        return {
            "detectors": DETECTOR_VERSION, "mode": self.mode, "entities": sorted(self.entities),
            "tenants": {t: {"mode": r.mode, "entities": sorted(r.entities) if r.entities is not None else None}
                        for t, r in sorted(self.tenants.items())},
            "key_id": self.key_id(), "phone_regions": list(self.phone_regions),
        }
