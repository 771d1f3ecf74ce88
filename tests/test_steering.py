"""steering: the pieces that decide its number (operating point, hallucination rule, the steering edit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosaebench.sae import SAE, SAEInfo
from audiosaebench_tasks.steering.compute import (
    _operating_point,
    _reduction,
    hallucinated,
)
from tests import factories as fx


def test_operating_point_is_the_largest_alpha_within_the_wer_budget():
    alphas = [0.0, 0.5, 1.0, 2.0, 3.0]
    assert _operating_point([0.10, 0.105, 0.11, 0.13, 0.5], alphas, 0.01) == 2
    # a WER that dips back under the budget at a larger alpha counts: the largest alpha within it
    assert _operating_point([0.10, 0.2, 0.2, 0.105, 0.3], alphas, 0.01) == 3
    assert _operating_point([0.1, 0.5, 0.5, 0.5, 0.5], alphas, 0.01) == 0  # alpha 0 always qualifies
    assert _reduction(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0])) == 0.5
    assert _reduction(np.zeros(4), np.zeros(4)) is None


def test_speech_windows_decode_up_to_a_limit_set_by_their_length():
    """1.0.0 cut every speech window at 32 tokens, which truncated LibriSpeech's long utterances (up
    to 35 s) and counted the lost words as errors at every alpha; 1.1.0 gives a window
    8 tokens a second (at least 32, so the mini suite's windows of at most 3.4 s keep 32, and at most
    224, Whisper's own limit for a 30 s window)."""
    from audiosaebench.models.whisper_decode import token_limits
    from audiosaebench_tasks.steering import SteeringTask

    cfg = SteeringTask.default_config
    rule = (cfg["tokens_per_second"], cfg["min_token_limit"], cfg["max_new_tokens"])
    assert token_limits([0.5, 3.37, 4.0, 12.3, 30.0, 5.0], *rule) == [32, 32, 32, 99, 224, 40]
    assert SteeringTask.metadata.version == "1.1.0"


def test_hallucination_is_a_non_empty_normalised_transcript():
    assert hallucinated(["", " . ", "...", "Thank you.", "♪", "5"]).tolist() == [False, False, False, True, False, True]


@pytest.mark.parametrize("norm", ["none", "constant_norm_rescale", "layer_norm"])
def test_shift_contribution_is_the_exact_decoded_change(norm):
    p = fx.random_params("standard", 8, 20, seed=1)
    sae = SAE(SAEInfo("standard", 8, 20, normalize_activations=norm), p)
    x = torch.randn(5, 8)
    feats = torch.tensor([1, 4, 7])
    values = torch.tensor([0.5, -1.0, 2.0])
    z, state = sae.encode_with_state(x)
    z2 = z.clone()
    z2[:, feats] += values
    expected = sae.decode(z2, state) - sae.decode(z, state)
    torch.testing.assert_close(sae.shift_contribution(x, feats, values), expected, rtol=1e-5, atol=1e-5)


def test_steering_on_an_encoder_only_model_is_null_with_the_reason(home, tmp_path, tiny_models, toy_dir):
    from audiosaebench.evaluation import evaluate

    sae = fx.write_saelens_v6(tmp_path / "h", "topk", fx.random_params("topk", 16, 64), k=8,
                              model=str(tiny_models["hubert"]), hook="encoder.layers.1")
    from audiosaebench.data.suites import load_suite

    rec = evaluate([str(sae)], "steering", suite=load_suite("toy", toy_dir), out=tmp_path / "o", progress=False)[0]
    assert rec["metrics"]["values"]["fpr_reduction"] is None
    assert "Whisper" in rec["metrics"]["reasons"]["fpr_reduction"]
