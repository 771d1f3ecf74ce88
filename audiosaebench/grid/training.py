"""Training units: SAELens's own trainer (``SAETrainer``) on the grid's activations (``pip install -e '.[sweep]'``).

SAELens's trainer runs on any iterator of activation batches, so no transformer-lens model is
involved: a unit reads its hook's train frames from the activation store (the train splits of the
suite, speech, commands, non-speech, as ``train-reference`` reads them), shuffles them with the
run's seed and feeds constant-size batches. The recipe around SAELens's defaults:

* ``b_dec`` starts at the data mean (``b_dec_init: mean``; SAELens's trainer leaves it at zero,
  and Whisper's activations are far from centred), the decoder rows at norm ``decoder_init_norm``;
* a latent is dead after ``dead_feature_window`` steps without firing (TopK and BatchTopK's AuxK
  loss, SAELens's default 1,000 leaves most latents dead in 1,500 steps);
* Adam at ``lr`` (constant unless ``lr_scheduler_name``), ``threads`` torch threads (1: fastest here,
  and the weights do not depend on it), on ``device``.

The checkpoint is SAELens's ``save_inference_model`` folder (TopK folds the decoder norm; BatchTopK
is saved as JumpReLU with its learned threshold, and its ``k`` goes into ``runner_cfg.json`` as
SAELens's runner writes it, where :func:`audiosaebench.sae.load_sae` finds it) plus ``training.json``:
the unit's config hash, the recipe, the data and the trained SAE's L0, FVU and live latents on its
train frames. The folder is renamed into place whole.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiosaebench.errors import AudioSAEBenchError

CLASSES = {"topk": ("TopKTrainingSAE", "TopKTrainingSAEConfig"),
           "batchtopk": ("BatchTopKTrainingSAE", "BatchTopKTrainingSAEConfig"),
           "jumprelu": ("JumpReLUTrainingSAE", "JumpReLUTrainingSAEConfig"),
           "standard": ("StandardTrainingSAE", "StandardTrainingSAEConfig")}


def train_frames_from_store(data: list[dict[str, Any]], hook: str) -> np.ndarray:
    """The train frames the plan named by store key, concatenated in the plan's order (a writable copy)."""
    from audiosaebench.activations.store import open_store

    parts = []
    for d in data:
        s = open_store(d["store_key"])
        if s is None:
            raise AudioSAEBenchError(f"the activation store has no {d['role']} at {hook} ({d['store_key'][:12]}); "
                                     "run the grid's extraction units first")
        if s.meta.get("manifest_sha256") != d["manifest_sha256"]:
            raise AudioSAEBenchError(f"store entry {d['store_key'][:12]} belongs to another {d['role']} manifest")
        parts.append(np.array(s.rows(0, s.n_frames), dtype=np.float32))
    return np.concatenate(parts)


def batches(x: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Constant-size batches of ``x`` in an order drawn from ``seed``, epoch after epoch (the last partial
    batch of each epoch is dropped)."""
    if len(x) < batch_size:
        raise AudioSAEBenchError(f"{len(x)} train frames, fewer than one batch of {batch_size}")
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - batch_size + 1, batch_size):
            yield x[order[i : i + batch_size]]


def build_sae(architecture: str, params: dict[str, Any], recipe: dict[str, Any], d_in: int, model: str, hook: str,
              x: torch.Tensor, seed: int) -> Any:
    """A SAELens training SAE of ``architecture``, initialised from ``seed`` (and ``b_dec`` from the data)."""
    import sae_lens
    from sae_lens.saes.sae import SAEMetadata

    sae_cls, cfg_cls = (getattr(sae_lens, n) for n in CLASSES[architecture])
    fields = {k: v for k, v in params.items() if v is not None or k == "pre_act_loss_coefficient"}
    if architecture == "topk":
        fields["k"] = int(fields["k"])
    cfg = cfg_cls(d_in=d_in, d_sae=recipe["expansion"] * d_in, dtype="float32", device=recipe["device"],
                  normalize_activations="none", decoder_init_norm=recipe["decoder_init_norm"],
                  metadata=SAEMetadata(model_name=model, hook_name=hook), **fields)
    torch.manual_seed(seed)
    sae = sae_cls(cfg)
    if recipe["b_dec_init"] == "mean":
        with torch.no_grad():
            sae.b_dec.copy_(x.mean(0).to(sae.b_dec.device))
    return sae


@contextlib.contextmanager
def _quiet_trainer() -> Iterator[None]:
    """SAELens's trainer draws a progress bar; a unit's log is no place for it."""
    from functools import partial

    from sae_lens.training import sae_trainer

    bar = sae_trainer.tqdm
    sae_trainer.tqdm = partial(bar, disable=True)  # type: ignore[assignment]
    try:
        yield
    finally:
        sae_trainer.tqdm = bar  # type: ignore[assignment]


def fit(sae: Any, x: torch.Tensor, recipe: dict[str, Any], seed: int) -> Any:
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.training.sae_trainer import SAETrainer

    steps, bs = int(recipe["steps"]), int(recipe["batch_size"])
    cfg = SAETrainerConfig(total_training_samples=steps * bs, train_batch_size_samples=bs, lr=recipe["lr"],
                           lr_end=recipe["lr_end"], lr_scheduler_name=recipe["lr_scheduler_name"],
                           lr_warm_up_steps=int(recipe["lr_warm_up_steps"]),
                           dead_feature_window=int(recipe["dead_feature_window"]), device=recipe["device"],
                           logger=LoggingConfig(log_to_wandb=False))
    data = (b.to(recipe["device"]) for b in batches(x, bs, seed))
    with _quiet_trainer():
        return SAETrainer(cfg=cfg, sae=sae, data_provider=data).fit()


def trained_stats(folder: Path, x: torch.Tensor) -> dict[str, Any]:
    """L0, FVU and live latents of the saved SAE (as audiosaebench loads it) on its train frames."""
    from audiosaebench.sae import load_sae

    sae = load_sae(folder)
    l0 = sq = 0.0
    alive = torch.zeros(sae.info.d_sae, dtype=torch.bool)
    with torch.no_grad():
        for i in range(0, len(x), 8192):
            xb = x[i : i + 8192]
            z = sae.encode(xb)
            l0 += float((z != 0).sum())
            sq += float(((xb - sae.decode(z)) ** 2).sum())
            alive |= (z != 0).any(0)
    var = float(((x - x.mean(0)) ** 2).sum())
    return {"sae_sha256": sae.info.sha256, "loaded_architecture": sae.info.architecture, "k": sae.info.k,
            "train_frames": len(x), "l0": round(l0 / len(x), 4), "fvu": round(sq / var, 6), "alive_features": int(alive.sum())}


def _runner_cfg(sae: Any) -> dict[str, Any]:
    cfg = json.loads(json.dumps(sae.cfg.to_dict(), default=str))
    if isinstance(cfg.get("k"), float) and float(cfg["k"]).is_integer():
        cfg["k"] = int(cfg["k"])
    return {"sae": cfg, "written_by": "audiosaebench grid (SAELens SAETrainer)"}


def run_training_unit(*, home: str, name: str, checkpoint: str, architecture: str, params: dict[str, Any],
                      recipe: dict[str, Any], seed: int, hook: str, model: str, model_identity: dict[str, Any],
                      d_in: int, data: list[dict[str, Any]], trainer: str, version: int,
                      config_sha256: str) -> dict[str, Any]:
    from audiosaebench import atomic
    from audiosaebench.grid.units import unit_process

    with unit_process(home, int(recipe["threads"])):
        t0 = time.perf_counter()
        x = torch.from_numpy(train_frames_from_store(data, hook))
        if x.shape[1] != d_in:
            raise AudioSAEBenchError(f"{name}: the train frames have width {x.shape[1]}, the plan says {d_in}")
        sae = fit(build_sae(architecture, params, recipe, d_in, model, hook, x, seed), x, recipe, seed)
        seconds = round(time.perf_counter() - t0, 2)
        record: dict[str, Any] = {"config_sha256": config_sha256, "name": name, "trainer": trainer, "architecture": architecture,
                  "params": params, "recipe": recipe, "seed": seed, "hook": hook, "model": model_identity, "data": data,
                  "train_seconds": seconds, "version": version}
        with atomic.new_folder(checkpoint, replace=True) as tmp:
            sae.save_inference_model(tmp)
            if architecture == "batchtopk":
                (tmp / "runner_cfg.json").write_text(json.dumps(_runner_cfg(sae), indent=1, sort_keys=True) + "\n")
            record["stats"] = trained_stats(tmp, x)
            (tmp / "training.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return {"checkpoint": checkpoint, "train_seconds": seconds, **record["stats"]}
