"""Provenance recorded in every result: versions, git sha of the package source, device."""

from __future__ import annotations

import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from audiosaebench import __version__


@lru_cache(maxsize=1)
def package_git_sha() -> str | None:
    """The commit of the audiosaebench source itself (not the cwd), or None for a pip install."""
    src = Path(__file__).resolve().parents[2]
    if not (src / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and len(sha) == 40 else None


def provenance(device: str, model_dtype: str, sae_dtype: str = "float32") -> dict[str, Any]:
    import torch
    import transformers

    return {
        "audiosaebench_version": __version__,
        "git_sha": package_git_sha(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": device,
        "dtypes": {"model_forward": model_dtype, "sae": sae_dtype},
    }
