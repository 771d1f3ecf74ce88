"""The two passes over the test splits' codes that every feature's statistics come from.

1. per feature: frames active per split, and the best windows (:class:`StreamingTopK`, twice as many
   as the examples asked for, so that near duplicates can be dropped);
2. with each feature's largest value known: its histogram, interval shares and interval samples
   (:class:`audiosaebench.dashboards.stats.SecondPass`).

Codes come from :func:`audiosaebench.codes.iter_codes` (inside ``runtime.session()`` the second and
third pass replay the codes of the first from the code memo instead of encoding again).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from audiosaebench.codes import iter_codes
from audiosaebench.dashboards.examples import Layout
from audiosaebench.dashboards.stats import SecondPass
from audiosaebench.dashboards.topk import StreamingTopK
from audiosaebench.dashboards.windows import WindowMaxer


def _chunks(sae: Any, layout: Layout, features: np.ndarray) -> Iterator[tuple[int, int, torch.Tensor, Any]]:
    """(split, first row, codes of the selected features, window maxima the chunk completes) for each chunk."""
    every = len(features) == sae.d_sae and bool((features == np.arange(sae.d_sae)).all())
    cols = torch.from_numpy(features)
    for s, sp in enumerate(layout.splits):
        maxer = WindowMaxer(*layout.windows[s], layout.width)
        for ch in iter_codes(sae, sp.acts):
            z = ch.z if every else ch.z.index_select(1, cols)
            yield s, ch.start, z, maxer.feed(ch.start, z)


def _global(layout: Layout, s: int, got: tuple[int, int, torch.Tensor, torch.Tensor]):
    lo, hi, values, peaks = got
    ids = np.arange(lo, hi, dtype=np.int64) + int(layout.win_base[s])
    return ids, values, peaks + int(layout.row_base[s])


def first_pass(sae: Any, layout: Layout, features: np.ndarray, k: int) -> tuple[StreamingTopK, np.ndarray]:
    """The best ``k`` windows of each feature (values, window ids, global peak rows) and the number of
    active frames per (split, feature)."""
    best = StreamingTopK(k, len(features))
    active = torch.zeros((len(layout.splits), len(features)), dtype=torch.int64)
    for s, _, z, got in _chunks(sae, layout, features):
        active[s] += (z > 0).sum(0)
        if got is not None:
            ids, values, peaks = _global(layout, s, got)
            best.update(values, torch.from_numpy(ids), peaks)
    return best, active.numpy()


def second_pass(sae: Any, layout: Layout, features: np.ndarray, maxima: torch.Tensor, *, hist_bins: int, groups: int,
                per_group: int, seed: int) -> SecondPass:
    stats = SecondPass(features, maxima, hist_bins=hist_bins, groups=groups, per_group=per_group, seed=seed)
    for s, _, z, got in _chunks(sae, layout, features):
        stats.add_frames(z)
        if got is not None:
            ids, values, peaks = _global(layout, s, got)
            stats.add_windows(ids, values, peaks)
    return stats
