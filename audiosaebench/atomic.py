"""Files and folders that appear whole or not at all, safe with many writers on a shared file system.

Every write goes to a uniquely named temporary file or folder next to its target (``tempfile``:
no two processes or threads share a name), is flushed and fsynced, and is renamed into place with
``os.replace`` (a file) or ``os.rename`` (a folder), then the parent folder is fsynced. A reader
therefore sees the old version, the new one, or nothing; never a part. Two writers of the same
content both succeed (the last rename wins, or the second folder is dropped as a duplicate).
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def fsync_path(path: Path) -> None:
    """fsync a file or folder (folders where the platform allows opening them)."""
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@functools.cache
def current_umask() -> int:
    """The process's umask, read once: reading it means setting it, which would race with threads
    creating files, and every write needs it."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_file(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` to a unique temporary file next to ``path``, then rename it into place (removed on failure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # what open() would have made; mkstemp makes it private
        write(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(path.parent)
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    return write_file(path, write)


@contextlib.contextmanager
def new_folder(path: str | os.PathLike[str], *, replace: bool = False) -> Iterator[Path]:
    """A unique temporary folder next to ``path``, renamed to ``path`` when the block ends without error
    (removed otherwise). With ``replace`` an existing ``path`` is replaced; without it, a ``path`` that
    appeared meanwhile (another writer) wins and the temporary folder is dropped."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~current_umask())  # what mkdir would have made; mkdtemp makes it private
    old: Path | None = None
    try:
        yield tmp
        for child in tmp.rglob("*"):
            if child.is_file():
                fsync_path(child)
        fsync_path(tmp)
        if replace and path.exists():
            old = _set_aside(path)
        try:
            os.rename(tmp, path)
        except OSError:
            if old is not None and not path.exists():
                os.rename(old / "x", path)  # the new folder could not go in: the old one goes back
            if not path.exists():
                raise  # not a duplicate: a real error
        fsync_path(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _set_aside(path: Path) -> Path | None:
    """Move ``path`` into a unique holder folder next to it (deleted once its replacement is in); None
    when another replacer moved it first."""
    holder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    try:
        os.rename(path, holder / "x")
    except FileNotFoundError:
        shutil.rmtree(holder, ignore_errors=True)
        return None
    return holder
