"""AudioSAEBench: a benchmark for sparse autoencoders trained on audio models.

``import audiosaebench`` is light: it does not import torch. The evaluation API is loaded on
first use (``audiosaebench.evaluate``).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "evaluate"]


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from audiosaebench.evaluation import evaluate

        return evaluate
    raise AttributeError(f"module 'audiosaebench' has no attribute {name!r}")
