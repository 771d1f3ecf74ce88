"""The reference TopK trainer: recovers planted sparse structure; seeds differ only in seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from audiosaebench.sae import load_sae
from audiosaebench.training import Recipe, train_reference, train_topk

pytestmark = pytest.mark.slow  # every test here trains


def test_topk_trainer_recovers_planted_dictionary():
    rng = np.random.default_rng(0)
    d, m, k = 16, 32, 3
    dirs = rng.standard_normal((m, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    codes = np.zeros((3000, m))
    for row in codes:
        row[rng.choice(m, k, replace=False)] = rng.uniform(1, 3, k)
    x = (codes @ dirs + 0.5).astype(np.float32)
    sae, stats = train_topk(x, Recipe(k=k, expansion=4, steps=600, batch_size=256, lr=3e-3), model_id="m",
                            hook="encoder.layers.0", sae_id="t")
    assert stats["final_fvu"] < 0.1, stats
    # most planted directions have a decoder row within cos 0.9
    cos = np.abs(sae.decoder_directions().numpy() @ dirs.T).max(0)
    assert (cos > 0.9).mean() > 0.7, cos


def test_seeds_are_reproducible_and_differ(tmp_path):
    x = np.random.default_rng(1).standard_normal((2000, 8)).astype(np.float32)
    a, _ = train_topk(x, Recipe(k=2, steps=30, batch_size=128, seed=0), model_id="m", hook="encoder.layers.0", sae_id="a")
    b, _ = train_topk(x, Recipe(k=2, steps=30, batch_size=128, seed=0), model_id="m", hook="encoder.layers.0", sae_id="b")
    c, _ = train_topk(x, Recipe(k=2, steps=30, batch_size=128, seed=1), model_id="m", hook="encoder.layers.0", sae_id="c")
    assert a.info.sha256 == b.info.sha256 and a.info.sha256 != c.info.sha256


def test_train_reference_writes_loadable_saelens_folders(home, tmp_path, tiny_models, toy_dir):
    paths = train_reference(str(tiny_models["whisper"]), "layer_2", tmp_path / "ref", suite="toy", data_dir=toy_dir,
                            seeds=(0, 1), recipe=Recipe(k=4, steps=20, batch_size=64))
    assert [p.name[-2:] for p in paths] == ["s0", "s1"]
    sae = load_sae(paths[0])
    assert sae.info.architecture == "topk" and sae.info.hook_point == "encoder.layers.1" and sae.info.d_sae == 64
    meta = json.loads((paths[0] / "training.json").read_text())
    assert meta["recipe"]["seed"] == 0 and meta["train_frames"] > 0 and len(meta["data"]) == 3
    assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(64), atol=1e-5)
