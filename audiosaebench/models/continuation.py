"""Run a model from a hook point to a readout: the part of the forward pass interventions change.

The fidelity splice, steering and causal patching run the same clips many times with different
edits at one hook. Everything below the hook is identical across those runs (and across SAEs), so
:class:`Continuation` starts there, from states computed once per batch and cached on disk
(:func:`audiosaebench.activations.states.continuation_states`):

* ``start="output"`` (what the tasks use): from the hook's *output*; an identity module ``site``
  stands for the hook, so an edit of ``site``'s output (pyvene component ``site.output`` or a
  plain forward hook on :attr:`Continuation.hook_module`) is an edit of the hook's output, and
  only the layers above the hook run;
* ``start="input"``: from the *input* of the hook's module, which runs too, so the edit sits on
  the real module path (``model.model.encoder.layers[2].output``) at the cost of one more layer.

Both are tested equal to the full forward pass. With ``start="output"`` on Whisper, an edit that
changed only each row's first frames (the tasks edit the clips' valid frames, never the padding) runs
the first layer above the hook from what its unchanged frames determine, computed once per batch
(:mod:`audiosaebench.models.unedited_frames_memo`); edits go through :meth:`Continuation.replace_output`,
a forward hook on :attr:`Continuation.hook_module`, or pyvene, so the layer sees the states they
started from.

Readouts return one score per candidate label ([batch, n_labels], log-probabilities):

* :class:`WhisperKeywordReadout`: the decoder's teacher-forced log-probability of each keyword
  after the transcription prompt (tokens of a surface form summed, surface forms combined by
  log-sum-exp);
* :class:`ProbeReadout`: a fixed linear probe on the mean over frames of the last hidden state
  (encoder-only models).

Supported: Whisper (any ``encoder.layers.i`` or ``encoder.layer_norm``), HuBERT, wav2vec2 and WavLM
(``encoder.layers.i``). WavLM's layers hand a relative position bias from layer to layer, which
only its first layer can compute (from the sequence length alone; each layer gates it by its own
input); a continuation computes it the same way before the first layer it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from audiosaebench.errors import AudioSAEBenchError
from audiosaebench.models.base import _hidden, replacing_hook
from audiosaebench.models.hooks import FINAL_NORM
from audiosaebench.models.unedited_frames_memo import UneditedFramesMemo


class WhisperKeywordReadout(nn.Module):
    """Scores [batch, n_keywords]: log p(keyword | prompt) from the Whisper decoder, teacher-forced."""

    def __init__(self, model: Any, prompt: Sequence[int], forms: Sequence[Sequence[Sequence[int]]]):
        super().__init__()
        if not hasattr(model, "proj_out"):
            raise AudioSAEBenchError("the Whisper keyword readout needs the decoder and LM head "
                                     "(WhisperForConditionalGeneration), not a bare WhisperModel")
        from audiosaebench.models.whisper_text_decoder import TextDecoder

        self._model = (model,)  # not a submodule: the continuation owns the model's module paths
        self._text = TextDecoder(model)
        self.prompt = list(prompt)
        self.forms = [[list(f) for f in fs] for fs in forms]  # per keyword, per surface form, token ids
        if not all(self.forms) or any(not f for fs in self.forms for f in fs):
            raise AudioSAEBenchError("every keyword needs at least one non-empty tokenisation")

    def forward(self, enc: torch.Tensor) -> torch.Tensor:
        head = self._model[0].proj_out
        text = self._text
        memory = text.memory(enc)  # one per encoder output: later forms' passes reuse what it projects
        b, p = enc.shape[0], len(self.prompt)
        ids = torch.tensor([self.prompt] * b, device=enc.device)
        first = head(text(ids, memory)[:, -1]).float().log_softmax(-1)
        per_keyword = []
        for forms in self.forms:
            per_form = []
            for tokens in forms:
                if len(tokens) == 1:
                    per_form.append(first[:, tokens[0]])
                    continue
                ids = torch.tensor([self.prompt + tokens[:-1]] * b, device=enc.device)
                steps = head(text(ids, memory)[:, p - 1 :]).float().log_softmax(-1)
                tok = torch.tensor(tokens, device=enc.device)
                per_form.append(steps.gather(-1, tok[None, :, None].expand(b, -1, 1))[..., 0].sum(-1))
            per_keyword.append(torch.logsumexp(torch.stack(per_form, -1), -1))
        return torch.stack(per_keyword, -1)


class ProbeReadout(nn.Module):
    """Scores [batch, n_labels]: log-softmax of a fixed linear probe on the frame-mean hidden state."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight.float())
        self.register_buffer("bias", bias.float())

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        pooled = hidden.float().mean(1)
        return (pooled @ self.weight.T + self.bias).log_softmax(-1)


class _Site(nn.Module):
    """Stands for the hook: returns a copy of its input, as a module returns a fresh output (pyvene
    edits a component's output in place, which must not reach the caller's cached states)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


def _pyvene_path(name: str) -> str:
    """``model.model.encoder.layers.2`` -> ``model.model.encoder.layers[2]`` (pyvene's form)."""
    parts: list[str] = []
    for piece in name.split("."):
        if piece.isdigit() and parts:
            parts[-1] += f"[{piece}]"
        else:
            parts.append(piece)
    return ".".join(parts)


class Continuation(nn.Module):
    """``forward(states) -> readout scores``, starting at the hook's output (or its module's input)."""

    def __init__(self, adapter: Any, hook: str, readout: nn.Module, start: str = "output"):
        super().__init__()
        if start not in ("input", "output"):
            raise ValueError(f"start must be 'input' or 'output', got {start!r}")
        self.start = start
        family = adapter.family
        if family not in ("whisper", "hubert", "wav2vec2", "wavlm"):
            raise AudioSAEBenchError(f"interventions from a hook are not supported for {family} models "
                                     "(supported: whisper, hubert, wav2vec2, wavlm)")
        self._adapter = (adapter,)
        self.model = adapter.model
        self.config = adapter.model.config
        self.readout = readout
        self.hook = adapter.resolve(hook)
        enc = adapter.base_model.encoder
        final_norm = family == "whisper" or bool(getattr(self.config, "do_stable_layer_norm", False))
        if self.hook.name == FINAL_NORM and not final_norm:
            raise AudioSAEBenchError(f"{family} models without stable layer norm have no final encoder norm "
                                     "to continue from")
        if start == "output":
            self.site = _Site()
            self.hook_module: nn.Module = self.site
            above = [] if self.hook.name == FINAL_NORM else list(enc.layers[self.hook.layer + 1 :])
            self._layers: list[Any] = above
            norm = final_norm and self.hook.name != FINAL_NORM
        else:
            self.hook_module = adapter.module(self.hook)
            self._layers = [] if self.hook.name == FINAL_NORM else list(enc.layers[self.hook.layer :])
            norm = final_norm
        self._final_norm = enc.layer_norm if norm else None
        # WavLM: the relative position bias the encoder's first layer computes and every layer receives
        self._bias_source = (enc.layers[0].attention,) if family == "wavlm" else None
        # Whisper's first layer above the hook, when edits touch only the clips' first frames
        self._tail_memo = UneditedFramesMemo(self._layers[0]) if start == "output" and family == "whisper" and self._layers else None
        self._extent: int | None = None  # the frames an edit in progress may change (see editing)
        self._keep = True
        name = next((n for n, m in self.named_modules() if m is self.hook_module), None)
        if name is None:  # pragma: no cover - the module comes from the same model
            raise AudioSAEBenchError(f"cannot find the module of {self.hook.name} in the model")
        self.module_path = name

    @property
    def adapter(self) -> Any:
        """The model adapter (held outside the module tree so it is not registered as a submodule)."""
        return self._adapter[0]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def component(self) -> str:
        """The pyvene component of the hook's output: ``site.output``, or with ``start="input"`` the
        module's path, e.g. ``model.model.encoder.layers[2].output``."""
        return _pyvene_path(self.module_path) + ".output"

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        h = self.site(states) if self.start == "output" else states
        layers = self._layers
        out = self._tail_memo(states, h, self._extent, self._keep) if self._tail_memo is not None else None
        if out is not None:
            h, layers = out, layers[1:]
        extra = {"position_bias": self._position_bias(h)} if self._bias_source is not None and layers else {}
        for layer in layers:
            h = _hidden(layer(h, None, **extra))
        if self._final_norm is not None:
            h = self._final_norm(h)
        return self.readout(h)

    def _position_bias(self, h: torch.Tensor) -> torch.Tensor:
        """WavLM's ungated relative position bias for ``h`` ([batch * heads, T, T]), as its encoder's
        first layer builds it when it is handed none."""
        assert self._bias_source is not None
        attention = self._bias_source[0]
        b, t = h.shape[:2]
        bias = attention.compute_bias(t, t)  # [heads, T, T]
        return bias.unsqueeze(0).expand(b, -1, -1, -1).reshape(b * attention.num_heads, t, t)

    @contextlib.contextmanager
    def editing(self, extent: int, keep: bool = True) -> Iterator[None]:
        """Within the block, edits of the hook's output change at most each row's first ``extent`` frames
        (the clips' valid frames), so the first layer above the hook runs the rest from what it keeps of
        the unedited states (:mod:`audiosaebench.models.unedited_frames_memo`); ``keep=False`` says the
        states will not be edited again, so nothing is kept of them. Results do not depend on it."""
        saved = self._extent, self._keep
        self._extent, self._keep = int(extent), keep
        try:
            yield
        finally:
            self._extent, self._keep = saved

    @contextlib.contextmanager
    def replace_output(self, fn: Callable[[torch.Tensor], torch.Tensor], valid_frames: Sequence[int],
                       reused: bool = True) -> Iterator[None]:
        """Within the block, the hook's output is ``fn`` of its valid rows ([n_valid, d] in, the same out;
        padding kept) in every forward, inside :meth:`editing` of the valid frames (``reused`` is its
        ``keep``)."""
        handle = self.hook_module.register_forward_hook(replacing_hook(fn, valid_frames))
        try:
            with self.editing(max(valid_frames, default=0), keep=reused):
                yield
        finally:
            handle.remove()

    def forget_edits(self) -> None:
        """Drop what the first layer above the hook keeps of the batches seen edited (when a caller is
        done with a batch, as the fidelity splice is after its conditions)."""
        if self._tail_memo is not None:
            self._tail_memo.clear()
