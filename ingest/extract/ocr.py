"""OCR of image-only pages with Tesseract from the OS packages (``tesseract-ocr``).

The ``tesseract`` binary is run as a subprocess, one page image on its stdin, with a
timeout: no Python binding to load, nothing downloaded at run time (the language data
comes with the OS packages, e.g. Debian's ``tesseract-ocr-eng``). OCR is on when the
binary is there; when it is not, image-only pages keep today's warning and say why.

Page segmentation mode 1 (automatic, with orientation and script detection) reads pages
scanned upside down or sideways when the ``osd`` data is installed; without it, and for
renderings of a PDF's own text (fonts without a Unicode map), mode 3.
One thread per page (``OMP_THREAD_LIMIT=1``): the other cores extract other files.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache

#: Tesseract language codes: "eng", "deu+fra", "chi_sim", "script/Latin".
_LANGUAGES = re.compile(r"^[A-Za-z0-9_/]+(\+[A-Za-z0-9_/]+)*$")


@dataclass(frozen=True)
class OcrConfig:
    """How image-only PDF pages are OCR'd.

    ``languages`` is Tesseract's ``-l`` value ("eng", "eng+deu"); at most ``max_pages``
    pages of one document are OCR'd (the rest are named in a warning); ``dpi`` is the
    rendering resolution; ``page_timeout_s`` bounds one page and ``time_budget_s`` the
    whole extraction.
    """

    enabled: bool = True
    languages: str = "eng"
    max_pages: int = 50
    dpi: int = 300
    page_timeout_s: float = 60.0
    #: stop starting pages once the extraction has run this long (the sandbox's timeout
    #: ends the whole file; pages left are named in a warning instead)
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        if not _LANGUAGES.match(self.languages):
            raise ValueError(f"OCR languages must look like 'eng' or 'eng+deu', not {self.languages!r}")
        if self.max_pages < 0 or not 50 <= self.dpi <= 600 or self.page_timeout_s <= 0:
            raise ValueError("OCR max_pages must be >= 0, dpi within 50-600 and page_timeout_s > 0")


class OcrUnavailable(Exception):
    """Tesseract or one of the requested languages is not installed."""


@dataclass(frozen=True)
class Tesseract:
    binary: str
    version: str
    languages: frozenset[str]

    @property
    def has_osd(self) -> bool:
        return "osd" in self.languages


@cache
def find_tesseract() -> Tesseract | None:
    """The installed Tesseract with its version and languages, or None."""
    binary = shutil.which("tesseract")
    if binary is None:
        return None
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, timeout=20, check=False, env=_env())
        langs = subprocess.run([binary, "--list-langs"], capture_output=True, timeout=20, check=False, env=_env())
    except (OSError, subprocess.SubprocessError):
        return None
    first = (version.stdout or version.stderr).decode("utf-8", "replace").strip().splitlines()
    listed = langs.stdout.decode("utf-8", "replace").splitlines()
    names = frozenset(line.strip() for line in listed[1:] if line.strip())  # line 0: "List of available ..."
    return Tesseract(binary, first[0] if first else "tesseract", names)


def available(config: OcrConfig) -> Tesseract:
    """The Tesseract to use for ``config``; raises :class:`OcrUnavailable` saying what is missing."""
    tesseract = find_tesseract()
    if tesseract is None:
        raise OcrUnavailable("tesseract is not installed (Debian: apt-get install tesseract-ocr tesseract-ocr-eng)")
    wanted = {lang for lang in config.languages.split("+") if "/" not in lang}
    missing = sorted(wanted - tesseract.languages)
    if missing:
        raise OcrUnavailable(f"tesseract has no data for language(s) {', '.join(missing)} "
                             f"(Debian: tesseract-ocr-{missing[0].replace('_', '-').lower()})")
    return tesseract


def recognize(image_png: bytes, config: OcrConfig, tesseract: Tesseract, *, upright: bool = False) -> str:
    """The text Tesseract reads on one page image (PNG bytes).

    ``upright``: the image is a rendering of text the PDF draws (not a scan), so its
    orientation is known and detection is skipped (12% of the page's time on the TAMReview
    paper; on a sparse page detection can also guess wrong)."""
    psm = "1" if tesseract.has_osd and not upright else "3"
    try:
        done = subprocess.run(
            [tesseract.binary, "stdin", "stdout", "-l", config.languages, "--psm", psm, "--dpi", str(config.dpi)],
            input=image_png, capture_output=True, timeout=config.page_timeout_s, check=False, env=_env(),
        )
    except subprocess.TimeoutExpired as exc:
        raise OcrUnavailable(f"tesseract took longer than {config.page_timeout_s:g} s on the page") from exc
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OcrUnavailable(f"tesseract failed (exit {done.returncode}): {message[-1] if message else ''}"[:300])
    return done.stdout.decode("utf-8", "replace")


def _env() -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_THREAD_LIMIT": "1", "LC_ALL": "C"}
    if "TESSDATA_PREFIX" in os.environ:
        env["TESSDATA_PREFIX"] = os.environ["TESSDATA_PREFIX"]
    return env
