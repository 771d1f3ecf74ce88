"""autointerp (see README.md in this folder)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from audiosaebench.cache import cached_json
from audiosaebench.codes import sparse_frame_codes
from audiosaebench.errors import TaskError
from audiosaebench.frame_labels import LEVELS, SplitLabels, split_labels
from audiosaebench.task import TaskContext, TaskMetadata, TaskResult
from audiosaebench.toolkit import ResultBuilder, bootstrap_mean_interval, percentile_interval

TRAIN = ("speech_train", "commands_train", "nonspeech_train")
TEST = ("speech_test", "commands_test", "nonspeech_test")
CACHE_VERSION = 1
# how an explanation reads: "fires on <one> X" / "fires on <many> X or Y"
WORDS = {"phone": ("phone", "phones"), "phone_class": ("phone class", "phone classes"), "word": ("word", "words"),
         "keyword": ("keyword", "keywords"), "sound": ("sound class", "sound classes")}


@dataclass
class Explanation:
    """What a feature is read as: labels of one level (a disjunction), and how well that matched on train."""

    feature: int
    level: str | None
    labels: list[str]
    train_f1: float

    @property
    def text(self) -> str:
        if self.level is None:
            return "no explanation (the feature never fires on the train splits)"
        labels = " or ".join(self.labels)
        if self.level == "source":
            return f"fires on {labels}"
        if self.level == "speaker_sex":
            return f"fires on {labels} speakers"
        return f"fires on {WORDS[self.level][len(self.labels) > 1]} {labels}"

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "labels": self.labels, "train_f1": round(self.train_f1, 4), "text": self.text}


@dataclass
class Split:
    """One split's labels, the scored features' codes on its frames ([frames, features], dense) and
    whether each feature fires anywhere in each clip."""

    labels: SplitLabels
    z: np.ndarray
    offsets: np.ndarray



class Explainer(Protocol):
    """Turns the train evidence of the scored features into one explanation each (the built-in one
    reads the suite's labels; a model-based explainer would read the same evidence)."""

    def explain(self, features: np.ndarray, train: list[Split], cfg: Any) -> list[Explanation]: ...


def _level_items(level: str, train: list[Split]) -> tuple[np.ndarray, np.ndarray] | None:
    """(active [frames, features] bool, label per frame) over the train frames where ``level`` is known;
    a clip label holds for every frame of its clip, so every level is matched on the same frames the
    scorer reads (at clip level a feature that fires once per clip would match a clip label perfectly
    and predict nothing about where it fires)."""
    act, lab = [], []
    for sp in train:
        if sp.labels.known(level):
            act.append(sp.z > 0)
            lab.append(sp.labels.at_frames(level))
    return (np.concatenate(act), np.concatenate(lab)) if act else None


def greedy_disjunction(tp: np.ndarray, n_active: np.ndarray, pos: np.ndarray, max_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per feature (rows of ``tp`` [features, labels]), the set of at most ``max_labels`` labels whose union
    has the best F1 found greedily (a label is added while F1 rises), as a [features, labels] mask, and
    that F1. A level's labels are exclusive (one per item), so a union's true positives and positives
    are sums."""
    f, n_lab = tp.shape
    chosen = np.zeros((f, n_lab), bool)
    t, p = np.zeros(f), np.zeros(f)
    best = np.zeros(f)
    for _ in range(max_labels):
        cand = 2 * (t[:, None] + tp) / np.maximum(n_active[:, None] + p[:, None] + pos[None, :], 1)
        cand[chosen] = -1
        j = np.argmax(cand, axis=1)
        gain = cand[np.arange(f), j]
        up = gain > best + 1e-12
        if not up.any():
            break
        rows = np.flatnonzero(up)
        chosen[rows, j[rows]] = True
        t[rows] += tp[rows, j[rows]]
        p[rows] += pos[j[rows]]
        best[rows] = gain[rows]
    return chosen, best


class LabelExplainer:
    """For every level, the label disjunction with the best train F1 of "feature fires" against "label
    present"; the explanation is the level where that F1 is highest (ties: the first level)."""

    def explain(self, features: np.ndarray, train: list[Split], cfg: Any) -> list[Explanation]:
        best = [Explanation(int(f), None, [], 0.0) for f in features]
        for level in LEVELS:
            items = _level_items(level, train)
            if items is None:
                continue
            active, lab = items
            counts = Counter(lab[lab != ""].tolist())
            vocab = sorted(v for v, n in counts.items() if n >= int(cfg["min_positives"]))
            if not vocab:
                continue
            y = lab[:, None] == np.array(vocab, dtype=object)[None, :]
            tp = active.T.astype(np.float64) @ y.astype(np.float64)
            chosen, f1 = greedy_disjunction(tp, active.sum(0).astype(np.float64), y.sum(0).astype(np.float64),
                                            int(cfg["max_labels"]))
            for i in np.flatnonzero(f1 > np.array([e.train_f1 for e in best]) + 1e-12):
                order = np.argsort(-tp[i] * chosen[i], kind="stable")[: int(chosen[i].sum())]
                best[i] = Explanation(int(features[i]), level, [vocab[j] for j in order], float(f1[i]))
        return best


EXPLAINERS: dict[str, type] = {"labels": LabelExplainer}


@dataclass
class Windows:
    """Fixed-length windows of the test clips (the last one of a clip may be shorter): per window its
    split, clip and frame rows, each scored feature's largest value and each level's label score."""

    split: np.ndarray
    clip: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    peak: np.ndarray  # [windows, features]
    tests: list[Split] = field(default_factory=list)

    def known(self, level: str) -> np.ndarray:
        return np.array([t.labels.known(level) for t in self.tests])[self.split]

    def label_score(self, level: str, labels: list[str]) -> np.ndarray:
        """Per window: the fraction of its frames whose label at ``level`` is among ``labels`` (a clip
        label counts for every frame of its clip); 0 where the level is unknown."""
        out = np.zeros(len(self.split))
        for s, t in enumerate(self.tests):
            if not t.labels.known(level):
                continue
            hit = np.isin(t.labels.at_frames(level), labels).astype(np.float64)
            csum = np.r_[0.0, np.cumsum(hit)]
            m = self.split == s
            out[m] = (csum[self.stop[m]] - csum[self.start[m]]) / np.maximum(self.stop[m] - self.start[m], 1)
        return out


def _windows(tests: list[Split], frames_per_window: int) -> Windows:
    split, clip, start, stop, peaks = [], [], [], [], []
    for s, t in enumerate(tests):
        off = t.offsets
        for c in range(len(off) - 1):
            for a in range(int(off[c]), int(off[c + 1]), frames_per_window):
                b = min(a + frames_per_window, int(off[c + 1]))
                split.append(s)
                clip.append(c)
                start.append(a)
                stop.append(b)
                peaks.append(t.z[a:b].max(0))
    return Windows(np.array(split), np.array(clip), np.array(start), np.array(stop), np.array(peaks), tests)


def pick_windows(peak: np.ndarray, known: np.ndarray, cfg: Any, rng: np.random.Generator) -> np.ndarray:
    """The windows shown for one feature: its ``n_top`` strongest, ``n_quantile`` more drawn one from each
    equal share of the rest of its active windows (by rank), and ``n_random`` drawn from the windows
    where it does not fire."""
    cand = np.flatnonzero(known)
    act = cand[peak[cand] > 0]
    act = act[np.lexsort((act, -peak[act]))]
    top, rest = act[: int(cfg["n_top"])], act[int(cfg["n_top"]) :]
    nq = int(cfg["n_quantile"])
    quant = np.array([rng.choice(b) for b in np.array_split(rest, nq) if len(b)], dtype=np.int64) if len(rest) > nq else rest
    off = cand[peak[cand] <= 0]
    rand = rng.choice(off, min(int(cfg["n_random"]), len(off)), replace=False) if len(off) else off
    return np.sort(np.r_[top, quant, rand].astype(np.int64))


def detection(active: np.ndarray, score: np.ndarray) -> tuple[float, float, float | None]:
    """Balanced accuracy and F1 of "the explanation covers the window" against "the feature fires in it",
    and the AUROC of the covered fraction. With windows of one kind only (a feature that fires in every
    window, or in none, of the splits where its level is known) nothing is told apart: 0.5, 0 and None."""
    pred = score > 0
    if active.all() or not active.any():
        return 0.5, 0.0, None
    recalls = [float((pred[active == c] == c).mean()) for c in (True, False)]
    tp, fp, fn = int((pred & active).sum()), int((pred & ~active).sum()), int((~pred & active).sum())
    f1 = 2 * tp / (2 * tp + fp + fn)
    pos, neg = score[active], score[~active]
    auroc = float(((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg)))
    return float(np.mean(recalls)), f1, auroc


def _splits(ctx: TaskContext, sae: Any, roles: tuple[str, ...], features: np.ndarray) -> list[Split]:
    out = []
    for role in roles:
        acts = ctx.activations(role)
        z = sparse_frame_codes(sae, acts, np.arange(acts.n_frames)).tocsc()[:, features].toarray()
        out.append(Split(split_labels(role, ctx.manifest(role), acts, ctx.model), z, acts.offsets))
    return out


def score_features(ctx: TaskContext, sae: Any, cfg: Any) -> dict[str, Any]:
    """Explain the scored features of ``sae`` on the train splits and score the explanations on the test
    windows: per feature its explanation and detection numbers, and the alive fraction."""
    seed = ctx.seed
    alive = np.zeros(sae.d_sae, bool)
    for role in TRAIN:
        alive |= np.diff(sparse_frame_codes(sae, ctx.activations(role), np.arange(ctx.activations(role).n_frames))
                         .tocsc().indptr) > 0
    feats = np.flatnonzero(alive)
    if len(feats) > int(cfg["n_features"]):
        feats = np.sort(np.random.default_rng(seed).choice(feats, int(cfg["n_features"]), replace=False))
    if cfg["explainer"] not in EXPLAINERS:
        raise TaskError(f"autointerp has no explainer {cfg['explainer']!r} (built in: {', '.join(EXPLAINERS)})")
    explanations = EXPLAINERS[cfg["explainer"]]().explain(feats, _splits(ctx, sae, TRAIN, feats), cfg)
    win = _windows(_splits(ctx, sae, TEST, feats), max(1, round(float(cfg["window_s"]) * ctx.model.frame_rate_hz)))
    rows = []
    for i, e in enumerate(explanations):
        if e.level is None:
            rows.append({"feature": e.feature, **e.to_dict(), "balanced_accuracy": 0.5, "f1": 0.0, "auroc": None, "windows": 0})
            continue
        pick = pick_windows(win.peak[:, i], win.known(e.level), cfg, np.random.default_rng([seed, e.feature]))
        bal, f1, auroc = detection(win.peak[pick, i] > 0, win.label_score(e.level, e.labels)[pick])
        rows.append({"feature": e.feature, **e.to_dict(), "balanced_accuracy": round(bal, 6), "f1": round(f1, 6),
                     "auroc": None if auroc is None else round(auroc, 6), "windows": int(len(pick))})
    return {"features": rows, "alive_fraction": float(alive.mean()), "d_sae": int(sae.d_sae)}


def _summary(got: dict[str, Any], threshold: float) -> dict[str, float | None]:
    rows = got["features"]
    bal = np.array([r["balanced_accuracy"] for r in rows])
    aurocs = [r["auroc"] for r in rows if r["auroc"] is not None]
    return {"detection_balanced_accuracy": float(bal.mean()) if len(bal) else None,
            "interpretable_fraction@0.8": got["alive_fraction"] * float((bal >= threshold).mean()) if len(bal) else 0.0,
            "detection_f1": float(np.mean([r["f1"] for r in rows])) if rows else None,
            "detection_auroc": float(np.mean(aurocs)) if aurocs else None}


def random_floor(ctx: TaskContext, cfg: Any) -> dict[str, float | None]:
    """The same explainer and scorer on a random TopK SAE of the evaluated SAE's shape (its k, or 32):
    it depends on that shape only, so it is cached per model, hook, data and options."""
    from audiosaebench.sae.reference import random_sae

    sae = ctx.sae
    k = max(1, min(sae.info.k or 32, sae.d_sae))
    key = {"v": CACHE_VERSION, "stores": [ctx.activations(r).key for r in TRAIN + TEST], "d_sae": sae.d_sae, "k": k,
           "seed": ctx.seed, "config": {n: v for n, v in cfg.items() if n not in ("bootstrap_resamples", "random_floor")}}

    def compute() -> dict:
        rnd = random_sae(sae.d_in, sae.d_sae, k, str(sae.info.model_id), str(sae.info.hook_point), seed=ctx.seed + 31)
        return _summary(score_features(ctx, rnd.to(sae.device), cfg), float(cfg["threshold"]))

    return cached_json("autointerp-cache", key, compute, lambda d: isinstance(d, dict) and "detection_balanced_accuracy" in d)


def run_autointerp(ctx: TaskContext, metadata: TaskMetadata) -> TaskResult:
    cfg = ctx.config
    got = score_features(ctx, ctx.sae, cfg)
    rows, thr = got["features"], float(cfg["threshold"])
    out = ResultBuilder(metadata)
    none = "no feature fires on the train splits"
    n_boot = int(cfg["bootstrap_resamples"])
    summary = _summary(got, thr)
    if rows:
        idx = np.random.default_rng(ctx.seed).integers(0, len(rows), (n_boot, len(rows)))
        bal = np.array([r["balanced_accuracy"] for r in rows])
        out.add("detection_balanced_accuracy", summary["detection_balanced_accuracy"],
                interval=bootstrap_mean_interval(bal, idx))
        out.add("interpretable_fraction@0.8", summary["interpretable_fraction@0.8"],
                interval=percentile_interval(got["alive_fraction"] * (bal[idx] >= thr).mean(1)))
        out.add("detection_f1", summary["detection_f1"],
                interval=bootstrap_mean_interval(np.array([r["f1"] for r in rows]), idx))
    else:
        out.null(["detection_balanced_accuracy", "detection_f1"], none)
        out.add("interpretable_fraction@0.8", 0.0)
    out.add("detection_auroc", summary["detection_auroc"], reason="no scored feature has windows of both kinds")
    out.add("explained_train_f1", float(np.mean([r["train_f1"] for r in rows])) if rows else None, reason=none)
    out.add("scored_features", float(len(rows)))
    out.add("alive_fraction", got["alive_fraction"])
    levels = Counter(r["level"] for r in rows)
    for lv in LEVELS:
        out.add(f"level_fraction_{lv}", levels.get(lv, 0) / len(rows) if rows else None, reason=none)
    floor = random_floor(ctx, cfg) if cfg["random_floor"] else {}
    off = "random_floor is off"
    out.add("detection_balanced_accuracy_random", floor.get("detection_balanced_accuracy"), reason=off)
    out.add("interpretable_fraction@0.8_random", floor.get("interpretable_fraction@0.8"), reason=off)
    out.details.update({"features": rows, "levels": dict(sorted(levels.items())), "explainer": cfg["explainer"]})
    out.frames.update({r: ctx.activations(r).n_frames for r in TRAIN + TEST})
    return out.build(floor=out.values["detection_balanced_accuracy_random"], ceiling=1.0,
                     method="percentile bootstrap over scored features, 95%", n=n_boot)
