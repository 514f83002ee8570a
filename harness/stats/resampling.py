"""Resampling: the nonparametric bootstrap (indices, replicates, percentile interval) and permutation
p-values.

Every function takes the caller's numpy ``Generator`` (or seed) and draws from it in a fixed order, so
that a result depends only on the seed: the block size of a vectorised bootstrap is part of that
order (numpy buffers bounded integers per call), hence an explicit argument wherever it is chosen.
"""

from __future__ import annotations

from harness.stats.intervals import percentile_interval


def resample_indices(rng, n: int, reps: int):
    """(reps, n) row indices of ``reps`` bootstrap resamples of n rows (with replacement), one draw."""
    return rng.integers(0, n, size=(reps, n))


def bootstrap_indices(rng, n: int, n_boot: int, block: int | None = None):
    """Yield the row indices of ``n_boot`` bootstrap resamples of n rows, ``block`` resamples (a
    (block, n) array) at a time (all at once when None), so that memory stays bounded at any n."""
    block = n_boot if block is None else max(1, int(block))
    for i in range(0, n_boot, block):
        yield resample_indices(rng, n, min(block, n_boot - i))


def bootstrap_replicates(n: int, statistic, n_boot: int, rng, block: int | None = None):
    """Bootstrap replicates of a statistic of n rows (Efron, "Bootstrap methods: another look at the
    jackknife", Annals of Statistics 1979): ``statistic(idx)`` gets a (b, n) array of resampled row
    indices and returns the b replicates (or fewer: a statistic undefined on a resample may leave it
    out); the blocks are drawn with ``bootstrap_indices`` and concatenated in order. Assumes
    independent rows (resample strata or clusters with the caller's own index sets otherwise).

    >>> import numpy as np
    >>> x = np.arange(10.0)
    >>> reps = bootstrap_replicates(len(x), lambda idx: x[idx].mean(axis=1), 200, np.random.default_rng(0), 64)
    >>> reps.shape, bool(3.0 < reps.mean() < 6.0)
    ((200,), True)
    """
    import numpy as np

    return np.concatenate([np.asarray(statistic(idx)) for idx in bootstrap_indices(rng, n, n_boot, block)])


def bootstrap_weights(rng, n: int, size: int, dtype=None):
    """(size, n) bootstrap weights: each row the Multinomial(n, 1/n) counts of how often every row is
    drawn into one resample (the weighted form of the bootstrap, for statistics linear in the rows)."""
    import numpy as np

    W = rng.multinomial(n, np.full(n, 1.0 / n), size=size)
    return W if dtype is None else W.astype(dtype)


def bootstrap_ci(values, statistic=None, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
                 grouped_from: int = 100_000, max_groups: int = 2_000):
    """Percentile bootstrap interval of ``statistic`` (default: the mean; "std": the sample standard
    deviation; or any function of a resampled array) over rows.

    Resampling is vectorised for the mean, in blocks of replicates that keep memory near 16 MB
    whatever n; other statistics are evaluated per replicate. From ``grouped_from`` rows on, the mean
    and "std" of values with at most ``max_groups`` distinct values (word counts, 0/1 flags) resample
    the counts instead: a resample of n rows is a Multinomial(n, frequencies) draw over the distinct
    values, and these statistics depend on the counts only, so the replicates have exactly the
    bootstrap's distribution at O(n_boot x groups) cost instead of O(n_boot x n) (1M rows: ~13 s -> ms).
    Returns None for fewer than 2 values (no spread can be estimated). Efron & Tibshirani, "An
    Introduction to the Bootstrap", 1993 (percentile interval: ch. 13).
    """
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    grouped = None
    if n >= grouped_from and (statistic is None or statistic == "std"):
        v, c = np.unique(x, return_counts=True)
        if len(v) <= max_groups:
            grouped = x.mean(), v - x.mean(), c  # centred: the variance below does not cancel
    if grouped is not None:
        mu, v, c = grouped
        w = rng.multinomial(n, c / c.sum(), size=n_boot) / n  # each replicate's share of each value
        m = w @ v
        reps = mu + m if statistic is None else np.sqrt(np.maximum(w @ (v * v) - m * m, 0.0) * n / (n - 1))
    elif statistic is None:
        reps = bootstrap_replicates(n, lambda idx: x[idx].mean(axis=1), n_boot, rng, max(1, 1_000_000 // n))
    else:
        if statistic == "std":
            statistic = lambda a: float(a.std(ddof=1))  # noqa: E731
        reps = bootstrap_replicates(n, lambda idx: [statistic(x[idx[0]])], n_boot, rng, 1)
    return percentile_interval(reps, level)


def permutation_pvalue(observed: float, null, tol: float | None = None) -> tuple[float, int]:
    """Two-sided permutation (or randomisation) p-value ``(1 + #{|T*| >= |T| - tol}) / (1 + N)`` over
    the N finite null values T*, and N; (nan, 0) without any. Counting the observed statistic among
    the permutations keeps the p-value valid (never 0) for exchangeable data under H0 (Phipson &
    Smyth, "Permutation p-values should never be zero", SAGMB 2010). ``tol`` (default
    ``1e-9 · max(1, |T|)``, relative) keeps floating-point ties tied.

    >>> permutation_pvalue(1.5, [0.0, 1.0, -2.0])
    (0.5, 3)
    """
    import numpy as np

    null = np.asarray(null, dtype=np.float64)
    null = null[np.isfinite(null)]
    if len(null) == 0:
        return float("nan"), 0
    if tol is None:
        tol = 1e-9 * max(1.0, abs(observed))
    return float((1 + np.sum(np.abs(null) >= abs(observed) - tol)) / (1 + len(null))), int(len(null))
