"""Whisper's text decoder over fixed encoder states, with cross-attention that reads the encoder
states themselves while few queries have been asked of them.

The tasks ask Whisper's decoder few questions per encoder output: causal patching's keyword readout
runs a 2-token prompt, steering's non-speech decodes stop after 6 tokens, its speech decodes after
32. transformers' decoder projects every one of the 1,500 encoder frames to keys and values in
each of its layers before the first query (2 x T x d^2 multiply-adds per layer), which is most of
such a pass. The same attention can be computed without those projections (the keys have no bias,
and a bias on them would not change a softmax over keys anyway)::

    scores_h = (q_h W_k,h) enc^T            (per head: d multiply-adds per query and frame)
    out_h    = (softmax(scores_h) enc) W_v,h^T + b_v,h

which costs 2 x h x T x d per query instead of 2 x T x d per query after the one-off 2 x T x d^2.
So :class:`EncoderMemory` reads ``enc`` directly until ``head_dim`` queries have been asked of it
(then absorbing has cost as much as projecting would have), and projects the keys and values once
after that: never more than twice the cheaper choice's work, whatever the number of queries.
On causal patching's 2-token readout over tiny.en's 1,500 frames this pass is several times faster
than transformers' (bench/run.py --parts decoder; docs/performance.md). It is the same attention up to float rounding
(tests/test_whisper_text_decoder.py checks it against transformers' decoder to 1e-5 relative).

The self-attention keys and values of a decode live in :class:`SelfAttentionCache`, preallocated
for the decode's length, so a step writes one position instead of concatenating the cache. Rows
that finish leave both (``select``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class EncoderMemory:
    """What the cross-attention of every decoder layer reads for one batch of encoder states."""

    def __init__(self, decoder: Any, enc: torch.Tensor):
        self.decoder = decoder
        self.enc = enc
        self.kv: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        attn = decoder.layers[0].encoder_attn
        self.head_dim = attn.head_dim
        self.asked = 0  # queries asked of it so far (per row)

    @property
    def projected(self) -> bool:
        return self.kv is not None

    def before(self, n_queries: int) -> None:
        """Called before a decoder pass with ``n_queries`` new queries: projects the keys and values
        once the queries asked would exceed ``head_dim`` (where absorbing stops paying)."""
        self.asked += n_queries
        if self.kv is None and self.asked > self.head_dim:
            self.kv = []
            b, t, _ = self.enc.shape
            for layer in self.decoder.layers:
                a = layer.encoder_attn
                k = a.k_proj(self.enc).view(b, t, a.num_heads, a.head_dim).transpose(1, 2)
                v = a.v_proj(self.enc).view(b, t, a.num_heads, a.head_dim).transpose(1, 2)
                self.kv.append((k, v))

    def attend(self, i: int, attn: Any, x: torch.Tensor) -> torch.Tensor:
        """Layer ``i``'s cross-attention output for the normed decoder states ``x`` [b, n, d]."""
        b, n, d = x.shape
        h, hd = attn.num_heads, attn.head_dim
        q = (attn.q_proj(x) * attn.scaling).view(b, n, h, hd).transpose(1, 2)  # [b, h, n, hd]
        if self.kv is not None:
            k, v = self.kv[i]
            out = nn.functional.scaled_dot_product_attention(q, k, v, scale=1.0)  # [b, h, n, hd]
        else:
            enc = self.enc
            qk = (q @ attn.k_proj.weight.view(h, hd, d)).reshape(b, h * n, d)  # [b, h n, d]
            p = torch.bmm(qk, enc.transpose(1, 2)).softmax(-1, dtype=torch.float32).to(enc.dtype)  # [b, h n, T]
            ctx = torch.bmm(p, enc).view(b, h, n, d)
            out = ctx @ attn.v_proj.weight.view(h, hd, d).transpose(1, 2)  # [b, h, n, hd]
            if attn.v_proj.bias is not None:
                out = out + attn.v_proj.bias.view(h, 1, hd)
        return attn.out_proj(out.transpose(1, 2).reshape(b, n, d))

    def select(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (finished rows leave the decode)."""
        self.enc = self.enc[rows]
        if self.kv is not None:
            self.kv = [(k[rows], v[rows]) for k, v in self.kv]


class SelfAttentionCache:
    """Each layer's self-attention keys and values, preallocated for ``capacity`` positions."""

    def __init__(self, decoder: Any, batch: int, capacity: int, like: torch.Tensor):
        a = decoder.layers[0].self_attn
        shape = (batch, a.num_heads, capacity, a.head_dim)
        self.k = [like.new_empty(shape) for _ in decoder.layers]
        self.v = [like.new_empty(shape) for _ in decoder.layers]
        self.length = 0
        self.capacity = capacity

    def select(self, rows: torch.Tensor) -> None:
        """Keep only ``rows``."""
        self.k = [k[rows] for k in self.k]
        self.v = [v[rows] for v in self.v]


class TextDecoder:
    """``decoder(ids, memory, cache=None)`` -> the final-norm decoder states [b, n, d] of Whisper's
    decoder (transformers' ``WhisperDecoder`` weights; dropout off), for token ids that follow the
    ``cache.length`` positions already in ``cache`` (or start at position 0 without one)."""

    def __init__(self, model: Any):
        base = model.model if hasattr(model, "model") else model
        self.decoder = base.decoder

    @property
    def positions(self) -> int:
        """How many token positions the decoder has (448 for Whisper)."""
        return self.decoder.embed_positions.weight.shape[0]

    def memory(self, enc: torch.Tensor) -> EncoderMemory:
        return EncoderMemory(self.decoder, enc)

    def cache(self, batch: int, capacity: int, like: torch.Tensor) -> SelfAttentionCache:
        return SelfAttentionCache(self.decoder, batch, capacity, like)

    def __call__(self, ids: torch.Tensor, memory: EncoderMemory, cache: SelfAttentionCache | None = None) -> torch.Tensor:
        dec = self.decoder
        b, n = ids.shape
        past = cache.length if cache is not None else 0
        if past + n > self.positions:
            raise ValueError(f"Whisper's decoder has {self.positions} positions; asked for {past + n}")
        if cache is not None and past + n > cache.capacity:
            raise ValueError(f"the self-attention cache holds {cache.capacity} positions; asked for {past + n}")
        memory.before(n)
        x = dec.embed_tokens(ids) + dec.embed_positions.weight[past : past + n]
        mask = None
        if past and n > 1:  # new queries see every cached position and the new ones up to their own
            mask = torch.ones(n, past + n, dtype=torch.bool, device=ids.device).tril(past)
        for i, layer in enumerate(dec.layers):
            a = layer.self_attn
            y = layer.self_attn_layer_norm(x)
            q = (a.q_proj(y) * a.scaling).view(b, n, a.num_heads, a.head_dim).transpose(1, 2)
            k = a.k_proj(y).view(b, n, a.num_heads, a.head_dim).transpose(1, 2)
            v = a.v_proj(y).view(b, n, a.num_heads, a.head_dim).transpose(1, 2)
            if cache is not None:
                cache.k[i][:, :, past : past + n] = k
                cache.v[i][:, :, past : past + n] = v
                k, v = cache.k[i][:, :, : past + n], cache.v[i][:, :, : past + n]
            out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None and n > 1,
                                                             scale=1.0)
            x = x + a.out_proj(out.transpose(1, 2).reshape(b, n, -1))
            x = x + memory.attend(i, layer.encoder_attn, layer.encoder_attn_layer_norm(x))
            x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        if cache is not None:
            cache.length = past + n
        return dec.layer_norm(x)
