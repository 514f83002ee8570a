"""The scorecard (issue 21): verdicts come from the records' 95% intervals only, by the declared rule; the
reports open with it; notes and warnings come one line per cause."""

from __future__ import annotations

from harness.report.markdown import render_markdown, render_terminal
from harness.report.notes import group_skipped, group_warnings
from harness.report.scorecard import scorecard
from harness.types import Result, Signature


def rec(ds, metric, value, ci=None, hib=True, role="candidate"):
    return Result(ds, metric, value, ci, hib, Signature("0", metric, {}, {"candidate": "f" * 64}, None, 0), role=role)


META = {"reference": {"name": "real", "rows": 100}, "sample_size": 100,
        "candidates": [{"name": n, "rows": 100} for n in ("a", "b", "c")]}


def verdicts(card, dim):
    return {c: card.cells[c][dim].verdict for c in card.candidates}


def test_overlapping_intervals_are_not_distinguishable_and_apart_they_decide():
    rs = [rec("a", "utility/tfidf-lr/accuracy", 0.97, (0.96, 0.98)),
          rec("b", "utility/tfidf-lr/accuracy", 0.88, (0.86, 0.90)),
          rec("c", "utility/tfidf-lr/accuracy", 0.89, (0.87, 0.91))]
    card = scorecard(rs, META)
    assert verdicts(card, "utility") == {"a": "better", "b": "worse", "c": "worse"}
    assert card.cells["a"]["utility"].beats == ["b", "c"] and card.cells["b"]["utility"].ties == ["c"]
    # lower is better: the direction of the record decides the side
    rs = [rec(d, "dup/exact-rate", v, ci, hib=False) for d, v, ci in
          (("a", 0.30, (0.25, 0.35)), ("b", 0.10, (0.05, 0.15)), ("c", 0.12, (0.02, 0.22)))]
    card = scorecard(rs, META)
    assert verdicts(card, "diversity") == {"a": "worse", "b": "better", "c": "better"}


def test_no_interval_means_no_test_and_a_middle_candidate_is_mixed():
    rs = [rec(d, "lexical/mattr", v) for d, v in (("a", 0.9), ("b", 0.5), ("c", 0.1))]
    card = scorecard(rs, META)
    assert set(verdicts(card, "diversity").values()) == {"not distinguishable"}
    assert card.no_interval["diversity"] == ["lexical/mattr"]
    rs = [rec(d, "semantic/vendi", v, (v - 1, v + 1)) for d, v in (("a", 10), ("b", 5), ("c", 1))]
    assert verdicts(scorecard(rs, META), "diversity") == {"a": "better", "b": "mixed", "c": "worse"}


def test_families_weigh_equally_whatever_their_number_of_variants():
    # a wins four lexical variants, b wins the one semantic metric: one family each, so a tie
    rs = []
    for k in range(1, 5):
        rs += [rec("a", f"lexical/distinct-{k}", 0.9, (0.85, 0.95)), rec("b", f"lexical/distinct-{k}", 0.5, (0.45, 0.55))]
    rs += [rec("a", "semantic/vendi", 5, (4, 6)), rec("b", "semantic/vendi", 9, (8, 10))]
    meta = {**META, "candidates": META["candidates"][:2]}
    card = scorecard(rs, meta)
    assert verdicts(card, "diversity") == {"a": "not distinguishable", "b": "not distinguishable"}
    (pair,) = card.pairs["diversity"]
    assert pair.families == {"lexical": 1, "semantic": -1} and len(pair.separating) == 5


def test_one_candidate_is_compared_with_the_reference_and_sizes_must_match():
    rs = [rec("real", "utility/tfidf-lr/accuracy", 0.95, (0.94, 0.96), role="reference"),
          rec("a", "utility/tfidf-lr/accuracy", 0.80, (0.78, 0.82)),
          rec("a", "distance/mauve", 0.5, (0.4, 0.6))]
    meta = {**META, "candidates": META["candidates"][:1]}
    card = scorecard(rs, meta)
    assert card.against == "reference" and verdicts(card, "utility") == {"a": "worse"}
    assert verdicts(card, "fidelity") == {"a": "not distinguishable"}  # the reference has no MAUVE of its own
    # a size-dependent metric is left out when the datasets were not compared at one size
    rs = [rec("a", "lexical/distinct-2", 0.9, (0.85, 0.95)), rec("b", "lexical/distinct-2", 0.5, (0.45, 0.55))]
    meta = {"candidates": [{"name": "a", "rows": 100}, {"name": "b", "rows": 900}],
            "size_dependent": ["lexical/distinct-2"]}
    card = scorecard(rs, meta)
    assert card.not_fair["diversity"] == ["lexical/distinct-2"] and not card.counted["diversity"]
    assert verdicts(card, "diversity") == {"a": "not distinguishable", "b": "not distinguishable"}


def test_the_reports_open_with_the_scorecard_and_missing_dimensions_are_named_once():
    rs = [rec("real", "lexical/distinct-2", 0.7, (0.65, 0.75), role="reference"),
          rec("a", "lexical/distinct-2", 0.9, (0.85, 0.95)), rec("b", "lexical/distinct-2", 0.5, (0.45, 0.55)),
          rec("c", "lexical/distinct-2", 0.52, (0.46, 0.56))]
    md = render_markdown(rs, META, {})
    lines = md.splitlines()
    assert lines[0].startswith("# synthbench report") and lines[2] == "## Scorecard"
    table = [x for x in lines[:12] if x.startswith("| a |")]
    assert table and "better than b, c" in table[0]
    assert md.count("Not measured") == 1 and "privacy & contamination" in md.split("Not measured")[1].split("\n")[0]
    assert md.index("## Scorecard") < md.index("## Metrics by family") < md.index("## Definitions")
    term = render_terminal(rs, META).splitlines()
    assert term[0].startswith("SCORECARD") and any(x.startswith("a ") and "better 2/2" in x for x in term[:6])


def test_not_computed_and_warnings_come_one_line_per_cause():
    everyone = ["real", "a", "b"]
    skipped = [(d, f"instr/m{k}", f"applies to instruction data; {d} is classification data")
               for d in everyone for k in range(7)]
    skipped += [(d, "format/invalid-rate", "no schema declared") for d in everyone]
    lines = group_skipped(skipped, everyone)
    assert len(lines) == 2
    assert lines[0].startswith("7 instruction faithfulness metrics") and lines[0].endswith("(all 3 datasets)")
    (two,) = group_skipped([(d, "format/invalid-rate", "no schema declared") for d in ("a", "b")], ["a", "b"])
    assert two.endswith("(both datasets)")
    warned = [(d, f"utility/tfidf-lr/{k}", f"dropped {n} of 1000 rows with labels absent from the test split: x")
              for d, n in (("a", 12), ("b", 3)) for k in ("accuracy", "macro-f1", "gap", "mix-gain")]
    (line,) = group_warnings(warned, everyone)
    assert line.startswith("a, b: dropped 12 of 1000 rows") and "4 utility metrics" in line and "other numbers on b" in line
