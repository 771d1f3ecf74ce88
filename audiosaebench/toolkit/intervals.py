"""Percentile intervals of bootstrap samples (every task reports 95% intervals this way)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LEVEL = 95.0


def percentile_interval(samples: Sequence[float] | np.ndarray, level: float = LEVEL) -> list[float]:
    """``[low, high]``: the (100 - level) / 2 and (100 + level) / 2 percentiles of ``samples``
    (numpy's linear interpolation)."""
    tail = (100.0 - level) / 2
    return [float(np.percentile(samples, tail)), float(np.percentile(samples, 100.0 - tail))]


def bootstrap_mean_interval(values: np.ndarray, idx: np.ndarray, level: float = LEVEL) -> list[float]:
    """The percentile interval of the mean of ``values`` over each row of resample indices ``idx``
    ([resamples, items])."""
    return percentile_interval(np.asarray(values)[idx].mean(1), level)
