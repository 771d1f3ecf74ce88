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
    state: object = None  # the SAE's per-frame normalisation state (see SAE.normalize_in)


def chunk_rows_for(sae: SAE, budget_bytes: int = 512 << 20) -> int:
    """Rows per chunk so that a few [rows, d_sae] float32 buffers fit in ``budget_bytes``."""
    return int(max(64, min(DEFAULT_CHUNK_ROWS, budget_bytes // (16 * sae.d_sae))))


@torch.no_grad()
def iter_codes(sae: SAE, acts: ActivationSet, chunk_rows: int | None = None) -> Iterator[CodeChunk]:
    rows = chunk_rows or chunk_rows_for(sae)
    for start, x_np in acts.iter_chunks(rows):
        x = torch.from_numpy(np.array(x_np, dtype=np.float32)).to(sae.device, sae.dtype)  # copy: shards are read-only maps
        z, state = sae.encode_with_state(x)
        yield CodeChunk(start, x, z, sae.decode(z, state), state)


def _cat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _to_sparse(z: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nz = torch.nonzero(z, as_tuple=True)
    return nz[0].cpu().numpy(), nz[1].cpu().numpy(), z[nz].float().cpu().numpy()


def sparse_frame_codes(sae: SAE, acts: ActivationSet, rows: np.ndarray, chunk_rows: int | None = None):
    """z at the given (sorted, unique) frame rows as a scipy CSC matrix [len(rows), d_sae].

    Memory is proportional to the number of non-zero codes, never to ``len(rows) x d_sae``.
    """
    from scipy import sparse

    rows = np.asarray(rows, dtype=np.int64)
    r_all, c_all, v_all = [], [], []
    for ch in iter_codes(sae, acts, chunk_rows):
        lo, hi = np.searchsorted(rows, [ch.start, ch.start + ch.z.shape[0]])
        if hi == lo:
            continue
        r, c, v = _to_sparse(ch.z[torch.from_numpy(rows[lo:hi] - ch.start)])
        r_all.append(r + lo)
        c_all.append(c)
        v_all.append(v)
    return sparse.csc_matrix((_cat(v_all, np.float32), (_cat(r_all, np.int64), _cat(c_all, np.int64))),
                             shape=(len(rows), sae.d_sae))


def pooled_clip_codes(sae: SAE, acts: ActivationSet, how: str = "max", chunk_rows: int | None = None):
    """z pooled over each clip's valid frames ("max" or "mean") as a scipy CSR matrix [clips, d_sae]."""
    from scipy import sparse

    if how not in ("max", "mean"):
        raise ValueError(f"pooling must be max or mean, not {how!r}")
    off = acts.offsets
    n_clips = len(off) - 1
    r_all, c_all, v_all = [], [], []
    acc: torch.Tensor | None = None  # running pool of the clip that straddles chunks
    clip = 0
    for ch in iter_codes(sae, acts, chunk_rows):
        end = ch.start + ch.z.shape[0]
        while clip < n_clips:
            a, b = max(int(off[clip]), ch.start), min(int(off[clip + 1]), end)
            if b > a:
                part = ch.z[a - ch.start : b - ch.start].float()
                red = part.max(0).values if how == "max" else part.sum(0)
                acc = red if acc is None else (torch.maximum(acc, red) if how == "max" else acc + red)
            if int(off[clip + 1]) > end:
                break  # the clip continues in the next chunk
            if acc is not None:
                if how == "mean":
                    acc = acc / max(1, int(off[clip + 1] - off[clip]))
                _, c, v = _to_sparse(acc[None])
                r_all.append(np.full(len(c), clip))
                c_all.append(c)
                v_all.append(v)
            acc = None
            clip += 1
    return sparse.csr_matrix((_cat(v_all, np.float32), (_cat(r_all, np.int64), _cat(c_all, np.int64))),
                             shape=(n_clips, sae.d_sae))
