"""The static pages: ``index.html`` (every selected feature's row inlined as JSON, shown a page at a
time, so it stays usable at 65,536 features) and ``feature.html`` (one page for all features: it
reads ``features/<index>.json`` named after the # in its address). Strings reach the pages only as
JSON read with ``textContent``, never as markup, escaped for the script element as the leaderboard does."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from audiosaebench.leaderboard.site import _json_for_script


def _template(name: str) -> str:
    return resources.files("audiosaebench.dashboards").joinpath(f"site/{name}").read_text(encoding="utf-8")


def columns(roles: list[str], with_detection: bool) -> list[dict[str, Any]]:
    cols: list[dict[str, Any]] = [{"key": "feature", "label": "feature", "num": True},
                                  {"key": "density", "label": "density", "num": True, "digits": 5,
                                   "title": "fraction of active frames, all test splits"}]
    cols += [{"key": f"density_{r}", "label": r.replace("_test", ""), "num": True, "digits": 5,
              "title": f"fraction of active frames, {r}"} for r in roles]
    cols += [{"key": "max", "label": "max act.", "num": True, "digits": 3},
             {"key": "best_label", "label": "best label"}, {"key": "best_f1", "label": "F1", "num": True, "digits": 3,
                                                            "title": "test F1 of the best label"},
             {"key": "explanation", "label": "explanation"}]
    if with_detection:
        cols.append({"key": "detection", "label": "detection", "num": True, "digits": 3,
                     "title": "autointerp detection balanced accuracy"})
    return cols


def index_row(doc: dict[str, Any], roles: list[str], with_detection: bool) -> list[Any]:
    best = doc["top_labels"][0] if doc["top_labels"] else None
    row = [doc["feature_index"], doc["density"]["all"], *[doc["density"][r] for r in roles], doc["max_activation"],
           f"{best['level']}: {best['label']}" if best else None, best["f1"] if best else None, doc["explanation"]["text"]]
    if with_detection:
        row.append(doc["explanation"].get("balanced_accuracy"))
    return row


def write_pages(out: Path, meta: dict[str, Any], cols: list[dict[str, Any]], rows: list[list[Any]]) -> Path:
    data = _json_for_script({"meta": meta, "columns": cols, "rows": rows})
    page = _template("index.html").replace("__DATA__", data, 1)  # the data is the last thing replaced: never rescanned
    (out / "index.html").write_text(page, encoding="utf-8")
    (out / "feature.html").write_text(_template("feature.html"), encoding="utf-8")
    return out / "index.html"
