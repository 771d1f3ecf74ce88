"""Model adapters on tiny randomly initialised models (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosaebench.errors import AudioSAEBenchError, HookError
from audiosaebench.models.loading import load_adapter

RNG = np.random.default_rng(0)
WAVES = [RNG.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 7000, 12345)]


@pytest.fixture(scope="module")
def whisper(tiny_models):
    return load_adapter(str(tiny_models["whisper"]))


def test_whisper_hooks_match_hidden_states_and_batch_equals_single(whisper):
    b = whisper.prepare(WAVES)
    assert b.valid_frames == [50, 22, 39]
    acts = whisper.activations(b, ["encoder.layers.0", "layer_2", "encoder.layer_norm"])
    enc = whisper.base_model.encoder(b.inputs["input_features"], output_hidden_states=True)
    torch.testing.assert_close(acts["encoder.layers.0"], enc.hidden_states[1])
    torch.testing.assert_close(acts["encoder.layers.1"], enc.hidden_states[2])
    torch.testing.assert_close(acts["encoder.layer_norm"], enc.last_hidden_state)
    # batch element 1 alone equals element 1 of the batch (guards against output[0] taking batch item 0)
    single = whisper.activations(whisper.prepare(WAVES[1:2]), ["encoder.layers.1"])["encoder.layers.1"]
    torch.testing.assert_close(single[0], acts["encoder.layers.1"][1])
    assert not torch.allclose(acts["encoder.layers.1"][0], acts["encoder.layers.1"][1])


def test_early_exit_skips_deeper_layers(whisper):
    calls = []
    h = whisper.base_model.encoder.layers[2].register_forward_hook(lambda *a: calls.append(1))
    try:
        whisper.activations(whisper.prepare(WAVES[:1]), ["encoder.layers.0"])
        assert calls == []
        whisper.activations(whisper.prepare(WAVES[:1]), ["encoder.layers.2"])
        assert calls == [1]
    finally:
        h.remove()


def test_replace_output_only_on_valid_frames(whisper):
    b = whisper.prepare(WAVES[:2])
    clean = whisper.activations(b, ["encoder.layers.0", "encoder.layers.2"])
    with whisper.replace_output("encoder.layers.0", lambda h: h, b.valid_frames):
        same = whisper.activations(b, ["encoder.layers.2"])
    torch.testing.assert_close(same["encoder.layers.2"], clean["encoder.layers.2"])
    seen = {}
    with whisper.replace_output("encoder.layers.0", torch.zeros_like, b.valid_frames):
        h = whisper.module("encoder.layers.0").register_forward_hook(lambda m, i, o: seen.setdefault("x", o))
        try:
            zeroed = whisper.activations(b, ["encoder.layers.0", "encoder.layers.2"])
        finally:
            h.remove()
    z0 = zeroed["encoder.layers.0"]
    assert torch.all(z0[0, :50] == 0) and torch.all(z0[1, :22] == 0)
    torch.testing.assert_close(z0[1, 22:], clean["encoder.layers.0"][1, 22:])  # padding untouched
    assert not torch.allclose(zeroed["encoder.layers.2"], clean["encoder.layers.2"])


@pytest.mark.parametrize("family", ["hubert", "wav2vec2", "wav2vec2-layer", "wavlm", "wavlm-layer"])
def test_ssl_adapters(tiny_models, family):
    ad = load_adapter(str(tiny_models[family]))
    assert ad.n_layers == 3 and ad.hidden_size == 16
    lengths = [len(w) for w in WAVES]
    for n in lengths:
        assert ad.valid_frames(n) == int(ad.model._get_feat_extract_output_lengths(torch.tensor(n)))
    groups = ad.batch_groups(lengths + [16000])
    if ad.uses_attention_mask:
        assert groups == [[0, 1, 2, 3]]
    else:
        assert sorted(map(sorted, groups)) == [[0, 3], [1], [2]]
        with pytest.raises(ValueError):
            ad.prepare(WAVES[:2])
    b = ad.prepare([WAVES[0], WAVES[0]])
    acts = ad.activations(b, ["hubert.encoder.layers.1"])["encoder.layers.1"]
    assert acts.shape == (2, 49, 16)
    with pytest.raises(HookError, match="3 encoder layers"):
        ad.resolve("encoder.layers.3")
    if ad.uses_attention_mask:  # padded batch equals single on valid frames
        b2 = ad.prepare(WAVES[:2])
        both = ad.activations(b2, ["encoder.layers.2"])["encoder.layers.2"]
        one = ad.activations(ad.prepare(WAVES[1:2]), ["encoder.layers.2"])["encoder.layers.2"]
        vf = b2.valid_frames[1]
        torch.testing.assert_close(both[1, :vf], one[0, :vf], atol=1e-4, rtol=1e-4)


def test_unknown_model_offline_is_one_line(tmp_path):
    with pytest.raises(AudioSAEBenchError, match="not available offline") as e:
        load_adapter("facebook/hubert-base-ls960")
    assert "\n" not in str(e.value)
    (tmp_path / "m").mkdir()
    with pytest.raises(AudioSAEBenchError, match="no config.json"):
        load_adapter(str(tmp_path / "m"))
