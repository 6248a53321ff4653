"""Detectors of personal data: e-mail, phone, payment card, IBAN, national ids, IP addresses.

Each is a function of the text returning :class:`Finding` s. Numbers are accepted only when
their checksum or structure holds (Luhn for cards, mod-97 for IBAN, ISO 7064 for the German
tax id, the SSA's allocation rules for SSNs), and only as whole tokens: a digit run inside a
hash, a UUID, a version string or a longer number is never a card or a phone number.

Published sample values (078-05-1120, 555-01xx numbers, test cards, ``...EXAMPLE`` keys)
are redacted like real ones: a document cannot prove a value is a sample.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

import phonenumbers
from stdnum import iban as stdnum_iban
from stdnum.de import idnr

from ingest.redact.base import Finding

# -- e-mail --------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])")


def emails(text: str) -> Iterator[Finding]:
    if "@" not in text:
        return
    for m in _EMAIL.finditer(text):
        yield Finding(m.start(), m.end(), "email", m.group().lower())


# -- payment cards (Luhn) ------------------------------------------------------------------

_CARD = re.compile(
    r"(?<![\w.,+/-])(?:\d{13,19}"  # contiguous
    r"|\d{4}(?P<s>[ -])\d{4}(?P=s)\d{4}(?P=s)\d{1,7}"  # 4-4-4-4(…), one separator throughout
    r"|\d{4}(?P<a>[ -])\d{6}(?P=a)\d{4,5})"  # Amex / Diners 4-6-5 and 4-6-4
    r"(?![\w+/-]|[.,]\d)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_network(digits: str) -> bool:
    """An issuer prefix (IIN) whose network uses this length: a Luhn-valid number of no
    network (one in ten random digit runs passes Luhn) is not taken for a card."""
    n, p2, p4 = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if p2 in (34, 37):
        return n == 15  # American Express
    if 300 <= int(digits[:3]) <= 305 or p2 in (36, 38, 39):
        return 14 <= n <= 19  # Diners Club
    if p4 == 6011 or p2 == 65 or 644 <= int(digits[:3]) <= 649 or p2 == 62:
        return 16 <= n <= 19  # Discover, UnionPay
    if p2 == 35:
        return 16 <= n <= 19  # JCB (3528-3589 assigned; the rest of 35 taken as JCB too, like issuers' test data)
    if p2 == 50 or 56 <= p2 <= 69:
        return 12 <= n <= 19  # Maestro
    return False


def cards(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and _card_network(digits) and luhn_ok(digits) and len(set(digits)) > 1:
            yield Finding(m.start(), m.end(), "card", digits)


# -- IBAN (mod 97) -------------------------------------------------------------------------

_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])")


def ibans(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        raw = m.group()
        # A greedy match may have taken the next word ("... 00 BIC"): try each group boundary.
        ends = [len(raw)] + [i for i in range(len(raw) - 1, 0, -1) if raw[i] == " "]
        for end in ends:
            compact = raw[:end].replace(" ", "")
            if len(compact) >= 15 and stdnum_iban.is_valid(compact):
                yield Finding(m.start(), m.start() + end, "iban", compact)
                break


# -- national ids --------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\w-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w-]|[.,]\d)")
_SSN_BARE = re.compile(r"(?<![\w.-])\d{9}(?![\w-]|[.,]\d)")
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|social[ -]security|soc\.? ?sec)\b")
#: Published sample SSNs (the Woolworth wallet card, the 1962 Social Security ad, the SSA's
#: advertising range 987-65-4320..4329): redacted although some are outside the valid ranges.
SAMPLE_SSNS = frozenset({"078051120", "219099999", "123456789", *(f"98765432{d}" for d in range(10))})


def _ssn_valid(digits: str) -> bool:
    if digits in SAMPLE_SSNS:
        return True
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _has_context(text: str, start: int, pattern: re.Pattern[str], window: int = 40) -> bool:
    return pattern.search(text, max(0, start - window), start) is not None


def us_ssns(text: str) -> Iterator[Finding]:
    for m in _SSN.finditer(text):
        digits = m.group(1) + m.group(3) + m.group(4)
        if _ssn_valid(digits):
            yield Finding(m.start(), m.end(), "us_ssn", digits)
    # Nine bare digits are an SSN only after a word saying so (else every 9-digit id would be one).
    for m in _SSN_BARE.finditer(text):
        if _ssn_valid(m.group()) and _has_context(text, m.start(), _SSN_CONTEXT):
            yield Finding(m.start(), m.end(), "us_ssn", m.group())


# HMRC: first letter not D F I Q U V, second not D F I O Q U V; BG GB KN NK NT TN ZZ never issued;
# QQ 12 34 56 C is HMRC's published example.
_NINO = re.compile(r"(?<![A-Za-z0-9])(?:(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]|QQ)"
                   r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])")


def uk_ninos(text: str) -> Iterator[Finding]:
    for m in _NINO.finditer(text):
        yield Finding(m.start(), m.end(), "uk_nino", m.group().replace(" ", ""))


_DE_TAX_ID = re.compile(r"(?<![\w./-])(?:[1-9]\d ?\d{3} ?\d{3} ?\d{3}|[1-9]\d/\d{3}/\d{3}/\d{3})(?![\w/-]|[.,]\d)")
_DE_TAX_CONTEXT = re.compile(r"(?i)(?:steuer|idnr|identifikationsnummer|\btin\b|tax[ -]?id|tax identification)")


def de_tax_ids(text: str) -> Iterator[Finding]:
    """The German tax id (Steuer-IdNr): 11 digits, ISO 7064 mod 11,10 check digit, one digit
    repeated. A grouped form (``12 345 678 901``) suffices; a bare 11-digit run needs a word
    such as "Steuer-ID" or "TIN" before it (one in ~20 random 11-digit runs passes the check)."""
    for m in _DE_TAX_ID.finditer(text):
        raw = m.group()
        digits = re.sub(r"\D", "", raw)
        if len(digits) != 11 or not idnr.is_valid(digits):
            continue
        if raw.isdigit() and not _has_context(text, m.start(), _DE_TAX_CONTEXT, 60):
            continue
        yield Finding(m.start(), m.end(), "de_tax_id", digits)


# -- IP addresses --------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.:-]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w:-]|\.\d)")
# Hex digits and colons (two at least), optionally ending in a dotted IPv4; ipaddress decides.
_IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f]*:[0-9A-Fa-f]*:)[0-9A-Fa-f:]{2,39}"
                   r"(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![\w:]|\.\w)")
_VERSION_CONTEXT = re.compile(r"(?i)(?:\bv|version|release|build|rev(?:ision)?|\bver\.?)\s*[:=]?\s*$")


def _ip_is_personal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, unspecified, netmask-like and link-local addresses name no one (a link-local
    IPv6 address derived from a MAC address, EUI-64, does); every other address (private
    ranges and documentation ranges too: they map a network) is redacted."""
    if address.is_loopback or address.is_unspecified:
        return False
    if address.is_link_local:
        return isinstance(address, ipaddress.IPv6Address) and address.packed[11:13] == b"\xff\xfe"
    return not (isinstance(address, ipaddress.IPv4Address) and str(address).startswith("255."))


def ip_addresses(text: str) -> Iterator[Finding]:
    if "." in text:
        for m in _IPV4.finditer(text):
            if _VERSION_CONTEXT.search(text, max(0, m.start() - 12), m.start()):
                continue
            address = ipaddress.IPv4Address(m.group())
            if _ip_is_personal(address):
                yield Finding(m.start(), m.end(), "ip_address", str(address))
    if "::" in text or text.count(":") >= 7:
        for m in _IPV6.finditer(text):
            raw = m.group()
            groups = [g for g in re.split(r"::?", raw) if g]
            # "a::b" is a C++/Rust path; an address has three groups or a long one with a digit.
            if raw.count(":") < 3 and not any(len(g) >= 3 and any(c.isdigit() for c in g) for g in groups):
                continue
            try:
                address6 = ipaddress.IPv6Address(raw)
            except ValueError:
                continue
            if _ip_is_personal(address6):
                yield Finding(m.start(), m.end(), "ip_address", str(address6))


# -- phone numbers (libphonenumber) ---------------------------------------------------------

#: Fictional-use numbers (NANP 555-0100..0199), written with or without an area code.
_SAMPLE_PHONE = re.compile(r"(?<![\w-])(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])?555[ .-]01\d\d(?![\w-]|[.,]\d)")
_SEPARATED = re.compile(r"[\s().-]")
_PHONE_CONTEXT = re.compile(r"(?i)(?:phone|\btel\b|telefon|mobil|\bcell|\bfax|\bcall|\bruf|handy|contact|kontakt|reach|"
                            r"\bdial|\bsms\b|whatsapp|hotline|number|\bno\.|\bnr\.?)")


#: Where a phone number could be: 7+ characters of digits and the separators numbers are
#: written with. libphonenumber then reads only these windows (a whole-text pass per region
#: costs ~0.6 s per MB).
_PHONE_CANDIDATE = re.compile(r"(?:\+|\(\s*)?\d[\d \t().\-\u2010-\u2013]{5,24}\d")


def phones(text: str, regions: tuple[str, ...]) -> Iterator[Finding]:
    """Numbers libphonenumber finds and holds valid for one of ``regions`` (``+`` numbers of
    any country are found from each), plus the 555-01xx fictional range."""
    seen: set[tuple[int, int]] = set()
    for m in _SAMPLE_PHONE.finditer(text):
        seen.add((m.start(), m.end()))
        yield Finding(m.start(), m.end(), "phone", re.sub(r"\D", "", m.group()))
    for candidate in _PHONE_CANDIDATE.finditer(text):
        window = candidate.group()
        if not 7 <= sum(c.isdigit() for c in window) <= 15:  # E.164: 15 digits at most (longer: a card, an IBAN)
            continue
        offset = candidate.start()
        # A "+" number reads the same from every region; a national one is tried region by region
        # until one reads it (each try costs ~0.1 ms).
        for region in regions[:1] if window.startswith("+") else regions:
            matches = list(phonenumbers.PhoneNumberMatcher(window, region, leniency=phonenumbers.Leniency.VALID))
            for match in matches:
                start, end = offset + match.start, offset + match.end
                if (start, end) in seen or not _phone_token(text, start, end):
                    continue
                seen.add((start, end))
                yield Finding(start, end, "phone",
                              phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164))
            if matches:
                break


def _phone_token(text: str, start: int, end: int) -> bool:
    """A match libphonenumber accepts, but which is a whole token shaped like a phone number:
    not glued to a word, dot, comma, slash or digit (a version, a path, a hash, a decimal),
    not a cell of a row of numbers (tables, dates), grouped like numbers are written, and a
    bare digit run (no ``+``, separator or parenthesis) only after a word such as "phone"."""
    before = text[start - 1] if start else " "
    after = text[end] if end < len(text) else " "
    if before.isalnum() or before in "._/-:#,'\"" or after.isalnum() or after in "_/-:" or (
            after in ".," and text[end + 1:end + 2].isdigit()):
        return False
    raw = text[start:end]
    if sum(c.isdigit() for c in raw) < 7 or "/" in raw:
        return False
    if _NUMBER_BEFORE.search(text, max(0, start - 16), start) or _NUMBER_AFTER.match(text, end):
        return False  # one number in a row of numbers: a table, not a phone number
    if not _grouped_like_a_phone(raw):
        return False
    if raw.startswith("+") or _SEPARATED.search(raw):
        return True
    return raw.startswith("0") and len(raw) >= 10 or _PHONE_CONTEXT.search(text, max(0, start - 30), start) is not None


_NUMBER_BEFORE = re.compile(r"\d[\d,.]*[ \t]+$")
_NUMBER_AFTER = re.compile(r"[ \t]+\d")
_GROUPS = re.compile(r"\(0\)|\+\d{1,3}|\d+")


def _grouped_like_a_phone(raw: str) -> bool:
    """No lone digit but a leading NANP ``1`` or the one after a ``+`` country code or ``(0)``."""
    groups = _GROUPS.findall(raw)
    for i, group in enumerate(groups):
        if len(group) == 1 and not (i == 0 and group == "1") and not (i and groups[i - 1][0] in "+("):
            return False
    return True
