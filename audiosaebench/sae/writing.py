"""Write any loaded SAE as a SAELens v6 directory (``audiosaebench convert``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from audiosaebench import __version__, atomic
from audiosaebench.errors import CheckpointError
from audiosaebench.sae.loading import SAELENS_CFG, SAELENS_WEIGHTS
from audiosaebench.sae.sae import SAE

# SAELens reads `metadata` into its SAEMetadata dataclass, which rejects unknown keys, so
# AudioSAEBench's own record goes into a top-level key (SAELens ignores unknown top-level keys).
SAELENS_FORMAT_VERSION = "6.0.0"


def saelens_v6_config(sae: SAE) -> dict:
    info = sae.info
    cfg: dict = {
        "architecture": info.architecture,
        "d_in": info.d_in,
        "d_sae": info.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": info.apply_b_dec_to_input,
        "normalize_activations": info.normalize_activations,
        "reshape_activations": "none",
        "metadata": {
            "model_name": info.model_id,
            "hook_name": info.hook_point,
            "sae_lens_version": SAELENS_FORMAT_VERSION,
            "sae_lens_training_version": SAELENS_FORMAT_VERSION,
        },
        "audiosaebench": {
            "written_by": f"audiosaebench {__version__}",
            "source_format": info.source_format,
            "weights_sha256": info.sha256,
            "notes": list(info.notes),
        },
    }
    if info.architecture == "topk":
        cfg["k"] = info.k
        cfg["rescale_acts_by_decoder_norm"] = False
    return cfg


def write_saelens_v6(sae: SAE, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``sae`` to ``out`` atomically (a temporary folder renamed into place)."""
    out = Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise CheckpointError(f"{out} already exists; pass --overwrite to replace it")
    with atomic.new_folder(out, replace=True) as tmp:
        tensors = {n: t.detach().to("cpu", torch.float32).contiguous() for n, t in sae.params.items()}
        save_file(tensors, str(tmp / SAELENS_WEIGHTS))
        with open(tmp / SAELENS_CFG, "w", encoding="utf-8") as f:
            json.dump(saelens_v6_config(sae), f, indent=2, sort_keys=True)
            f.write("\n")
    return out
