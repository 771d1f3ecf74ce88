"""What each unit attempt left behind: ``<out>/grid/units/<unit id>.json``, written atomically when the
attempt ends (done, failed, or skipped because a unit it needs failed).

A record never makes a unit done: results, checkpoints and store entries do (see
:mod:`audiosaebench.grid.plan`). Records say which units failed, with what error, under which
config (a failure recorded under another config does not count), and how long each took.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audiosaebench import atomic

MAX_RECORD_BYTES = 1 << 20
MAX_TRACEBACK_CHARS = 20_000


def record_path(state_dir: str | Path, unit_id: str) -> Path:
    return Path(state_dir) / "units" / f"{unit_id}.json"


def write_record(state_dir: str | Path, unit_id: str, config_sha256: str, status: str, *, seconds: float,
                 error: str | None = None, traceback: str | None = None, summary: dict[str, Any] | None = None) -> dict:
    rec = {"unit": unit_id, "config_sha256": config_sha256, "status": status, "seconds": round(seconds, 3),
           "error": error, "traceback": (traceback or "")[-MAX_TRACEBACK_CHARS:] or None, "summary": summary or {},
           "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "host": socket.gethostname(),
           "pid": os.getpid()}
    atomic.write_text(record_path(state_dir, unit_id), json.dumps(rec, indent=1, sort_keys=True) + "\n")
    return rec


def read_record(state_dir: str | Path, unit_id: str) -> dict[str, Any] | None:
    """The unit's last record, or None when there is none or it cannot be read (a record is advisory)."""
    from audiosaebench import untrusted
    from audiosaebench.errors import AudioSAEBenchError

    path = record_path(state_dir, unit_id)
    if not path.exists():
        return None
    try:
        rec = untrusted.read_json(path, max_bytes=MAX_RECORD_BYTES)
    except AudioSAEBenchError:
        return None
    return rec if isinstance(rec, dict) and isinstance(rec.get("status"), str) else None
