"""Batched extraction into the activation store: one forward pass fills every missing hook.

Each clip's audio is checked against its manifest PCM sha256 before it is used, so a cache entry
always corresponds to the manifest that names it. Activations are cast to float32 on the way into
the store whatever the forward dtype (which is part of the key).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from audiosaebench.activations.store import ActivationSet, StoreWriter, entry_locks, open_store, store_key
from audiosaebench.data.manifest import Manifest
from audiosaebench.runtime.allocator import HeapGuard, reusing_freed_blocks

log = logging.getLogger(__name__)


def store_fields(adapter: Any, hook: str, manifest: Manifest) -> dict[str, Any]:
    ident = adapter.identity
    return {
        "model_id": ident.model_id,
        "revision": ident.revision,
        "weights_sha256": ident.weights_sha256,
        "adapter": f"{adapter.family}/{adapter.adapter_version}",
        "hook": hook,
        "manifest_sha256": manifest.sha256,
        "forward_dtype": str(adapter.dtype).replace("torch.", ""),
        "store_dtype": "float32",
    }


def _segments(adapter: Any, manifest: Manifest) -> Iterator[tuple[int, int, int, np.ndarray]]:
    """Yield (clip index, segment index, number of segments, samples) in manifest order."""
    for ci, clip in enumerate(manifest.clips):
        wave = manifest.load(clip, verify=True)
        segs = adapter.segments(wave)
        for si, seg in enumerate(segs):
            yield ci, si, len(segs), seg


def get_activations(
    adapter: Any,
    hooks: Sequence[str],
    manifest: Manifest,
    *,
    batch_size: int = 8,
    root: Path | None = None,
    progress: bool = True,
    keep_states: Sequence[str] = (),
) -> dict[str, ActivationSet]:
    """Return ``{canonical hook: ActivationSet}``, extracting only what the cache lacks.

    For the hooks in ``keep_states`` the same forward pass also puts each batch row's hook output on
    all frames into the state cache (:mod:`audiosaebench.activations.states`), where the
    interventions read it, so they need not run the layers below the hook again."""
    names = list(dict.fromkeys(adapter.resolve(h).name for h in hooks))
    fields = {h: store_fields(adapter, h, manifest) for h in names}
    keys = {h: store_key(fields[h]) for h in names}
    out: dict[str, ActivationSet] = {}
    missing = []
    for h in names:
        s = open_store(keys[h], root)
        if s is None:
            missing.append(h)
        else:
            out[h] = s
    if not missing:
        return out
    with entry_locks([keys[h] for h in missing], root):
        for h in list(missing):  # another process may have written it while this one waited
            s = open_store(keys[h], root)
            if s is not None:
                out[h] = s
                missing.remove(h)
        if missing:
            out.update(_extract(adapter, missing, manifest, keys, fields, root, batch_size, progress, keep_states))
    return {h: out[h] for h in names}


def _extract(adapter: Any, missing: list[str], manifest: Manifest, keys: dict[str, str], fields: dict[str, dict],
             root: Path | None, batch_size: int, progress: bool, keep_states: Sequence[str]) -> dict[str, ActivationSet]:
    log.info("extracting %s for %s on %s (%d clips)", ", ".join(missing), adapter.identity.model_id, manifest.name, len(manifest))
    writers = {h: StoreWriter(keys[h], fields[h], adapter.hidden_size, root) for h in missing}
    keep = [h for h in missing if h in {adapter.resolve(k).name for k in keep_states}]
    try:
        with reusing_freed_blocks():  # one forward after another: see audiosaebench.runtime.allocator
            _extract_into(adapter, missing, manifest, writers, batch_size, progress, keep)
        return {h: writers[h].commit() for h in missing}
    except BaseException:
        for w in writers.values():
            w.abort()
        raise


class _Pending:
    """Rows of clips whose segments are not all extracted yet; a clip goes to the writers, in manifest
    order, once its last segment is in."""

    def __init__(self, manifest: Manifest, hooks: list[str], writers: dict[str, StoreWriter], bar: Any):
        self.manifest, self.hooks, self.writers, self.bar = manifest, hooks, writers, bar
        self.parts: dict[int, dict[int, dict[str, np.ndarray]]] = {}
        self.n_segs: dict[int, int] = {}
        self.next_clip = 0

    def flush_ready(self) -> None:
        while self.next_clip in self.n_segs and len(self.parts.get(self.next_clip, {})) == self.n_segs[self.next_clip]:
            parts = self.parts.pop(self.next_clip)
            clip_id = self.manifest.clips[self.next_clip].clip_id
            for h in self.hooks:
                rows = [parts[s][h] for s in sorted(parts)]  # copies already (see _run_batch)
                self.writers[h].add_clip(clip_id, rows[0] if len(rows) == 1 else np.concatenate(rows))
            self.next_clip += 1
            self.bar.update(1)


def _run_batch(adapter: Any, batch: list[tuple[int, int, np.ndarray]], pending: _Pending, keep_states: list[str],
               guard: HeapGuard) -> None:
    from audiosaebench.activations.states import put_states

    for group in adapter.batch_groups([len(w) for _, _, w in batch]):
        items = [batch[i] for i in group]
        b = adapter.prepare([w for _, _, w in items])
        acts = adapter.activations(b, pending.hooks)
        for h in keep_states:
            put_states(adapter, h, b, acts[h])
        for j, (ci, si, _) in enumerate(items):
            vf = b.valid_frames[j]
            # a copy of the valid rows, so the pending clip does not keep the whole batch alive
            pending.parts.setdefault(ci, {})[si] = {
                h: acts[h][j, :vf].to(torch.float32).cpu().numpy().copy() for h in pending.hooks
            }
        del acts, b
        guard.check()  # SSL batches change shape from clip to clip: see audiosaebench.runtime.allocator
    batch.clear()
    pending.flush_ready()


def _extract_into(adapter: Any, hooks: list[str], manifest: Manifest, writers: dict[str, StoreWriter], batch_size: int,
                  progress: bool, keep_states: list[str]) -> None:
    bar = tqdm(total=len(manifest), desc=f"activations {manifest.name}", unit="clip", disable=not progress or None)
    pending = _Pending(manifest, hooks, writers, bar)
    batch: list[tuple[int, int, np.ndarray]] = []
    guard = HeapGuard(settle=True)  # the first batch's kept blocks are the loop's own working set
    for ci, si, ns, seg in _segments(adapter, manifest):
        pending.n_segs[ci] = ns
        if ns == 0:
            continue
        batch.append((ci, si, seg))
        if len(batch) >= batch_size:
            _run_batch(adapter, batch, pending, keep_states, guard)
    if batch:
        _run_batch(adapter, batch, pending, keep_states, guard)
    pending.flush_ready()
    bar.close()
    if pending.next_clip != len(manifest):
        raise RuntimeError(f"extraction ended after {pending.next_clip} of {len(manifest)} clips")
