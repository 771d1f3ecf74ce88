"""Hugging Face datasets -> the official folder layouts (then the layout loaders build manifests).

Audio columns are read with ``Audio(decode=False)`` and decoded with soundfile, so no
torchcodec/FFmpeg is needed (``datasets`` >= 4 decodes through torchcodec). A source is a hub id
(read from the local HF cache when ``HF_HUB_OFFLINE=1``) or a local parquet file / folder of
parquet files with the same columns. Supported schemas:

* ``gilkeyio/librispeech-alignments`` (CC-BY-4.0): id, sex, audio, transcript,
  words [{word, start, end}], phonemes [{phoneme, start, end}]; splits ``dev_clean``, ``test_clean``.
* ``openslr/librispeech_asr``: id, speaker_id, chapter_id, audio, text (config ``clean``; splits
  ``validation`` = dev-clean, ``test`` = test-clean). No alignments: pair it with the above.
* ``google/speech_commands`` (config ``v0.02``): file, audio, label (ClassLabel), is_unknown,
  speaker_id, utterance_id; ``_silence_`` rows are the long background-noise files.
* ESC-50 mirrors (e.g. ``ashraq/esc50``): filename, fold, target, category, esc10, src_file, take, audio.

Because every clip's manifest row carries the sha256 of its 16 kHz PCM, the same audio gives the
same manifest whichever source it came from.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np

from audiosaebench.data.audio import pcm16, write_wav
from audiosaebench.data.textgrid import write_textgrid
from audiosaebench.errors import DataError


def load_hf(ref: str, split: str = "train", config: str | None = None, revision: str | None = None) -> Any:
    try:
        import datasets
    except ImportError:
        raise DataError("reading Hugging Face datasets needs `pip install datasets`") from None
    p = Path(ref).expanduser()
    try:
        if p.exists():
            files = [str(f) for f in sorted(p.glob("**/*.parquet"))] if p.is_dir() else [str(p)]
            if not files:
                raise DataError(f"no parquet files under {p}")
            ds = datasets.load_dataset("parquet", data_files=files, split="train")
        else:
            ds = datasets.load_dataset(ref, config, split=split, revision=revision)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - offline/missing/corrupt: one message
        raise DataError(f"cannot load Hugging Face dataset {ref!r} ({config}, {split}): {str(e).splitlines()[0][:200]}") from None
    if "audio" in ds.column_names:
        ds = ds.cast_column("audio", datasets.Audio(decode=False))
    return ds


def _decode(audio: dict) -> tuple[np.ndarray, int]:
    import soundfile as sf

    if audio.get("bytes"):
        data, sr = sf.read(io.BytesIO(audio["bytes"]), dtype="float32", always_2d=True)
    elif audio.get("path") and Path(audio["path"]).exists():
        data, sr = sf.read(audio["path"], dtype="float32", always_2d=True)
    else:
        raise DataError(f"audio entry has neither bytes nor a readable path ({audio.get('path')})")
    return data.mean(axis=1).astype(np.float32), int(sr)


def _write_flac(path: Path, x: np.ndarray, sr: int) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), pcm16(x), sr, format="FLAC", subtype="PCM_16")


def export_librispeech(ds: Any, base: Path, split: str, *, root: str = "LibriSpeech", alignments: str = "alignments") -> int:
    """Write LibriSpeech layout (+ TextGrids when the rows carry phonemes) for one split."""
    trans: dict[tuple[str, str], list[str]] = {}
    sexes: dict[str, str] = {}
    n = 0
    for row in ds:
        uid = row["id"]
        spk, chapter, _ = uid.split("-")
        x, sr = _decode(row["audio"])
        _write_flac(base / root / split / spk / chapter / f"{uid}.flac", x, sr)
        trans.setdefault((spk, chapter), []).append(f"{uid} {(row.get('transcript') or row.get('text') or '').strip().upper()}")
        if row.get("sex"):
            sexes[spk] = str(row["sex"]).upper()[:1]
        if row.get("phonemes") is not None:
            dur = len(x) / sr
            phones = [(float(p["start"]), float(p["end"]), str(p["phoneme"])) for p in row["phonemes"]]
            words = [(float(w["start"]), float(w["end"]), str(w["word"])) for w in row.get("words") or []]
            write_textgrid(base / alignments / split / spk / chapter / f"{uid}.TextGrid",
                           {"words": _fill(words, dur), "phones": _fill(phones, dur)}, dur)
        n += 1
    for (spk, chapter), lines in trans.items():
        (base / root / split / spk / chapter / f"{spk}-{chapter}.trans.txt").write_text("\n".join(sorted(lines)) + "\n")
    if sexes:
        spk_file = base / root / "SPEAKERS.TXT"
        known = {}
        if spk_file.exists():
            from audiosaebench.data.layouts import read_speakers_txt

            known = read_speakers_txt(spk_file)
        known.update(sexes)
        spk_file.write_text("; ID | SEX | SUBSET | MINUTES | NAME\n" + "".join(f"{k} | {v} | | | \n" for k, v in sorted(known.items())))
    return n


def _fill(ivs: list[tuple[float, float, str]], dur: float) -> list[tuple[float, float, str]]:
    """Sort intervals and fill gaps with empty (silence) intervals, as MFA TextGrids have."""
    out: list[tuple[float, float, str]] = []
    t = 0.0
    for a, b, lab in sorted(ivs):
        if a > t + 1e-6:
            out.append((t, a, ""))
        out.append((a, b, lab))
        t = max(t, b)
    if dur > t + 1e-6:
        out.append((t, dur, ""))
    return out


def export_speech_commands(splits: dict[str, Any], base: Path, *, root: str = "speech_commands") -> int:
    """``splits`` maps train/validation/test to datasets; writes the v0.02 layout and list files."""
    top = base / root
    lists: dict[str, list[str]] = {"validation": [], "test": []}
    n = 0
    for split, ds in splits.items():
        names = ds.features["label"].names if hasattr(ds.features.get("label"), "names") else None
        for row in ds:
            label = names[row["label"]] if names else str(row["label"])
            x, sr = _decode(row["audio"])
            fname = Path(row.get("file") or f"{row['speaker_id']}_nohash_{row['utterance_id']}.wav").name
            if label == "_silence_":
                write_wav(top / "_background_noise_" / fname, x, sr)
                continue
            rel = f"{label}/{fname}"
            write_wav(top / rel, x, sr)
            if split in lists:
                lists[split].append(rel)
            n += 1
    (top / "validation_list.txt").write_text("\n".join(sorted(lists["validation"])) + "\n")
    (top / "testing_list.txt").write_text("\n".join(sorted(lists["test"])) + "\n")
    return n


def export_esc50(ds: Any, base: Path, *, root: str = "ESC-50") -> int:
    rows = []
    for row in ds:
        x, sr = _decode(row["audio"])
        write_wav(base / root / "audio" / row["filename"], x, sr)
        rows.append({k: row[k] for k in ("filename", "fold", "target", "category", "esc10", "src_file", "take")})
    (base / root / "meta").mkdir(parents=True, exist_ok=True)
    with open(base / root / "meta" / "esc50.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(sorted(rows, key=lambda r: r["filename"]))
    return len(rows)
