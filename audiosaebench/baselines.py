"""Reference "SAEs" every leaderboard row is read against, written as SAELens v6 folders.

* ``identity``: the neuron basis, ``d_sae = 2 d_in``, ``W_enc = [I, -I]``, ``W_dec = [I; -I]``,
  standard ReLU: ``relu(x) - relu(-x) = x`` exactly, so fidelity is at its ceiling.
* ``random``: a TopK SAE with Gaussian encoder, unit-norm random decoder rows, zero biases
  (seeded); the floor reference.

* ``pca``: the principal axes of the suite's train activations, ``d_sae = 2 d_in``,
  ``W_enc = [V, -V]``, ``W_dec = [V^T; -V^T]``, ``b_dec`` = the mean (subtracted on input): an exact
  reconstruction in a data-aligned basis, so fidelity is at its ceiling and the interpretability
  tasks see the PCA directions.
"""

from __future__ import annotations

from pathlib import Path

import torch

from audiosaebench.sae.loading import weights_sha256
from audiosaebench.sae.sae import SAE, SAEInfo
from audiosaebench.sae.writing import write_saelens_v6


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


def write_baselines(model_ref: str, hook: str, out: str | Path, *, d_sae: int | None = None, k: int = 32,
                    seed: int = 0, overwrite: bool = False, suite: str | None = None,
                    data_dir: str | Path | None = None) -> list[Path]:
    """Write identity, random and (with a suite) PCA baselines as SAELens v6 folders."""
    from audiosaebench.models.loading import load_adapter

    ad = load_adapter(model_ref)
    hp = ad.resolve(hook).name
    d_in = ad.hidden_size
    model_id = ad.identity.model_id if not Path(model_ref).exists() else model_ref
    out = Path(out)
    written = []
    saes = [identity_sae(d_in, model_id, hp), random_sae(d_in, d_sae or 8 * d_in, k, model_id, hp, seed)]
    if suite is not None:
        import numpy as np

        from audiosaebench.activations.extract import get_activations
        from audiosaebench.data.suites import load_suite
        from audiosaebench.training import TRAIN_ROLES

        s = load_suite(suite, data_dir)
        sets = [get_activations(ad, [hp], s.split(r))[hp] for r in TRAIN_ROLES if r in s.splits]
        saes.append(pca_sae(np.concatenate([a.rows(0, a.n_frames) for a in sets]), model_id, hp))
    for sae in saes:
        written.append(write_saelens_v6(sae, out / f"{sae.info.id}-{hp.replace('.', '_')}", overwrite=overwrite))
    return written
