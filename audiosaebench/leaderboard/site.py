"""The static site: ``index.html`` (data inlined, so it works from file:// with no server or CDN)
plus ``data.json`` and ``leaderboard.csv``. Submitted strings reach the page only as JSON text
read by ``textContent`` or as escaped SVG text, never as markup."""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from audiosaebench.leaderboard.export import export


def _json_for_script(obj: Any) -> str:
    """JSON that cannot end its <script> element or open a comment: <, > and & become escapes."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


PALETTE = ("#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b45309", "#0e7490", "#be123c")


def _axes(title: str, y_label: str, x0: float, x1: float, y0: float, y1: float, w: int, h: int, pad: int) -> list[str]:
    e = html.escape
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{e(title)}">',
            f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad / 2}" y2="{h - pad}" stroke="#888"/>',
            f'<line x1="{pad}" y1="{pad / 2}" x2="{pad}" y2="{h - pad}" stroke="#888"/>',
            f'<text x="{w / 2}" y="{h - 8}" font-size="11" text-anchor="middle">L0 (speech test)</text>',
            f'<text x="12" y="{h / 2}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {h / 2})">{e(y_label)}</text>',
            f'<text x="{pad}" y="{h - pad + 14}" font-size="10">{x0:.4g}</text>',
            f'<text x="{w - pad / 2}" y="{h - pad + 14}" font-size="10" text-anchor="end">{x1:.4g}</text>',
            f'<text x="{pad - 4}" y="{h - pad}" font-size="10" text-anchor="end">{y0:.3g}</text>',
            f'<text x="{pad - 4}" y="{pad / 2 + 8}" font-size="10" text-anchor="end">{y1:.3g}</text>']


def _scatter(title: str, points: list[tuple[float, float, str, str | None]], y_label: str) -> str:
    """An SVG plot of (x = L0, y, label, series) points: each series (an architecture's trained SAEs)
    a coloured curve through its points in order of L0 with a legend; baselines (series None) grey dots."""
    w, h, pad = 340, 230, 40
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    x0, x1 = (x0 - 1, x1 + 1) if x1 - x0 < 1e-9 else (x0, x1)
    y0, y1 = (y0 - 0.05, y1 + 0.05) if y1 - y0 < 1e-9 else (y0, y1)
    sx = lambda v: pad + (v - x0) / (x1 - x0) * (w - 1.5 * pad)  # noqa: E731
    sy = lambda v: h - pad + (y0 - v) / (y1 - y0) * (h - 1.5 * pad)  # noqa: E731
    e = html.escape
    parts = _axes(title, y_label, x0, x1, y0, y1, w, h, pad)
    series = sorted({s for *_, s in points if s is not None})
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}
    for i, s in enumerate(series):
        line = sorted((x, y) for x, y, _, t in points if t == s)
        if len(line) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour[s]}" stroke-width="1.5"/>')
        parts.append(f'<text x="{w - pad / 2}" y="{pad / 2 + 10 + 12 * i}" font-size="10" text-anchor="end" '
                     f'fill="{colour[s]}">{e(s)}</text>')
    for x, y, label, arch in points:
        fill = "#999" if arch is None else colour[arch]
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{fill}"><title>{e(label)}: L0 {x:.3g}, '
                     f'{e(y_label)} {y:.3f}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def plots_html(table: dict[str, Any]) -> str:
    """One plot per (model, hook) and leaderboard column: main score against L0, a curve per architecture."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for e in table["entries"]:
        groups.setdefault((e["model"], e["hook"]), []).append(e)
    figs = []
    for (model, hook), entries in sorted(groups.items()):
        for col in table["columns"]:
            pts = []
            for e in entries:
                cell = table["cells"][e["id"]].get(col["key"])
                l0 = e["l0"].get(col["suite"])
                if cell and cell["value"] is not None and l0 is not None:
                    pts.append((float(l0), float(cell["value"]), e["name"], None if e["kind"] == "baseline" else e["architecture"]))
            if len(pts) < 2:
                continue
            cap = f"{model} · {hook} · {col['label']}"
            figs.append(f"<figure>{_scatter(cap, pts, col['main_score'])}<figcaption>{html.escape(cap)}</figcaption></figure>")
    return "\n".join(figs) or "<p>No (model, hook) has two entries with fidelity results yet.</p>"


def build_site(table: dict[str, Any], out: str | Path, dashboards: dict[str, str] | None = None) -> Path:
    """``dashboards``: {SAE sha256: link to its feature dashboards} (audiosaebench.dashboards.links), shown on the page only."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    template = resources.files("audiosaebench.leaderboard").joinpath("site/index.html").read_text(encoding="utf-8")
    parts = {"PLOTS": plots_html(table), "DATA": _json_for_script({**table, "dashboards": dashboards or {}})}
    page = re.sub(r"__(PLOTS|DATA)__", lambda m: parts[m.group(1)], template)  # one pass: inserted text is never rescanned
    (out / "index.html").write_text(page, encoding="utf-8")
    (out / "data.json").write_text(json.dumps(table, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "leaderboard.csv").write_text(export(table, "csv"), encoding="utf-8")
    return out / "index.html"
