"""Hand heap memory that the process has freed back to the operating system.

Models whose inputs vary in length (HuBERT, wav2vec2 and WavLM batch only clips of equal length, so
nearly every batch has a new shape) allocate and free tensors of ever new sizes. glibc keeps the
freed blocks in its heap, where later allocations of other sizes seldom fit, so the resident size
grows with the number of clips although nothing is kept: 32 → 96 speech clips through random-init
hubert-base took the extraction's peak from 1.3 to 1.7 GB. ``malloc_trim(0)`` returns the free
pages; it only releases memory that is already free, so results cannot change. It has a cost (the
next allocations fault their pages in again), so :class:`HeapGuard` trims only once the resident
size has grown by ``slack_mb`` since the last trim. A no-op where the C library has no
``malloc_trim`` (musl, macOS, Windows) or there is no ``/proc/self/statm``.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        fn = ctypes.CDLL(None).malloc_trim  # the C library this process runs on
    except (AttributeError, OSError, TypeError):  # TypeError: Windows cannot open "None"
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def resident_mb() -> float | None:
    """This process's resident size in MB (Linux), else None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the operating system; False where that is not possible."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


class HeapGuard:
    """Trim the heap whenever the resident size has grown by ``slack_mb`` since the last trim (or
    since the guard was made), so freed-but-kept memory stays within about ``slack_mb``."""

    def __init__(self, slack_mb: float = 256.0):
        self.slack_mb = slack_mb
        self.baseline = resident_mb()
        self.trims = 0

    def check(self) -> None:
        if self.baseline is None or _malloc_trim() is None:
            return
        now = resident_mb()
        if now is None or now < self.baseline + self.slack_mb:
            return
        release_freed_memory()
        self.trims += 1
        self.baseline = resident_mb() or now
