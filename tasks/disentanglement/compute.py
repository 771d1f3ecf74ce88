"""disentanglement (see README.md in this folder)."""

from __future__ import annotations

import math

import numpy as np
import sklearn
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from audiosaebench.cache import cached_json
from audiosaebench.codes import iter_codes, pooled_clip_codes, sparse_frame_codes
from audiosaebench.data.phones import ARPABET
from audiosaebench.labels import frame_phone_ids
from audiosaebench.task import TaskContext, TaskMetadata, TaskResult
from audiosaebench.toolkit import ResultBuilder, bootstrap_mean_interval

FAMILIES = (("keywords", "commands", "keyword"), ("sounds", "nonspeech", "category"))
RAW_PROBE_CACHE_VERSION = 2  # 2: fitted with numpy/scipy BLAS on one thread


def _fit(x, y, C: float, seed: int):
    sc = StandardScaler().fit(x)
    clf = LogisticRegression(C=C, max_iter=2000, class_weight="balanced", random_state=seed).fit(sc.transform(x), y)
    return sc, clf


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y`` (sklearn's balanced_accuracy_score without its
    per-call validation, which cost ~6 ms a call; the task makes about a thousand)."""
    y, pred = np.asarray(y), np.asarray(pred)
    return float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)]))


def predict(model, x: np.ndarray) -> np.ndarray:
    """``clf.predict(sc.transform(x))`` for a binary probe without sklearn's per-call validation
    (≈ 1 ms a call; the task makes about a thousand): the same numpy operations on the same arrays
    as scikit-learn's ``StandardScaler.transform`` (in place, statistics cast to x's dtype) and
    ``LinearClassifierMixin.decision_function``/``predict`` (``x @ coef_.T + intercept_ > 0``), so
    the same predictions bit for bit. Anything else goes through sklearn."""
    sc, clf = model
    scores = decision(model, x)
    if scores is None:
        return clf.predict(sc.transform(x))
    return clf.classes_.take((scores > 0).astype(np.intp), axis=0)


def decision(model, x: np.ndarray) -> np.ndarray | None:
    """The binary probe's decision scores, as sklearn computes them (see ``predict``); None when the
    probe or ``x`` is not the simple case this copies."""
    sc, clf = model
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64) or x.ndim != 2 or clf.coef_.shape[0] != 1 or not sc.with_mean \
            or not sc.with_std:
        return None
    xs = x.copy()
    xs -= sc.mean_.astype(xs.dtype)
    xs /= sc.scale_.astype(xs.dtype)
    return (xs @ clf.coef_.T + clf.intercept_).reshape(-1)


def _bal_acc(model, x, y) -> float:
    return balanced_accuracy(y, predict(model, x))


def _mean_diff(z, y_onehot: np.ndarray) -> np.ndarray:
    """[classes, d_sae] mean of z over each class's items minus the mean over the other items (z sparse)."""
    pos = y_onehot / np.maximum(y_onehot.sum(0), 1)
    neg = (~y_onehot) / np.maximum((~y_onehot).sum(0), 1)
    return np.asarray((z.T @ (pos - neg)).T)


def _pooled_contributions(sae, acts, selections: list[np.ndarray], chunk=None) -> np.ndarray:
    """[len(selections), clips, d_in]: what each feature set adds to the reconstruction, mean-pooled
    over each clip's valid frames (so x' = x - this is the ablation with the error term kept)."""
    clip_of = torch.from_numpy(acts.frame_clip_index())
    n_clips = len(acts.offsets) - 1
    counts = torch.bincount(clip_of, minlength=n_clips).clamp_min(1).double()
    out = torch.zeros(len(selections), n_clips, acts.d, dtype=torch.float64)
    feats = [torch.from_numpy(s.astype(np.int64)) for s in selections]
    for ch in iter_codes(sae, acts, chunk):
        idx = clip_of[ch.start : ch.start + ch.z.shape[0]]
        for i, f in enumerate(feats):
            out[i].index_add_(0, idx, sae.contribution(ch.z, f, ch.state).double().cpu())
    return (out / counts[None, :, None]).float().numpy()


def _selectivity(ctx: TaskContext, name: str, role: str, key: str, cfg, seed: int, reasons: dict):
    """Per class i and N: dA_ii - mean_{j != i} dA_ij, plus the oracle (probe direction removed)."""
    C, min_pos = float(cfg["logreg_C"]), int(cfg["min_clip_positives"])
    man = {s: ctx.manifest(f"{role}_{s}") for s in ("train", "test")}
    labels = {s: np.array([str(c.labels.get(key)) for c in man[s]]) for s in man}
    if any(c.labels.get(key) is None for s in man for c in man[s]):
        reasons[name] = f"the {role} splits have no {key} labels"
        return None
    classes = [c for c in sorted(set(labels["train"]) & set(labels["test"]))
               if (labels["train"] == c).sum() >= min_pos and (labels["test"] == c).sum() >= min_pos]
    if len(classes) < 3:
        reasons[name] = f"fewer than 3 {key} classes have {min_pos} clips in both splits"
        return None
    acts = {s: ctx.activations(f"{role}_{s}") for s in man}
    x = {s: acts[s].pooled("mean") for s in acts}
    y = {s: labels[s][:, None] == np.array(classes)[None, :] for s in labels}
    probes = [_fit(x["train"], y["train"][:, j], C, seed) for j in range(len(classes))]
    acc0 = np.array([_bal_acc(p, x["test"], y["test"][:, j]) for j, p in enumerate(probes)])
    diff = _mean_diff(pooled_clip_codes(ctx.sae, acts["train"], "mean").tocsc(), y["train"])
    ns = [int(n) for n in cfg["ns"]]
    order = np.argsort(-diff, axis=1, kind="stable")
    selections = [order[i, :n] for n in ns for i in range(len(classes))]
    contrib = _pooled_contributions(ctx.sae, acts["test"], selections)
    k = len(classes)

    def score(ablated: list[np.ndarray]) -> np.ndarray:
        dA = np.array([[acc0[j] - _bal_acc(probes[j], ablated[i], y["test"][:, j]) for j in range(k)] for i in range(k)])
        return np.diag(dA) - (dA.sum(1) - np.diag(dA)) / (k - 1)

    per_n = {n: score([x["test"] - contrib[ni * k + i] for i in range(k)]) for ni, n in enumerate(ns)}
    oracle = []
    m = x["train"].mean(0)
    for sc, clf in probes:
        u = clf.coef_[0] / sc.scale_
        u = u / np.linalg.norm(u)
        oracle.append(x["test"] - np.outer((x["test"] - m) @ u, u))
    return classes, per_n, score(oracle), acc0


def _raw_probes(stores: list[str], cfg, seed: int, phones: list[int], compute) -> tuple[float, float]:
    """The leakage normalisers (probes on all raw dimensions) do not depend on the SAE: cached per
    activation stores, frame sample and options under $AUDIOSAEBENCH_HOME/disentanglement-cache."""
    key = {"v": RAW_PROBE_CACHE_VERSION, "stores": stores,
           "seed": seed, "C": float(cfg["logreg_C"]), "max_frames": int(cfg["max_frames"]), "phones": phones,
           "sklearn": sklearn.__version__}
    got = cached_json("disentanglement-cache", key, compute, lambda d: isinstance(d, dict) and all(
        isinstance(d.get(k), float) and math.isfinite(d[k]) for k in ("raw_sex", "raw_ph")))
    return got["raw_sex"], got["raw_ph"]


LEAKAGE = ("leakage_phones_to_sex", "leakage_phones_to_sex_random", "leakage_sex_to_phones",
           "leakage_sex_to_phones_random")


def _leakage_frames(ctx: TaskContext, cap: int, rng) -> tuple[dict, list[str]] | str:
    """Per speech split: (codes, raw activations, phone ids, is-female) on at most ``cap`` phone frames
    drawn with the seed, and the stores read; or why leakage cannot be measured."""
    data, stores = {}, []
    for s in ("train", "test"):
        man, acts = ctx.manifest(f"speech_{s}"), ctx.activations(f"speech_{s}")
        if not all(c.labels.get("phones") for c in man) or not all(c.labels.get("sex") in ("M", "F") for c in man):
            return "the speech splits need phone alignments and speaker sex"
        ph = frame_phone_ids(man, acts, ctx.model)
        sex = np.array([c.labels["sex"] == "F" for c in man])[acts.frame_clip_index()]
        rows = np.flatnonzero(ph >= 0)
        if len(rows) > cap:
            rows = np.sort(rng.choice(rows, cap, replace=False))
        data[s] = (sparse_frame_codes(ctx.sae, acts, rows).tocsc(), acts.take(rows), ph[rows], sex[rows])
        stores.append(acts.key)
    return data, stores


def _leakage(ctx: TaskContext, cfg, seed: int) -> tuple[dict[str, float | None], str | tuple]:
    """Phones -> sex and sex -> phones at frame level, normalised by the raw-dimension probe; with the
    feature counts and raw accuracies, or the reason the values are null."""
    rng = np.random.default_rng(seed)
    C, top_n = float(cfg["logreg_C"]), int(cfg["leakage_top_n"])
    got = _leakage_frames(ctx, int(cfg["max_frames"]), rng)
    if isinstance(got, str):
        return dict.fromkeys(LEAKAGE), got
    data, stores = got
    ztr, xtr, ptr, str_ = data["train"]
    zte, xte, pte, ste = data["test"]
    phones = [p for p in range(len(ARPABET)) if (ptr == p).sum() >= 20 and (pte == p).sum() >= 20]
    keep_tr, keep_te = np.isin(ptr, phones), np.isin(pte, phones)
    if len(phones) < 3 or len(set(str_)) < 2 or len(set(ste)) < 2:
        return dict.fromkeys(LEAKAGE), "too few phones or only one sex in a speech split"
    alive = np.flatnonzero(np.diff(ztr.indptr) > 0)
    onehot = ptr[:, None] == np.array(phones)[None, :]
    feats_a = np.unique(np.argsort(-_mean_diff(ztr, onehot), axis=1, kind="stable")[:, :top_n])
    feats_b = np.unique(np.argsort(-_mean_diff(ztr, np.stack([str_, ~str_], 1)), axis=1, kind="stable")[:, :top_n].ravel())

    def acc(xa, ya, xb, yb) -> float:
        return _bal_acc(_fit(xa, ya, C, seed), xb, yb)

    raw_sex, raw_ph = _raw_probes(stores, cfg, seed, phones, lambda: {
        "raw_sex": acc(xtr, str_, xte, ste), "raw_ph": acc(xtr[keep_tr], ptr[keep_tr], xte[keep_te], pte[keep_te])})

    def norm(a: float, raw: float, chance: float) -> float | None:
        return (a - chance) / (raw - chance) if raw - chance > 1e-6 else None

    def random_like(f):
        pool = alive if len(alive) >= len(f) else np.arange(ctx.sae.d_sae)
        return np.sort(rng.choice(pool, len(f), replace=False))

    def to_sex(f) -> float | None:
        return norm(acc(ztr[:, f].toarray(), str_, zte[:, f].toarray(), ste), raw_sex, 0.5)

    def to_phones(f) -> float | None:
        a = acc(ztr[:, f].toarray()[keep_tr], ptr[keep_tr], zte[:, f].toarray()[keep_te], pte[keep_te])
        return norm(a, raw_ph, 1.0 / len(phones))

    fr_a, fr_b = random_like(feats_a), random_like(feats_b)
    out = {"leakage_phones_to_sex": to_sex(feats_a), "leakage_phones_to_sex_random": to_sex(fr_a),
           "leakage_sex_to_phones": to_phones(feats_b), "leakage_sex_to_phones_random": to_phones(fr_b)}
    return out, (len(feats_a), len(feats_b), raw_sex, raw_ph)


def _families(ctx: TaskContext, cfg, seed: int, skipped: dict) -> tuple[dict, dict[int, list], list]:
    """Per class family: its selectivity table; and the per-class values pooled over families."""
    ns = [int(n) for n in cfg["ns"]]
    per_family: dict[str, dict] = {}
    items: dict[int, list] = {n: [] for n in ns}
    oracle_items: list = []
    for name, role, key in FAMILIES:
        res = _selectivity(ctx, name, role, key, cfg, seed, skipped)
        if res is None:
            continue
        classes, per_n, oracle, acc0 = res
        per_family[name] = {"classes": classes, "probe_balanced_accuracy": [round(float(a), 4) for a in acc0],
                            **{f"selectivity@{n}": float(per_n[n].mean()) for n in ns},
                            "oracle_selectivity": float(oracle.mean())}
        for n in ns:
            items[n] += list(per_n[n])
        oracle_items += list(oracle)
    return per_family, items, oracle_items


def run_disentanglement(ctx: TaskContext, metadata: TaskMetadata) -> TaskResult:
    cfg, seed = ctx.config, ctx.seed
    rng = np.random.default_rng(seed)
    ns = [int(n) for n in cfg["ns"]]
    skipped: dict[str, str] = {}
    per_family, items, oracle_items = _families(ctx, cfg, seed, skipped)
    out = ResultBuilder(metadata)
    n_boot = int(cfg["bootstrap_resamples"])
    if oracle_items:
        idx = rng.integers(0, len(oracle_items), (n_boot, len(oracle_items)))
        for name, arr in [(f"selectivity@{n}", np.array(items[n])) for n in ns] + [("oracle_selectivity", np.array(oracle_items))]:
            out.add(name, float(arr.mean()), interval=bootstrap_mean_interval(arr, idx))
        for name in per_family:
            out.add(f"selectivity@20_{name}", per_family[name].get("selectivity@20"), reason="20 is not among ns")
    else:
        out.null([f"selectivity@{n}" for n in ns] + ["oracle_selectivity"],
                 "; ".join(f"{k}: {v}" for k, v in skipped.items()) or "no class family available")
    leak, counts = _leakage(ctx, cfg, seed)
    out.update(leak, reason=counts if isinstance(counts, str) else
               "the raw-dimension probe is at chance, so leakage is undefined")
    out.details.update({"per_family": per_family, "skipped_families": skipped})
    if not isinstance(counts, str):
        out.details["leakage"] = {"phone_features": counts[0], "sex_features": counts[1],
                                  "raw_sex_balanced_accuracy": round(counts[2], 4),
                                  "raw_phone_balanced_accuracy": round(counts[3], 4)}
    roles = [f"{r}_{s}" for _, r, _ in FAMILIES for s in ("train", "test")] + ["speech_train", "speech_test"]
    out.frames.update({r: ctx.activations(r).n_frames for r in roles})
    return out.build(floor=0.0, ceiling=out.values.get("oracle_selectivity"),
                     method="percentile bootstrap over classes (keywords and sound classes), 95%", n=n_boot)
