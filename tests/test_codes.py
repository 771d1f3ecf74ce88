"""Chunked and sparse SAE codes agree with the dense computation; the coverage F1 search is exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from audiosaebench.activations import store
from audiosaebench.codes import MEMO, _Packed, iter_codes, pooled_clip_codes, sparse_frame_codes
from audiosaebench.sae.reference import random_sae
from audiosaebench.sae.sae import SAE
from audiosaebench.toolkit.feature_f1 import QUANTILES, threshold_f1
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


def _chunks(sae, acts, chunk=None):
    return [(c.start, c.x.clone(), c.z.clone(), c.x_hat.clone()) for c in iter_codes(sae, acts, chunk)]


@pytest.fixture
def count_encodes(monkeypatch):
    calls = {"encode": 0, "decode": 0}
    enc, dec = SAE.encode_with_state, SAE.decode

    def counting_encode(self, x):
        calls["encode"] += 1
        return enc(self, x)

    def counting_decode(self, z, state=None):
        calls["decode"] += 1
        return dec(self, z, state)

    monkeypatch.setattr(SAE, "encode_with_state", counting_encode)
    monkeypatch.setattr(SAE, "decode", counting_decode)
    return calls


@pytest.mark.parametrize("norm", ["none", "layer_norm"])
def test_the_memo_replays_codes_bit_for_bit_without_encoding(acts, count_encodes, norm):
    sae = random_sae(8, 24, 3, "m", "h", seed=1)
    sae = sae.with_info(normalize_activations=norm)
    with MEMO.session():
        first = _chunks(sae, acts, 7)
        n_chunks = count_encodes["encode"]
        again = _chunks(sae, acts, 7)
        assert count_encodes["encode"] == n_chunks  # replayed, not encoded
        other_chunking = _chunks(sae, acts, 5)  # another chunk size is another entry: it may round differently
        assert count_encodes["encode"] > n_chunks
        assert len(MEMO) == 2
    assert len(MEMO) == 0  # released with the session
    assert len(first) == len(again) == n_chunks
    for (s0, x0, z0, h0), (s1, x1, z1, h1) in zip(first, again, strict=True):
        assert s0 == s1 and torch.equal(x0, x1) and torch.equal(z0, z1) and torch.equal(h0, h1)
    torch.testing.assert_close(torch.cat([c[2] for c in other_chunking]), torch.cat([c[2] for c in first]))


def test_the_memo_forgets_edited_weights_partial_reads_and_works_only_in_a_session(acts, count_encodes, monkeypatch):
    sae = random_sae(8, 24, 3, "m", "h", seed=1)
    _chunks(sae, acts)
    assert len(MEMO) == 0  # no session: nothing kept
    with MEMO.session():
        next(iter_codes(sae, acts, 4))  # a partial read is not kept
        assert len(MEMO) == 0
        before = _chunks(sae, acts, 4)
        assert len(MEMO) == 1
        with torch.no_grad():
            sae.params["W_enc"].mul_(-1)  # edited in place: the kept codes are stale
        n = count_encodes["encode"]
        after = _chunks(sae, acts, 4)
        assert count_encodes["encode"] > n
        want = sae.encode(torch.from_numpy(np.asarray(acts.rows(0, acts.n_frames)).copy()))
        assert torch.equal(torch.cat([c[2] for c in after]), want)
        assert not torch.equal(torch.cat([c[2] for c in before]), want)
        monkeypatch.setenv("AUDIOSAEBENCH_CODE_MEMO_MB", "0.0001")  # 104 bytes: the codes do not fit
        packed = []
        pack = _Packed.pack
        monkeypatch.setattr(_Packed, "pack", classmethod(lambda cls, z: packed.append(1) or pack(z)))
        other = random_sae(8, 24, 3, "m", "h", seed=2)
        n0 = count_encodes["encode"]
        _chunks(other, acts, 4)
        n1 = count_encodes["encode"]
        assert 0 < len(packed) < n1 - n0  # recording stopped once over the budget
        _chunks(other, acts, 4)
        assert count_encodes["encode"] - n1 == n1 - n0  # encoded again: it was not kept


def test_readers_of_z_alone_never_decode(acts, count_encodes):
    sae = random_sae(8, 24, 3, "m", "h", seed=1)
    sparse_frame_codes(sae, acts, np.arange(10))
    pooled_clip_codes(sae, acts, "max")
    assert count_encodes["encode"] > 0 and count_encodes["decode"] == 0
    chunk = next(iter_codes(sae, acts))
    x_hat = chunk.x_hat
    assert count_encodes["decode"] == 1 and chunk.x_hat is x_hat  # decoded once, on first read
    assert torch.equal(x_hat, sae.decode(chunk.z, chunk.state))


def test_the_memo_keeps_saes_that_share_tensors_apart(acts, count_encodes):
    plain = random_sae(8, 24, 3, "m", "h", seed=1)
    normed = plain.with_info(normalize_activations="layer_norm")  # same tensors, other codes
    with MEMO.session():
        z_plain, z_normed = (torch.cat([c[2] for c in _chunks(s, acts)]) for s in (plain, normed))
    assert len(MEMO) == 0 and not torch.equal(z_plain, z_normed)
    x = torch.from_numpy(np.asarray(acts.rows(0, acts.n_frames)).copy())
    assert torch.equal(z_normed, normed.encode(x)) and torch.equal(z_plain, plain.encode(x))


def test_the_memo_lets_the_least_recently_used_set_go_first(acts, count_encodes, monkeypatch):
    a, b = (random_sae(8, 24, 3, "m", "h", seed=s) for s in (1, 2))
    with MEMO.session():
        _chunks(a, acts)
        one = MEMO.nbytes
        monkeypatch.setenv("AUDIOSAEBENCH_CODE_MEMO_MB", str(1.5 * one / (1 << 20)))  # room for one set, not two
        _chunks(b, acts)
        assert len(MEMO) == 1 and MEMO.nbytes <= 1.5 * one
        n = count_encodes["encode"]
        _chunks(b, acts)  # kept
        assert count_encodes["encode"] == n
        _chunks(a, acts)  # let go
        assert count_encodes["encode"] > n
