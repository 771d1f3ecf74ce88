"""Audio decoding: mono, 16 kHz, float32 in [-1, 1].

Decoding uses soundfile (wav, flac, ogg). Stereo is averaged to mono. Resampling uses one filter
everywhere, recorded in every result as :data:`RESAMPLER`: ``scipy.signal.resample_poly`` with
the rational factor reduced by the gcd (22,050 -> 16,000 is 320/441; 44,100 -> 16,000 is
160/441) and scipy's default Kaiser window (beta = 5.0).
"""

from __future__ import annotations

import hashlib
from math import gcd
from pathlib import Path

import numpy as np

from audiosaebench.errors import DataError

SAMPLE_RATE = 16_000
RESAMPLER = "scipy.signal.resample_poly(up/gcd, down/gcd, window=('kaiser', 5.0))"


def resample(x: np.ndarray, sr: int, target: int = SAMPLE_RATE) -> np.ndarray:
    if sr == target:
        return x.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(int(sr), int(target))
    return resample_poly(x, target // g, int(sr) // g).astype(np.float32)


def load_audio(path: str | Path) -> np.ndarray:
    """Decode ``path`` to mono float32 at 16 kHz; raise DataError (with the path) on failure."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise DataError(f"audio file not found: {p}")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as e:  # noqa: BLE001 - libsndfile raises RuntimeError/LibsndfileError
        raise DataError(f"cannot decode audio {p}: {str(e).splitlines()[0] if str(e) else e!r}") from None
    if data.shape[0] == 0:
        raise DataError(f"audio file is empty (0 samples): {p}")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    out = resample(mono, int(sr))
    if not np.isfinite(out).all():
        raise DataError(f"audio file contains NaN/Inf samples: {p}")
    return out


def pcm16(x: np.ndarray) -> np.ndarray:
    """16-bit PCM with the scale soundfile decodes with (k / 32768), so int16 sources round-trip exactly."""
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")


def pcm_sha256(x: np.ndarray) -> str:
    """sha256 of the 16-bit PCM at 16 kHz: the same audio verifies from any source layout."""
    return hashlib.sha256(pcm16(x).tobytes()).hexdigest()


def write_wav(path: str | Path, x: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    import soundfile as sf

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), pcm16(x), sr, subtype="PCM_16")
