"""Praat TextGrid (long text format) reading and writing: interval tiers only, as MFA writes them."""

from __future__ import annotations

import re
from pathlib import Path

from audiosaebench.errors import DataError

Interval = tuple[float, float, str]

_ITEM = re.compile(r'class\s*=\s*"IntervalTier"\s*name\s*=\s*"([^"]*)"(.*?)(?=item\s*\[\d+\]|\Z)', re.S)
_INTERVAL = re.compile(r'xmin\s*=\s*([-\d.eE+]+)\s*xmax\s*=\s*([-\d.eE+]+)\s*text\s*=\s*"((?:[^"]|"")*)"', re.S)


def read_textgrid(path: str | Path) -> dict[str, list[Interval]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read TextGrid {p}: {e}") from None
    if "ooTextFile" not in text:
        raise DataError(f"{p} is not a TextGrid (long text format)")
    tiers: dict[str, list[Interval]] = {}
    for name, body in _ITEM.findall(text):
        body = body.split("intervals: size", 1)[-1]
        tiers[name] = [(float(a), float(b), t.replace('""', '"')) for a, b, t in _INTERVAL.findall(body)]
    if not tiers:
        raise DataError(f"{p} has no interval tiers")
    return tiers


def write_textgrid(path: str | Path, tiers: dict[str, list[Interval]], xmax: float) -> None:
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {xmax:.6f}",
             "tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for i, (name, ivs) in enumerate(tiers.items(), 1):
        lines += [f"    item [{i}]:", '        class = "IntervalTier"', f'        name = "{name}"', "        xmin = 0",
                  f"        xmax = {xmax:.6f}", f"        intervals: size = {len(ivs)}"]
        for j, (a, b, t) in enumerate(ivs, 1):
            lines += [f"        intervals [{j}]:", f"            xmin = {a:.6f}", f"            xmax = {b:.6f}",
                      '            text = "{}"'.format(t.replace('"', '""'))]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
