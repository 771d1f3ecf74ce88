"""Feature dashboards for audio SAEs: per feature its top-activating and interval-sampled audio
excerpts (a spectrogram with the activation drawn over it, the frame labels), density, activation
histogram, the labels it predicts best, its nearest features, its explanation; an index page; and a
Neuronpedia-shaped export. ``audiosaebench dashboards`` runs :func:`build_dashboards`; see docs/dashboards.md.

Importing this package imports neither torch nor the model code (the CLI lists its options cheaply).
"""

from __future__ import annotations

from typing import Any


def build_dashboards(sae: Any, out: Any, **kwargs: Any) -> dict[str, Any]:
    from audiosaebench.dashboards.build import build_dashboards as build

    return build(sae, out, **kwargs)


__all__ = ["build_dashboards"]
