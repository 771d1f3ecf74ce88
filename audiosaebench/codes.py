"""SAE codes, computed in chunks: activations -> (x, z, x_hat) without a dense frames x d_sae matrix.

Tasks stream :func:`iter_codes` and keep only running statistics, so memory is bounded by
``chunk_rows x d_sae`` whatever the number of frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from audiosaebench.activations.store import ActivationSet
from audiosaebench.sae.sae import SAE

DEFAULT_CHUNK_ROWS = 4096


@dataclass
class CodeChunk:
    start: int  # index of the first frame in the activation set
    x: torch.Tensor  # [n, d_in] float32
    z: torch.Tensor  # [n, d_sae]
    x_hat: torch.Tensor  # [n, d_in]


def chunk_rows_for(sae: SAE, budget_bytes: int = 512 << 20) -> int:
    """Rows per chunk so that a few [rows, d_sae] float32 buffers fit in ``budget_bytes``."""
    return int(max(64, min(DEFAULT_CHUNK_ROWS, budget_bytes // (16 * sae.d_sae))))


@torch.no_grad()
def iter_codes(sae: SAE, acts: ActivationSet, chunk_rows: int | None = None) -> Iterator[CodeChunk]:
    rows = chunk_rows or chunk_rows_for(sae)
    for start, x_np in acts.iter_chunks(rows):
        x = torch.from_numpy(np.array(x_np, dtype=np.float32)).to(sae.device, sae.dtype)  # copy: shards are read-only maps
        z, state = sae.encode_with_state(x)
        yield CodeChunk(start, x, z, sae.decode(z, state))
