"""Effect sizes and paired tests of two samples: Hedges' g, Cliff's delta, exact McNemar."""

from __future__ import annotations

import math


def hedges_g(a, b) -> float | None:
    """Hedges' g of b - a: the difference of means over the pooled standard deviation, times the
    small-sample correction J = 1 - 3 / (4 (n_a + n_b) - 9) (Hedges 1981). None when it is undefined
    (fewer than 2 rows on a side, or no spread at all while the means differ).

    >>> round(hedges_g([1, 2, 3, 4], [2, 3, 4, 5]), 4)  # d = 1 / 1.291 = 0.7746, J = 20/23
    0.6736
    """
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return None
    diff = float(b.mean() - a.mean())
    sp = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if sp == 0:
        return 0.0 if diff == 0 else None
    return (1 - 3 / (4 * (na + nb) - 9)) * diff / sp


def cliffs_delta(a, b) -> float | None:
    """Cliff's delta of b against a: P(b > a) - P(b < a) over all pairs (ties count for neither side),
    from the Mann-Whitney U of the midranks (Cliff, Psychological Bulletin 1993). Range [-1, 1]; None
    when a side is empty.

    >>> round(cliffs_delta([1, 2, 3], [2, 3, 4]), 4), cliffs_delta([1, 1], [1, 1])  # (6 - 1) / 9
    (0.5556, 0.0)
    """
    import numpy as np
    from scipy.stats import rankdata

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = len(a), len(b)
    if na == 0 or nb == 0:
        return None
    r = rankdata(np.concatenate([a, b]))
    u_b = float(r[na:].sum() - nb * (nb + 1) / 2)  # pairs with b > a, ties counted 1/2
    return 2 * u_b / (na * nb) - 1


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar test: b and c are the discordant pair counts (e.g. model A right and B
    wrong, and the reverse); under H0 min(b, c) ~ Binomial(b + c, 1/2). McNemar 1947; the exact form
    avoids the chi-square approximation for few discordant pairs.

    >>> mcnemar_exact(0, 0), round(mcnemar_exact(2, 10), 6)
    (1.0, 0.038574)
    """
    n = int(b) + int(c)
    if n == 0:
        return 1.0
    k = min(int(b), int(c))
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)
