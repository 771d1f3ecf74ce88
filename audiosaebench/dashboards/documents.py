"""The per-feature JSON (``features/<index>.json``) and the index row, from the passes' statistics.

Every float is rounded (values to 4 decimals) so the files stay small and identical run to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from audiosaebench.dashboards.examples import SAMPLE_RATE, Layout, Span


def r4(x: float) -> float:
    return round(float(x), 4)


@dataclass
class FeatureStats:
    """Per selected feature (columns, in the order of ``features``)."""

    features: np.ndarray
    active: np.ndarray  # [splits, features] active frames
    n_frames: np.ndarray  # [splits]
    maxima: np.ndarray  # [features]
    hist: np.ndarray  # [features, bins] active frames per equal-width bin of (0, max]
    group_counts: np.ndarray  # [features, groups] active frames per interval
    nearest: tuple[np.ndarray, np.ndarray]  # indices, cosines [features, n]
    alignment: tuple[np.ndarray, np.ndarray, np.ndarray]  # indices, values, l1 [features, n]

    def density(self, col: int, roles: list[str]) -> dict[str, float]:
        out = {role: float(self.active[s, col] / max(1, self.n_frames[s])) for s, role in enumerate(roles)}
        out["all"] = float(self.active[:, col].sum() / max(1, self.n_frames.sum()))
        return {k: round(v, 6) for k, v in out.items()}

    def histogram(self, col: int) -> dict[str, Any]:
        bins = self.hist.shape[1]
        width = float(self.maxima[col]) / bins
        return {"bin_width": round(width, 6), "bin_centres": [round((b + 0.5) * width, 5) for b in range(bins)],
                "counts": [int(c) for c in self.hist[col]]}

    def intervals(self, col: int) -> list[dict[str, Any]]:
        """SAEDashboard's quantile groups, highest first: bounds and the share of all test frames in each."""
        g = self.group_counts.shape[1]
        edges = np.linspace(0.0, float(self.maxima[col]), g + 1)
        total = max(1, int(self.n_frames.sum()))
        return [{"group": i, "bin_min": round(float(edges[i]), 5), "bin_max": round(float(edges[i + 1]), 5),
                 "bin_contains": round(int(self.group_counts[col, i]) / total, 6)} for i in range(g - 1, -1, -1)]


def _frame_labels(layout: Layout, sp: Span) -> dict[str, list[str]]:
    split = layout.splits[sp.split]
    a = int(split.offsets[sp.clip]) + sp.first
    b = a + sp.end - sp.first
    out = {}
    for level, labels in split.labels.frame.items():
        part = [str(x) for x in labels[a:b]]
        if any(part):
            out[level] = part
    return out


def clip_labels(layout: Layout, split_index: int, clip: int) -> dict[str, str]:
    split = layout.splits[split_index]
    out = {level: str(v[clip]) for level, v in split.labels.clip.items() if str(v[clip])}
    speaker = split.manifest.clips[clip].speaker
    if speaker is not None:
        out["speaker"] = str(speaker)
    return out


def peak_label(layout: Layout, sp: Span, frame: int, clip_level: dict[str, str]) -> str:
    """The phone at the peak frame where the clip has a phone alignment, else the clip's class label."""
    split = layout.splits[sp.split]
    if "phone" in split.labels.frame and split.has_phones(sp.clip):
        return str(split.labels.frame["phone"][int(split.offsets[sp.clip]) + frame])
    return next((clip_level[k] for k in ("keyword", "sound", "source") if clip_level.get(k)), "")


def example_doc(layout: Layout, group: int, sp: Span, peak_s: float, peak_index: int,
                values: np.ndarray, files: tuple[str, str], bins: dict[str, Any]) -> dict[str, Any]:
    """One example; ``bins``: its group's bin_min, bin_max, bin_contains (top group: -1, the max, -1)."""
    split = layout.splits[sp.split]
    clip = split.manifest.clips[sp.clip]
    n = int(split.offsets[sp.clip + 1] - split.offsets[sp.clip])
    centres = layout.centres(n)
    labels = clip_labels(layout, sp.split, sp.clip)
    rounded = np.round(values.astype(np.float64), 4).tolist()
    return {
        "clip_id": clip.clip_id, "role": split.role, "group": "top" if group < 0 else f"interval {group}",
        "bin_min": bins["bin_min"], "bin_max": bins["bin_max"], "bin_contains": bins["bin_contains"],
        "start_s": round(sp.start_sample / SAMPLE_RATE, 4), "end_s": round(sp.end_sample / SAMPLE_RATE, 4),
        "peak_s": round(peak_s, 4), "peak_index": peak_index, "max_value": rounded[peak_index],
        "first_frame_s": round(float(centres[sp.first]), 4),
        "frame_step_s": round(float(centres[1] - centres[0]), 6) if n > 1 else 0.02,
        "values": rounded, "frame_labels": _frame_labels(layout, sp), "clip_labels": labels,
        "peak_label": peak_label(layout, sp, sp.first + peak_index, labels), "audio": files[0], "spectrogram": files[1],
    }


def explanation(top_labels: list[dict[str, Any]], autointerp: dict[str, Any] | None, active: bool = True) -> dict[str, Any]:
    """The autointerp explanation where one is given, else the best label and its test F1."""
    if autointerp is not None and autointerp.get("text"):
        return {k: autointerp.get(k) for k in ("text", "source", "level", "labels", "train_f1", "balanced_accuracy",
                                                 "f1", "auroc")}
    if not active:
        return {"text": "never active on the test splits", "source": "best label"}
    if not top_labels:
        return {"text": "no label predicts this feature", "source": "best label"}
    b = top_labels[0]
    return {"text": f"{b['level']} {b['label']} (F1 {b['f1']:.2f})", "source": "best label", "level": b["level"],
            "labels": [b["label"]], "f1": b["f1"]}
