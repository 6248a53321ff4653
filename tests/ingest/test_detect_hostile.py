"""Content detection runs in the ingesting process, before the sandbox: hostile zips must
cost it next to nothing (issue 9). The bomb cases run detection in a child process whose
address space is capped 64 MiB above what it already maps, so inflating a member (or
building an object per central-directory entry) fails there instead of passing unnoticed
in a test process that has already peaked higher."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.extract.detect import detect_media_type

REPO = Path(__file__).resolve().parents[2]
BOMB_MIB = 256
HEADROOM_MIB = 64

_DETECT_CAPPED = f"""
import resource, sys
from ingest.extract.detect import detect_media_type
data = open(sys.argv[1], "rb").read()
with open("/proc/self/status") as status:
    vm = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
cap = vm + {HEADROOM_MIB} * 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(detect_media_type(data, sys.argv[2]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


def detect_capped(path: Path, name: str) -> tuple[str, int]:
    """(media type, peak RSS growth in KiB) of detection in an address-space-capped child."""
    proc = subprocess.run([sys.executable, "-c", _DETECT_CAPPED, str(path), name], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"detection failed under a {HEADROOM_MIB} MiB cap:\n{proc.stderr[-2000:]}"
    media_type, growth = proc.stdout.split()
    return media_type, int(growth)


def write_zip_bomb(path: Path, others: dict[str, bytes]) -> None:
    """A zip whose ``mimetype`` inflates to BOMB_MIB MiB of zeros (~1.2 MB on disk), streamed."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("mimetype", "w", force_zip64=True) as member:
            block = bytes(1 << 20)
            for _ in range(BOMB_MIB):
                member.write(block)
        for name, body in others.items():
            zf.writestr(name, body)


@pytest.fixture(scope="module")
def docx_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reviewer's file: a real-looking .docx whose ``mimetype`` member is a bomb."""
    path = tmp_path_factory.mktemp("bomb") / "report.docx"
    write_zip_bomb(path, {"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"})
    return path


@pytest.fixture(scope="module")
def epub_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """No word/, ppt/ or xl/ names, so detection must look at ``mimetype`` itself."""
    path = tmp_path_factory.mktemp("bomb") / "book.epub"
    write_zip_bomb(path, {"OEBPS/content.opf": b"<package/>"})
    return path


def test_docx_whose_mimetype_is_a_bomb_is_detected_without_inflating_it(docx_bomb: Path) -> None:
    media_type, growth_kib = detect_capped(docx_bomb, "upload.bin")
    assert media_type.endswith("wordprocessingml.document")
    assert growth_kib < 16 * 1024


def test_bomb_mimetype_is_not_read_when_only_it_could_tell_the_type(epub_bomb: Path) -> None:
    # Declared 256 MiB: not a mimetype member; the extension decides, the sandbox parses.
    assert detect_capped(epub_bomb, "book.epub")[0] == "application/epub+zip"
    assert detect_capped(epub_bomb, "upload.bin")[0] == "application/zip"


def test_a_lying_declared_size_still_inflates_at_most_a_prefix(epub_bomb: Path, tmp_path: Path) -> None:
    data = bytearray(epub_bomb.read_bytes())
    entry = data.index(b"PK\x01\x02")
    struct.pack_into("<L", data, entry + 24, 40)  # central directory: "40 bytes uncompressed"
    liar = tmp_path / "liar.epub"
    liar.write_bytes(bytes(data))

    media_type, growth_kib = detect_capped(liar, "upload.bin")
    assert media_type == "application/zip"  # 100 zero bytes are no known mimetype
    assert growth_kib < 16 * 1024


def many_entry_zip(path: Path, count: int) -> None:
    """A zip declaring ``count`` central-directory entries, packed by hand in ~0.1 s."""
    name = b"word/document.xml"
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0) + name
    central = b"".join(
        struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(n), 0, 0, 0, 0, 0, 0) + n
        for n in [name, *(b"%06x" % i for i in range(count - 1))]
    )
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(central), len(local), 0)
    path.write_bytes(local + central + end)


def test_a_huge_central_directory_is_read_only_as_far_as_needed(tmp_path: Path) -> None:
    path = tmp_path / "many.zip"
    many_entry_zip(path, 300_000)  # zipfile would build 300,000 ZipInfo objects (~160 MB)

    media_type, growth_kib = detect_capped(path, "upload.bin")
    assert media_type.endswith("wordprocessingml.document")
    assert growth_kib < 16 * 1024


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
@pytest.mark.parametrize(("mimetype", "expected"), [
    (b"application/epub+zip", "application/epub+zip"),
    (b"application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.text"),
])
def test_honest_odf_and_epub_are_still_told_apart_by_mimetype(method: int, mimetype: bytes,
                                                              expected: str, tmp_path: Path) -> None:
    path = tmp_path / "doc.zip"
    with zipfile.ZipFile(path, "w", method) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), mimetype, compress_type=method)
        zf.writestr("content.xml", b"<office:document/>")
    assert detect_media_type(path.read_bytes(), "upload.bin") == expected


def _honest_epub() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), b"application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr("OEBPS/content.opf", b"<package/>" * 20)
    return buf.getvalue()


EPUB = _honest_epub()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(EPUB) - 1), st.integers(0, 255)), max_size=8), st.integers(0, len(EPUB)))
def test_damaged_zips_never_raise(flips: list[tuple[int, int]], cut: int) -> None:
    """The hand-written directory reader trusts no field: any damage gives some type, never an exception."""
    data = bytearray(EPUB)
    for at, value in flips:
        data[at] = value
    assert isinstance(detect_media_type(b"PK\x03\x04" + bytes(data[4:cut]), "x.bin"), str)
    assert isinstance(detect_media_type(bytes(data), "x.bin"), str)
