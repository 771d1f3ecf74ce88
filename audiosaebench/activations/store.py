"""Content-addressed, sharded, memory-mapped activation store.

Key = sha256 of {model id, revision, weights sha256, adapter family + version, hook point,
manifest sha256, forward dtype, store dtype, store format}. Layout::

    <AUDIOSAEBENCH_HOME>/activations/<key[:2]>/<key>/
        meta.json                    key fields, per-clip offsets, shard list with sha256
        shard-00000.safetensors      tensor "acts" [rows, d_model] (valid frames only)

A store is written into a temporary folder and renamed into place, so a killed run never leaves
a half-written store under the final name; a ``<key>.lock`` file beside the entry (``flock``) makes a
second process that would extract the same entry wait for the first and read its entry. On first open in a process every shard's sha256 is
checked; a mismatch (or a missing/corrupt meta.json) deletes the entry and it is rebuilt.
Reads memory-map each shard's data (safetensors stores raw little-endian rows after a JSON header),
so memory stays flat in the number of clips.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiosaebench import paths
from audiosaebench.atomic import current_umask, fsync_path
from audiosaebench.hashing import sha256_file, sha256_json

log = logging.getLogger(__name__)

STORE_FORMAT = "safetensors-shards-v1"
SHARD_BYTES = 256 << 20
_VERIFIED: set[str] = set()


class CorruptStore(Exception):
    """A cache entry failed verification; it will be rebuilt."""


def store_key(fields: dict[str, Any]) -> str:
    return sha256_json({**fields, "store_format": STORE_FORMAT})


def store_root() -> Path:
    return paths.activations_dir()


def entry_dir(key: str, root: Path | None = None) -> Path:
    return (root or store_root()) / key[:2] / key


@dataclass
class ActivationSet:
    """Activations of one (model, hook, manifest): valid frames only, clips concatenated."""

    key: str
    directory: Path
    meta: dict[str, Any]
    shards: list[np.ndarray]
    shard_starts: np.ndarray

    @property
    def d(self) -> int:
        return int(self.meta["d"])

    @property
    def n_frames(self) -> int:
        return int(self.meta["n_frames"])

    @property
    def clip_ids(self) -> list[str]:
        return [c["clip_id"] for c in self.meta["clips"]]

    @property
    def offsets(self) -> np.ndarray:
        return np.array([c["offset"] for c in self.meta["clips"]] + [self.n_frames], dtype=np.int64)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as one float32 array (a view when inside one shard)."""
        if start >= stop:
            return np.zeros((0, self.d), dtype=np.float32)
        i = int(np.searchsorted(self.shard_starts, start, side="right") - 1)
        parts = []
        while start < stop:
            s0 = int(self.shard_starts[i])
            shard = self.shards[i]
            take = min(stop, s0 + shard.shape[0])
            parts.append(shard[start - s0 : take - s0])
            start = take
            i += 1
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Rows at the given indices (any order) as one float32 array, read shard by shard."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), self.d), dtype=np.float32)
        shard = np.searchsorted(self.shard_starts, idx, side="right") - 1
        for i in np.unique(shard):
            m = shard == i
            out[m] = self.shards[i][idx[m] - int(self.shard_starts[i])]
        return out

    def pooled(self, how: str = "mean") -> np.ndarray:
        """Raw activations pooled over each clip's valid frames: [clips, d] (zeros for an empty clip)."""
        off = self.offsets
        out = np.zeros((len(off) - 1, self.d), dtype=np.float32)
        for i in range(len(off) - 1):
            if off[i + 1] > off[i]:
                x = self.rows(int(off[i]), int(off[i + 1]))
                out[i] = x.mean(0) if how == "mean" else x.max(0)
        return out

    def clip(self, index: int) -> np.ndarray:
        off = self.offsets
        return self.rows(int(off[index]), int(off[index + 1]))

    def iter_chunks(self, max_rows: int = 65_536) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first row index, rows) in order, at most ``max_rows`` at a time (read-only views)."""
        for start in range(0, self.n_frames, max_rows):
            yield start, self.rows(start, min(start + max_rows, self.n_frames))

    def frame_clip_index(self) -> np.ndarray:
        off = self.offsets
        return np.repeat(np.arange(len(off) - 1), np.diff(off))


def _memmap_safetensors(path: Path, name: str = "acts") -> np.ndarray:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise CorruptStore(f"{path}: truncated header")
        (n,) = struct.unpack("<Q", head)
        if n > 10_000_000:
            raise CorruptStore(f"{path}: implausible header size")
        header = json.loads(f.read(n))
    info = header[name]
    if info["dtype"] != "F32":
        raise CorruptStore(f"{path}: unexpected dtype {info['dtype']}")
    a, b = info["data_offsets"]
    shape = tuple(info["shape"])
    if b - a != 4 * int(np.prod(shape)) or path.stat().st_size < 8 + n + b:
        raise CorruptStore(f"{path}: data size does not match the header")
    if shape[0] == 0:
        return np.zeros(shape, dtype=np.float32)
    return np.memmap(path, dtype="<f4", mode="r", offset=8 + n + a, shape=shape)


def open_store(key: str, root: Path | None = None, verify: bool = True) -> ActivationSet | None:
    """Open a finished entry; None if absent. A corrupt entry is deleted (and None returned)."""
    d = entry_dir(key, root)
    meta_path = d / "meta.json"
    if not d.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != key:
            raise CorruptStore("meta.json belongs to another key")
        if verify and key not in _VERIFIED:
            for sh in meta["shards"]:
                if sha256_file(d / sh["file"]) != sh["sha256"]:
                    raise CorruptStore(f"checksum mismatch in {sh['file']}")
            _VERIFIED.add(key)
        shards = [_memmap_safetensors(d / sh["file"]) for sh in meta["shards"]]
        starts = np.array([sh["start"] for sh in meta["shards"]], dtype=np.int64)
        if sum(s.shape[0] for s in shards) != meta["n_frames"]:
            raise CorruptStore("row count does not match meta.json")
    except (CorruptStore, OSError, ValueError, KeyError, TypeError) as e:
        log.warning("activation cache entry %s is corrupt (%s); rebuilding it", key[:12], e)
        shutil.rmtree(d, ignore_errors=True)
        _VERIFIED.discard(key)
        return None
    return ActivationSet(key, d, meta, shards, starts)


@contextlib.contextmanager
def entry_locks(keys: Iterable[str], root: Path | None = None) -> Iterator[None]:
    """Exclusive advisory locks (``fcntl.flock``) on ``<key>.lock`` beside each entry, taken in key order.

    A backstop to one writer per key (a grid's plan gives each entry one extraction unit): a second
    process about to extract the same entry waits here, then finds it finished and reads it instead
    of extracting it again. Writes stay atomic without it; where the file system has no ``flock``
    (some network file systems), extraction goes on unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    held = []
    try:
        for key in sorted(set(keys)):
            path = entry_dir(key, root).parent / f"{key}.lock"
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(path, "a+b")  # noqa: SIM115 - closed in finally
            try:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.info("activation cache entry %s is being written by another process; waiting", key[:12])
                    fcntl.flock(f, fcntl.LOCK_EX)
            except OSError as e:
                log.debug("no lock on %s (%s); extracting unlocked", path, e)
                f.close()
                continue
            held.append(f)
        yield
    finally:
        for f in held:
            fcntl.flock(f, fcntl.LOCK_UN)
            f.close()


class StoreWriter:
    """Streams rows into shards inside a temporary folder; :meth:`commit` renames it into place."""

    def __init__(self, key: str, fields: dict[str, Any], d: int, root: Path | None = None):
        self.key, self.fields, self.d = key, fields, d
        self.final = entry_dir(key, root)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.tmp-", dir=self.final.parent))
        os.chmod(self.tmp, 0o777 & ~current_umask())  # readable by the group of a shared home, as mkdir makes it
        self.rows_per_shard = max(1, SHARD_BYTES // (4 * d))
        self.buffer: list[np.ndarray] = []
        self.buffered = 0
        self.written = 0
        self.shards: list[dict[str, Any]] = []
        self.clips: list[dict[str, Any]] = []

    def add_clip(self, clip_id: str, acts: np.ndarray) -> None:
        acts = np.ascontiguousarray(acts, dtype=np.float32)
        if acts.ndim != 2 or acts.shape[1] != self.d:
            raise ValueError(f"expected [n, {self.d}] activations, got {acts.shape}")
        self.clips.append({"clip_id": clip_id, "offset": self.written + self.buffered, "n_frames": int(acts.shape[0])})
        self.buffer.append(acts)
        self.buffered += acts.shape[0]
        while self.buffered >= self.rows_per_shard:
            self._flush(self.rows_per_shard)

    def _flush(self, n_rows: int) -> None:
        from safetensors.numpy import save_file

        data = np.concatenate(self.buffer) if self.buffer else np.zeros((0, self.d), np.float32)
        head, rest = data[:n_rows], data[n_rows:]
        name = f"shard-{len(self.shards):05d}.safetensors"
        save_file({"acts": np.ascontiguousarray(head)}, str(self.tmp / name))
        self.shards.append({"file": name, "start": self.written, "rows": int(head.shape[0]), "sha256": sha256_file(self.tmp / name)})
        self.written += head.shape[0]
        self.buffer = [rest] if rest.shape[0] else []
        self.buffered = int(rest.shape[0])

    def commit(self) -> ActivationSet:
        """Write ``meta.json`` last, fsync everything and rename the folder into place. Readers trust only a
        folder under its final name whose ``meta.json`` names this key and whose shards match their
        checksums; with several writers of one key, the first rename wins and the others' identical
        folders are dropped."""
        if self.buffered or not self.shards:
            self._flush(self.buffered)
        meta = {"key": self.key, **self.fields, "d": self.d, "n_frames": self.written, "clips": self.clips, "shards": self.shards}
        for sh in self.shards:
            fsync_path(self.tmp / sh["file"])
        with open(self.tmp / "meta.json", "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        fsync_path(self.tmp)
        try:
            os.rename(self.tmp, self.final)
            fsync_path(self.final.parent)
        except OSError:
            # another process finished the same entry first; theirs is identical
            shutil.rmtree(self.tmp, ignore_errors=True)
        opened = open_store(self.key, self.final.parent.parent)
        if opened is None:
            raise RuntimeError(f"activation store {self.key[:12]} could not be reopened after writing")
        return opened

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
