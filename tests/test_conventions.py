"""Hook-point aliases and frame conventions (pure Python)."""

from __future__ import annotations

import pytest

from audiosaebench.errors import HookError
from audiosaebench.models import frames
from audiosaebench.models.hooks import canonical_hook


@pytest.mark.parametrize(
    "alias, canonical",
    [
        ("encoder.layers.3", "encoder.layers.3"),
        ("blocks.3.hook_resid_post", "encoder.layers.3"),
        ("encoder.blocks.3", "encoder.layers.3"),
        ("layer_4", "encoder.layers.3"),
        ("model.encoder.layers.3", "encoder.layers.3"),
        ("hubert.encoder.layers.3", "encoder.layers.3"),
        ("model.encoder.layers[3].output", "encoder.layers.3"),
        ("encoder.layer_norm", "encoder.layer_norm"),
        ("encoder.ln_post", "encoder.layer_norm"),
        ("model.encoder.layer_norm", "encoder.layer_norm"),
    ],
)
def test_hook_aliases(alias, canonical):
    assert canonical_hook(alias).name == canonical


@pytest.mark.parametrize("bad", ["", "layer_0", "decoder.layers.1", "encoder.layers.x", "blocks.1.hook_mlp_out"])
def test_bad_hooks(bad):
    with pytest.raises(HookError):
        canonical_hook(bad)


def test_whisper_frames():
    assert frames.whisper_valid_frames(0) == 0
    assert frames.whisper_valid_frames(1) == 1
    assert frames.whisper_valid_frames(320) == 1
    assert frames.whisper_valid_frames(321) == 2
    assert frames.whisper_valid_frames(16000) == 50
    assert frames.whisper_valid_frames(40 * 16000) == 1500
    assert frames.whisper_windows(70 * 16000) == [(0, 480000), (480000, 960000), (960000, 1120000)]
    assert frames.whisper_frame_centre_s(50) == 1.0


def test_ssl_closed_form_equals_conv_stack():
    for n in list(range(0, 2000, 7)) + [16000, 16001, 48000 + 399]:
        assert frames.ssl_frames(n) == frames.ssl_frames_by_conv(n), n
    assert frames.ssl_frames(16000) == 49
    assert frames.ssl_frame_centre_s(0) == 200 / 16000
