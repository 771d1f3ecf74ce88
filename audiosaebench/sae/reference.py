"""Reference "SAEs" that scores are read against (no training): identity, random and PCA.

* ``identity``: the neuron basis, ``d_sae = 2 d_in``, ``W_enc = [I, -I]``, ``W_dec = [I; -I]``,
  standard ReLU: ``relu(x) - relu(-x) = x`` exactly, so fidelity is at its ceiling.
* ``random``: a TopK SAE with Gaussian encoder, unit-norm random decoder rows, zero biases
  (seeded); the floor reference.
* ``pca``: the principal axes of the given activations, ``d_sae = 2 d_in``, ``W_enc = [V, -V]``,
  ``W_dec = [V^T; -V^T]``, ``b_dec`` = the mean (subtracted on input): an exact reconstruction in a
  data-aligned basis, so fidelity is at its ceiling and the interpretability tasks see the PCA
  directions.
"""

from __future__ import annotations

import torch

from audiosaebench.sae.loading import weights_sha256
from audiosaebench.sae.sae import SAE, SAEInfo


def identity_sae(d_in: int, model_id: str, hook: str) -> SAE:
    eye = torch.eye(d_in)
    params = {"W_enc": torch.cat([eye, -eye], 1), "b_enc": torch.zeros(2 * d_in),
              "W_dec": torch.cat([eye, -eye], 0), "b_dec": torch.zeros(d_in)}
    info = SAEInfo("standard", d_in, 2 * d_in, model_id=model_id, hook_point=hook, source_format="baseline",
                   id="baseline-identity", notes=("neuron basis: relu(x) - relu(-x) = x",))
    return SAE(info, params).with_info(sha256=weights_sha256(params, info))


def random_sae(d_in: int, d_sae: int, k: int, model_id: str, hook: str, seed: int = 0) -> SAE:
    g = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(d_sae, d_in, generator=g)
    w_dec = w_dec / w_dec.norm(dim=-1, keepdim=True)
    params = {"W_enc": torch.randn(d_in, d_sae, generator=g) / d_in**0.5, "b_enc": torch.zeros(d_sae),
              "W_dec": w_dec, "b_dec": torch.zeros(d_in)}
    info = SAEInfo("topk", d_in, d_sae, k=k, model_id=model_id, hook_point=hook, source_format="baseline",
                   id=f"baseline-random-{d_sae}-k{k}-s{seed}", notes=(f"random TopK, seed {seed}",))
    return SAE(info, params).with_info(sha256=weights_sha256(params, info))


def pca_sae(x, model_id: str, hook: str) -> SAE:
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    v = torch.tensor(vt.T, dtype=torch.float32)  # [d_in, d_in], columns = principal axes
    d_in = v.shape[0]
    params = {"W_enc": torch.cat([v, -v], 1), "b_enc": torch.zeros(2 * d_in),
              "W_dec": torch.cat([v.T, -v.T], 0), "b_dec": torch.tensor(mean, dtype=torch.float32)}
    info = SAEInfo("standard", d_in, 2 * d_in, model_id=model_id, hook_point=hook, source_format="baseline",
                   id="baseline-pca", notes=(f"PCA of {len(x)} train frames, +/- axes",))
    return SAE(info, params).with_info(sha256=weights_sha256(params, info))
