"""audiosaebench.heap: freed heap pages go back to the OS, and the guard trims only past its slack."""

from __future__ import annotations

import numpy as np
import pytest

from audiosaebench import heap


@pytest.mark.skipif(heap._malloc_trim() is None or heap.resident_mb() is None, reason="needs glibc and /proc")
def test_release_returns_freed_pages_in_the_middle_of_the_heap():
    # 64 KiB blocks sit in the heap (below glibc's mmap threshold); freeing every other one leaves
    # ~100 MB of free pages between live blocks, which free() alone never hands back
    blocks = [np.ones(16384, dtype=np.float32) for _ in range(3200)]
    del blocks[::2]
    before = heap.resident_mb()
    assert heap.release_freed_memory()
    after = heap.resident_mb()
    assert before - after > 50, (before, after)
    assert all(float(b[-1]) == 1.0 for b in blocks)  # what is still held is untouched


def test_guard_trims_only_after_growing_by_its_slack(monkeypatch):
    sizes = iter([1000.0, 1100.0, 1300.0, 900.0, 1000.0, 1200.0, 1150.0])
    trims = []
    monkeypatch.setattr(heap, "resident_mb", lambda: next(sizes))
    monkeypatch.setattr(heap, "_malloc_trim", lambda: trims.append)
    guard = heap.HeapGuard(slack_mb=250)  # baseline 1000
    guard.check()  # 1100: within the slack
    assert trims == []
    guard.check()  # 1300: past it; trimmed, then the baseline is re-read (900)
    assert trims == [0] and guard.baseline == 900.0
    guard.check()  # 1000
    guard.check()  # 1200: past 900 + 250
    assert trims == [0, 0] and guard.trims == 2


def test_guard_is_a_no_op_without_proc_or_malloc_trim(monkeypatch):
    monkeypatch.setattr(heap, "resident_mb", lambda: None)
    guard = heap.HeapGuard()
    guard.check()
    assert guard.trims == 0
    sizes = iter([1000.0, 5000.0, 9000.0])  # growing far past the slack, but no malloc_trim
    monkeypatch.setattr(heap, "resident_mb", lambda: next(sizes))
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    guard = heap.HeapGuard(slack_mb=250)
    guard.check()
    guard.check()
    assert guard.trims == 0 and not heap.release_freed_memory()
