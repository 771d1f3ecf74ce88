"""The first encoder layer above the hook from the memo of its unchanged frames, against transformers'
Whisper encoder layer (random weights, large enough that attention is far from uniform)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from audiosaebench.models import unedited_frames_memo
from audiosaebench.models.unedited_frames_memo import UneditedFramesMemo, attend, attend_by_hand
from tests.factories import sharp_whisper

D, HEADS, T = 32, 4, 60


@pytest.fixture(scope="module")
def model():
    m = sharp_whisper(D, HEADS, encoder_layers=2, decoder_layers=1, frames=T)
    with torch.no_grad():
        for layer in m.model.encoder.layers:  # sharper self-attention than the rest's scale gives
            layer.self_attn_layer_norm.weight.normal_(1, 0.2)
            layer.self_attn.q_proj.weight.normal_(0, 0.6)
            layer.self_attn.k_proj.weight.normal_(0, 0.6)
    return m


@pytest.fixture(scope="module")
def layer(model):
    return model.model.encoder.layers[1]


def _states(seed=1, b=3):
    return torch.randn(b, T, D, generator=torch.Generator().manual_seed(seed)) * 2


def _edit(states, e, seed=5):
    """``states`` with frames [0, e) of every row changed (row 0 only up to e - 1, as clips differ in length)."""
    h = states.clone()
    noise = torch.randn(states.shape[0], e, D, generator=torch.Generator().manual_seed(seed))
    h[:, :e] += noise
    h[0, e - 1] = states[0, e - 1]
    return h


def _layer(layer, h):
    with torch.no_grad():
        out = layer(h, None)
    return out[0] if isinstance(out, tuple) else out


def test_attention_is_not_uniform_here(layer):
    """Guards the test layer: with near-uniform attention a wrong merge of the two parts could still match."""
    a = layer.self_attn
    x = layer.self_attn_layer_norm(_states())
    with torch.no_grad():
        q = (a.q_proj(x) * a.scaling).view(3, T, HEADS, -1).transpose(1, 2)
        k = a.k_proj(x).view(3, T, HEADS, -1).transpose(1, 2)
        weights = (q @ k.transpose(-1, -2)).softmax(-1)
    assert weights.max(-1).values.mean() > 0.5


@pytest.mark.parametrize("e", [1, 7, T // 2])
def test_memo_pass_matches_the_layer(layer, e):
    memo = UneditedFramesMemo(layer, budget_bytes=1 << 30)
    states = _states()
    with torch.no_grad():
        for seed in (5, 6):  # the first builds the entry, the second finds it
            h = _edit(states, e, seed)
            torch.testing.assert_close(memo(states, h, e), _layer(layer, h), rtol=1e-5, atol=5e-5)
    assert (memo.misses, memo.hits, len(memo.entries)) == (1, 1, 1)


def test_an_edit_narrower_than_its_extent_uses_the_entry_of_that_extent(layer):
    memo = UneditedFramesMemo(layer, budget_bytes=1 << 30)
    states = _states()
    with torch.no_grad():
        memo(states, _edit(states, 20), 20)
        h = _edit(states, 4, seed=9)
        torch.testing.assert_close(memo(states, h, 20), _layer(layer, h), rtol=1e-5, atol=5e-5)
        other = memo(states, h, 25)  # another declared extent: an entry of its own
        torch.testing.assert_close(other, _layer(layer, h), rtol=1e-5, atol=5e-5)
        assert memo(states, _edit(states, 25, seed=10), 20) is None  # the edit reached the declared tail
    assert (memo.misses, memo.hits, [m.e for m in memo.entries]) == (2, 1, [20, 25])


def test_the_result_does_not_depend_on_what_the_memo_kept(layer):
    """The same states, edit and extent give the same bits on first use, on reuse and without keeping."""
    states = _states()
    first, kept_before = UneditedFramesMemo(layer, budget_bytes=1 << 30), UneditedFramesMemo(layer, budget_bytes=1 << 30)
    with torch.no_grad():
        h = _edit(states, 4, seed=9)
        kept_before(states, _edit(states, 12, seed=3), 12)  # another edit of the batch came first
        a = first(states, h, 12)
        b = kept_before(states, h, 12)
        c = UneditedFramesMemo(layer, budget_bytes=1 << 30)(states, h, 12, keep=False)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_another_tail_is_not_taken_for_a_stored_one(layer):
    """Two batches alike but for one tail value: the second must not use the first's entry."""
    memo = UneditedFramesMemo(layer, budget_bytes=1 << 30)
    a = _states()
    b = a.clone()
    b[2, T - 1, 3] += 1e-3
    with torch.no_grad():
        memo(a, _edit(a, 5), 5)
        h = _edit(b, 5)
        torch.testing.assert_close(memo(b, h, 5), _layer(layer, h), rtol=1e-5, atol=5e-5)
        torch.testing.assert_close(memo(b.clone(), h, 5), _layer(layer, h), rtol=1e-5, atol=5e-5)
    assert (memo.misses, memo.hits) == (2, 1)


def test_a_full_budget_keeps_what_it_has_and_stays_right(layer):
    memo = UneditedFramesMemo(layer, budget_bytes=1 << 30)
    with torch.no_grad():
        memo(_states(1), _edit(_states(1), 5), 5)
    one = memo.used
    memo = UneditedFramesMemo(layer, budget_bytes=int(1.5 * one))
    with torch.no_grad():
        for _ in range(2):
            for seed in (1, 2):
                s = _states(seed)
                h = _edit(s, 5)
                torch.testing.assert_close(memo(s, h, 5), _layer(layer, h), rtol=1e-5, atol=5e-5)
    assert len(memo.entries) == 1 and memo.used == one
    assert (memo.hits, memo.misses) == (1, 3)  # the first batch is kept, the second rebuilt each time


def test_where_the_memo_does_not_apply(layer):
    memo = UneditedFramesMemo(layer, budget_bytes=1 << 30)
    s = _states()
    with torch.no_grad():
        assert memo(s, _edit(s, 5), None) is None  # no extent declared
        assert memo(s, _edit(s, T // 2 + 1), T // 2 + 1) is None  # more than half the frames
    h = _edit(s, 5)
    assert memo(s, h, 5) is None  # gradients asked
    handle = layer.fc1.register_forward_hook(lambda *_: None)
    try:
        with torch.no_grad():
            assert memo(s, h, 5) is None  # a hook on a submodule must see its input
    finally:
        handle.remove()
    with torch.no_grad():
        assert UneditedFramesMemo(layer, budget_bytes=0)(s, h, 5) is None
    assert memo.entries == []


def test_written_out_attention_matches_torchs_kernel():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 3, n, 8, generator=g) * 2 for n in (300, 40, 40))
    out, lse = attend(q, k, v)
    out2, lse2 = attend_by_hand(q, k, v)
    torch.testing.assert_close(out2, out, rtol=1e-5, atol=5e-5)
    torch.testing.assert_close(lse2, lse, rtol=1e-5, atol=5e-5)
    torch.testing.assert_close(lse, (q @ k.transpose(-1, -2)).logsumexp(-1), rtol=1e-5, atol=5e-5)


def test_memo_pass_by_hand_matches_the_layer(layer, monkeypatch):
    monkeypatch.setattr(unedited_frames_memo, "attend", attend_by_hand)
    monkeypatch.setattr(unedited_frames_memo, "QUERY_BLOCK", 16)  # several blocks
    memo = UneditedFramesMemo(layer, budget_bytes=1 << 30)
    s = _states()
    with torch.no_grad():
        for seed in (5, 6):
            h = _edit(s, 9, seed)
            torch.testing.assert_close(memo(s, h, 9), _layer(layer, h), rtol=1e-5, atol=5e-5)


def test_bfloat16_layer(model):
    import copy

    layer = copy.deepcopy(model.model.encoder.layers[1]).to(torch.bfloat16)
    memo = UneditedFramesMemo(layer, budget_bytes=1 << 30)
    s = _states().to(torch.bfloat16)
    with torch.no_grad():
        h = _edit(s, 6)
        ours, ref = memo(s, h, 6), _layer(layer, h)
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), ref.float(), rtol=0.05, atol=0.1)


def test_continuation_with_an_edit_is_the_same_with_and_without_the_memo(model, monkeypatch):
    """An edit through a hook on the continuation's site, as steering makes it."""
    from types import SimpleNamespace

    from audiosaebench.models.continuation import Continuation

    hook = SimpleNamespace(name="encoder.layers.0", layer=0)
    adapter = SimpleNamespace(family="whisper", model=model, base_model=model.model, resolve=lambda _name: hook)
    s = _states()

    def run(budget: str) -> tuple[torch.Tensor, UneditedFramesMemo]:
        monkeypatch.setenv("AUDIOSAEBENCH_TAIL_MEMO_MB", budget)
        cont = Continuation(adapter, "encoder.layers.0", nn.Identity(), start="output")
        handle = cont.hook_module.register_forward_hook(lambda _m, _i, out: _edit(out, 8))
        try:
            with torch.no_grad(), cont.editing(8):
                outs = [cont(s) for _ in range(2)]
        finally:
            handle.remove()
        torch.testing.assert_close(outs[0], outs[1])
        return outs[1], cont._tail_memo

    with_memo, memo = run("64")
    without, off = run("0")
    assert (memo.misses, memo.hits) == (1, 1) and off.entries == []
    torch.testing.assert_close(with_memo, without, rtol=1e-5, atol=5e-5)
    with torch.no_grad():
        full = model.model.encoder.layer_norm(_layer(model.model.encoder.layers[1], _edit(s, 8)))
    torch.testing.assert_close(with_memo, full, rtol=1e-5, atol=5e-5)


def test_an_edit_not_reused_keeps_nothing(model, monkeypatch):
    from types import SimpleNamespace

    from audiosaebench.models.continuation import Continuation

    monkeypatch.setenv("AUDIOSAEBENCH_TAIL_MEMO_MB", "64")
    hook = SimpleNamespace(name="encoder.layers.0", layer=0)
    adapter = SimpleNamespace(family="whisper", model=model, base_model=model.model, resolve=lambda _name: hook)
    cont = Continuation(adapter, "encoder.layers.0", nn.Identity(), start="output")
    s = _states()
    shift = torch.randn(D, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        with cont.replace_output(lambda x: x + shift, [8, 5, 8], reused=False):
            once = cont(s)
        memo = cont._tail_memo
        assert memo is not None and memo.entries == [] and memo.misses == 1
        with cont.replace_output(lambda x: x + shift, [8, 5, 8]):
            kept = cont(s)
        assert len(memo.entries) == 1 and memo.misses == 2
    assert torch.equal(once, kept)  # the same computation, kept or not
