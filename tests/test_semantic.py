"""Semantic diversity against sklearn's brute-force pairwise distances."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_distances

from harness import metrics
from harness.core import Corpus
from harness.metrics.base import Context, MetricSkipped
from harness.metrics.semantic import pairwise_cosine_stats


def brute(X):
    D = cosine_distances(X)
    n = len(X)
    return D[~np.eye(n, dtype=bool)].mean()


@pytest.mark.parametrize("n,d", [(3, 4), (50, 16), (700, 384)])
def test_exact_mean_matches_sklearn(n, d):
    X = np.random.default_rng(n).normal(size=(n, d))
    value, se, _ = pairwise_cosine_stats(X)
    assert value == pytest.approx(brute(X), abs=1e-10)
    assert se > 0


def test_interval_covers_population_value():
    """Rows drawn from a fixed population: the U-statistic interval covers its mean ~95% of the time."""
    rng = np.random.default_rng(1)
    pop = rng.normal(size=(4000, 8)) + np.array([1.5] + [0] * 7)
    truth = brute(pop[:2000])  # a good stand-in for the population value
    hits = 0
    for _ in range(150):
        X = pop[rng.choice(len(pop), 120, replace=False)]
        v, se, _ = pairwise_cosine_stats(X)
        hits += v - 1.96 * se <= truth <= v + 1.96 * se
    assert 0.85 <= hits / 150 <= 1.0


def test_metric_uses_context_embeddings(fake_embedder):
    c = Corpus("x", "x", "text", ("a b c", "d e f", "a b d", "x y z"))
    ctx = Context(c, embedder=fake_embedder)
    s = metrics.get("semantic/pairwise-cosine-distance")(ctx)
    assert s.value == pytest.approx(brute(fake_embedder.embed(c.texts)))
    assert s.ci[0] <= s.value <= s.ci[1]
    same = Corpus("y", "y", "text", ("a b c",) * 5)
    assert metrics.get("semantic/pairwise-cosine-distance")(Context(same, embedder=fake_embedder)).value == \
        pytest.approx(0.0, abs=1e-9)


def test_too_few_rows(fake_embedder):
    with pytest.raises(MetricSkipped):
        metrics.get("semantic/pairwise-cosine-distance")(Context(Corpus("x", "x", "text", ("a", "b")),
                                                                 embedder=fake_embedder))
