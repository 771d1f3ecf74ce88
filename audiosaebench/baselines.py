"""Reference "SAEs" every leaderboard row is read against, written as SAELens v6 folders.

* ``identity``: the neuron basis, ``d_sae = 2 d_in``, ``W_enc = [I, -I]``, ``W_dec = [I; -I]``,
  standard ReLU: ``relu(x) - relu(-x) = x`` exactly, so fidelity is at its ceiling.
* ``random``: a TopK SAE with Gaussian encoder, unit-norm random decoder rows, zero biases
  (seeded); the floor reference.

PCA baselines need activations and arrive with the metric tasks (issue 4).
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


def write_baselines(model_ref: str, hook: str, out: str | Path, *, d_sae: int | None = None, k: int = 32,
                    seed: int = 0, overwrite: bool = False) -> list[Path]:
    from audiosaebench.models.loading import load_adapter

    ad = load_adapter(model_ref)
    hp = ad.resolve(hook).name
    d_in = ad.hidden_size
    model_id = ad.identity.model_id if not Path(model_ref).exists() else model_ref
    out = Path(out)
    written = []
    for sae in (identity_sae(d_in, model_id, hp), random_sae(d_in, d_sae or 8 * d_in, k, model_id, hp, seed)):
        written.append(write_saelens_v6(sae, out / f"{sae.info.id}-{hp.replace('.', '_')}", overwrite=overwrite))
    return written
