"""Freed heap handed back to the operating system between documents.

CPython frees a document's objects once it is written, but glibc keeps the freed pages in
its arenas (each thread that parsed results, chunked or redacted gets one), so without this
a long ingest's resident memory creeps up with every large document it has held: on the
reference corpus ~40 MB over 144 files, which ``malloc_trim`` returns. It is glibc's
call; on other C libraries (musl, macOS) there is nothing to call and nothing is done.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
