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
