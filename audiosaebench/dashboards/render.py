"""Excerpt files: each excerpt's audio (16-bit WAV, written with soundfile) and its log-mel
spectrogram (PNG, written by matplotlib's Agg machinery), one pair per distinct excerpt: features
that peak at the same place share them. A feature's activation is drawn over the spectrogram by the
feature page (from the values in its JSON), so one image serves every feature."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np

from audiosaebench.dashboards.examples import SAMPLE_RATE, Layout, Span

N_FFT, HOP, N_MELS = 400, 160, 64  # 25 ms windows every 10 ms, as Whisper's front end
DYNAMIC_RANGE = 8.0  # log10 units shown below a clip's loudest bin (80 dB)


@lru_cache(maxsize=1)
def mel_filters() -> np.ndarray:
    """[N_MELS, N_FFT // 2 + 1] triangular filters, evenly spaced on the HTK mel scale from 0 to 8 kHz."""
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    hz = 700.0 * (10 ** (np.linspace(0.0, mel(SAMPLE_RATE / 2), N_MELS + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    up, down = (freqs[None, :] - lo) / (mid - lo), (hi - freqs[None, :]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down))


def log_mel(wave: np.ndarray) -> np.ndarray:
    """[N_MELS, frames] log10 mel power, frame m centred on sample HOP * m."""
    x = np.pad(np.asarray(wave, dtype=np.float64), N_FFT // 2, mode="reflect" if len(wave) > N_FFT // 2 else "constant")
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP] * np.hanning(N_FFT + 1)[:-1]
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return np.log10(np.maximum(mel_filters() @ power.T, 1e-10))


def _png(path: Path, spec: np.ndarray, top: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import image

    image.imsave(path, spec, cmap="magma", origin="lower", vmin=top - DYNAMIC_RANGE, vmax=top, format="png")


def write_excerpts(out: Path, spans: list[Span], layout: Layout) -> dict[Span, tuple[str, str]]:
    """Write ``audio/<name>.wav`` and ``spectrograms/<name>.png`` under ``out`` for each span; returns
    their paths relative to ``out``."""
    import soundfile as sf

    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "spectrograms").mkdir(parents=True, exist_ok=True)
    paths: dict[Span, tuple[str, str]] = {}
    clip_key: tuple[int, int] | None = None
    wave, spec = np.zeros(0, np.float32), np.zeros((N_MELS, 0))
    for sp in sorted(set(spans), key=lambda s: (s.split, s.clip, s.start_sample, s.end_sample)):
        split = layout.splits[sp.split]
        if clip_key != (sp.split, sp.clip):
            clip_key = (sp.split, sp.clip)
            wave = split.manifest.load(split.manifest.clips[sp.clip])
            spec = log_mel(wave)
        name = sp.name(split.role)
        audio, png = f"audio/{name}.wav", f"spectrograms/{name}.png"
        buf = io.BytesIO()  # soundfile syncs a file it closes; the folder is synced once, when it is renamed into place
        sf.write(buf, wave[sp.start_sample : sp.end_sample], SAMPLE_RATE, subtype="PCM_16", format="WAV")
        (out / audio).write_bytes(buf.getvalue())
        a, b = round(sp.start_sample / HOP), max(round(sp.start_sample / HOP) + 1, round(sp.end_sample / HOP))
        _png(out / png, spec[:, a:b], float(spec.max()))
        paths[sp] = (audio, png)
    return paths
