"""Every declared resampler (``resampler=`` in a metric's ``@metric``) against the metric itself, on real
CLINC150 rows: on the same resample (a permutation's two sides, a half-sample's two sides with the halved
reference) the value from sufficient statistics equals the value recomputed from the rows, exactly or to
floating-point tolerance. The approximate ones (declared so) are checked against a stated bound."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FakeEmbedder

DATA = Path(os.environ.get("SYNTHBENCH_DATA", "/work/shared/data"))
CLINC = DATA / "clinc150_real" / "train.jsonl"
pytestmark = pytest.mark.skipif(not CLINC.exists(), reason="needs the CLINC150 data (SYNTHBENCH_DATA)")

# approximate resamplers and their stated bound on |approximate - exact| on these rows
APPROXIMATE = {"distance/mmd": 2e-3, "semantic/cluster-entropy": 0.15, "semantic/ref-cluster-coverage": 0.12,
               "faith/reference-agreement": 0.1}
# approximate only in half-samples: exact under permutations, which keep the reference
EXACT_UNDER_PERMUTATIONS = {"semantic/ref-cluster-coverage", "faith/reference-agreement"}


def _corpus(name, rows, dup_every=0):
    from harness.types import Corpus

    texts = [r["text"] for r in rows]
    labels = [r["label"] for r in rows]
    if dup_every:  # plant exact duplicates so that the duplicate statistics have something to count
        for i in range(0, len(texts), dup_every):
            texts[i] = texts[(i + 1) % len(texts)]
            labels[i] = labels[(i + 1) % len(texts)]
    return Corpus(name=name, source=name, kind="classification", texts=tuple(texts), labels=tuple(labels),
                  n_source_rows=len(texts))


@pytest.fixture(scope="module")
def setup():
    from harness.analysis.comparison import VectorTable, draw_resamples, pooled
    from harness.metrics.base import Context

    rows = [json.loads(line) for line in CLINC.open(encoding="utf-8")]
    keep = sorted({r["label"] for r in rows})[:12]  # 12 intents, 100 rows each: per-class metrics have rows
    rows = [r for r in rows if r["label"] in keep]
    random.Random(26).shuffle(rows)
    ca, cb, ref = _corpus("A", rows[:300]), _corpus("B", rows[300:600], dup_every=7), _corpus("ref", rows[600:1000])
    emb = VectorTable(FakeEmbedder(), list(ca.texts) + list(cb.texts) + list(ref.texts))
    ref_ctx = Context(ref, 0, emb, role="reference")
    pool = Context(pooled(ca, cb), 0, emb, reference=ref_ctx)
    draws = draw_resamples(len(ca), len(cb), len(ref), None, 2, seed=3)
    return {"ca": ca, "cb": cb, "ref": ref, "emb": emb, "pool": pool, "pool_corpus": pooled(ca, cb),
            "draws": draws}


def _declared():
    from harness import metrics as registry

    out = []
    for name in registry.names():
        info = registry.info(name)
        if info.resampler is not None and not info.opt_in:
            out.append(name)
    return out


def _subsets(s):
    """(rows, ref_rows) of a permutation's two sides and a half-sample's two sides."""
    d, na = s["draws"], len(s["ca"])
    idx = d.perms[0]
    ha, hb, hr, _ = d.pooled_half(0)
    return [(idx[:na], None), (idx[na:], None), (ha, hr), (hb, hr)]


def _recomputed(s, spec, rows, ref_rows):
    from harness.analysis.comparison import take
    from harness.metrics.base import Context

    ref = s["ref"] if ref_rows is None else take(s["ref"], ref_rows)
    ref_ctx = Context(ref, 0, s["emb"], role="reference")
    return float(spec(Context(take(s["pool_corpus"], rows), 0, s["emb"], reference=ref_ctx)).value)


def test_every_light_set_metric_declares_a_resampler_or_is_listed():
    """The set-level light metrics without sufficient statistics are exactly these (compare recomputes them)."""
    from harness import metrics as registry

    missing = sorted(n for n in registry.names()
                     if registry.info(n).resample == "set" and registry.info(n).cost == "light"
                     and not registry.info(n).opt_in and registry.info(n).resampler is None)
    assert missing == sorted([
        "lexical/compression-ratio",
        "memo/dcr-closer-than-holdout", "faith/label-issue-rate",
        "instr/grounding", "instr/relevance", "instr/relevance-low-rate"])


@pytest.mark.parametrize("name", _declared())
def test_resampler_equals_the_metric_on_the_same_rows(setup, name):
    from harness import metrics as registry
    from harness.analysis.comparison import resampler_of
    from harness.metrics.base import MetricSkipped

    info = registry.info(name)
    spec = registry.get(name)
    args = {**spec.args, **info.neutral_args}
    res = resampler_of(info)(setup["pool"], **args)
    assert res is not None
    approximate = getattr(res, "approximate", None)
    assert bool(approximate) == (name in APPROXIMATE), f"{name}: declare its bound in APPROXIMATE"
    calls = _subsets(setup)
    batch = res.values([(r, h, None) for r, h in calls]) if hasattr(res, "values") else None
    for k, (rows, ref_rows) in enumerate(calls):
        try:
            want = _recomputed(setup, spec, rows, ref_rows)
        except MetricSkipped:  # where the metric does not apply, neither does its resampler
            with pytest.raises(MetricSkipped):
                res.value(rows, ref_rows)
            continue
        got = res.value(rows, ref_rows)
        if batch is not None:  # the batched form gives the same numbers as one call at a time
            assert math.isclose(batch[k], got, rel_tol=1e-12, abs_tol=1e-15), (name, k)
        if approximate:
            exact_here = name in EXACT_UNDER_PERMUTATIONS and ref_rows is None
            bound = 1e-12 if exact_here else APPROXIMATE[name]
            assert abs(got - want) <= bound, (name, k, got, want)
        else:
            tol = max(1e-9, info.tolerance)
            assert math.isclose(got, want, rel_tol=tol, abs_tol=1e-12), (name, k, got, want)


def test_near_duplicate_pairs_restrict_to_subsets(setup):
    """The planted duplicates make the duplicate resamplers count something on every subset."""
    from harness import metrics as registry
    from harness.analysis.comparison import resampler_of

    for name in ("dup/exact-rate", "dup/near-rate"):
        res = resampler_of(registry.info(name))(setup["pool"], **registry.get(name).args)
        assert res.value(np.arange(300, 600)) > 0.05


def test_reference_agreement_refit_is_exact_in_half_samples(setup):
    """With ``refit`` the reference classifier is fitted on each reference half, as the metric would be:
    exact on every subset; the default keeps the full reference's classifier (the approximation above)."""
    from harness import metrics as registry
    from harness.metrics.direct.faithfulness import reference_agreement_resampler

    spec = registry.get("faith/reference-agreement")
    res = reference_agreement_resampler(setup["pool"], **spec.args, refit=True)
    assert not getattr(res, "approximate", None)
    for rows, ref_rows in _subsets(setup):
        want = _recomputed(setup, spec, rows, ref_rows)
        assert math.isclose(res.value(rows, ref_rows), want, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("neighbours", [3, 8, 64])
def test_prdc_balls_from_neighbour_lists_equal_the_dense_computation(setup, neighbours):
    """A reference selection's radii, ball members and near pairs read from the sorted neighbour lists
    equal the dense computation over Drr[r, r] and Dpr[:, r]; lists of 3 and 8 force the fallbacks (a
    radius past the list, a ball holding the whole list), and every PRDC value on the planted-duplicate
    rows is the metric's."""
    from harness import metrics as registry
    from harness.metrics.direct.distance import _PRDCResampler

    engine = _PRDCResampler(setup["pool"], k=5, max_rows=10_000, neighbours=neighbours)
    rng = np.random.default_rng(neighbours)
    for size in (400, 200, 60):
        r = np.sort(rng.choice(engine.m, size, replace=False))
        counts_all, ball_ptr, members, near_ptr, near_ref, near_d = engine._balls(r)
        r_real = np.partition(engine.Drr[np.ix_(r, r)], 5, axis=1)[:, 5]
        S = engine.Dpr[:, r]
        ball = S < r_real[None, :]
        assert np.array_equal(counts_all, ball.sum(axis=1))
        for j in range(len(r)):
            assert sorted(members[ball_ptr[j]:ball_ptr[j + 1]].tolist()) == np.flatnonzero(ball[:, j]).tolist()
        ub = engine.Dpp[np.arange(engine.n_p), engine.nbr[:, -1]]
        want = {(int(p), int(j)) for p, j in zip(*np.nonzero(S < ub[:, None]))}
        row_of = np.repeat(np.arange(engine.n_p), np.diff(near_ptr))
        assert set(zip(row_of.tolist(), near_ref.tolist())) == want
        assert np.array_equal(near_d, S[row_of, near_ref])
    for rows, ref_rows in _subsets(setup):
        spec_vals = {w: _recomputed(setup, registry.get(f"distance/{w}"), rows, ref_rows)
                     for w in ("precision", "recall", "density", "coverage")}
        got = engine.get(rows, ref_rows)
        for w, want in spec_vals.items():
            assert math.isclose(got[w], want, rel_tol=1e-12, abs_tol=1e-12), (neighbours, w)


def test_frechet_on_a_singular_reference_selection_falls_back_to_the_square_root(setup):
    """A reference selection with fewer rows (40) than dimensions (64) has a singular covariance, which
    has no Cholesky factor: the resampler takes its symmetric square root and still equals the metric."""
    from harness import metrics as registry
    from harness.metrics.direct.distance import frechet_resampler

    spec = registry.get("distance/frechet")
    res = frechet_resampler(setup["pool"])
    ref_rows = np.sort(np.random.default_rng(1).choice(len(setup["ref"]), 40, replace=False))
    cov = np.cov(np.asarray(setup["emb"].embed([setup["ref"].texts[i] for i in ref_rows]), dtype=np.float64),
                 rowvar=False)
    with pytest.raises(np.linalg.LinAlgError):
        np.linalg.cholesky(cov)
    for rows in (np.arange(0, 300), np.arange(150, 450)):
        want = _recomputed(setup, spec, rows, ref_rows)
        # rel 1e-7, not 1e-9: the square roots of the 24 zero eigenvalues, which rounding leaves near 1e-17
        # on either side's factorisation, add a few 1e-9 each (C1^(1/2) C2 C1^(1/2) vs F^T C1 F)
        assert math.isclose(res.value(rows, ref_rows), want, rel_tol=1e-7, abs_tol=1e-12)


def test_bleu_resamplers_on_pooled_ngram_ids_equal_a_fresh_encoding_bit_for_bit(setup):
    """Self-BLEU and BLEU homogenization of a subset cut from the pooled n-gram ids are the values of the
    subset encoded afresh, exactly (the pool's ids order the n-grams as the subset's own do); a subset
    with repeated rows takes the fresh encoding."""
    from harness.metrics.direct.homogenization import (
        _encoded,
        _full,
        _homogenization_bleu_encoded,
        _self_bleu_encoded,
        homogenization_bleu_resampler,
        self_bleu_resampler,
        subset_encoded,
    )

    pool = setup["pool"]
    enc = _encoded(pool, "13a")
    rng = np.random.default_rng(5)
    subsets = [rng.permutation(600)[:300], np.sort(rng.choice(600, 150, replace=False)), rng.integers(0, 600, 200)]
    for make, per_row in ((self_bleu_resampler, _self_bleu_encoded),
                          (homogenization_bleu_resampler, _homogenization_bleu_encoded)):
        res = make(pool, 4, "13a")
        for rows in subsets:
            want = float(np.mean(per_row(_full(subset_encoded(enc, rows)), 4)))
            assert res.value(rows) == want


@pytest.mark.parametrize("n_first,n_rest", [(300, 200), (301, 200), (5, 0), (2, 1)])
def test_pair_median_is_numpy_median_of_the_upper_triangle(setup, n_first, n_rest):
    """MMD's fixed bandwidth: the median of the distinct pairs, from the blocks, equals np.median of the
    strict upper triangle exactly (odd and even pair counts, repeated rows giving zero distances)."""
    from harness.metrics.direct.distance import _pair_median

    X = np.asarray(setup["emb"].embed(list(setup["pool_corpus"].texts)), dtype=np.float64)[:600]
    X[10] = X[11]  # a zero distance off the diagonal
    D = np.maximum(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1), 0)
    np.fill_diagonal(D, 0)
    rest = np.sort(np.random.default_rng(n_first).choice(np.arange(n_first, 600), n_rest, replace=False))
    both = np.concatenate([np.arange(n_first), rest])
    want = np.median(D[np.ix_(both, both)][np.triu_indices(len(both), 1)])
    assert _pair_median(D, n_first, rest) == want
