"""Numbers as results hold them: plain floats, never NaN or Inf."""

from __future__ import annotations

import math


def finite_or_none(value: float | None) -> float | None:
    """A plain float, or None for NaN, Inf or None (a result never holds NaN: it says why instead)."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None
