"""Links from the leaderboard to dashboards: ``leaderboard build --dashboards DIR`` (repeatable).

A dashboards folder holds ``index.html`` and ``dashboard.json`` (written by ``audiosaebench
dashboards``) naming the SAE's sha256; the leaderboard links the entry whose ``sae_sha256`` matches.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from audiosaebench import untrusted
from audiosaebench.dashboards.inputs import DashboardError

MANIFEST = "dashboard.json"
FORMAT = "audiosaebench-dashboards-1"
_SHA = re.compile(r"^[0-9a-f]{64}$")


def dashboard_sha256(folder: str | Path) -> str:
    """The sha256 of the SAE whose dashboards ``folder`` holds (from its dashboard.json)."""
    p = Path(folder)
    if not (p / "index.html").is_file():
        raise DashboardError(f"--dashboards {p}: no index.html there (write it with `audiosaebench dashboards`)")
    doc = untrusted.read_json(p / MANIFEST, DashboardError, max_bytes=1 << 20)
    sha = doc.get("sae_sha256") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(sha, str) or not _SHA.match(sha):
        raise DashboardError(f"--dashboards {p}: {MANIFEST} is not a dashboards manifest with an SAE sha256")
    return sha


def href(folder: str | Path, site_out: str | Path) -> str:
    """``folder``'s index.html relative to the leaderboard folder ``site_out``, as a URL path (never a scheme)."""
    target = Path(folder).resolve() / "index.html"
    rel = Path(os.path.relpath(target, Path(site_out).resolve())).as_posix()
    url = quote(rel, safe="/._-~")
    return url if url.startswith(("./", "../")) else "./" + url


def dashboard_links(folders: Sequence[str | Path], site_out: str | Path) -> dict[str, str]:
    """{SAE sha256: link to its dashboards} for the leaderboard built into ``site_out``."""
    links: dict[str, str] = {}
    for f in folders:
        sha = dashboard_sha256(f)
        if sha in links:
            raise DashboardError(f"--dashboards {f}: a second dashboards folder for SAE {sha[:12]}...")
        links[sha] = href(f, site_out)
    return links
