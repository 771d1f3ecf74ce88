"""One split the dashboards read: its manifest, activations at the SAE's hook and every label level."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from audiosaebench.frame_labels import SplitLabels


@dataclass
class SplitData:
    role: str
    manifest: Any  # audiosaebench.data.manifest.Manifest
    acts: Any  # audiosaebench.activations.store.ActivationSet
    labels: SplitLabels

    @property
    def offsets(self) -> np.ndarray:
        return self.acts.offsets

    def has_phones(self, clip: int) -> bool:
        return bool(self.manifest.clips[clip].labels.get("phones"))
