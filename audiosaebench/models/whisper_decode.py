"""Greedy Whisper decoding, and WER: used by sanity checks, fidelity and steering.

Prompt: ``<|startoftranscript|>`` (+ ``<|en|><|transcribe|>`` for multilingual models) +
``<|notimestamps|>``; greedy argmax with the model's suppress lists; stops at end-of-text or after
``max_new_tokens`` (one limit, or one per row); a row that ends leaves the batch and the caches, so a batch whose one row loops
to the token limit costs one row per step, not the batch. The decoder passes are
:mod:`audiosaebench.models.whisper_text_decoder`'s (transformers' weights, cross-attention computed
from the encoder states while few queries have been asked of them). Decoding uses ``tokenizers``
with the model folder's ``tokenizer.json``.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiosaebench.errors import AudioSAEBenchError, TaskError

_NUM = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty").split()


def normalize_text(s: str) -> str:
    """Lower-case, digits 0-20 spelt out, everything but letters and apostrophes removed."""
    s = s.lower()
    s = re.sub(r"\b(\d{1,2})\b", lambda m: _NUM[int(m.group(1))] if int(m.group(1)) <= 20 else m.group(1), s)
    s = re.sub(r"[^a-z' ]+", " ", s).replace(" '", " ").replace("' ", " ")
    return re.sub(r"\s+", " ", s).strip()


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def corpus_wer(refs: Sequence[str], hyps: Sequence[str]) -> float | None:
    """Total word edits / total reference words, after :func:`normalize_text` (None: no words)."""
    errors = words = 0
    for r, h in zip(refs, hyps, strict=True):
        rw, hw = normalize_text(r).split(), normalize_text(h).split()
        errors += edit_distance(rw, hw)
        words += len(rw)
    return errors / words if words else None


def token_limits(seconds: Sequence[float], per_second: float, floor: int, cap: int) -> list[int]:
    """A greedy decode's token limit for each window: ``per_second`` tokens per second of its audio, at
    least ``floor``, at most ``cap``. Whisper's own limit for a 30 s window is 224 (7.5 a second); the
    mini suite's speech test sentences, written in sentence case with a full stop and tokenized with
    tiny.en's tokenizer, run at 3.35 tokens a second of audio on average and 4.64 at most, so at 8
    a second a decode of such speech reaches it only by looping."""
    return [min(int(cap), max(int(floor), math.ceil(float(per_second) * s))) for s in seconds]


class WhisperDecoder:
    def __init__(self, adapter, tokenizer_file: str | Path):
        from tokenizers import Tokenizer

        from audiosaebench.models.whisper_text_decoder import TextDecoder

        if not Path(tokenizer_file).exists():
            raise AudioSAEBenchError(f"no tokenizer.json next to the model ({tokenizer_file})")
        self.adapter = adapter
        self.text_decoder = TextDecoder(adapter.model)
        self.tok = Tokenizer.from_file(str(tokenizer_file))
        cfg = adapter.config
        tid = self.tok.token_to_id
        self.sot = tid("<|startoftranscript|>")
        self.eot = tid("<|endoftext|>")
        prompt = [self.sot]
        if tid("<|en|>") is not None and cfg.vocab_size >= 51865:  # multilingual vocabulary
            prompt += [tid("<|en|>"), tid("<|transcribe|>")]
        prompt.append(tid("<|notimestamps|>"))
        if None in prompt:
            raise AudioSAEBenchError(f"{tokenizer_file} lacks Whisper's special tokens")
        self.prompt: list[int] = [int(t) for t in prompt if t is not None]
        suppress = list(getattr(cfg, "suppress_tokens", None) or [])
        self.suppress = torch.tensor(sorted(set(suppress)), dtype=torch.long)
        self.begin_suppress = torch.tensor(list(getattr(cfg, "begin_suppress_tokens", None) or [self.eot]), dtype=torch.long)
        self.timestamp_begin = (tid("<|notimestamps|>") or 0) + 1
        self.no_speech = tid("<|nospeech|>") if tid("<|nospeech|>") is not None else tid("<|nocaptions|>")

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head on [b, d] decoder states, float32. ``W @ h.T`` rather than ``linear(h, W)``:
        for a few rows against Whisper's 51,864 x d head, MKL's transposed path is 4x slower here
        (bench: 42 ms vs 10 ms per step for 8 rows on the 2-core CPU)."""
        w = self.adapter.model.proj_out.weight
        return (w @ hidden.to(w.dtype).T).T.float()

    @torch.no_grad()
    def decode_encoder_states(self, enc: torch.Tensor, max_new_tokens: int | Sequence[int] = 96,
                              memory: Any = None) -> list[str]:
        return self.decode_with_no_speech(enc, max_new_tokens, memory)[0]

    @torch.no_grad()
    def decode_with_no_speech(self, enc: torch.Tensor, max_new_tokens: int | Sequence[int] = 96,
                              memory: Any = None) -> tuple[list[str], list[float | None]]:
        """Greedy transcripts and, as openai-whisper computes it, the probability of the no-speech token
        right after ``<|startoftranscript|>`` (None when the vocabulary has no such token).

        ``max_new_tokens``: one limit for every row, or one per row (a row leaves the batch at its own).

        ``memory``: the :class:`~audiosaebench.models.whisper_text_decoder.EncoderMemory` of an earlier
        decoder pass over this same ``enc`` (fidelity's teacher-forced pass), so keys and values it has
        projected are reused and its count of queries goes on; left as it was (rows that finish leave a
        copy of it)."""
        positions = self.text_decoder.positions
        b = enc.shape[0]
        limits = [int(max_new_tokens)] * b if isinstance(max_new_tokens, int) else [int(n) for n in max_new_tokens]
        if len(limits) != b or min(limits, default=1) < 1:
            raise TaskError(f"max_new_tokens: {len(limits)} limits of at least 1 are needed for {b} rows, got {limits}")
        most = max(limits, default=0)
        if len(self.prompt) + most > positions:
            raise TaskError(f"max_new_tokens = {most} does not fit Whisper's {positions} decoder positions "
                            f"after the {len(self.prompt)}-token prompt; use at most {positions - len(self.prompt)}")
        text = self.text_decoder
        if memory is None:
            memory = text.memory(enc)
        else:
            memory = copy.copy(memory)
        ids = torch.tensor([self.prompt] * b, device=enc.device)
        cache = text.cache(b, len(self.prompt) + most, enc)
        hidden = text(ids, memory, cache)
        if self.no_speech is None:
            no_speech: list[float | None] = [None] * b
        else:
            no_speech = self._logits(hidden[:, 0]).softmax(-1)[:, self.no_speech].tolist()
        tokens: list[list[int]] = [[] for _ in range(b)]
        active = list(range(b))  # rows still decoding; finished rows leave the batch and the caches
        for step in range(most):
            logits = self._logits(hidden[:, -1])
            if len(self.suppress):
                logits[:, self.suppress] = -torch.inf
            logits[:, self.timestamp_begin :] = -torch.inf
            if step == 0:
                logits[:, self.begin_suppress] = -torch.inf
            nxt = logits.argmax(-1).tolist()
            for j, t in enumerate(nxt):
                if t != self.eot:
                    tokens[active[j]].append(t)
            # a row ends at end-of-text or at its own limit
            keep = [j for j, t in enumerate(nxt) if t != self.eot and step + 1 < limits[active[j]]]
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=enc.device)
                cache.select(index)
                memory.select(index)
                active = [active[j] for j in keep]
            ids = torch.tensor([[nxt[j]] for j in keep], device=enc.device)
            hidden = text(ids, memory, cache)
        return [self.tok.decode(t, skip_special_tokens=True).strip() for t in tokens], no_speech

    @torch.no_grad()
    def transcribe(self, waves: Sequence[np.ndarray], batch_size: int = 8, max_new_tokens: int = 96) -> list[str]:
        texts: list[str] = []
        for i in range(0, len(waves), batch_size):
            batch = self.adapter.prepare(list(waves[i : i + batch_size]))
            feats = batch.inputs["input_features"].to(self.adapter.device, self.adapter.dtype)
            enc = self.adapter.base_model.encoder(feats).last_hidden_state
            texts += self.decode_encoder_states(enc, max_new_tokens)
        return texts
