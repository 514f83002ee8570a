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
            "#leaderboard tbody tr td:first-child", "els => els.map(e => e.textContent)")
        assert len(names()) == 4
        # the hostile dataset name is shown as text, not executed
        assert any(HOSTILE in n for n in names())
        header = page.locator("#leaderboard th", has_text="lexical/distinct-2")
        header.click()
        asc = names()
        header.click()
        desc = names()
        assert asc[0] == "alpha" and desc[0].startswith(HOSTILE)  # 0.3 lowest, 0.9 highest
        assert asc == list(reversed(desc))
        widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert widths and all(w > 0 for w in widths)  # every embedded figure loads
        assert page.locator("li", has_text="onerror").count() == 1  # example text is inert
        browser.close()
    assert dialogs == [] and errors == []
