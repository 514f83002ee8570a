"""synthbench validate: corruptions do what they say, Spearman intervals, FAIL verdicts, end to end."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from harness.analysis import validity as V
from harness.data.load import FieldMap, load_corpus
from harness.metrics.base import metric
from harness.metrics.direct.duplicates import jaccard, normalise, shingles
from harness.metrics.direct.lexical import tokenize
from harness.types import Corpus
from tests.conftest import shared


@pytest.fixture(scope="module")
def bbc():
    return load_corpus("builtin:bbc-news", FieldMap())


@pytest.fixture(scope="module")
def parts(bbc):
    """A clean sample of 200 BBC articles and the sources a corruption may draw from (all disjoint; BBC News
    holds verbatim duplicate articles, so it is deduplicated first)."""
    first = {}
    for i, t in enumerate(bbc.texts):
        first.setdefault(normalise(t), i)
    bbc = V.take(bbc, sorted(first.values()))
    layout = V.plan_layout(bbc, None, None, None, sample_size=200, test_size=150, seed=0)
    idx = np.random.default_rng(5).permutation(len(layout.pool))
    sample = V.take(layout.pool, np.sort(idx[:200]), name="sample")
    pool = V.take(layout.pool, np.sort(idx[200:]), name="pool")
    other = load_corpus(str(shared("ag_news_real/test.jsonl")), FieldMap())
    other = V.take(other, range(500), name="ag")
    return sample, V.Sources(pool=pool, reference=layout.reference, test=layout.test, other=other)


def _run(name, sample, sources, severity=0.25, seed=1):
    return V.corrupt(name, sample, severity, np.random.default_rng(seed), sources)


def test_layout_parts_are_disjoint():
    labels = tuple("abcd"[i % 4] for i in range(1000))
    c = Corpus("d", "d", "classification", tuple(f"row {i}" for i in range(1000)), labels)
    lay = V.plan_layout(c, None, None, None, sample_size=200, test_size=150, seed=0)
    parts = [set(lay.pool.texts), set(lay.reference.texts), set(lay.test.texts)]
    assert len(lay.test) == 150 and len(lay.reference) == 200 and len(lay.pool) == 400
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    cells, not_run = V.build_cells(lay, ["exact-dup", "topic-drift"], [0, 0.5], 2, 100, 0)
    assert not_run == {"topic-drift": "needs --other (rows of another dataset)"}
    assert [x.name for x in cells] == ["clean#r0", "exact-dup@0.5#r0", "clean#r1", "exact-dup@0.5#r1"]
    assert set(cells[0].corpus.texts) <= parts[0] and cells[0].corpus.texts != cells[2].corpus.texts


def test_exact_duplicates_share_is_exact(parts):
    sample, src = parts
    assert len({normalise(t) for t in sample.texts}) == len(sample)  # this sample has no duplicate to start with
    out = _run("exact-dup", sample, src, 0.25)
    c = out.corpus
    assert len(c) == len(sample) and len(out.rows) == 50
    kept = [i for i in range(len(c)) if i not in set(out.rows)]
    kept_rows = {(c.texts[i], c.labels[i]) for i in kept}
    assert all((c.texts[i], c.labels[i]) in kept_rows for i in out.rows)  # verbatim copies, labels included
    assert all(c.texts[i] == sample.texts[i] for i in kept)
    from harness.metrics import get
    from harness.metrics.base import Context

    assert get("dup/exact-rate")(Context(c)).value == pytest.approx(0.25)


def test_near_duplicates_are_close_but_not_exact(parts):
    sample, src = parts
    out = _run("near-dup", sample, src, 0.5)
    c = out.corpus
    assert len(out.rows) == 100
    kept = [i for i in range(len(c)) if i not in set(out.rows)]
    norm_kept = {normalise(c.texts[i]) for i in kept}
    sh_kept = [shingles(c.texts[i], 5) for i in kept]
    for i in out.rows:
        assert normalise(c.texts[i]) not in norm_kept
        s = shingles(c.texts[i], 5)
        assert max(jaccard(s, k) for k in sh_kept) >= 0.8
    from harness.metrics import get
    from harness.metrics.base import Context

    assert get("dup/near-rate")(Context(c)).value >= 0.5 - 0.02
    assert get("dup/exact-rate")(Context(c)).value == 0.0


def test_near_duplicates_of_short_texts_are_not_exact_duplicates():
    """Banking77 queries are ~12 words: two edited copies of one row must not coincide."""
    banking = load_corpus(str(shared("banking77_real/test.jsonl")), FieldMap())
    first = {}
    for i, t in enumerate(banking.texts):
        first.setdefault(normalise(t), i)
    sample = V.take(banking, sorted(first.values())[:400])
    from harness.metrics import get
    from harness.metrics.base import Context

    for seed in range(3):
        out = V.corrupt("near-dup", sample, 0.5, np.random.default_rng(seed), V.Sources())
        assert get("dup/exact-rate")(Context(out.corpus)).value == 0.0
        assert get("dup/near-rate")(Context(out.corpus)).value >= 0.5


def test_small_edit_on_short_texts_stays_near():
    banking = load_corpus(str(shared("banking77_real/test.jsonl")), FieldMap())
    rng = np.random.default_rng(0)
    for t in banking.texts[:300]:
        e = V.small_edit(t, rng)
        assert normalise(e) != normalise(t)
        assert jaccard(shingles(e, 5), shingles(t, 5)) >= 0.8
        assert len(tokenize(e)) == len(tokenize(t)) or e == t + t[-1]


def test_label_noise_changes_exactly_k_labels(parts):
    sample, src = parts
    out = _run("label-noise", sample, src, 0.1)
    changed = [i for i in range(len(sample)) if out.corpus.labels[i] != sample.labels[i]]
    assert changed == list(out.rows) and len(changed) == 20
    assert out.corpus.texts == sample.texts


def test_class_drop_removes_the_classes(parts):
    sample, src = parts
    out = _run("class-drop", sample, src, 0.25)  # ceil(0.25 * 5) = 2 of the 5 BBC labels
    before, after = set(sample.labels), set(out.corpus.labels)
    assert len(before) == 5 and len(after) == 3 and after < before
    assert len(out.corpus) == len(sample)
    gone = before - after
    assert sorted(out.rows) == [i for i, lab in enumerate(sample.labels) if lab in gone]
    pool_rows = set(zip(src.pool.texts, src.pool.labels))
    assert all((out.corpus.texts[i], out.corpus.labels[i]) in pool_rows for i in out.rows)


def test_truncation_keeps_a_third_as_prefix(parts):
    sample, src = parts
    out = _run("truncation", sample, src, 0.25)
    assert len(out.rows) == 50
    for i in out.rows:
        t, o = out.corpus.texts[i], sample.texts[i]
        assert o.startswith(t) and len(t) < len(o)
        assert len(tokenize(t)) == math.ceil(len(tokenize(o)) / 3)


def test_test_and_reference_copies_are_verbatim(parts):
    sample, src = parts
    for name, donor in (("test-copy", src.test), ("reference-copy", src.reference)):
        out = _run(name, sample, src, 0.25)
        rows = set(zip(donor.texts, donor.labels))
        assert len(out.rows) == 50
        assert all((out.corpus.texts[i], out.corpus.labels[i]) in rows for i in out.rows)
        assert len({out.corpus.texts[i] for i in out.rows}) == 50  # distinct donor rows


def test_topic_drift_keeps_labels(parts):
    sample, src = parts
    out = _run("topic-drift", sample, src, 0.5)
    assert out.corpus.labels == sample.labels
    ag = set(src.other.texts)
    assert all(out.corpus.texts[i] in ag for i in out.rows) and len(out.rows) == 100


def test_shuffled_words_keep_the_bag_of_words(parts):
    sample, src = parts
    out = _run("shuffled-words", sample, src, 0.5)
    assert len(out.rows) == 100
    for i in out.rows:
        a, b = out.corpus.texts[i], sample.texts[i]
        assert a != b and Counter(tokenize(a)) == Counter(tokenize(b))
    from harness.metrics import get
    from harness.metrics.base import Context

    d1 = get("lexical/distinct-1")
    assert d1(Context(out.corpus)).value == d1(Context(sample)).value
    assert get("lexical/distinct-2")(Context(out.corpus)).value > get("lexical/distinct-2")(Context(sample)).value


def test_length_shift_and_mode_collapse_draw_real_pool_rows(parts):
    sample, src = parts
    ls = _run("length-shift", sample, src, 0.5)
    mean = lambda c: np.mean([len(tokenize(t)) for t in c.texts])  # noqa: E731
    assert mean(ls.corpus) > mean(sample) * 1.2
    q75 = np.quantile([len(tokenize(t)) for t in src.pool.texts], 0.75)
    assert all(len(tokenize(ls.corpus.texts[i])) >= q75 for i in ls.rows)

    mc = _run("mode-collapse", sample, src, 0.5)
    pool = set(src.pool.texts)
    assert len(mc.rows) == 100 and all(mc.corpus.texts[i] in pool for i in mc.rows)
    assert len({mc.corpus.texts[i] for i in mc.rows}) == 100  # distinct rows, not duplicates
    from sklearn.feature_extraction.text import TfidfVectorizer

    X = TfidfVectorizer(sublinear_tf=True).fit_transform(list(mc.corpus.texts))
    sim = (X @ X.T).toarray()
    np.fill_diagonal(sim, np.nan)
    rows, others = list(mc.rows), [i for i in range(len(sample)) if i not in set(mc.rows)]
    assert np.nanmean(sim[np.ix_(rows, rows)]) > 1.5 * np.nanmean(sim[np.ix_(others, others)])
    top3 = sum(c for _, c in Counter(mc.corpus.labels[i] for i in rows).most_common(3))
    assert top3 >= 80  # three modes: their rows come from at most about three of the five BBC labels


def test_corruptions_are_seeded_and_severity_zero_is_identity(parts):
    sample, src = parts
    for name in V.CORRUPTIONS:
        a = V.corrupt(name, sample, 0.25, V.corruption_rng(0, 1, name, 0.25), src)
        b = V.corrupt(name, sample, 0.25, V.corruption_rng(0, 1, name, 0.25), src)
        assert a.corpus.fingerprint == b.corpus.fingerprint, name
        c = V.corrupt(name, sample, 0.25, V.corruption_rng(0, 2, name, 0.25), src)
        assert c.corpus.fingerprint != a.corpus.fingerprint, name
        assert V.corrupt(name, sample, 0.0, np.random.default_rng(0), src).corpus is sample
        assert len(a.corpus) == len(sample)


def test_spearman_interval_matches_scipy():
    from scipy.stats import pearsonr, rankdata, spearmanr

    rng = np.random.default_rng(3)
    x = np.repeat([0, 0.1, 0.25, 0.5], 3)
    y = 0.4 * x + rng.normal(0, 0.1, len(x))
    got = V.spearman_interval(x, y, method="fisher")
    assert got["rho"] == pytest.approx(spearmanr(x, y).statistic)
    ci = pearsonr(rankdata(x), rankdata(y)).confidence_interval(0.95)
    assert (got["low"], got["high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    bw = V.spearman_interval(x, y)
    assert bw["rho"] == got["rho"] and bw["low"] < got["low"] and bw["high"] > got["high"]
    flat = V.spearman_interval(x, np.zeros(len(x)))
    assert flat["constant"] and flat["rho"] == 0 and V.verdict("0", flat) == "pass" and V.verdict("+", flat) == "FAIL"
    assert V.spearman_interval([0, 1, 2], [1, 2, 3])["rho"] is None


def test_expectations_cover_every_metric_group():
    from harness import metrics

    # every shipped metric of these families has a declared row (new families show as "no expectation")
    for name in metrics.names():
        if name.split("/")[0] in {"lexical", "length", "dup", "semantic", "perclass", "surface", "distance",
                                  "memo", "contam", "faith", "utility"}:
            assert V.declared(name), name
    assert V.expectations_for("lexical/distinct-1")["shuffled-words"] == "0"
    assert V.expectations_for("lexical/distinct-3")["shuffled-words"] == "+"
    assert V.expectations_for("utility/tfidf-lr/accuracy") == {"label-noise": "-", "class-drop": "-", "test-copy": "+"}
    assert not V.declared("planted/blind")


@metric("planted/blind", higher_is_better=False, bounds=(0, float("inf")), expect={"exact-dup": "+"},
        register=False)
def blind_metric(ctx):
    """A planted metric that ignores the data: the number of rows (it cannot see duplicates)."""
    from harness.types import Score

    return Score(float(len(ctx.texts)))


@metric("m/x", expect={"exact-dup": "+"}, register=False)
def flat_metric(ctx):
    """A planted metric declared to rise under exact duplicates."""


@metric("m/y", expect={"exact-dup": "+"}, limits={"exact-dup": "blind by design"}, register=False)
def flat_with_limit(ctx):
    """The same, with the failure documented as its known limit."""


def test_a_metric_that_does_not_respond_is_reported_as_fail(tmp_path, register_metrics, capsys):
    from harness import cli

    register_metrics(blind_metric)
    out = tmp_path / "v"
    code = cli.main(["validate", "builtin:bbc-news", "--out", str(out), "--metrics", "planted/blind,dup/exact-rate",
                     "--corruptions", "exact-dup", "--severities", "0,0.5", "--repeats", "4",
                     "--sample-size", "40", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "FAIL: planted/blind under exact-dup" in err
    data = json.loads((out / "validity.json").read_text())
    cells = {(c["metric"], c["corruption"]): c for c in data["cells"]}
    assert cells[("planted/blind", "exact-dup")]["verdict"] == "FAIL"
    assert cells[("planted/blind", "exact-dup")]["constant"]
    assert cells[("dup/exact-rate", "exact-dup")]["verdict"] == "pass"
    assert "**flat ✗+**" in (out / "validity.md").read_text()
    # report-only mode exits 0 with the same table
    assert cli.main(["validate", "builtin:bbc-news", "--out", str(out), "--metrics", "planted/blind,dup/exact-rate",
                     "--corruptions", "exact-dup", "--severities", "0,0.5", "--repeats", "4",
                     "--sample-size", "40", "--no-progress", "--no-fail"]) == 0


def test_documented_limit_is_shown_not_hidden(register_metrics):
    register_metrics(flat_metric, flat_with_limit)
    cells = [V.Cell(f"clean#r{r}", None, 0.0, r, Corpus("c", "c", "text", ("a",))) for r in range(4)]
    cells += [V.Cell(f"exact-dup@0.5#r{r}", "exact-dup", 0.5, r, Corpus("c", "c", "text", ("a",))) for r in range(4)]
    values = {(c.name, m): 1.0 for c in cells for m in ("m/x", "m/y")}
    assert V.analyse(cells, values, ["m/x"], ["exact-dup"])[("m/x", "exact-dup")]["verdict"] == "FAIL"
    cell = V.analyse(cells, values, ["m/y"], ["exact-dup"])[("m/y", "exact-dup")]
    assert cell["verdict"] == "limit" and cell["limit"] == "blind by design"
    v = V.Validation("d", ["m/y"], ["exact-dup"], [0.0, 0.5], 4, 10, cells={("m/y", "exact-dup"): cell})
    assert v.failures() == [] and v.failures(strict=True) == [cell]
    from harness.report.validity_report import render_markdown

    assert "known limit `m/y` under exact-dup" in render_markdown(v)


# slow (52 s): the full BBC validation; the other tests here run validate end to end on smaller cells
@pytest.mark.slow
def test_validate_bbc_end_to_end(tmp_path, cache_dir):
    """The BBC demo corpus at a small size with the real embedder: tables, figure, JSON, identity checks."""
    from harness import cli

    out = tmp_path / "validity"
    code = cli.main(["validate", "builtin:bbc-news", "--out", str(out), "--no-progress",
                     "--metrics", "dup/exact-rate,lexical/distinct-2,surface/label-jsd,contam",
                     "--corruptions", "exact-dup,label-noise,test-copy",
                     "--severities", "0,0.5", "--repeats", "4", "--sample-size", "40", "--test-size", "40"])
    data = json.loads((out / "validity.json").read_text())
    cells = {(c["metric"], c["corruption"]): c for c in data["cells"]}
    assert cells[("dup/exact-rate", "exact-dup")]["verdict"] == "pass"
    assert cells[("dup/exact-rate", "label-noise")]["verdict"] == "pass"  # flat: texts untouched
    assert cells[("contam/test-ngram-overlap", "test-copy")]["verdict"] == "pass"
    assert cells[("contam/test-near-match", "test-copy")]["verdict"] == "pass"  # real MiniLM embeddings
    assert cells[("lexical/distinct-2", "label-noise")]["constant"]
    ident = {i["metric"]: i for i in data["identity"]}
    assert ident["surface/label-jsd"]["self"] == 0.0 and ident["surface/label-jsd"]["verdict"] == "pass"
    assert code == (1 if any(c["verdict"] == "FAIL" for c in data["cells"]) else 0)
    md = (out / "validity.md").read_text()
    assert "| metric | exact-dup | label-noise | test-copy |" in md and "## Identity checks" in md
    assert (out / "figures" / "validity.png").stat().st_size > 10_000
    assert (out / "figures" / "validity.svg").exists()
    assert (out / ".gitignore").read_text().strip().endswith("raw/")
    # a rerun reuses every per-candidate result and writes the same report, also from a new process (whose
    # claims on the per-candidate folders inside --out start empty: they were once refused as others' files)
    from harness.run import outdir

    outdir._claimed.clear()
    assert cli.main(["validate", "builtin:bbc-news", "--out", str(out), "--no-progress",
                     "--metrics", "dup/exact-rate,lexical/distinct-2,surface/label-jsd,contam",
                     "--corruptions", "exact-dup,label-noise,test-copy",
                     "--severities", "0,0.5", "--repeats", "4", "--sample-size", "40", "--test-size", "40"]) == code
    again = json.loads((out / "validity.json").read_text())
    assert again["cells"] == data["cells"]


def test_user_errors(tmp_path):
    from harness import cli

    assert cli.main(["validate", "builtin:bbc-news", "--out", str(tmp_path), "--corruptions", "typo"]) == 2
    assert cli.main(["validate", "builtin:bbc-news", "--out", str(tmp_path), "--severities", "0,2"]) == 2
    assert cli.main(["validate", "builtin:bbc-news", "--out", str(tmp_path), "--metrics", "nope"]) == 2


def test_take_and_with_rows_keep_fields():
    c = Corpus("c", "s", "classification", ("a", "b", "c"), ("x", "y", "z"), {"title": ("A", "B", "C")})
    t = V.take(c, [2, 0])
    assert t.texts == ("c", "a") and t.labels == ("z", "x") and t.fields["title"] == ("C", "A")
    w = V.with_rows(c, {1: ("B2", "q", {"title": "T"})})
    assert w.texts == ("a", "B2", "c") and w.labels == ("x", "q", "z") and w.fields["title"] == ("A", "T", "C")
    assert replace(w, name="n").name == "n"


def test_a_rerun_from_a_new_process_reuses_the_cells(tmp_path):
    """validate's --out is reused on rerun: every per-candidate result is read back, the report rewritten.
    A new process starts with no claims on the per-candidate folders inside --out; their flag files were
    once refused there as files synthbench had not written (exit 2 on every rerun)."""
    from harness import cli
    from harness.run import outdir

    out = tmp_path / "v"
    argv = ["validate", "builtin:bbc-news", "--out", str(out), "--no-progress", "--metrics",
            "dup/exact-rate,lexical/distinct-2", "--corruptions", "exact-dup", "--severities", "0,0.5",
            "--repeats", "3", "--sample-size", "30", "--test-size", "30"]
    code = cli.main(argv)
    first = json.loads((out / "validity.json").read_text())
    outdir._claimed.clear()  # what a new process holds
    assert cli.main(argv) == code
    again = json.loads((out / "validity.json").read_text())
    assert again["cells"] == first["cells"]
    assert again["meta"]["results_computed"] == 0 and again["meta"]["results_reused"] > 0
