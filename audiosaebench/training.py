"""Reference TopK SAEs for the mini suite (``audiosaebench train-reference``).

Why not SAELens's trainer: it needs transformer-lens and a language-model runner config; for
audio activations it would be used only as an optimiser loop over an activation iterator, which is
what this ~80-line recipe is. The output is a SAELens v6 folder (``SAE.load_from_disk`` reads it),
plus ``training.json`` with the recipe, data hashes and final training metrics.

Recipe (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"):

* data: valid frames of every train split of the suite at the hook (speech, commands, non-speech),
  shuffled with the seed;
* TopK with ``k`` (default 32), ``d_sae`` (default 4 x d_in); ``b_dec`` initialised to the data
  mean; decoder rows random unit vectors; ``W_enc = W_dec^T``; ``b_enc = 0``;
* loss = MSE + ``aux_coef`` x AuxK loss (the top ``d_in / 2`` dead latents reconstruct the residual;
  a latent is dead after ``dead_steps`` steps without firing);
* Adam (lr 4e-4, betas 0.9/0.999), batch 1024 frames, ``steps`` steps, decoder rows renormalised
  to unit norm after every step (so ``rescale_acts_by_decoder_norm`` is unnecessary);
* seeds differ only in the seed (initialisation and data order), which the stability task relies on.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from audiosaebench.sae.loading import weights_sha256
from audiosaebench.sae.sae import SAE, SAEInfo
from audiosaebench.sae.writing import write_saelens_v6

log = logging.getLogger(__name__)

TRAIN_ROLES = ("speech_train", "commands_train", "nonspeech_train")


@dataclass(frozen=True)
class Recipe:
    k: int = 32
    expansion: int = 4
    steps: int = 1500
    batch_size: int = 1024
    lr: float = 4e-4
    aux_coef: float = 1 / 32
    dead_steps: int = 200
    seed: int = 0


def _init_params(data: torch.Tensor, d_sae: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """Random unit decoder rows, ``W_enc = W_dec^T``, ``b_enc = 0``, ``b_dec`` = the data mean."""
    w_dec = torch.randn(d_sae, data.shape[1], generator=g)
    w_dec /= w_dec.norm(dim=-1, keepdim=True)
    return {
        "W_dec": w_dec.clone().requires_grad_(True),
        "W_enc": w_dec.T.clone().contiguous().requires_grad_(True),
        "b_enc": torch.zeros(d_sae, requires_grad=True),
        "b_dec": data.mean(0).clone().requires_grad_(True),
    }


def _loss(p: dict[str, torch.Tensor], xb: torch.Tensor, recipe: Recipe, since_fired: torch.Tensor,
          k_aux: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MSE + aux_coef x AuxK of one batch; with the MSE, the updated steps-since-fired and the dead mask."""
    h = (xb - p["b_dec"]) @ p["W_enc"] + p["b_enc"]
    top = torch.topk(h, recipe.k, dim=-1)
    z = torch.zeros_like(h).scatter(-1, top.indices, torch.relu(top.values))
    err = xb - (z @ p["W_dec"] + p["b_dec"])
    loss = (err**2).sum(-1).mean()
    fired = torch.zeros(h.shape[1], dtype=torch.bool)
    fired[top.indices[top.values > 0].unique()] = True
    since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + 1)
    dead = since_fired > recipe.dead_steps
    aux = torch.zeros(())
    if dead.any():
        ta = torch.topk(h.masked_fill(~dead, -torch.inf), min(k_aux, int(dead.sum())), dim=-1)
        za = torch.zeros_like(h).scatter(-1, ta.indices, torch.relu(ta.values))
        aux = ((err.detach() - za @ p["W_dec"]) ** 2).sum(-1).mean()
    return loss + recipe.aux_coef * aux, loss, since_fired, dead


def train_topk(x: np.ndarray, recipe: Recipe, *, model_id: str, hook: str, sae_id: str) -> tuple[SAE, dict]:
    g = torch.Generator().manual_seed(recipe.seed)
    data = torch.from_numpy(np.array(x, dtype=np.float32))  # a writable copy (x may be a read-only map)
    n, d_in = data.shape
    d_sae = recipe.expansion * d_in
    p = _init_params(data, d_sae, g)
    opt = torch.optim.Adam(list(p.values()), lr=recipe.lr, betas=(0.9, 0.999))
    since_fired = torch.zeros(d_sae, dtype=torch.long)
    order, pos = torch.randperm(n, generator=g), 0
    t0 = time.perf_counter()
    var = float(((data - data.mean(0)) ** 2).sum(-1).mean())
    for step in range(recipe.steps):
        if pos + recipe.batch_size > n:
            order, pos = torch.randperm(n, generator=g), 0
        xb = data[order[pos : pos + recipe.batch_size]]
        pos += recipe.batch_size
        total, loss, since_fired, dead = _loss(p, xb, recipe, since_fired, d_in // 2)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        with torch.no_grad():
            p["W_dec"] /= p["W_dec"].norm(dim=-1, keepdim=True).clamp_min(1e-8)
        if step % 500 == 0 or step == recipe.steps - 1:
            log.info("step %d: fvu %.4f, dead %d", step, float(loss.detach()) / var, int(dead.sum()))
    params = {k: v.detach().contiguous() for k, v in p.items()}
    info = SAEInfo("topk", d_in, d_sae, k=recipe.k, model_id=model_id, hook_point=hook, source_format="audiosaebench-train",
                   id=sae_id, notes=(f"reference TopK SAE, seed {recipe.seed}",))
    sae = SAE(info, params)
    sae = sae.with_info(sha256=weights_sha256(sae.params, info))
    with torch.no_grad():
        z = sae.encode(data)
        fvu = float(((data - sae.decode(z)) ** 2).sum(-1).mean()) / var
        alive = int((z != 0).any(0).sum())
    return sae, {"train_frames": n, "final_fvu": round(fvu, 6), "alive_features": alive,
                 "train_seconds": round(time.perf_counter() - t0, 2)}


def train_frames(adapter, hook: str, suite, batch_size: int = 8) -> tuple[np.ndarray, list[dict]]:
    """The valid frames of the suite's train splits at ``hook`` (speech, commands, non-speech, in that
    order), and a record of the manifests they came from."""
    from audiosaebench.activations.extract import get_activations

    roles = [r for r in TRAIN_ROLES if r in suite.splits]
    sets = [get_activations(adapter, [hook], suite.split(r), batch_size=batch_size)[hook] for r in roles]
    return (np.concatenate([a.rows(0, a.n_frames) for a in sets]),
            [{"role": r, "manifest_sha256": suite.split(r).sha256} for r in roles])


def train_reference(
    model_ref: str, hook: str, out: str | Path, *, suite: str = "mini", data_dir: str | Path | None = None,
    seeds: tuple[int, ...] = (0, 1), recipe: Recipe | None = None, batch_size: int = 8, overwrite: bool = False,
) -> list[Path]:
    from audiosaebench.data.suites import load_suite
    from audiosaebench.models.loading import load_adapter

    recipe = recipe or Recipe()
    ad = load_adapter(model_ref)
    hp = ad.resolve(hook).name
    x, data_record = train_frames(ad, hp, load_suite(suite, data_dir), batch_size)
    written = []
    for seed in seeds:
        rec = Recipe(**{**asdict(recipe), "seed": seed})
        short = ad.identity.model_id.split("/")[-1]
        name = f"{short}-{hp.replace('encoder.layers.', 'L').replace('encoder.layer_norm', 'LN')}-topk-k{rec.k}-d{rec.expansion * ad.hidden_size}-s{seed}"
        sae, stats = train_topk(x, rec, model_id=ad.identity.model_id, hook=hp, sae_id=name)
        path = write_saelens_v6(sae, Path(out) / name, overwrite=overwrite)
        (path / "training.json").write_text(json.dumps(
            {"recipe": asdict(rec), "suite": suite, "data": data_record, "model": ad.identity.to_dict(), "hook": hp,
             **stats}, indent=1, sort_keys=True) + "\n")
        log.info("wrote %s (fvu %.4f, %d alive)", path, stats["final_fvu"], stats["alive_features"])
        written.append(path)
    return written
