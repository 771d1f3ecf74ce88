"""Frame conventions (pure Python, no torch).

All audio is mono 16 kHz. A frame's time is its centre; padding frames are excluded everywhere.

Whisper encoder (50 Hz): the input is always a 30 s window (480,000 samples -> 3,000 mel frames ->
1,500 encoder frames). Mel frame ``m`` is centred on sample ``160 m`` (centred STFT) and encoder
frame ``t`` (conv2 has stride 2, kernel 3, padding 1) on mel frame ``2 t``, i.e. on sample
``320 t``. Frame ``t`` is valid iff its centre lies inside the audio: ``valid = ceil(n / 320)``,
capped at 1,500. Clips longer than 30 s are cut into consecutive 30 s windows.

HuBERT / wav2vec2 / WavLM (conv feature encoder, receptive field 400 samples, hop 320): frame
``t`` covers samples ``[320 t, 320 t + 400)``; ``n_frames = floor((n - 400) / 320) + 1``; its
centre is sample ``320 t + 200``.
"""

from __future__ import annotations

SAMPLE_RATE = 16_000
WHISPER_WINDOW_SAMPLES = 30 * SAMPLE_RATE
WHISPER_HOP = 320
WHISPER_MAX_FRAMES = 1500
SSL_HOP = 320
SSL_RECEPTIVE_FIELD = 400

# wav2vec2-family conv feature encoder (kernel, stride); used to check the closed form.
SSL_CONV_LAYERS = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))


def whisper_valid_frames(n_samples: int) -> int:
    if n_samples <= 0:
        return 0
    return min(-(-n_samples // WHISPER_HOP), WHISPER_MAX_FRAMES)


def whisper_windows(n_samples: int) -> list[tuple[int, int]]:
    """(start, end) sample ranges of the 30 s windows a clip is cut into."""
    if n_samples <= 0:
        return []
    return [
        (s, min(s + WHISPER_WINDOW_SAMPLES, n_samples))
        for s in range(0, n_samples, WHISPER_WINDOW_SAMPLES)
    ]


def ssl_frames(n_samples: int) -> int:
    if n_samples < SSL_RECEPTIVE_FIELD:
        return 0
    return (n_samples - SSL_RECEPTIVE_FIELD) // SSL_HOP + 1


def ssl_frames_by_conv(n_samples: int, conv_layers=SSL_CONV_LAYERS) -> int:
    """The same count by applying each conv layer's output-length formula in turn."""
    length = n_samples
    for kernel, stride in conv_layers:
        if length < kernel:
            return 0
        length = (length - kernel) // stride + 1
    return length


def whisper_frame_centre_s(t: int) -> float:
    return t * WHISPER_HOP / SAMPLE_RATE


def ssl_frame_centre_s(t: int) -> float:
    return (t * SSL_HOP + SSL_RECEPTIVE_FIELD / 2) / SAMPLE_RATE
