"""Results that do not depend on the evaluated SAE, cached under ``$AUDIOSAEBENCH_HOME``.

Used by tasks for work every SAE on the same model and hook would repeat (steering's unsteered
decodes, causal_patching's references, unpatched scores and gradients). Small results are JSON
(:func:`cached_json`), tensors safetensors (:func:`cached_tensors`, never pickle). An entry that
cannot be read or fails ``valid`` is recomputed, never trusted; writes are atomic.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from audiosaebench import atomic, paths
from audiosaebench.hashing import sha256_json

log = logging.getLogger(__name__)


def cached_json(folder: str, key: dict[str, Any], compute: Callable[[], dict],
                valid: Callable[[Any], bool] = lambda d: isinstance(d, dict)) -> dict:
    """``compute()``'s result for ``key``: read from ``<home>/<folder>/<sha256(key)>.json`` or computed and written."""
    path = paths.home() / folder / f"{sha256_json(key)}.json"
    try:
        got = json.loads(path.read_text())
        if valid(got):
            return got
    except (OSError, ValueError):
        pass
    out = compute()
    atomic.write_text(path, json.dumps(out))
    return out


def cached_tensors(folder: str, key: dict[str, Any], compute: Callable[[], dict],
                   valid: Callable[[dict], bool] = lambda d: True) -> dict:
    """``compute()``'s tensors (a dict of CPU tensors) for ``key``, through ``<home>/<folder>/<sha256(key)>.safetensors``."""
    import torch
    from safetensors.torch import load_file, save_file

    path = paths.home() / folder / f"{sha256_json(key)}.safetensors"
    if path.exists():
        try:
            got = load_file(str(path))
            if valid(got) and all(torch.isfinite(t).all() for t in got.values() if t.is_floating_point()):
                return got
            log.warning("cache entry %s does not match what is expected; recomputing it", path)
        except Exception as e:  # noqa: BLE001 - an unreadable entry is recomputed, never trusted
            log.warning("cache entry %s is unreadable (%s); recomputing it", path, e)
    out = {k: v.detach().cpu().contiguous() for k, v in compute().items()}
    atomic.write_file(path, lambda tmp: save_file(out, str(tmp)))
    return out
