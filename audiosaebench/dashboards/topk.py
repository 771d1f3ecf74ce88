"""Streaming per-feature top-k: the k largest values of every feature over a stream of chunks.

The state is a running ``[k, d]`` of the best values so far, their item ids (windows) and an extra
integer per value (the window's peak row), merged with each chunk by one stable sort along the item
axis, so memory is ``k x d`` whatever the number of items and a chunk costs ``(k + n) x d``. Items
arrive with increasing ids; ties keep the earlier item (the state comes before the chunk in the
stable sort), so the result equals a full sort by (value descending, id ascending).
"""

from __future__ import annotations

import torch


class StreamingTopK:
    """The ``k`` largest ``values`` of each of ``d`` columns seen by :meth:`update`, with their ids and extras."""

    def __init__(self, k: int, d: int):
        if k < 1 or d < 0:
            raise ValueError(f"k must be >= 1 and d >= 0 (got k={k}, d={d})")
        self.k, self.d = k, d
        self.values = torch.full((k, d), float("-inf"), dtype=torch.float32)
        self.ids = torch.full((k, d), -1, dtype=torch.int64)
        self.extra = torch.full((k, d), -1, dtype=torch.int64)

    def update(self, values: torch.Tensor, ids: torch.Tensor, extra: torch.Tensor | None = None) -> None:
        """Merge a chunk: ``values`` [n, d], ``ids`` [n] (larger than every id seen before), ``extra`` [n, d]."""
        n = int(values.shape[0])
        if n == 0:
            return
        if values.shape[1] != self.d or ids.shape != (n,):
            raise ValueError(f"chunk of shape {tuple(values.shape)} with {tuple(ids.shape)} ids does not fit [n, {self.d}]")
        ext = extra if extra is not None else torch.full((n, self.d), -1, dtype=torch.int64)
        v = torch.cat([self.values, values.to(torch.float32)])
        i = torch.cat([self.ids, ids.to(torch.int64)[:, None].expand(n, self.d)])
        e = torch.cat([self.extra, ext.to(torch.int64)])
        order = torch.sort(v, dim=0, descending=True, stable=True).indices[: self.k]
        self.values, self.ids, self.extra = v.gather(0, order), i.gather(0, order), e.gather(0, order)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.values, self.ids, self.extra))
