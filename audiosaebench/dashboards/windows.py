"""Windows: each clip's frames cut into consecutive windows of a fixed number of frames (a clip's
last window may be shorter); a window's value for a feature is the largest activation on its frames
and its peak is the frame where that value is. Examples are chosen among windows, so one loud
stretch of a clip gives one example, not one per frame."""

from __future__ import annotations

import numpy as np
import torch


def clip_windows(offsets: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(first row, end row) of every window of every clip, in row order, for clips whose frames are
    ``offsets[i]:offsets[i + 1]`` of an activation set."""
    lengths = np.diff(offsets)
    counts = -(-lengths // width)
    clip = np.repeat(np.arange(len(lengths)), counts)
    first = np.cumsum(counts) - counts
    starts = offsets[:-1][clip] + (np.arange(len(clip)) - first[clip]) * width
    ends = np.minimum(starts + width, offsets[1:][clip])
    return starts.astype(np.int64), ends.astype(np.int64)


class WindowMaxer:
    """Turns a stream of code chunks (consecutive rows) into per-window maxima.

    :meth:`feed` returns the windows the rows seen so far complete: (first window, end window,
    values [n, d], peak rows [n, d]); the rows of a window that runs into the next chunk wait for it."""

    def __init__(self, starts: np.ndarray, ends: np.ndarray, width: int):
        self.starts, self.ends, self.width = starts, ends, width
        self.next = 0
        self._buf: torch.Tensor | None = None
        self._buf_start = 0

    def feed(self, start: int, z: torch.Tensor) -> tuple[int, int, torch.Tensor, torch.Tensor] | None:
        if self._buf is not None:
            z, start = torch.cat([self._buf, z]), self._buf_start
        end = start + int(z.shape[0])
        lo, hi = self.next, int(np.searchsorted(self.ends, end, side="right"))
        out = (lo, hi, *self._maxima(z, start, lo, hi)) if hi > lo else None
        self.next = hi
        keep = int(self.starts[hi]) - start if hi < len(self.starts) else int(z.shape[0])
        self._buf, self._buf_start = (z[keep:], start + keep) if keep < int(z.shape[0]) else (None, 0)
        return out

    def _maxima(self, z: torch.Tensor, start: int, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = torch.from_numpy(self.starts[lo:hi] - start)
        lengths = torch.from_numpy(self.ends[lo:hi] - self.starts[lo:hi])
        step = torch.arange(self.width)
        idx = torch.where(step[None, :] < lengths[:, None], s[:, None] + step[None, :], int(z.shape[0]))
        padded = torch.cat([z, z.new_zeros((1, z.shape[1]))])  # codes are >= 0: a zero row never wins
        values, arg = padded[idx].max(dim=1)
        return values, arg + s[:, None] + start
