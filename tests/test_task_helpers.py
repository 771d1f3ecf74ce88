"""Fast replacements of library helpers inside tasks give the library's answers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 5)), min_size=1, max_size=60))
def test_balanced_accuracy_equals_sklearn(pairs):
    from sklearn.metrics import balanced_accuracy_score

    from audiosaebench_tasks.disentanglement.compute import balanced_accuracy

    y, pred = (np.array(v) for v in zip(*pairs, strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when pred has classes y lacks
        want = balanced_accuracy_score(y, pred)
    assert balanced_accuracy(y, pred) == pytest.approx(want, abs=1e-12)


def _csc_columns(rng, n_rows: int, n_cols: int, density: float, dtype=np.float32):
    from scipy import sparse

    dense = np.where(rng.random((n_rows, n_cols)) < density, rng.gamma(2.0, size=(n_rows, n_cols)).round(1), 0.0)
    return sparse.csc_matrix(dense.astype(dtype))


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40), st.integers(1, 12), st.floats(0.0, 1.0))
def test_column_quantiles_equal_numpy_bit_for_bit(seed, n_rows, n_cols, density):
    from audiosaebench.toolkit.feature_f1 import QUANTILES, column_quantiles

    z = _csc_columns(np.random.default_rng(seed), n_rows, n_cols, density)
    got = column_quantiles(z)
    for j in range(n_cols):
        vals = z.data[z.indptr[j] : z.indptr[j + 1]]
        want = np.quantile(vals, QUANTILES) if len(vals) else np.zeros(len(QUANTILES))
        assert got[j].tobytes() == want.tobytes()


def _feature_f1_one_by_one(fam):
    """The definition: ``threshold_f1`` on each feature's stored values."""
    from audiosaebench.toolkit.feature_f1 import threshold_f1

    ztr, zte = fam.z_train.tocsc(), fam.z_test.tocsc()
    ytr, yte = fam.y_train.astype(np.int64), fam.y_test.astype(np.int64)
    tr_f1 = np.zeros((ytr.shape[1], ztr.shape[1]), np.float32)
    te_f1 = np.zeros_like(tr_f1)
    for j in range(ztr.shape[1]):
        a, b, ta, tb = ztr.indptr[j], ztr.indptr[j + 1], zte.indptr[j], zte.indptr[j + 1]
        tr_f1[:, j], te_f1[:, j] = threshold_f1(ztr.data[a:b], ztr.indices[a:b], ytr, zte.data[ta:tb], zte.indices[ta:tb], yte)
    return tr_f1, te_f1


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 60), st.integers(1, 30), st.integers(1, 4), st.floats(0.0, 1.0))
def test_feature_f1_equals_threshold_f1_per_feature(seed, n_items, d_sae, n_concepts, density):
    from audiosaebench.toolkit import feature_f1 as compute
    from audiosaebench_tasks.coverage.compute import Family, feature_f1

    rng = np.random.default_rng(seed)
    z_tr, z_te = (_csc_columns(rng, n_items, d_sae, density) for _ in range(2))
    y_tr, y_te = (rng.random((n_items, n_concepts)) < 0.3 for _ in range(2))
    fam = Family("f", [str(c) for c in range(n_concepts)], y_tr, y_te, z_tr, z_te, None, None, None, None, ())
    want = _feature_f1_one_by_one(fam)
    for block, values in ((7, 10**9), (10**9, 20), (10**9, 10**9)):  # blocks by features, by values, one block
        old = compute._F1_BLOCK, compute._F1_BLOCK_VALUES
        try:
            compute._F1_BLOCK, compute._F1_BLOCK_VALUES = block, values
            got = feature_f1(fam)
        finally:
            compute._F1_BLOCK, compute._F1_BLOCK_VALUES = old
        for g, w in zip(got, want, strict=True):
            assert g.tobytes() == w.tobytes()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(8, 80), st.integers(1, 12), st.sampled_from([np.float32, np.float64]),
       st.booleans())
def test_probe_predict_equals_sklearn(seed, n, d, dtype, bool_labels):
    from audiosaebench_tasks.disentanglement.compute import _fit, decision, predict

    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n, d)) * rng.gamma(1.0, size=d) + rng.normal(size=d)).astype(dtype)
    y = x[:, 0] + rng.normal(0, 1, n) > 0
    if y.all() or not y.any():
        y[0] = not y[0]
    y = y if bool_labels else np.where(y, "a", "b")
    model = _fit(x, y, 1.0, seed)
    x_new = (rng.normal(size=(n, d)) * 2).astype(dtype)
    for data in (x, x_new):
        assert decision(model, data).tobytes() == model[1].decision_function(model[0].transform(data)).tobytes()
        want = model[1].predict(model[0].transform(data))
        got = predict(model, data)
        assert got.dtype == want.dtype and np.array_equal(got, want)
