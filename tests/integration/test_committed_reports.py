"""Committed reports of suites that withhold text (``quote_text: false``, research-only data) hold numbers,
positions and labels only: no row of their data appears in report.md, leaderboard.md or index.html."""

from __future__ import annotations

import html
import re

import pytest

from tests.conftest import ROOT

WITHHOLDING = sorted(p for p in (ROOT / "suites").glob("*.yaml") if re.search(r"^quote_text:\s*false", p.read_text(),
                                                                              re.M))


def _norm(text: str) -> str:
    """Letters and digits only, lower-cased, single-spaced: Markdown or HTML escaping cannot hide a row."""
    return re.sub(r"[\W_]+", " ", text).lower().strip()


def _rows(suite_path):
    from harness.data.suite import load_dataset, load_suite

    suite = load_suite(str(suite_path))
    out = []
    for ds in [suite.reference, *suite.candidates] + ([suite.test] if suite.test else []):
        out += [t for t in load_dataset(ds, suite.normalize).texts]
    return suite.name, out


@pytest.mark.parametrize("suite_path", WITHHOLDING, ids=lambda p: p.stem)
def test_no_row_text_in_a_committed_report_of_a_withholding_suite(suite_path):
    name, texts = _rows(suite_path)
    folder = ROOT / "reports" / name
    if not folder.is_dir():
        pytest.skip(f"no committed report for {name}")
    words = 8  # a run of 8 words of a row, anywhere in a report, is a quoted row
    probes = {tuple(w[:words]) for w in (_norm(t).split() for t in texts) if len(w) >= words}
    assert probes
    for f in ("report.md", "leaderboard.md", "index.html"):
        path = folder / f
        if not path.exists():
            continue
        body = _norm(html.unescape(path.read_text(encoding="utf-8"))).split()
        runs = {tuple(body[i:i + words]) for i in range(len(body) - words + 1)}
        leaked = probes & runs
        assert not leaked, f"{path.relative_to(ROOT)} quotes {len(leaked)} row(s), e.g. {' '.join(next(iter(leaked)))!r}"
