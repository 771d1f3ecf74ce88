"""espeak-ng speech with exact phone timings, through ctypes on the ``espeakng-loader`` wheel.

The library keeps global state, so one utterance synthesised twice in one process is not
bit-identical. Every utterance is therefore synthesised in a child forked from a freshly
initialised worker process (``python -m audiosaebench.data.espeak``), which makes the output
bit-identical whatever the order or the process that asks. The worker runs no torch.

Output per utterance: int16 samples at the library's rate (22,050 Hz) and the phoneme events
(name, sample index); a phone spans from its event to the next phoneme or end event.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiosaebench.errors import DataError

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000
POS_CHARACTER = 1
CHARS_UTF8 = 1
RATE, VOLUME, PITCH, RANGE, WORDGAP = 1, 2, 3, 4, 7
RNG_SEED = 20261123
EV_LIST_TERMINATED, EV_WORD, EV_END, EV_MSG_TERMINATED, EV_PHONEME = 0, 1, 5, 6, 7


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Utterance:
    text: str
    voice: str  # e.g. "en-us+m3"
    rate_wpm: int
    pitch: int  # 0..99
    pitch_range: int = 50


def _init() -> tuple[ctypes.CDLL, int]:
    import espeakng_loader

    lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
    lib.espeak_Initialize.restype = ctypes.c_int
    sr = lib.espeak_Initialize(
        AUDIO_OUTPUT_SYNCHRONOUS, 0, str(espeakng_loader.get_data_path()).encode(),
        INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT,
    )
    if sr <= 0:
        raise RuntimeError("espeak_Initialize failed")
    return lib, sr


def _synth_here(lib: ctypes.CDLL, u: Utterance) -> tuple[np.ndarray, list[tuple[str, int]], list[tuple[int, int, int]]]:
    chunks: list[np.ndarray] = []
    phones: list[tuple[str, int]] = []
    words: list[tuple[int, int, int]] = []

    def cb(wav, n, events):  # noqa: ANN001 - ctypes callback
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != EV_LIST_TERMINATED:
            e = events[i]
            if e.type == EV_PHONEME:
                phones.append((e.id.string.decode("utf-8", "replace"), int(e.sample)))
            elif e.type == EV_WORD:
                words.append((int(e.text_position), int(e.length), int(e.sample)))
            elif e.type in (EV_END, EV_MSG_TERMINATED):
                phones.append(("<end>", int(e.sample)))
            i += 1
        return 0

    c_cb = _CALLBACK(cb)
    lib.espeak_SetSynthCallback(c_cb)
    if lib.espeak_SetVoiceByName(u.voice.encode()) != 0:
        raise RuntimeError(f"unknown espeak voice {u.voice!r}")
    lib.espeak_SetParameter(RATE, int(u.rate_wpm), 0)
    lib.espeak_SetParameter(PITCH, int(u.pitch), 0)
    lib.espeak_SetParameter(RANGE, int(u.pitch_range), 0)
    text = u.text.encode("utf-8") + b"\0"
    # Voice variants with `breath` (the female ones) draw noise from espeak's own RNG, which it
    # seeds from the clock at initialisation: reseed it before every utterance.
    lib.espeak_ng_SetRandSeed(ctypes.c_long(RNG_SEED))
    rc = lib.espeak_Synth(text, len(text), 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
    if rc != 0:
        raise RuntimeError(f"espeak_Synth failed ({rc})")
    lib.espeak_Synchronize()
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return audio.astype(np.int16), phones, words


def _worker() -> None:
    """Read one JSON request per line; answer each from a child forked from this fresh process."""
    lib, sr = _init()
    out = sys.stdout.buffer
    for line in sys.stdin:
        req = json.loads(line)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: synthesise, write, exit without running any cleanup
            os.close(r)
            try:
                audio, phones, words = _synth_here(lib, Utterance(**req))
                payload = json.dumps({"sr": sr, "phones": phones, "words": words, "n": len(audio)}).encode()
                data = struct.pack("<II", len(payload), audio.nbytes) + payload + audio.tobytes()
            except Exception as e:  # noqa: BLE001 - reported to the parent as an error record
                payload = json.dumps({"error": str(e)}).encode()
                data = struct.pack("<II", len(payload), 0) + payload
            with os.fdopen(w, "wb") as f:
                f.write(data)
            os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        out.write(struct.pack("<I", len(data)) + data)
        out.flush()


class EspeakSynth:
    """Client of the isolated worker; use as a context manager."""

    def __init__(self) -> None:
        try:
            import espeakng_loader  # noqa: F401
        except ImportError:
            raise DataError("the mini suite needs espeak-ng from PyPI: pip install espeakng-loader==0.2.4") from None
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "audiosaebench.data.espeak"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )

    def __enter__(self) -> EspeakSynth:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)

    def synth(self, u: Utterance) -> tuple[np.ndarray, int, list[tuple[str, int]], list[tuple[int, int, int]]]:
        """Return (int16 samples, sample rate, phone events, word events)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(u.__dict__) + "\n").encode())
        self.proc.stdin.flush()
        head = self.proc.stdout.read(4)
        if len(head) != 4:
            raise DataError("the espeak-ng worker died")
        data = self.proc.stdout.read(struct.unpack("<I", head)[0])
        n_meta, n_audio = struct.unpack_from("<II", data, 0)
        meta = json.loads(data[8 : 8 + n_meta])
        if "error" in meta:
            raise DataError(f"espeak-ng failed on {u}: {meta['error']}")
        audio = np.frombuffer(data[8 + n_meta : 8 + n_meta + n_audio], dtype=np.int16)
        return audio, int(meta["sr"]), [tuple(p) for p in meta["phones"]], [tuple(w) for w in meta["words"]]


def voice_available(voice: str) -> bool:
    import espeakng_loader

    base = voice.split("+")[0]
    return any(Path(espeakng_loader.get_data_path()).joinpath("lang").rglob(base))


if __name__ == "__main__":
    _worker()
