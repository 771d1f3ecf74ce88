"""The first Whisper encoder layer above a hook, when an edit changed only each row's first frames.

Steering, causal patching and the fidelity splice run one batch of hook states many times, each
time with another edit of the clips' valid frames, which are the first frames of each row; the rest
of Whisper's 30 s window (most of it for a short clip: 1,450 of 1,500 frames for a 1 s command) is
never edited. In the first layer above the hook, those unchanged "tail" frames' queries, keys and
values are the same in every run, and so is their attention over each other. :class:`UneditedFramesMemo`
computes them once per batch, the first time the batch is seen edited, and runs the layer from
them: for an edit that changed frames ``[0, e)``,

* the head frames ``[0, e)`` are normalised and projected; their queries attend over every key
  (the head's new keys followed by the memo's tail keys), as the layer does;
* the tail queries attend over the head's keys and values only, and that partial attention is
  merged with the memo's tail-over-tail attention by their log-sum-exps::

      lse = logaddexp(lse_tail, lse_head)
      out = exp(lse_tail - lse) * out_tail + exp(lse_head - lse) * out_head

* the output projection, residual, MLP and residual run on every frame (the tail's attention
  output changed, since it reads the head).

Per window of tiny.en (T = 1,500, d = 384) that is about 4.3-4.9 GFLOP instead of 8.8 for an edit
of 50-250 frames: the self-attention and the tail's projections are what is saved; the MLP is not.
The result is the layer's output up to float rounding (tests/test_unedited_frames_memo.py checks it
against transformers' layer). The memo is used only where it is the same computation: no gradients
asked, the layer in eval mode with no hooks on it or its submodules, at most half of the frames
changed. An entry is found again by the tail's content (two fixed random projections of every tail
frame, compared exactly), so a batch whose tail matches an entry may use it whatever the tensor's
identity; the tail is all the entry depends on. Entries are kept until ``AUDIOSAEBENCH_TAIL_MEMO_MB``
(default 1024; 0 turns the memo off) is full; later batches build an entry for the pass and drop it (the tasks sweep their
batches in the same order for every setting, so evicting the oldest would miss every time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from audiosaebench.runtime import allocator, limits

QUERY_BLOCK = 256  # rows of queries per block where the attention is written out by hand


def memo_budget_bytes() -> int:
    """``AUDIOSAEBENCH_TAIL_MEMO_MB`` (default 1024; 0 turns the memo off)."""
    return limits.from_env("AUDIOSAEBENCH_TAIL_MEMO_MB", "1024", limits.MB, "the tail memo")


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention with unit scale and its log-sum-exp per query: ([B, h, L, dh], [B, h, L] float32)."""
    if q.device.type == "cpu" and hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu"):
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, scale=1.0)
        return out, lse.float()
    return attend_by_hand(q, k, v)


def attend_by_hand(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`attend` written out, in blocks of queries (devices without torch's CPU kernel)."""
    outs, lses = [], []
    kt = k.transpose(-1, -2).float()
    for s in range(0, q.shape[2], QUERY_BLOCK):
        scores = q[:, :, s : s + QUERY_BLOCK].float() @ kt
        lse = scores.logsumexp(-1)
        outs.append(((scores - lse[..., None]).exp() @ v.float()).to(v.dtype))
        lses.append(lse)
    return torch.cat(outs, 2), torch.cat(lses, 2)


@dataclass
class _Entry:
    """What the tail frames ``[e, T)`` of one batch determine alone: projections and their attention,
    float32 views of one buffer (:func:`_buffer`)."""

    e: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    fingerprint: torch.Tensor  # [B, T - e, 2]
    q: torch.Tensor  # [B, h, T - e, dh], scaled as the layer scales its queries
    k: torch.Tensor
    v: torch.Tensor
    out: torch.Tensor  # the tail queries' attention over the tail keys, normalised
    lse: torch.Tensor  # [B, h, T - e]
    nbytes: int


def _buffer(numel: int, device: torch.device) -> torch.Tensor:
    """A float32 buffer; on the CPU in its own anonymous mapping, outside the C library's heap.

    The tasks' forwards run with freed blocks kept in the heap for the next forward
    (:func:`audiosaebench.runtime.allocator.reusing_freed_blocks`); entries that live on between those forwards
    could split the freed region there, as the code memo's small blocks did (docs/performance.md), and
    counted as the heap's growth they made its guard hand the forwards' pages back at every step."""
    if device.type != "cpu":
        return torch.empty(numel, dtype=torch.float32, device=device)
    return torch.frombuffer(allocator.anonymous_mapping(4 * numel + 4), dtype=torch.float32)[:numel]


class UneditedFramesMemo:
    """``layer(h)`` for a Whisper encoder layer when ``h`` differs from ``states`` only in its first frames."""

    def __init__(self, layer: Any, budget_bytes: int | None = None):
        self.layer = layer
        attn = layer.self_attn
        self.heads, self.head_dim, self.scaling = attn.num_heads, attn.head_dim, attn.scaling
        self.budget = memo_budget_bytes() if budget_bytes is None else budget_bytes
        self.entries: list[_Entry] = []
        self.used = 0
        self.hits = self.misses = 0
        d = layer.self_attn_layer_norm.normalized_shape[0]
        self._probe = torch.randn(d, 2, generator=torch.Generator().manual_seed(0))

    def usable(self) -> bool:
        """Whether a pass through the memo is the layer's own computation (no grads, eval, no hooks)."""
        if self.budget <= 0 or torch.is_grad_enabled() or self.layer.training:
            return False
        return not any(m._forward_hooks or m._forward_pre_hooks for m in self.layer.modules())

    def __call__(self, states: torch.Tensor, h: torch.Tensor, extent: int | None, keep: bool = True) -> torch.Tensor | None:
        """The layer's output on ``h``, or None where the memo does not apply (the caller runs the layer).

        ``states`` is the unedited input the edit started from and ``extent`` the number of first
        frames the caller's edit may change (the batch's most valid frames; None: undeclared, so the
        memo does not apply). Frames ``[extent, T)`` are the tail whatever the edit changed, so the
        result is a function of ``states``, ``h`` and ``extent`` alone: the same bits whether the
        entry is built now or was kept from an earlier pass. ``keep=False`` builds the entry for this
        pass only.
        """
        if extent is None or h is states or h.shape != states.shape or h.dim() != 3 or not self.usable():
            return None
        t = h.shape[1]
        if extent < 1 or 2 * extent > t:
            return None
        if (h[:, extent:] != states[:, extent:]).any() or torch.equal(h[:, :extent], states[:, :extent]):
            return None  # the edit reached the declared tail, or changed nothing: the layer itself runs
        entry = self._find(states, extent)
        if entry is None:
            self.misses += 1
            entry = self._build(states, extent, keep)
        else:
            self.hits += 1
        return self._run(h, entry)

    def clear(self) -> None:
        """Forget every entry (the counts of hits and misses stay)."""
        self.entries, self.used = [], 0

    def _fingerprint(self, states: torch.Tensor, e: int) -> torch.Tensor:
        return states[:, e:].float() @ self._probe.to(states.device)

    def _find(self, states: torch.Tensor, e: int) -> _Entry | None:
        prints: dict[int, torch.Tensor] = {}
        for entry in self.entries:
            if entry.e != e or entry.shape != tuple(states.shape) or entry.dtype != states.dtype:
                continue
            if entry.e not in prints:
                prints[entry.e] = self._fingerprint(states, entry.e)
            if torch.equal(prints[entry.e], entry.fingerprint):
                return entry
        return None

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attn = self.layer.self_attn
        n = self.layer.self_attn_layer_norm(x)
        shape = (x.shape[0], x.shape[1], self.heads, self.head_dim)
        q = (attn.q_proj(n) * self.scaling).view(shape).transpose(1, 2)
        return q, attn.k_proj(n).view(shape).transpose(1, 2), attn.v_proj(n).view(shape).transpose(1, 2)

    def _build(self, states: torch.Tensor, e: int, keep: bool = True) -> _Entry:
        """The entry for tail ``[e, T)``; with ``keep`` and room in the budget copied into one buffer of
        its own and kept (:attr:`entries`), else left in the tensors it was computed in, for this pass only."""
        q, k, v = self._qkv(states[:, e:])
        out, lse = attend(q, k, v)
        parts = [q, k, v, out, lse, self._fingerprint(states, e)]
        nbytes = 4 * sum(t.numel() for t in parts)
        if not keep or self.used + nbytes > self.budget:  # laid out as a kept entry is: the same kernels run
            c = [t.contiguous() for t in parts]
            return _Entry(e, tuple(states.shape), states.dtype, c[5], c[0], c[1], c[2], c[3], c[4], nbytes=nbytes)
        flat = _buffer(nbytes // 4, states.device)
        views, at = [], 0
        for t in parts:
            views.append(flat[at : at + t.numel()].view(t.shape))
            views[-1].copy_(t)
            at += t.numel()
        entry = _Entry(e, tuple(states.shape), states.dtype, views[5], views[0], views[1], views[2], views[3], views[4],
                       nbytes=nbytes)
        self.entries.append(entry)
        self.used += nbytes
        return entry

    def _run(self, h: torch.Tensor, m: _Entry) -> torch.Tensor:
        layer, e = self.layer, m.e
        b, t, d = h.shape
        qh, kh, vh = self._qkv(h[:, :e])
        dt = h.dtype
        head = F.scaled_dot_product_attention(qh, torch.cat([kh, m.k.to(dt)], 2), torch.cat([vh, m.v.to(dt)], 2), scale=1.0)
        out_th, lse_th = attend(m.q.to(dt), kh, vh)
        lse = torch.logaddexp(m.lse, lse_th)
        tail = m.out * (m.lse - lse).exp()[..., None] + out_th.float() * (lse_th - lse).exp()[..., None]
        attn = torch.cat([head, tail.to(dt)], 2).transpose(1, 2).reshape(b, t, d)
        x = h + layer.self_attn.out_proj(attn)
        x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        if x.dtype == torch.float16:  # as the layer clamps
            limit = torch.finfo(x.dtype).max - 1000
            x = x.clamp(-limit, limit)
        return x
