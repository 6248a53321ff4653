"""Tables rendered as Markdown, the one table format every extractor emits."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(rows: Sequence[Sequence[str | None]]) -> str:
    """Render rows (the first is the header) as a Markdown table; "" when empty."""
    cleaned = [[" ".join((c or "").split()).replace("|", "\\|") for c in row] for row in rows if row]
    cleaned = [r for r in cleaned if any(r)]
    if not cleaned:
        return ""
    width = max(len(r) for r in cleaned)
    cleaned = [r + [""] * (width - len(r)) for r in cleaned]
    lines = ["| " + " | ".join(cleaned[0]) + " |", "|" + "---|" * width]
    lines += ["| " + " | ".join(r) + " |" for r in cleaned[1:]]
    return "\n".join(lines)
