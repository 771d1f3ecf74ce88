"""The audio model adapter interface shared by every model family.

An adapter turns a batch of 16 kHz waveforms into model inputs, knows each item's number of
valid frames, resolves canonical hook points to modules, returns activations at one or more hooks
(stopping the forward pass after the deepest one), and can replace a hook's output on valid frames
(splicing, ablation, patching). Hook outputs may be a tensor or a tuple whose first element is the
hidden states (transformers 5 returns a bare tensor from ``WhisperEncoderLayer``); both are handled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from audiosaebench.models.hooks import FINAL_NORM, HookPoint, canonical_hook, check_hook_exists


@dataclass(frozen=True)
class ModelIdentity:
    """What identifies a model's weights in every result and cache key."""

    model_id: str
    revision: str | None
    weights_sha256: str | None
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.model_id,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
            "source": self.source,
        }


@dataclass
class Batch:
    """Model inputs for a batch plus each item's number of valid frames."""

    inputs: dict[str, torch.Tensor]
    valid_frames: list[int]
    extra: dict[str, Any] = field(default_factory=dict)

    def valid_mask(self, n_frames: int, device: torch.device | str = "cpu") -> torch.Tensor:
        idx = torch.arange(n_frames, device=device)
        lengths = torch.tensor(self.valid_frames, device=device)
        return idx[None, :] < lengths[:, None]


class _StopForward(Exception):
    """Raised from a hook to end the forward pass after the deepest requested hook."""


def _hidden(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _with_hidden(output: Any, hidden: torch.Tensor) -> Any:
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def replace_valid_frames(h: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor],
                         valid_frames: Sequence[int]) -> torch.Tensor:
    """A copy of ``h`` [B, T, d] whose valid rows are ``fn(valid rows)`` ([n_valid, d]); padding kept."""
    idx = torch.arange(h.shape[1], device=h.device)
    lengths = torch.tensor(list(valid_frames), device=h.device)
    mask = idx[None, :] < lengths[:, None]
    new = h.clone()
    new[mask] = fn(h[mask]).to(h.dtype)
    return new


def replacing_hook(fn: Callable[[torch.Tensor], torch.Tensor],
                   valid_frames: Sequence[int] | None = None) -> Callable[..., Any]:
    """A forward hook that replaces a module's output by ``fn`` of it: of its valid rows
    (:func:`replace_valid_frames`, padding kept) when ``valid_frames`` is given, else of the whole
    [batch, frames, d] output."""

    def hook_fn(_module: torch.nn.Module, _inp: Any, output: Any) -> Any:
        h = _hidden(output)
        if valid_frames is None:
            return _with_hidden(output, fn(h).to(h.dtype))
        return _with_hidden(output, replace_valid_frames(h, fn, valid_frames))

    return hook_fn


class AudioModelAdapter:
    """Base class; subclasses set ``family`` and implement the input side."""

    family: str = "base"
    adapter_version: str = "1"
    frame_rate_hz: float = 50.0
    max_batch_samples: int | None = None

    def __init__(self, model: Any, identity: ModelIdentity):
        self.model = model.eval()
        self.identity = identity
        self.source_dir: Any = None  # the model folder (set by load_adapter)
        for p in self.model.parameters():
            p.requires_grad_(False)

    # -- to be provided by subclasses --------------------------------------------------------
    @property
    def base_model(self) -> Any:
        raise NotImplementedError

    @property
    def n_layers(self) -> int:
        raise NotImplementedError

    @property
    def hidden_size(self) -> int:
        raise NotImplementedError

    def valid_frames(self, n_samples: int) -> int:
        raise NotImplementedError

    def batch_frames(self, batch: Batch) -> int | None:
        """Frames the encoder gives each row of ``batch``, padding included (None: not known)."""
        return None

    def frame_centres_s(self, n_frames: int) -> np.ndarray:
        raise NotImplementedError

    def segments(self, wave: np.ndarray) -> list[np.ndarray]:
        """Cut one clip into the pieces the model sees (Whisper: 30 s windows)."""
        return [wave]

    def prepare(self, waves: Sequence[np.ndarray]) -> Batch:
        raise NotImplementedError

    def _run_base(self, batch: Batch) -> Any:
        raise NotImplementedError

    def batch_groups(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices that may share a forward pass (all, unless padding would change the output)."""
        return [list(range(len(lengths)))]

    # -- shared ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def to(self, device: str | torch.device, dtype: torch.dtype | None = None) -> AudioModelAdapter:
        self.model.to(device=device, dtype=dtype)
        return self

    def resolve(self, hook: str | HookPoint) -> HookPoint:
        hp = hook if isinstance(hook, HookPoint) else canonical_hook(hook)
        check_hook_exists(hp, self.n_layers, self.identity.model_id)
        return hp

    def module(self, hook: str | HookPoint) -> Any:
        hp = self.resolve(hook)
        enc = self.base_model.encoder  # type: ignore[attr-defined]
        if hp.name == FINAL_NORM:
            return enc.layer_norm
        return enc.layers[hp.layer]

    def hook_depth(self, hook: HookPoint) -> int:
        return self.n_layers if hook.layer is None else hook.layer

    def _move(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in batch.inputs.items():
            if torch.is_floating_point(v):
                out[k] = v.to(device=self.device, dtype=self.dtype)
            else:
                out[k] = v.to(device=self.device)
        return out

    @torch.no_grad()
    def activations(self, batch: Batch, hooks: Sequence[str | HookPoint]) -> dict[str, torch.Tensor]:
        """Return ``{canonical hook: [B, T, d]}``; the forward stops after the deepest hook."""
        hps = [self.resolve(h) for h in hooks]
        deepest = max(hps, key=self.hook_depth)
        captured: dict[str, torch.Tensor] = {}
        handles = []

        def make(name: str, stop: bool) -> Callable:
            def hook_fn(_module: torch.nn.Module, _inp: Any, output: Any) -> None:
                captured[name] = _hidden(output).detach()
                if stop and all(h.name in captured for h in hps):
                    raise _StopForward

            return hook_fn

        for hp in {h.name: h for h in hps}.values():
            handles.append(self.module(hp).register_forward_hook(make(hp.name, hp == deepest)))
        try:
            self._run_base(batch)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        return {hp.name: captured[hp.name] for hp in hps}

    @contextlib.contextmanager
    def replace_output(
        self,
        hook: str | HookPoint,
        fn: Callable[[torch.Tensor], torch.Tensor],
        valid_frames: Sequence[int] | None = None,
    ) -> Iterator[None]:
        """Replace the hook's output by ``fn(output)`` on valid frames (padding untouched).

        With ``valid_frames``, ``fn`` receives only the valid rows, as a [n_valid, d] tensor (so an
        SAE never runs on padding); without, it receives the whole [batch, frames, d] output.
        """
        handle = self.module(hook).register_forward_hook(replacing_hook(fn, valid_frames))
        try:
            yield
        finally:
            handle.remove()
