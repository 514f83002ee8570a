"""Confidence intervals: normal approximation, Wilson score, Newcombe, Student t, Welch, percentile.

Pure functions of numbers; numpy and scipy are imported inside the functions that need them, so that
importing this module costs nothing.
"""

from __future__ import annotations

import math

#: the 97.5% quantile of the standard normal, ``scipy.stats.norm.ppf(0.975)``
Z95 = 1.959963984540054


def normal_ci(estimate: float, se: float, lo_bound: float | None = None, hi_bound: float | None = None):
    """``estimate ± 1.96·se`` (a 95% Wald interval), clipped to the metric's range [lo_bound, hi_bound].

    Assumes an estimate that is approximately normal with standard error ``se``.

    >>> normal_ci(0.5, 0.1, 0.0, 1.0) == (0.5 - Z95 * 0.1, 0.5 + Z95 * 0.1)
    True
    """
    lo, hi = estimate - Z95 * se, estimate + Z95 * se
    if lo_bound is not None:
        lo = max(lo, lo_bound)
    if hi_bound is not None:
        hi = min(hi, hi_bound)
    return float(lo), float(hi)


def wilson_ci(successes: int, n: int):
    """95% Wilson score interval for a proportion successes / n (Wilson, "Probable inference, the law
    of succession, and statistical inference", JASA 1927); unlike the Wald interval it stays inside
    [0, 1] and keeps its coverage near 0 and 1. Assumes n independent Bernoulli trials; None for n <= 0.

    >>> [round(x, 4) for x in wilson_ci(0, 10)]
    [0.0, 0.2775]
    """
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


def newcombe_diff_ci(k_a: int, n_a: int, k_b: int, n_b: int):
    """95% interval of the difference of two independent proportions k_b/n_b - k_a/n_a by Newcombe's
    hybrid score method (method 10 of Newcombe, "Interval estimation for the difference between
    independent proportions", Statistics in Medicine 1998), built from the two Wilson intervals; well
    behaved near 0 and 1, where the Wald interval collapses. None when a side is empty.

    >>> [round(x, 4) for x in newcombe_diff_ci(48, 80, 56, 70)]
    [0.0524, 0.3339]
    """
    if n_a <= 0 or n_b <= 0:
        return None
    pa, pb = k_a / n_a, k_b / n_b
    la, ua = wilson_ci(k_a, n_a)
    lb, ub = wilson_ci(k_b, n_b)
    d = pb - pa
    return d - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2), d + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)


# ----------------------------------------------------------------------------- Student t


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``; df may be
    fractional, as Welch's is; nan for df <= 0)."""
    from scipy.stats import t

    return float(t.ppf(p, df))


def t95(df: float) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom: the multiplier of a two-sided
    95% t-interval.

    >>> round(t95(4), 4)
    2.7764
    """
    return t_quantile(0.975, df)


def _two_sided(level: float) -> float:
    return 0.975 if level == 0.95 else 0.5 + level / 2


def t_half_width(values, level: float = 0.95) -> float:
    """Half-width ``t_{(1+level)/2, n-1} · s / √n`` of the Student-t interval of the mean of ``values``
    (s: the sample standard deviation, ddof = 1). Assumes independent, roughly normal values (or enough
    of them); nan for fewer than 2 values."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    if n < 2:
        return math.nan
    return t_quantile(_two_sided(level), n - 1) * float(v.std(ddof=1)) / math.sqrt(n)


def t_interval(values, lo: float | None = None, hi: float | None = None, level: float = 0.95):
    """Student-t interval ``mean ± t_{(1+level)/2, n-1} · s / √n`` of the mean of a few values (seeds,
    repeated samples, folds), clipped to [lo, hi] where given; None for fewer than 2 values (Student,
    "The probable error of a mean", Biometrika 1908). Assumes independent, roughly normal values.

    >>> [round(x, 4) for x in t_interval([1.0, 2.0, 3.0])]
    [-0.4841, 4.4841]
    """
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return None
    half = t_half_width(v, level)
    mean = float(v.mean())
    a, b = mean - half, mean + half
    return (a if lo is None else max(lo, a), b if hi is None else min(hi, b))


def welch_diff_ci(a, b, level: float = 0.95):
    """Welch's interval of the difference of means mean(b) - mean(a) for unequal variances: ± a t
    quantile with the Welch-Satterthwaite degrees of freedom times sqrt(s_a²/n_a + s_b²/n_b) (Welch,
    Biometrika 1947). Needs at least 2 values on each side; (d, d) when neither side varies, None when
    the t quantile is not finite.

    >>> [round(x, 4) for x in welch_diff_ci([1, 2, 3, 4], [2, 3, 4, 5])]
    [-1.2337, 3.2337]
    """
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    d = float(b.mean() - a.mean())
    if se == 0:
        return (d, d)
    df = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1)) + (vb ** 2 / (len(b) - 1)))
    h = t_quantile(_two_sided(level), df) * se
    return (d - h, d + h) if np.isfinite(h) else None


# ----------------------------------------------------------------------------- percentile


def percentile_interval(replicates, level: float = 0.95, tails: tuple[float, float] | None = None,
                        min_count: float = 0):
    """Percentile interval of bootstrap (or other resampling) replicates: their ``(1-level)/2`` and
    ``1-(1-level)/2`` quantiles (numpy's default linear interpolation; Efron & Tibshirani, "An
    Introduction to the Bootstrap", 1993, ch. 13). ``tails`` gives the two quantile levels explicitly
    instead (e.g. the literals (0.025, 0.975), which differ from (1 - 0.95) / 2 in the last bits). None
    when there are fewer than ``min_count`` replicates (e.g. half of those drawn, where a statistic was
    undefined on the others). The replicates are used as they come (no cast): float32 replicates give
    float32 quantiles.

    >>> percentile_interval([1.0, 2.0, 3.0, 4.0, 5.0], tails=(0.25, 0.75))
    (2.0, 4.0)
    """
    import numpy as np

    if len(replicates) < min_count:
        return None
    if tails is None:
        a = (1 - level) / 2
        tails = (a, 1 - a)
    lo, hi = np.quantile(replicates, list(tails))
    return float(lo), float(hi)
