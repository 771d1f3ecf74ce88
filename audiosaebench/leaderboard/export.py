"""Exports for papers: Markdown, CSV (long format), LaTeX (booktabs) and BibTeX."""

from __future__ import annotations

import csv
import io
from typing import Any

from audiosaebench.leaderboard.table import select
from audiosaebench.task import BENCHMARK_CITATION

FORMATS = ("md", "csv", "latex", "bibtex")


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "missing"
    if cell["value"] is None:
        return "null"
    ci = cell.get("ci")
    return f"{cell['value']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{cell['value']:.3f}"


def _md_escape(s: str) -> str:
    return str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _latex_escape(s: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(s).replace("\n", " "))


def export(table: dict[str, Any], fmt: str, **filters: str | None) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    entries, cols = select(table, **filters)
    cells = table["cells"]
    if fmt == "bibtex":
        return "\n\n".join([BENCHMARK_CITATION] + [e["bibtex"] for e in entries]) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["entry", "kind", "model", "hook", "d_sae", "task", "version", "suite", "data", "metric",
                    "higher_is_better", "value", "ci_low", "ci_high", "floor", "ceiling"])
        for e in entries:
            for c in cols:
                cell = cells[e["id"]].get(c["key"])
                if cell is None:
                    continue
                ci = cell.get("ci") or [None, None]
                w.writerow([e["id"], e["kind"], e["model"], e["hook"], e["d_sae"], c["task"], c["version"], c["suite"],
                            c["fingerprint"], c["main_score"], c["higher_is_better"], cell["value"], ci[0], ci[1],
                            cell["floor"], cell["ceiling"]])
        return buf.getvalue()
    head = ["entry", "kind", "model", "hook", "d_sae"] + [f"{c['label']} {c['main_score']} {'↑' if c['higher_is_better'] else '↓'}"
                                                         for c in cols]
    rows = [[e["name"], e["kind"], e["model"], e["hook"], str(e["d_sae"])] + [_cell_text(cells[e["id"]].get(c["key"])) for c in cols]
            for e in entries]
    if fmt == "md":
        out = ["| " + " | ".join(_md_escape(h) for h in head) + " |", "|" + "---|" * len(head)]
        out += ["| " + " | ".join(_md_escape(x) for x in r) + " |" for r in rows]
        return "\n".join(out) + "\n"
    head = [h.replace("↑", "$\\uparrow$").replace("↓", "$\\downarrow$") for h in head]
    out = [r"\begin{tabular}{" + "l" * 5 + "r" * len(cols) + "}", r"\toprule",
           " & ".join(_latex_escape(h).replace(r"\$\textbackslash{}uparrow\$", r"$\uparrow$")
                      .replace(r"\$\textbackslash{}downarrow\$", r"$\downarrow$") for h in head) + r" \\", r"\midrule"]
    out += [" & ".join(_latex_escape(x) for x in r) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"
