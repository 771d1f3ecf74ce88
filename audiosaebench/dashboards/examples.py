"""A feature's examples: which windows (its top windows, then seeded samples from SAEDashboard's
activation intervals), the excerpt of audio around each peak, and the activation on every frame of
that excerpt (a third pass over the codes, for a block of features at a time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from audiosaebench.codes import iter_codes
from audiosaebench.dashboards.splits import SplitData
from audiosaebench.dashboards.windows import clip_windows

SAMPLE_RATE = 16_000


@dataclass
class Layout:
    """The test splits end to end: global rows and window ids, and the way back to (split, clip, frame)."""

    splits: list[SplitData]
    adapter: Any  # the model adapter: its frame centres
    width: int  # frames per window
    row_base: np.ndarray  # [splits + 1]: first global row of each split
    win_base: np.ndarray  # [splits + 1]: first global window id of each split
    windows: list[tuple[np.ndarray, np.ndarray]]  # per split: (first row, end row) of its windows
    _centres: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, splits: list[SplitData], adapter: Any, width: int) -> Layout:
        wins = [clip_windows(s.offsets, width) for s in splits]
        rows = np.cumsum([0] + [s.acts.n_frames for s in splits])
        return cls(splits, adapter, width, rows, np.cumsum([0] + [len(w[0]) for w in wins]), wins)

    def centres(self, n_frames: int) -> np.ndarray:
        """The centre (s) of each of a clip's ``n_frames`` frames (the adapter's, kept per length)."""
        if n_frames not in self._centres:
            self._centres[n_frames] = np.asarray(self.adapter.frame_centres_s(n_frames), dtype=np.float64)
        return self._centres[n_frames]

    def locate(self, row: int) -> tuple[int, int, int]:
        """(split, clip, frame within the clip) of a global row."""
        s = int(np.searchsorted(self.row_base, row, side="right") - 1)
        local = row - int(self.row_base[s])
        off = self.splits[s].offsets
        c = int(np.searchsorted(off, local, side="right") - 1)
        return s, c, local - int(off[c])


@dataclass(frozen=True)
class Span:
    """An excerpt: frames ``first:end`` of clip ``clip`` of split ``split`` and its audio samples."""

    split: int
    clip: int
    first: int
    end: int
    start_sample: int
    end_sample: int

    def name(self, role: str) -> str:
        """A file name of safe characters only (clip ids are never used in paths)."""
        return f"{role}-{self.clip:05d}-{self.start_sample:09d}-{self.end_sample:09d}"


def choose(top: tuple[np.ndarray, np.ndarray], groups: list[tuple[np.ndarray, np.ndarray]], layout: Layout, *,
           n_top: int, per_group: int, radius: int) -> list[tuple[int, int]]:
    """(group, peak row) of a feature's examples: group -1 for its ``n_top`` best windows (values
    descending), then each interval from the highest down (``groups``: sampled (score, peak row), best
    score first). A window whose peak lies within ``radius`` frames of an example already chosen in the
    same clip is skipped, so one stretch of audio is shown once."""
    kept: list[tuple[int, int, int]] = []
    out: list[tuple[int, int]] = []

    def take(row: int, group: int) -> bool:
        s, c, f = layout.locate(row)
        if any(ks == s and kc == c and abs(kf - f) < radius for ks, kc, kf in kept):
            return False
        kept.append((s, c, f))
        out.append((group, row))
        return True

    values, rows = top
    n = 0
    for v, r in zip(values.tolist(), rows.tolist(), strict=True):
        if n >= n_top or v <= 0:
            break
        n += take(int(r), -1)
    for g in range(len(groups) - 1, -1, -1):
        scores, rows_g = groups[g]
        n = 0
        for sc, r in zip(scores.tolist(), rows_g.tolist(), strict=True):
            if n >= per_group or not np.isfinite(sc):
                break
            n += take(int(r), g)
    return out


def span_for(layout: Layout, row: int, *, half_s: float, grid_s: float) -> tuple[Span, float, int]:
    """The excerpt around the peak at global ``row``: ``half_s`` either side of the peak's frame centre,
    rounded to ``grid_s`` so that features peaking at the same place share a file, cut to the clip.
    Also the peak's time and its position among the excerpt's frames."""
    s, c, f = layout.locate(row)
    off = layout.splits[s].offsets
    n = int(off[c + 1] - off[c])
    centres = layout.centres(n)
    peak_s = float(centres[f])
    n_samples = int(layout.splits[s].manifest.clips[c].n_samples)
    mid = round(peak_s / grid_s) * grid_s
    a = max(0, int(round((mid - half_s) * SAMPLE_RATE)))
    b = min(n_samples, int(round((mid + half_s) * SAMPLE_RATE)))
    first = int(np.searchsorted(centres, a / SAMPLE_RATE, side="left"))
    end = max(first + 1, int(np.searchsorted(centres, b / SAMPLE_RATE, side="left")))
    return Span(s, c, first, end, a, b), peak_s, f - first


def excerpt_values(sae: Any, layout: Layout, requests: list[tuple[Span, int]]) -> list[np.ndarray]:
    """The activation of feature ``j`` on every frame of each (span, j), read from the codes split by split."""
    lengths = np.array([sp.end - sp.first for sp, _ in requests], dtype=np.int64)
    starts = np.cumsum(lengths) - lengths
    rows = np.repeat([int(layout.row_base[sp.split] + layout.splits[sp.split].offsets[sp.clip] + sp.first)
                      for sp, _ in requests], lengths) + (np.arange(int(lengths.sum())) - np.repeat(starts, lengths))
    feats = np.repeat([j for _, j in requests], lengths)
    order = np.argsort(rows, kind="stable")
    sorted_rows = rows[order]
    out = np.zeros(len(rows), dtype=np.float32)
    for s, sp in enumerate(layout.splits):
        base = int(layout.row_base[s])
        for ch in iter_codes(sae, sp.acts):
            lo, hi = np.searchsorted(sorted_rows, [base + ch.start, base + ch.start + ch.z.shape[0]])
            if hi > lo:
                pick = order[lo:hi]
                r = torch.from_numpy(rows[pick] - base - ch.start)
                out[pick] = ch.z[r, torch.from_numpy(feats[pick])].float().numpy()
    return [out[a : a + n] for a, n in zip(starts.tolist(), lengths.tolist(), strict=True)]
