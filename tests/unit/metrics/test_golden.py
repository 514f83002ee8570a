"""Golden values (issue #24): every metric on a fixed corpus, stored with its declared version.

A value that changes while the metric's version stays the same fails here, with a message saying to bump
the version: a bump makes every stored record of the metric stale (its signature changes), so ``run`` and
``eval`` recompute it and ``report`` never shows the old number as current.
"""

from __future__ import annotations

import json

import pytest

from harness import metrics as registry
from tests.golden import check, golden


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    import os

    old = os.environ.get("SYNTHBENCH_CACHE")
    os.environ["SYNTHBENCH_CACHE"] = str(tmp_path_factory.mktemp("golden-cache"))  # computed, not read from a cache
    try:
        return golden.compute()
    finally:
        if old is None:
            os.environ.pop("SYNTHBENCH_CACHE", None)
        else:
            os.environ["SYNTHBENCH_CACHE"] = old


def _infos():
    return {n: registry.info(n) for n in registry.names()}


def test_golden_values_hold_for_every_metric_version(fresh):
    stored = json.loads(golden.VALUES.read_text(encoding="utf-8"))
    stored_on = golden.MACHINE.read_text(encoding="utf-8").strip() if golden.MACHINE.exists() else ""
    bad = check.problems(stored, fresh, _infos(), same_machine=stored_on == check.machine())
    assert not bad, "\n".join(bad)


def test_other_machines_get_a_last_bits_allowance_and_no_more():
    """Stored on another CPU, a bit-identical metric may move in its last bits (libm/BLAS kernels), not more."""
    info: dict = {}  # an undeclared metric: tolerance 0
    stored = {"m": {"version": 1, "values": {"a": 0.0013636807632193323}}}
    ulp = {"m": {"version": 1, "values": {"a": 0.0013636807632193327}}}
    real = {"m": {"version": 1, "values": {"a": 0.0013636807633}}}
    assert check.problems(stored, ulp, info, same_machine=True)
    assert not check.problems(stored, ulp, info, same_machine=False)
    assert check.problems(stored, real, info, same_machine=False)


def test_every_metric_without_a_model_has_golden_values(fresh):
    """The corpus covers every metric that needs no causal LM, judge or lm-eval (instruction, labelled,
    reference and test metrics alike)."""
    missing = [s.name for s in golden.specs() if s.name not in fresh]
    assert not missing, missing


def test_a_code_change_without_a_version_bump_fails(fresh, monkeypatch):
    """Change what a metric computes but not its version: the check names it and says to bump it."""
    from harness.metrics.registry import MetricSpec, get
    from harness.run.runner import RunConfig, run

    spec = get("lexical/distinct-1")
    moved = MetricSpec(spec.name, f"{__name__}:_moved_distinct_1", dict(spec.args), decl=spec.info)
    from tests.conftest import FakeEmbedder

    cands, ref, test, _, _ = golden.corpora()
    res = run([(c, "candidate") for c in cands], ref, [moved], None, RunConfig(progress=False),
              log=lambda m: None, embedder=FakeEmbedder(), test=test)
    now = {"lexical/distinct-1": {"version": spec.info.version, "values": {r.dataset: r.value for r in res.results}}}
    stored = {"lexical/distinct-1": {"version": spec.info.version,
                                     "values": {k: v for k, v in fresh["lexical/distinct-1"]["values"].items()
                                                if k in now["lexical/distinct-1"]["values"]}}}
    bad = check.problems(stored, now, _infos())
    assert bad and all("bump its version" in b for b in bad)
    # with the version bumped (and the golden file not regenerated) the check asks for regeneration
    bumped = {"lexical/distinct-1": dict(stored["lexical/distinct-1"], version=spec.info.version - 1)}
    assert "regenerate" in check.problems(bumped, now, _infos())[0]


def _moved_distinct_1(ctx, **args):
    """distinct-1 with a changed formula (0.1% lower) under the same declaration and version."""
    import dataclasses

    score = registry.get("lexical/distinct-1").fn(ctx, **args)
    return dataclasses.replace(score, value=score.value * 0.999)


def test_tolerances_are_declared_only_where_measured():
    """Exact (0) unless the metric's declaration says how far it may move (a number below 0.1)."""
    tols = {n: registry.info(n).tolerance for n in registry.names()}
    assert all(0 <= t < 0.1 for t in tols.values())
    assert tols["lexical/distinct-1"] == 0 and tols["dup/exact-rate"] == 0
