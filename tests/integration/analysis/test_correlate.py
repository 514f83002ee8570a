"""Metric–utility correlation: values against scipy, pooling within suites, intervals, orientation,
the command on committed reports, and the shipped intent / LLM-augmentation / S3 suites."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from harness.analysis.correlation import (
    bootstrap_intervals,
    correlate,
    orientation,
    permutation_p,
    pooled_correlation,
)
from harness.cli import main
from tests.conftest import ROOT, SHARED, read_jsonl, shared

NEW_SUITES = ["intent_atis", "intent_snips", "intent_fb", "intent_liu", "intent_clinc150", "intent_banking10",
              "llm_aug_20news", "llm_aug_ag_news", "llm_aug_atis", "llm_aug_fb", "llm_aug_sst5", "llm_aug_yelp",
              "s3_imdb"]


def brute_stratified_tau_b(blocks):
    s = n1 = n2 = 0
    for x, y in blocks:
        for i in range(len(x)):
            for j in range(i + 1, len(x)):
                dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
                s += dx * dy
                n1 += dx != 0
                n2 += dy != 0
    return s / math.sqrt(n1 * n2)


def test_single_suite_equals_scipy_with_ties():
    rng = np.random.default_rng(3)
    for n in (2, 3, 5, 12, 20):
        x = rng.integers(0, 4, size=n).astype(float)   # many ties
        y = rng.normal(size=n)
        if len(set(x)) < 2:
            x[0] += 1
        rho, tau, k_n, k = pooled_correlation([(x, y)])
        assert k_n == n and k == 1
        assert rho == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
        assert tau == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)


def test_pooling_is_weighted_mean_of_suite_rho_and_stratified_tau():
    rng = np.random.default_rng(7)
    blocks = []
    for n in (3, 5, 8, 20):
        x = rng.normal(size=n)
        blocks.append((x, 0.5 * x + rng.normal(size=n)))
    rho, tau, n, k = pooled_correlation(blocks)
    per = [spearmanr(x, y).statistic for x, y in blocks]
    sizes = [len(x) for x, _ in blocks]
    assert rho == pytest.approx(np.average(per, weights=sizes), abs=1e-12)
    assert tau == pytest.approx(brute_stratified_tau_b(blocks), abs=1e-12)
    assert (n, k) == (36, 4)


def test_pooling_compares_only_within_suites():
    """Simpson's paradox: inside each suite the metric orders candidates against utility, while
    suite levels line up; pooling raw values would say +, the within-suite pooling says -1."""
    blocks = []
    for level in range(4):
        x = np.array([0.0, 1.0, 2.0]) + 10 * level
        y = np.array([0.3, 0.2, 0.1]) + level
        blocks.append((x, y))
    naive = spearmanr(np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks])).statistic
    rho, tau, _, _ = pooled_correlation(blocks)
    assert naive > 0.8 and rho == pytest.approx(-1) and tau == pytest.approx(-1)
    # invariant to any per-suite monotone rescaling of either variable
    warped = [(np.exp(x / 10) * (i + 1), y * 100 - i) for i, (x, y) in enumerate(blocks)]
    assert pooled_correlation(warped)[:2] == pytest.approx((rho, tau))


def test_constant_suites_are_left_out():
    good = ([1.0, 2.0, 3.0], [0.1, 0.3, 0.2])
    flat_metric = ([5.0, 5.0, 5.0], [0.1, 0.2, 0.3])
    flat_utility = ([1.0, 2.0, 3.0], [0.5, 0.5, 0.5])
    assert pooled_correlation([good, flat_metric, flat_utility]) == pytest.approx(pooled_correlation([good]))
    rho, tau, n, k = pooled_correlation([flat_metric])
    assert math.isnan(rho) and math.isnan(tau) and (n, k) == (0, 0)


def test_intervals_contain_estimate_and_p_values():
    rng = np.random.default_rng(11)
    strong, none = [], []
    for n in (4, 6, 8, 10):
        x = rng.normal(size=n)
        strong.append((x, x + 0.3 * rng.normal(size=n)))
        none.append((x, rng.normal(size=n)))
    for blocks in (strong, none):
        rho, tau, _, _ = pooled_correlation(blocks)
        rci, tci = bootstrap_intervals(blocks, n_boot=500, seed=1)
        assert -1 <= rci[0] <= rho <= rci[1] <= 1 and -1 <= tci[0] <= tau <= tci[1] <= 1
        assert rci[1] - rci[0] > 0.05
    assert permutation_p(strong, pooled_correlation(strong)[0], n_perm=500) < 0.01
    assert permutation_p(none, pooled_correlation(none)[0], n_perm=500) > 0.05
    # reproducible
    assert bootstrap_intervals(strong, n_boot=200, seed=5) == bootstrap_intervals(strong, n_boot=200, seed=5)


def test_q_values_are_benjamini_hochberg_over_the_table():
    import scipy.stats

    from harness.analysis.correlation import Correlation, q_values

    ps = [0.001, 0.02, 0.04, 0.3, None, 0.011]
    corrs = [Correlation(f"m/{i}", True, 0.1, None, 0.1, None, p, 5, 1, {}) for i, p in enumerate(ps)]
    q = q_values(corrs)
    tested = [p for p in ps if p is not None]
    want = scipy.stats.false_discovery_control(tested, method="bh")
    assert [q[f"m/{i}"] for i, p in enumerate(ps) if p is not None] == pytest.approx(list(want))
    assert "m/4" not in q and all(q[k] >= p for k, p in zip(q, tested))


def test_orientation_and_metric_selection():
    assert orientation(True) == 1 and orientation(None) == 1 and orientation(False) == -1
    util = {"a": 0.9, "b": 0.8, "c": 0.5, "d": 0.4}
    values = {"s1": {"utility/x/accuracy": util,
                     "dup/rate": {"a": 0.0, "b": 0.1, "c": 0.2, "d": 0.3},          # lower is better
                     "len/mean": {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0},          # no direction
                     "div/score": {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0},         # higher is better
                     "utility/x/gap": util}}
    dirs = {"utility/x/accuracy": True, "dup/rate": False, "len/mean": None, "div/score": True, "utility/x/gap": True}
    out = {c.metric: c for c in correlate(values, "utility/x/accuracy", dirs, n_boot=200)}
    assert set(out) == {"dup/rate", "len/mean", "div/score"}       # utility metrics are not direct
    assert out["dup/rate"].rho == pytest.approx(1) and out["dup/rate"].tau == pytest.approx(1)
    assert out["div/score"].rho == pytest.approx(1)
    assert out["len/mean"].rho == pytest.approx(-1)                 # not oriented
    assert out["dup/rate"].per_suite == {"s1": pytest.approx(1)}
    # a lower-is-better utility flips every sign
    dirs["utility/x/accuracy"] = False
    assert correlate(values, "utility/x/accuracy", dirs, n_boot=200)[0].rho == pytest.approx(-1)


def _write_results(folder: Path, records: list[dict]) -> None:
    folder.mkdir(parents=True)
    lines = []
    for r in records:
        lines.append(json.dumps({"dataset": r["dataset"], "metric": r["metric"], "value": r["value"], "ci": None,
                                 "higher_is_better": True, "role": r.get("role", "candidate"), "details": {},
                                 "signature": {"harness": "t", "metric": r["metric"], "args": {}, "data": {},
                                               "embedder": None, "seed": 0},
                                 "signature_key": "k"}))
    (folder / "results.jsonl").write_text("\n".join(lines) + "\n")


def test_folders_without_utility_or_results_are_one_line_errors(tmp_path, capsys):
    _write_results(tmp_path / "run", [{"dataset": d, "metric": "lexical/distinct-2", "value": v}
                                      for d, v in (("a", 0.1), ("b", 0.2))])
    assert main(["correlate", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no folder has 'utility/minilm-lr/accuracy' results" in err and "fix:" in err
    (tmp_path / "empty").mkdir()
    assert main(["correlate", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no results.jsonl here" in err


def test_folder_of_folders_and_reference_rows_left_out(tmp_path, capsys):
    for name, shift in (("s1", 0.0), ("s2", 5.0)):
        recs = [{"dataset": d, "metric": m, "value": v + shift}
                for d, vals in (("a", (0.9, 3.0)), ("b", (0.7, 2.0)), ("c", (0.8, 1.0)))
                for m, v in zip(("utility/minilm-lr/accuracy", "semantic/vendi"), vals)]
        recs.append({"dataset": "real", "metric": "utility/minilm-lr/accuracy", "value": 99.0, "role": "reference"})
        recs.append({"dataset": "real", "metric": "semantic/vendi", "value": -99.0, "role": "reference"})
        _write_results(tmp_path / "reports" / name, recs)
    out = tmp_path / "corr.md"
    assert main(["correlate", str(tmp_path / "reports"), "--boot", "200", "--out", str(out)]) == 0
    md = out.read_text()
    rho = spearmanr([3.0, 2.0, 1.0], [0.9, 0.7, 0.8]).statistic
    row = next(line for line in md.splitlines() if line.startswith("| `semantic/vendi`"))
    assert f"{rho:+.2f}" in row and "| 6 | 2 |" in row
    assert "| s1 | 3 | 0.700 | 0.900 | a | b |" in md
    capsys.readouterr()


def test_committed_reports_match_scipy(tmp_path, capsys):
    """The shipped leaderboards (results.jsonl committed under reports/) through the real command."""
    dirs = [ROOT / "reports" / s for s in ("ag-news", "sst2-supergen", "demo")]
    dirs = [d for d in dirs if (d / "results.jsonl").exists()]
    if len(dirs) < 2:
        pytest.skip("committed reports not found")
    out = tmp_path / "c.md"
    assert main(["correlate", *map(str, dirs), "--boot", "200", "--out", str(out)]) == 0
    capsys.readouterr()
    md = out.read_text()
    assert "## Against `utility/minilm-lr/accuracy`" in md and "stratified tau-b" in md
    # recompute one metric's per-suite rho and the pooled value from the raw records with scipy
    blocks = []
    for d in dirs:
        recs = [json.loads(x) for x in (d / "results.jsonl").read_text().splitlines() if x.strip()]
        val = {(r["dataset"], r["metric"]): r["value"] for r in recs if r["role"] == "candidate"}
        cands = sorted({c for c, m in val if m == "utility/minilm-lr/accuracy"})
        x = [-val[(c, "dup/near-rate")] for c in cands]        # lower is better: oriented
        y = [val[(c, "utility/minilm-lr/accuracy")] for c in cands]
        blocks.append((x, y))
    used = [(x, y) for x, y in blocks if len(set(x)) > 1 and len(set(y)) > 1]
    expect = np.average([spearmanr(x, y).statistic for x, y in used], weights=[len(x) for x, _ in used])
    row = next(line for line in md.splitlines() if line.startswith("| `dup/near-rate`"))
    assert f"{expect:+.2f}".replace("-", "−") in row


@pytest.mark.parametrize("stem", NEW_SUITES)
def test_new_suites_validate(stem, monkeypatch):
    from harness.data.suite import load_suite

    monkeypatch.setenv("SYNTHBENCH_DATA", str(shared("")))
    s = load_suite(ROOT / "suites" / f"{stem}.yaml")
    paths = [s.reference.path] + [c.path for c in s.candidates] + ([s.test.path] if s.test else [])
    assert all(Path(p).exists() and SHARED.resolve() in Path(p).resolve().parents for p in paths)
    assert s.test is not None or s.holdout            # every suite has a real test split for utility
    assert isinstance(s.sample_size, int) and s.repeats == 3 and s.seed == 0
    assert len({c.name for c in s.candidates}) == len(s.candidates) >= 2
    assert all(c.provenance.get("generator") and c.provenance.get("licence") for c in s.candidates)
    assert f"suites/{stem}.yaml" in (ROOT / "Makefile").read_text()        # make leaderboard runs it


def test_llm_aug_candidate_rows_and_intent_label_filter(monkeypatch):
    """The row filters select exactly the rows an independent read of the files selects."""
    from harness.data.suite import load_dataset, load_suite

    monkeypatch.setenv("SYNTHBENCH_DATA", str(SHARED))
    s = load_suite(ROOT / "suites" / "llm_aug_sst5.yaml")
    cand = next(c for c in s.candidates if c.name == "chatgpt-taboo")
    rows = [r for r in read_jsonl(shared("llm_augmentation_diversity_incentives/sst5/synthetic_gpt.jsonl"))
            if r["method"] == "taboo" and r["is_seed"] is False and r["text"].strip()]
    got = load_dataset(cand, s.normalize)
    assert len(got) == len(rows) and got.labels == tuple(str(r["label"]) for r in rows)
    assert all(t == t.lower() and "," not in t for t in got.texts)
    sizes = [len(load_dataset(c, s.normalize)) for c in s.candidates]
    assert min(sizes) >= s.sample_size                   # the common size fits every candidate

    c = load_suite(ROOT / "suites" / "intent_clinc150.yaml")
    ref = load_dataset(c.reference, c.normalize)
    gpt = load_dataset(c.candidates[0], c.normalize)
    assert set(gpt.labels) == set(ref.labels) and len(set(ref.labels)) == 35

    i = load_suite(ROOT / "suites" / "s3_imdb.yaml")
    real = load_dataset(i.reference, i.normalize)
    s3 = load_dataset(i.candidates[0], i.normalize)
    assert set(s3.labels) == set(real.labels) == {"neg", "pos"}
    assert not any("<br" in t for t in real.texts)


@pytest.mark.slow
def test_committed_correlation_report_is_current(tmp_path, capsys, monkeypatch):
    """reports/metric-utility-correlation.md is what the command writes from the committed reports
    ('make leaderboard' rewrites it after running the suites)."""
    if not (ROOT / "reports" / "metric-utility-correlation.md").exists():
        pytest.skip("no committed correlation report")
    out = tmp_path / "c.md"
    monkeypatch.chdir(ROOT)
    folders = [d.name for d in sorted((ROOT / "reports").iterdir())
               if (d / "results.jsonl").exists() and d.name != "demo"]  # the demo's results are local
    assert main(["correlate", *(f"reports/{f}" for f in folders), "-u", "utility/minilm-lr/accuracy",
                 "-u", "utility/tfidf-lr/accuracy", "--out", str(out)]) == 0   # as make leaderboard
    capsys.readouterr()
    assert out.read_text() == (ROOT / "reports" / "metric-utility-correlation.md").read_text()


def test_run_filtered_suite_then_correlate(tmp_path, monkeypatch, capsys):
    """End to end on real data: a suite whose candidates are row filters of one LLM-augmentation file,
    run with cheap metrics, then correlated with its TF-IDF utility."""
    shared("llm_augmentation_diversity_incentives/sst5/synthetic_llama.jsonl")
    monkeypatch.setenv("SYNTHBENCH_DATA", str(SHARED))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    la = "llm_augmentation_diversity_incentives/sst5"
    cands = "\n".join(f"  - {{name: {m}, path: {la}/synthetic_llama.jsonl, where: {{method: {m}, is_seed: false}}}}"
                      for m in ("prompt", "taboo", "hints", "chaining"))
    suite = tmp_path / "mini.yaml"
    suite.write_text(f"name: mini\nreference: {la}/real_test.jsonl\nholdout: 0.5\ncandidates:\n{cands}\n"
                     "metrics: [lexical/distinct-2, dup/exact-rate, utility/tfidf-lr/accuracy]\n"
                     "normalize: [lowercase, strip-punctuation]\nsample_size: 150\nseed: 0\n")
    out = tmp_path / "out"
    assert main(["run", str(suite), "--out", str(out), "--no-progress"]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert "where method=taboo, is_seed=false" in meta["candidates"][1]["source"]
    report = tmp_path / "c.md"
    assert main(["correlate", str(out), "--utility", "utility/tfidf-lr/accuracy", "--boot", "200",
                 "--out", str(report)]) == 0
    capsys.readouterr()
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    val = {(r["dataset"], r["metric"]): r["value"] for r in recs if r["role"] == "candidate"}
    names = ["prompt", "taboo", "hints", "chaining"]
    rho = spearmanr([val[(n, "lexical/distinct-2")] for n in names],
                    [val[(n, "utility/tfidf-lr/accuracy")] for n in names]).statistic
    row = next(line for line in report.read_text().splitlines() if line.startswith("| `lexical/distinct-2`"))
    assert f"{rho:+.2f}".replace("-", "−") in row and "| 4 | 1 |" in row
