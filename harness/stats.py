"""Confidence intervals: percentile bootstrap, normal approximation, Wilson score."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def bootstrap_ci(values, statistic=None, n_boot: int = 1000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap interval of ``statistic`` (default: the mean) over rows.

    Resampling is vectorised for the mean, in blocks of replicates that keep memory near 16 MB
    whatever n; other statistics are evaluated per replicate.
    Returns None for fewer than 2 values (no spread can be estimated).
    """
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    if statistic is None:
        block = max(1, 1_000_000 // n)
        reps = np.concatenate([x[rng.integers(0, n, size=(min(block, n_boot - i), n))].mean(axis=1)
                               for i in range(0, n_boot, block)])
    else:
        reps = np.array([statistic(x[rng.integers(0, n, size=n)]) for _ in range(n_boot)])
    a = (1 - level) / 2
    lo, hi = np.quantile(reps, [a, 1 - a])
    return float(lo), float(hi)


def normal_ci(estimate: float, se: float, lo_bound: float | None = None, hi_bound: float | None = None):
    """estimate ± 1.96·se, clipped to the metric's range."""
    lo, hi = estimate - Z95 * se, estimate + Z95 * se
    if lo_bound is not None:
        lo = max(lo, lo_bound)
    if hi_bound is not None:
        hi = min(hi, hi_bound)
    return float(lo), float(hi)


def wilson_ci(successes: int, n: int):
    """Wilson score interval for a proportion (Wilson 1927); good near 0 and 1."""
    if n <= 0:
        return None
    p = successes / n
    z2 = Z95 * Z95
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi
