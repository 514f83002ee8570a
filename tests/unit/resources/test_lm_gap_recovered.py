"""LM performance gap recovered (issue #23): the ratio and its paired bootstrap, the metric specs made only
when real training text is given, and the metric on a stand-in resource (no model: the fine-tuning itself is
tested in test_lm_finetune.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.metrics.base import Context, MetricSkipped
from harness.metrics.indirect import lm_finetune as M
from harness.resources import lmeval as L
from harness.types import Corpus


def _ppl(ll, nbytes, words):
    return L.TaskResult("t", L.PERPLEXITY, docs={"loglikelihood": list(ll), "bytes": list(nbytes),
                                                 "words": list(words)}, n=len(ll))


@pytest.fixture
def results():
    rng = np.random.default_rng(0)
    n = 40
    ll = -rng.uniform(50, 200, n)
    nbytes, words = rng.integers(100, 400, n), rng.integers(20, 80, n)
    base = _ppl(ll, nbytes, words)
    # the candidate gains about half of what real text gains, per document, with noise
    real = [_ppl(ll + 10 + rng.normal(0, 1, n), nbytes, words) for _ in range(2)]
    cand = [_ppl(ll + 5 + rng.normal(0, 1, n), nbytes, words) for _ in range(2)]
    return base, cand, real


def test_gap_recovered_is_the_ratio_of_the_two_gains_with_a_paired_interval(results):
    base, cand, real = results
    value, ci, dropped = L.gap_recovered(base, cand, real, "bits_per_byte")
    b = L.score(base, "bits_per_byte")
    want = (np.mean([L.score(t, "bits_per_byte") for t in cand]) - b) / (np.mean([L.score(r, "bits_per_byte") for r in real]) - b)
    assert math.isclose(value, want, rel_tol=1e-12) and 0.4 < value < 0.6
    assert ci[0] < value < ci[1] and ci[1] - ci[0] < 0.2 and dropped == 0
    # the ratio does not depend on the direction of the metric: accuracy gains give the same reading
    acc_b = L.TaskResult("m", L.MULTIPLE_CHOICE, docs={"acc": [0.0] * 20}, n=20)
    acc_real = L.TaskResult("m", L.MULTIPLE_CHOICE, docs={"acc": [1.0] * 10 + [0.0] * 10}, n=20)
    acc_c = L.TaskResult("m", L.MULTIPLE_CHOICE, docs={"acc": [1.0] * 5 + [0.0] * 15}, n=20)
    v, ci, _ = L.gap_recovered(acc_b, [acc_c], [acc_real], "acc")
    assert v == 0.5 and ci[0] <= 0.5 <= ci[1]


class _Task:
    label, name, kind, fingerprint = "held", "held-out responses", L.PERPLEXITY, "f" * 8


class _LMU:
    """Stands in for harness.resources.lm_utility.LMUtility: base and fine-tuned results by corpus."""

    tasks = [_Task()]
    seeds = [0, 1]

    def __init__(self, base, by_corpus, real=None):
        self._b, self._by, self.real = base, by_corpus, real

    def identity(self):
        return {"lm": "stand-in"}

    def base(self):
        return {"held": self._b}

    def tuned(self, corpus):
        return [{"held": r} for r in self._by[corpus.name]]


def test_specs_add_gap_recovered_only_with_real_text_and_the_metric_reads_it(results):
    base, cand, real = results
    c = Corpus("cand", "x", "text", ("a", "b"))
    r = Corpus("real", "y", "text", ("c", "d"))
    without = [s.name for s in M.specs(_LMU(base, {}))]
    assert not any(n.endswith("gap-recovered") for n in without)
    lmu = _LMU(base, {"cand": cand, "real": real}, real=r)
    specs = {s.name: s for s in M.specs(lmu)}
    spec = specs["lm-utility/held/bits-per-byte-gap-recovered"]
    assert spec.info.higher_is_better is True and spec.args["setup"]["real"] == r.fingerprint
    assert "lm-utility/held/word-perplexity-gap-recovered" not in specs  # no delta, no gap recovered
    ctx = Context(c, 0, resources={"lm_eval": lmu})
    got = spec(ctx)
    assert got.value == pytest.approx(L.gap_recovered(base, cand, real, "bits_per_byte")[0], rel=1e-12)
    assert got.details["real_tuned"] and got.ci[0] < got.value < got.ci[1]
    with pytest.raises(MetricSkipped, match="candidates"):
        spec(Context(r, 0, role="reference", resources={"lm_eval": lmu}))
    flat = _LMU(base, {"cand": cand, "real": [base, base]}, real=r)
    with pytest.raises(MetricSkipped, match="no gap to recover"):
        {s.name: s for s in M.specs(flat)}["lm-utility/held/bits-per-byte-gap-recovered"](
            Context(c, 0, resources={"lm_eval": flat}))


def test_the_lm_utility_table_shows_gap_recovered_beside_the_delta():
    from types import SimpleNamespace as R

    from harness.report.lm_utility_table import render_table

    meta = {"reference": {"name": "base"}, "candidates": [{"name": "cand", "rows": 10}],
            "tasks": [{"label": "held", "kind": "perplexity", "docs": 40, "source": "held.jsonl"}],
            "recipe": {"mode": "lora", "token_budget": 1000, "lr": 2e-4, "batch_size": 16, "max_length": 512,
                       "lora_r": 8, "lora_alpha": 16},
            "lm": {"identity": "stand-in"}, "seeds": [0], "lm_eval": "0.4", "device": "cpu",
            "real": {"name": "human-text"}}
    rows = [R(dataset="cand", metric="lm-utility/held/bits-per-byte-delta", value=-0.02, ci=(-0.03, -0.01)),
            R(dataset="cand", metric="lm-utility/held/bits-per-byte-gap-recovered", value=0.512, ci=(0.4, 0.6))]
    table = render_table(rows, meta)
    header = next(line for line in table.splitlines() if line.startswith("| model"))
    assert "held: gap recovered bits/byte ↑" in header and "0.512" in table and "human-text" in table
    assert "gap recovered" not in render_table(rows[:1], {**meta, "real": None})
