"""The leaderboard: a pure function of validated results; exports; the page in headless Chromium."""

from __future__ import annotations

import csv
import io
import os
import re
import shutil

import pytest

from audiosaebench.cli import main
from audiosaebench.leaderboard.export import export
from audiosaebench.leaderboard.site import build_site
from audiosaebench.leaderboard.submission import load_submissions
from audiosaebench.leaderboard.table import build_table
from audiosaebench.registry import get_task
from tests import factories as fx

HOSTILE = "<script>alert(1)</script>"
FIDELITY = get_task("fidelity").metadata.version  # the installed version, which results get by default


@pytest.fixture
def board(tmp_path):
    root = tmp_path / "submissions"
    root.mkdir()
    alpha = [fx.result_doc("fidelity", sae_sha="1" * 64, value=0.9, l0=30.0), fx.result_doc("coverage", sae_sha="1" * 64, value=0.6)]
    for doc in alpha:  # newer results record what computed them; older ones (the rest here) do not
        doc["provenance"].update(hardware="Test CPU <b>9000</b>", torch_threads=2)
    fx.write_submission(root, "alpha", alpha,
                        bibtex="@article{alpha2026,\n  title={Alpha SAEs},\n  author={Ann Alpha},\n  year={2026}\n}")
    fx.write_submission(root, "beta", [fx.result_doc("fidelity", sae_sha="2" * 64, value=0.7, l0=12.0)],
                        name=HOSTILE, authors=["</script><img src=x onerror=alert(2)>", "B & B_{x}"])
    fx.write_submission(root, "random-baseline", [fx.result_doc("fidelity", sae_sha="3" * 64, value=0.1, l0=32.0,
                                                                kind="baseline"),
                                                  # a task that cannot apply: null with its reason, shown as n/a
                                                  fx.result_doc("coverage", sae_sha="3" * 64, value=None, kind="baseline")])
    # same task and suite, other manifests (another espeak build): a separate column, never ranked with the rest
    fx.write_submission(root, "gamma", [fx.result_doc("fidelity", sae_sha="4" * 64, value=0.99, manifest="f" * 64)])
    # an older task version: loads (with a warning), lands in its own column
    fx.write_submission(root, "delta", [fx.result_doc("fidelity", version="0.9.0", sae_sha="5" * 64, value=0.95)])
    _verified(root / "alpha")
    return root


def _verified(folder):
    """A verification record that passed and names the folder's current result files."""
    import json

    from audiosaebench.hashing import sha256_file

    hashes = {p.name: sha256_file(p) for p in sorted((folder / "results").glob("*.json"))}
    (folder / "verification.json").write_text(json.dumps({"verified": True, "results_sha256": hashes, "tasks": []}))


def test_table_separates_versions_and_data_and_keeps_missing_cells_missing(board):
    t = build_table(load_submissions(board))
    fid = [c for c in t["columns"] if c["task"] == "fidelity"]
    assert len(fid) == 3  # the installed version on two data versions, and 0.9.0
    assert {c["version"] for c in fid} == {FIDELITY, "0.9.0"}
    assert sum("data " in c["label"] for c in fid) == 2
    (cov,) = [c for c in t["columns"] if c["task"] == "coverage"]
    assert cov["key"] not in t["cells"]["beta"]  # missing, not zero, not averaged
    md = export(t, "md")
    beta_line = next(line for line in md.splitlines() if "&lt;script&gt;" in line)
    assert "missing" in beta_line
    assert [e["kind"] for e in t["entries"] if e["id"] == "random-baseline"] == ["baseline"]
    hardware = {e["id"]: e["hardware"] for e in t["entries"]}
    assert hardware["alpha"] == ["Test CPU <b>9000</b>"] and hardware["beta"] == ["not recorded"]


def test_build_is_a_pure_function_of_the_results(board, tmp_path):
    a = build_site(build_table(load_submissions(board)), tmp_path / "a").parent
    shutil.copytree(board, tmp_path / "copy" / "submissions")
    b = build_site(build_table(load_submissions(tmp_path / "copy" / "submissions")), tmp_path / "b").parent
    for name in ("index.html", "data.json", "leaderboard.csv"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_page_never_contains_submitted_markup(board, tmp_path):
    page = build_site(build_table(load_submissions(board)), tmp_path / "site").read_text()
    assert HOSTILE not in page and "<img src=x" not in page
    assert re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) is None  # nothing fetched: no CDN
    assert page.count("<svg") >= 1  # metric-vs-L0 plot for whisper-tiny.en layer 2


def test_exports(board, tmp_path, capsys):
    t = build_table(load_submissions(board))
    rows = list(csv.DictReader(io.StringIO(export(t, "csv"))))
    assert {r["entry"] for r in rows} == {"alpha", "beta", "random-baseline", "gamma", "delta"}
    assert next(r for r in rows if r["entry"] == "alpha" and r["task"] == "coverage")["value"] == "0.6"
    latex = export(t, "latex")
    assert r"splice\_recovered" in latex and "splice_recovered" not in latex  # escaped for TeX
    assert "<script>" in latex  # a hostile name is plain text in TeX
    assert latex.startswith(r"\begin{tabular}") and r"\bottomrule" in latex
    bib = export(t, "bibtex")
    assert "@misc{audiosaebench," in bib and "@article{alpha2026," in bib
    assert "author = {</script><img src=x onerror=alert(2)> and B & B_x}" in bib
    only = export(t, "md", task="coverage")
    assert "fidelity" not in only.splitlines()[0]
    assert main(["leaderboard", "export", "--format", "md", "--submissions", str(board), "--task", "coverage"]) == 0
    assert capsys.readouterr().out == only
    assert main(["leaderboard", "build", "--submissions", str(board), "--out", str(tmp_path / "lb")]) == 0
    assert (tmp_path / "lb" / "index.html").exists()


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("AUDIOSAEBENCH_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromedriver are required here (.ci/run installs them)")
        pytest.skip("chromium / chromedriver not installed (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_page_in_headless_chromium(board, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = build_site(build_table(load_submissions(board)), tmp_path / "site")
    drv = _browser()
    try:
        drv.get(page.as_uri())
        rows = drv.find_elements(By.CSS_SELECTOR, "#board tbody tr")
        assert len(rows) == 5
        # the hostile name renders as text, and nothing ran
        beta = drv.find_element(By.CSS_SELECTOR, 'tr[data-id="beta"] td div')
        assert beta.text == HOSTILE
        with pytest.raises(NoAlertPresentException):
            drv.switch_to.alert.text  # noqa: B018
        # sorting by the main fidelity column: higher is better, so descending, missing last
        col = next(th for th in drv.find_elements(By.CSS_SELECTOR, "#board thead th")
                   if th.text.startswith(f"fidelity {FIDELITY}") and "data" in th.text
                   and drv.execute_script("return arguments[0].dataset.key", th).endswith(_fp(board, "alpha")))
        col.find_element(By.TAG_NAME, "button").click()
        ids = [r.get_attribute("data-id") for r in drv.find_elements(By.CSS_SELECTOR, "#board tbody tr")]
        assert ids[:3] == ["alpha", "beta", "random-baseline"], ids
        th = next(t for t in drv.find_elements(By.CSS_SELECTOR, "#board thead th") if t.text.startswith(f"fidelity {FIDELITY}")
                  and "data" in t.text and drv.execute_script("return arguments[0].dataset.key", t).endswith(_fp(board, "alpha")))
        assert th.get_attribute("aria-sort") == "descending"
        th.find_element(By.TAG_NAME, "button").click()
        ids = [r.get_attribute("data-id") for r in drv.find_elements(By.CSS_SELECTOR, "#board tbody tr")]
        assert ids[:3] == ["random-baseline", "beta", "alpha"], ids  # ascending; missing cells still last
        assert "baseline" in drv.find_element(By.CSS_SELECTOR, 'tr[data-id="random-baseline"]').get_attribute("class")
        # filter by task: only coverage columns remain
        Select(drv.find_element(By.ID, "f-task")).select_by_value("coverage")
        heads = [t.text for t in drv.find_elements(By.CSS_SELECTOR, "#board thead th")][7:]
        assert heads and all(h.startswith("coverage") for h in heads), heads
        na = drv.find_element(By.CSS_SELECTOR, 'tr[data-id="random-baseline"] td.missing')
        assert na.text.startswith("n/a") and "undefined here" in na.text, na.text
        missing = drv.find_element(By.CSS_SELECTOR, 'tr[data-id="beta"] td.missing')
        assert missing.text == "missing"
        # verified / self-reported per row, and a filter on it
        status = {r.get_attribute("data-id"): r.find_elements(By.TAG_NAME, "td")[6].text
                  for r in drv.find_elements(By.CSS_SELECTOR, "#board tbody tr")}
        assert status["alpha"] == "verified" and status["beta"] == "self-reported", status
        Select(drv.find_element(By.ID, "f-verification")).select_by_value("verified")
        ids = [r.get_attribute("data-id") for r in drv.find_elements(By.CSS_SELECTOR, "#board tbody tr")]
        assert ids == ["alpha"], ids
        cite = drv.find_element(By.CSS_SELECTOR, 'tr[data-id="alpha"] details pre').get_attribute("textContent")
        assert "results computed on: Test CPU <b>9000</b>" in cite  # as text, like every submitted string
        errors = [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == [], errors
    finally:
        drv.quit()


def _fp(board, sub_id):
    from audiosaebench.leaderboard.table import data_fingerprint

    (s,) = [s for s in load_submissions(board) if s.id == sub_id]
    return data_fingerprint(next(d for d in s.results if d["task"]["name"] == "fidelity"))


def test_the_committed_site_is_a_fresh_build_of_the_committed_submissions(tmp_path):
    """leaderboard/ is served as it is: it must be exactly what `leaderboard build` makes of submissions/."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    fresh = tmp_path / "site"
    assert main(["leaderboard", "build", "--submissions", str(root / "submissions"), "--out", str(fresh)]) == 0
    committed = root / "leaderboard"
    names = sorted(p.name for p in fresh.iterdir())
    assert sorted(p.name for p in committed.iterdir()) == names
    stale = [n for n in names if (committed / n).read_bytes() != (fresh / n).read_bytes()]
    assert not stale, (f"leaderboard/{stale[0]} differs from a fresh build: run `audiosaebench leaderboard build "
                       "--out leaderboard` and commit it")


def test_plots_draw_a_curve_per_architecture_and_baselines_as_grey_dots():
    from audiosaebench.leaderboard.site import plots_html

    def entry(i: str, arch: str, kind: str, l0: float) -> dict:
        return {"id": i, "model": "m", "hook": "h", "name": i, "kind": kind, "architecture": arch, "l0": {"mini": l0}}

    entries = [entry("t8", "topk", "reference", 8), entry("t32", "topk", "reference", 32), entry("t16", "topk", "reference", 16),
               entry("s1", "standard", "reference", 20), entry("s3", "standard", "reference", 10),
               entry("rand", "topk", "baseline", 32)]
    values = {"t8": 0.5, "t16": 0.6, "t32": 0.7, "s1": 0.4, "s3": 0.3, "rand": 0.0}
    col = {"key": "fidelity/mini", "suite": "mini", "label": "fidelity", "main_score": "splice_recovered"}
    table = {"entries": entries, "columns": [col], "cells": {i: {col["key"]: {"value": v}} for i, v in values.items()}}
    page = plots_html(table)
    lines = re.findall(r'<polyline points="([^"]+)"', page)
    assert len(lines) == 2  # topk and standard; the baseline is on no curve
    xs = [[float(p.split(",")[0]) for p in line.split()] for line in lines]
    assert sorted(map(len, xs)) == [2, 3] and all(x == sorted(x) for x in xs)  # in order of L0
    assert page.count('fill="#999"') == 1 and ">topk</text>" in page and ">standard</text>" in page
