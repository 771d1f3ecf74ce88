"""phoneme_probing (see README.md in this folder)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sklearn
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from audiosaebench.cache import cached_json
from audiosaebench.codes import iter_codes
from audiosaebench.data.phones import ARPABET
from audiosaebench.labels import frame_phone_ids
from audiosaebench.task import TaskContext, TaskMetadata, TaskResult
from audiosaebench.toolkit import ResultBuilder, null_result, percentile_interval


def _balanced_sets(y: np.ndarray, phones: list[int], max_pos: int, rng: np.random.Generator) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per phone: (positive frame indices, as many negative indices from other non-silence frames)."""
    speech = np.flatnonzero(y >= 0)
    out = {}
    for p in phones:
        pos = np.flatnonzero(y == p)
        if len(pos) > max_pos:
            pos = np.sort(rng.choice(pos, max_pos, replace=False))
        others = speech[y[speech] != p]
        neg = np.sort(rng.choice(others, min(len(pos), len(others)), replace=False))
        out[p] = (pos, neg)
    return out


def _probe(xtr, ytr, xte, yte, C: float, seed: int) -> float:
    sc = StandardScaler().fit(xtr)
    clf = LogisticRegression(C=C, max_iter=2000, random_state=seed).fit(sc.transform(xtr), ytr)
    return float(clf.score(sc.transform(xte), yte))


def _mean_diff_sae(sae, acts, sets: dict, chunk) -> np.ndarray:
    """[n_phones, d_sae] mean difference of z between each phone's positive and negative sets."""
    phones = list(sets)
    n = acts.n_frames
    w = np.zeros((len(phones), n), dtype=np.float32)
    for i, p in enumerate(phones):
        pos, neg = sets[p]
        w[i, pos] += 1.0 / len(pos)
        w[i, neg] -= 1.0 / len(neg)
    used = np.flatnonzero(np.abs(w).sum(0) > 0)
    keep = np.zeros(n, bool)
    keep[used] = True
    diff = torch.zeros(len(phones), sae.d_sae, dtype=torch.float64)
    for ch in iter_codes(sae, acts, chunk):
        rows = slice(ch.start, ch.start + ch.z.shape[0])
        m = keep[rows]
        if m.any():
            diff += torch.from_numpy(w[:, rows][:, m]).double() @ ch.z[torch.from_numpy(m)].double().cpu()
    return diff.numpy()


def _gather_features(sae, acts, idx: np.ndarray, feats: np.ndarray, chunk) -> np.ndarray:
    """z[idx][:, feats] without a dense frames x d_sae matrix."""
    out = np.zeros((len(idx), len(feats)), dtype=np.float32)
    order = np.argsort(idx)
    sorted_idx = idx[order]
    f = torch.from_numpy(feats)
    for ch in iter_codes(sae, acts, chunk):
        lo, hi = np.searchsorted(sorted_idx, [ch.start, ch.start + ch.z.shape[0]])
        if hi > lo:
            local = torch.from_numpy(sorted_idx[lo:hi] - ch.start)
            out[order[lo:hi]] = ch.z[local][:, f].float().cpu().numpy()
    return out


def _frame_accuracy(sae, tr, ytr, te, yte, n_perm: int, rng, chunk) -> tuple[float | None, float | None]:
    """AudioSAE frame accuracy: feature label = majority phone of its active train frames; a test
    frame is correct if any active feature carries its phone. Chance: feature labels permuted."""
    n_ph = len(ARPABET)
    counts = torch.zeros(sae.d_sae, n_ph, dtype=torch.float64)
    for ch in iter_codes(sae, tr, chunk):
        y = torch.from_numpy(ytr[ch.start : ch.start + ch.z.shape[0]].astype(np.int64))
        m = y >= 0
        if m.any():
            onehot = torch.nn.functional.one_hot(y[m], n_ph).double()
            counts += (ch.z[m] != 0).double().cpu().T @ onehot
    alive = counts.sum(1) > 0
    if not alive.any():
        return None, None
    label = torch.where(alive, counts.argmax(1), torch.full((sae.d_sae,), -2))
    perms = []
    alive_idx = torch.nonzero(alive).squeeze(1)
    for _ in range(n_perm):
        lab = label.clone()
        lab[alive_idx] = label[alive_idx][torch.from_numpy(rng.permutation(len(alive_idx)))]
        perms.append(lab)
    correct = np.zeros(1 + n_perm)
    total = 0
    for ch in iter_codes(sae, te, chunk):
        y = torch.from_numpy(yte[ch.start : ch.start + ch.z.shape[0]].astype(np.int64))
        m = y >= 0
        if not m.any():
            continue
        act = (ch.z[m] != 0).cpu()
        yy = y[m][:, None]
        for j, lab in enumerate([label, *perms]):
            correct[j] += float((act & (lab[None, :] == yy)).any(1).sum())
        total += int(m.sum())
    if total == 0:
        return None, None
    return correct[0] / total, float(np.mean(correct[1:]) / total)


REFERENCE_CACHE_VERSION = 2  # 2: fitted with numpy/scipy BLAS on one thread


def _cached_references(stores: list[str], cfg, seed: int, phones: list[int], ks: list[int], compute) -> dict:
    """Per phone, the raw-neuron top-k and dense probe accuracies. They depend on the activation
    stores, the balanced frame sets (drawn from ``seed`` before any SAE work) and the options, not on
    the SAE: cached under $AUDIOSAEBENCH_HOME/probing-cache."""
    key = {"v": REFERENCE_CACHE_VERSION, "stores": stores,
           "seed": seed, "phones": phones, "ks": ks, "C": float(cfg["logreg_C"]),
           "max_positives": int(cfg["max_positives"]), "min_positives": int(cfg["min_positives"]),
           "sklearn": sklearn.__version__}
    names = [f"neuron_top{k}" for k in ks] + ["dense"]

    def valid(d) -> bool:
        return isinstance(d, dict) and all(
            isinstance(d.get(ARPABET[p]), dict) and all(isinstance(d[ARPABET[p]].get(n), float)
                                                        and math.isfinite(d[ARPABET[p]][n]) for n in names)
            for p in phones)

    return cached_json("probing-cache", key, compute, valid)


def _names(ks: list[int]) -> list[str]:
    names = [f"{w}_top{k}_accuracy" for k in ks for w in ("sae", "neuron")]
    return names + ["dense_accuracy", "audiosae_frame_accuracy", "audiosae_frame_accuracy_chance"]


@dataclass
class Gathered:
    """What every phone's probes read, gathered once: the frames of the balanced sets, raw and as the
    SAE's top features by mean difference, and each phone's rows and labels among them."""

    x_tr: np.ndarray
    x_te: np.ndarray
    z_tr: np.ndarray  # [frames, features used]: columns ``col[f]``
    z_te: np.ndarray
    top: np.ndarray  # [phones, max k] features by mean difference, per phone
    col: dict[int, int]
    tasks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]  # phone -> rows tr, rows te, y tr, y te


def _gather(sae, tr, te, sets_tr: dict, sets_te: dict, kmax: int) -> Gathered:
    diff = _mean_diff_sae(sae, tr, sets_tr, None)  # [P, d_sae]
    top = np.argsort(-diff, axis=1, kind="stable")[:, :kmax]
    feats = np.unique(top)
    idx_tr = np.unique(np.concatenate([np.concatenate(v) for v in sets_tr.values()]))
    idx_te = np.unique(np.concatenate([np.concatenate(v) for v in sets_te.values()]))
    pos_tr = {int(i): j for j, i in enumerate(idx_tr)}
    pos_te = {int(i): j for j, i in enumerate(idx_te)}
    tasks = {}
    for p in sets_tr:
        (ptr, ntr), (pte, nte) = sets_tr[p], sets_te[p]
        tasks[p] = (np.array([pos_tr[int(i)] for i in np.concatenate([ptr, ntr])]),
                    np.array([pos_te[int(i)] for i in np.concatenate([pte, nte])]),
                    np.r_[np.ones(len(ptr)), np.zeros(len(ntr))], np.r_[np.ones(len(pte)), np.zeros(len(nte))])
    return Gathered(tr.take(idx_tr), te.take(idx_te), _gather_features(sae, tr, idx_tr, feats, None),
                    _gather_features(sae, te, idx_te, feats, None), top, {f: i for i, f in enumerate(feats)}, tasks)


def _reference_probes(g: Gathered, phones: list[int], ks: list[int], C: float, seed: int) -> dict:
    """The raw-neuron top-k and dense probes per phone: the same for every SAE (cached by the caller)."""
    out = {}
    for p in phones:
        rtr, rte, ylab_tr, ylab_te = g.tasks[p]
        xtr, xte = g.x_tr[rtr], g.x_te[rte]
        neuron_top = np.argsort(-np.abs(xtr[ylab_tr == 1].mean(0) - xtr[ylab_tr == 0].mean(0)), kind="stable")
        row = {f"neuron_top{k}": _probe(xtr[:, neuron_top[:k]], ylab_tr, xte[:, neuron_top[:k]], ylab_te, C, seed)
               for k in ks}
        row["dense"] = _probe(xtr, ylab_tr, xte, ylab_te, C, seed)
        out[ARPABET[p]] = row
    return out


def _per_phone(g: Gathered, phones: list[int], ks: list[int], refs: dict, C: float, seed: int) -> dict[str, dict]:
    """Per phone: the SAE's top-k probes beside the cached raw-neuron and dense ones."""
    per_phone: dict[str, dict[str, float]] = {}
    for pi, p in enumerate(phones):
        rtr, rte, ylab_tr, ylab_te = g.tasks[p]
        row: dict[str, float] = {}
        for k in ks:
            cols = [g.col[f] for f in g.top[pi, :k]]
            row[f"sae_top{k}"] = _probe(g.z_tr[rtr][:, cols], ylab_tr, g.z_te[rte][:, cols], ylab_te, C, seed)
            row[f"neuron_top{k}"] = refs[ARPABET[p]][f"neuron_top{k}"]
        row["dense"] = refs[ARPABET[p]]["dense"]
        per_phone[ARPABET[p]] = row
    return per_phone


def _add_means(out: ResultBuilder, per_phone: dict[str, dict], n_boot: int, rng: np.random.Generator) -> None:
    """Each probe kind's mean over phones, with its bootstrap interval over phones."""
    names = list(next(iter(per_phone.values())))
    table = np.array([[row[n] for n in names] for row in per_phone.values()])
    means = table.mean(0)
    boots = np.array([table[rng.integers(0, len(table), len(table))].mean(0) for _ in range(n_boot)])
    for j, n in enumerate(names):
        out.add("dense_accuracy" if n == "dense" else f"{n}_accuracy", means[j], interval=percentile_interval(boots[:, j]),
                reason="undefined")


def run_probing(ctx: TaskContext, metadata: TaskMetadata) -> TaskResult:
    cfg, sae, seed = ctx.config, ctx.sae, ctx.seed
    rng = np.random.default_rng(seed)
    ks = [int(k) for k in cfg["ks"]]
    for role in ("speech_train", "speech_test"):
        if not all(c.labels.get("phones") for c in ctx.manifest(role)):
            return null_result(metadata, _names(ks), f"the {role} split has no phone alignments", floor=0.5)
    tr, te = ctx.activations("speech_train"), ctx.activations("speech_test")
    ytr = frame_phone_ids(ctx.manifest("speech_train"), tr, ctx.model)
    yte = frame_phone_ids(ctx.manifest("speech_test"), te, ctx.model)
    min_pos, C = int(cfg["min_positives"]), float(cfg["logreg_C"])
    phones = [p for p in range(len(ARPABET)) if (ytr == p).sum() >= min_pos and (yte == p).sum() >= min_pos]
    if not phones:
        return null_result(metadata, _names(ks), f"no phone has {min_pos} frames in both splits", floor=0.5)
    sets_tr = _balanced_sets(ytr, phones, int(cfg["max_positives"]), rng)
    sets_te = _balanced_sets(yte, phones, int(cfg["max_positives"]), rng)
    g = _gather(sae, tr, te, sets_tr, sets_te, max(ks))
    refs = _cached_references([tr.key, te.key], cfg, seed, phones, ks, lambda: _reference_probes(g, phones, ks, C, seed))
    per_phone = _per_phone(g, phones, ks, refs, C, seed)
    out = ResultBuilder(metadata)
    _add_means(out, per_phone, int(cfg["bootstrap_resamples"]), rng)
    fa, chance = _frame_accuracy(sae, tr, ytr, te, yte, int(cfg["permutations"]), rng, None)
    out.add("audiosae_frame_accuracy", fa, reason="no feature fires on a speech frame")
    out.add("audiosae_frame_accuracy_chance", chance, reason="no feature fires on a speech frame")
    out.details.update({"phones": [ARPABET[p] for p in phones], "per_phone": per_phone,
                        "n_train_frames": int((ytr >= 0).sum()), "n_test_frames": int((yte >= 0).sum())})
    out.frames.update({"speech_train": tr.n_frames, "speech_test": te.n_frames})
    return out.build(floor=0.5, ceiling=out.values["dense_accuracy"], method="percentile bootstrap over phones, 95%",
                     n=int(cfg["bootstrap_resamples"]))
