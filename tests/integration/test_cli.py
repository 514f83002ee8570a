"""End to end through the real CLI, on real data and the real default embedder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, shared


def synthbench(*args, env_extra=None, timeout=600):
    env = dict(os.environ, TQDM_DISABLE="1", HF_HUB_OFFLINE="1", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


def test_help_is_fast_and_imports_nothing_heavy():
    code = ("import sys, harness.cli as c; c.build_parser(); "
            "print(sorted(m for m in ('torch','transformers','datasets','sklearn','numpy') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip() == "[]", r.stdout
    t = time.perf_counter()
    assert synthbench("--help").returncode == 0
    assert time.perf_counter() - t < 5


def test_metrics_lists_every_metric():
    from harness import metrics

    r = synthbench("metrics")
    assert r.returncode == 0
    for name in metrics.names():
        assert name in r.stdout


def test_eval_clinc150_end_to_end(tmp_path, cache_dir):
    d = shared("intent_paraphrases_chatgpt_vs_crowd/clinc150")
    out = tmp_path / "x"
    args = ["eval", str(d / "gpt.jsonl"), str(d / "human.jsonl"), "--reference", str(d / "orig_train.jsonl"),
            "--sample-size", "150", "--out", str(out)]
    r = synthbench(*args, env_extra={"SYNTHBENCH_CACHE": str(cache_dir)})
    assert r.returncode == 0, r.stderr
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    from harness import metrics
    from harness.run.runner import REFERENCE_ITSELF

    meta = json.loads((out / "run.json").read_text())
    skipped = {(d, m) for d, m, _ in meta["skipped"]}
    done = {(x["dataset"], x["metric"]) for x in recs}
    assert not done & skipped
    # every default metric is either computed or reported as not computed (with its reason)
    expected = set()
    for ds in ("orig_train", "gpt", "human"):
        for spec in metrics.select(None):
            needs = spec.info.needs
            if ds == "orig_train" and ("reference" in needs or "reference_embeddings" in needs):
                continue  # REFERENCE_ITSELF: no comparison of the reference with itself
            expected.add((ds, spec.name))
    assert done | skipped == expected, REFERENCE_ITSELF
    assert ("gpt", "lexical/distinct-2") in done and ("gpt", "semantic/pairwise-cosine-distance") in done
    for x in recs:
        assert {"dataset", "metric", "value", "ci", "higher_is_better", "signature"} <= set(x)
        assert x["signature"]["data"]["sample"]["size"] == 150
    sem = [x for x in recs if x["metric"] == "semantic/pairwise-cosine-distance"]
    assert all(x["signature"]["embedder"] == "sentence-transformers/all-MiniLM-L6-v2" for x in sem)
    assert all(0.5 < x["value"] < 1.2 and x["ci"][0] < x["value"] < x["ci"][1] for x in sem)
    report = (out / "report.md").read_text()
    assert "## Scorecard" in report and "gpt" in report and "human" in report
    assert r.stdout.startswith("SCORECARD") and "semantic/pairwise-cosine-distance" in r.stdout  # the printed tables
    # a rerun into the same folder recomputes nothing
    again = synthbench(*args, env_extra={"SYNTHBENCH_CACHE": str(cache_dir)})
    assert again.returncode == 0
    assert "0 computed" in again.stderr and f"{len(recs)} reused" in again.stderr
    # the report renders again from results alone
    (out / "report.md").unlink()
    assert synthbench("report", str(out)).returncode == 0
    assert (out / "report.md").read_text() == report


def test_sample_size_larger_than_a_candidate(tmp_path):
    d = shared("intent_paraphrases_chatgpt_vs_crowd/clinc150")
    r = synthbench("eval", str(d / "human.jsonl"), "--sample-size", "5000", "--metrics", "lexical",
                   "--out", str(tmp_path))
    assert r.returncode == 2 and "has only 3019 rows" in r.stderr and "Traceback" not in r.stderr


def test_unknown_metric(tmp_path):
    d = shared("intent_paraphrases_chatgpt_vs_crowd/clinc150")
    r = synthbench("eval", str(d / "human.jsonl"), "--metrics", "nope", "--out", str(tmp_path))
    assert r.returncode == 2 and "no metric or group named 'nope'" in r.stderr


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, cache_dir):
    """What `make demo` runs: the demo suite against BBC News; the flawed set is the one the scorecard finds
    worse on diversity and utility, and the page, leaderboard and figures are written."""
    out = tmp_path / "demo"
    r = synthbench("run", str(ROOT / "suites" / "demo.yaml"), "--out", str(out),
                   env_extra={"SYNTHBENCH_CACHE": str(cache_dir)}, timeout=1800)
    assert r.returncode == 0, r.stderr
    report = (out / "leaderboard.md").read_text()
    card = report.split("## Scorecard")[1].split("##")[0]
    (row,) = [line for line in card.splitlines() if line.startswith("| flawed |")]
    assert [c.strip() for c in row.split("|")[4:5] + row.split("|")[7:8]] == ["**worse than plain-prompt, "
                                                                              "attribute-prompted, smollm2-news**"] * 2
    assert (out / "index.html").exists() and any((out / "figures").glob("learning_curve*.png"))
