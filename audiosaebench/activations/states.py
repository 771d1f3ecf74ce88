"""Full-frame hidden states at a hook, cached on disk per batch row by the exact model inputs.

Interventions (the fidelity splice, steering, causal patching) rerun only the layers above a hook.
What enters those layers, the clean hook output on *every* frame (padding included; Whisper
attends to it), does not depend on the SAE, so it is computed once per row and kept under
``$AUDIOSAEBENCH_HOME/state-cache``. The activation store is no substitute: it keeps valid frames
only; but extraction writes the rows of the splits interventions read here in the same forward
pass (:func:`put_states`), so the layers below the hook run once per clip for the store and the
interventions together.

An entry is one row (one clip or 30 s window): its key is the model identity, dtype, hook, where
("input" of the hook's module or its "output"), the torch version, the row's number of valid
frames and the SHA-256 of the row's input tensors (padding included, so for models that pad a
batch to its longest item the padded length is part of the key). Any change of clip or
preprocessing is a different entry, never a stale one; a batch assembles its rows from entries
written by any earlier batch. That is exact where the layers below the hook compute each row the
same whatever else is in the batch, which a test checks bit for bit on the CPU for Whisper. A
full-size HuBERT's convolutional feature encoder was batch-invariant too on an AVX-512 EPYC (8
clips of 5 s against each alone); the tests' tiny SSL models' is not (≈ 5e-7). On a GPU, kernels
chosen by batch size may differ in the last bits, as the activation store's values already may
with ``--batch-size``. An entry that cannot be read or has the wrong shape is recomputed and
rewritten. Writes are atomic. The cache stops growing at ``AUDIOSAEBENCH_STATE_CACHE_GB``
(default 4; 0 turns it off): further states are computed and not stored.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch

from audiosaebench import paths
from audiosaebench.models.base import Batch, _StopForward
from audiosaebench.runtime import limits

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # 2: one entry per batch row (1: per batch)
WHERE = ("input", "output")
_used_bytes: dict[Path, int] = {}  # per cache folder, counted once per process
_full_warned: set[Path] = set()


def budget_bytes() -> int:
    return limits.from_env("AUDIOSAEBENCH_STATE_CACHE_GB", "4", limits.GB, "the state cache")


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


def row_keys(adapter: Any, hook: str, batch: Batch, where: str) -> list[str]:
    """One key per row of ``batch`` (see the module docstring)."""
    head = [CACHE_VERSION, adapter.identity.to_dict(), str(adapter.dtype), adapter.resolve(hook).name, where,
            torch.__version__]
    base = hashlib.sha256(repr(head).encode())
    rows = {name: t.detach().cpu().contiguous() for name, t in sorted(batch.inputs.items())}
    keys = []
    for j, valid in enumerate(batch.valid_frames):
        h = base.copy()
        h.update(f"valid={valid}|".encode())
        for name, t in rows.items():
            row = t[j].contiguous()
            h.update(f"{name}|{row.dtype}|{tuple(row.shape)}|".encode())
            h.update(row.numpy().tobytes())
        keys.append(h.hexdigest())
    return keys


def _path(key: str) -> Path:
    return folder() / key[:2] / f"{key}.safetensors"


def _read(path: Path, frames: int | None, d: int) -> torch.Tensor | None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        t = load_file(str(path))["states"]
    except (OSError, SafetensorError, KeyError, RuntimeError, ValueError) as e:
        log.warning("state cache entry %s is unreadable (%s); recomputing it", path.name, e)
        return None
    if t.ndim != 2 or t.shape[1] != d or (frames is not None and t.shape[0] != frames) or not torch.isfinite(t).all():
        log.warning("state cache entry %s has the wrong shape or non-finite values; recomputing it", path.name)
        return None
    return t


def _write(path: Path, t: torch.Tensor) -> None:
    from safetensors.torch import save_file

    from audiosaebench import atomic

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
        atomic.write_file(path, lambda tmp: save_file({"states": t.contiguous()}, str(tmp)))
        _used_bytes[root] += size
    except OSError as e:  # a full disk costs speed, not the run
        log.warning("could not write the state cache entry %s (%s)", path, e)


def put_states(adapter: Any, hook: str, batch: Batch, states: torch.Tensor, where: str = "output") -> None:
    """Store ``states`` ([B, T, d], all frames, as the model computed them for ``batch``) row by row,
    skipping rows already stored: extraction calls this for the splits interventions read."""
    if budget_bytes() <= 0:
        return
    for key, row in zip(row_keys(adapter, hook, batch, where), states.detach().cpu(), strict=True):
        path = _path(key)
        if not path.exists():
            _write(path, row)


def hook_states(adapter: Any, hook: str, batch: Batch, where: str = "output") -> torch.Tensor:
    """:func:`compute_states` through the on-disk cache (on the CPU, float as the model computes it).

    Rows found in the cache are read; the others are computed together, as one smaller batch."""
    if budget_bytes() <= 0:
        return compute_states(adapter, hook, batch, where).cpu()
    keys = row_keys(adapter, hook, batch, where)
    frames = adapter.batch_frames(batch)
    rows: list[torch.Tensor | None] = []
    for key in keys:
        path = _path(key)
        rows.append(_read(path, frames, adapter.hidden_size) if path.exists() else None)
    missing = [j for j, r in enumerate(rows) if r is None]
    if missing:
        sub = batch if len(missing) == len(rows) else Batch(
            inputs={name: t[missing] for name, t in batch.inputs.items()},
            valid_frames=[batch.valid_frames[j] for j in missing], extra=batch.extra)
        computed = compute_states(adapter, hook, sub, where).cpu()
        for j, row in zip(missing, computed, strict=True):
            rows[j] = row
            _write(_path(keys[j]), row)
    return torch.stack(rows)  # type: ignore[arg-type]


def continuation_states(cont: Any, batch: Batch) -> torch.Tensor:
    """What a :class:`~audiosaebench.models.continuation.Continuation` starts from for ``batch``
    ([B, T, d], all frames, on its device): :func:`hook_states` at its hook and start."""
    return hook_states(cont.adapter, cont.hook.name, batch, cont.start).to(cont.device)
