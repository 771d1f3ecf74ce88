"""The leaderboard's data model: a pure function of validated submissions (no torch, no clock).

Rows are entries (one per submission folder). Columns are (task, task version, suite, data
fingerprint): the fingerprint hashes the result's manifest hashes and model weights, so results
whose task versions, manifests or model weights differ land in different columns and are never
ranked together. A missing result is a missing cell; nothing is averaged across columns.
"""

from __future__ import annotations

import re
from typing import Any

from audiosaebench.hashing import sha256_json
from audiosaebench.leaderboard.submission import Submission


def sparsity_metric(task: str) -> str | None:
    """The metric of ``task`` that measures an SAE's sparsity (its metadata's ``sparsity_metric``), if any:
    the x axis of the board's plots."""
    from audiosaebench.errors import TaskError
    from audiosaebench.registry import get_task

    try:
        return get_task(task).metadata.sparsity_metric
    except TaskError:
        return None


def data_fingerprint(doc: dict[str, Any]) -> str:
    model = doc["model"]
    return sha256_json({
        "manifests": sorted(s["manifest_sha256"] for s in doc["data"]["splits"]),
        "model": model.get("weights_sha256") or model.get("revision") or model["id"],
    })[:10]


def column_key(doc: dict[str, Any]) -> str:
    return f"{doc['task']['name']}@{doc['task']['version']}/{doc['data']['suite']}/{data_fingerprint(doc)}"


def _year(sub: Submission) -> str:
    years = sorted(d["run"]["finished"][:4] for d in sub.results)
    return years[-1] if years else ""


def bibtex_for(sub: Submission) -> str:
    """The entry's own BibTeX if it gave one, else a @misc generated from its metadata."""
    if sub.meta.get("bibtex"):
        return str(sub.meta["bibtex"]).strip()
    clean = lambda s: re.sub(r"[{}\\]", "", str(s))  # noqa: E731
    key = re.sub(r"[^A-Za-z0-9_-]", "_", sub.id)
    fields = [
        f"  title = {{{clean(sub.meta['name'])}}}",
        f"  author = {{{' and '.join(clean(a) for a in sub.meta['authors'])}}}",
        f"  year = {{{_year(sub)}}}",
        f"  note = {{AudioSAEBench entry {clean(sub.id)}; SAE sha256 {sub.meta['sae_sha256'][:16]}}}",
    ]
    if sub.meta.get("paper"):
        fields.append(f"  howpublished = {{{clean(sub.meta['paper'])}}}")
    return "@misc{" + key + ",\n" + ",\n".join(fields) + "\n}"


def build_table(subs: list[Submission]) -> dict[str, Any]:
    columns: dict[str, dict[str, Any]] = {}
    entries = []
    cells: dict[str, dict[str, Any]] = {}
    for sub in sorted(subs, key=lambda s: s.id):
        m = sub.meta
        row_cells: dict[str, Any] = {}
        l0: dict[str, float | None] = {}
        for doc in sorted(sub.results, key=column_key):
            key = column_key(doc)
            met = doc["metrics"]
            name = met["main_score"]
            columns.setdefault(key, {
                "key": key, "task": doc["task"]["name"], "version": doc["task"]["version"], "suite": doc["data"]["suite"],
                "fingerprint": data_fingerprint(doc), "main_score": name,
                "higher_is_better": bool(met["higher_is_better"][name]),
            })
            ci = doc["uncertainty"]["values"].get(name)
            row_cells[key] = {"value": met["values"][name], "ci": ci, "floor": met["floor"], "ceiling": met["ceiling"],
                              "reason": met["reasons"].get(name)}
            axis = sparsity_metric(doc["task"]["name"])
            if axis is not None and axis in met["values"]:
                l0[doc["data"]["suite"]] = met["values"][axis]
        cells[sub.id] = row_cells
        entries.append({
            "id": sub.id, "kind": m["kind"], "name": m["name"], "authors": list(m["authors"]),
            "model": m["model"]["id"], "model_revision": m["model"].get("revision"), "hook": m["hook_point"],
            "architecture": m["architecture"], "d_sae": m["d_sae"],
            "k": next((d["sae"].get("k") for d in sub.results if d["sae"].get("k") is not None), None),
            "suites": sorted({d["data"]["suite"] for d in sub.results}), "l0": l0,
            "license": m["license"], "checkpoint": m["checkpoint"]["location"], "paper": m.get("paper"),
            "bibtex": bibtex_for(sub), "sae_sha256": m["sae_sha256"], "verification": sub.verification,
            # what did the arithmetic (older results may not say)
            "hardware": sorted({d["provenance"].get("hardware") or "not recorded" for d in sub.results}),
        })
    ordered = sorted(columns.values(), key=lambda c: (c["task"], c["suite"], c["version"], c["fingerprint"]))
    # which columns need their fingerprint shown: a task+version+suite with several data versions
    seen: dict[tuple, int] = {}
    for c in ordered:
        seen[(c["task"], c["version"], c["suite"])] = seen.get((c["task"], c["version"], c["suite"]), 0) + 1
    for c in ordered:
        multi = seen[(c["task"], c["version"], c["suite"])] > 1
        c["label"] = f"{c['task']} {c['version']} ({c['suite']}{', data ' + c['fingerprint'] if multi else ''})"
    doc = {"schema": "audiosaebench-leaderboard-1", "entries": entries, "columns": ordered, "cells": cells}
    doc["inputs_sha256"] = sha256_json(doc)
    return doc


def select(table: dict[str, Any], model: str | None = None, hook: str | None = None, suite: str | None = None,
           task: str | None = None) -> tuple[list[dict], list[dict]]:
    """Entries and columns after the same filters the site offers (None = all)."""
    entries = [e for e in table["entries"] if (model is None or e["model"] == model) and (hook is None or e["hook"] == hook)]
    cols = [c for c in table["columns"] if (suite is None or c["suite"] == suite) and (task is None or c["task"] == task)]
    used = {k for e in entries for k in table["cells"][e["id"]]}
    return entries, [c for c in cols if c["key"] in used]
