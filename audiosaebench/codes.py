"""SAE codes, computed in chunks: activations -> (x, z, x_hat) without a dense frames x d_sae matrix.

Tasks stream :func:`iter_codes` and keep only running statistics, so memory is bounded by
``chunk_rows x d_sae`` whatever the number of frames. A chunk's reconstruction ``x_hat`` is decoded
only when a reader asks for it. During an ``evaluate`` run, :data:`MEMO` keeps the non-zero codes of
recently read sets, so later tasks replay z instead of encoding again (see :class:`CodeMemo`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from audiosaebench.activations.store import ActivationSet
from audiosaebench.runtime import limits
from audiosaebench.runtime.allocator import mapping_large_blocks
from audiosaebench.sae.sae import SAE

DEFAULT_CHUNK_ROWS = 4096


@dataclass
class CodeChunk:
    start: int  # index of the first frame in the activation set
    x: torch.Tensor  # [n, d_in] float32
    z: torch.Tensor  # [n, d_sae]
    state: object = None  # the SAE's per-frame normalisation state (see SAE.normalize_in)
    sae: SAE | None = field(default=None, repr=False)
    _x_hat: torch.Tensor | None = field(default=None, repr=False)

    @property
    def x_hat(self) -> torch.Tensor:
        """The reconstruction [n, d_in], decoded on first use: most readers need only z, and decoding
        a chunk costs as much as encoding it."""
        if self._x_hat is None:
            if self.sae is None:
                raise ValueError("this chunk has no SAE to decode with")
            with torch.no_grad():
                self._x_hat = self.sae.decode(self.z, self.state)
        return self._x_hat


def chunk_rows_for(sae: SAE, budget_bytes: int = 512 << 20) -> int:
    """Rows per chunk so that a few [rows, d_sae] float32 buffers fit in ``budget_bytes``."""
    return int(max(64, min(DEFAULT_CHUNK_ROWS, budget_bytes // (16 * sae.d_sae))))


def memo_budget_bytes() -> int:
    """``AUDIOSAEBENCH_CODE_MEMO_MB`` (default 256; 0 turns the memo off)."""
    return limits.from_env("AUDIOSAEBENCH_CODE_MEMO_MB", "256", limits.MB, "the code memo")


@dataclass
class _Packed:
    """One chunk's z as the flat positions of its non-zeros and their values (row-major order)."""

    shape: tuple[int, int]
    index: torch.Tensor  # int32 (int64 for chunks of 2**31 codes or more)
    values: torch.Tensor

    @classmethod
    def pack(cls, z: torch.Tensor) -> _Packed:
        flat = z.reshape(-1)
        index = flat.nonzero().squeeze(1)
        return cls((int(z.shape[0]), int(z.shape[1])), index.to(torch.int32) if flat.numel() < 2**31 else index, flat[index])

    def unpack(self) -> torch.Tensor:
        out = torch.zeros(self.shape[0] * self.shape[1], dtype=self.values.dtype, device=self.values.device)
        return out.index_put_((self.index,), self.values).view(self.shape)

    @property
    def nbytes(self) -> int:
        return self.index.numel() * self.index.element_size() + self.values.numel() * self.values.element_size()


@dataclass
class _Entry:
    sae: SAE  # held, so the ids in the key (the SAE's and its tensors') cannot be reused while the entry lives
    versions: tuple[int, ...]  # the parameters' in-place version counters when the codes were made
    chunks: list[_Packed]
    nbytes: int


class CodeMemo:
    """The sparse codes of the last few (SAE, activation set, chunk size) in this process.

    The tasks of one run read the same splits through the same SAE many times (on the mini suite,
    without the memo, a warm ``--tasks all`` of one SAE with a partner encoded each split 5 to 13
    times: ≈ 390,000 rows for ≈ 54,000 distinct frames); replaying z from its non-zeros skips the
    encoder's matrix product and top-k. Replayed chunks are bit-identical to computed ones: the
    same rows, the same chunk boundaries, the same values. An entry is kept only when the whole
    set was read, only while the SAE's parameters are unchanged in place, and only within
    ``memo_budget_bytes()`` (least recently used entries leave first). It works only inside
    :meth:`session` (``evaluate`` wraps its task loop in one) and is emptied when that ends, so
    code that calls :func:`iter_codes` directly keeps no codes behind.
    """

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple, _Entry] = OrderedDict()
        self._depth = 0

    @contextmanager
    def session(self) -> Iterator[CodeMemo]:
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if not self._depth:
                self._entries.clear()

    @property
    def active(self) -> bool:
        return self._depth > 0

    @staticmethod
    def key(sae: SAE, acts: ActivationSet, rows: int) -> tuple:
        # the SAE object (its info: architecture, k, normalisation) and its parameter tensors, both
        # held by the entry; SAEs made with ``with_info`` share tensors but not the object
        return (id(sae), tuple(id(t) for t in sae.params.values()), acts.key, str(acts.directory), acts.n_frames, rows)

    def get(self, sae: SAE, acts: ActivationSet, rows: int) -> list[_Packed] | None:
        k = self.key(sae, acts, rows)
        entry = self._entries.get(k)
        if entry is None:
            return None
        if entry.versions != tuple(t._version for t in sae.params.values()):
            del self._entries[k]  # the parameters were edited in place since
            return None
        self._entries.move_to_end(k)
        return entry.chunks

    def put(self, sae: SAE, acts: ActivationSet, rows: int, chunks: list[_Packed], versions: tuple[int, ...]) -> None:
        budget = memo_budget_bytes()
        nbytes = sum(c.nbytes for c in chunks)
        if nbytes > budget:
            return
        self._entries[self.key(sae, acts, rows)] = _Entry(sae, versions, chunks, nbytes)
        while self.nbytes > budget:
            self._entries.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


MEMO = CodeMemo()


@torch.no_grad()
def iter_codes(sae: SAE, acts: ActivationSet, chunk_rows: int | None = None) -> Iterator[CodeChunk]:
    rows = chunk_rows or chunk_rows_for(sae)
    budget = memo_budget_bytes() if MEMO.active else 0
    memo = MEMO.get(sae, acts, rows) if budget else None
    versions = tuple(t._version for t in sae.params.values())
    record: list[_Packed] | None = [] if memo is None and budget else None
    recorded = 0
    with mapping_large_blocks():  # chunk buffers come and go beside kept codes: audiosaebench.runtime.allocator
        for i, (start, x_np) in enumerate(acts.iter_chunks(rows)):
            x = torch.from_numpy(np.array(x_np, dtype=np.float32)).to(sae.device, sae.dtype)  # copy: shards are read-only maps
            if memo is not None:
                z = memo[i].unpack()
                state = sae.normalize_in(x)[1]
            else:
                z, state = sae.encode_with_state(x)
                if record is not None:
                    record.append(_Packed.pack(z))
                    recorded += record[-1].nbytes
                    if recorded > budget:
                        record = None  # too many codes to keep: stop recording, memory stays bounded
            yield CodeChunk(start, x, z, state, sae)
    if record is not None:
        MEMO.put(sae, acts, rows, record, versions)


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
