"""Activation store: reuse, equality with a direct forward, corruption and interruption."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from audiosaebench.activations import store
from audiosaebench.activations.extract import get_activations
from audiosaebench.data.toy import build_toy
from audiosaebench.models.loading import load_adapter


@pytest.fixture(scope="module")
def setup(tiny_models, toy_dir):
    return load_adapter(str(tiny_models["whisper"])), build_toy(toy_dir)["speech_test"]


def test_extract_matches_direct_forward_and_is_reused(home, setup, monkeypatch):
    ad, man = setup
    sets = get_activations(ad, ["encoder.layers.0", "encoder.layers.2"], man, batch_size=4, progress=False)
    s = sets["encoder.layers.2"]
    assert s.clip_ids == [c.clip_id for c in man]
    for i in (0, 3):
        wave = man.load(man.clips[i])
        b = ad.prepare([wave])
        direct = ad.activations(b, ["encoder.layers.2"])["encoder.layers.2"][0, : b.valid_frames[0]]
        np.testing.assert_allclose(s.clip(i), direct.numpy(), atol=1e-5)
    # second call: no forward pass at all
    monkeypatch.setattr(ad, "activations", lambda *a, **k: pytest.fail("forward ran on a warm cache"))
    again = get_activations(ad, ["layer_3"], man, progress=False)["encoder.layers.2"]
    assert again.key == s.key and again.n_frames == s.n_frames


def test_shards_and_chunks_span_boundaries(home, setup, monkeypatch):
    ad, man = setup
    monkeypatch.setattr(store, "SHARD_BYTES", 4 * 16 * 37)  # 37 rows per shard
    s = get_activations(ad, ["encoder.layers.1"], man, progress=False)["encoder.layers.1"]
    assert len(s.shards) > 3
    whole = np.concatenate([s.clip(i) for i in range(len(man))])
    chunks = np.concatenate([c for _, c in s.iter_chunks(50)])
    np.testing.assert_array_equal(whole, chunks)
    assert whole.shape == (s.n_frames, 16)


def test_corrupt_shard_is_rebuilt(home, setup, caplog):
    ad, man = setup
    s = get_activations(ad, ["encoder.layers.1"], man, progress=False)["encoder.layers.1"]
    ref = s.clip(2).copy()
    shard = s.directory / s.meta["shards"][0]["file"]
    data = bytearray(shard.read_bytes())
    data[-8:] = b"\xff" * 8
    shard.write_bytes(bytes(data))
    store._VERIFIED.clear()
    with caplog.at_level(logging.WARNING):
        s2 = get_activations(ad, ["encoder.layers.1"], man, progress=False)["encoder.layers.1"]
    assert "corrupt" in caplog.text
    np.testing.assert_array_equal(s2.clip(2), ref)


def test_interrupted_extraction_leaves_nothing_behind(home, setup, monkeypatch):
    ad, man = setup
    real = ad.activations
    calls = {"n": 0}

    def boom(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(ad, "activations", boom)
    with pytest.raises(KeyboardInterrupt):
        get_activations(ad, ["encoder.layers.0"], man, batch_size=2, progress=False)
    root = store.store_root()
    assert not [p for p in root.rglob("*") if p.is_dir() and len(p.name) == 64]
    assert not [p for p in root.rglob(".*tmp*")]
    monkeypatch.setattr(ad, "activations", real)
    s = get_activations(ad, ["encoder.layers.0"], man, batch_size=2, progress=False)["encoder.layers.0"]
    assert s.n_frames > 0


def test_wrong_audio_for_manifest_is_refused(home, setup, tmp_path):
    from dataclasses import replace

    from audiosaebench.errors import DataError

    ad, man = setup
    bad = replace(man, clips=(replace(man.clips[0], pcm_sha256="0" * 64),) + man.clips[1:])
    with pytest.raises(DataError, match="does not match the manifest"):
        get_activations(ad, ["encoder.layers.0"], bad, progress=False)


def test_forward_dtype_is_part_of_the_key(setup):
    from audiosaebench.activations.extract import store_fields

    ad, man = setup
    f32 = store.store_key(store_fields(ad, "encoder.layers.0", man))
    ad.model.to(torch.bfloat16)
    try:
        bf16 = store.store_key(store_fields(ad, "encoder.layers.0", man))
    finally:
        ad.model.to(torch.float32)
    assert f32 != bf16
