"""The embedded mini suite, generated on the user's machine from pip-installed parts only.

* **mini-speech** (LibriSpeech layout + TextGrid phone alignments): the project's own sentences
  (:mod:`audiosaebench.data.sentences`) spoken by espeak-ng, 12 speakers (accent x variant x pitch,
  120-150 wpm), 8 train / 4 test, speaker- and sentence-disjoint, 12 utterances each; phone
  timings are espeak's exact event samples mapped to the 39 ARPAbet classes. Test voices were
  chosen among those Whisper tiny.en transcribes without hallucinating (``en+f2``, ``en+f4`` and
  the Scottish klatt variants gave WER > 0.9 on held-out sentences).
* **mini-commands** (Speech Commands v0.02 layout + list files): the 10 keywords and _unknown_
  words from 14 voices (8 training, 2 validation, 4 testing), 1 s clips with random placement,
  gain and additive background noise at 10-30 dB SNR; _silence_ from six generated 5 s
  background-noise files (the same 1 s slicing rule as the full suite).
* **mini-esc** (ESC-50 layout): 10 procedurally synthesised sound classes x 10 clips, 5 s at
  44.1 kHz, 5 folds (folds 1-4 train, fold 5 test).

Every random choice is seeded from the clip's own name, so the output is bit-identical on rerun
and independent of the order of generation.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from audiosaebench.data import layouts
from audiosaebench.data.audio import SAMPLE_RATE, pcm16, resample, write_wav
from audiosaebench.data.espeak import EspeakSynth, Utterance
from audiosaebench.data.manifest import Manifest
from audiosaebench.data.phones import SILENCE, from_espeak
from audiosaebench.data.sentences import N_TRAIN_SENTENCES, SENTENCES
from audiosaebench.data.textgrid import write_textgrid
from audiosaebench.errors import DataError

log = logging.getLogger(__name__)

MINI_VERSION = "mini-1"
UTTS_PER_SPEAKER = 12
# (speaker id, espeak voice, pitch 0-99, rate wpm, sex, split)
SPEECH_SPEAKERS = (
    ("9001", "en-us+m3", 40, 135, "M", "train"),
    ("9002", "en+m1", 55, 125, "M", "train"),
    ("9003", "en-gb-scotland+m2", 35, 140, "M", "train"),
    ("9004", "en-gb-x-rp+f2", 70, 130, "F", "train"),
    ("9005", "en-029+klatt", 50, 120, "M", "train"),
    ("9006", "en-gb-x-gbclan+m4", 45, 150, "M", "train"),
    ("9007", "en-us+f3", 75, 135, "F", "train"),
    ("9008", "en-gb-x-gbcwmd+m5", 30, 130, "M", "train"),
    ("9101", "en-us+m1", 50, 130, "M", "test"),
    ("9102", "en-gb-x-rp+m6", 40, 140, "M", "test"),
    ("9103", "en-us+f2", 70, 130, "F", "test"),
    ("9104", "en-gb-x-rp+m3", 45, 135, "M", "test"),
)
SPEECH_SPLITS = {"train": "train-mini", "test": "test-mini"}
COMMAND_VOICES = (
    ("en-us+m2", 45, 150, "training"), ("en+m3", 60, 160, "training"), ("en-gb-x-rp+m1", 35, 145, "training"),
    ("en-029+m4", 50, 155, "training"), ("en-us+f2", 72, 150, "training"), ("en-gb-scotland+m6", 40, 140, "training"),
    ("en-gb-x-gbclan+klatt", 55, 160, "training"), ("en+f5", 68, 150, "training"),
    ("en-us+m7", 42, 150, "validation"), ("en-gb-x-gbcwmd+f3", 70, 145, "validation"),
    ("en-us+klatt3", 50, 150, "testing"), ("en-gb-x-rp+m7", 38, 155, "testing"),
    ("en-us+f5", 70, 145, "testing"), ("en-029+m1", 48, 160, "testing"),
)
UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow")
NOISES = ("white_noise", "pink_noise", "brown_noise", "hum", "running_tap", "dishes")
ESC_CLASSES = ("pure_tone", "chirp", "fm_siren", "white_noise", "pink_noise", "brown_noise", "click_train",
               "rain", "engine_hum", "bird_trill")
ESC_SR = 44_100
ESC_CLIPS_PER_CLASS = 10


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))


def _librispeech_text(s: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^A-Z' ]", " ", s.upper())).strip()


# ---------------------------------------------------------------------------------------------
# mini-speech
# ---------------------------------------------------------------------------------------------


def _phone_tier(events: list[tuple[str, int]], sr: int, n_samples: int) -> list[tuple[float, float, str]]:
    """espeak phoneme events -> contiguous intervals in seconds, silence outside phones."""
    marks: list[tuple[int, str]] = []
    for name, sample in events:
        if name == "<end>":
            marks.append((sample, SILENCE))
            continue
        label = from_espeak(name)
        if label is None:  # a modifier: the previous phone continues
            continue
        marks.append((sample, label))
    marks.sort(key=lambda m: m[0])
    ivs: list[tuple[float, float, str]] = []
    cur_start, cur_label = 0, SILENCE
    for sample, label in marks:
        sample = min(max(sample, 0), n_samples)
        if label == cur_label:
            continue
        if sample > cur_start:
            ivs.append((cur_start / sr, sample / sr, "" if cur_label == SILENCE else cur_label))
        cur_start, cur_label = sample, label
    if n_samples > cur_start:
        ivs.append((cur_start / sr, n_samples / sr, "" if cur_label == SILENCE else cur_label))
    return ivs


def _word_tier(text: str, words: list[tuple[int, int, int]], phones: list[tuple[float, float, str]], sr: int) -> list:
    speech_end = max((b for a, b, t in phones if t), default=0.0)
    ivs = []
    for i, (pos, length, sample) in enumerate(words):
        start = sample / sr
        end = words[i + 1][2] / sr if i + 1 < len(words) else speech_end
        w = text.encode("utf-8")[max(pos - 1, 0) : max(pos - 1, 0) + length].decode("utf-8", "replace")
        w = re.sub(r"[^A-Za-z']", "", w).upper()
        if w and end > start:
            ivs.append((start, end, w))
    return ivs


def build_speech(base: Path, synth: EspeakSynth) -> None:
    lib = base / "LibriSpeech"
    speakers_txt = ["; ID | SEX | SUBSET | MINUTES | NAME (generated by audiosaebench: espeak-ng voice)"]
    train_pool = SENTENCES[:N_TRAIN_SENTENCES]
    test_pool = SENTENCES[N_TRAIN_SENTENCES:]
    counters = {"train": 0, "test": 0}
    for spk, voice, pitch, rate, sex, split in SPEECH_SPEAKERS:
        pool = train_pool if split == "train" else test_pool
        i = counters[split]
        counters[split] += 1
        step = 6 if split == "train" else 7
        sentences = [pool[(i * step + j) % len(pool)] for j in range(UTTS_PER_SPEAKER)]
        chapter = "1"
        folder = lib / SPEECH_SPLITS[split] / spk / chapter
        folder.mkdir(parents=True, exist_ok=True)
        trans = []
        for j, text in enumerate(sentences):
            utt = f"{spk}-{chapter}-{j:04d}"
            audio, sr, phones, words = synth.synth(Utterance(text, voice, rate, pitch))
            x = resample(audio.astype(np.float32) / 32768.0, sr)
            import soundfile as sf

            sf.write(str(folder / f"{utt}.flac"), pcm16(x),
                     SAMPLE_RATE, subtype="PCM_16", format="FLAC")
            ptier = _phone_tier(phones, sr, len(audio))
            write_textgrid(base / "alignments" / SPEECH_SPLITS[split] / spk / chapter / f"{utt}.TextGrid",
                           {"words": _word_tier(text, words, ptier, sr), "phones": ptier}, len(audio) / sr)
            trans.append(f"{utt} {_librispeech_text(text)}")
        (folder / f"{spk}-{chapter}.trans.txt").write_text("\n".join(trans) + "\n")
        speakers_txt.append(f"{spk} | {sex} | {SPEECH_SPLITS[split]} | 0.00 | espeak {voice} pitch {pitch} rate {rate}")
    (lib / "SPEAKERS.TXT").write_text("\n".join(speakers_txt) + "\n")


# ---------------------------------------------------------------------------------------------
# noise and mini-commands
# ---------------------------------------------------------------------------------------------


def _coloured(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / f ** (exponent / 2), n)
    return y / (np.abs(y).max() + 1e-12)


def _noise(kind: str, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    if kind == "white_noise":
        y = rng.standard_normal(n)
    elif kind == "pink_noise":
        y = _coloured(rng, n, 1.0)
    elif kind == "brown_noise":
        y = _coloured(rng, n, 2.0)
    elif kind == "hum":
        f0 = rng.uniform(48, 62)
        y = sum(np.sin(2 * np.pi * h * f0 * t + rng.uniform(0, 6.28)) / h for h in range(1, 8)) + 0.1 * rng.standard_normal(n)
    elif kind == "running_tap":
        from scipy.signal import butter, sosfilt

        sos = butter(4, [rng.uniform(500, 1500), rng.uniform(3000, 6000)], btype="band", fs=sr, output="sos")
        y = sosfilt(sos, rng.standard_normal(n)) * (1 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 8) * t))
    else:  # dishes: sparse decaying clicks
        y = np.zeros(n)
        for pos in rng.integers(0, n, max(1, int(n / sr * rng.uniform(3, 10)))):
            length = min(n - pos, int(0.08 * sr))
            y[pos : pos + length] += rng.uniform(0.3, 1) * np.sin(2 * np.pi * rng.uniform(1500, 5000) * np.arange(length) / sr) * np.exp(-np.arange(length) / (0.01 * sr))
        y += 0.02 * rng.standard_normal(n)
    y = np.asarray(y, dtype=np.float64)
    return (y / (np.abs(y).max() + 1e-12)).astype(np.float32)


def _trim(x: np.ndarray, thresh: float = 0.01) -> np.ndarray:
    idx = np.flatnonzero(np.abs(x) > thresh)
    return x[idx[0] : idx[-1] + 1] if len(idx) else x


def build_commands(base: Path, synth: EspeakSynth) -> None:
    top = base / "speech_commands"
    bg = top / layouts.SC_BACKGROUND
    noises = {}
    for kind in NOISES:
        y = 0.3 * _noise(kind, _rng(f"bg/{kind}"), 5 * SAMPLE_RATE, SAMPLE_RATE)
        write_wav(bg / f"{kind}.wav", y)
        noises[kind] = y
    lists: dict[str, list[str]] = {"validation": [], "testing": []}
    for vi, (voice, pitch, rate, member) in enumerate(COMMAND_VOICES):
        speaker = hashlib.sha256(f"mini-commands/{voice}/{pitch}/{rate}".encode()).hexdigest()[:8]
        unknown = [UNKNOWN_WORDS[(3 * vi + j) % len(UNKNOWN_WORDS)] for j in range(3)]
        for word in (*layouts.SC_KEYWORDS, *unknown):
            rel = f"{word}/{speaker}_nohash_0.wav"
            rng = _rng(f"mini-commands/{rel}")
            audio, sr, _, _ = synth.synth(Utterance(word, voice, rate, pitch))
            x = _trim(resample(audio.astype(np.float32) / 32768.0, sr))[:SAMPLE_RATE]
            clip = np.zeros(SAMPLE_RATE, np.float32)
            start = int(rng.integers(0, SAMPLE_RATE - len(x) + 1))
            clip[start : start + len(x)] = x * rng.uniform(0.3, 0.9) / (np.abs(x).max() + 1e-9)
            noise = noises[NOISES[int(rng.integers(len(NOISES)))]]
            off = int(rng.integers(0, len(noise) - SAMPLE_RATE))
            seg = noise[off : off + SAMPLE_RATE]
            snr_db = rng.uniform(10, 30)
            p_sig = float(np.mean(clip[start : start + len(x)] ** 2)) + 1e-12
            seg = seg * np.sqrt(p_sig / (np.mean(seg**2) + 1e-12) / 10 ** (snr_db / 10))
            write_wav(top / rel, np.clip(clip + seg, -1, 1))
            if member in lists:
                lists[member].append(rel)
    for name, rows in lists.items():
        (top / f"{name}_list.txt").write_text("\n".join(sorted(rows)) + "\n")


# ---------------------------------------------------------------------------------------------
# mini-esc
# ---------------------------------------------------------------------------------------------


def _esc_sound(cls: str, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    y: Any
    f0: Any
    t = np.arange(n) / sr
    env = np.clip(np.minimum(t / rng.uniform(0.05, 0.5), (t[-1] - t) / rng.uniform(0.05, 0.5)), 0, 1)
    if cls == "pure_tone":
        y = np.sin(2 * np.pi * rng.uniform(200, 2000) * t) * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.2, 2) * t))
    elif cls == "chirp":
        f0, f1 = rng.uniform(100, 800), rng.uniform(2000, 8000)
        if rng.random() < 0.5:
            f0, f1 = f1, f0
        period = rng.uniform(0.5, 2.5)
        frac = (t % period) / period
        y = np.sin(2 * np.pi * np.cumsum(f0 + (f1 - f0) * frac) / sr)
    elif cls == "fm_siren":
        fc, depth, rate = rng.uniform(600, 1200), rng.uniform(200, 500), rng.uniform(0.5, 3)
        y = np.sin(2 * np.pi * np.cumsum(fc + depth * np.sin(2 * np.pi * rate * t)) / sr)
    elif cls in ("white_noise", "pink_noise", "brown_noise"):
        y = _noise(cls, rng, n, sr)
    elif cls == "click_train":
        y = np.zeros(n)
        y[:: int(sr / rng.uniform(5, 40))] = 1.0
        y = np.convolve(y, np.hanning(int(0.002 * sr)), "same")
    elif cls == "rain":
        y = np.zeros(n)
        for pos in rng.integers(0, n, int(rng.uniform(200, 800) * n / sr)):
            length = min(n - pos, int(0.01 * sr))
            y[pos : pos + length] += rng.uniform(0.2, 1) * rng.standard_normal(length) * np.exp(-np.arange(length) / (0.002 * sr))
        y += 0.05 * _coloured(rng, n, 1.0)
    elif cls == "engine_hum":
        f0 = rng.uniform(30, 80) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
        ph = 2 * np.pi * np.cumsum(f0) / sr
        y = sum(np.sin(h * ph) / h**0.7 for h in range(1, 20)) + 0.2 * _coloured(rng, n, 2.0)
    else:  # bird_trill
        y = np.zeros(n)
        period = rng.uniform(0.08, 0.2)
        dur = period * rng.uniform(0.4, 0.7)
        base_f = rng.uniform(2000, 6000)
        for s in np.arange(rng.uniform(0, 0.5), t[-1] - dur, period):
            i0, m = int(s * sr), int(dur * sr)
            tt = np.arange(m) / sr
            y[i0 : i0 + m] += np.sin(2 * np.pi * (base_f * tt + rng.uniform(500, 1500) * tt**2 / dur)) * np.hanning(m)
    y = np.asarray(y, dtype=np.float64) * env
    return (rng.uniform(0.2, 0.8) * y / (np.abs(y).max() + 1e-12)).astype(np.float32)


def build_esc(base: Path) -> None:
    root = base / "ESC-50"
    rows = []
    for target, cls in enumerate(ESC_CLASSES):
        for i in range(ESC_CLIPS_PER_CLASS):
            fold = i % 5 + 1
            src = f"{900000 + 100 * target + i:06d}"
            fname = f"{fold}-{src}-A-{target}.wav"
            y = _esc_sound(cls, _rng(f"mini-esc/{fname}"), 5 * ESC_SR, ESC_SR)
            write_wav(root / "audio" / fname, y, sr=ESC_SR)
            rows.append({"filename": fname, "fold": fold, "target": target, "category": cls, "esc10": "False",
                         "src_file": src, "take": "A"})
    (root / "meta").mkdir(parents=True, exist_ok=True)
    with open(root / "meta" / "esc50.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(sorted(rows, key=lambda r: r["filename"]))


# ---------------------------------------------------------------------------------------------
# manifests and the suite index
# ---------------------------------------------------------------------------------------------


def mini_manifests(base: Path) -> dict[str, Manifest]:
    v = MINI_VERSION
    return {
        "speech_train": layouts.librispeech_manifest(base, "train-mini", alignments="alignments", dataset="mini-speech", version=v),
        "speech_test": layouts.librispeech_manifest(base, "test-mini", alignments="alignments", dataset="mini-speech", version=v),
        "commands_train": layouts.speech_commands_manifest(base, "training", dataset="mini-commands", version=v),
        "commands_val": layouts.speech_commands_manifest(base, "validation", dataset="mini-commands", version=v),
        "commands_test": layouts.speech_commands_manifest(base, "testing", dataset="mini-commands", version=v),
        "nonspeech_train": layouts.esc50_manifest(base, (1, 2, 3, 4), dataset="mini-esc", split="folds-1234", version=v),
        "nonspeech_test": layouts.esc50_manifest(base, (5,), dataset="mini-esc", split="fold-5", version=v),
    }


def expected_hashes() -> dict[str, str]:
    from importlib import resources

    try:
        return json.loads(resources.files("audiosaebench.data").joinpath("mini_expected.json").read_text())["manifests"]
    except FileNotFoundError:
        return {}


def compare_expected(manifests: dict[str, Manifest]) -> list[str]:
    exp = expected_hashes()
    out = []
    for role, m in manifests.items():
        if role in exp and exp[role] != m.sha256:
            out.append(f"{role}: manifest sha256 {m.sha256[:12]} differs from the shipped {exp[role][:12]} "
                       "(another espeak-ng or libsndfile build?); compare results only within one manifest hash")
    return out


def prepare_mini(base: Path, force: bool = False) -> tuple[dict[str, Manifest], list[str]]:
    """Build (or reuse) the mini suite under ``base``; return its manifests and any hash warnings."""
    index = base / "suite.json"
    if index.exists() and not force:
        from audiosaebench.data.suites import load_suite

        s = load_suite("mini", base)
        return s.splits, compare_expected(s.splits)
    tmp = base.with_name(base.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with EspeakSynth() as synth:
            build_speech(tmp, synth)
            build_commands(tmp, synth)
        build_esc(tmp)
        manifests = mini_manifests(tmp)
        for role, m in manifests.items():
            m.write(tmp / "manifests" / f"{role}.json")
        (tmp / "suite.json").write_text(json.dumps(
            {"suite": "mini", "version": MINI_VERSION,
             "splits": {role: f"manifests/{role}.json" for role in manifests}}, indent=1, sort_keys=True) + "\n")
        if base.exists():
            shutil.rmtree(base)
        tmp.rename(base)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    from audiosaebench.data.suites import load_suite

    s = load_suite("mini", base)
    warnings = compare_expected(s.splits)
    for w in warnings:
        log.warning(w)
    if not s.splits:
        raise DataError("the mini suite came out empty")
    return s.splits, warnings
