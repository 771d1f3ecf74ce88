"""Thread counts while work runs: numpy's and scipy's BLAS on one thread for tasks, and torch's
intra-op count set for a while (a unit's, or a re-run row's) and restored afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def numpy_blas_single_threaded() -> Any:
    """A context in which numpy's and scipy's BLAS use one thread.

    Tasks fit hundreds of small probes (scikit-learn's lbfgs on a few thousand frames x d): one
    thread is faster there, and a probe's result no longer depends on the machine's core count (a
    reduction split across threads rounds differently). Only the BLAS shipped inside the numpy and
    scipy wheels is limited: a system or MKL BLAS that torch may share is left alone."""
    import scipy.linalg  # noqa: F401 - loads scipy's BLAS now, so that it is found and limited too
    from threadpoolctl import ThreadpoolController

    ctl = ThreadpoolController()
    # the wheels keep their BLAS in numpy.libs / scipy.libs (Linux, Windows) or numpy/.dylibs (macOS)
    ours = [lib.filepath for lib in ctl.lib_controllers if lib.user_api == "blas"
            and any(part.startswith(("numpy", "scipy")) for part in Path(lib.filepath).parts[-3:-1])]
    return ctl.select(filepath=ours).limit(limits=1)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Torch's intra-op thread count set to ``n`` (left as it is for ``None`` or 0), restored afterwards."""
    import torch

    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)
