"""HuBERT, wav2vec2 and WavLM encoder adapter (``HubertModel``, ``Wav2Vec2Model``, ``WavLMModel``).

Frames: ``floor((n - 400) / 320) + 1`` (the conv feature encoder); centre of frame ``t`` at
sample ``320 t + 200``. Models whose feature encoder uses group norm (``feat_extract_norm ==
"group"``, e.g. wav2vec2-base, hubert-base-ls960) take no attention mask and zero padding changes
their output, so only clips of identical length share a forward pass.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from audiosaebench.models.base import AudioModelAdapter, Batch, ModelIdentity
from audiosaebench.models.frames import SAMPLE_RATE, ssl_frame_centre_s, ssl_frames

SSL_MODEL_TYPES = ("hubert", "wav2vec2", "wavlm")


class SSLAdapter(AudioModelAdapter):
    adapter_version = "1"
    frame_rate_hz = 50.0

    def __init__(self, model: Any, identity: ModelIdentity, feature_extractor: Any = None):
        super().__init__(model, identity)
        self.family = str(model.config.model_type)
        if feature_extractor is None:
            from transformers import Wav2Vec2FeatureExtractor

            feature_extractor = Wav2Vec2FeatureExtractor(
                do_normalize=True, return_attention_mask=self.uses_attention_mask
            )
        self.feature_extractor = feature_extractor

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def base_model(self) -> Any:
        return self.model

    @property
    def uses_attention_mask(self) -> bool:
        return getattr(self.config, "feat_extract_norm", "group") == "layer"

    @property
    def n_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    def valid_frames(self, n_samples: int) -> int:
        return ssl_frames(n_samples)

    def batch_frames(self, batch: Batch) -> int | None:
        return ssl_frames(int(batch.inputs["input_values"].shape[-1]))

    def frame_centres_s(self, n_frames: int) -> np.ndarray:
        return np.array([ssl_frame_centre_s(t) for t in range(n_frames)])

    def batch_groups(self, lengths: Sequence[int]) -> list[list[int]]:
        if self.uses_attention_mask:
            return [list(range(len(lengths)))]
        groups: dict[int, list[int]] = defaultdict(list)
        for i, n in enumerate(lengths):
            groups[n].append(i)
        return list(groups.values())

    def prepare(self, waves: Sequence[np.ndarray]) -> Batch:
        if not self.uses_attention_mask and len({len(w) for w in waves}) > 1:
            raise ValueError(f"{self.family} (group-norm feature encoder) needs equal-length batches")
        feats = self.feature_extractor(
            [np.asarray(w, dtype=np.float32) for w in waves],
            sampling_rate=SAMPLE_RATE,
            return_tensors="pt",
            padding="longest",
            return_attention_mask=self.uses_attention_mask,
        )
        inputs = {"input_values": feats["input_values"]}
        if self.uses_attention_mask:
            inputs["attention_mask"] = feats["attention_mask"]
        return Batch(inputs=inputs, valid_frames=[self.valid_frames(len(w)) for w in waves])

    def _run_base(self, batch: Batch) -> Any:
        return self.model(**self._move(batch))


def load_ssl(folder: Any, cfg: dict[str, Any], identity: ModelIdentity, torch_dtype: torch.dtype) -> SSLAdapter:
    """The adapter of a HuBERT, wav2vec2 or WavLM folder."""
    from transformers import AutoModel

    from audiosaebench.models.loading import feature_extractor

    return SSLAdapter(AutoModel.from_pretrained(folder, dtype=torch_dtype), identity, feature_extractor(folder, "ssl"))
