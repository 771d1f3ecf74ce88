"""Chunked and sparse SAE codes agree with the dense computation; the coverage F1 search is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from audiosaebench.activations import store
from audiosaebench.baselines import random_sae
from audiosaebench.codes import pooled_clip_codes, sparse_frame_codes
from audiosaebench.sae.sae import SAE
from audiosaebench_tasks.coverage.compute import QUANTILES, threshold_f1
from tests.factories import random_params

LENGTHS = [5, 0, 13, 1, 9, 20, 3]  # a clip with no valid frames, clips straddling chunks and shards


@pytest.fixture
def acts(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "SHARD_BYTES", 4 * 8 * 11)  # 11 rows per shard
    rng = np.random.default_rng(0)
    w = store.StoreWriter("k" * 64, {"kind": "test"}, 8, root=tmp_path)
    for i, n in enumerate(LENGTHS):
        w.add_clip(f"c{i}", rng.normal(size=(n, 8)).astype(np.float32))
    return w.commit()


def _dense(sae, a):
    return sae.encode(torch.from_numpy(np.asarray(a.rows(0, a.n_frames)).copy())).numpy()


def test_take_and_pooled_match_rows(acts):
    x = np.asarray(acts.rows(0, acts.n_frames))
    idx = np.array([40, 3, 11, 12, 0, 50])
    np.testing.assert_array_equal(acts.take(idx), x[idx])
    off = acts.offsets
    pooled = acts.pooled("mean")
    for i in range(len(LENGTHS)):
        want = x[off[i] : off[i + 1]].mean(0) if LENGTHS[i] else np.zeros(8)
        np.testing.assert_allclose(pooled[i], want, rtol=1e-6)


@pytest.mark.parametrize("chunk", [4, 7, 1000])
def test_sparse_and_pooled_codes_match_dense(acts, chunk):
    sae = random_sae(8, 24, 3, "m", "h", seed=1)
    z = _dense(sae, acts)
    rows = np.array([0, 4, 5, 17, 30, 50])
    np.testing.assert_allclose(sparse_frame_codes(sae, acts, rows, chunk).toarray(), z[rows], rtol=1e-6)
    off = acts.offsets
    mx, mean = pooled_clip_codes(sae, acts, "max", chunk).toarray(), pooled_clip_codes(sae, acts, "mean", chunk).toarray()
    for i in range(len(LENGTHS)):
        part = z[off[i] : off[i + 1]]
        np.testing.assert_allclose(mx[i], part.max(0) if len(part) else 0, rtol=1e-6)
        np.testing.assert_allclose(mean[i], part.mean(0) if len(part) else 0, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("norm", ["none", "layer_norm", "constant_norm_rescale"])
def test_contribution_is_decode_difference(norm):
    from audiosaebench.sae.sae import SAEInfo

    params = random_params("standard", 8, 16, seed=2)
    sae = SAE(SAEInfo("standard", 8, 16, normalize_activations=norm), params)
    x = torch.randn(5, 8) * 3 + 1
    z, state = sae.encode_with_state(x)
    feats = torch.tensor([1, 4, 9])
    z0 = z.clone()
    z0[:, feats] = 0
    want = sae.decode(z, state) - sae.decode(z0, state)
    torch.testing.assert_close(sae.contribution(z, feats, state), want, atol=1e-5, rtol=1e-5)


def _brute(v_tr, y_tr, v_te, y_te):
    """Dense reference: every grid threshold, sklearn's F1."""
    active = v_tr[v_tr > 0]
    taus = np.unique(np.r_[0.0, np.quantile(active, QUANTILES)]) if len(active) else np.zeros(1)
    f1s = [f1_score(y_tr, v_tr > t, zero_division=0.0) for t in taus]
    best = int(np.argmax(f1s))
    return f1s[best], f1_score(y_te, v_te > taus[best], zero_division=0.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(5, 60), st.floats(0.0, 0.9))
def test_threshold_f1_matches_brute_force(seed, n, sparsity):
    rng = np.random.default_rng(seed)
    v_tr = np.where(rng.random(n) < sparsity, 0.0, rng.gamma(2.0, size=n)).round(2)  # ties included
    v_te = np.where(rng.random(n) < sparsity, 0.0, rng.gamma(2.0, size=n)).round(2)
    y_tr = (v_tr + rng.normal(0, 1, n) > 1.5)
    y_te = (v_te + rng.normal(0, 1, n) > 1.5)
    nz_tr, nz_te = np.flatnonzero(v_tr), np.flatnonzero(v_te)
    tr, te = threshold_f1(v_tr[nz_tr], nz_tr, y_tr[:, None].astype(np.int64), v_te[nz_te], nz_te, y_te[:, None].astype(np.int64))
    want_tr, want_te = _brute(v_tr, y_tr, v_te, y_te)
    assert tr[0] == pytest.approx(want_tr) and te[0] == pytest.approx(want_te)
