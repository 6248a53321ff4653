"""Credentials: cloud keys, provider tokens, private-key blocks, passwords in URLs and
secrets assigned in code or configuration. All are the entity type ``credential``.

Token formats are matched by their documented prefixes (``AKIA``, ``sk-``, ``ghp_``,
``xoxb-``, ``glpat-``, ``AIza``, …); a value assigned to a name such as ``password``,
``secret`` or ``api_key`` is a credential when it is a literal that looks random (Shannon
entropy, mixed character classes), never a variable, a call or a placeholder.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator

from ingest.redact.base import Finding

_TOKENS = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}"  # AWS access key ids
    r"|sk-(?:ant-|proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"  # OpenAI / Anthropic
    r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe secret / restricted keys
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}"  # GitHub
    r"|xox[abposre]-[A-Za-z0-9-]{10,}"  # Slack
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|npm_[A-Za-z0-9]{36}"  # npm
    r"|SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"  # SendGrid
    r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"  # JSON web tokens
    r")(?![A-Za-z0-9])")
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s:,-]*)")
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@]{1,128}:([^\s@/]{1,256})@")
_BEARER = re.compile(r"\b(?:Bearer|Basic|Token)\s+([A-Za-z0-9._~+/-]{20,}=*)")
_SLACK_HOOK = re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/]{20,}")

_SECRET_WORDS = (r"pass(?:word|wd|phrase)|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?key"
                 r"|private[_-]?key|credential")
_SECRET_WORD = re.compile(_SECRET_WORDS)  # on lowercased ASCII text (2x faster than (?i))
_SECRET_WORD_ANY_CASE = re.compile(_SECRET_WORDS, re.IGNORECASE)
_NAME_CHAR = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
# after the name: = "value" | : 'value' | := `value` | "name": "value" | NAME=value (config files)
_ASSIGNED = re.compile(
    r"[\"']?\s*(?::=|=>|==|!=|[:=])\s*"
    r"(?:(?P<q>[\"'`])(?P<quoted>[^\"'`\r\n]{4,256})(?P=q)|(?P<bare>[^\s\"'`,;(){}\[\]<>]{8,256}))")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:<[^>]*>|\$\{[^}]*\}|\$[A-Z_][A-Z0-9_]*|\{\{[^}]*\}\}|%\(?[a-z_]*\)?s|\*+|x+|\.+|-+|"
    r"(?:your|my|the|some|example|dummy|fake|sample)[-_ ]?\w*|changeme|redacted|none|null|nil|true|false|"
    r"undefined|required|optional|string|password|secret|token|env|\[[A-Z_]+(?::[0-9a-f]+)?\])$")
_PASSWORD_NAME = re.compile(r"(?i)pass(?:word|wd|phrase)|pwd")


#: Unquoted values that are code: a plain word, ``a.b.c`` attribute paths, ``f()`` calls.
_CODE_VALUE = re.compile(r"[A-Za-z_$]+|[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?:\(\))?|[A-Za-z_$][\w$]*\(\)")


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _looks_secret(name: str, value: str, quoted: bool) -> bool:
    if _PLACEHOLDER.match(value) or value.lower() == name.lower():
        return False
    classes = sum((any(c.islower() for c in value), any(c.isupper() for c in value),
                   any(c.isdigit() for c in value), any(not c.isalnum() for c in value)))
    if quoted and _PASSWORD_NAME.search(name):
        # A password literal: any that is not one lowercase word or a field name.
        return " " not in value and len(value) >= 6 and classes >= 2
    if not quoted and _CODE_VALUE.fullmatch(value):
        return False  # a word, an attribute path or a call: code, not a secret
    return len(value) >= 12 and classes >= 2 and entropy(value) >= 3.0 and " " not in value


def credentials(text: str) -> Iterator[Finding]:
    for m in _PRIVATE_KEY.finditer(text):
        yield Finding(m.start(), m.end(), "credential", m.group())
    for m in _TOKENS.finditer(text):
        yield Finding(m.start(), m.end(), "credential", m.group())
    for m in _SLACK_HOOK.finditer(text):
        yield Finding(m.start(), m.end(), "credential", m.group())
    for pattern in (_URL_PASSWORD, _BEARER):
        for m in pattern.finditer(text):
            if not _PLACEHOLDER.match(m.group(1)):
                yield Finding(m.start(1), m.end(1), "credential", m.group(1))
    last = -1
    # str.lower() keeps offsets only for ASCII text (some letters lowercase to two characters).
    words = _SECRET_WORD.finditer(text.lower()) if text.isascii() else _SECRET_WORD_ANY_CASE.finditer(text)
    for word in words:
        name_start, name_end = word.start(), word.end()
        if name_end <= last:
            continue  # a second keyword in the same name ("secret_token")
        while name_start and text[name_start - 1] in _NAME_CHAR:
            name_start -= 1
        while name_end < len(text) and text[name_end] in _NAME_CHAR:
            name_end += 1
        last = name_end
        assigned = _ASSIGNED.match(text, name_end)
        if assigned is None:
            continue
        group = "quoted" if assigned.group("quoted") is not None else "bare"
        value = assigned.group(group)
        if group == "bare" and text[assigned.end(group):assigned.end(group) + 1] == "(":
            continue  # a call: code, not a secret
        if _looks_secret(text[name_start:name_end], value, group == "quoted"):
            yield Finding(assigned.start(group), assigned.end(group), "credential", value)
