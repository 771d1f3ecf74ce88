"""Phone classes: 39 stress-less ARPAbet phones (CMUdict's set) plus silence.

Two sources map into them: Montreal Forced Aligner / CMUdict labels (``AH0`` -> ``AH``; ``sil``,
``sp``, ``spn`` and the empty label -> silence) and espeak-ng phoneme mnemonics (table below,
accent-independent; ``;`` is espeak's palatalisation marker and extends the previous phone).
"""

from __future__ import annotations

import re

from audiosaebench.errors import DataError

ARPABET = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH",
    "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V",
    "W", "Y", "Z", "ZH",
)
SILENCE = "sil"
FRICATIVES = ("F", "V", "TH", "DH", "S", "Z", "SH", "ZH", "HH")
VOWELS = ("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW")
_SILENCES = {"", "sil", "sp", "spn", "<eps>", "sil_s", "sil_b"}

ESPEAK_TO_ARPABET = {
    # vowels
    "0": "AA", "A:": "AA", "A@": "AA", "aa": "AE", "a": "AE", "a#": "AH", "@": "AH", "@2": "AH",
    "@5": "AH", "V": "AH", "3": "ER", "3:": "ER", "VR": "ER", "E": "EH", "e": "EH", "e@": "EH",
    "eI": "EY", "I": "IH", "I#": "IH", "I2": "IH", "IR": "IH", "i@": "IH", "i@3": "IH", "i": "IY",
    "i:": "IY", "O": "AO", "O2": "AO", "O:": "AO", "O@": "AO", "o@": "AO", "OI": "OY", "oU": "OW",
    "o": "OW", "U": "UH", "U@": "UH", "u:": "UW", "u": "UW", "aI": "AY", "aI2": "AY", "aI3": "AY",
    "aI@": "AY", "aU": "AW", "aU@": "AW", "@L": "L",
    # consonants
    "p": "P", "b": "B", "t": "T", "t#": "T", "t2": "T", "t[": "T", "?": "T", "d": "D", "k": "K",
    "g": "G", "x": "K", "tS": "CH", "dZ": "JH", "f": "F", "v": "V", "T": "TH", "D": "DH", "s": "S",
    "z": "Z", "S": "SH", "Z": "ZH", "h": "HH", "m": "M", "n": "N", "n-": "N", "N": "NG", "l": "L",
    "l/": "L", "r": "R", "r-": "R", "j": "Y", "w": "W", "w#": "W", "hw": "W",
    # pauses
    "_": SILENCE, "_:": SILENCE, "_!": SILENCE, "_|": SILENCE, "_^_": SILENCE,
}
ESPEAK_MODIFIERS = {";"}


def from_mfa(label: str) -> str:
    lab = label.strip()
    if lab.lower() in _SILENCES:
        return SILENCE
    base = re.sub(r"\d$", "", lab.upper())
    if base not in ARPABET:
        raise DataError(f"unknown ARPAbet phone label {label!r} in an alignment")
    return base


def from_espeak(name: str) -> str | None:
    """Map an espeak phoneme event name; None for a modifier that extends the previous phone."""
    n = name.lstrip("'").lstrip(",").strip()
    if n in ESPEAK_MODIFIERS:
        return None
    if n not in ESPEAK_TO_ARPABET:
        raise DataError(f"espeak phoneme {name!r} has no ARPAbet mapping (add it to ESPEAK_TO_ARPABET)")
    return ESPEAK_TO_ARPABET[n]
