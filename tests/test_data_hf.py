"""The Hugging Face path of the full suite, on HF-style parquet files generated here."""

from __future__ import annotations

import io

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from audiosaebench.data.audio import pcm_sha256  # noqa: E402
from audiosaebench.data.full import prepare_full  # noqa: E402

SC_NAMES = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bed", "marvin", "_silence_"]


def _wav_bytes(x, sr=16000, fmt="WAV"):
    import soundfile as sf

    from audiosaebench.data.audio import pcm16

    buf = io.BytesIO()
    sf.write(buf, pcm16(x), sr, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def _tone(n, f):
    return (0.2 * np.sin(2 * np.pi * f * np.arange(n) / 16000)).astype(np.float32)


def _to_parquet(rows, features, path):
    """Write rows as a hub-style parquet file (schema carries the HF features metadata) without
    going through Audio.encode_example, which needs torchcodec in datasets >= 4."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pydict(rows, schema=features.arrow_schema), str(path))


@pytest.fixture
def hf_parquet(tmp_path):
    from datasets import Audio, ClassLabel, Features, Value

    out = {}
    waves = {}
    for split, spks in (("dev_clean", ("84", "251")), ("test_clean", ("61", "121"))):
        rows = {"id": [], "sex": [], "subset": [], "audio": [], "transcript": [], "words": [], "phonemes": []}
        for spk in spks:
            for u in range(3):
                uid = f"{spk}-100-{u:04d}"
                # one test-clean utterance is longer than Whisper's 30 s window, as some in LibriSpeech are
                x = _tone(16000 * 31 if uid == "121-100-0002" else 12000 + 1000 * u, 200 + int(spk) % 50)
                waves[uid] = x
                rows["id"].append(uid)
                rows["sex"].append("F" if spk in ("84", "61") else "M")
                rows["subset"].append(split)
                rows["audio"].append({"bytes": _wav_bytes(x, fmt="FLAC"), "path": f"{uid}.flac"})
                rows["transcript"].append("HELLO THERE")
                rows["words"].append([{"word": "hello", "start": 0.1, "end": 0.4}, {"word": "there", "start": 0.4, "end": 0.7}])
                rows["phonemes"].append([{"phoneme": p, "start": a, "end": b} for p, a, b in
                                         (("HH", 0.1, 0.2), ("AH0", 0.2, 0.3), ("L", 0.3, 0.4), ("DH", 0.4, 0.5), ("EH1", 0.5, 0.6), ("R", 0.6, 0.7))])
        ls_feats = Features({"id": Value("string"), "sex": Value("string"), "subset": Value("string"), "audio": Audio(),
                             "transcript": Value("string"),
                             "words": [{"word": Value("string"), "start": Value("float64"), "end": Value("float64")}],
                             "phonemes": [{"phoneme": Value("string"), "start": Value("float64"), "end": Value("float64")}]})
        _to_parquet(rows, ls_feats, tmp_path / f"ls-{split}.parquet")
    feats = Features({"file": Value("string"), "audio": Audio(), "label": ClassLabel(names=SC_NAMES),
                      "is_unknown": Value("bool"), "speaker_id": Value("string"), "utterance_id": Value("int8")})
    for split, spks in (("train", ("aa11", "bb22")), ("validation", ("cc33",)), ("test", ("dd44",))):
        rows = {k: [] for k in feats}
        for spk in spks:
            for li, word in enumerate(SC_NAMES[:-1]):
                rows["file"].append(f"{word}/{spk}_nohash_0.wav")
                rows["audio"].append({"bytes": _wav_bytes(_tone(16000, 300 + 20 * li)), "path": None})
                rows["label"].append(li)
                rows["is_unknown"].append(word in ("bed", "marvin"))
                rows["speaker_id"].append(spk)
                rows["utterance_id"].append(0)
        if split == "train":
            rows["file"].append("_background_noise_/white_noise.wav")
            rows["audio"].append({"bytes": _wav_bytes(0.1 * np.random.default_rng(0).standard_normal(16000 * 10)), "path": None})
            rows["label"].append(SC_NAMES.index("_silence_"))
            rows["is_unknown"].append(False)
            rows["speaker_id"].append(None)
            rows["utterance_id"].append(0)
        _to_parquet(rows, feats, tmp_path / f"sc-{split}.parquet")
    rows = {k: [] for k in ("filename", "fold", "target", "category", "esc10", "src_file", "take", "audio")}
    for t, cat in enumerate(("dog", "rain", "laughing")):
        for fold in range(1, 6):
            fn = f"{fold}-{t}00-A-{t}.wav"
            rows["filename"].append(fn)
            rows["fold"].append(fold)
            rows["target"].append(t)
            rows["category"].append(cat)
            rows["esc10"].append(True)
            rows["src_file"].append(f"{t}00")
            rows["take"].append("A")
            rows["audio"].append({"bytes": _wav_bytes(_tone(44100, 100 + 100 * t), sr=44100), "path": None})
    esc_feats = Features({"filename": Value("string"), "fold": Value("int64"), "target": Value("int64"),
                          "category": Value("string"), "esc10": Value("bool"), "src_file": Value("string"),
                          "take": Value("string"), "audio": Audio()})
    _to_parquet(rows, esc_feats, tmp_path / "esc.parquet")
    out = {"librispeech": str(tmp_path / "ls-{split}.parquet"), "speech_commands": str(tmp_path / "sc-{split}.parquet"),
           "esc50": str(tmp_path / "esc.parquet")}
    return out, waves


def test_full_suite_from_hf_parquet(tmp_path, hf_parquet):
    sources, waves = hf_parquet
    m = prepare_full(tmp_path / "full", from_hf=True, hf_sources=sources)
    st = m["speech_train"]
    assert [c.clip_id for c in st][:3] == ["84-100-0000", "84-100-0001", "84-100-0002"]
    c = st.clips[0]
    # the same audio gives the same PCM hash whatever the source
    assert c.pcm_sha256 == pcm_sha256(waves["84-100-0000"])
    assert c.labels["sex"] == "F" and c.labels["text"] == "HELLO THERE"
    assert [p[2] for p in c.labels["phones"]] == ["sil", "HH", "AH", "L", "DH", "EH", "R", "sil"]
    tr = m["commands_train"]
    kws = sorted({x.labels["keyword"] for x in tr})
    assert kws == sorted(["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_", "_silence_"])
    assert not ({x.speaker for x in tr} & {x.speaker for x in m["commands_test"]}) - {None}
    assert {x.labels["category"] for x in m["nonspeech_train"]} == {"dog", "rain"}  # laughing is a human vocal class
    assert {x.fold for x in m["nonspeech_test"]} == {5}
    from audiosaebench.data.suites import load_suite

    s = load_suite("full", tmp_path / "full")
    assert s.split("speech_test").sha256 == m["speech_test"].sha256


def test_missing_hf_dataset_is_one_line(tmp_path):
    from audiosaebench.data.hf_export import load_hf
    from audiosaebench.errors import DataError

    with pytest.raises(DataError, match="cannot load Hugging Face dataset") as e:
        load_hf("nobody/no-such-dataset", "train")
    assert "\n" not in str(e.value)


def test_every_task_runs_on_the_full_suite_replica(tmp_path, hf_parquet, tiny_en_dir):
    """`evaluate --tasks all` on the full suite's layout (a clip longer than 30 s included) with the
    real Whisper tiny.en: every task writes a valid result, a number or a stated reason."""
    from audiosaebench.data.suites import load_suite
    from audiosaebench.evaluation import evaluate
    from audiosaebench.registry import task_names
    from audiosaebench.sae.reference import random_sae

    sources, _ = hf_parquet
    prepare_full(tmp_path / "full", from_hf=True, hf_sources=sources)
    suite = load_suite("full", tmp_path / "full")
    assert max(c.duration_s for c in suite.split("speech_test")) > 30
    sae = random_sae(384, 1536, 32, "openai/whisper-tiny.en", "encoder.layers.2", seed=0)
    recs = evaluate([sae], "all", suite=suite, out=tmp_path / "out", progress=False)
    assert sorted(r["task"]["name"] for r in recs) == sorted(task_names())
    for r in recs:
        m = r["metrics"]
        assert m["values"][m["main_score"]] is not None or m["reasons"].get(m["main_score"]), r["task"]["name"]
    fid = next(r for r in recs if r["task"]["name"] == "fidelity")
    assert fid["details"]["splice_clips_too_long"] == 1 and fid["details"]["splice_clips"] == 5
