"""Full-frame hidden states at a hook for one batch, cached on disk by the exact model inputs.

Interventions (the fidelity splice, steering, causal patching) rerun only the layers above a hook.
What enters those layers, the clean hook output on *every* frame (padding included; Whisper
attends to it), does not depend on the SAE, so it is computed once per batch and kept under
``$AUDIOSAEBENCH_HOME/state-cache``. The activation store is no substitute: it keeps valid frames
only.

The key is the model identity, dtype, hook, where ("input" of the hook's module or its
"output"), the torch version and the SHA-256 of the batch's input tensors, so any change of clips,
preprocessing or batch composition is a different entry, never a stale one. An entry that cannot
be read or has the wrong shape is recomputed and rewritten. Writes are atomic. The cache stops
growing at ``AUDIOSAEBENCH_STATE_CACHE_GB`` (default 4; 0 turns it off): further states are
computed and not stored.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch

from audiosaebench import paths
from audiosaebench.models.base import Batch, _StopForward

log = logging.getLogger(__name__)
CACHE_VERSION = 1
WHERE = ("input", "output")
_used_bytes: dict[Path, int] = {}  # per cache folder, counted once per process
_full_warned: set[Path] = set()


def budget_bytes() -> int:
    raw = os.environ.get("AUDIOSAEBENCH_STATE_CACHE_GB", "4")
    try:
        return int(float(raw) * 2**30)
    except ValueError:
        log.warning("AUDIOSAEBENCH_STATE_CACHE_GB=%r is not a number; the state cache is off", raw)
        return 0


def folder() -> Path:
    return paths.home() / "state-cache"


def compute_states(adapter: Any, hook: str, batch: Batch, where: str) -> torch.Tensor:
    """The tensor entering (``input``) or leaving (``output``) the hook's module, [B, T, d], all frames.

    The forward pass stops there (``output`` is :meth:`AudioModelAdapter.activations`)."""
    if where not in WHERE:
        raise ValueError(f"where must be one of {WHERE}, got {where!r}")
    if where == "output":
        return adapter.activations(batch, [hook])[adapter.resolve(hook).name]
    captured: list[torch.Tensor] = []

    def pre_hook(_module: torch.nn.Module, args: tuple) -> None:
        captured.append(args[0].detach())
        raise _StopForward

    handle = adapter.module(hook).register_forward_pre_hook(pre_hook)
    try:
        with torch.no_grad():
            adapter._run_base(batch)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:  # pragma: no cover - the module is on the forward path
        raise RuntimeError(f"{hook} was not reached in the forward pass")
    return captured[0]


def state_key(adapter: Any, hook: str, batch: Batch, where: str) -> str:
    h = hashlib.sha256()
    ident = adapter.identity.to_dict()
    head = [CACHE_VERSION, ident, str(adapter.dtype), adapter.resolve(hook).name, where, torch.__version__,
            list(batch.valid_frames)]
    h.update(repr(head).encode())
    for name in sorted(batch.inputs):
        t = batch.inputs[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _read(path: Path, batch_size: int, d: int) -> torch.Tensor | None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        t = load_file(str(path))["states"]
    except (OSError, SafetensorError, KeyError, RuntimeError, ValueError) as e:
        log.warning("state cache entry %s is unreadable (%s); recomputing it", path.name, e)
        return None
    if t.ndim != 3 or t.shape[0] != batch_size or t.shape[2] != d or not torch.isfinite(t).all():
        log.warning("state cache entry %s has the wrong shape or non-finite values; recomputing it", path.name)
        return None
    return t


def _write(path: Path, t: torch.Tensor) -> None:
    from safetensors.torch import save_file

    from audiosaebench.cache import atomic_write

    root = folder()
    if root not in _used_bytes:
        _used_bytes[root] = sum(p.stat().st_size for p in root.rglob("*.safetensors")) if root.exists() else 0
    size = t.numel() * t.element_size()
    if _used_bytes[root] + size > budget_bytes():
        if root not in _full_warned:
            log.warning("state cache %s is full (AUDIOSAEBENCH_STATE_CACHE_GB); new states are not stored", root)
            _full_warned.add(root)
        return
    try:
        atomic_write(path, lambda tmp: save_file({"states": t.contiguous()}, str(tmp)))
        _used_bytes[root] += size
    except OSError as e:  # a full disk costs speed, not the run
        log.warning("could not write the state cache entry %s (%s)", path, e)


def hook_states(adapter: Any, hook: str, batch: Batch, where: str = "output") -> torch.Tensor:
    """:func:`compute_states` through the on-disk cache (on the CPU, float as the model computes it)."""
    if budget_bytes() <= 0:
        return compute_states(adapter, hook, batch, where).cpu()
    key = state_key(adapter, hook, batch, where)
    path = folder() / key[:2] / f"{key}.safetensors"
    if path.exists():
        got = _read(path, len(batch.valid_frames), adapter.hidden_size)
        if got is not None:
            return got
    t = compute_states(adapter, hook, batch, where).cpu()
    _write(path, t)
    return t
