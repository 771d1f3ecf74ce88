"""Planted SAEs built from the labels: the known-answer references of the metric tasks."""

from __future__ import annotations

import numpy as np
import torch

from audiosaebench.data.phones import ARPABET
from audiosaebench.sae.loading import weights_sha256
from audiosaebench.sae.sae import SAE, SAEInfo


def planted_phone_sae(x: np.ndarray, y: np.ndarray, model_id: str, hook: str, pad_to: int | None = None) -> SAE:
    """One feature per phone: z_p = relu(w_p . x + b_p), gated at 0, where (w_p, b_p) is a logistic
    regression of "phone p vs every other speech frame" on the train activations."""
    from sklearn.linear_model import LogisticRegression

    d = x.shape[1]
    m = y >= 0
    xs, ys = x[m], y[m]
    mu, sd = xs.mean(0), xs.std(0) + 1e-6
    W, b = [], []
    for p in range(len(ARPABET)):
        t = (ys == p).astype(int)
        if t.sum() < 5:
            W.append(np.zeros(d))
            b.append(-1.0)
            continue
        clf = LogisticRegression(C=1.0, max_iter=500, class_weight="balanced").fit((xs - mu) / sd, t)
        w = clf.coef_[0] / sd
        W.append(w)
        b.append(float(clf.intercept_[0] - (w * mu).sum()))
    W_enc = torch.tensor(np.stack(W, 1), dtype=torch.float32)
    d_sae = W_enc.shape[1] if pad_to is None else pad_to
    if d_sae > W_enc.shape[1]:
        W_enc = torch.cat([W_enc, torch.zeros(d, d_sae - W_enc.shape[1])], 1)
    b_enc = torch.tensor(b + [-1.0] * (d_sae - len(b)), dtype=torch.float32)
    W_dec = W_enc.T / W_enc.T.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    params = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": torch.zeros(d), "threshold": torch.zeros(d_sae)}
    info = SAEInfo("jumprelu", d, d_sae, model_id=model_id, hook_point=hook, apply_b_dec_to_input=False,
                   source_format="planted", id="planted-phones")
    return SAE(info, params).with_info(sha256=weights_sha256(params, info))
