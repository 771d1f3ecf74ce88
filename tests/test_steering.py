"""steering: the pieces that decide its number (false detections, the trade-off frontier, the edits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiosaebench.sae import SAE, SAEInfo
from audiosaebench_tasks.steering.compute import (
    Curve,
    at_budget,
    false_detection,
    frontier,
    tradeoff,
    transcribed,
)
from tests import factories as fx


def test_a_false_detection_is_a_no_speech_probability_below_the_threshold():
    assert false_detection([0.1, 0.49, 0.5, 0.9, None], 0.5).tolist() == [True, True, False, False, False]
    assert transcribed(["", " . ", "...", "Thank you.", "♪", "5"]).tolist() == [False, False, False, True, False, True]


def test_the_frontier_area_counts_the_best_reduction_reached_within_each_wer_rise():
    # alpha 0 (0, 0), then reductions 0.5 at +0.01 and 1.0 at +0.03, and a useless +0.2 point
    red, inc = [0.0, 0.5, 1.0, 1.0], [0.0, 0.01, 0.03, 0.2]
    assert frontier(red, inc, 0.05) == pytest.approx((0.5 * 0.02 + 1.0 * 0.02) / 0.05)
    assert frontier([0.0, 1.0], [0.0, 0.0], 0.05) == 1.0  # a free, perfect edit
    assert frontier([0.0, 1.0], [0.0, 0.06], 0.05) == 0.0  # only beyond the budget
    assert frontier([0.0, 0.4], [0.0, -0.01], 0.05) == pytest.approx(0.4)  # WER falling counts as no rise
    assert at_budget(red, inc, 0.01) == (0.5, 1)
    assert at_budget([0.0, 0.2, 0.2], [0.0, 0.005, 0.001], 0.01) == (0.2, 1)  # ties: the smaller alpha


def test_tradeoff_reads_fpr_and_wer_from_the_curve_and_its_resamples():
    c = Curve(alphas=[0.0, 1.0], hallucinated=[[True, True, False, False], [False, True, False, False]],
              transcribed=[[True] * 4, [True] * 4], errors=[[1, 0], [1, 1]], words=[10, 10], no_speech_prob=[0.4, 0.6],
              rerun=[0, 6])
    auc, red, i = tradeoff(c, 0.1, 0.01)
    assert red == 0.0 and i == 0  # alpha 1 halves FPR but adds 5 WER points, outside the 1-point budget
    assert auc == pytest.approx(0.5 * (0.1 - 0.05) / 0.1)
    none = tradeoff(c, 0.1, 0.01, np.array([2, 3, 2, 3]), np.array([0, 1]))
    assert none == (None, None, 0)  # a resample without detections at alpha 0


@pytest.mark.parametrize("norm", ["none", "constant_norm_rescale", "layer_norm"])
def test_suppression_is_the_exact_decoded_change_of_scaling_the_selected_codes(norm):
    p = fx.random_params("standard", 8, 20, seed=1)
    sae = SAE(SAEInfo("standard", 8, 20, normalize_activations=norm), p)
    x = torch.randn(5, 8)
    feats = torch.tensor([1, 4, 7])
    alpha = 0.75
    z, state = sae.encode_with_state(x)
    z2 = z.clone()
    z2[:, feats] *= 1 - alpha
    expected = sae.decode(z2, state) - sae.decode(z, state)
    torch.testing.assert_close(-alpha * sae.contribution(z, feats, state), expected, rtol=1e-5, atol=1e-5)


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
    from audiosaebench.data.suites import load_suite
    from audiosaebench.evaluation import evaluate

    sae = fx.write_saelens_v6(tmp_path / "h", "topk", fx.random_params("topk", 16, 64), k=8,
                              model=str(tiny_models["hubert"]), hook="encoder.layers.1")
    rec = evaluate([str(sae)], "steering", suite=load_suite("toy", toy_dir), out=tmp_path / "o", progress=False)[0]
    assert rec["metrics"]["values"]["fpr_reduction_auc"] is None
    assert "Whisper" in rec["metrics"]["reasons"]["fpr_reduction_auc"]
