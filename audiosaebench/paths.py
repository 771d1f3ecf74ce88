"""Where AudioSAEBench keeps its cache and data: a user directory, never the working directory.

``AUDIOSAEBENCH_HOME`` overrides the root (default: ``$XDG_CACHE_HOME/audiosaebench`` or
``~/.cache/audiosaebench``).
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    env = os.environ.get("AUDIOSAEBENCH_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "audiosaebench"


def activations_dir() -> Path:
    return home() / "activations"


def data_dir() -> Path:
    return home() / "data"


def models_dir() -> Path:
    return home() / "models"
