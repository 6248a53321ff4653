"""Generated documentation in HTML (DocBook XSL, Texinfo): structure kept (a bench, not a test).

Reads the DocBook and Texinfo manuals installed under ``/usr/share/doc`` (Debian ships
e.g. valgrind's and libxslt's DocBook pages and libffi's Texinfo pages; whatever is
installed is used) and prints, for ragline's HTML extractor and for trafilatura alone:

* headings kept: the page's ``<h1>``-``<h6>`` texts (outside navigation and tables of
  contents) found as a line of the extracted text;
* definition terms kept: the ``<dt>`` texts found in the text;
* navigation leaked: pages whose text still holds a "Next:"/"Previous:"/"Up:" line or a
  Prev/Up/Home/Next row.

    .venv/bin/python bench/html_docs.py [--root /usr/share/doc] [--limit 400]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import trafilatura  # noqa: E402
from trafilatura.utils import load_html  # noqa: E402

from ingest.extract import html_blocks  # noqa: E402
from ingest.extract.html import HtmlExtractor, page_kind  # noqa: E402

_NAV_LINE = re.compile(r"^(?:Next|Previous|Prev|Up):|^Prev\s+(?:Up\s+)?(?:Home\s+)?Next$", re.MULTILINE)


def squash(text: str) -> str:
    return " ".join(text.split())


def expected(data: bytes, kind: str) -> tuple[list[str], list[str]]:
    tree = load_html(data)
    html_blocks.drop_navigation(tree, html_blocks.DOCBOOK_NAVIGATION if kind == "docbook"
                                else html_blocks.TEXINFO_NAVIGATION)
    headings = [squash(h.text_content()).replace("¶", "").strip()
                for h in tree.iter("h1", "h2", "h3", "h4", "h5", "h6")]
    terms = [squash(dt.text_content()).replace("¶", "").strip() for dt in tree.iter("dt")]
    return [h for h in headings if h], [t for t in terms if t]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/usr/share/doc"))
    parser.add_argument("--limit", type=int, default=400)
    args = parser.parse_args()
    print("command: .venv/bin/python bench/html_docs.py " + " ".join(sys.argv[1:]))
    pages: list[tuple[Path, str]] = []
    for path in sorted(p for p in args.root.rglob("*.htm*") if p.is_file()):
        if len(pages) >= args.limit:
            break
        tree = load_html(path.read_bytes())
        kind = page_kind(tree) if tree is not None else "article"
        if kind in ("docbook", "texinfo"):
            pages.append((path, kind))
    if not pages:
        print(f"no DocBook or Texinfo pages under {args.root}")
        return
    extractor = HtmlExtractor()
    totals: dict[str, dict[str, int]] = {}
    for path, kind in pages:
        data = path.read_bytes()
        headings, terms = expected(data, kind)
        texts = {"ragline": _safe(lambda d, p=path: extractor.extract(d, str(p)).text, data),
                 "trafilatura": _safe(lambda d: trafilatura.extract(d, include_tables=True) or "", data)}
        for name, text in texts.items():
            lines = {squash(line) for line in text.splitlines()}
            flat = squash(text)
            t = totals.setdefault(f"{name} {kind}", {"pages": 0, "headings": 0, "headings_kept": 0, "terms": 0,
                                                      "terms_kept": 0, "nav_leaked": 0})
            t["pages"] += 1
            t["headings"] += len(headings)
            t["headings_kept"] += sum(h in lines for h in headings)
            t["terms"] += len(terms)
            t["terms_kept"] += sum(term in flat for term in terms)
            t["nav_leaked"] += bool(_NAV_LINE.search(text))
    print(f"\n## Generated documentation under {args.root}: {len(pages)} pages\n")
    print(f"{'extractor':24} {'pages':>6} {'headings kept':>16} {'terms kept':>16} {'pages leaking nav':>18}")
    for name, t in sorted(totals.items(), key=lambda kv: (kv[0].split()[1], kv[0])):
        print(f"{name:24} {t['pages']:>6} {_share(t['headings_kept'], t['headings']):>16} "
              f"{_share(t['terms_kept'], t['terms']):>16} {t['nav_leaked']:>18}")


def _share(kept: int, total: int) -> str:
    return f"{kept}/{total} ({kept / total:.0%})" if total else "-"


def _safe(fn: object, *args: object) -> str:
    try:
        return str(fn(*args))  # type: ignore[operator]
    except Exception as exc:  # noqa: BLE001 - a page one extractor cannot read keeps nothing
        print(f"  ({type(exc).__name__}: {str(exc)[:100]})", file=sys.stderr)
        return ""


if __name__ == "__main__":
    main()
