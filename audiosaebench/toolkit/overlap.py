"""How often features of two SAEs fire together: the Jaccard overlap of their active frames."""

from __future__ import annotations

import numpy as np


def max_chi(za, zb, exclude_self: bool = False, block: int = 1024) -> np.ndarray:
    """For each feature a: max over b of |both active| / |either active| (0 for dead a)."""
    ca, cb = np.asarray(za.sum(0)).ravel(), np.asarray(zb.sum(0)).ravel()
    out = np.zeros(za.shape[1])
    zbt = zb.tocsc()
    for s in range(0, za.shape[1], block):
        e = min(s + block, za.shape[1])
        inter = (za[:, s:e].T @ zbt).toarray()
        union = ca[s:e, None] + cb[None, :] - inter
        chi = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        if exclude_self:
            chi[np.arange(e - s), np.arange(s, e)] = 0.0
        out[s:e] = chi.max(1) if chi.shape[1] else 0.0
    return out
