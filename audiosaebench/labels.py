"""Frame labels aligned with activation rows (a frame's label is the one covering its centre)."""

from __future__ import annotations

import numpy as np

from audiosaebench.data.phones import ARPABET, SILENCE

PHONE_INDEX = {p: i for i, p in enumerate(ARPABET)}
SILENCE_ID = -1


def frame_phone_ids(manifest, acts, adapter) -> np.ndarray:
    """Phone class id (index into ARPABET) per activation row; -1 for silence or no label.

    Uses the adapter's frame centres (Whisper: 0.02 t s; HuBERT family: (320 t + 200) / 16000 s) and
    the clip's phone intervals; frames whose centre lies after the last interval are silence.
    """
    if [c.clip_id for c in manifest.clips] != acts.clip_ids:
        raise ValueError("activations and manifest list different clips")
    out = np.full(acts.n_frames, SILENCE_ID, dtype=np.int16)
    offsets = acts.offsets
    for i, clip in enumerate(manifest.clips):
        n = int(offsets[i + 1] - offsets[i])
        if n == 0:
            continue
        phones = clip.labels.get("phones")
        if not phones:
            raise ValueError(f"clip {clip.clip_id} has no phone alignment")
        centres = adapter.frame_centres_s(n)
        starts = np.array([p[0] for p in phones])
        ends = np.array([p[1] for p in phones])
        labels = np.array([PHONE_INDEX.get(p[2], SILENCE_ID) if p[2] != SILENCE else SILENCE_ID for p in phones])
        j = np.searchsorted(starts, centres, side="right") - 1
        ok = (j >= 0) & (centres < ends[np.clip(j, 0, len(ends) - 1)])
        out[offsets[i] : offsets[i] + n] = np.where(ok, labels[np.clip(j, 0, len(labels) - 1)], SILENCE_ID)
    return out
