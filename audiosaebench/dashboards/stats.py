"""The second pass over the codes, once each feature's largest activation is known: its activation
histogram, the share of frames in each of SAEDashboard's equal-width activation intervals, and a
seeded sample of windows from each interval.

The intervals split ``(0, max]`` into ``groups`` equal parts (SAEDashboard's quantile groups:
``linspace(0, max, groups + 1)``); a window belongs to the interval its largest activation falls in.
Within an interval the sample is the ``per_group`` windows with the smallest key, a hash of (seed,
window id, feature): the same windows whatever the chunking, the same files on every run.
"""

from __future__ import annotations

import numpy as np
import torch

from audiosaebench.dashboards.topk import StreamingTopK


def hash_keys(ids: np.ndarray, features: np.ndarray, seed: int) -> np.ndarray:
    """[len(ids), len(features)] keys in [0, 1): a fixed mix (splitmix64 rounds) of seed, id and feature."""
    with np.errstate(over="ignore"):
        x = (ids.astype(np.uint64)[:, None] * np.uint64(0x9E3779B97F4A7C15)
             ^ (features.astype(np.uint64)[None, :] + np.uint64(seed & 0xFFFFFFFF) * np.uint64(1 << 32))
             * np.uint64(0xC2B2AE3D27D4EB4F)) + np.uint64(0x632BE59BD9B4E019)
        for mult in (0xBF58476D1CE4E5B9, 0x94D049BB133111EB):
            x = (x ^ (x >> np.uint64(31))) * np.uint64(mult)
        x ^= x >> np.uint64(29)
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def bins_of(values: torch.Tensor, maxima: torch.Tensor, n: int) -> torch.Tensor:
    """The equal-width bin of (0, max] that each value falls in (0 .. n-1), -1 for values <= 0."""
    scale = torch.where(maxima > 0, maxima, torch.ones_like(maxima))
    b = torch.clamp(torch.ceil(values / scale * n).to(torch.int64) - 1, 0, n - 1)
    return torch.where((values > 0) & (maxima > 0), b, torch.full_like(b, -1))


class SecondPass:
    """Histograms, interval shares and interval samples of ``features`` (their largest values ``maxima``)."""

    def __init__(self, features: np.ndarray, maxima: torch.Tensor, *, hist_bins: int, groups: int, per_group: int,
                 seed: int):
        d = len(features)
        self.features, self.maxima, self.seed = features, maxima.to(torch.float32), seed
        self.hist_bins, self.groups = hist_bins, groups
        self.hist = torch.zeros(d * hist_bins, dtype=torch.int64)
        self.in_group = torch.zeros(d * groups, dtype=torch.int64)
        self.samples = [StreamingTopK(per_group, d) for _ in range(groups)] if per_group > 0 else []

    def add_frames(self, z: torch.Tensor) -> None:
        """A chunk of codes of the selected features, [rows, len(features)]."""
        r, c = torch.nonzero(z, as_tuple=True)
        v, m = z[r, c], self.maxima[c]
        self.hist += torch.bincount(c * self.hist_bins + bins_of(v, m, self.hist_bins), minlength=self.hist.numel())
        self.in_group += torch.bincount(c * self.groups + bins_of(v, m, self.groups), minlength=self.in_group.numel())

    def add_windows(self, ids: np.ndarray, values: torch.Tensor, peaks: torch.Tensor) -> None:
        if not self.samples or not len(ids):
            return
        group = bins_of(values, self.maxima[None, :], self.groups)
        score = torch.from_numpy(-hash_keys(ids, self.features, self.seed)).to(torch.float32)  # smallest key first
        for g, s in enumerate(self.samples):
            s.update(torch.where(group == g, score, float("-inf")), torch.from_numpy(ids), peaks)

    def histogram(self) -> np.ndarray:
        return self.hist.view(-1, self.hist_bins).numpy()

    def group_counts(self) -> np.ndarray:
        return self.in_group.view(-1, self.groups).numpy()
