"""Checking what ``audiosaebench dashboards`` is given, before anything is computed or written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from audiosaebench.errors import AudioSAEBenchError


class DashboardError(AudioSAEBenchError):
    """A feature list, output folder, option or explanation file the dashboards cannot use."""


def parse_features(spec: str, d_sae: int) -> np.ndarray:
    """``all``, ``N`` (features 0 .. N-1) or a comma-separated list ``i,j,...`` (one feature: ``i,``) as
    sorted unique indices; an index outside 0 .. d_sae-1 is an error."""
    s = str(spec).strip()
    if s == "all":
        return np.arange(d_sae, dtype=np.int64)
    parts = [p.strip() for p in s.split(",")]
    if not all(re.fullmatch(r"-?\d+", p) for p in parts if p) or not any(parts):
        raise DashboardError(f"--features {spec!r}: give all, N (the first N features) or a list i,j,...")
    if "," not in s:
        n = int(s)
        if not 1 <= n <= d_sae:
            raise DashboardError(f"--features {n}: the SAE has {d_sae} features (give 1 .. {d_sae}, all, or a list i,j,...)")
        return np.arange(n, dtype=np.int64)
    idx = sorted({int(p) for p in parts if p})
    bad = [i for i in idx if not 0 <= i < d_sae]
    if bad:
        raise DashboardError(f"feature index {bad[0]} is out of range: the SAE has {d_sae} features (0 .. {d_sae - 1})")
    return np.array(idx, dtype=np.int64)


def check_out(out: str | Path, overwrite: bool) -> Path:
    """The output folder: absent or empty, or with ``overwrite`` an earlier dashboards folder (it holds a
    dashboard.json; it is replaced whole at the end). Any other non-empty folder is refused, so a
    mistyped ``--out`` cannot delete it."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise DashboardError(f"--out {p}: exists and is not a folder")
    if p.is_dir() and any(p.iterdir()):
        if not overwrite:
            raise DashboardError(f"--out {p}: the folder is not empty (pass --overwrite to replace it)")
        if not (p / "dashboard.json").is_file():
            raise DashboardError(f"--out {p}: not a dashboards folder (no dashboard.json); --overwrite replaces only those")
    return p


def check_options(top: int, groups: int, per_group: int) -> None:
    if top < 1:
        raise DashboardError(f"--top {top}: must be at least 1")
    if groups < 1 or per_group < 0:
        raise DashboardError(f"--quantile-groups {groups} / --per-quantile {per_group}: need at least 1 group and 0 or "
                             "more examples per group")


def _explanation(row: Any, where: str) -> tuple[int, dict[str, Any]]:
    if not isinstance(row, dict) or isinstance(row.get("feature"), bool) or not isinstance(row.get("feature"), int):
        raise DashboardError(f"{where}: each details.features entry needs an integer 'feature'")
    text = row.get("text")
    if text is not None and not isinstance(text, str):
        raise DashboardError(f"{where}: feature {row['feature']}: 'text' must be a string")
    out: dict[str, Any] = {"text": text, "source": "autointerp"}
    for key in ("balanced_accuracy", "f1", "auroc", "train_f1"):
        v = row.get(key)
        out[key] = float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
    out["level"] = row.get("level") if isinstance(row.get("level"), str) else None
    labels = row.get("labels")
    out["labels"] = [str(x) for x in labels] if isinstance(labels, list) else []
    return int(row["feature"]), out


def read_autointerp(path: str | Path, sae_sha256: str) -> dict[int, dict[str, Any]]:
    """Per feature, the explanation of an ``autointerp`` result of this SAE (``details.features``)."""
    from audiosaebench.results.validation import read_result

    try:
        doc = read_result(path)
    except AudioSAEBenchError as e:
        raise DashboardError(f"--autointerp: {e}") from None
    where = f"--autointerp {path}"
    if doc["task"]["name"] != "autointerp":
        raise DashboardError(f"{where}: a result of task {doc['task']['name']!r}, not autointerp")
    if doc["sae"].get("sha256") != sae_sha256:
        raise DashboardError(f"{where}: made from another SAE (sha256 {str(doc['sae'].get('sha256'))[:12]}..., this SAE "
                             f"{sae_sha256[:12]}...)")
    rows = doc.get("details", {}).get("features")
    if not isinstance(rows, list):
        raise DashboardError(f"{where}: details.features is missing (not an autointerp result of the documented shape)")
    return dict(_explanation(r, where) for r in rows)
