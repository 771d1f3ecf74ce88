"""fidelity's Whisper splice on clips that do not fit one 30 s window (LibriSpeech test-clean has
utterances of up to 35 s): such a clip is left out of the splice, counted, and the rest is scored."""

from __future__ import annotations

import numpy as np

from audiosaebench.data.audio import write_wav
from audiosaebench.data.layouts import _clip
from audiosaebench.data.manifest import Manifest
from audiosaebench.data.suites import Suite

MODEL = "openai/whisper-tiny.en"
HOOK = "encoder.layers.2"


def _manifest(root, name: str, seconds: list[float]) -> Manifest:
    rng = np.random.default_rng(0)
    clips = []
    for i, s in enumerate(seconds):
        n = int(s * 16_000)
        x = (0.1 * np.sin(2 * np.pi * 220 * np.arange(n) / 16_000) + 0.01 * rng.standard_normal(n)).astype(np.float32)
        write_wav(root / f"{name}-{i}.wav", x)
        clips.append(_clip(root, root / f"{name}-{i}.wav", f"{name}-{i}", speaker="s", labels={"text": "hello world"}))
    return Manifest(f"long-{name}", "test", "t1", tuple(clips), str(root))


def test_whisper_splice_leaves_out_clips_longer_than_one_window(tiny_en_dir, tmp_path):
    from audiosaebench.evaluation import evaluate
    from audiosaebench.sae.reference import identity_sae

    speech = _manifest(tmp_path, "speech", [2.0, 31.5, 3.0])
    other = _manifest(tmp_path, "other", [1.0])
    suite = Suite("long-clips", {"speech_test": speech, "nonspeech_test": other, "commands_test": other},
                  submittable=False)
    rec = evaluate([identity_sae(384, MODEL, HOOK)], "fidelity", suite=suite, out=tmp_path / "out", progress=False)[0]
    d, v = rec["details"], rec["metrics"]["values"]
    assert d["splice_clips"] == 2 and d["splice_clips_too_long"] == 1
    assert v["splice_recovered"] is not None and abs(v["splice_recovered"] - 1.0) < 1e-4, v
    # the long clip is still in the activation metrics (its two windows)
    assert rec["data"]["splits"][0]["n_clips"] == 3

    only_long = _manifest(tmp_path, "only", [30.5])
    suite = Suite("long-only", {"speech_test": only_long, "nonspeech_test": other, "commands_test": other},
                  submittable=False)
    rec = evaluate([identity_sae(384, MODEL, HOOK)], "fidelity", suite=suite, out=tmp_path / "out2", progress=False)[0]
    assert rec["metrics"]["values"]["splice_recovered"] is None
    assert "30 s" in rec["metrics"]["reasons"]["splice_recovered"]
    assert rec["details"]["splice_clips_too_long"] == 1


def test_whisper_splice_decodes_each_clip_up_to_a_limit_set_by_its_length(tiny_en_dir, tmp_path, monkeypatch):
    """fidelity 1.1.0: 8 tokens per second of the clip, 96 to 224 (1.0.0 stopped every clip at 96
    tokens, which cut LibriSpeech's longest utterances short in wer_clean and wer_sae)."""
    from audiosaebench.evaluation import evaluate
    from audiosaebench.models.whisper_decode import WhisperDecoder
    from audiosaebench.sae.reference import identity_sae

    asked = []
    decode = WhisperDecoder.decode_encoder_states

    def spy(self, enc, max_new_tokens=96, memory=None):
        asked.append(list(max_new_tokens))
        return decode(self, enc, max_new_tokens, memory)

    monkeypatch.setattr(WhisperDecoder, "decode_encoder_states", spy)
    speech = _manifest(tmp_path, "speech", [2.0, 14.2, 29.9])
    other = _manifest(tmp_path, "other", [1.0])
    suite = Suite("limits", {"speech_test": speech, "nonspeech_test": other, "commands_test": other}, submittable=False)
    rec = evaluate([identity_sae(384, MODEL, HOOK)], "fidelity", suite=suite, out=tmp_path / "out", progress=False)[0]
    assert asked == [[96, 114, 224]] * 2  # the clean and the spliced decode
    assert rec["config"]["max_new_tokens"] == 224 and rec["task"]["version"] == "1.1.0"
