"""causal_patching mechanics: the continuation, pyvene vs a plain hook, pyvene's hook hazard, and
the encoder-only (probe) path end to end on the toy suite."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosaebench.activations.states import continuation_states
from audiosaebench.interventions import FeaturePatcher, HookFeaturePatcher
from audiosaebench.sae.reference import identity_sae, random_sae

HOOK = "encoder.layers.2"
MODEL = "openai/whisper-tiny.en"


@pytest.fixture(scope="module")
def whisper(tiny_en_dir, mini_suite):
    from audiosaebench.data.suites import load_suite
    from audiosaebench.models.continuation import Continuation
    from audiosaebench.models.loading import load_adapter
    from audiosaebench_tasks.causal_patching import KEYWORDS
    from audiosaebench_tasks.causal_patching.readout import whisper_readout

    ad = load_adapter(MODEL)
    readout, _ = whisper_readout(ad, list(KEYWORDS))
    cont = Continuation(ad, HOOK, readout)
    m = load_suite("mini", mini_suite[0]).split("commands_test")
    clips = [c for c in m.clips if c.labels.get("keyword") in ("go", "no")][:4]
    batch = ad.prepare([m.load(c) for c in clips])
    return ad, cont, batch


def _hook_output(cont, hidden_in):
    got = {}
    h = cont.hook_module.register_forward_hook(lambda _m, _i, o: got.__setitem__("x", o[0] if isinstance(o, tuple) else o))
    try:
        with torch.no_grad():
            scores = cont(hidden_in)
    finally:
        h.remove()
    return got["x"], scores


@pytest.mark.parametrize("start", ["output", "input"])
def test_continuation_matches_the_full_forward_pass(whisper, start):
    from audiosaebench.models.continuation import Continuation

    ad, cont, batch = whisper
    cont = Continuation(ad, HOOK, cont.readout, start=start)
    with torch.no_grad():
        enc = ad.base_model.encoder(batch.inputs["input_features"]).last_hidden_state
        full = cont.readout(enc)
        part = cont(continuation_states(cont, batch))
    assert cont.component == {"output": "site.output", "input": "model.model.encoder.layers[2].output"}[start]
    torch.testing.assert_close(part, full, rtol=0, atol=1e-5)


@pytest.mark.parametrize("start", ["output", "input"])
def test_pyvene_edit_equals_a_plain_forward_hook_and_keeps_other_hooks(whisper, start):
    from audiosaebench.models.continuation import Continuation

    ad, cont, batch = whisper
    cont = Continuation(ad, HOOK, cont.readout, start=start)
    hin = continuation_states(cont, batch)
    x, _ = _hook_output(cont, hin)
    sae = random_sae(384, 1536, 32, MODEL, HOOK, seed=3)
    positions = [list(range(50))] * 2
    feats = [[0, 5, 17, 400], list(range(0, 1536, 7))]
    fired = []
    before = hin.clone()
    keep = ad.base_model.encoder.layers[3].register_forward_hook(lambda *a: fired.append(1))
    try:
        for mode in ("patch", "ablate"):
            a = FeaturePatcher(cont, sae)(hin[2:], positions, feats, x[:2, :50], mode)
            assert torch.equal(hin, before), "the pyvene edit reached the caller's states"
            b = HookFeaturePatcher(cont, sae)(hin[2:], positions, feats, x[:2, :50], mode)
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
            assert not torch.allclose(a, cont(hin[2:]))  # the edit changed something
        n = len(fired)
        with torch.no_grad():
            cont(hin[:1])
        assert len(fired) == n + 1, "pyvene removed a forward hook registered by someone else"
    finally:
        keep.remove()


def test_patching_every_feature_of_a_lossless_basis_on_every_frame_recovers_exactly(whisper):
    """k = d_sae with the identity basis on all frames turns the corrupted run into the clean one."""
    ad, cont, batch = whisper
    hin = continuation_states(cont, batch)
    x, scores = _hook_output(cont, hin)
    sae = identity_sae(384, MODEL, HOOK)
    every_frame = [list(range(x.shape[1]))] * 2
    patched = FeaturePatcher(cont, sae)(hin[2:], every_frame, [list(range(sae.d_sae))] * 2, x[:2], "patch")
    torch.testing.assert_close(patched, scores[:2], rtol=0, atol=1e-3)
    m_clean, m_corr = scores[:2, 9] - scores[:2, 1], scores[2:, 9] - scores[2:, 1]  # go vs no
    recovery = ((patched[:, 9] - patched[:, 1]) - m_corr) / (m_clean - m_corr)
    assert recovery.numpy() == pytest.approx(np.ones(2), abs=1e-3)


@pytest.mark.parametrize("family", ["hubert", "wav2vec2", "wav2vec2-layer", "wavlm", "wavlm-layer"])
@pytest.mark.parametrize("start", ["output", "input"])
@pytest.mark.parametrize("hook", ["encoder.layers.0", "encoder.layers.1"])
def test_encoder_only_continuation_matches_the_full_forward_pass(tiny_models, home, family, start, hook):
    """From the hook's cached states, the layers above it (and the final norm of stable-layer-norm
    models) give the model's own last hidden state; WavLM's relative position bias, which only its
    first layer can compute, is rebuilt the way that layer builds it."""
    from torch import nn

    from audiosaebench.models.continuation import Continuation
    from audiosaebench.models.loading import load_adapter

    ad = load_adapter(str(tiny_models[family]))
    if family.startswith("wavlm"):  # initialised near 0, the bias would hardly matter: make it matter
        with torch.no_grad():
            ad.base_model.encoder.layers[0].attention.rel_attn_embed.weight.normal_(0, 3, generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(1)
    batch = ad.prepare([(0.3 * rng.standard_normal(12_000)).astype(np.float32) for _ in range(3)])
    cont = Continuation(ad, hook, nn.Identity(), start=start)
    with torch.no_grad():
        full = ad.base_model(**{k: v for k, v in batch.inputs.items()}).last_hidden_state
        part = cont(continuation_states(cont, batch))
    torch.testing.assert_close(part, full, rtol=1e-5, atol=1e-5)
    if family.startswith("wavlm"):  # the bias is not a no-op here: leaving it out changes the output
        heads = ad.config.num_attention_heads
        cont._bias_source = (type("NoBias", (), {"compute_bias": lambda self, q, k: torch.zeros(heads, q, k),
                                                 "num_heads": heads})(),)
        with torch.no_grad():
            assert not torch.allclose(cont(continuation_states(cont, batch)), full, atol=1e-3)


@pytest.mark.parametrize("family", ["hubert", "wavlm"])
def test_encoder_only_path_end_to_end_with_a_cached_probe(tiny_models, toy_dir, home, tmp_path, family):
    """HuBERT and WavLM (random init) on the toy suite: the probe readout, the task's result and its cache."""
    from audiosaebench.data.suites import load_suite
    from audiosaebench.evaluation import evaluate

    hook = "encoder.layers.1"
    sae = identity_sae(16, str(tiny_models[family]), hook)
    options = {"label_key": "category", "keywords": ["voiced", "noise", "chirp"], "ks": [1, 32], "max_pairs": 3,
               "min_effect": 0.0, "references": ["random"], "bootstrap_resamples": 50}
    suite = load_suite("toy", toy_dir)
    rec = evaluate([sae], "causal_patching", suite=suite, out=tmp_path / "a", progress=False,
                   task_config={"causal_patching": options})[0]
    v = rec["metrics"]["values"]
    assert rec["details"]["readout"].startswith("linear keyword probe") and v["n_pairs"] >= 1
    # every feature of the lossless identity basis = the raw valid-frame patch (the ceiling)
    assert v["recovery@32"] == pytest.approx(v["recovery_ceiling"], abs=1e-4)
    assert v["recovery_all_features"] == pytest.approx(v["recovery_ceiling"], abs=1e-4)
    probes = list((home / "probes").glob("*.safetensors"))
    assert len(probes) == 1
    probes[0].write_bytes(b"not a safetensors file")  # a corrupt cache entry is rebuilt, not trusted
    refs = sorted((home / "causal-cache").glob("*.json"))  # the ceiling and the five random references
    assert len(refs) == 1 + 5
    refs[0].write_text("{truncated")
    tensors = sorted((home / "causal-cache").glob("*.safetensors"))  # unpatched scores and gradients
    assert len(tensors) == 2
    tensors[0].write_bytes(b"not a safetensors file")
    tensors[1].write_bytes(tensors[1].read_bytes()[:-8])
    states = sorted((home / "state-cache").rglob("*.safetensors"))
    assert states
    states[0].write_bytes(states[0].read_bytes()[:100])
    again = evaluate([sae], "causal_patching", suite=suite, out=tmp_path / "b", progress=False,
                     task_config={"causal_patching": options})[0]
    # a rebuilt state entry is recomputed in a smaller batch, and these tiny models' convolutional
    # feature encoders are not batch-invariant in the last bits (≈ 5e-7; a full-size HuBERT's is):
    # the ratios move by up to ≈ 1e-6 of their value, never more; a gain over random is the difference
    # of two such ratios, so its error is theirs in absolute terms (1.1e-6 measured on a small gain)
    for name in ("recovery@32", "recovery@20_random", "recovery_ceiling", "recovery@20_gain_over_random"):
        assert again["metrics"]["values"][name] == pytest.approx(v[name], rel=1e-5, abs=3e-6), name
    assert again["metrics"]["values"] == pytest.approx(v, rel=1e-5, abs=3e-6, nan_ok=True)
    assert again["details"]["probe_hook"] == "encoder.layers.2"  # the last layer (no stable layer norm)
