"""The joint utility model (``synthbench correlate --model``): it finds a utility that only two metrics
together predict, says so when there is nothing to find, never lets the held-out suite into a fit,
chooses the single-metric baseline on the training suites only, handles missing values as it says,
refuses bad input in one line, and runs on the committed reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from harness.analysis.utility_model import fit_fold, prepare, utility_model, verdict
from harness.cli import main
from harness.errors import UserError
from harness.report.utility_model_report import render_markdown
from tests.conftest import ROOT

U = "utility/x/accuracy"
DIRS = {U: True, "m/a": True, "m/b": False, "m/c": True, "m/d": None}


def synthetic(seed: int, n_suites: int = 8, n: int = 10, signal: bool = True) -> dict:
    """Suites whose utility is a + b (b lower-is-better, so its oriented value enters) plus noise, where a
    and b share a large common part of opposite sign: each alone barely orders the candidates, together
    they do. Each suite has its own scale and offset for every metric and the utility."""
    rng = np.random.default_rng(seed)
    values = {}
    for s in range(n_suites):
        z = 5.0 * rng.normal(size=n)
        ea, eb = rng.normal(size=n), rng.normal(size=n)
        a, b_oriented = z + ea, -z + eb
        util = (ea + eb + 0.3 * rng.normal(size=n)) if signal else rng.normal(size=n)
        cols = {"m/a": a, "m/b": -b_oriented, "m/c": rng.normal(size=n), "m/d": rng.normal(size=n)}
        scale = rng.uniform(0.1, 10, size=5)
        shift = rng.uniform(-5, 5, size=5)
        table = {m: {f"c{i}": float(scale[k] * v[i] + shift[k]) for i in range(n)} for k, (m, v) in enumerate(cols.items())}
        table[U] = {f"c{i}": float(0.5 + 0.05 * util[i] + 0.1 * s) for i in range(n)}
        values[f"suite{s}"] = table
    return values


def test_joint_model_beats_each_metric_alone():
    values = synthetic(2)
    for m in ("m/a", "m/b"):                        # the premise: each metric alone orders utility weakly
        per_suite = [spearmanr([t[m][c] for c in sorted(t[U])], [t[U][c] for c in sorted(t[U])]).statistic
                     for t in values.values()]
        assert abs(np.mean(per_suite)) < 0.25, (m, per_suite)
    r = utility_model(values, U, DIRS, models=("ridge", "rank"), n_boot=500)
    assert r.n_candidates == 80 and len(r.folds) == 8 and r.features == ["m/a", "m/b", "m/c", "m/d"]
    for m in ("ridge", "rank"):
        assert r.summary[m].mean > 0.8 and r.summary[m].ci[0] > 0.5
        assert r.summary[m].mean > r.summary["single"].mean + 0.3
        assert r.diff[m].ci[0] > 0 and verdict(r, m).startswith(f"the joint {m} model beats the best single metric")
    assert r.summary["single"].mean < 0.5
    # the headline is the candidate-weighted mean of the folds (equal sizes here: = plain mean), the difference paired
    rho = np.array([f.rho["ridge"] for f in r.folds])
    assert r.summary["ridge"].mean == pytest.approx(rho.mean()) == pytest.approx(r.summary["ridge"].plain_mean)
    assert r.diff["ridge"].mean == pytest.approx(rho.mean() - np.mean([f.rho["single"] for f in r.folds]))
    # the refit weighs a and b (both oriented positive), not the noise metrics
    w = r.coefficients["ridge"]
    assert w["m/a"] > 0 and w["m/b"] > 0 and min(w["m/a"], w["m/b"]) > 3 * max(abs(w["m/c"]), abs(w["m/d"]))
    md = render_markdown({U: r}, {s: f"reports/{s}" for s in values})
    assert "the joint ridge model beats the best single metric" in md and "arXiv:2412.03679" in md
    assert "candidate-weighted mean" in md and "| suite3 | 10 |" in md


def test_null_utility_does_not_beat_and_says_so():
    r = utility_model(synthetic(2, n_suites=10, signal=False), U, DIRS, models=("ridge",), n_boot=1000)
    for m in ("ridge",):
        lo, hi = r.diff[m].ci
        assert lo < 0 < hi
        assert r.summary[m].ci[0] < 0 < r.summary[m].ci[1]
        assert verdict(r, m).startswith(f"the joint {m} model does not beat the best single metric: difference ")
        assert "not distinguishable from 0" in verdict(r, m)
    md = render_markdown({U: r}, {})
    assert "**Verdict (ridge)**: the joint ridge model does not beat the best single metric" in md


def test_held_out_suite_never_enters_its_fold():
    """Garbling the held-out suite (utility reversed, a metric rescaled and another deleted) changes
    nothing fitted in its fold: features, weights, penalties, the chosen single metric; garbling a
    training suite does (so the check can fail)."""
    base = synthetic(3)
    garbled = json.loads(json.dumps(base))
    h = "suite2"
    garbled[h][U] = {c: -v for c, v in garbled[h][U].items()}
    garbled[h]["m/c"] = {c: v ** 3 for c, v in garbled[h]["m/a"].items()}
    del garbled[h]["m/d"]
    d0, d1 = prepare(base, U, DIRS), prepare(garbled, U, DIRS)
    k = [s.name for s in d0.suites].index(h)
    f0, f1 = fit_fold(d0, k, ("ridge", "rank")), fit_fold(d1, k, ("ridge", "rank"))
    assert list(f0["cols"]) == list(f1["cols"]) and f0["single"] == f1["single"]
    for m in ("ridge", "rank"):
        assert np.array_equal(f0["fits"][m][0], f1["fits"][m][0]) and f0["fits"][m][1] == f1["fits"][m][1]
    other = [s.name for s in d0.suites].index("suite5")
    f2 = fit_fold(d1, other, ("ridge",))
    assert not np.array_equal(fit_fold(d0, other, ("ridge",))["fits"]["ridge"][0], f2["fits"]["ridge"][0])


def test_bootstrap_refits_and_reproduces_the_data_with_every_suite_drawn_once():
    """The replicates' closed-form refit (per-suite sufficient statistics times multiplicities) equals
    scikit-learn's RidgeCV leave-one-suite-out on the data when each suite is drawn once, for both models
    and the single metric; and a draw with a suite twice equals scikit-learn's Ridge on duplicated rows,
    each held-out suite leaving with all its copies."""
    from sklearn.linear_model import Ridge

    from harness.analysis.utility_model import leave_one_suite_out, pairs, refit_replicates

    d = prepare(synthetic(7, n_suites=5, n=6), U, DIRS)
    folds = leave_one_suite_out(d, ("ridge", "rank"))
    draw = [0, 0, 1, 2, 3]                               # suite 0 twice, suite 4 not drawn
    reps = refit_replicates(d, folds, ("ridge", "rank"), np.array([[0, 1, 2, 3, 4], draw]))
    w = np.array([f.n for f in folds], float)
    for m in ("ridge", "rank", "single"):
        assert reps[m][0] == pytest.approx(np.average([f.rho[m] for f in folds], weights=w), abs=1e-12)
    mult = np.bincount(draw, minlength=5)
    want = {m: [] for m in ("ridge", "rank", "single")}
    for h in sorted(set(draw)):
        train = [k for k in draw if k != h]              # with repeats
        y = d.suites[h].y
        X = np.vstack([d.X[k] for k in train])
        fit = Ridge(alpha=folds[h].penalty["ridge"], fit_intercept=False).fit(X, np.concatenate([d.suites[k].y for k in train]))
        want["ridge"].append(spearmanr(d.X[h] @ fit.coef_, y).statistic)
        P = [pairs(d, k) for k in train]
        fit = Ridge(alpha=folds[h].penalty["rank"], fit_intercept=False).fit(
            np.vstack([p[0] for p in P]), np.concatenate([p[1] for p in P]), sample_weight=np.concatenate([p[2] for p in P]))
        want["rank"].append(spearmanr(d.X[h] @ fit.coef_, y).statistic)
        bar = np.array([sum(d.suites[k].n * spearmanr(d.X[k][:, j], d.suites[k].y).statistic for k in train)
                        for j in range(4)]) / sum(d.suites[k].n for k in train)
        j = int(np.argmax(np.abs(bar)))
        want["single"].append(np.sign(bar[j]) * spearmanr(d.X[h][:, j], y).statistic)
    weights = [mult[h] * d.suites[h].n for h in sorted(set(draw))]
    for m, rhos in want.items():
        assert reps[m][1] == pytest.approx(np.average(rhos, weights=weights), abs=1e-10), m


def test_single_metric_is_chosen_on_the_training_suites_only():
    """An independent re-computation with scipy on the raw values: in each fold, the metric with the
    largest |candidate-weighted mean within-suite rho| over the other suites (constant suites count 0),
    its sign from there, scored on the held-out suite."""
    values = synthetic(4, n_suites=6, n=7)
    values["suite0"]["m/c"] = {c: 1.0 for c in values["suite0"]["m/c"]}      # constant in one suite
    r = utility_model(values, U, DIRS, models=("ridge",), n_boot=200)
    sign = {m: (-1 if DIRS[m] is False else 1) for m in ("m/a", "m/b", "m/c", "m/d")}

    def rho(t, m):
        cands = sorted(t[U])
        x = [sign[m] * t[m][c] for c in cands]
        return 0.0 if len(set(x)) == 1 else spearmanr(x, [t[U][c] for c in cands]).statistic

    for fold in r.folds:
        train = [t for s, t in values.items() if s != fold.suite]
        bar = {m: sum(len(t[U]) * rho(t, m) for t in train) / sum(len(t[U]) for t in train) for m in sign}
        best = max(bar, key=lambda m: abs(bar[m]))
        assert fold.single_metric == best and fold.single_sign == np.sign(bar[best])
        assert fold.rho["single"] == pytest.approx(np.sign(bar[best]) * rho(values[fold.suite], best), abs=1e-12)


def test_missing_values_are_dropped_or_imputed_and_said():
    values = synthetic(5, n_suites=8, n=6)
    for s in ("suite0", "suite1", "suite2"):               # missing in 3 of 8 suites (> 25%): dropped
        del values[s]["m/d"]
    del values["suite3"]["m/c"]                            # missing in 1 of 8: kept, column 0 there
    del values["suite4"]["m/a"]["c2"]                      # one value: the suite's median
    d = prepare(values, U, DIRS)
    k = [s.name for s in d.suites].index("suite4")
    j = d.features.index("m/a")
    raw = [values["suite4"]["m/a"][c] for c in sorted(values["suite4"][U]) if c != "c2"]
    col = np.array([values["suite4"]["m/a"].get(c, np.median(raw)) for c in sorted(values["suite4"][U])])
    assert d.X[k][:, j] == pytest.approx((col - col.mean()) / col.std())
    r = utility_model(values, U, DIRS, models=("ridge",), n_boot=200)
    assert "m/d" not in r.features and r.dropped == {"m/d": 3}
    assert r.imputed == {"m/a": (1, 0), "m/c": (0, 1)}
    md = render_markdown({U: r}, {})
    assert "Dropped (missing in more than 25% of the suites): `m/d` (3 of 8)" in md
    assert "`m/a` (1 value by the suite median)" in md and "`m/c` (0 values by the suite median, missing in 1 suite)" in md


def test_too_few_suites_is_one_line_error_naming_the_skipped(tmp_path, capsys):
    values = synthetic(6, n_suites=3, n=5)
    values["suite2"][U] = dict(list(values["suite2"][U].items())[:2])        # 2 candidates: skipped, named
    with pytest.raises(UserError) as e:
        utility_model(values, U, DIRS)
    assert "2 suites" in e.value.what and "suite2: 2 candidates with the utility score, needs 3" in e.value.what
    # through the command: exit 2, one line
    for s, table in values.items():
        recs = [{"dataset": c, "metric": m, "value": v, "ci": None, "higher_is_better": True, "role": "candidate",
                 "details": {}, "signature": {"harness": "t", "metric": m, "args": {}, "data": {}, "embedder": None,
                                              "seed": 0}, "signature_key": "k"}
                for m, col in table.items() for c, v in col.items()]
        (tmp_path / s).mkdir()
        (tmp_path / s / "results.jsonl").write_text("".join(json.dumps(x) + "\n" for x in recs))
    assert main(["correlate", str(tmp_path), "-u", U, "--model", "ridge"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "leave-one-suite-out needs 3" in err and "fix:" in err
    assert main(["correlate", str(tmp_path), "-u", U, "--model", "lasso"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model lasso: unknown model" in err


def _shipped():
    """The committed suites' folders, as make leaderboard names them (the demo's results are local)."""
    return [d for d in sorted((ROOT / "reports").iterdir()) if (d / "results.jsonl").exists() and d.name != "demo"]


def test_committed_reports(tmp_path, capsys):
    """The shipped suites through the real command: the suites with 3+ candidates are scored, those
    with 2 (and the instruction suite, which has no utility) are named as skipped."""
    if len(_shipped()) < 5:
        pytest.skip("committed reports not found")
    out = tmp_path / "u.md"
    assert main(["correlate", *map(str, _shipped()), "--model", "ridge", "--boot", "200", "--out", str(out)]) == 0
    capsys.readouterr()
    md = out.read_text()
    data = json.loads(out.with_suffix(".json").read_text())["results"]["utility/minilm-lr/accuracy"]
    expect = {"ag-news", "intent-atis", "intent-banking10", "intent-clinc150", "intent-fb", "intent-liu", "intent-snips",
              "llm-aug-20news", "llm-aug-ag-news", "llm-aug-atis", "llm-aug-fb", "llm-aug-sst5", "llm-aug-yelp"}
    assert {f["suite"] for f in data["folds"]} == expect and data["n_candidates"] == 146
    assert set(data["skipped"]) == {"instruction", "s3-imdb", "sst2-supergen"}
    assert "## Against `utility/minilm-lr/accuracy`" in md and "**Verdict (ridge)**: the joint ridge model" in md
    for s in expect:
        assert any(line.startswith(f"| {s} | ") for line in md.splitlines()), s
    assert "| llm-aug-yelp | 20 |" in md and "`s3-imdb` (2 candidates with the utility score, needs 3)" in md
    assert "| ridge (RidgeCV) |" in md and "| best single metric (chosen per fold) |" in md


@pytest.mark.slow
def test_committed_utility_model_report_is_current(tmp_path, capsys, monkeypatch):
    """reports/utility-model.md is what the command writes from the committed reports."""
    if not (ROOT / "reports" / "utility-model.md").exists():
        pytest.skip("no committed utility-model report")
    out = tmp_path / "utility-model.md"
    monkeypatch.chdir(ROOT)
    folders = [str(d.relative_to(ROOT)) for d in _shipped()]  # as make leaderboard
    assert main(["correlate", *folders, "-u", "utility/minilm-lr/accuracy", "-u", "utility/tfidf-lr/accuracy",
                 "--model", "ridge,rank", "--out", str(out)]) == 0
    capsys.readouterr()
    assert out.read_text() == (ROOT / "reports" / "utility-model.md").read_text()
