"""Which cheap metric predicts the expensive one: rank correlation of direct metrics with utility.

Across the candidates of one or more suites, every direct (non-``utility/``) metric is correlated
with a utility score (by default ``utility/minilm-lr/accuracy``: train on the candidate, test on
real data). Values are *oriented* first: a metric whose declared direction is "lower is better" is
negated, so a positive correlation always reads "better on the metric <-> better utility". Metrics
with no direction (``length/mean-words``) keep their sign: positive means "larger value <-> better
utility".

**Pooling across suites (suite as block).** A suite holds 2-20 candidates, and both metric scales and
utility levels differ between suites (0.6 accuracy is good on one task and poor on another), so raw
values must not be pooled: between-suite differences would dominate and can even reverse the sign
(Simpson's paradox). Only comparisons *inside* a suite are made:

* Spearman: within each suite, both variables are ranked (average ranks for ties), centred and
  scaled to unit variance; the pooled rho is the Pearson correlation of these within-suite scores
  over all candidates. This equals the average of the within-suite Spearman rho_s weighted by the
  suite's number of candidates n_s, and equals ``scipy.stats.spearmanr`` for a single suite.
* Kendall: a stratified tau-b. Concordant minus discordant pairs are counted only for pairs of
  candidates of the same suite, over the tie-corrected number of such pairs:
  ``sum_s S_s / sqrt(sum_s n1_s * sum_s n2_s)``; ``scipy.stats.kendalltau`` for a single suite. It
  reads directly as "how often does the metric order two candidates of one benchmark as utility does".

Averaging within-suite Fisher-z values weighted by n_s - 3 was rejected: most suites here have 2-8
candidates, which gives zero or negative weights, and a within-suite rho of +-1 (common with three
candidates) has an infinite z. A suite in which the metric or the utility is constant carries no
ordering information and is left out for that metric.

**Uncertainty.** 95% percentile intervals from a bootstrap over candidates, stratified by suite
(each suite's candidates are resampled with replacement, within the suite), and a two-sided
permutation p-value for rho (utility values permuted within each suite). With few candidates per
suite the intervals are wide; that is the honest answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from harness.stats import (
    bh_adjust,
    percentile_interval,
    permutation_pvalue,
    pooled_rank_correlations,
    resample_indices,
)

#: the default downstream score the direct metrics are compared with
DEFAULT_UTILITY = "utility/minilm-lr/accuracy"
METHOD = ("within-suite ranks, suite as block: Spearman = correlation of within-suite standardised ranks "
          "(the candidate-weighted mean of per-suite rho); Kendall = stratified tau-b over pairs of "
          "candidates of the same suite")


@dataclass(frozen=True)
class Correlation:
    metric: str
    direction: bool | None            # the metric's higher_is_better (None: no direction, not oriented)
    rho: float
    rho_ci: tuple[float, float] | None
    tau: float
    tau_ci: tuple[float, float] | None
    p_rho: float | None               # permutation p-value (two-sided) of rho
    n: int                            # candidates used (in suites that count)
    suites: int                       # suites that count (metric and utility both vary)
    per_suite: dict[str, float] = field(default_factory=dict)  # suite -> within-suite Spearman rho


def orientation(higher_is_better: bool | None) -> float:
    """+1 for 'higher is better' (and for no direction), -1 for 'lower is better'."""
    return -1.0 if higher_is_better is False else 1.0


# ----------------------------------------------------------------------------- block statistics
# The within-suite (block) Spearman and Kendall sums are harness.stats.rank's
# (``pooled_rank_correlations``); a suite is a block.

def pooled_correlation(blocks) -> tuple[float, float, int, int]:
    """(Spearman rho, Kendall tau-b, candidates, suites) pooled within blocks.

    ``blocks`` is a list of (x, y) value sequences, one per suite, already oriented.

    >>> r, t, n, k = pooled_correlation([([1, 2, 3], [10, 30, 20]), ([5, 6, 7, 8], [0.1, 0.2, 0.4, 0.3])])
    >>> round(r, 4), round(t, 4), n, k
    (0.6714, 0.5556, 7, 2)
    """
    rho, tau, n, k = pooled_rank_correlations(blocks)
    return float(rho[0]), float(tau[0]), int(n[0]), int(k[0])


def bootstrap_intervals(blocks, n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """Percentile intervals of (rho, tau) from resampling candidates with replacement within each
    suite; None where fewer than half of the replicates are defined."""
    import numpy as np

    rng = np.random.default_rng(seed)
    idx = [resample_indices(rng, len(x), n_boot) for x, _ in blocks]
    rho, tau, _, _ = pooled_rank_correlations(blocks, idx)
    return tuple(percentile_interval(v[np.isfinite(v)], level, min_count=n_boot / 2) for v in (rho, tau))


def permutation_p(blocks, observed_rho: float, n_perm: int = 2000, seed: int = 0) -> float | None:
    """Two-sided p-value of the pooled rho: utility values are shuffled within each suite."""
    import numpy as np

    if not math.isfinite(observed_rho):
        return None
    rng = np.random.default_rng(seed + 1)
    idx = []
    for x, _ in blocks:
        n = len(x)
        ident = np.broadcast_to(np.arange(n), (n_perm, n))
        idx.append((ident, rng.permuted(np.tile(np.arange(n), (n_perm, 1)), axis=1)))
    rho, _, _, _ = pooled_rank_correlations(blocks, idx)
    p, used = permutation_pvalue(observed_rho, rho, tol=1e-12)
    return p if used else 1.0


# ----------------------------------------------------------------------------- the analysis

def correlate(values: dict[str, dict[str, dict[str, float]]], utility: str, directions: dict[str, bool | None],
              n_boot: int = 2000, seed: int = 0) -> list[Correlation]:
    """Correlate every direct metric with ``utility`` across candidates, pooled within suites.

    ``values[suite][metric][candidate]`` holds candidate values (reference rows excluded);
    ``directions[metric]`` is the declared ``higher_is_better``. Metrics under ``utility/`` are not
    direct and are skipped. The result is sorted by |rho| (undefined last).
    """
    u_sign = orientation(directions.get(utility, True))
    metrics = sorted({m for s in values.values() for m in s if not m.startswith("utility/")})
    out = []
    for m in metrics:
        m_sign = orientation(directions.get(m))
        blocks, names, per_suite = [], [], {}
        for suite, table in values.items():
            mv, uv = table.get(m, {}), table.get(utility, {})
            cands = [c for c in mv if c in uv and math.isfinite(mv[c]) and math.isfinite(uv[c])]
            if len(cands) < 2:
                continue
            x = [m_sign * mv[c] for c in cands]
            y = [u_sign * uv[c] for c in cands]
            blocks.append((x, y))
            names.append(suite)
        if not blocks:
            continue
        rho, tau, n, k = pooled_correlation(blocks)
        for suite, blk in zip(names, blocks):
            r1, _, n1, _ = pooled_correlation([blk])
            if n1:
                per_suite[suite] = r1
        if k == 0:
            out.append(Correlation(m, directions.get(m), math.nan, None, math.nan, None, None, 0, 0, per_suite))
            continue
        rho_ci, tau_ci = bootstrap_intervals(blocks, n_boot=n_boot, seed=seed)
        p = permutation_p(blocks, rho, n_perm=n_boot, seed=seed)
        out.append(Correlation(m, directions.get(m), rho, rho_ci, tau, tau_ci, p, n, k, per_suite))
    out.sort(key=lambda c: (not math.isfinite(c.rho), -abs(c.rho) if math.isfinite(c.rho) else 0, c.metric))
    return out


def utility_summary(values: dict[str, dict[str, dict[str, float]]], utility: str) -> list[dict]:
    """Per suite: candidates with a utility value, its range and the best candidate."""
    rows = []
    for suite, table in values.items():
        uv = {c: v for c, v in table.get(utility, {}).items() if math.isfinite(v)}
        if not uv:
            continue
        best = max(uv, key=uv.get)
        rows.append({"suite": suite, "n": len(uv), "min": min(uv.values()), "max": max(uv.values()),
                     "best": best, "worst": min(uv, key=uv.get)})
    return rows


# ----------------------------------------------------------------------------- rendering


def q_values(corrs: list[Correlation]) -> dict[str, float]:
    """Benjamini-Hochberg adjusted p-values over every metric correlated with one utility score: with
    dozens of metrics, some raw p < 0.05 are expected by chance alone."""
    tested = [c for c in corrs if c.p_rho is not None]
    return dict(zip((c.metric for c in tested), bh_adjust([c.p_rho for c in tested]))) if tested else {}
