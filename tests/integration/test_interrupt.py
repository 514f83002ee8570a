"""Interrupted runs and determinism.

A run is killed with SIGKILL at several points (no chance to clean up), then run again: the
results file is never half-written, finished results are reused rather than recomputed, and the
final results equal those of a run that was never interrupted. Two runs with one seed give
identical numbers; another seed changes only the metrics that declare themselves seeded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, shared

METRICS = ("lexical/distinct-1,lexical/distinct-2,lexical/entropy-2,lexical/compression-ratio,lexical/mattr,"
           "dup/exact-rate,dup/near-rate,surface/label-jsd,surface/length-ks,surface/vocab-jsd,"
           "memo/exact-copy-rate,memo/ngram-overlap-rate,distance/c2st-tfidf")


def _datasets():
    d = shared("intent_paraphrases_chatgpt_vs_crowd/clinc150")
    return [f"gpt={d / 'gpt.jsonl'}", f"human={d / 'human.jsonl'}"], str(d / "orig_train.jsonl")


def _cmd(out: Path, seed: int = 0):
    cands, ref = _datasets()
    return [sys.executable, "-m", "harness.cli", "eval", *cands, "--reference", ref, "--out", str(out),
            "-m", METRICS, "--seed", str(seed), "--sample-size", "600", "--no-progress"]


def _env():
    return dict(os.environ, TQDM_DISABLE="1", PYTHONHASHSEED="0")


def _values(out: Path) -> dict:
    recs = [json.loads(x) for x in (out / "results.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    return {(r["dataset"], r["metric"]): (r["value"], r["ci"], r["signature_key"]) for r in recs}


def _lines(path: Path) -> list[str]:
    try:
        return [x for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
    except FileNotFoundError:
        return []


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "out"
    r = subprocess.run(_cmd(out), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


@pytest.mark.parametrize("kill_after", [0, 2, 7])
def test_sigkill_then_resume(kill_after, reference_run, tmp_path):
    """Kill when `kill_after` results are on disk (0: during loading), then rerun."""
    out = tmp_path / "out"
    results = out / "results.jsonl"
    proc = subprocess.Popen(_cmd(out), cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(_lines(results)) >= kill_after and (kill_after > 0 or time.time() > deadline - 299):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before the kill point: make the run longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    done = _lines(results)
    for line in done:  # every record on disk is complete JSON
        json.loads(line)
    r = subprocess.run(_cmd(out), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    m = re.search(r"(\d+) computed, (\d+) reused", r.stderr)
    assert m, r.stderr[-1000:]
    computed, reused = int(m.group(1)), int(m.group(2))
    assert reused == len(done)  # everything finished before the kill is reused, nothing else
    assert computed + reused == len(_values(reference_run))
    assert _values(out) == _values(reference_run)


def _seeded(metric: str) -> bool:
    from harness import metrics

    return metrics.get(metric).info.seeded


# slow (30 s): three more full runs of the module's suite; resume and interruption stay in make test
@pytest.mark.slow
def test_same_seed_same_results_other_seed_changes_only_seeded(reference_run, tmp_path):
    cands, ref = _datasets()
    outs = {}
    for name, seed in (("a", 0), ("b", 1)):
        out = tmp_path / name
        cmd = [sys.executable, "-m", "harness.cli", "eval", *cands, "--reference", ref, "--out", str(out),
               "-m", METRICS, "--seed", str(seed), "--no-progress"]
        r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-2000:]
        outs[name] = {k: v[:2] for k, v in _values(out).items()}
    again = tmp_path / "a2"
    cmd = [sys.executable, "-m", "harness.cli", "eval", *cands, "--reference", ref, "--out", str(again),
           "-m", METRICS, "--seed", "0", "--no-progress"]
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0
    assert {k: v[:2] for k, v in _values(again).items()} == outs["a"]  # bit-identical, CIs included
    changed = {k[1] for k in outs["a"] if outs["a"][k] != outs["b"][k]}
    assert changed, "no metric moved with the seed"
    assert all(_seeded(m) or _bootstrapped(outs, m) for m in changed), changed
    fixed_value = {k[1] for k in outs["a"] if outs["a"][k][0] == outs["b"][k][0]}
    assert all(m in fixed_value for m in {k[1] for k in outs["a"]} if not _seeded(m))


def _bootstrapped(outs, metric) -> bool:
    """A metric that is not seeded may still draw its interval by a seeded bootstrap: then only the
    interval may change, never the value."""
    return all(outs["a"][k][0] == outs["b"][k][0] for k in outs["a"] if k[1] == metric)
