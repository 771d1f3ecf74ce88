"""Every label a suite has, aligned with the activation rows of a split: what a feature can be read as.

Levels (the feature views, ``autointerp`` and the dashboards, read them):

* timed inside a clip, one label per frame (the label covering the frame's centre, as
  :func:`audiosaebench.labels.frame_phone_ids`): ``phone`` (39 ARPAbet phones and ``sil``),
  ``phone_class`` (manner classes, ``data/phone_classes.json``), ``word``;
* one label per clip: ``keyword`` (Speech Commands), ``sound`` (ESC-50 class), ``source``
  (``speech`` or ``non-speech``), ``speaker_sex``.

A level is *known* on a split when its clips carry it, *known absent* where it cannot occur
(non-speech clips hold no phone, word or keyword; read speech holds no ESC sound: the label is
``""``), and *unknown* otherwise (Speech Commands clips have words but no timing; read sentences
may contain a keyword): statistics over a level use only the splits where it is known or known
absent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from audiosaebench.data.phones import ARPABET, SILENCE

FRAME_LEVELS = ("phone", "phone_class", "word")
CLIP_LEVELS = ("keyword", "sound", "source", "speaker_sex")
LEVELS = FRAME_LEVELS + CLIP_LEVELS
SEX = {"M": "male", "F": "female"}


@lru_cache(maxsize=1)
def phone_class_of() -> dict[str, str]:
    """ARPAbet phone (and ``sil``) -> its manner class."""
    doc = json.loads(resources.files("audiosaebench.data").joinpath("phone_classes.json").read_text())
    return {p: cls for cls, phones in doc["classes"].items() for p in phones}


@dataclass
class SplitLabels:
    """The labels of one split's activation rows (``frame``) and clips (``clip``), for the levels known
    on it (a level missing from both maps is unknown there)."""

    role: str
    clip_ids: list[str]
    clip_of: np.ndarray  # activation row -> clip index
    frame: dict[str, np.ndarray] = field(default_factory=dict)  # level -> label per row ("" none)
    clip: dict[str, np.ndarray] = field(default_factory=dict)  # level -> label per clip ("" none)

    def known(self, level: str) -> bool:
        return level in self.frame or level in self.clip

    def at_frames(self, level: str) -> np.ndarray:
        """Per activation row, the row's label at ``level`` (a clip level repeats its clip's label)."""
        return self.frame[level] if level in self.frame else self.clip[level][self.clip_of]


def _intervals(intervals: Any, centres: np.ndarray, blank: str = "") -> np.ndarray:
    """The label of the interval covering each frame centre (``blank`` outside every interval)."""
    out = np.full(len(centres), blank, dtype=object)
    if not intervals:
        return out
    starts = np.array([float(iv[0]) for iv in intervals])
    ends = np.array([float(iv[1]) for iv in intervals])
    labels = np.array([str(iv[2]) for iv in intervals], dtype=object)
    j = np.searchsorted(starts, centres, side="right") - 1
    ok = (j >= 0) & (centres < ends[np.clip(j, 0, len(ends) - 1)])
    out[ok] = labels[np.clip(j, 0, len(labels) - 1)][ok]
    return out


def _timed(manifest: Any, acts: Any, adapter: Any, key: str, blank: str) -> np.ndarray:
    off = acts.offsets
    out = np.full(acts.n_frames, blank, dtype=object)
    for i, clip in enumerate(manifest.clips):
        n = int(off[i + 1] - off[i])
        if n:
            out[off[i] : off[i + 1]] = _intervals(clip.labels.get(key), adapter.frame_centres_s(n), blank)
    return out


def _phones(manifest: Any, acts: Any, adapter: Any) -> np.ndarray:
    raw = _timed(manifest, acts, adapter, "phones", SILENCE)
    return np.array([p if p in ARPABET else SILENCE for p in raw], dtype=object)


def _clip_levels(role: str, clips: list[Any]) -> dict[str, np.ndarray]:
    def every(key: str) -> bool:
        return bool(clips) and all(c.labels.get(key) not in (None, "") for c in clips)

    nonspeech, speech = role.startswith("nonspeech"), role.startswith("speech")
    out: dict[str, np.ndarray] = {}
    if every("keyword"):
        out["keyword"] = np.array([str(c.labels["keyword"]) for c in clips], dtype=object)
    elif nonspeech:
        out["keyword"] = np.full(len(clips), "", dtype=object)
    if every("category"):
        out["sound"] = np.array([str(c.labels["category"]) for c in clips], dtype=object)
    elif speech:
        out["sound"] = np.full(len(clips), "", dtype=object)
    if clips and all(c.labels.get("sex") in SEX for c in clips):
        out["speaker_sex"] = np.array([SEX[c.labels["sex"]] for c in clips], dtype=object)
    silent = [nonspeech or c.labels.get("keyword") == "_silence_" for c in clips]
    out["source"] = np.array(["non-speech" if s else "speech" for s in silent], dtype=object)
    return out


def split_labels(role: str, manifest: Any, acts: Any, adapter: Any) -> SplitLabels:
    """Every level known on the split ``role`` (its manifest and activation set, same clips in order)."""
    if [c.clip_id for c in manifest.clips] != acts.clip_ids:
        raise ValueError("activations and manifest list different clips")
    out = SplitLabels(role, acts.clip_ids, acts.frame_clip_index(), clip=_clip_levels(role, list(manifest.clips)))
    clips = list(manifest.clips)
    if clips and all(c.labels.get("phones") for c in clips):
        out.frame["phone"] = _phones(manifest, acts, adapter)
        classes = phone_class_of()
        out.frame["phone_class"] = np.array([classes[p] for p in out.frame["phone"]], dtype=object)
        if all(c.labels.get("words") for c in clips):
            out.frame["word"] = _timed(manifest, acts, adapter, "words", "")
    elif role.startswith("nonspeech"):
        for level in FRAME_LEVELS:
            out.frame[level] = np.full(acts.n_frames, "", dtype=object)
    return out
