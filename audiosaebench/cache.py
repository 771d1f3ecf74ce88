"""Small JSON results that do not depend on the evaluated SAE, cached under ``$AUDIOSAEBENCH_HOME``.

Used by tasks for work every SAE on the same model and hook would repeat (steering's unsteered
decodes, causal_patching's references). An entry that cannot be read or fails ``valid`` is
recomputed, never trusted; writes are atomic.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from audiosaebench import paths
from audiosaebench.hashing import sha256_json


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, path)
    return out
