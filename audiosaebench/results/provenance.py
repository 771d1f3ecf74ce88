"""Provenance recorded in every result: versions, git sha of the package source, device and hardware."""

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


@lru_cache(maxsize=4)
def hardware(device: str) -> str | None:
    """What ran the model: the GPU's name for a CUDA device, else the CPU's model name (Linux
    ``/proc/cpuinfo``, else ``platform.processor()``); None when unknown. Another kind of processor
    may round the last digits of scores differently (docs/reproducing.md)."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def cpu_capability() -> str | None:
    """The instruction set torch picked its CPU kernels for (``DEFAULT``, ``AVX2``, ``AVX512``, ...).
    CPUs with one model name can differ here: two "AMD EPYC" machines of this project trained two
    different reference SAEs from the same data (docs/reproducing.md)."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability()) or None
    except (AttributeError, RuntimeError):
        return None


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
        "hardware": hardware(device),
        "cpu_capability": cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "dtypes": {"model_forward": model_dtype, "sae": sae_dtype},
    }
