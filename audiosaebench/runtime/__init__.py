"""Speed machinery, none of which changes a result: entered through :func:`session` and :func:`task_run`.

* :mod:`audiosaebench.runtime.allocator`: where glibc keeps freed memory between model forwards;
* :mod:`audiosaebench.runtime.limits`: the memory limits users set in the environment
  (``AUDIOSAEBENCH_CODE_MEMO_MB``, ``AUDIOSAEBENCH_TAIL_MEMO_MB``, ``AUDIOSAEBENCH_STATE_CACHE_GB``);
* :mod:`audiosaebench.runtime.threads`: numpy's and scipy's BLAS on one thread while tasks run;
* the code memo (:data:`audiosaebench.codes.MEMO`): the tasks of one run share each SAE's codes.

``evaluate`` enters :func:`session` once around its task loop and :func:`task_run` around each
task; code that scores SAEs another way (dashboards, a grid's units) does the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def session() -> Iterator[None]:
    """BLAS on one thread and the code memo on, for one process's scoring work."""
    from audiosaebench.codes import MEMO
    from audiosaebench.runtime.threads import numpy_blas_single_threaded

    with numpy_blas_single_threaded(), MEMO.session():
        yield


@contextlib.contextmanager
def task_run() -> Iterator[None]:
    """One task's model forwards reuse the blocks the previous forward freed; the free pages go back to
    the system when the task ends."""
    from audiosaebench.runtime.allocator import reusing_freed_blocks

    with reusing_freed_blocks():
        yield
