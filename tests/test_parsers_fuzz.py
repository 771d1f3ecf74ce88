"""Property tests for the parsers that read untrusted files: checkpoints (cfg.json next to valid
weights) and manifests. Whatever the content, the answer is a loaded object or one one-line error of
the documented type; never another exception, never an allocation driven by a hostile number."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiosaebench.data.manifest import Clip, Manifest
from audiosaebench.errors import CheckpointError, DataError
from audiosaebench.sae import load_sae
from tests import factories as fx

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
D_IN, D_SAE = 6, 10


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    d = fx.write_saelens_v6(tmp_path_factory.mktemp("ckpt") / "s", "topk", fx.random_params("topk", D_IN, D_SAE), k=3)
    return d, json.loads((d / "cfg.json").read_text())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(["architecture", "d_in", "d_sae", "k", "normalize_activations",
                                                "apply_b_dec_to_input", "hook_name", "model_name", "dtype",
                                                "metadata", "rescale_acts_by_decoder_norm", "threshold"]),
                               JSON, min_size=1, max_size=4),
       drop=st.sets(st.sampled_from(["architecture", "d_in", "d_sae", "k"]), max_size=2))
def test_any_cfg_json_loads_or_gives_one_line_checkpoint_error(checkpoint, changes, drop):
    d, cfg = checkpoint
    bad = {k: v for k, v in {**cfg, **changes}.items() if k not in drop}
    (d / "cfg.json").write_text(json.dumps(bad))
    try:
        sae = load_sae(d)
    except CheckpointError as e:
        assert "\n" not in str(e)
        return
    finally:
        (d / "cfg.json").write_text(json.dumps(cfg))
    # if it loaded, it is the SAE the weights describe
    assert (sae.d_in, sae.d_sae) == (D_IN, D_SAE)
    assert sae.info.architecture in ("standard", "topk", "jumprelu", "gated")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=64))
def test_any_cfg_bytes_load_or_give_one_line_checkpoint_error(checkpoint, blob):
    d, cfg = checkpoint
    (d / "cfg.json").write_bytes(blob)
    try:
        load_sae(d)
    except CheckpointError as e:
        assert "\n" not in str(e)
    finally:
        (d / "cfg.json").write_text(json.dumps(cfg))


def _manifest_doc() -> dict:
    clip = Clip("a", "a.wav", 16000, 16000, "0" * 64, speaker="s1", labels={"keyword": "yes"})
    return json.loads(json.dumps({**Manifest("d", "test", "1", (clip,), ".").body()}))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(["top", "clip"]), key=st.text(max_size=12) | st.sampled_from(
    ["clips", "dataset", "split", "version", "sha256", "clip_id", "path", "n_samples", "sample_rate", "pcm_sha256",
     "speaker", "fold", "labels", "segment"]), value=JSON, delete=st.booleans())
def test_any_manifest_reads_or_gives_one_line_data_error(tmp_path_factory, where, key, value, delete):
    doc = _manifest_doc()
    target = doc if where == "top" else doc["clips"][0]
    if delete:
        target.pop(key, None)
    else:
        target[key] = value
    path = tmp_path_factory.mktemp("m") / "manifest.json"
    path.write_text(json.dumps(doc))
    try:
        m = Manifest.read(path)
    except DataError as e:
        assert "\n" not in str(e)
        return
    for c in m.clips:
        assert isinstance(c.n_samples, int) and c.n_samples >= 0 and c.sample_rate > 0
        assert isinstance(c.labels, dict) and (c.segment is None or 0 <= c.segment[0] < c.segment[1])
    assert isinstance(m.sha256, str)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=80) | st.text(max_size=80).map(str.encode))
def test_any_manifest_bytes_read_or_give_one_line_data_error(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("m") / "manifest.json"
    path.write_bytes(blob)
    with pytest.raises(DataError) as e:
        Manifest.read(path)
    assert "\n" not in str(e.value)


def test_non_audio_and_clipped_files(tmp_path):
    import soundfile as sf

    from audiosaebench.data.audio import load_audio

    fake = tmp_path / "speech.wav"
    fake.write_text("<html>not audio</html>")
    with pytest.raises(DataError, match="cannot decode audio"):
        load_audio(fake)
    clipped = tmp_path / "clipped.wav"
    x = np.clip(3 * np.sin(np.arange(16000) / 5), -1, 1).astype(np.float32)
    sf.write(str(clipped), x, 16000, subtype="PCM_16")
    y = load_audio(clipped)
    assert len(y) == 16000 and np.abs(y).max() <= 1.0 and np.isfinite(y).all()
    hot = tmp_path / "overrange.wav"  # float WAV beyond full scale: loaded as is, never NaN
    sf.write(str(hot), 4 * x, 16000, subtype="FLOAT")
    assert np.abs(load_audio(hot)).max() == pytest.approx(4.0)
