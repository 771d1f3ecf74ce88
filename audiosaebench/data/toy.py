"""A tiny generated suite for unit tests and smoke runs: not a benchmark split.

Deterministic synthetic clips (harmonic "voiced" tones with a vibrato, noise bursts, chirps) in
every role a task may ask for, so the whole pipeline runs in seconds on random-init models.
Results on it are marked ``suite: toy`` and are not submittable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audiosaebench.data.audio import SAMPLE_RATE, load_audio, pcm_sha256, write_wav
from audiosaebench.data.manifest import Clip, Manifest

TOY_VERSION = "toy-1"
KINDS = ("voiced", "noise", "chirp")


def _synth(kind: str, rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    if kind == "voiced":
        f0 = rng.uniform(90, 220) * (1 + 0.03 * np.sin(2 * np.pi * 5 * t))
        phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
        x = sum(np.sin(h * phase) / h for h in range(1, 12))
    elif kind == "noise":
        x = rng.standard_normal(n) * (0.5 + 0.5 * (np.sin(2 * np.pi * rng.uniform(1, 4) * t) > 0))
    else:
        f = np.linspace(rng.uniform(200, 800), rng.uniform(1500, 6000), n)
        x = np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE)
    x = np.asarray(x, dtype=np.float64)
    return (0.3 * x / (np.abs(x).max() + 1e-9)).astype(np.float32)


def build_toy(root: str | Path, clips_per_split: int = 6) -> dict[str, Manifest]:
    """Write the toy suite under ``root`` (idempotent) and return its manifests by role."""
    root = Path(root)
    out: dict[str, Manifest] = {}
    for s_idx, split in enumerate(("train", "test")):
        for role_idx, role in enumerate(("speech", "nonspeech", "commands")):
            rng = np.random.default_rng(1000 + 10 * s_idx + role_idx)
            clips = []
            for i in range(clips_per_split):
                kind = KINDS[i % len(KINDS)]
                n = int(rng.integers(SAMPLE_RATE // 2, 2 * SAMPLE_RATE))
                x = _synth(kind, rng, n)
                rel = f"{role}/{split}/{role}-{split}-{i:03d}.wav"
                path = root / rel
                if not path.exists():
                    write_wav(path, x)
                y = load_audio(path)
                clips.append(
                    Clip(
                        clip_id=f"{role}-{split}-{i:03d}",
                        path=rel,
                        n_samples=len(y),
                        sample_rate=SAMPLE_RATE,
                        pcm_sha256=pcm_sha256(y),
                        speaker=f"spk{i % 2}",
                        labels={"category": kind},
                    )
                )
            out[f"{role}_{split}"] = Manifest(f"toy-{role}", split, TOY_VERSION, tuple(clips), str(root))
    return out


def load_toy_suite(data_dir: str | Path | None = None):
    """Generated clips for tests and smoke runs (not submittable), built on first use."""
    from audiosaebench import paths
    from audiosaebench.data.suites import Suite

    root = Path(data_dir) if data_dir else paths.data_dir() / "toy"
    return Suite("toy", build_toy(root), submittable=False)
