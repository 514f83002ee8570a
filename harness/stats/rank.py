"""Rank statistics: Spearman's rho with its Fisher-z interval, Spearman and Kendall pooled within
blocks (strata), and the ROC AUC with DeLong's standard error."""

from __future__ import annotations

import math


def spearman_interval(x, y, level: float = 0.95, method: str = "bonett-wright") -> dict:
    """Spearman's ρ of (x, y) with a Fisher-z interval.

    ``method='bonett-wright'`` uses the standard error sqrt((1 + ρ²/2) / (n - 3)) of Bonett & Wright
    ("Sample size requirements for estimating Pearson, Kendall and Spearman correlations",
    Psychometrika 2000), which suits Spearman's ρ; ``'fisher'`` uses 1 / sqrt(n - 3), the interval of
    Pearson's r on the ranks (what ``scipy.stats.pearsonr(...).confidence_interval()`` gives there).
    Pairs with a non-finite value are dropped. A y that does not vary gives ρ = 0 with interval [0, 0]
    and ``constant`` set (the metric did not move); fewer than 4 points, or an x that does not vary,
    give no ρ. Assumes independent pairs; ρ is clipped to ±0.999999 before the z transform.

    >>> r = spearman_interval([0, 0, 1, 1, 2, 2], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    >>> round(r["rho"], 3), r["n"], r["low"] > 0
    (0.956, 6, True)
    """
    import numpy as np
    from scipy.stats import norm, spearmanr

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    out = {"n": int(n), "rho": None, "low": None, "high": None, "constant": False, "method": method}
    if n < 4:
        return out
    if np.ptp(y) <= 1e-12 * max(1.0, float(np.abs(y).max())):
        out.update(rho=0.0, low=0.0, high=0.0, constant=True)
        return out
    if np.ptp(x) == 0:
        return out
    rho = float(spearmanr(x, y).statistic)
    r = min(max(rho, -0.999999), 0.999999)
    se = math.sqrt((1 + r * r / 2) / (n - 3)) if method == "bonett-wright" else 1 / math.sqrt(n - 3)
    zc = float(norm.ppf(0.5 + level / 2))
    z = math.atanh(r)
    out.update(rho=rho, low=math.tanh(z - zc * se), high=math.tanh(z + zc * se))
    return out


# ----------------------------------------------------------------------------- pooled within blocks
# x and y of shape (R, n): R replicates (bootstrap resamples, permutations, or just the data with
# R = 1) of one block's n items. Each function returns per-replicate sums that pool across blocks; a
# replicate in which x or y is constant contributes nothing.

def spearman_parts(x, y):
    """(sum zx·zy, n or 0) per replicate (row), z = the row's midranks standardised (population SD):
    sum / n is the row's Spearman ρ (``scipy.stats.spearmanr``); a constant row gives (0, 0)."""
    import numpy as np
    from scipy.stats import rankdata

    rx = rankdata(x, axis=1)
    ry = rankdata(y, axis=1)
    cx = rx - rx.mean(axis=1, keepdims=True)
    cy = ry - ry.mean(axis=1, keepdims=True)
    sx = np.sqrt((cx ** 2).mean(axis=1))
    sy = np.sqrt((cy ** 2).mean(axis=1))
    ok = (sx > 1e-12) & (sy > 1e-12)
    with np.errstate(invalid="ignore", divide="ignore"):
        prod = np.where(ok, (cx * cy).sum(axis=1) / np.where(ok, sx * sy, 1.0), 0.0)
    return prod, np.where(ok, x.shape[1], 0)


def kendall_parts(x, y):
    """(S = concordant - discordant pairs, n1 = pairs untied in x, n2 = pairs untied in y) per
    replicate (row): S / sqrt(n1 n2) is the row's Kendall tau-b (``scipy.stats.kendalltau``)."""
    import numpy as np

    dx = np.sign(x[:, :, None] - x[:, None, :])
    dy = np.sign(y[:, :, None] - y[:, None, :])
    s = (dx * dy).sum(axis=(1, 2)) / 2
    n1 = np.abs(dx).sum(axis=(1, 2)) / 2
    n2 = np.abs(dy).sum(axis=(1, 2)) / 2
    ok = (n1 > 0) & (n2 > 0)
    return np.where(ok, s, 0.0), np.where(ok, n1, 0.0), np.where(ok, n2, 0.0)


def pooled_rank_correlations(blocks, index_sets=None):
    """Spearman's ρ and Kendall's tau-b pooled within blocks (strata), for each replicate.

    ``blocks`` is a list of (x, y) value sequences, one per block. Only pairs inside a block are
    compared: ρ is the correlation of the within-block standardised ranks (the item-weighted mean of
    the per-block ρ), tau is the stratified tau-b ``sum_b S_b / sqrt(sum_b n1_b · sum_b n2_b)``. Both
    equal scipy's for a single block. ``index_sets[b]`` is an (R, n_b) index array into block b for x
    (and for y unless a pair (ix, iy) is given: a permutation of y alone), or None for the data
    itself (R = 1). Returns arrays (rho, tau, items, blocks that count) of length R; nan where no
    block varies.
    """
    import numpy as np

    num = den = s_sum = n1_sum = n2_sum = suites = 0
    for b, (x, y) in enumerate(blocks):
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        if index_sets is None:
            X, Y = x[None, :], y[None, :]
        else:
            ix = index_sets[b]
            iy = ix
            if isinstance(ix, tuple):
                ix, iy = ix
            X, Y = x[ix], y[iy]
        p, w = spearman_parts(X, Y)
        s, n1, n2 = kendall_parts(X, Y)
        num = num + p
        den = den + w
        s_sum = s_sum + s
        n1_sum = n1_sum + n1
        n2_sum = n2_sum + n2
        suites = suites + (w > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(np.asarray(den) > 0, num / np.where(np.asarray(den) > 0, den, 1), np.nan)
        tau_den = np.sqrt(n1_sum * n2_sum)
        tau = np.where(tau_den > 0, s_sum / np.where(tau_den > 0, tau_den, 1), np.nan)
    return np.atleast_1d(rho), np.atleast_1d(tau), np.atleast_1d(den), np.atleast_1d(suites)


# ----------------------------------------------------------------------------- ROC AUC


def delong_auc(y, score):
    """ROC AUC and its DeLong standard error (DeLong, DeLong & Clarke-Pearson, Biometrics 1988; the
    midrank algorithm of Sun & Xu, IEEE Signal Processing Letters 2014). Ties count 1/2. Assumes
    independent rows; raises ValueError without both classes.

    >>> a, se = delong_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> a
    0.75
    """
    import numpy as np
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    pos, neg = s[y], s[~y]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        raise ValueError("needs both classes")
    tz = rankdata(np.concatenate([pos, neg]))
    tx, ty = rankdata(pos), rankdata(neg)
    auc = float((tz[:m].sum() - m * (m + 1) / 2) / (m * n))
    v10 = (tz[:m] - tx) / n          # per positive: share of negatives scored below (ties count 1/2)
    v01 = 1.0 - (tz[m:] - ty) / m    # per negative: share of positives scored above
    var = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    return auc, float(math.sqrt(max(var, 0.0)))
