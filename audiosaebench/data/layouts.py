"""Manifests from the official folder layouts (the mini suite is written in the same layouts).

* LibriSpeech: ``LibriSpeech/<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` +
  ``<spk>-<chapter>.trans.txt``, speaker sex from ``LibriSpeech/SPEAKERS.TXT``; phone alignments
  from MFA TextGrids (a ``phones`` tier, optional ``words`` tier) in a folder mirroring the audio
  layout (``<alignments>/<split>/<spk>/<chapter>/<utt id>.TextGrid``).
* Speech Commands v0.02: ``<word>/<speaker>_nohash_<n>.wav`` + ``validation_list.txt`` +
  ``testing_list.txt`` + ``_background_noise_/*.wav``. 12 classes: the 10 keywords, ``_unknown_``
  (every other word) and ``_silence_``.
* ESC-50: ``meta/esc50.csv`` (filename, fold, target, category, esc10, src_file, take) + ``audio/``.

Deterministic selection rules (a change is a new manifest version):

* LibriSpeech: utterances in id order; at most ``max_per_speaker`` per speaker (first ones).
* Speech Commands: optionally at most ``max_per_class`` clips per word folder (the clips whose
  sha256(clip id) sort first); then ``_unknown_`` is capped at the mean number of clips per keyword
  class in the same list by the same rule.
* Speech Commands ``_silence_``: each background-noise file (sorted by name) is cut into
  non-overlapping 1 s slices (hop 1.0 s, the remainder dropped); slice ``j`` goes to the testing
  list if ``j % 10 == 0``, to validation if ``j % 10 == 1``, else to training.
* ESC-50: the requested folds, rows in file-name order, minus excluded categories.

Every clip's audio is decoded once to compute its 16 kHz PCM sha256.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from audiosaebench.data.audio import SAMPLE_RATE, load_audio, pcm_sha256
from audiosaebench.data.manifest import Clip, Manifest
from audiosaebench.data.phones import from_mfa
from audiosaebench.data.textgrid import read_textgrid
from audiosaebench.errors import DataError

SC_KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SC_BACKGROUND = "_background_noise_"
SC_SILENCE_HOP_S = 1.0
ESC50_HUMAN_VOCAL = ("crying_baby", "sneezing", "breathing", "coughing", "laughing", "snoring")


def _rel(path: Path, base: Path) -> str:
    return path.relative_to(base).as_posix()


def _clip(base: Path, path: Path, clip_id: str, **kw) -> Clip:
    x = load_audio(path)
    seg = kw.get("segment")
    if seg is not None:
        x = x[seg[0] : seg[1]]
    import soundfile as sf

    return Clip(clip_id=clip_id, path=_rel(path, base), n_samples=len(x), sample_rate=int(sf.info(str(path)).samplerate),
                pcm_sha256=pcm_sha256(x), **kw)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataError(f"missing {what}: {path}")
    return path


# ---------------------------------------------------------------------------------------------
# LibriSpeech
# ---------------------------------------------------------------------------------------------


def read_speakers_txt(path: Path) -> dict[str, str]:
    sex: dict[str, str] = {}
    if not path.exists():
        return sex
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(";") or "|" not in line:
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) >= 2:
            sex[parts[0]] = parts[1]
    return sex


def phone_intervals(textgrid: Path) -> tuple[list[list], list[list]]:
    tiers = read_textgrid(textgrid)
    phones_tier = tiers.get("phones") or next((v for k, v in tiers.items() if "phone" in k.lower()), None)
    if phones_tier is None:
        raise DataError(f"{textgrid} has no phones tier")
    phones = [[round(a, 6), round(b, 6), from_mfa(t)] for a, b, t in phones_tier]
    words = [[round(a, 6), round(b, 6), t] for a, b, t in tiers.get("words", []) if t.strip()]
    return phones, words


def librispeech_manifest(
    base: Path,
    split: str,
    *,
    root: str = "LibriSpeech",
    alignments: str | None = None,
    max_per_speaker: int | None = None,
    dataset: str = "librispeech",
    version: str = "1",
) -> Manifest:
    split_dir = _require(base / root / split, f"LibriSpeech split folder ({split})")
    sexes = read_speakers_txt(base / root / "SPEAKERS.TXT")
    clips = []
    for spk in sorted((d for d in split_dir.iterdir() if d.is_dir()), key=lambda d: (len(d.name), d.name)):
        n = 0
        for chapter in sorted((d for d in spk.iterdir() if d.is_dir()), key=lambda d: (len(d.name), d.name)):
            trans = _require(chapter / f"{spk.name}-{chapter.name}.trans.txt", "LibriSpeech transcript")
            rows = sorted(line.split(" ", 1) for line in trans.read_text(encoding="utf-8").splitlines() if line.strip())
            for utt_id, text in rows:
                if max_per_speaker is not None and n >= max_per_speaker:
                    break
                audio = _require(chapter / f"{utt_id}.flac", "LibriSpeech audio file")
                labels: dict = {"text": text.strip(), "sex": sexes.get(spk.name)}
                if alignments is not None:
                    tg = _require(base / alignments / split / spk.name / chapter.name / f"{utt_id}.TextGrid",
                                  "alignment TextGrid")
                    labels["phones"], labels["words"] = phone_intervals(tg)
                clips.append(_clip(base, audio, utt_id, speaker=spk.name, labels=labels))
                n += 1
    if not clips:
        raise DataError(f"no utterances found under {split_dir}")
    return Manifest(dataset, split, version, tuple(clips), str(base))


# ---------------------------------------------------------------------------------------------
# Speech Commands v0.02
# ---------------------------------------------------------------------------------------------


def _sha_key(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def _first_by_hash(clips: list[Clip], n: int) -> list[Clip]:
    """The ``n`` clips whose sha256(clip id) sort first, back in clip-id order (deterministic subset)."""
    return sorted(sorted(clips, key=lambda c: _sha_key(c.clip_id))[:n], key=lambda c: c.clip_id)


def speech_commands_manifest(
    base: Path,
    which: str,
    *,
    root: str = "speech_commands",
    max_per_class: int | None = None,
    dataset: str = "speech_commands_v0.02",
    version: str = "1",
) -> Manifest:
    if which not in ("training", "validation", "testing"):
        raise ValueError(which)
    top = _require(base / root, "Speech Commands folder")
    lists = {
        name: set(_require(top / f"{name}_list.txt", f"Speech Commands {name}_list.txt").read_text().split())
        for name in ("validation", "testing")
    }
    by_class: dict[str, list[Clip]] = {}
    for word_dir in sorted(d for d in top.iterdir() if d.is_dir() and d.name != SC_BACKGROUND and not d.name.startswith(".")):
        for wav in sorted(word_dir.glob("*.wav")):
            rel = f"{word_dir.name}/{wav.name}"
            member = "testing" if rel in lists["testing"] else "validation" if rel in lists["validation"] else "training"
            if member != which:
                continue
            label = word_dir.name if word_dir.name in SC_KEYWORDS else "_unknown_"
            speaker = wav.name.split("_nohash_")[0]
            by_class.setdefault(label, []).append(
                _clip(base, wav, rel, speaker=speaker, labels={"keyword": label, "word": word_dir.name})
            )
    if max_per_class is not None:
        by_class = {k: _first_by_hash(v, max_per_class) for k, v in by_class.items()}
    keyword_counts = [len(v) for k, v in by_class.items() if k in SC_KEYWORDS]
    if "_unknown_" in by_class and keyword_counts:
        cap = int(round(sum(keyword_counts) / len(keyword_counts)))
        by_class["_unknown_"] = _first_by_hash(by_class["_unknown_"], cap)
    silence: list[Clip] = []
    bg = top / SC_BACKGROUND
    for f in sorted(bg.glob("*.wav")) if bg.exists() else []:
        n = len(load_audio(f))
        hop = int(SC_SILENCE_HOP_S * SAMPLE_RATE)
        for j in range(n // hop):
            member = "testing" if j % 10 == 0 else "validation" if j % 10 == 1 else "training"
            if member == which and (max_per_class is None or len(silence) < max_per_class):
                silence.append(_clip(base, f, f"{SC_BACKGROUND}/{f.name}#{j}", segment=(j * hop, (j + 1) * hop),
                                     speaker=None, labels={"keyword": "_silence_", "word": "_silence_"}))
    clips = [c for k in sorted(by_class) for c in by_class[k]] + silence
    if not clips:
        raise DataError(f"no clips in the Speech Commands {which} split under {top}")
    return Manifest(dataset, which, version, tuple(clips), str(base))


# ---------------------------------------------------------------------------------------------
# ESC-50
# ---------------------------------------------------------------------------------------------


def esc50_manifest(
    base: Path,
    folds: tuple[int, ...],
    *,
    root: str = "ESC-50",
    exclude: tuple[str, ...] = (),
    dataset: str = "esc50",
    split: str | None = None,
    version: str = "1",
) -> Manifest:
    meta = _require(base / root / "meta" / "esc50.csv", "ESC-50 meta/esc50.csv")
    with open(meta, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    need = {"filename", "fold", "target", "category"}
    if not rows or not need <= set(rows[0]):
        raise DataError(f"{meta} must have columns {', '.join(sorted(need))}")
    clips = []
    for r in sorted(rows, key=lambda r: r["filename"]):
        if int(r["fold"]) not in folds or r["category"] in exclude:
            continue
        audio = _require(base / root / "audio" / r["filename"], "ESC-50 audio file")
        clips.append(_clip(base, audio, r["filename"], fold=int(r["fold"]),
                           labels={"category": r["category"], "target": int(r["target"]),
                                   "esc10": str(r.get("esc10", "")).lower() == "true"}))
    if not clips:
        raise DataError(f"no ESC-50 clips in folds {folds} under {base / root}")
    name = split or "folds-" + "".join(str(f) for f in folds)
    return Manifest(dataset, name, version, tuple(clips), str(base))
