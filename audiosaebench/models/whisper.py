"""Whisper encoder adapter (``WhisperForConditionalGeneration`` or ``WhisperModel``).

Input is always a 30 s window (3,000 log-mel frames, the HF feature extractor's
``padding="max_length"``); valid encoder frames = ``ceil(n / 320)`` capped at 1,500; longer clips
are cut into 30 s windows by :meth:`segments`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from audiosaebench.models.base import AudioModelAdapter, Batch, ModelIdentity
from audiosaebench.models.frames import (
    SAMPLE_RATE,
    WHISPER_WINDOW_SAMPLES,
    whisper_frame_centre_s,
    whisper_valid_frames,
    whisper_windows,
)


class WhisperAdapter(AudioModelAdapter):
    family = "whisper"
    adapter_version = "1"
    frame_rate_hz = 50.0

    def __init__(self, model: Any, identity: ModelIdentity, feature_extractor: Any = None):
        super().__init__(model, identity)
        if feature_extractor is None:
            from transformers import WhisperFeatureExtractor

            feature_extractor = WhisperFeatureExtractor(feature_size=self.config.num_mel_bins)
        self.feature_extractor = feature_extractor

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def base_model(self) -> Any:
        return self.model.model if hasattr(self.model, "proj_out") else self.model

    @property
    def n_layers(self) -> int:
        return int(self.config.encoder_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.config.d_model)

    @property
    def max_frames(self) -> int:
        return int(self.config.max_source_positions)

    def valid_frames(self, n_samples: int) -> int:
        return min(whisper_valid_frames(n_samples), self.max_frames)

    def batch_frames(self, batch: Batch) -> int | None:
        return self.max_frames

    def frame_centres_s(self, n_frames: int) -> np.ndarray:
        return np.array([whisper_frame_centre_s(t) for t in range(n_frames)])

    def segments(self, wave: np.ndarray) -> list[np.ndarray]:
        return [wave[s:e] for s, e in whisper_windows(len(wave))]

    def prepare(self, waves: Sequence[np.ndarray]) -> Batch:
        for w in waves:
            if len(w) > WHISPER_WINDOW_SAMPLES:
                raise ValueError("Whisper inputs must be cut into 30 s windows first (segments())")
        feats = self.feature_extractor(
            [np.asarray(w, dtype=np.float32) for w in waves],
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            padding="max_length",
        )
        n_mel_frames = 2 * self.max_frames
        x = feats["input_features"][..., :n_mel_frames]
        return Batch(inputs={"input_features": x}, valid_frames=[self.valid_frames(len(w)) for w in waves])

    def _run_base(self, batch: Batch) -> Any:
        return self.base_model.encoder(**self._move(batch))  # type: ignore[attr-defined]


def load_whisper(folder: Any, cfg: dict[str, Any], identity: ModelIdentity, torch_dtype: torch.dtype) -> WhisperAdapter:
    """The adapter of a Whisper folder (``WhisperModel`` when that is all it holds, else with its decoder)."""
    from transformers import WhisperForConditionalGeneration, WhisperModel

    from audiosaebench.models.loading import feature_extractor

    cls = WhisperModel if (cfg.get("architectures") or []) == ["WhisperModel"] else WhisperForConditionalGeneration
    return WhisperAdapter(cls.from_pretrained(folder, dtype=torch_dtype), identity, feature_extractor(folder, "whisper"))
