"""The harness's Whisper text decoder against transformers' own decoder (random weights, large enough
that attention is far from uniform)."""

from __future__ import annotations

import pytest
import torch

from audiosaebench.models.whisper_text_decoder import TextDecoder
from tests.factories import sharp_whisper

D, HEADS = 32, 4  # head_dim 8: a memory projects once more than 8 queries have been asked of it


@pytest.fixture(scope="module")
def model():
    return sharp_whisper(D, HEADS, encoder_layers=1, decoder_layers=2, frames=50)


@pytest.fixture(scope="module")
def enc():
    return torch.randn(3, 50, D, generator=torch.Generator().manual_seed(1)) * 2


def _reference(model, ids, enc):
    return model.model.decoder(input_ids=ids, encoder_hidden_states=enc, use_cache=False).last_hidden_state


def _ids(b, n, seed=2):
    return torch.randint(3, 120, (b, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n,projected", [(1, False), (5, False), (8, False), (9, True), (30, True)])
def test_teacher_forced_states_match_transformers(model, enc, n, projected):
    text = TextDecoder(model)
    ids = _ids(3, n)
    memory = text.memory(enc)
    with torch.no_grad():
        ours = text(ids, memory)
        ref = _reference(model, ids, enc)
    assert memory.projected is projected
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_attention_is_not_uniform_here(model, enc):
    """Guards the test model: with near-uniform attention a wrong key path could still match."""
    a = model.model.decoder.layers[0].encoder_attn
    x = model.model.decoder.layers[0].encoder_attn_layer_norm(torch.randn(3, 4, D))
    with torch.no_grad():
        q = a.q_proj(x) * a.scaling
        k = a.k_proj(enc)
        p = (q[:, :, :8] @ k[:, :, :8].transpose(1, 2)).softmax(-1)
    assert p.max() > 0.3  # 50 frames: uniform would be 0.02


def test_a_cached_decode_matches_the_full_pass_across_the_projection(model, enc):
    """Position by position with a self-attention cache (1 query per pass, then 3 at once), crossing
    the point where the memory projects its keys and values: every state is the full pass's."""
    text = TextDecoder(model)
    ids = _ids(3, 14)
    with torch.no_grad():
        ref = _reference(model, ids, enc)
        memory, cache = text.memory(enc), text.cache(3, 14, enc)
        states = [text(ids[:, :2], memory, cache)]
        for t in range(2, 11):
            states.append(text(ids[:, t : t + 1], memory, cache))
        assert memory.projected and cache.length == 11
        states.append(text(ids[:, 11:14], memory, cache))  # several new queries after cached ones
    torch.testing.assert_close(torch.cat(states, 1), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("steps_before", [2, 9])
def test_rows_that_leave_decode_as_they_would_alone(model, enc, steps_before):
    text = TextDecoder(model)
    ids = _ids(3, 12)
    keep = torch.tensor([0, 2])
    with torch.no_grad():
        memory, cache = text.memory(enc), text.cache(3, 12, enc)
        text(ids[:, :steps_before], memory, cache)
        cache.select(keep)
        memory.select(keep)
        out = text(ids[keep, steps_before:], memory, cache)
        ref = _reference(model, ids[keep], enc[keep])[:, steps_before:]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [2, 12])
def test_gradients_reach_the_encoder_states_as_through_transformers(model, enc, n):
    text = TextDecoder(model)
    ids = _ids(3, n)
    w = torch.randn(3, n, D, generator=torch.Generator().manual_seed(3))
    grads = []
    for run in (lambda e: text(ids, text.memory(e)), lambda e: _reference(model, ids, e)):
        e = enc.clone().requires_grad_(True)
        (run(e) * w).sum().backward()
        grads.append(e.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_too_many_positions_is_a_clear_error(model, enc):
    text = TextDecoder(model)
    with pytest.raises(ValueError, match="40 positions"):
        text(_ids(3, 41), text.memory(enc))
    cache = text.cache(3, 4, enc)
    with pytest.raises(ValueError, match="holds 4 positions"):
        text(_ids(3, 5), text.memory(enc), cache)
