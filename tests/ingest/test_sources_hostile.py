"""Hostile folders given to ``ragline ingest DIR`` (issue 9): symlinks out of the folder,
symlink loops, FIFOs, devices, unreadable and vanishing entries, oversize files. Each
problem is one per-file failure naming the entry; the good files of the same tree still
come through, and nothing blocks, loops or reads without bound."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.sources import SourceFailure, SourceOptions, iter_sources
from schemas.documents import SourceDocument

NOT_FOLLOWED = "symlink not followed; use --follow-symlinks"
AS_ROOT = os.geteuid() == 0

pytestmark = pytest.mark.timeout(10)  # a FIFO that blocks, or a loop, fails instead of hanging


def collect(items: Iterator[SourceDocument | SourceFailure]) -> tuple[dict[str, bytes], dict[str, str]]:
    """(contents by source URI, errors by source URI) of everything yielded."""
    docs: dict[str, bytes] = {}
    failures: dict[str, str] = {}
    for item in items:
        if isinstance(item, SourceFailure):
            failures[item.source_uri] = item.error
        else:
            docs[item.source_uri] = item.data
    return docs, failures


def ingest(*targets: Path | str, **options: object) -> tuple[dict[str, bytes], dict[str, str]]:
    return collect(iter_sources([str(t) for t in targets], SourceOptions(tenant="t", **options)))  # type: ignore[arg-type]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A folder with one good file; each test adds its hostile entries."""
    base = Path(os.path.realpath(tmp_path))
    (base / "root").mkdir()
    (base / "root" / "good.txt").write_text("a good file")
    return base / "root"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """Stands in for /etc/passwd: a file outside the folder being ingested."""
    (tmp_path / "outside").mkdir()
    path = Path(os.path.realpath(tmp_path)) / "outside" / "passwd"
    path.write_text("root:x:0:0:root:/root:/bin/bash")
    return path


def test_symlinks_are_not_followed_by_default(root: Path, secret: Path) -> None:
    (root / "passwd").symlink_to(secret)
    (root / "alias.txt").symlink_to(root / "good.txt")
    (root / "linked-dir").symlink_to(root.parent / "outside", target_is_directory=True)

    docs, failures = ingest(root)
    assert docs == {str(root / "good.txt"): b"a good file"}
    assert failures == {str(root / name): NOT_FOLLOWED for name in ("alias.txt", "linked-dir", "passwd")}


def test_symlink_loop_is_a_per_file_failure(root: Path) -> None:
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")

    docs, failures = ingest(root)
    assert list(docs) == [str(root / "good.txt")]
    assert failures == {str(root / "a"): NOT_FOLLOWED, str(root / "b"): NOT_FOLLOWED}

    docs, failures = ingest(root, follow_symlinks=True)
    assert list(docs) == [str(root / "good.txt")]
    assert set(failures) == {str(root / "a"), str(root / "b")}
    assert all("symlink loop" in error for error in failures.values())


def test_symlink_to_dev_zero_is_never_read(root: Path) -> None:
    (root / "zero").symlink_to("/dev/zero")

    docs, failures = ingest(root)
    assert failures == {str(root / "zero"): NOT_FOLLOWED} and list(docs) == [str(root / "good.txt")]

    docs, failures = ingest(root, follow_symlinks=True)
    assert "outside" in failures[str(root / "zero")] and "/dev/zero" in failures[str(root / "zero")]
    assert list(docs) == [str(root / "good.txt")]

    # Named on the command line the link is followed, and the device is still refused.
    docs, failures = ingest(root / "zero", "/dev/zero")
    assert docs == {}
    assert failures == {str(root / "zero"): "not a regular file (character device); skipped",
                        "/dev/zero": "not a regular file (character device); skipped"}


def test_fifo_is_skipped_without_blocking(root: Path) -> None:
    os.mkfifo(root / "pipe")
    (root / "sub").mkdir()
    os.mkfifo(root / "sub" / "pipe")
    (root / "sub" / "fine.md").write_text("# fine")

    docs, failures = ingest(root)
    assert set(docs) == {str(root / "good.txt"), str(root / "sub" / "fine.md")}
    assert failures == {str(root / "pipe"): "not a regular file (FIFO); skipped",
                        str(root / "sub" / "pipe"): "not a regular file (FIFO); skipped"}

    docs, failures = ingest(root / "pipe")  # named directly: still not opened for a blocking read
    assert failures == {str(root / "pipe"): "not a regular file (FIFO); skipped"}


def test_followed_symlinks_stay_inside_the_root(root: Path, secret: Path) -> None:
    (root / "docs").mkdir()
    (root / "docs" / "manual.md").write_text("# manual")
    (root / "alias.txt").symlink_to("good.txt")
    (root / "docs-link").symlink_to("docs", target_is_directory=True)
    (root / "passwd").symlink_to(secret)
    (root / "outside-dir").symlink_to(secret.parent, target_is_directory=True)
    (root / "dangling").symlink_to(root / "nowhere")

    docs, failures = ingest(root, follow_symlinks=True)
    # Followed links are read under their target's real path: alias.txt is good.txt again.
    assert docs == {str(root / "good.txt"): b"a good file", str(root / "docs" / "manual.md"): b"# manual"}
    assert set(failures) == {str(root / "passwd"), str(root / "outside-dir"), str(root / "dangling")}
    assert failures[str(root / "passwd")] == f"symlink leads outside {root} (to {secret}); not followed"
    assert "outside" in failures[str(root / "outside-dir")]
    assert "dangling" in failures[str(root / "dangling")]
    assert not any(b"root:x:0" in data for data in docs.values())


def test_directory_symlink_loops_are_walked_once(root: Path) -> None:
    (root / "sub").mkdir()
    (root / "sub" / "deep.txt").write_text("deep")
    (root / "sub" / "up").symlink_to("..", target_is_directory=True)
    (root / "sub" / "self").symlink_to(".", target_is_directory=True)
    (root / "a-second-name").symlink_to("sub", target_is_directory=True)  # not a loop: walked once

    docs, failures = ingest(root, follow_symlinks=True)
    assert sorted(docs) == [str(root / "good.txt"), str(root / "sub" / "deep.txt")]
    assert failures == {
        str(root / "sub" / "up"): f"symlink loops back to {root}, already walked; not followed",
        str(root / "sub" / "self"): f"symlink loops back to {root / 'sub'}, already walked; not followed",
    }


def test_entries_vanishing_between_listing_and_reading(root: Path) -> None:
    (root / "a.txt").write_text("first")
    (root / "b.txt").write_text("gone before it is read")
    (root / "sub").mkdir()
    (root / "sub" / "c.txt").write_text("gone with its folder")
    (root / "z.txt").write_text("last")

    items = iter_sources([str(root)], SourceOptions(tenant="t"))
    first = next(items)  # the root is listed now; its entries are looked at one by one
    assert isinstance(first, SourceDocument) and first.source_uri == str(root / "a.txt")
    (root / "b.txt").unlink()
    seen = [next(items) for _ in range(3)]  # b.txt, good.txt, z.txt: "sub" is queued by now
    shutil.rmtree(root / "sub")
    docs, failures = collect(iter([*seen, *items]))

    assert sorted(docs) == [str(root / "good.txt"), str(root / "z.txt")]
    assert failures == {str(root / "b.txt"): "vanished before it could be read",
                        str(root / "sub"): "cannot list directory: No such file or directory"}


def test_a_folder_vanishing_before_it_is_looked_at(root: Path) -> None:
    (root / "a.txt").write_text("first")
    (root / "sub").mkdir()

    items = iter_sources([str(root)], SourceOptions(tenant="t"))
    next(items)
    (root / "sub").rmdir()
    docs, failures = collect(items)
    assert list(docs) == [str(root / "good.txt")]
    assert failures == {str(root / "sub"): "vanished before it could be read"}


def test_folder_swapped_for_a_symlink_after_listing_is_not_read_through(root: Path, secret: Path) -> None:
    (root / "sub").mkdir()
    (root / "sub" / "0.txt").write_text("listed")
    (root / "sub" / "passwd").write_text("harmless")

    items = iter_sources([str(root)], SourceOptions(tenant="t"))
    assert [next(items).source_uri for _ in range(2)] == [str(root / "good.txt"), str(root / "sub" / "0.txt")]
    (root / "sub").rename(root / "sub-old")
    (root / "sub").symlink_to(secret.parent, target_is_directory=True)  # sub/passwd is now the secret

    docs, failures = collect(items)
    assert docs == {}
    assert "no longer inside" in failures[str(root / "sub" / "passwd")]


def test_permission_errors_are_per_file(root: Path) -> None:
    (root / "locked.txt").write_text("no read permission")
    (root / "locked-dir").mkdir()
    (root / "locked-dir" / "inner.txt").write_text("inside a folder that cannot be listed")
    (root / "locked.txt").chmod(0)
    (root / "locked-dir").chmod(0)
    try:
        docs, failures = ingest(root)
    finally:
        (root / "locked-dir").chmod(0o755)
    if AS_ROOT:  # root reads through permissions: both come through, and nothing else fails
        assert set(docs) == {str(root / n) for n in ("good.txt", "locked.txt", "locked-dir/inner.txt")}
        assert failures == {}
    else:
        assert list(docs) == [str(root / "good.txt")]
        assert failures == {str(root / "locked.txt"): "cannot read: Permission denied",
                            str(root / "locked-dir"): "cannot list directory: Permission denied"}


def test_oversize_files_are_refused_and_stat_size_is_not_trusted(root: Path) -> None:
    (root / "big.txt").write_bytes(b"x" * 12)
    (root / "fits.txt").write_bytes(b"y" * 11)  # as long as good.txt

    docs, failures = ingest(root, max_bytes=11)
    assert set(docs) == {str(root / "good.txt"), str(root / "fits.txt")}
    assert failures == {str(root / "big.txt"): "12 bytes exceeds the limit of 11"}

    # /proc files are regular and stat as 0 bytes: only the bounded read sees the size.
    docs, failures = ingest("/proc/self/status", max_bytes=64)
    assert failures == {"/proc/self/status": "grew past the limit of 64 bytes while being read"}
    docs, failures = ingest("/proc/self/status")
    assert failures == {} and b"VmSize" in next(iter(docs.values()))


def test_a_symlink_named_on_the_command_line_is_followed(root: Path, secret: Path) -> None:
    (root.parent / "named-link").symlink_to(secret)

    docs, failures = ingest(root.parent / "named-link")
    assert failures == {} and docs == {str(secret): secret.read_bytes()}
