"""Manifests: one row per clip; a manifest's sha256 identifies its split in every result.

The hash covers the dataset name, split, selection-rule version and every clip row (id, path
relative to the dataset root, length, source sample rate, labels, speaker, fold and the sha256 of
its 16-bit PCM at 16 kHz); it does not cover where the dataset root lies on disk.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiosaebench.errors import DataError
from audiosaebench.hashing import sha256_json

MANIFEST_FORMAT = 1


def _count(value: Any, name: str) -> int:
    """A non-negative integer field (bools and fractional numbers refused)."""
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or value != int(value) or value < 0):
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


MAX_MANIFEST_BYTES = 1 << 30  # a full-suite manifest with phone alignments runs to tens of MB

@dataclass(frozen=True)
class Clip:
    clip_id: str
    path: str
    n_samples: int
    sample_rate: int
    pcm_sha256: str
    speaker: str | None = None
    fold: int | None = None
    labels: dict[str, Any] = field(default_factory=dict)
    segment: tuple[int, int] | None = None  # [start, end) in 16 kHz samples of the decoded file

    @property
    def duration_s(self) -> float:
        return self.n_samples / 16_000

    def to_dict(self) -> dict[str, Any]:
        return {
            "clip_id": self.clip_id,
            "path": self.path,
            "n_samples": self.n_samples,
            "duration_s": round(self.duration_s, 6),
            "sample_rate": self.sample_rate,
            "pcm_sha256": self.pcm_sha256,
            "speaker": self.speaker,
            "fold": self.fold,
            "labels": self.labels,
            "segment": list(self.segment) if self.segment else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Clip:
        """Parse one manifest row; ValueError/TypeError/KeyError on anything out of shape."""
        if not isinstance(d, dict):
            raise TypeError(f"a clip row must be an object, got {type(d).__name__}")
        labels = d.get("labels") or {}
        if not isinstance(labels, dict):
            raise ValueError("labels must be an object")
        segment = d.get("segment")
        clip = cls(
            clip_id=str(d["clip_id"]),
            path=str(d["path"]),
            n_samples=_count(d["n_samples"], "n_samples"),
            sample_rate=_count(d["sample_rate"], "sample_rate"),
            pcm_sha256=str(d["pcm_sha256"]),
            speaker=None if d.get("speaker") is None else str(d["speaker"]),
            fold=None if d.get("fold") is None else _count(d["fold"], "fold"),
            labels=labels,
            segment=(_count(segment[0], "segment"), _count(segment[1], "segment")) if segment else None,
        )
        if clip.sample_rate == 0 or (segment and (len(segment) != 2 or segment[0] >= segment[1])):
            raise ValueError(f"clip {clip.clip_id!r}: sample_rate or segment out of range")
        return clip


@dataclass(frozen=True)
class Manifest:
    dataset: str
    split: str
    version: str
    clips: tuple[Clip, ...]
    root: str = ""

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def body(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "dataset": self.dataset,
            "split": self.split,
            "version": self.version,
            "clips": [c.to_dict() for c in self.clips],
        }

    @property
    def sha256(self) -> str:
        return sha256_json(self.body())

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.split}"

    def audio_path(self, clip: Clip) -> Path:
        return Path(self.root) / clip.path

    def load(self, clip: Clip, verify: bool = False):
        from audiosaebench.data.audio import load_audio, pcm_sha256

        x = load_audio(self.audio_path(clip))
        if clip.segment is not None:
            x = x[clip.segment[0] : clip.segment[1]]
        if verify and pcm_sha256(x) != clip.pcm_sha256:
            raise DataError(
                f"{self.audio_path(clip)} does not match the manifest {self.name} (PCM sha256 differs); "
                "re-run `audiosaebench data prepare`"
            )
        return x

    def summary(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "manifest_sha256": self.sha256,
            "n_clips": len(self.clips),
        }

    def write(self, path: str | Path) -> None:
        from audiosaebench import atomic

        atomic.write_text(path, json.dumps({**self.body(), "sha256": self.sha256}, indent=1, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: str | Path, root: str | Path | None = None) -> Manifest:
        from audiosaebench import untrusted

        path = Path(path)
        if not path.exists():
            raise DataError(f"manifest not found: {path}; run `audiosaebench data prepare`")
        d = untrusted.read_json(path, DataError, max_bytes=MAX_MANIFEST_BYTES)
        try:
            clips = tuple(Clip.from_dict(c) for c in d["clips"])
            m = cls(str(d["dataset"]), str(d["split"]), str(d["version"]), clips, str(root or path.parent))
        except (ValueError, KeyError, TypeError, OverflowError, AttributeError) as e:
            raise DataError(f"manifest {path} is corrupt ({type(e).__name__}: {e}); re-run `audiosaebench data prepare`") from None
        if d.get("sha256") not in (None, m.sha256):
            raise DataError(f"manifest {path} was edited (its recorded sha256 no longer matches its rows)")
        return m
