"""Loaders for the official layouts, on replica trees generated here."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from audiosaebench.data import layouts
from audiosaebench.data.audio import load_audio, pcm_sha256, write_wav
from audiosaebench.data.textgrid import write_textgrid
from audiosaebench.errors import DataError

RNG = np.random.default_rng(0)


def _tone(n, f=440.0):
    return (0.2 * np.sin(2 * np.pi * f * np.arange(n) / 16000)).astype(np.float32)


def _librispeech(base, split="dev-clean"):
    import soundfile as sf

    for spk in ("84", "174"):
        ch = base / "LibriSpeech" / split / spk / "121123"
        ch.mkdir(parents=True)
        lines = []
        for u in range(3):
            uid = f"{spk}-121123-{u:04d}"
            sf.write(str(ch / f"{uid}.flac"), (_tone(16000 + 800 * u) * 32767).astype(np.int16), 16000, format="FLAC")
            lines.append(f"{uid} HELLO WORLD NUMBER {u}")
            write_textgrid(base / "mfa" / split / spk / "121123" / f"{uid}.TextGrid",
                           {"words": [(0.0, 0.1, ""), (0.1, 0.5, "hello"), (0.5, 1.0, "world")],
                            "phones": [(0.0, 0.1, "sil"), (0.1, 0.3, "HH"), (0.3, 0.5, "AH0"), (0.5, 0.6, "sp"),
                                       (0.6, 0.8, "W"), (0.8, 0.9, "ER1"), (0.9, 1.0, "spn")]}, 1.0)
        (ch / f"{spk}-121123.trans.txt").write_text("\n".join(lines) + "\n")
    (base / "LibriSpeech" / "SPEAKERS.TXT").write_text(";ID |SEX| SUBSET |MINUTES| NAME\n84 | F | dev-clean | 25.19 | Christie\n174 | M | dev-clean | 28.0 | Peter\n")


def test_librispeech_with_mfa_alignments(tmp_path):
    _librispeech(tmp_path)
    m = layouts.librispeech_manifest(tmp_path, "dev-clean", alignments="mfa", max_per_speaker=2)
    assert [c.clip_id for c in m] == ["84-121123-0000", "84-121123-0001", "174-121123-0000", "174-121123-0001"]
    c = m.clips[0]
    assert c.labels["sex"] == "F" and c.labels["text"] == "HELLO WORLD NUMBER 0"
    assert [p[2] for p in c.labels["phones"]] == ["sil", "HH", "AH", "sil", "W", "ER", "sil"]
    assert c.pcm_sha256 == pcm_sha256(load_audio(tmp_path / c.path))
    again = layouts.librispeech_manifest(tmp_path, "dev-clean", alignments="mfa", max_per_speaker=2)
    assert again.sha256 == m.sha256
    (tmp_path / "mfa" / "dev-clean" / "174" / "121123" / "174-121123-0001.TextGrid").unlink()
    with pytest.raises(DataError, match="missing alignment TextGrid.*174-121123-0001"):
        layouts.librispeech_manifest(tmp_path, "dev-clean", alignments="mfa")
    with pytest.raises(DataError, match="LibriSpeech split folder"):
        layouts.librispeech_manifest(tmp_path, "test-clean")


def test_speech_commands_12_classes_unknown_cap_and_silence_rule(tmp_path):
    top = tmp_path / "speech_commands"
    val, test = [], []
    for s_i, spk in enumerate(("aaaa1111", "bbbb2222", "cccc3333")):
        for w_i, word in enumerate(("yes", "no", "marvin", "bed", "tree")):
            rel = f"{word}/{spk}_nohash_0.wav"
            write_wav(top / rel, _tone(16000, 300 + 50 * w_i))
            if s_i == 1:
                val.append(rel)
            elif s_i == 2:
                test.append(rel)
    write_wav(top / "_background_noise_" / "white_noise.wav", (0.1 * RNG.standard_normal(16000 * 12 + 500)).astype(np.float32))
    (top / "validation_list.txt").write_text("\n".join(val))
    (top / "testing_list.txt").write_text("\n".join(test))
    train = layouts.speech_commands_manifest(tmp_path, "training")
    kws = [c.labels["keyword"] for c in train]
    assert kws.count("yes") == 1 and kws.count("no") == 1
    assert kws.count("_unknown_") == 1  # capped at the mean keyword count (1)
    sil = [c for c in train if c.labels["keyword"] == "_silence_"]
    assert [c.segment for c in sil][:2] == [(32000, 48000), (48000, 64000)]  # slices 2..9 of 12
    assert len(sil) == 8  # 12 slices: 0 and 10 -> testing, 1 and 11 -> validation, 2..9 -> training
    testing = layouts.speech_commands_manifest(tmp_path, "testing")
    assert [c.segment for c in testing if c.labels["keyword"] == "_silence_"] == [(0, 16000), (160000, 176000)]
    assert len(testing.load(sil[0])) == 16000
    (top / "testing_list.txt").unlink()
    with pytest.raises(DataError, match="testing_list.txt"):
        layouts.speech_commands_manifest(tmp_path, "training")


def test_esc50_folds_and_exclusions(tmp_path):
    root = tmp_path / "ESC-50"
    rows = []
    for target, cat in enumerate(("dog", "rain", "coughing")):
        for fold in range(1, 6):
            fn = f"{fold}-10{target}-A-{target}.wav"
            write_wav(root / "audio" / fn, _tone(8000, 200 + 100 * target), sr=16000)
            rows.append({"filename": fn, "fold": fold, "target": target, "category": cat, "esc10": "True",
                         "src_file": f"10{target}", "take": "A"})
    (root / "meta").mkdir()
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tr = layouts.esc50_manifest(tmp_path, (1, 2, 3, 4), exclude=layouts.ESC50_HUMAN_VOCAL)
    assert len(tr) == 8 and {c.labels["category"] for c in tr} == {"dog", "rain"}
    te = layouts.esc50_manifest(tmp_path, (5,))
    assert {c.fold for c in te} == {5} and len(te) == 3
    (root / "audio" / "5-100-A-0.wav").write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="cannot decode audio .*5-100-A-0.wav"):
        layouts.esc50_manifest(tmp_path, (5,))


def test_audio_edge_cases(tmp_path):
    import soundfile as sf

    st = tmp_path / "stereo8k.wav"
    sf.write(str(st), np.stack([_tone(8000)[:8000], np.zeros(8000, np.float32)], 1), 8000)
    x = load_audio(st)
    assert len(x) == 16000 and np.abs(x).max() < 0.11  # averaged to mono, resampled to 16 kHz
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros((0,), np.float32), 16000)
    with pytest.raises(DataError, match="empty"):
        load_audio(empty)
    silent = tmp_path / "silent.wav"
    write_wav(silent, np.zeros(16000, np.float32))
    assert np.all(load_audio(silent) == 0)
