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

The opposite problem costs time: glibc serves each allocation above its mmap threshold (at most
32 MiB when left to itself) with a fresh ``mmap`` and unmaps it on ``free``. A Whisper forward
allocates and frees tensors of 74-147 MB on every layer, so the kernel zero-fills every page of each
one again (144,000-280,000 minor faults and 0.3-0.7 s of system time per 8-window tiny.en forward
on a 2-core CPU). :func:`reusing_freed_blocks` raises the thresholds while a loop of model forwards
runs (Whisper pads every clip to a 30 s window, so each forward makes the same tensors), and hands
the free pages back when the outermost such block ends. What the next forward reuses is the freed
region as a whole, not each tensor's own block: torch asks for 64-byte aligned memory, which glibc
2.36 serves from a block a little larger than the tensor, so a freed tensor's block never fits the
next tensor of its size (measured: a 64 MiB ``torch.ones`` made and dropped three times grew the heap
by 64 MiB each time, where ``np.ones`` faulted no pages), while neighbours freed together merge into room for it.
Loops over SAE codes therefore run inside :func:`mapping_large_blocks`: there each chunk's buffers
are freed while small blocks that live on (the code memo's) are made, which would split the freed
region, so that no later chunk fits and the heap grows chunk by chunk (docs/performance.md).
Neither changes a result: they only decide where freed memory waits.
Buffers that live on between forwards while freed blocks are kept (the unchanged-tail memo of
:mod:`audiosaebench.models.unedited_frames_memo`) take their own anonymous mappings
(:func:`anonymous_mapping`), so they split no freed region; :class:`HeapGuard` does not count them
as the heap's growth.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import mmap
import os
import weakref
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
REUSE_BYTES = 1 << 30  # while forwards run: nothing below 1 GiB is mapped or trimmed on its own
# after: glibc's dynamic mmap threshold's ceiling on 64-bit, and the trim threshold it pairs with
# it (twice that). Once mallopt has set a threshold glibc no longer adjusts it, so these stand in.
MAPPED_BYTES, TRIM_BYTES = 32 << 20, 64 << 20


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        fn = ctypes.CDLL(None).malloc_trim  # the C library this process runs on
    except (AttributeError, OSError, TypeError):  # TypeError: Windows cannot open "None"
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


@functools.cache
def _mallopt() -> Callable[[int, int], int] | None:
    try:
        fn = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, TypeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def resident_mb() -> float | None:
    """This process's resident size in MB (Linux), else None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return None


_APART = [0]  # bytes of the live mappings made by anonymous_mapping()


def anonymous_mapping(nbytes: int) -> mmap.mmap:
    """A zeroed anonymous mapping of ``nbytes`` (at least one byte), outside the C library's heap, for a
    buffer that lives on between model forwards (``torch.frombuffer`` keeps it alive while any view
    of it is); :class:`HeapGuard` leaves its pages out of the heap's growth until it is freed."""
    nbytes = max(1, int(nbytes))
    mapping = mmap.mmap(-1, nbytes)
    _APART[0] += nbytes
    weakref.finalize(mapping, _unmapped, nbytes)
    return mapping


def _unmapped(nbytes: int) -> None:
    _APART[0] -= nbytes


def _heap_mb() -> float | None:
    """The resident size less the live mappings of :func:`anonymous_mapping` (MB), else None."""
    now = resident_mb()
    return None if now is None else now - _APART[0] / 2**20


def release_freed_memory() -> bool:
    """Return the heap's free pages to the operating system; False where that is not possible."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


class HeapGuard:
    """Trim the heap whenever the resident size (less the live mappings of :func:`anonymous_mapping`)
    has grown by ``slack_mb`` since the last trim (or since the guard was made), so freed-but-kept
    memory stays within about ``slack_mb``.

    With ``settle``, the baseline is the resident size at the first :meth:`check` (after the loop's
    first step) and never drops below it: inside :func:`reusing_freed_blocks` the blocks one step
    frees and the next reuses are the loop's working set, and trimming them would only make every
    step fault its pages in again."""

    def __init__(self, slack_mb: float = 256.0, settle: bool = False):
        self.slack_mb = slack_mb
        self.baseline = _heap_mb()
        self.floor: float | None = None
        self.settle = settle
        self.trims = 0

    def check(self) -> None:
        if self.baseline is None or _malloc_trim() is None:
            return
        now = _heap_mb()
        if now is None:
            return
        if self.settle and self.floor is None:
            self.baseline = self.floor = now
            return
        if now < self.baseline + self.slack_mb:
            return
        release_freed_memory()
        self.trims += 1
        self.baseline = max(_heap_mb() or now, self.floor or 0.0)


def _user_tuned_malloc() -> bool:
    """The user set glibc's thresholds for the whole process (docs/performance.md): left alone."""
    return any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")) or (
        "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""))


class _Thresholds:
    """Which thresholds hold now: reuse while some reusing block is open and no mapping block is
    (the counts make the answer independent of the order in which blocks close: a generator that is
    dropped half-way closes its block late)."""

    def __init__(self) -> None:
        self.reusing = 0
        self.mapping = 0
        self.applied = False  # the reuse thresholds are set
        self.guard: HeapGuard | None = None  # the outermost reusing block's: see checkpoint()

    def enabled(self) -> bool:
        return (os.environ.get("AUDIOSAEBENCH_REUSE_FREED_BLOCKS", "1") != "0" and not _user_tuned_malloc()
                and _mallopt() is not None)

    def apply(self) -> None:
        want = self.reusing > 0 and self.mapping == 0
        if want == self.applied or (want and not self.enabled()):
            return
        fn = _mallopt()  # not None: enabled() said so before the reuse thresholds were first set
        assert fn is not None
        mmap_bytes, trim_bytes = (REUSE_BYTES, REUSE_BYTES) if want else (MAPPED_BYTES, TRIM_BYTES)
        if not (fn(_M_MMAP_THRESHOLD, mmap_bytes) and fn(_M_TRIM_THRESHOLD, trim_bytes)):
            log.debug("mallopt refused the heap thresholds; left as they were")
        self.applied = want


_STATE = _Thresholds()


@contextlib.contextmanager
def reusing_freed_blocks() -> Iterator[None]:
    """Within the block, freed large blocks stay in the heap, where the next forward's tensors reuse
    their pages; when the outermost block ends, the free pages go back to the operating system. For
    loops of model forwards. ``AUDIOSAEBENCH_REUSE_FREED_BLOCKS=0`` turns it off; glibc thresholds set in the
    environment are left alone."""
    _STATE.reusing += 1
    if _STATE.reusing == 1:
        _STATE.guard = HeapGuard(settle=True)
    _STATE.apply()
    try:
        yield
    finally:
        _STATE.reusing -= 1
        _STATE.apply()
        if not _STATE.reusing:
            _STATE.guard = None
            if _STATE.enabled():
                release_freed_memory()


def checkpoint() -> None:
    """For loops whose steps allocate tensors of ever new sizes inside a reusing block (decoding,
    where each step's key-value caches are one token longer): freed blocks that no later step fits
    would pile up, so once the resident size has grown by the guard's slack past what it was at
    the first checkpoint, the free pages go back (:class:`HeapGuard` with ``settle``)."""
    if _STATE.applied and _STATE.guard is not None:
        _STATE.guard.check()


@contextlib.contextmanager
def mapping_large_blocks() -> Iterator[None]:
    """Within the block, large allocations get their own mapping again (inside a reusing block)."""
    _STATE.mapping += 1
    _STATE.apply()
    try:
        yield
    finally:
        _STATE.mapping -= 1
        _STATE.apply()
