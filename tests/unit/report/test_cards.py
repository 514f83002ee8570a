"""docs/cards holds one card per declared metric, generated from its declaration; a missing, extra or stale
card fails here (regenerate with `synthbench metrics --cards docs/cards`)."""

from __future__ import annotations

from harness.report.cards import expected_cards, papers
from tests.conftest import ROOT

CARDS = ROOT / "docs" / "cards"
FIX = "run 'synthbench metrics --cards docs/cards'"


def test_every_metric_has_a_current_card_and_no_card_is_left_over():
    want = expected_cards()
    have = {p.name for p in CARDS.glob("*.md")}
    missing, extra = sorted(set(want) - have), sorted(have - set(want))
    assert not missing, f"missing cards {missing[:5]}: {FIX}"
    assert not extra, f"cards of metrics no longer declared {extra[:5]}: {FIX}"
    stale = [n for n, text in want.items() if (CARDS / n).read_text(encoding="utf-8") != text]
    assert not stale, f"stale cards {stale[:5]}: {FIX}"


def test_a_card_carries_what_the_declaration_says():
    from harness import metrics

    info = metrics.info("distance/mauve")
    text = expected_cards()["distance-mauve.md"]
    for part in ("| range | (0, 1] |", "↑ higher is better", "| cost | heavy |", "## Paper", "Pillutla et al.",
                 "## Validity row", "| topic-drift |", "Fidelity"):
        assert part in text, part
    assert info.size_dependent and "size dependence | yes" in text
    assert papers("Distinct-n. Li et al. (NAACL 2016) proposed it. Nothing here.") == [
        "Li et al. (NAACL 2016) proposed it."]


def test_docs_link_the_cards_and_the_scorecard_rule():
    index = (CARDS / "README.md").read_text(encoding="utf-8")
    assert "(lexical-distinct-2.md)" in index
    from harness.metrics.base import SCORECARD_RULE

    assert SCORECARD_RULE in (ROOT / "docs" / "scorecard.md").read_text(encoding="utf-8")
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 200


def test_relative_links_of_the_docs_resolve():
    """README.md, docs/*.md, docs/cards/README.md and reports/README.md: every relative link names a file
    that exists (the findings moved to reports/README.md; links must keep working)."""
    import re

    files = [ROOT / "README.md", ROOT / "reports" / "README.md", CARDS / "README.md", *(ROOT / "docs").glob("*.md")]
    broken = []
    for f in files:
        for target in re.findall(r"\]\(([^)\s]+)\)", f.read_text(encoding="utf-8")):
            path = target.split("#", 1)[0]
            if not path or re.match(r"[a-z]+:", path):
                continue
            if not (f.parent / path).exists():
                broken.append(f"{f.relative_to(ROOT)} -> {target}")
    assert not broken, broken
