"""compare on sufficient statistics against the recompute scheme (before issue #26), on real CLINC150
rows: both evaluate the same permutations and half-samples, so for every exactly resampled metric the
p-value, the interval and the verdict are the same; the run says which metrics were recomputed, which
were resampled approximately, and how long it took against its estimate."""

from __future__ import annotations

import json
import math
import random

import pytest

from tests.conftest import FakeEmbedder
from tests.unit.analysis.test_resamplers import CLINC, _corpus

pytestmark = pytest.mark.skipif(not CLINC.exists(), reason="needs the CLINC150 data (SYNTHBENCH_DATA)")

METRICS = ["lexical/distinct-2", "lexical/entropy-2", "lexical/vocab-size", "lexical/mattr",
           "lexical/compression-ratio", "length/std-words", "length/mean-words", "dup/exact-rate", "dup/near-rate",
           "semantic/pairwise-cosine-distance", "semantic/vendi", "semantic/aps", "surface/label-jsd",
           "surface/vocab-jsd", "surface/length-ks", "distance/frechet"]


@pytest.fixture(scope="module")
def pair():
    from harness.analysis.comparison import VectorTable

    rows = [json.loads(line) for line in CLINC.open(encoding="utf-8")]
    random.Random(7).shuffle(rows)
    ca, cb, ref = _corpus("A", rows[:120]), _corpus("B", rows[120:240], dup_every=5), _corpus("ref", rows[240:480])
    emb = VectorTable(FakeEmbedder(), list(ca.texts) + list(cb.texts) + list(ref.texts))
    return ca, cb, ref, emb


def test_statistics_and_recompute_give_the_same_tests(pair):
    from harness.analysis.comparison import compare_corpora

    ca, cb, ref, emb = pair
    logs: list[str] = []
    fast = compare_corpora(ca, cb, ref, metrics=METRICS, resamples=20, seed=1, embedder=emb, log=logs.append,
                           extend=False)
    slow = compare_corpora(ca, cb, ref, metrics=METRICS, resamples=20, seed=1, embedder=emb, fast=False)
    rs = fast["resampling"]
    assert rs["recomputed"] == [{"metric": "lexical/compression-ratio", "reason": "no sufficient statistics declared"}]
    assert rs["approximate"] == []
    assert any("recomputed from the rows" in m and "lexical/compression-ratio" in m for m in logs)
    assert sum(1 for m in logs if m.startswith("compare: [")) == len(rs["statistics"]) + len(rs["approximate"]) + 1
    by = {m["metric"]: m for m in slow["metrics"]}
    for m in fast["metrics"]:
        s = by[m["metric"]]
        assert m["a"] == s["a"] and m["b"] == s["b"]
        assert m["p"] == pytest.approx(s["p"], abs=1e-12), m["metric"]
        assert m["q"] == pytest.approx(s["q"], abs=1e-12), m["metric"]
        assert m["verdict"] == s["verdict"], m["metric"]
        if m["ci"] is not None:
            assert m["ci"] == pytest.approx(s["ci"], rel=1e-6, abs=1e-9), m["metric"]
    assert math.isfinite(rs["estimate_s"]) and rs["seconds"] > 0


def test_a_small_p_value_gets_more_permutations_so_that_one_metric_alone_can_pass_the_correction(pair):
    """With 20 permutations no p-value is below 1/21; a cheap metric whose p-value there is small gets
    EXTENDED_PERMUTATIONS in all (the first 20 the shared ones), others keep 20."""
    from harness.analysis.comparison import EXTENDED_PERMUTATIONS, compare_corpora

    ca, cb, ref, emb = pair
    logs: list[str] = []
    names = ["dup/exact-rate", "length/std-words", "lexical/distinct-2"]
    res = compare_corpora(ca, cb, ref, metrics=names, resamples=20, seed=0, embedder=emb, log=logs.append)
    plain = compare_corpora(ca, cb, ref, metrics=names, resamples=20, seed=0, embedder=emb, extend=False)
    by, by_plain = {m["metric"]: m for m in res["metrics"]}, {m["metric"]: m for m in plain["metrics"]}
    dup = by["dup/exact-rate"]  # B has planted duplicates: the first 20 permutations are all less extreme
    assert by_plain["dup/exact-rate"]["p"] == pytest.approx(1 / 21)
    assert dup["resamples"] == EXTENDED_PERMUTATIONS and dup["p"] < 0.01
    assert any(f"p-value from {EXTENDED_PERMUTATIONS} permutations" in n for n in dup["notes"])
    assert any("more permutations" in m and "dup/exact-rate" in m for m in logs)
    for name, m in by.items():  # a metric that stops at the first stage keeps its p-value
        if m["resamples"] == 20:
            assert m["p"] == by_plain[name]["p"] and by_plain[name]["p"] >= 0.2


def test_approximate_resamplers_are_named_and_take_their_own_observed_difference(pair):
    from harness.analysis.comparison import compare_corpora

    ca, cb, ref, emb = pair
    res = compare_corpora(ca, cb, ref, metrics=["distance/mmd", "semantic/cluster-entropy"], resamples=20, seed=1,
                          embedder=emb)
    assert sorted(res["resampling"]["approximate"]) == ["distance/mmd", "semantic/cluster-entropy"]
    for m in res["metrics"]:
        assert m["resampled"] == "approximate"
        assert any("resampled approximately" in n for n in m["notes"])
        assert 0 < m["p"] <= 1 and m["ci"] is not None


def test_planted_duplicates_are_found_on_statistics(pair):
    from harness.analysis.comparison import compare_corpora

    ca, cb, ref, emb = pair
    res = compare_corpora(ca, cb, ref, metrics=["dup/exact-rate", "lexical/distinct-2"], resamples=200, seed=0,
                          embedder=emb)
    by = {m["metric"]: m for m in res["metrics"]}
    assert by["dup/exact-rate"]["verdict"] == "A better" and by["dup/exact-rate"]["q"] < 0.05
    assert by["dup/exact-rate"]["resampled"] == "statistics"


def test_compare_embeds_at_the_precision_the_runs_recorded():
    """A run at bf16 records ``model@bf16``: compare rebuilds the embedder at bf16 (same identity, so
    the same cached vectors), not at fp32 (which would refuse the identity as a mismatch)."""
    from pathlib import Path

    from harness.analysis.comparison import Side, build_embedder

    def side(identity):
        return Side("A", "x", Path("x"), "x", {"embedder": identity}, {}, {})

    for identity in ("sentence-transformers/all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2@bf16"):
        emb = build_embedder(side(identity), side(identity), None, progress=False)
        assert emb.spec.identity == identity
    assert build_embedder(side("sentence-transformers/all-MiniLM-L6-v2@bf16"),
                          side("sentence-transformers/all-MiniLM-L6-v2@bf16"), None, False).spec.precision == "bf16"


def test_parallel_workers_give_the_numbers_of_one(pair, monkeypatch):
    """Metrics are resampled in threads; each depends only on its own statistics and the shared draws."""
    from harness.analysis.comparison import compare_corpora

    ca, cb, ref, emb = pair
    got = {}
    # the PRDC family and the per-class metrics share one memoised engine, built by whichever thread asks
    # first; compression-ratio (no statistics) is recomputed beside the resamplers
    shared = ["distance/precision", "distance/recall", "distance/density", "distance/coverage",
              "perclass/precision", "perclass/recall", "lexical/self-bleu", "lexical/homogenization-bleu"]
    for w in ("1", "3"):
        monkeypatch.setenv("SYNTHBENCH_COMPARE_WORKERS", w)
        res = compare_corpora(ca, cb, ref, metrics=METRICS + shared, resamples=20, seed=2, embedder=emb)
        assert "lexical/compression-ratio" in [d["metric"] for d in res["resampling"]["recomputed"]]
        got[w] = {m["metric"]: (m["p"], m["q"], m["ci"], m["resamples"]) for m in res["metrics"]}
    assert got["1"] == got["3"]
    monkeypatch.setenv("SYNTHBENCH_COMPARE_WORKERS", "two")
    from harness.errors import UserError

    with pytest.raises(UserError, match="SYNTHBENCH_COMPARE_WORKERS"):
        compare_corpora(ca, cb, ref, metrics=["semantic/vendi"], resamples=5, seed=2, embedder=emb)


def test_row_metrics_share_one_draw_without_changing_their_tests():
    """Row metrics of the same sizes share one draw of relabellings (the same stream each used alone)."""
    import numpy as np

    from harness.analysis.comparison import row_schemes

    rng = np.random.default_rng(3)
    pairs = [(rng.integers(0, 2, 300).astype(float), rng.integers(0, 2, 250).astype(float)),
             (rng.poisson(9, 300).astype(float), rng.poisson(10, 250).astype(float)),
             (rng.integers(0, 2, 40).astype(float), rng.integers(0, 2, 60).astype(float))]
    together = row_schemes(pairs, 3000, seed=5)
    for pair, got in zip(pairs, together):
        assert got == row_schemes([pair], 3000, seed=5)[0]
    assert together[1]["p"] < 0.05 and together[1]["interval"] == "Welch t"
    assert together[0]["interval"].startswith("Newcombe")
