"""Single-feature detectors: the F1 of "feature j fires above a threshold" against a binary concept.

The threshold of each (feature, concept) is chosen on train from a fixed grid, 0 (the feature fires
at all) and :data:`QUANTILES` of the feature's active train values, and the test F1 is read at it.
The coverage task and the feature views (dashboards, autointerp) use these same definitions.
"""

from __future__ import annotations

import numpy as np

# Thresholds tried on train: 0 (the feature fires at all) and these quantiles of its active values.
QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


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


def _count_grid(z, taus: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ``z[:, f] > taus[f, t]`` against each concept ``y[:, c]`` (``taus`` ascending along t): the
    true positives [features, thresholds, concepts] and the predicted positives [features, thresholds, 1].
    Each stored value's rank (how many of its feature's thresholds it exceeds) bins the positives, so
    one sparse product counts every threshold; exact integer counts."""
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
    return above[:, 1:], n_pred[:, 1:, None]  # rank >= t + 1 means score > taus[t]


def _f1_grid(z, taus: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[features, thresholds, concepts]: F1 of ``z[:, f] > taus[f, t]`` against each concept ``y[:, c]``,
    with ``taus`` ascending along t (counts: :func:`_count_grid`)."""
    tp, n_pred = _count_grid(z, taus, y)
    denom = n_pred + y.sum(0)[None, None, :]
    return np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0)


def feature_f1_scores(z_train, y_train: np.ndarray, z_test, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[C, d_sae] train F1 (best threshold) and test F1 (at that threshold) for every feature: codes
    ``z_*`` (scipy sparse [items, d_sae]) against concepts ``y_*`` ([items, C] bool).

    All features at once, the same numbers as ``threshold_f1`` on each feature's values: the
    candidate thresholds are 0 and ``column_quantiles`` of its train values, sorted (duplicates
    score alike, so the first best is the lowest best threshold, as there)."""
    ztr, zte = z_train.tocsc(), z_test.tocsc()
    ytr, yte = y_train.astype(np.float64), y_test.astype(np.float64)
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


def feature_detection_scores(z_train, y_train: np.ndarray, z_test, y_test: np.ndarray) -> dict[str, np.ndarray]:
    """The detectors of :func:`feature_f1_scores` (threshold chosen on train, read on test), with the
    test precision and recall beside the F1: ``train_f1``, ``f1``, ``precision`` (TP / predicted, 0
    when nothing is predicted), ``recall`` (TP / positives, 0 without positives) and ``threshold``,
    each [C, d_sae]. ``train_f1`` and ``f1`` are those of :func:`feature_f1_scores`, bit for bit."""
    ztr, zte = z_train.tocsc(), z_test.tocsc()
    ytr, yte = y_train.astype(np.float64), y_test.astype(np.float64)
    d_sae, c = ztr.shape[1], ytr.shape[1]
    out = {k: np.zeros((c, d_sae), np.float32) for k in ("train_f1", "f1", "precision", "recall")}
    out["threshold"] = np.zeros((c, d_sae))
    pos = yte.sum(0)
    for cols in _blocks((ztr.indptr, zte.indptr), d_sae):
        btr, bte = ztr[:, cols], zte[:, cols]
        taus = np.sort(np.c_[np.zeros(btr.shape[1]), column_quantiles(btr)], axis=1)
        f_tr = _f1_grid(btr, taus, ytr)
        best = f_tr.argmax(1)  # [features, concepts]; ties: the lowest threshold
        pick = (np.arange(btr.shape[1])[:, None], best, np.arange(c)[None, :])
        tp, n_pred = _count_grid(bte, taus, yte)
        tp, n_pred = tp[pick], np.broadcast_to(n_pred, tp.shape)[pick]  # [features, concepts]
        denom = n_pred + pos[None, :]
        out["train_f1"][:, cols] = f_tr[pick].T
        out["f1"][:, cols] = np.where(denom > 0, 2.0 * tp / np.maximum(denom, 1), 0.0).T
        out["precision"][:, cols] = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0).T
        out["recall"][:, cols] = np.where(pos[None, :] > 0, tp / np.maximum(pos[None, :], 1), 0.0).T
        out["threshold"][:, cols] = taus[np.arange(btr.shape[1])[:, None], best].T
    return out
