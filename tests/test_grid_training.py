"""SAELens training units: each architecture of the reference sweep (grids/reference-mini.yaml) trains,
reloads through load_sae as SAELens itself reads it, and trains to the same bits again."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "grids" / "reference-mini.yaml"


def test_the_reference_grid_is_a_valid_grid():
    from audiosaebench.grid.spec import load_spec

    spec = load_spec(REFERENCE, out="/nonexistent/out")
    assert spec.hooks == ("encoder.layers.1", "encoder.layers.2", "encoder.layers.3")
    archs = {(r.architecture, r.sparsity_tag(), r.seed) for r in spec.train}
    assert {a for a, _, _ in archs} == {"topk", "batchtopk", "standard"}
    assert {t for a, t, _ in archs if a == "topk"} == {"k8", "k16", "k32", "k64", "k128"}
    assert {("topk", "k32", 0), ("topk", "k32", 1)} <= archs  # seed pairs for stability and cross-model alignment
    assert len({t for a, t, _ in archs if a == "batchtopk"}) == 2 and len({t for a, t, _ in archs if a == "standard"}) == 2
    assert len(spec.train) == 30 and spec.submissions and spec.submissions["kind"] == "reference"


def _toy_frames(tiny_models, toy_dir):
    from audiosaebench.activations.extract import get_activations
    from audiosaebench.data.toy import build_toy
    from audiosaebench.models.loading import load_adapter

    ad = load_adapter(str(tiny_models["whisper"]))
    data = []
    for role, m in build_toy(toy_dir).items():
        if role.endswith("_train"):
            s = get_activations(ad, ["encoder.layers.1"], m, progress=False)["encoder.layers.1"]
            data.append({"role": role, "manifest_sha256": m.sha256, "store_key": s.key})
    return data


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["topk", "batchtopk", "standard"])
def test_each_reference_architecture_trains_and_loads_as_saelens_reads_it(home, tmp_path, tiny_models, toy_dir, arch):
    sae_lens = pytest.importorskip("sae_lens")
    from audiosaebench import paths
    from audiosaebench.grid.spec import load_spec
    from audiosaebench.grid.training import run_training_unit
    from audiosaebench.sae import load_sae

    run = next(r for r in load_spec(REFERENCE, out=tmp_path).train if r.architecture == arch)
    run = replace(run, recipe={**run.recipe, "steps": 60, "batch_size": 64, "dead_feature_window": 20})
    if arch == "standard":
        run = replace(run, params={**run.params, "l1_coefficient": 0.05})  # the tiny model's activations are small
    data = _toy_frames(tiny_models, toy_dir)
    shas = []
    for attempt in ("a", "b"):
        folder = tmp_path / attempt
        stats = run_training_unit(home=str(paths.home()), name=f"t-{arch}", checkpoint=str(folder), architecture=arch,
                                  params=run.params, recipe=run.recipe, seed=0, hook="encoder.layers.1",
                                  model=str(tiny_models["whisper"]), model_identity={}, d_in=16, data=data,
                                  trainer="sae-lens", version=1, config_sha256="x" * 64)
        shas.append(stats["sae_sha256"])
    assert shas[0] == shas[1]  # the same bits again
    ours, theirs = load_sae(tmp_path / "a"), sae_lens.SAE.load_from_disk(str(tmp_path / "a"))
    want = {"topk": "topk", "batchtopk": "jumprelu", "standard": "standard"}[arch]
    assert ours.info.architecture == want and ours.info.hook_point == "encoder.layers.1" and ours.info.d_sae == 64
    if arch in ("topk", "batchtopk"):
        assert ours.info.k == int(run.params["k"])  # BatchTopK's k from runner_cfg.json
    x = torch.randn(200, 16) * 3
    torch.testing.assert_close(ours.encode(x), theirs.encode(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)
    meta = json.loads((tmp_path / "a" / "training.json").read_text())
    assert meta["config_sha256"] == "x" * 64 and meta["stats"]["alive_features"] > 0 and meta["stats"]["l0"] > 0
    if arch == "topk":
        assert meta["stats"]["l0"] <= run.params["k"]
