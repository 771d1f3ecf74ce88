"""The on-disk cache of full-frame hook states: hits are exact, rows are shared between batches and with
extraction, bad entries are recomputed, the budget holds."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from audiosaebench.activations import states

HOOK = "encoder.layers.1"


@pytest.fixture
def whisper(tiny_models):
    from audiosaebench.models.loading import load_adapter

    ad = load_adapter(str(tiny_models["whisper"]))
    rng = np.random.default_rng(0)
    batch = ad.prepare([rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16_000, 24_000)])
    return ad, batch


def _entries(home):
    return sorted((home / "state-cache").rglob("*.safetensors"))


@pytest.mark.parametrize("where", ["input", "output"])
def test_a_cached_entry_is_exactly_what_the_model_computes(whisper, home, where):
    ad, batch = whisper
    fresh = states.compute_states(ad, HOOK, batch, where)
    first = states.hook_states(ad, HOOK, batch, where)
    assert len(_entries(home)) == 2  # one per row
    again = states.hook_states(ad, HOOK, batch, where)
    assert torch.equal(first, fresh) and torch.equal(again, fresh)
    assert fresh.shape == (2, ad.max_frames, ad.hidden_size)


def test_input_and_output_of_the_hook_module_differ_and_have_their_own_entries(whisper, home):
    ad, batch = whisper
    a = states.hook_states(ad, HOOK, batch, "input")
    b = states.hook_states(ad, HOOK, batch, "output")
    torch.testing.assert_close(b, ad.activations(batch, [HOOK])[HOOK])
    assert not torch.equal(a, b) and len(_entries(home)) == 4
    other = ad.prepare([np.zeros(8_000, dtype=np.float32)])
    states.hook_states(ad, HOOK, other, "output")
    assert len(_entries(home)) == 5


def test_rows_are_shared_between_batches_bit_for_bit(whisper, home, monkeypatch):
    """A batch reads the rows an earlier batch stored and computes only the others, and gets exactly
    what computing it whole gives: the layers below the hook treat each row alone (checked here on
    the CPU, bit for bit; the cache relies on it)."""
    ad, _ = whisper
    rng = np.random.default_rng(1)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16_000, 24_000, 40_000, 8_000)]
    whole = states.compute_states(ad, HOOK, ad.prepare(waves), "output")
    states.hook_states(ad, HOOK, ad.prepare(waves[1:3]), "output")  # rows 1 and 2 stored
    computed = []
    real = states.compute_states
    monkeypatch.setattr(states, "compute_states", lambda a, h, b, w: computed.append(len(b.valid_frames)) or real(a, h, b, w))
    got = states.hook_states(ad, HOOK, ad.prepare(waves), "output")
    assert computed == [2]  # rows 0 and 3, as one batch
    assert torch.equal(got, whole)
    assert torch.equal(states.hook_states(ad, HOOK, ad.prepare(waves[::-1]), "output"), whole.flip(0))
    assert computed == [2]  # every row cached now, in any order


def test_extraction_stores_the_states_interventions_read(whisper, home, toy_dir):
    """get_activations(keep_states=...) fills the state cache in its forward pass; a task's batch of
    other composition then computes nothing and gets exactly the model's states."""
    from audiosaebench.activations.extract import get_activations
    from audiosaebench.data.toy import build_toy

    ad, _ = whisper
    manifest = build_toy(toy_dir)["speech_test"]
    get_activations(ad, ["encoder.layers.0"], manifest, batch_size=2, progress=False)
    assert _entries(home) == []  # nothing kept unless asked
    get_activations(ad, [HOOK], manifest, batch_size=2, progress=False, keep_states=[HOOK])
    assert len(_entries(home)) == len(manifest)
    batch = ad.prepare([manifest.load(c) for c in manifest.clips[::-1]])
    before = {p: p.stat().st_mtime_ns for p in _entries(home)}
    got = states.hook_states(ad, HOOK, batch, "output")
    assert torch.equal(got, states.compute_states(ad, HOOK, batch, "output"))
    assert {p: p.stat().st_mtime_ns for p in _entries(home)} == before  # read, not rewritten


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong shape", "nan"])
def test_a_damaged_entry_is_recomputed_and_rewritten(whisper, home, caplog, damage):
    ad, batch = whisper
    good = states.hook_states(ad, HOOK, batch, "output")
    path = _entries(home)[0]
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    elif damage == "garbage":
        path.write_bytes(b"not a safetensors file")
    elif damage == "wrong shape":
        save_file({"states": good[0, :-1].contiguous()}, str(path))  # one frame short
    else:
        bad = good[0].clone()
        bad[0, 0] = float("nan")
        save_file({"states": bad.contiguous()}, str(path))
    with caplog.at_level(logging.WARNING, logger="audiosaebench.activations.states"):
        got = states.hook_states(ad, HOOK, batch, "output")
    assert torch.equal(got, good)
    assert "recomputing" in caplog.text
    assert torch.equal(states.hook_states(ad, HOOK, batch, "output"), good)  # rewritten, readable


def test_the_budget_stops_growth_and_zero_turns_the_cache_off(whisper, home, monkeypatch):
    ad, batch = whisper
    monkeypatch.setenv("AUDIOSAEBENCH_STATE_CACHE_GB", "0")
    states.hook_states(ad, HOOK, batch, "output")
    assert _entries(home) == []
    one_row = ad.max_frames * ad.hidden_size * 4
    monkeypatch.setenv("AUDIOSAEBENCH_STATE_CACHE_GB", str(2.5 * one_row / 2**30))
    states.hook_states(ad, HOOK, batch, "output")
    states.hook_states(ad, HOOK, batch, "input")  # would exceed the budget: computed, not stored
    assert len(_entries(home)) == 2


def test_cached_tensors_recompute_what_is_unreadable_or_unexpected(home):
    from audiosaebench.cache import cached_tensors

    calls = []

    def compute():
        calls.append(1)
        return {"scores": torch.arange(6, dtype=torch.float32).reshape(2, 3)}

    def ok(d):
        return d.get("scores") is not None and d["scores"].shape == (2, 3)

    key = {"part": "x"}
    a = cached_tensors("t-cache", key, compute, ok)
    b = cached_tensors("t-cache", key, compute, ok)
    assert torch.equal(a["scores"], b["scores"]) and len(calls) == 1
    (path,) = (home / "t-cache").glob("*.safetensors")
    path.write_bytes(b"garbage")
    assert torch.equal(cached_tensors("t-cache", key, compute, ok)["scores"], a["scores"]) and len(calls) == 2
    save_file({"scores": torch.zeros(1, 3)}, str(path))  # readable, wrong shape
    assert torch.equal(cached_tensors("t-cache", key, compute, ok)["scores"], a["scores"]) and len(calls) == 3
    save_file({"scores": torch.full((2, 3), float("inf"))}, str(path))  # readable, not finite
    assert torch.equal(cached_tensors("t-cache", key, compute, ok)["scores"], a["scores"]) and len(calls) == 4
