"""coverage (see README.md in this folder)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiosaebench.codes import pooled_clip_codes, sparse_frame_codes
from audiosaebench.data.phones import ARPABET
from audiosaebench.hashing import finite_or_none
from audiosaebench.labels import frame_phone_ids
from audiosaebench.task import TaskContext, TaskResult

ROLES = ("speech_train", "speech_test", "nonspeech_train", "nonspeech_test", "commands_train", "commands_test")
THRESHOLDS = (0.3, 0.5, 0.7)
# Thresholds tried on train: 0 (the feature fires at all) and these quantiles of its active values.
QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


@dataclass
class Family:
    """Concepts that share one item space (frames, or clips of one split kind)."""

    name: str
    concepts: list[str]
    y_train: np.ndarray  # [n_train_items, C] bool
    y_test: np.ndarray  # [n_test_items, C] bool
    z_train: object  # scipy CSC [n_train_items, d_sae]
    z_test: object
    x_train: np.ndarray  # raw frame activations behind the items, for the dense ceiling
    x_test: np.ndarray
    item_train: np.ndarray  # the item (row of y_train) each row of x_train belongs to
    item_test: np.ndarray
    source: tuple  # activation-store keys and item choice: identifies the items independently of the SAE


def _candidate_taus(v: np.ndarray) -> np.ndarray:
    return np.unique(np.r_[0.0, np.quantile(v, QUANTILES)]) if len(v) else np.zeros(1)


def _f1_at(vs_desc: np.ndarray, cum: np.ndarray, taus: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """F1 of `score > tau` for each tau (rows) and concept (columns), from scores sorted descending
    and the cumulative positive counts along that order."""
    n_pred = np.searchsorted(-vs_desc, -taus, side="left")  # count of scores > tau
    tp = np.where(n_pred[:, None] > 0, cum[np.maximum(n_pred - 1, 0)], 0)
    denom = n_pred[:, None] + pos[None, :]
    return np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)


def _sorted_cum(values: np.ndarray, rows: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-values, kind="stable")
    return values[order], np.cumsum(y[rows[order]], axis=0, dtype=np.int64)


def threshold_f1(values_tr, rows_tr, y_tr, values_te, rows_te, y_te) -> tuple[np.ndarray, np.ndarray]:
    """Per concept: the threshold from the grid with the best train F1, and the test F1 at it."""
    pos_tr, pos_te = y_tr.sum(0), y_te.sum(0)
    c = y_tr.shape[1]
    if len(values_tr) == 0:  # never fires on train: train F1 0 at every threshold, so tau = 0
        train_f1, tau_c = np.zeros(c), np.zeros(c)
    else:
        vs, cum = _sorted_cum(values_tr, rows_tr, y_tr)
        taus = _candidate_taus(values_tr)
        f1 = _f1_at(vs, cum, taus, pos_tr)  # [T, C]
        best = f1.argmax(0)  # ties: the lowest threshold
        train_f1, tau_c = f1[best, np.arange(c)], taus[best]
    if len(values_te) == 0:
        return train_f1, np.zeros(c)
    vt, cumt = _sorted_cum(values_te, rows_te, y_te)
    n_pred = np.searchsorted(-vt, -tau_c, side="left")
    tp = np.where(n_pred > 0, cumt[np.maximum(n_pred - 1, 0), np.arange(c)], 0)
    denom = n_pred + pos_te
    return train_f1, np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)


def column_quantiles(z, quantiles=QUANTILES) -> np.ndarray:
    """[n_columns, len(quantiles)]: ``np.quantile(column's stored values, quantiles)`` (linear method)
    of every column of a CSC matrix at once, bit for bit: numpy's own index and interpolation
    arithmetic (``(n - 1) * q``, then ``a + (b - a) * t``, or ``b - (b - a) * (1 - t)`` when
    ``t >= 0.5``) on the columns' sorted values. Columns without values get 0."""
    n = np.diff(z.indptr)
    q = np.asarray(quantiles, dtype=np.float64)
    col = np.repeat(np.arange(z.shape[1]), n)
    v = z.data[np.lexsort((z.data, col))]  # ascending within each column
    last = (n - 1)[:, None]
    vi = last * q[None, :]
    above = vi >= last  # numpy takes the last value there
    prev = np.where(above, last, np.floor(vi).astype(np.int64))
    nxt = np.where(above, last, prev + 1)
    gamma = vi - np.where(above, -1, prev)
    if not len(v):
        return np.zeros(vi.shape)
    base = z.indptr[:-1, None]
    a, b = v[np.clip(base + prev, 0, len(v) - 1)], v[np.clip(base + nxt, 0, len(v) - 1)]
    diff = b - a
    out = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return np.where((n > 0)[:, None], out, 0.0)


# feature_f1 works on blocks of at most this many features and stored values (train or test), which
# bounds its [features x thresholds x concepts] and per-value arrays whatever d_sae and L0 are
_F1_BLOCK = 2048
_F1_BLOCK_VALUES = 4_000_000


def _blocks(indptrs, n_cols: int):
    lo = 0
    while lo < n_cols:
        hi = min(lo + _F1_BLOCK, n_cols)
        for ip in indptrs:  # the last column whose values still fit, at least one column
            hi = min(hi, max(lo + 1, int(np.searchsorted(ip, ip[lo] + _F1_BLOCK_VALUES, side="right")) - 1))
        yield slice(lo, hi)
        lo = hi


def _f1_grid(z, taus: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[features, thresholds, concepts]: F1 of ``z[:, f] > taus[f, t]`` against each concept ``y[:, c]``,
    with ``taus`` ascending along t. Each stored value's rank (how many of its feature's thresholds it
    exceeds) bins the positives, so one sparse product counts every threshold; exact integer counts."""
    from scipy import sparse

    f, t = taus.shape
    n = np.diff(z.indptr)
    col = np.repeat(np.arange(f), n)
    rank = np.zeros(len(col), np.int64)  # the value exceeds thresholds 0 .. rank-1
    for j in range(t):
        rank += z.data > taus[col, j]
    binned = sparse.csr_matrix((np.ones(len(col)), (col * (t + 1) + rank, z.indices)), shape=(f * (t + 1), z.shape[0]))
    hits = np.asarray(binned @ y).reshape(f, t + 1, -1)  # positives per (feature, rank)
    above = np.cumsum(hits[:, ::-1], axis=1)[:, ::-1]  # positives with rank >= r
    counts = np.bincount(col * (t + 1) + rank, minlength=f * (t + 1)).reshape(f, t + 1)
    n_pred = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
    tp, n_pred = above[:, 1:], n_pred[:, 1:, None]  # rank >= t + 1 means score > taus[t]
    denom = n_pred + y.sum(0)[None, None, :]
    return np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)


def feature_f1(fam: Family) -> tuple[np.ndarray, np.ndarray]:
    """[C, d_sae] train F1 (best threshold) and test F1 (at that threshold) for every feature.

    All features at once, the same numbers as ``threshold_f1`` on each feature's values: the
    candidate thresholds are 0 and ``column_quantiles`` of its train values, sorted (duplicates
    score alike, so the first best is the lowest best threshold, as there)."""
    ztr, zte = fam.z_train.tocsc(), fam.z_test.tocsc()
    ytr, yte = fam.y_train.astype(np.float64), fam.y_test.astype(np.float64)
    d_sae = ztr.shape[1]
    c = ytr.shape[1]
    tr_f1 = np.zeros((c, d_sae), np.float32)
    te_f1 = np.zeros((c, d_sae), np.float32)
    for cols in _blocks((ztr.indptr, zte.indptr), d_sae):
        btr, bte = ztr[:, cols], zte[:, cols]
        taus = np.sort(np.c_[np.zeros(btr.shape[1]), column_quantiles(btr)], axis=1)
        f_tr = _f1_grid(btr, taus, ytr)
        best = f_tr.argmax(1)  # [features, concepts]; ties: the lowest threshold
        pick = (np.arange(btr.shape[1])[:, None], best, np.arange(c)[None, :])
        tr_f1[:, cols] = f_tr[pick].T
        te_f1[:, cols] = _f1_grid(bte, taus, yte)[pick].T
    return tr_f1, te_f1


DENSE_CACHE_VERSION = 2  # 2: fitted with numpy/scipy BLAS on one thread (evaluation.numpy_blas_single_threaded)


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


def run_coverage(ctx: TaskContext) -> TaskResult:
    cfg, seed = ctx.config, ctx.seed
    rng = np.random.default_rng(seed)
    reasons: dict[str, str] = {}
    min_clip = int(cfg["min_clip_positives"])
    dense_frames = int(cfg["dense_max_frames"])
    fams = [f for f in (
        _frame_family(ctx, cfg, rng, reasons),
        _clip_family(ctx, "keywords", "commands", lambda c: c.labels.get("keyword"), "keyword", min_clip, dense_frames),
        _clip_family(ctx, "sounds", "nonspeech", lambda c: c.labels.get("category"), "sound", min_clip, dense_frames),
        _clip_family(ctx, "sex", "speech", _sex, "sex", min_clip, dense_frames),
    ) if f is not None and f.concepts]
    concepts, best, oracle, dense, chance, family_of = [], [], [], [], [], []
    feat_best_train = np.full(ctx.sae.d_sae, -1.0)
    feat_test_at_best = np.zeros(ctx.sae.d_sae)
    alive = np.zeros(ctx.sae.d_sae, bool)
    for fam in fams:
        tr, te = feature_f1(fam)
        j_star = tr.argmax(1)  # per concept: the feature chosen on train
        concepts += fam.concepts
        family_of += [fam.name] * len(fam.concepts)
        best += list(te[np.arange(len(fam.concepts)), j_star])
        oracle += list(te.max(1))
        key = (fam.name, tuple(fam.concepts), fam.source, seed, int(cfg["dense_max_negatives"]), dense_frames)
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
    names = (["mean_best_f1", "mean_best_f1_oracle", "dense_mean_f1", "chance_mean_f1"]
             + [f"coverage@{t}" for t in THRESHOLDS] + ["explained_fraction@0.5"])
    if not concepts:
        reason = "no concept has enough positives in both the train and the test split"
        return TaskResult(values=dict.fromkeys(names), higher_is_better=dict.fromkeys(names, True), reasons=dict.fromkeys(names, reason))
    best_a, dense_a, chance_a = np.array(best), np.array(dense), np.array(chance)
    values: dict[str, float | None] = {
        "mean_best_f1": float(best_a.mean()),
        "mean_best_f1_oracle": float(np.mean(oracle)),
        "dense_mean_f1": float(dense_a.mean()),
        "chance_mean_f1": float(chance_a.mean()),
    }
    for t in THRESHOLDS:
        values[f"coverage@{t}"] = float((best_a >= t).mean())
    if alive.any():
        values["explained_fraction@0.5"] = float((feat_test_at_best[alive] >= 0.5).mean())
    else:
        values["explained_fraction@0.5"] = None
        reasons["explained_fraction@0.5"] = "no feature fires on a test item"
    per_family = {}
    for fam in fams:
        m = np.array([f == fam.name for f in family_of])
        per_family[fam.name] = {"concepts": int(m.sum()), "mean_best_f1": float(best_a[m].mean()),
                                "dense_mean_f1": float(dense_a[m].mean()), "chance_mean_f1": float(chance_a[m].mean()),
                                **{f"coverage@{t}": float((best_a[m] >= t).mean()) for t in THRESHOLDS}}
        values[f"mean_best_f1_{fam.name}"] = per_family[fam.name]["mean_best_f1"]
    n_boot = int(cfg["bootstrap_resamples"])
    idx = rng.integers(0, len(best_a), (n_boot, len(best_a)))
    unc = {}
    for key, arr in (("mean_best_f1", best_a), ("dense_mean_f1", dense_a)):
        bs = arr[idx].mean(1)
        unc[key] = [float(np.percentile(bs, 2.5)), float(np.percentile(bs, 97.5))]
    for t in THRESHOLDS:
        bs = (best_a[idx] >= t).mean(1)
        unc[f"coverage@{t}"] = [float(np.percentile(bs, 2.5)), float(np.percentile(bs, 97.5))]
    hib = dict.fromkeys(values, True)
    return TaskResult(
        values={k: finite_or_none(v) for k, v in values.items()},
        higher_is_better=hib,
        floor=values["chance_mean_f1"],
        ceiling=values["dense_mean_f1"],
        reasons=reasons,
        uncertainty=unc,
        uncertainty_method="percentile bootstrap over concepts, 95%",
        uncertainty_n=n_boot,
        details={"per_family": per_family,
                 "per_concept": {c: {"best_f1": round(float(b), 4), "dense_f1": round(float(d), 4)}
                                 for c, b, d in zip(concepts, best_a, dense_a, strict=True)},
                 "alive_features": int(alive.sum()), "quantile_grid": list(QUANTILES),
                 "items": {fam.name: {"train": int(fam.y_train.shape[0]), "test": int(fam.y_test.shape[0])} for fam in fams}},
        frames={role: ctx.activations(role).n_frames for role in ROLES},
    )
