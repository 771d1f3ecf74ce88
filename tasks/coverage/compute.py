"""coverage (see README.md in this folder)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from audiosaebench.codes import pooled_clip_codes, sparse_frame_codes
from audiosaebench.data.phones import ARPABET
from audiosaebench.labels import frame_phone_ids
from audiosaebench.task import TaskContext, TaskMetadata, TaskResult
from audiosaebench.toolkit import ResultBuilder, bootstrap_mean_interval, null_result, percentile_interval
from audiosaebench.toolkit.feature_f1 import QUANTILES, feature_f1_scores, threshold_f1

ROLES = ("speech_train", "speech_test", "nonspeech_train", "nonspeech_test", "commands_train", "commands_test")
THRESHOLDS = (0.3, 0.5, 0.7)


@dataclass
class Family:
    """Concepts that share one item space (frames, or clips of one split kind)."""

    name: str
    concepts: list[str]
    y_train: np.ndarray  # [n_train_items, C] bool
    y_test: np.ndarray  # [n_test_items, C] bool
    z_train: Any  # scipy CSC [n_train_items, d_sae]
    z_test: Any
    x_train: np.ndarray  # raw frame activations behind the items, for the dense ceiling
    x_test: np.ndarray
    item_train: np.ndarray  # the item (row of y_train) each row of x_train belongs to
    item_test: np.ndarray
    source: tuple  # activation-store keys and item choice: identifies the items independently of the SAE


def feature_f1(fam: Family) -> tuple[np.ndarray, np.ndarray]:
    """[C, d_sae] train F1 (best threshold) and test F1 (at that threshold) for every feature of a family."""
    return feature_f1_scores(fam.z_train, fam.y_train, fam.z_test, fam.y_test)


DENSE_CACHE_VERSION = 2  # 2: fitted with numpy/scipy BLAS on one thread (audiosaebench.runtime.threads)


def dense_f1(fam: Family, key: tuple, max_negatives: int, seed: int) -> np.ndarray:
    """Ceiling: per concept one linear readout of the raw activations, read out exactly like a feature.

    A balanced logistic probe is fitted on frames (clip concepts: every frame carries its clip's
    label; all positive frames and at most ``max_negatives`` negative frames); its probability is
    max-pooled per clip for clip concepts and thresholded with the same grid, chosen on train.
    SAE-independent (``key`` names the activation stores, items and options), so cached under
    ``$AUDIOSAEBENCH_HOME/coverage-cache``."""
    import json
    from importlib.metadata import version

    from audiosaebench.cache import cached_json

    # the installed version without importing scikit-learn (2 s) when the entry is cached
    full_key = {"v": DENSE_CACHE_VERSION, "key": json.loads(json.dumps(key, default=str)), "sklearn": version("scikit-learn")}
    got = cached_json("coverage-cache", full_key, lambda: {"dense_f1": _dense_f1(fam, max_negatives, seed).tolist()},
                      lambda d: isinstance(d, dict) and isinstance(d.get("dense_f1"), list)
                      and len(d["dense_f1"]) == len(fam.concepts))
    return np.array(got["dense_f1"], dtype=float)


def _dense_f1(fam: Family, max_negatives: int, seed: int) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    sc = StandardScaler().fit(fam.x_train)
    xtr, xte = sc.transform(fam.x_train), sc.transform(fam.x_test)
    n_tr, n_te = fam.y_train.shape[0], fam.y_test.shape[0]
    out = np.zeros(len(fam.concepts))
    for ci in range(len(fam.concepts)):
        t = fam.y_train[fam.item_train, ci]
        pos, neg = np.flatnonzero(t), np.flatnonzero(~t)
        if not len(pos) or not len(neg):
            continue
        if len(neg) > max_negatives:
            neg = rng.choice(neg, max_negatives, replace=False)
        rows = np.sort(np.r_[pos, neg])
        clf = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced", random_state=seed).fit(xtr[rows], t[rows])
        s_tr, s_te = np.zeros(n_tr), np.zeros(n_te)
        np.maximum.at(s_tr, fam.item_train, clf.predict_proba(xtr)[:, 1])
        np.maximum.at(s_te, fam.item_test, clf.predict_proba(xte)[:, 1])
        _, te = threshold_f1(s_tr, np.arange(n_tr), fam.y_train[:, [ci]].astype(np.int64),
                             s_te, np.arange(n_te), fam.y_test[:, [ci]].astype(np.int64))
        out[ci] = te[0]
    return out


def _subsample(n: int, cap: int, rng) -> np.ndarray:
    return np.sort(rng.choice(n, cap, replace=False)) if cap and n > cap else np.arange(n)


def _frame_family(ctx: TaskContext, cfg, rng, reasons: dict) -> Family | None:
    """Phones (one concept each) and speech-vs-non-speech, at frame level."""
    sae = ctx.sae
    parts = {}
    for split in ("train", "test"):
        sp, ns = ctx.activations(f"speech_{split}"), ctx.activations(f"nonspeech_{split}")
        man = ctx.manifest(f"speech_{split}")
        has_phones = all(c.labels.get("phones") for c in man)
        phones = frame_phone_ids(man, sp, ctx.model) if has_phones else None
        r_sp, r_ns = _subsample(sp.n_frames, int(cfg["max_frames"]), rng), _subsample(ns.n_frames, int(cfg["max_frames"]), rng)
        parts[split] = (sp, ns, r_sp, r_ns, phones)
    if parts["train"][4] is None or parts["test"][4] is None:
        reasons["phones"] = "the speech splits have no phone alignments; speech frames count as speech"
    min_pos = int(cfg["min_frame_positives"])
    phone_ids = []
    if parts["train"][4] is not None and parts["test"][4] is not None:
        ptr, pte = parts["train"][4][parts["train"][2]], parts["test"][4][parts["test"][2]]
        phone_ids = [p for p in range(len(ARPABET)) if (ptr == p).sum() >= min_pos and (pte == p).sum() >= min_pos]
    concepts = [f"phone:{ARPABET[p]}" for p in phone_ids] + ["speech"]
    ys, zs, xs = {}, {}, {}
    from scipy import sparse

    for split, (sp, ns, r_sp, r_ns, phones) in parts.items():
        lab = phones[r_sp] if phones is not None else np.zeros(len(r_sp), np.int16)
        y = np.zeros((len(r_sp) + len(r_ns), len(concepts)), bool)
        for ci, p in enumerate(phone_ids):
            y[: len(r_sp), ci] = lab == p
        y[: len(r_sp), -1] = lab >= 0
        ys[split] = y
        zs[split] = sparse.vstack([sparse_frame_codes(sae, sp, r_sp), sparse_frame_codes(sae, ns, r_ns)]).tocsc()
        xs[split] = np.concatenate([sp.take(r_sp), ns.take(r_ns)])
    source = tuple((p[0].key, p[1].key, len(p[2]), len(p[3])) for p in parts.values())
    return Family("frames", concepts, ys["train"], ys["test"], zs["train"], zs["test"], xs["train"], xs["test"],
                  np.arange(len(ys["train"])), np.arange(len(ys["test"])), source)


def _clip_family(ctx: TaskContext, name: str, role: str, label_of, prefix: str, min_pos: int,
                 max_frames: int) -> Family | None:
    sae = ctx.sae
    labels = {s: [label_of(c) for c in ctx.manifest(f"{role}_{s}")] for s in ("train", "test")}
    if any(v is None for s in labels.values() for v in s):
        return None
    names = sorted(set(labels["train"]) & set(labels["test"]))
    names = [n for n in names if labels["train"].count(n) >= min_pos and labels["test"].count(n) >= min_pos]
    if not names:
        return None
    y = {s: np.array([[lab == n for n in names] for lab in labels[s]], bool) for s in labels}
    acts = {s: ctx.activations(f"{role}_{s}") for s in labels}
    z = {s: pooled_clip_codes(sae, acts[s], "max").tocsc() for s in labels}
    rows = {s: _strided(acts[s], max_frames) for s in labels}
    x = {s: acts[s].take(rows[s]) for s in labels}
    item = {s: acts[s].frame_clip_index()[rows[s]] for s in labels}
    return Family(name, [f"{prefix}:{n}" for n in names], y["train"], y["test"], z["train"], z["test"], x["train"], x["test"],
                  item["train"], item["test"], tuple(a.key for a in acts.values()))


def _strided(acts, cap: int) -> np.ndarray:
    """All frame rows, or every k-th one when there are more than ``cap`` (for the dense ceiling only)."""
    step = max(1, -(-acts.n_frames // cap)) if cap else 1
    return np.arange(0, acts.n_frames, step)


def _sex(clip) -> str | None:
    s = clip.labels.get("sex")
    return {"M": "male", "F": "female"}.get(s) if s else None


def _families(ctx: TaskContext, cfg, rng, reasons: dict) -> list[Family]:
    min_clip, dense_frames = int(cfg["min_clip_positives"]), int(cfg["dense_max_frames"])
    return [f for f in (
        _frame_family(ctx, cfg, rng, reasons),
        _clip_family(ctx, "keywords", "commands", lambda c: c.labels.get("keyword"), "keyword", min_clip, dense_frames),
        _clip_family(ctx, "sounds", "nonspeech", lambda c: c.labels.get("category"), "sound", min_clip, dense_frames),
        _clip_family(ctx, "sex", "speech", _sex, "sex", min_clip, dense_frames),
    ) if f is not None and f.concepts]


@dataclass
class Scores:
    """Per concept (every family's, in order): the chosen feature's test F1, the best test F1 of any
    feature, the dense ceiling and chance; per feature: its test F1 at its best train concept."""

    concepts: list[str]
    family_of: list[str]
    best: np.ndarray
    oracle: np.ndarray
    dense: np.ndarray
    chance: np.ndarray
    feat_test_at_best: np.ndarray
    alive: np.ndarray


def _score(fams: list[Family], d_sae: int, cfg, seed: int) -> Scores:
    concepts, best, oracle, dense, chance, family_of = [], [], [], [], [], []
    feat_best_train = np.full(d_sae, -1.0)
    feat_test_at_best = np.zeros(d_sae)
    alive = np.zeros(d_sae, bool)
    for fam in fams:
        tr, te = feature_f1(fam)
        j_star = tr.argmax(1)  # per concept: the feature chosen on train
        concepts += fam.concepts
        family_of += [fam.name] * len(fam.concepts)
        best += list(te[np.arange(len(fam.concepts)), j_star])
        oracle += list(te.max(1))
        key = (fam.name, tuple(fam.concepts), fam.source, seed, int(cfg["dense_max_negatives"]), int(cfg["dense_max_frames"]))
        dense += list(dense_f1(fam, key, int(cfg["dense_max_negatives"]), seed))
        p = fam.y_test.mean(0)
        chance += list(2 * p / (1 + p))
        # Feature side: credit only concepts whose positive rate is below 1/3, i.e. where a feature that
        # fires on everything scores F1 < 0.5; otherwise every alive feature "explains" e.g. speech.
        rare = np.flatnonzero(2 * p / (1 + p) < 0.5)
        if len(rare):
            ftr = tr[rare].max(0)
            better = ftr > feat_best_train
            feat_best_train[better] = ftr[better]
            feat_test_at_best[better] = te[rare][tr[rare].argmax(0), np.arange(te.shape[1])][better]
        alive |= np.diff(fam.z_test.tocsc().indptr) > 0
    return Scores(concepts, family_of, np.array(best), np.array(oracle), np.array(dense), np.array(chance),
                  feat_test_at_best, alive)


NAMES = (["mean_best_f1", "mean_best_f1_oracle", "dense_mean_f1", "chance_mean_f1"]
         + [f"coverage@{t}" for t in THRESHOLDS] + ["explained_fraction@0.5"])


def _add_values(out: ResultBuilder, sc: Scores, fams: list[Family]) -> dict[str, dict]:
    """The concept means, coverage, explained fraction and per-family means; returns the per-family table."""
    out.add("mean_best_f1", float(sc.best.mean()))
    out.add("mean_best_f1_oracle", float(np.mean(sc.oracle)))
    out.add("dense_mean_f1", float(sc.dense.mean()))
    out.add("chance_mean_f1", float(sc.chance.mean()))
    for t in THRESHOLDS:
        out.add(f"coverage@{t}", float((sc.best >= t).mean()))
    out.add("explained_fraction@0.5", float((sc.feat_test_at_best[sc.alive] >= 0.5).mean()) if sc.alive.any() else None,
            reason="no feature fires on a test item")
    per_family = {}
    for fam in fams:
        m = np.array([f == fam.name for f in sc.family_of])
        per_family[fam.name] = {"concepts": int(m.sum()), "mean_best_f1": float(sc.best[m].mean()),
                                "dense_mean_f1": float(sc.dense[m].mean()), "chance_mean_f1": float(sc.chance[m].mean()),
                                **{f"coverage@{t}": float((sc.best[m] >= t).mean()) for t in THRESHOLDS}}
        out.add(f"mean_best_f1_{fam.name}", per_family[fam.name]["mean_best_f1"])
    return per_family


def _add_intervals(out: ResultBuilder, sc: Scores, n_boot: int, rng) -> None:
    idx = rng.integers(0, len(sc.best), (n_boot, len(sc.best)))
    out.interval("mean_best_f1", bootstrap_mean_interval(sc.best, idx))
    out.interval("dense_mean_f1", bootstrap_mean_interval(sc.dense, idx))
    for t in THRESHOLDS:
        out.interval(f"coverage@{t}", percentile_interval((sc.best[idx] >= t).mean(1)))


def run_coverage(ctx: TaskContext, metadata: TaskMetadata) -> TaskResult:
    cfg, seed = ctx.config, ctx.seed
    rng = np.random.default_rng(seed)
    out = ResultBuilder(metadata)
    fams = _families(ctx, cfg, rng, out.notes)
    if not fams:
        return null_result(metadata, NAMES, "no concept has enough positives in both the train and the test split")
    sc = _score(fams, ctx.sae.d_sae, cfg, seed)
    per_family = _add_values(out, sc, fams)
    n_boot = int(cfg["bootstrap_resamples"])
    _add_intervals(out, sc, n_boot, rng)
    out.details.update({
        "per_family": per_family,
        "per_concept": {c: {"best_f1": round(float(b), 4), "dense_f1": round(float(d), 4)}
                        for c, b, d in zip(sc.concepts, sc.best, sc.dense, strict=True)},
        "alive_features": int(sc.alive.sum()), "quantile_grid": list(QUANTILES),
        "items": {fam.name: {"train": int(fam.y_train.shape[0]), "test": int(fam.y_test.shape[0])} for fam in fams}})
    out.frames.update({role: ctx.activations(role).n_frames for role in ROLES})
    return out.build(floor=out.values["chance_mean_f1"], ceiling=out.values["dense_mean_f1"],
                     method="percentile bootstrap over concepts, 95%", n=n_boot)
