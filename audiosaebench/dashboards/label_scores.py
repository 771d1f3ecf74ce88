"""The labels each feature predicts best: single-feature detectors as the coverage task scores them.

For every label level the suite has (:mod:`audiosaebench.frame_labels`), on the splits where the level
is known (or known absent), the prediction "feature j fires above tau" is scored against each label:
tau is chosen on the train split from coverage's grid (0 and quantiles of j's active train values)
and F1, precision and recall are read on the test split at it
(:func:`audiosaebench.toolkit.feature_f1.feature_detection_scores`). Frame levels (phone,
phone_class, word) score frames; clip levels (keyword, sound, source, speaker_sex) score clips, a
clip's code being the feature's largest value on it (as coverage pools clips). A label takes part
when it has at least ``min_frame_positives`` frames (``min_clip_positives`` clips) in both splits.

A feature's labels are ranked by how far its F1 exceeds chance, the F1 of a detector that fires on
every item (``2p / (1 + p)`` for a label on a fraction ``p`` of the items: coverage's floor), on the
train split and on the test split, the smaller of the two: a label must hold where tau was chosen
and on held-out clips. Ranking by F1 alone would put the commonest labels ("speech", the majority
sex: a feature firing everywhere scores high there) and clip labels that a handful of train clips
fit by luck first. Only labels above chance on both splits are listed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from audiosaebench.codes import pooled_clip_codes, sparse_frame_codes
from audiosaebench.dashboards.splits import SplitData
from audiosaebench.frame_labels import FRAME_LEVELS, LEVELS
from audiosaebench.toolkit.feature_f1 import feature_detection_scores


@dataclass
class LevelItems:
    """One level's items (frames or clips) on train and test: codes of the selected features and labels."""

    level: str
    names: list[str]
    z_train: Any  # scipy CSC [items, features]
    y_train: np.ndarray  # [items, labels] bool
    z_test: Any
    y_test: np.ndarray


class LabelScorer:
    def __init__(self, sae: Any, features: np.ndarray, train: list[SplitData], test: list[SplitData], *,
                 max_frames: int, min_frame_positives: int, min_clip_positives: int, seed: int):
        self.sae, self.features = sae, features
        self.max_frames, self.seed = max_frames, seed
        self.min_pos = {"frame": min_frame_positives, "clip": min_clip_positives}
        self._codes: dict[tuple[str, str], Any] = {}
        self._rows: dict[str, np.ndarray] = {}
        self.levels = [it for lv in LEVELS if (it := self._level(lv, train, test)) is not None]

    def _frame_rows(self, sp: SplitData) -> np.ndarray:
        if sp.role not in self._rows:
            n = sp.acts.n_frames
            rng = np.random.default_rng([self.seed, zlib.crc32(sp.role.encode())])
            cap = self.max_frames
            self._rows[sp.role] = np.sort(rng.choice(n, cap, replace=False)) if cap and n > cap else np.arange(n)
        return self._rows[sp.role]

    def _items(self, sp: SplitData, level: str) -> tuple[Any, np.ndarray]:
        kind = "frame" if level in FRAME_LEVELS else "clip"
        key = (sp.role, kind)
        if key not in self._codes:
            if kind == "frame":
                z = sparse_frame_codes(self.sae, sp.acts, self._frame_rows(sp))
            else:
                z = pooled_clip_codes(self.sae, sp.acts, "max")
            self._codes[key] = z.tocsc()[:, self.features]
        labels = sp.labels.frame[level][self._frame_rows(sp)] if kind == "frame" else sp.labels.clip[level]
        return self._codes[key], np.asarray(labels, dtype=object)

    def _stack(self, splits: list[SplitData], level: str) -> tuple[Any, np.ndarray]:
        from scipy import sparse

        parts = [self._items(sp, level) for sp in splits]
        return sparse.vstack([p[0] for p in parts]).tocsc(), np.concatenate([p[1] for p in parts])

    def _level(self, level: str, train: list[SplitData], test: list[SplitData]) -> LevelItems | None:
        tr, te = [s for s in train if s.labels.known(level)], [s for s in test if s.labels.known(level)]
        if not tr or not te:
            return None
        (z_tr, lab_tr), (z_te, lab_te) = self._stack(tr, level), self._stack(te, level)
        need = self.min_pos["frame" if level in FRAME_LEVELS else "clip"]
        names, n_tr = np.unique(lab_tr[lab_tr != ""].astype(str), return_counts=True)
        te_names, n_te = np.unique(lab_te[lab_te != ""].astype(str), return_counts=True)
        te_count = dict(zip(te_names.tolist(), n_te.tolist(), strict=True))
        keep = [str(n) for n, c in zip(names.tolist(), n_tr.tolist(), strict=True) if c >= need and te_count.get(n, 0) >= need]
        if not keep:
            return None
        vocab = np.array(keep, dtype=object)
        return LevelItems(level, keep, z_tr, lab_tr[:, None] == vocab[None, :], z_te, lab_te[:, None] == vocab[None, :])

    def top_labels(self, cols: slice, n: int) -> list[list[dict[str, Any]]]:
        """For the selected features ``cols`` (positions in ``features``): their ``n`` best labels."""
        rows, names = [], []
        for it in self.levels:
            s = feature_detection_scores(it.z_train[:, cols], it.y_train, it.z_test[:, cols], it.y_test)
            pos = it.y_test.sum(0)
            shape = s["f1"].shape
            rows.append(np.stack([s["train_f1"], s["f1"], s["precision"], s["recall"], s["threshold"],
                                  np.broadcast_to(pos[:, None], shape), np.broadcast_to(_chance(it.y_train)[:, None], shape),
                                  np.broadcast_to(_chance(it.y_test)[:, None], shape)], -1))
            names += [(it.level, name) for name in it.names]
        width = len(range(*cols.indices(len(self.features))))
        if not rows:
            return [[] for _ in range(width)]
        table = np.concatenate(rows)  # [labels, features, 8]
        return [_best(table[:, j], names, n) for j in range(width)]


def _chance(y: np.ndarray) -> np.ndarray:
    """Per label column: the F1 of predicting every item positive, 2p / (1 + p)."""
    p = y.mean(0) if len(y) else np.zeros(y.shape[1])
    return 2 * p / (1 + p)


def _best(t: np.ndarray, names: list[tuple[str, str]], n: int) -> list[dict[str, Any]]:
    """The ``n`` labels whose F1 exceeds chance most on both splits (the smaller margin), test F1 breaking ties."""
    margin = np.minimum(t[:, 0] - t[:, 6], t[:, 1] - t[:, 7])
    order = np.lexsort((-t[:, 1], -margin))  # stable on ties: level order, then label order
    out = []
    for i in order[:n]:
        if margin[i] <= 0:
            break
        level, label = names[i]
        out.append({"level": level, "label": label, "train_f1": round(float(t[i, 0]), 4), "f1": round(float(t[i, 1]), 4),
                    "precision": round(float(t[i, 2]), 4), "recall": round(float(t[i, 3]), 4),
                    "chance_f1": round(float(t[i, 7]), 4), "threshold": round(float(t[i, 4]), 5),
                    "test_positives": int(t[i, 5])})
    return out
