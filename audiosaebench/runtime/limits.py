"""Sizes the user sets in the environment: memory memos and the state cache (0 turns the thing off)."""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
MB, GB = 1 << 20, 1 << 30


def from_env(name: str, default: str, unit: int, what: str) -> int:
    """Bytes: the number in ``$name`` (else ``default``) times ``unit``; 0 for a negative number, and
    0 with a warning for one that is not a finite number (``what`` is then off)."""
    raw = os.environ.get(name, default)
    try:
        return max(0, int(float(raw) * unit))
    except (ValueError, OverflowError):
        log.warning("%s=%r is not a number; %s is off", name, raw, what)
        return 0
