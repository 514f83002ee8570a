"""Semantic diversity on sentence embeddings."""

from __future__ import annotations

from ..core import Score
from .base import MetricSkipped, metric


def pairwise_cosine_stats(X):
    """Exact mean cosine distance over all ordered pairs i != j, and its U-statistic standard error.

    With unit rows x_i and S = sum_i x_i: sum_{i != j} x_i.x_j = S.S - n, so the mean needs O(n.d),
    not O(n^2.d). The per-row projection h1_i = 1 - (x_i.S - 1)/(n - 1) is row i's mean distance to
    the others; Var(U) ~ 4 Var(h1) / n (Hoeffding 1948).
    """
    import numpy as np

    X = np.asarray(X, dtype=np.float64)
    X = X / np.linalg.norm(X, axis=1, keepdims=True).clip(min=1e-12)
    n = X.shape[0]
    S = X.sum(axis=0)
    mean_cos = (S @ S - n) / (n * (n - 1))
    h1 = 1.0 - (X @ S - 1.0) / (n - 1)
    se = float(np.sqrt(4.0 * h1.var(ddof=1) / n))
    return float(1.0 - mean_cos), se, h1


@metric(needs=("embeddings",), higher_is_better=True, range="[0, 2]")
def mean_pairwise_cosine_distance(ctx) -> Score:
    """Mean pairwise cosine distance of sentence embeddings; higher means semantically more varied.

    Range [0, 2] (about 0.6-0.9 for varied English text with MiniLM; 0 when all rows say the same).
    Computed exactly for any n in O(n.d) through the sum of unit vectors, with a 95% interval from the
    U-statistic variance. Used as semantic diversity by Tevet & Berant, "Evaluating the Evaluation of
    Diversity in Natural Language Generation", EACL 2021.
    """
    from ..stats import normal_ci

    X = ctx.embeddings
    if X.shape[0] < 3:
        raise MetricSkipped("needs at least 3 rows")
    value, se, h1 = pairwise_cosine_stats(X)
    # the most 'central' rows: smallest mean distance to the others (candidates for redundancy)
    order = h1.argsort()[:3]
    return Score(value, normal_ci(value, se, 0.0, 2.0),
                 {"se": se, "estimator": "exact", "most_central_rows": [int(i) for i in order]})
