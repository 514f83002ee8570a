"""Reports: tables and escaping are pure functions of result records."""

from __future__ import annotations

from harness.report.markdown import md_escape, render_markdown, render_terminal
from harness.types import Result, Signature


def rec(ds, metric, value, hib, role="candidate"):
    sig = Signature("0", metric, {}, {"candidate": ds * 8}, None, 0)
    return Result(ds, metric, value, None, hib, sig, role=role)


def test_hostile_names_are_inert():
    name = "<script>alert(1)</script>|**x**\x1b[31m"
    rs = [rec(name, "dup/exact-rate", 0.1, False), rec("b", "dup/exact-rate", 0.2, False)]
    meta = {"candidates": [{"name": name, "rows": 1}, {"name": "b", "rows": 1}]}
    md = render_markdown(rs, meta, {"dup/exact-rate": "x"})
    assert "<script>" not in md and "\x1b" not in md
    assert md_escape("a|b") == "a\\|b"
    assert "\x1b" not in render_terminal(rs, meta)


def test_size_warning_when_sizes_differ():
    rs = [rec("a", "lexical/distinct-2", 0.5, True), rec("b", "lexical/distinct-2", 0.6, True)]
    meta = {"candidates": [{"name": "a", "rows": 10}, {"name": "b", "rows": 300}],
            "size_dependent": ["lexical/distinct-2"]}
    assert "--sample-size" in render_markdown(rs, meta, {})
    meta["sample_size"] = 10
    assert "--sample-size N" not in render_markdown(rs, meta, {})


def test_ties_share_best_and_no_bold_when_all_equal():
    from harness.report.markdown import _table

    rs = [rec("a", "dup/exact-rate", 0.0, False), rec("b", "dup/exact-rate", 0.0, False),
          rec("c", "dup/exact-rate", 0.2, False), rec("a", "dup/near-rate", 0.1, False),
          rec("b", "dup/near-rate", 0.1, False)]
    _, best = _table(rs, ["a", "b", "c"], ["dup/exact-rate", "dup/near-rate"])
    assert best == {"dup/exact-rate": {"a", "b"}}


def test_wilson_edges():
    from harness.stats import wilson_ci

    assert wilson_ci(0, 250)[0] == 0.0 and wilson_ci(250, 250)[1] == 1.0
    lo, hi = wilson_ci(20, 100)
    assert 0.13 < lo < 0.2 < hi < 0.29
