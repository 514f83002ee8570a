"""The leaderboard page in a real headless browser (Debian's chromium through Playwright)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from harness.report.figures import all_figures
from harness.report.html import render_html
from harness.types import Result, Signature

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def results():
    def rec(ds, metric, value, hib, role="candidate", ci=None, details=None):
        return Result(ds, metric, value, ci, hib, Signature("0", metric, {}, {"candidate": "f" * 64}, None, 0),
                      role=role, details=details or {})

    rows = []
    for ds, role, base in (("real", "reference", 0.5), ("alpha", "candidate", 0.3), (HOSTILE, "candidate", 0.9),
                           ("beta", "candidate", 0.6)):
        rows.append(rec(ds, "lexical/distinct-2", base, True, role, (base - 0.05, base + 0.05)))
        rows.append(rec(ds, "dup/exact-rate", 1 - base, False, role))
    rows.append(rec("alpha", "distance/c2st-tfidf", 0.9, False,
                    details={"most_synthetic_looking": [{"row": 1, "p_synthetic": 0.99, "text": HOSTILE}]}))
    return rows


@pytest.fixture(scope="module")
def page_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    rs = results()
    meta = {"reference": {"name": "real", "source": HOSTILE, "rows": 10},
            "candidates": [{"name": n, "rows": 10, "source": "x"} for n in ("alpha", HOSTILE, "beta")],
            "suite": {"name": "t", "description": HOSTILE}, "provenance": {"alpha": {"generator": HOSTILE}}}
    figs = all_figures(rs, meta, out / "figures")
    infos = {"lexical/distinct-2": {"summary": "d2", "range": "[0, 1]", "higher_is_better": True},
             "dup/exact-rate": {"summary": "dup", "range": "[0, 1)", "higher_is_better": False}}
    p = out / "index.html"
    p.write_text(render_html(rs, meta, infos, figs), encoding="utf-8")
    return p


def test_static_escaping(page_file):
    text = page_file.read_text()
    assert "<script>alert" not in text and "<img src=x" not in text
    assert text.count("<script>") == 1  # the page's own, allowed by its CSP hash
    assert "Content-Security-Policy" in text


def test_page_in_headless_chromium(page_file):
    chrome = chromium_path()
    if chrome is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make test` installs it (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    dialogs = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chrome, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page()
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(Path(page_file).as_uri())
        names = lambda: page.eval_on_selector_all(  # noqa: E731
            "#scorecard tbody tr td:first-child", "els => els.map(e => e.textContent)")
        assert len(names()) == 3  # one row per candidate; the reference is the target, not a row
        # the hostile dataset name is shown as text, not executed
        assert any(HOSTILE in n for n in names())
        header = page.locator("#scorecard th", has_text="Diversity")
        header.click()
        asc = names()
        header.click()
        desc = names()
        assert asc[0] == "alpha" and desc[0].startswith(HOSTILE)  # worse (0.3) first, better (0.9) first
        assert asc == list(reversed(desc))
        # families fold: a click on a family's summary hides its table
        table = page.locator("#family-lexical table").first
        assert table.is_visible()
        page.locator("#family-lexical summary").click()
        assert not table.is_visible()
        widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert widths and all(w > 0 for w in widths)  # every embedded figure loads
        example = page.locator("li", has_text="row 1 (p=0.99)")
        assert example.count() == 1 and "onerror" in example.inner_text()  # example text is inert, shown as text
        browser.close()
    assert dialogs == [] and errors == []


# ----------------------------------------------------------------------------- issue 21: no sideways scrolling

WINDOW = 1366


def _suite_page(tmp_path, folder: str, keep: int) -> Path:
    """index.html of a committed suite's records with its first ``keep`` candidates (stale records are fine
    here: only the layout is measured)."""
    import json

    from harness.report.write import metric_infos, ordered
    from tests.conftest import ROOT

    src = ROOT / "reports" / folder
    meta = json.loads((src / "run.json").read_text(encoding="utf-8"))
    meta["candidates"] = meta["candidates"][:keep]
    names = {c["name"] for c in meta["candidates"]}
    recs = [json.loads(x) for x in (src / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    rs = [Result.from_json(d) for d in recs if d.get("status") != "failed" and
          (d.get("role") == "reference" or d["dataset"] in names)]
    rs = ordered(rs, meta)
    p = tmp_path / f"{folder}-{keep}.html"
    p.write_text(render_html(rs, meta, metric_infos(rs), []), encoding="utf-8")
    return p


def test_scorecard_and_family_tables_fit_a_1366_pixel_window(tmp_path):
    """The demo page (reports/demo/index.html, as committed) and a 6-candidate suite page: the document and
    every table are at most the window's width at 1366 px, and the figures come after the tables."""
    from tests.conftest import ROOT

    chrome = chromium_path()
    if chrome is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make test` installs it (apt-get install chromium)")
        pytest.skip("chromium not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    pages = {"demo": ROOT / "reports" / "demo" / "index.html",
             "6 candidates": _suite_page(tmp_path, "intent-banking10", 6)}
    shots = Path(os.environ.get("SYNTHBENCH_SCREENSHOTS") or tmp_path)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chrome, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": WINDOW, "height": 900})
        for name, path in pages.items():
            page.goto(Path(path).as_uri())
            m = page.evaluate("""() => ({
                inner: window.innerWidth, doc: document.documentElement.scrollWidth,
                first: document.querySelector('table').getBoundingClientRect().right,
                firstId: document.querySelector('table').id,
                tables: Array.from(document.querySelectorAll('table')).map(t => t.getBoundingClientRect().right),
                columns: document.querySelectorAll('#scorecard tbody tr:first-child td').length,
                figure: (document.querySelector('figure') || {offsetTop: 1e9}).offsetTop,
                lastTable: Math.max(...Array.from(document.querySelectorAll('details.family')).map(
                    t => t.offsetTop + t.offsetHeight))})""")
            assert m["inner"] == WINDOW and m["firstId"] == "scorecard", (name, m)
            assert m["first"] <= WINDOW and max(m["tables"]) <= WINDOW and m["doc"] <= WINDOW, (name, m)
            assert m["figure"] >= m["lastTable"], (name, "figures come after the tables")
            page.screenshot(path=str(shots / f"page-{name.replace(' ', '-')}.png"))
        browser.close()
