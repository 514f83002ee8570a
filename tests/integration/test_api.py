"""The Python API (harness.evaluate, load, run_suite, compare, metrics) gives what the CLI gives."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SHARED, read_jsonl, shared

D = "intent_paraphrases_chatgpt_vs_crowd/clinc150/"
METRICS = "lexical,length,dup,surface/label-jsd,surface/vocab-jsd,memo/exact-copy-rate"


def _records(path):
    return {(d["dataset"], d["metric"]): d for d in map(json.loads, path.read_text().splitlines())}


def _same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        x, y = dict(a[key]), dict(b[key])
        x.pop("seconds"), y.pop("seconds")
        assert x == y, key


@pytest.fixture(scope="module")
def rows():
    return {"gpt": read_jsonl(shared(D + "gpt.jsonl"), 120), "human": read_jsonl(shared(D + "human.jsonl"), 120),
            "filt": read_jsonl(shared(D + "gpt_filt.jsonl"), 120), "ref": read_jsonl(shared(D + "orig_train.jsonl"), 150)}


def test_evaluate_on_lists_frames_and_datasets_equals_the_cli(rows, tmp_path):
    import datasets
    import pandas as pd

    import harness

    for name, rs in rows.items():
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rs))
    cli_out = tmp_path / "cli"
    r = subprocess.run([sys.executable, "-m", "harness.cli", "eval", *(str(tmp_path / f"{n}.jsonl") for n in
                        ("gpt", "human", "filt")), "--reference", str(tmp_path / "ref.jsonl"), "--metrics", METRICS,
                        "--sample-size", "100", "--out", str(cli_out), "--no-progress"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr

    ref = harness.load(datasets.Dataset.from_list(rows["ref"]), name="ref")
    run = harness.evaluate({"gpt": rows["gpt"], "human": pd.DataFrame(rows["human"]),
                            "filt": datasets.Dataset.from_list(rows["filt"])},
                           reference=ref, metrics=METRICS.split(","), sample_size=100)
    api = {(d["dataset"], d["metric"]): d for d in run.records}
    _same(api, _records(cli_out / "results.jsonl"))
    assert run.out is None and not list(tmp_path.glob("api*"))  # nothing written without out=

    frame = run.to_pandas()
    assert len(frame) == len(api) and set(frame["status"]) == {"ok"}
    assert frame.loc[frame.metric == "dup/exact-rate", "higher_is_better"].tolist() == [False] * 4
    # written out, the in-memory run is the CLI's folder
    run.write(tmp_path / "api")
    _same(_records(tmp_path / "api" / "results.jsonl"), _records(cli_out / "results.jsonl"))
    assert (tmp_path / "api" / "report.md").exists() and (tmp_path / "api" / "run.json").exists()


def test_evaluate_with_out_resumes_like_the_cli(rows, tmp_path):
    import harness

    out = tmp_path / "o"
    first = harness.evaluate({"gpt": rows["gpt"]}, reference=rows["ref"], metrics=["lexical/distinct-2"], out=out)
    assert (first.computed, first.reused) == (2, 0) and (out / "results.jsonl").exists()
    again = harness.evaluate({"gpt": rows["gpt"]}, reference=rows["ref"], metrics=["lexical/distinct-2"], out=out)
    assert (again.computed, again.reused) == (0, 2)
    assert [d["value"] for d in again.records] == [d["value"] for d in first.records]
    assert json.loads((out / "run.json").read_text())["schema_version"] == 1


def test_candidates_in_every_form(rows, tmp_path):
    import harness

    texts = [r["text"] for r in rows["gpt"][:30]]
    one = harness.evaluate(texts, metrics=["lexical/distinct-1"])  # one candidate: a list of strings
    assert [d["dataset"] for d in one.records] == ["candidate"]
    p = tmp_path / "gpt.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows["gpt"][:30]))
    two = harness.evaluate([str(p), f"again={p}"], metrics=["lexical/distinct-1"])  # paths, as the CLI takes them
    assert [d["dataset"] for d in two.records] == ["gpt", "again"]
    assert two.records[0]["value"] == two.records[1]["value"] == one.records[0]["value"]
    with pytest.raises(harness.UserError, match="a list of int"):
        harness.evaluate([1, 2, 3])
    with pytest.raises(harness.UserError, match="no metric or group named 'lexicl'"):
        harness.evaluate(texts, metrics=["lexicl"])


def test_flags_frame(rows):
    import harness

    dup = rows["gpt"][:20] + rows["gpt"][:5]
    run = harness.evaluate({"dup": dup}, metrics=["dup/exact-rate"])
    flags = run.flags
    assert sorted(flags["row"]) == [20, 21, 22, 23, 24] and all("duplicate" in r for r in flags["reasons"])
    quiet = harness.evaluate({"dup": dup}, metrics=["dup/exact-rate"], quote_text=False)
    assert set(quiet.flags["preview"]) == {"<text withheld: quote_text is off>"}


def test_the_readme_api_section_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(section.strip().splitlines()) <= 25
    shared(D + "gpt.jsonl")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace("../shared/data", str(SHARED)), "README.md", "exec"), namespace)  # noqa: S102
    run = namespace["run"]
    assert not run.failed and len(run.results) > 10 and (tmp_path / "results" / "clinc" / "report.md").exists()


def test_import_and_help_stay_light():
    code = ("import sys, harness; harness.__version__; from harness.cli import main; "
            "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['--help'])\n    except SystemExit: pass\n"
            "heavy = [m for m in ('numpy', 'torch', 'pandas', 'sklearn', 'transformers') if m in sys.modules]\n"
            "assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_no_module_imports_a_private_helper_of_the_cli():
    offenders = []
    for path in [*(ROOT / "harness").rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "bench").glob("*.py")]:
        rel = str(path.relative_to(ROOT))
        for line in path.read_text(encoding="utf-8").splitlines():
            private = re.search(r"from harness\.cli(\.\w+)? import .*\b_[a-z]\w*", line)
            outside = rel.startswith("harness/") and not rel.startswith("harness/cli/") and "from harness.cli" in line
            if (private or outside) and "re.search" not in line:
                offenders.append(f"{rel}: {line.strip()}")
    assert offenders == []


def test_compare_two_candidates_of_an_api_run(rows, tmp_path):
    import harness

    for name in ("gpt", "human", "ref"):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[name]))
    out = tmp_path / "o"
    run = harness.evaluate([str(tmp_path / "gpt.jsonl"), str(tmp_path / "human.jsonl")],
                           reference=str(tmp_path / "ref.jsonl"), metrics=["lexical/distinct-1", "length/mean-words"],
                           sample_size=100, out=out)
    assert run.meta["load"]["candidates"][0][0] == "gpt"  # compare can reload these rows
    res = harness.compare((run, "gpt"), f"{out}:human", metrics=["lexical/distinct-1", "length/mean-words"],
                          resamples=20, out=tmp_path / "cmp.md")
    got = {r["metric"]: r for r in res["metrics"]}
    stored = {(d["dataset"], d["metric"]): d["value"] for d in run.records}
    assert got["lexical/distinct-1"]["a"] == pytest.approx(stored[("gpt", "lexical/distinct-1")])
    assert got["length/mean-words"]["b"] == pytest.approx(stored[("human", "length/mean-words")])
    assert (tmp_path / "cmp.md").exists()
    with pytest.raises(harness.UserError, match="in memory"):
        harness.compare((harness.evaluate(rows["gpt"][:20], metrics=["lexical/distinct-1"]), "candidate"), (run, "gpt"))


def test_evaluate_without_progress_draws_no_bar(capfd, monkeypatch):
    """progress=False (the API's default) silences the metrics' own loops too (the utility fits), and the
    process's TQDM_DISABLE is as it was afterwards."""
    from harness.api import evaluate

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    rows = read_jsonl(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/gpt.jsonl"), limit=300)
    test = read_jsonl(shared("intent_paraphrases_chatgpt_vs_crowd/clinc150/orig_test.jsonl"), limit=300)
    capfd.readouterr()
    run = evaluate({"gpt": rows}, test=test, metrics=["utility/tfidf-lr/accuracy"], log=lambda m: None)
    err = capfd.readouterr().err
    assert [r.metric for r in run.results] == ["utility/tfidf-lr/accuracy"]
    assert "\r" not in err and "fit/s" not in err, err[-500:]
    import os

    assert "TQDM_DISABLE" not in os.environ
