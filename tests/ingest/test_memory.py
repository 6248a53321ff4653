"""Freed heap pages go back to the system between documents (``ingest.memory``)."""

from __future__ import annotations

import threading

import psutil

from ingest.memory import release_freed_memory


def test_freed_pages_inside_the_heap_are_returned() -> None:
    """Blocks freed between blocks still alive stay resident (glibc cannot shrink the heap
    past a live block) until the trim hands their pages back: the creep a long ingest saw."""
    kept: list[bytearray] = []
    me = psutil.Process()

    def fragment() -> None:  # in a thread, like the pipeline's workers: its own arena
        blocks = [bytearray(64 * 1024) for _ in range(3000)]  # ~190 MB, below the mmap threshold each
        kept.extend(blocks[::50])
        blocks.clear()

    thread = threading.Thread(target=fragment)
    thread.start()
    thread.join()
    before = me.memory_info().rss
    assert release_freed_memory() is True  # glibc (Linux CI)
    after = me.memory_info().rss
    assert before - after > 100 * 1024 * 1024, (before >> 20, after >> 20)
    assert len(kept) == 60
