"""synthbench compare: result folders written by the real CLI on real data, then compared.

Data: ChatGPT and crowd paraphrases of CLINC150 intents (Cegin et al. 2023, ../shared/data); derived
files (a seeded sample, a copy with planted duplicates, disjoint halves) are written to tmp folders.
"""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from harness.cli import main
from tests.conftest import read_jsonl, shared

CLINC = "intent_paraphrases_chatgpt_vs_crowd/clinc150"


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _eval(*args) -> int:
    return main(["eval", *map(str, args), "--no-progress"])


def _compare(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["compare", *map(str, args), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def dup_run(tmp_path_factory, cache_dir):
    """A: 160 crowd paraphrases; dupd: the same rows with 30% replaced by exact copies of the others."""
    d = shared(CLINC)
    rng = np.random.default_rng(7)
    rows = read_jsonl(d / "human.jsonl")
    rows = [{"text": r["text"], "label": r["label"]} for r in (rows[i] for i in rng.choice(len(rows), 160, replace=False))]
    k = int(0.3 * len(rows))
    dupd = list(rows)
    for i, j in zip(range(k), rng.choice(np.arange(k, len(rows)), k, replace=False)):
        dupd[i] = dict(rows[j])  # row i becomes a copy of a row that stays
    tmp = tmp_path_factory.mktemp("cmp_dup")
    a, b = _write(tmp / "a.jsonl", rows), _write(tmp / "dupd.jsonl", dupd)
    out = tmp / "run"
    assert _eval(a, b, "--reference", d / "orig_train.jsonl", "--sample-size", 160, "--out", out, "--metrics",
                 "lexical/distinct-1,lexical/distinct-2,dup/exact-rate,length/mean-words,semantic/vendi,"
                 "memo/exact-copy-rate") == 0
    return out


def test_planted_duplicates_are_significantly_worse(dup_run, capsys, tmp_path):
    target = tmp_path / "cmp.md"
    code, out, err = _compare(capsys, f"{dup_run}:a", f"{dup_run}:dupd", "--resamples", 100, "--out", target)
    assert code == 0, err
    res = json.loads(target.with_suffix(".json").read_text())
    assert target.read_text() == out  # the Markdown printed is the Markdown written
    by = {m["metric"]: m for m in res["metrics"]}
    assert set(by) == {"lexical/distinct-1", "lexical/distinct-2", "dup/exact-rate", "length/mean-words",
                       "semantic/vendi", "memo/exact-copy-rate"}
    # the recomputed values are the stored ones (no warning) ...
    stored = {r["metric"]: r["value"] for r in map(json.loads, (dup_run / "results.jsonl").read_text().splitlines())
              if r["dataset"] == "dupd"}
    assert not [w for w in res["warnings"] if "stored" in w]
    for m, row in by.items():
        assert row["b"] == pytest.approx(stored[m], rel=1e-9, abs=1e-12)
    # ... and 30% planted copies are found: B's exact-duplicate rate is 0.3, worse, far beyond chance
    dup = by["dup/exact-rate"]
    assert dup["b"] == pytest.approx(0.3 + dup["a"], abs=0.01) and dup["scheme"] == "recompute"
    # (its p-value on the 100 shared permutations, 1/101, is below 0.2: it gets EXTENDED_PERMUTATIONS in all)
    from harness.analysis.comparison import EXTENDED_PERMUTATIONS

    assert dup["resamples"] == EXTENDED_PERMUTATIONS
    assert dup["p"] == pytest.approx(1 / (EXTENDED_PERMUTATIONS + 1)) and dup["q"] < 0.05 and dup["verdict"] == "A better"
    assert dup["ci"][0] > 0.15 and dup["ci"][1] < 0.45 and dup["effect"] > 3
    for m in ("lexical/distinct-1", "lexical/distinct-2", "semantic/vendi"):
        assert by[m]["diff"] < 0 and by[m]["q"] < 0.05 and by[m]["verdict"] == "A better", by[m]
        assert by[m]["ci"][1] < 0 < by[m]["half_samples"]
    # row-level metrics: a permutation test of the per-row values, Hedges' g, Newcombe interval for rates
    assert by["length/mean-words"]["scheme"] == "rows" and by["length/mean-words"]["verdict"] == "·"
    assert by["memo/exact-copy-rate"]["scheme"] == "rows" and by["memo/exact-copy-rate"]["interval"].startswith("Newcombe")
    # Benjamini-Hochberg equals scipy's
    from scipy.stats import false_discovery_control

    rows = res["metrics"]
    np.testing.assert_allclose([m["q"] for m in rows], false_discovery_control([m["p"] for m in rows], method="bh"))
    assert "| `dup/exact-rate` ↓ |" in out and "A better" in out and "100 permutations" in out


def test_a_dataset_compared_with_itself(dup_run, capsys):
    code, out, err = _compare(capsys, f"{dup_run}:a", f"{dup_run}:a", "--resamples", 50)
    assert code == 0, err
    assert "no significant difference" in out and "B better" not in out and "A better" not in out
    for line in out.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.split("|")]
            assert cells[4].startswith("+0.0000 ["), line  # B - A = 0
            assert cells[5] == "1.000", line  # every permutation is at least as extreme as a zero difference


def test_bad_names_and_folders_are_one_line_errors(dup_run, capsys, tmp_path):
    # argparse %-formats help strings: a stray '%' breaks --help
    assert main(["compare", "--help"]) == 0 and "DIR:NAME" in capsys.readouterr().out
    code, out, err = _compare(capsys, f"{dup_run}:nope", f"{dup_run}:a")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no candidate named 'nope'" in err and "available names: a, dupd, orig_train" in err
    code, _, err = _compare(capsys, dup_run, f"{dup_run}:a")
    assert code == 2 and "holds 2 candidates" in err and "available names" in err
    code, _, err = _compare(capsys, tmp_path / "missing", f"{dup_run}:a")
    assert code == 2 and "not a results folder" in err
    code, _, err = _compare(capsys, f"{dup_run}:a", f"{dup_run}:dupd", "--resamples", 5)
    assert code == 2 and "--resamples 5" in err


def test_changed_data_and_stored_values_are_caught(dup_run, capsys, tmp_path):
    # the folder is copied, so the data file can be changed without touching the shared fixture
    run = tmp_path / "run"
    shutil.copytree(dup_run, run)
    meta = json.loads((run / "run.json").read_text())
    # a stored value that the data does not reproduce is reported, and the recomputed one is used
    lines = (run / "results.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    for r in recs:
        if r["dataset"] == "a" and r["metric"] == "length/mean-words":
            r["value"] += 1.0
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    code, out, err = _compare(capsys, f"{run}:a", f"{run}:dupd", "--metrics", "length/mean-words", "--resamples", 20)
    assert code == 0, err
    assert "Warnings:" in out and "length/mean-words: recomputed" in out and "stored" in out
    # a data file edited after the run: its fingerprint no longer matches, one line, exit 2
    src = dict(meta["load"]["candidates"])["a"]
    copy = tmp_path / "a_copy.jsonl"
    shutil.copy(src, copy)
    meta["load"]["candidates"] = [["a", str(copy)], ["dupd", dict(meta["load"]["candidates"])["dupd"]]]
    (run / "run.json").write_text(json.dumps(meta))
    code, _, err = _compare(capsys, f"{run}:a", f"{run}:dupd", "--metrics", "length/mean-words", "--resamples", 20)
    assert code == 0, err  # an identical copy reloads fine
    copy.write_text(copy.read_text().replace('"text": "', '"text": "x ', 1))
    code, _, err = _compare(capsys, f"{run}:a", f"{run}:dupd", "--metrics", "length/mean-words", "--resamples", 20)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not the data the run evaluated" in err


def test_different_sample_sizes_are_not_comparable(capsys, tmp_path, cache_dir):
    d = shared(CLINC)
    for n in (100, 120):
        assert _eval(d / "human.jsonl", "--sample-size", n, "--out", tmp_path / f"n{n}",
                     "--metrics", "lexical/distinct-2,length/mean-words") == 0
    a, b = f"{tmp_path / 'n100'}:human", f"{tmp_path / 'n120'}:human"
    code, _, err = _compare(capsys, a, b, "--metrics", "lexical/distinct-2")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "lexical/distinct-2" in err and "100 rows (A) and 120 rows (B)" in err and "--sample-size" in err
    code, out, err = _compare(capsys, a, b, "--resamples", 20)
    assert code == 0, err
    assert "| `length/mean-words` ·" in out  # not size-dependent: compared
    assert "- `lexical/distinct-2`: size-dependent, and evaluated on 100 rows (A) and 120 rows (B)" in out


def test_disjoint_halves_are_mostly_not_significant(capsys, tmp_path, cache_dir):
    """Type-I error: 8 pairs of disjoint random 100-row parts of one real set, 4 metrics each."""
    d = shared(CLINC)
    rows = read_jsonl(d / "gpt.jsonl")
    order = np.random.default_rng(11).permutation(len(rows))
    paths = []
    for k in range(16):
        part = [{"text": rows[i]["text"], "label": rows[i]["label"]} for i in order[k * 100:(k + 1) * 100]]
        paths.append(f"p{k}=" + str(_write(tmp_path / f"p{k}.jsonl", part)))
    out = tmp_path / "halves"
    assert _eval(*paths, "--out", out, "--metrics",
                 "lexical/distinct-2,lexical/entropy-2,lexical/compression-ratio,length/mean-words") == 0
    ps, significant = [], 0
    for k in range(0, 16, 2):
        code, _, err = _compare(capsys, f"{out}:p{k}", f"{out}:p{k + 1}", "--resamples", 100,
                                "--out", tmp_path / f"c{k}.md")
        assert code == 0, err
        res = json.loads((tmp_path / f"c{k}.json").read_text())
        ps += [m["p"] for m in res["metrics"] if not m["a"] == m["b"] == 0]  # (0 vs 0 duplicates: p = 1)
        significant += sum(m["verdict"] in ("A better", "B better") for m in res["metrics"])
    ps = np.array(ps)
    assert len(ps) >= 24
    assert (ps < 0.05).mean() <= 0.15 and significant <= 1  # nominal 5%; 32 tests
    assert 0.3 < np.median(ps) < 0.8  # p is roughly uniform under the null, not piled up at 0 or 1


def test_suite_utility_pairs_test_rows(capsys, tmp_path, cache_dir):
    """Two candidates of one suite (holdout test split): utility compared over the same real test rows."""
    d = shared(CLINC).resolve()
    suite = tmp_path / "s.yaml"
    suite.write_text(f"""name: cmp-utility
reference: {{name: real, path: {d / 'orig_train.jsonl'}}}
candidates:
  - {{name: gpt, path: {d / 'gpt.jsonl'}}}
  - {{name: human, path: {d / 'human.jsonl'}}}
holdout: 0.3
sample_size: 300
seed: 0
metrics: [utility/tfidf-lr/accuracy, utility/tfidf-lr/macro-f1, contam/test-ngram-overlap, lexical/distinct-2]
""")
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "run.json").read_text())["load"]["command"] == "run"
    code, text, err = _compare(capsys, f"{out}:gpt", f"{out}:human", "--resamples", 50, "--out", tmp_path / "u.md")
    assert code == 0, err
    res = json.loads((tmp_path / "u.json").read_text())
    by = {m["metric"]: m for m in res["metrics"]}
    # utility is heavy: only compared when named
    assert "utility/tfidf-lr/accuracy" not in by and "contam/test-ngram-overlap" in by
    assert any(d["metric"] == "utility/tfidf-lr/accuracy" and "--metrics" in d["reason"] for d in res["not_compared"])
    code, text, err = _compare(capsys, f"{out}:gpt", f"{out}:human", "--resamples", 50, "--out", tmp_path / "u.md",
                               "--metrics", "utility/tfidf-lr")
    assert code == 0, err
    res = json.loads((tmp_path / "u.json").read_text())
    by = {m["metric"]: m for m in res["metrics"]}
    assert set(by) == {"utility/tfidf-lr/accuracy", "utility/tfidf-lr/macro-f1"}  # real-equivalent etc. not run
    stored = {(r["dataset"], r["metric"]): r["value"]
              for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    acc = by["utility/tfidf-lr/accuracy"]
    assert acc["scheme"] == "test-rows" and acc["resamples"] == 10_000
    assert acc["a"] == pytest.approx(stored[("gpt", acc["metric"])]) and acc["b"] == pytest.approx(stored[("human", acc["metric"])])
    assert acc["ci"][0] <= acc["diff"] <= acc["ci"][1]
    # McNemar's exact test is the binomial test on the discordant test rows
    from scipy.stats import binomtest

    mc = acc["mcnemar"]
    n_disc = mc["a_right_b_wrong"] + mc["a_wrong_b_right"]
    assert n_disc > 0
    assert mc["p"] == pytest.approx(binomtest(mc["a_right_b_wrong"], n_disc, 0.5).pvalue)
    # the deterministic recipe gives the same predictions for every seed, so the paired difference of
    # accuracies is exactly (B right, A wrong) - (A right, B wrong) over the test rows
    assert acc["diff"] == pytest.approx((mc["a_wrong_b_right"] - mc["a_right_b_wrong"]) / res["test"]["rows"])
    f1 = by["utility/tfidf-lr/macro-f1"]
    assert f1["a"] == pytest.approx(stored[("gpt", f1["metric"])]) and f1["ci"][0] <= f1["diff"] <= f1["ci"][1]
    assert 0 <= f1["p"] <= 1 and "McNemar" in text


def test_pure_helpers_against_references():
    from scipy.stats import binomtest, false_discovery_control

    from harness.analysis.comparison import permutation_pvalue
    from harness.stats import bh_adjust, cliffs_delta, hedges_g, mcnemar_exact

    rng = np.random.default_rng(3)
    p = rng.random(40) ** 3
    np.testing.assert_allclose(bh_adjust(p), false_discovery_control(p, method="bh"))
    for b, c in ((0, 5), (3, 9), (12, 12), (40, 17)):
        assert mcnemar_exact(b, c) == pytest.approx(binomtest(b, b + c, 0.5).pvalue)
    a, b = rng.normal(0, 1, 30), rng.normal(0.5, 2, 45)
    brute = (np.sign(b[None, :] - a[:, None])).mean()
    assert cliffs_delta(a, b) == pytest.approx(brute)
    sp = math.sqrt((29 * a.var(ddof=1) + 44 * b.var(ddof=1)) / 73)
    assert hedges_g(a, b) == pytest.approx((1 - 3 / (4 * 75 - 9)) * (b.mean() - a.mean()) / sp)
    assert permutation_pvalue(0.0, [0.0, 1.0, -2.0]) == (1.0, 3)
    assert permutation_pvalue(1.5, [0.0, 1.0, -2.0]) == (0.5, 3)


@pytest.mark.slow
def test_half_sample_interval_is_calibrated():
    """The half-sample SD of B - A against the true SD over independent disjoint samples (CLINC150 ChatGPT
    paraphrases, 200 rows a side), with the level rescaling of size-dependent metrics."""
    from harness import metrics as registry
    from harness.analysis.comparison import _resample_set_metrics, _Row
    from harness.metrics.base import Context
    from harness.types import Corpus

    texts = [r["text"] for r in read_jsonl(shared(CLINC) / "gpt.jsonl")]
    rng = np.random.default_rng(5)
    n = 200
    corpus = lambda idx: Corpus("x", "x", "text", tuple(texts[i] for i in idx))  # noqa: E731
    for name in ("lexical/distinct-2", "lexical/entropy-2", "lexical/vocab-size", "lexical/compression-ratio"):
        spec = registry.get(name)
        value = lambda c, spec=spec: spec(Context(c)).value  # noqa: E731
        diffs = []
        for _ in range(200):
            idx = rng.choice(len(texts), 2 * n, replace=False)
            diffs.append(value(corpus(idx[n:])) - value(corpus(idx[:n])))
        true_sd = float(np.std(diffs, ddof=1))
        est = []
        for k in range(8):
            idx = rng.choice(len(texts), 2 * n, replace=False)
            ca, cb = corpus(idx[:n]), corpus(idx[n:])
            row = _Row(name, spec, spec.info.higher_is_better, a=value(ca), b=value(cb))
            _resample_set_metrics([row], ca, cb, None, None, None, 0, 0, 100, k, False, lambda m: None, extend=False)
            est.append(row.result["half_sample_sd"])
        ratio = float(np.mean(est)) / true_sd
        assert 0.8 < ratio < 1.25, (name, ratio)


def test_a_results_folder_compares_after_a_move(capsys, tmp_path, monkeypatch, cache_dir):
    """A suite run whose checkout and data moved (a committed report cloned on another machine): the
    absolute paths in run.json are gone, and compare finds the suite and the data relative to the
    results folder, or, for a run.json written before that was recorded, as the suite gave them."""
    rows = read_jsonl(shared(CLINC) / "human.jsonl")[:240]
    m1 = tmp_path / "m1"
    data = m1 / "shared" / "data" / "x"
    data.mkdir(parents=True)
    for name, part in (("a", rows[:80]), ("b", rows[80:160]), ("ref", rows[160:])):
        _write(data / f"{name}.jsonl", [{"text": r["text"], "label": r["label"]} for r in part])
    (m1 / "repo" / "suites").mkdir(parents=True)
    (m1 / "repo" / "suites" / "s.yaml").write_text("""name: moved
reference: {name: real, path: x/ref.jsonl}
candidates:
  - {name: a, path: x/a.jsonl}
  - {name: b, path: x/b.jsonl}
metrics: [lexical/distinct-2, dup/exact-rate, length/mean-words]
""")
    monkeypatch.chdir(m1 / "repo")
    monkeypatch.setenv("SYNTHBENCH_DATA", str(m1 / "shared" / "data"))
    assert main(["run", "suites/s.yaml", "--out", "reports/moved", "--no-progress"]) == 0
    load = json.loads((m1 / "repo" / "reports" / "moved" / "run.json").read_text())["load"]
    assert load["from_out"] == {"suite": "../../suites/s.yaml", "data_root": "../../../shared/data"}
    assert _eval(f"a={data / 'a.jsonl'}", f"b={data / 'b.jsonl'}", "--reference", data / "ref.jsonl", "--out",
                 "reports/eval", "--metrics", "lexical/distinct-2,dup/exact-rate") == 0
    rel = json.loads((m1 / "repo" / "reports" / "eval" / "run.json").read_text())["load"]["from_out"]
    assert rel["reference"] == "../../../shared/data/x/ref.jsonl" and rel["candidates"][1] == ["b", "../../../shared/data/x/b.jsonl"]

    m2 = tmp_path / "m2"
    shutil.move(str(m1), str(m2))  # the recorded absolute paths no longer exist
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYNTHBENCH_DATA", str(tmp_path / "nowhere"))
    folder = m2 / "repo" / "reports" / "moved"
    code, text, err = _compare(capsys, f"{folder}:a", f"{folder}:b", "--resamples", 20, "--out", tmp_path / "c.md")
    assert code == 0, err
    assert {m["metric"] for m in json.loads((tmp_path / "c.json").read_text())["metrics"]} >= {"lexical/distinct-2"}
    ev = m2 / "repo" / "reports" / "eval"
    code, text, err = _compare(capsys, f"{ev}:a", f"{ev}:b", "--resamples", 20, "--out", tmp_path / "ev.md")
    assert code == 0, err

    # a run.json from before the relative paths were recorded: the suite file as the suite run was given
    # it, from where compare is started, and this session's data root
    meta = json.loads((folder / "run.json").read_text())
    del meta["load"]["from_out"]
    (folder / "run.json").write_text(json.dumps(meta))
    monkeypatch.chdir(m2 / "repo")
    monkeypatch.setenv("SYNTHBENCH_DATA", str(m2 / "shared" / "data"))
    code, text, err = _compare(capsys, "reports/moved:a", "reports/moved:b", "--resamples", 20, "--out", tmp_path / "d.md")
    assert code == 0, err
    # and with nothing to find, one line that names the missing suite file
    monkeypatch.chdir(tmp_path)
    code, text, err = _compare(capsys, f"{folder}:a", f"{folder}:b", "--resamples", 20, "--out", tmp_path / "e.md")
    assert code == 2 and "s.yaml" in err and "Traceback" not in err
