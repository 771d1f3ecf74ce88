"""Every checkpoint format, checked against SAE formulas written independently here (numpy, float64)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from audiosaebench.errors import CheckpointError
from audiosaebench.sae import load_sae, write_saelens_v6
from tests import factories as fx

D_IN, D_SAE = 12, 40


def ref_encode(arch, p, x, *, k=None, norm="none", apply_b_dec=True, rescale=False):
    """Reference SAELens v6 inference, written from the documented formulas."""
    P = {n: t.double().numpy() for n, t in p.items()}
    x = x.astype(np.float64)
    state = None
    if norm == "constant_norm_rescale":
        c = np.sqrt(x.shape[-1]) / np.linalg.norm(x, axis=-1, keepdims=True)
        x, state = x * c, ("c", c)
    elif norm == "layer_norm":
        mu = x.mean(-1, keepdims=True)
        std = (x - mu).std(-1, ddof=1, keepdims=True)
        x, state = (x - mu) / (std + 1e-5), ("ln", mu, std)
    xin = x - P["b_dec"] if apply_b_dec else x
    if arch == "gated":
        gate = xin @ P["W_enc"] + P["b_gate"]
        mag = xin @ (P["W_enc"] * np.exp(P["r_mag"])) + P["b_mag"]
        return (gate > 0) * np.maximum(mag, 0), state
    h = xin @ P["W_enc"] + P["b_enc"]
    if arch == "standard":
        return np.maximum(h, 0), state
    if arch == "jumprelu":
        return np.maximum(h, 0) * (h > P["threshold"]), state
    if rescale:
        h = h * np.linalg.norm(P["W_dec"], axis=-1)
    z = np.zeros_like(h)
    idx = np.argsort(-h, axis=-1)[:, :k]
    np.put_along_axis(z, idx, np.maximum(np.take_along_axis(h, idx, -1), 0), -1)
    return z, state


def ref_decode(p, z, state, rescale=False):
    P = {n: t.double().numpy() for n, t in p.items()}
    if rescale:
        z = z / np.linalg.norm(P["W_dec"], axis=-1)
    out = z @ P["W_dec"] + P["b_dec"]
    if state and state[0] == "c":
        out = out / state[1]
    elif state and state[0] == "ln":
        out = out * state[2] + state[1]
    return out


@pytest.fixture
def x():
    return np.random.default_rng(1).standard_normal((50, D_IN)).astype(np.float32) * 2


def check(sae, x, z_ref, xhat_ref, atol=1e-4):
    xt = torch.from_numpy(x)
    z, state = sae.encode_with_state(xt)
    np.testing.assert_allclose(z.numpy(), z_ref, atol=atol, rtol=1e-4)
    np.testing.assert_allclose(sae.decode(z, state).numpy(), xhat_ref, atol=atol, rtol=1e-4)
    np.testing.assert_allclose(sae(xt).numpy(), xhat_ref, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("arch", ["standard", "topk", "jumprelu", "gated"])
@pytest.mark.parametrize("norm", ["none", "constant_norm_rescale", "layer_norm"])
def test_saelens_v6_matches_reference(tmp_path, x, arch, norm):
    p = fx.random_params(arch, D_IN, D_SAE)
    k = 5 if arch == "topk" else None
    sae = load_sae(fx.write_saelens_v6(tmp_path / "sae", arch, p, k=k, normalize=norm))
    z, st = ref_encode(arch, p, x, k=k, norm=norm)
    assert (z != 0).sum() > 0
    check(sae, x, z, ref_decode(p, z, st))
    assert sae.info.source_format == "saelens-v6" and sae.info.hook_point == "encoder.layers.1"


def test_topk_rescale_acts_by_decoder_norm(tmp_path, x):
    p = fx.random_params("topk", D_IN, D_SAE)
    p["W_dec"] = p["W_dec"] * torch.linspace(0.2, 3.0, D_SAE)[:, None]
    sae = load_sae(fx.write_saelens_v6(tmp_path / "s", "topk", p, k=6, extra={"rescale_acts_by_decoder_norm": True}))
    z, st = ref_encode("topk", p, x, k=6, rescale=True)
    check(sae, x, z, ref_decode(p, z, st, rescale=True))


def test_topk_rescale_is_noop_with_unit_decoder_rows(tmp_path, x):
    p = fx.random_params("topk", D_IN, D_SAE)
    p["W_dec"] = p["W_dec"] / p["W_dec"].norm(dim=-1, keepdim=True)
    a = load_sae(fx.write_saelens_v6(tmp_path / "a", "topk", p, k=6, extra={"rescale_acts_by_decoder_norm": True}))
    b = load_sae(fx.write_saelens_v6(tmp_path / "b", "topk", p, k=6))
    xt = torch.from_numpy(x)
    torch.testing.assert_close(a.encode(xt), b.encode(xt), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a(xt), b(xt), atol=1e-5, rtol=1e-5)


def test_expected_average_only_in_folded_from_scaler_file(tmp_path, x):
    p = fx.random_params("standard", D_IN, D_SAE)
    d = fx.write_saelens_v6(tmp_path / "s", "standard", p, normalize="expected_average_only_in")
    with pytest.raises(CheckpointError, match="scaling factor"):
        load_sae(d)
    s = 0.37
    (d / "activation_scaler.json").write_text(json.dumps({"scaling_factor": s}))
    sae = load_sae(d)
    z, st = ref_encode("standard", p, x * s)
    check(sae, x, z, ref_decode(p, z, st) / s)
    assert any("folded" in n for n in sae.info.notes)
    # the explicit argument works too and gives the same SAE
    (d / "activation_scaler.json").unlink()
    assert load_sae(d, scaling_factor=s).info.sha256 == sae.info.sha256


def test_pre6_flat_configs(tmp_path, x):
    p = fx.random_params("standard", D_IN, D_SAE)
    sae = load_sae(fx.write_saelens_pre6(tmp_path / "relu", p))
    z, st = ref_encode("standard", p, x)
    check(sae, x, z, ref_decode(p, z, st))
    assert sae.info.source_format == "saelens-pre6" and sae.info.hook_point == "encoder.layers.1"

    topk = load_sae(fx.write_saelens_pre6(tmp_path / "topk", p, activation="topk", k=4))
    assert topk.info.architecture == "topk" and topk.info.k == 4
    z, st = ref_encode("topk", p, x, k=4)
    check(topk, x, z, ref_decode(p, z, st))

    with pytest.raises(CheckpointError, match="expected_average_only_in"):
        load_sae(fx.write_saelens_pre6(tmp_path / "norm", p, normalize=True))

    fsf = torch.linspace(0.5, 2.0, D_SAE)
    scaled = load_sae(fx.write_saelens_pre6(tmp_path / "fsf", p, extra_tensors={"scaling_factor": fsf}))
    z, st = ref_encode("standard", p, x)
    p2 = dict(p, W_dec=p["W_dec"] * fsf[:, None])
    check(scaled, x, z, ref_decode(p2, z, st))


def test_batchtopk_saved_as_jumprelu_with_shared_threshold(tmp_path, x):
    p = fx.random_params("standard", D_IN, D_SAE)
    p["threshold"] = torch.tensor(0.15)
    d = fx.write_saelens_v6(tmp_path / "b", "jumprelu", p)
    (d / "runner_cfg.json").write_text(json.dumps({"sae": {"architecture": "batchtopk", "k": 7}}))
    sae = load_sae(d)
    assert sae.info.k == 7
    pr = dict(p, threshold=torch.full((D_SAE,), 0.15))
    z, st = ref_encode("jumprelu", pr, x)
    check(sae, x, z, ref_decode(pr, z, st))


def test_dictionary_learning_topk_batchtopk_and_audiosae_layer_folder(tmp_path, x):
    p = fx.random_params("topk", D_IN, D_SAE)
    sae = load_sae(fx.write_dictionary_learning(tmp_path / "dl", p, k=5))
    assert sae.info.architecture == "topk" and sae.info.source_format == "dictionary_learning"
    z, st = ref_encode("topk", p, x, k=5)
    check(sae, x, z, ref_decode(p, z, st))

    bt = load_sae(fx.write_dictionary_learning(tmp_path / "bt", p, k=5, threshold=0.2))
    pr = dict(p, threshold=torch.full((D_SAE,), 0.2))
    z, st = ref_encode("jumprelu", pr, x)
    check(bt, x, z, ref_decode(pr, z, st))

    layer = load_sae(fx.write_dictionary_learning(tmp_path / "audiosae" / "layer_3", p, k=5))
    assert layer.info.hook_point == "encoder.layers.2"
    with pytest.raises(CheckpointError, match="one SAE per layer"):
        load_sae(tmp_path / "audiosae")


@pytest.mark.parametrize("arch", ["standard", "topk", "jumprelu", "gated"])
def test_convert_round_trip_keeps_outputs_and_hash(tmp_path, x, arch):
    p = fx.random_params(arch, D_IN, D_SAE)
    src = load_sae(fx.write_saelens_v6(tmp_path / "a", arch, p, k=5 if arch == "topk" else None, normalize="layer_norm"))
    out = write_saelens_v6(src, tmp_path / "conv")
    back = load_sae(out)
    xt = torch.from_numpy(x)
    torch.testing.assert_close(back(xt), src(xt))
    assert back.info.sha256 == src.info.sha256


def test_convert_dictionary_learning_to_v6(tmp_path, x):
    from audiosaebench.cli import main

    p = fx.random_params("topk", D_IN, D_SAE)
    src = fx.write_dictionary_learning(tmp_path / "layer_2", p, k=5)
    assert main(["convert", str(src), str(tmp_path / "v6")]) == 0
    a, b = load_sae(src), load_sae(tmp_path / "v6")
    assert b.info.source_format == "saelens-v6" and b.info.hook_point == "encoder.layers.1"
    torch.testing.assert_close(a(torch.from_numpy(x)), b(torch.from_numpy(x)))
    assert a.info.sha256 == b.info.sha256


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "PWNED"
    d = tmp_path / "evil"
    d.mkdir()
    torch.save({"encoder.weight": _Exploit(marker)}, d / "ae.pt")
    with pytest.raises(CheckpointError, match="refusing ae.pt"):
        load_sae(d)
    assert not marker.exists()
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "model.pt").write_bytes(pickle.dumps(_Exploit(marker)))
    with pytest.raises(CheckpointError, match="refusing|pickled"):
        load_sae(raw)
    with pytest.raises(CheckpointError, match="refusing"):
        load_sae(raw / "model.pt")
    assert not marker.exists()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d, c, w: w.update(W_enc=torch.randn(D_IN + 1, D_SAE)), "shape"),
        (lambda d, c, w: w["W_dec"].__setitem__((0, 0), float("nan")), "NaN or Inf"),
        (lambda d, c, w: w["b_dec"].__setitem__(0, float("inf")), "NaN or Inf"),
        (lambda d, c, w: c.update(architecture="matryoshka"), "unknown architecture"),
        (lambda d, c, w: c.update(d_sae="40"), "d_sae must be an integer"),
        (lambda d, c, w: c.update(d_sae=1 << 30), "outside"),
        (lambda d, c, w: w.pop("b_enc"), "missing parameter"),
        (lambda d, c, w: c.update(normalize_activations="whiten"), "normalize_activations"),
        (lambda d, c, w: c.update(k=0), "outside"),
    ],
)
def test_malformed_checkpoints_get_one_clear_error(tmp_path, mutate, message):
    from safetensors.torch import save_file

    arch = "topk"
    p = fx.random_params(arch, D_IN, D_SAE)
    d = fx.write_saelens_v6(tmp_path / "s", arch, p, k=5)
    cfg = json.loads((d / "cfg.json").read_text())
    mutate(d, cfg, p)
    save_file({n: t.contiguous() for n, t in p.items()}, str(d / "sae_weights.safetensors"))
    (d / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=message) as e:
        load_sae(d)
    assert "\n" not in str(e.value)


def test_truncated_and_missing_files(tmp_path):
    p = fx.random_params("standard", D_IN, D_SAE)
    d = fx.write_saelens_v6(tmp_path / "s", "standard", p)
    w = d / "sae_weights.safetensors"
    w.write_bytes(w.read_bytes()[: len(w.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_sae(d)
    w.unlink()
    with pytest.raises(CheckpointError, match="missing sae_weights"):
        load_sae(d)
    (d / "cfg.json").write_text("{not json")
    with pytest.raises(CheckpointError):
        load_sae(d)
    with pytest.raises(CheckpointError, match="not found"):
        load_sae(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a recognised"):
        load_sae(tmp_path / "empty")


def test_cross_check_against_saelens_when_installed(tmp_path, x):
    sae_lens = pytest.importorskip("sae_lens")
    for arch, norm in [("standard", "none"), ("topk", "none"), ("jumprelu", "constant_norm_rescale"), ("gated", "layer_norm")]:
        p = fx.random_params(arch, D_IN, D_SAE)
        d = fx.write_saelens_v6(tmp_path / arch, arch, p, k=5 if arch == "topk" else None, normalize=norm)
        theirs = sae_lens.SAE.load_from_disk(str(d))
        ours = load_sae(d)
        xt = torch.from_numpy(x)
        torch.testing.assert_close(ours.encode(xt), theirs.encode(xt), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(xt), theirs(xt), atol=1e-5, rtol=1e-5)
