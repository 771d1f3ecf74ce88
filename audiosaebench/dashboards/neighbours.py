"""Decoder geometry of a feature: its nearest features by decoder cosine and the model neurons its
decoder row weighs most (SAEDashboard's neuron alignment)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


@torch.no_grad()
def nearest_by_decoder(sae: Any, features: np.ndarray, n: int = 5, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """[len(features), n] indices and cosines of each feature's ``n`` nearest other features by the
    cosine of unit decoder rows (all ``d_sae`` candidates), in blocks of ``block`` features."""
    dirs = sae.decoder_directions().float()
    n = min(n, sae.d_sae - 1)
    idx, cos = np.zeros((len(features), max(n, 0)), np.int64), np.zeros((len(features), max(n, 0)), np.float32)
    if n <= 0:
        return idx, cos
    for lo in range(0, len(features), block):
        f = torch.from_numpy(features[lo : lo + block])
        sims = dirs[f] @ dirs.T
        sims[torch.arange(len(f)), f] = float("-inf")
        top = sims.topk(n, dim=1)
        idx[lo : lo + len(f)], cos[lo : lo + len(f)] = top.indices.numpy(), top.values.numpy()
    return idx, cos


@torch.no_grad()
def neuron_alignment(sae: Any, features: np.ndarray, n: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``n`` model dimensions with the largest absolute decoder weight of each feature: indices,
    weights, and weights over the row's L1 norm."""
    w = sae.W_dec[torch.from_numpy(features)].float()
    top = w.abs().topk(min(n, w.shape[1]), dim=1)
    values = w.gather(1, top.indices)
    l1 = values / w.abs().sum(1, keepdim=True).clamp_min(1e-12)
    return top.indices.numpy(), values.numpy(), l1.numpy()
