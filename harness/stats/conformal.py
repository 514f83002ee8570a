"""Conformal p-values against a reference sample, and Benjamini-Hochberg multiplicity control."""

from __future__ import annotations


def conformal_pvalues(scores, reference_scores):
    """Conformal p-value of each score against the m reference scores (higher = more unusual):
    ``(1 + #{reference scores >= it}) / (m + 1)``, as a float64 array.

    If a score and the reference scores are exchangeable (the row comes from the reference's
    distribution), its p-value is super-uniform: P(p <= a) <= a for every a. Bates, Candès, Lei,
    Romano & Sesia, "Testing for outliers with conformal p-values", Annals of Statistics 2023.

    >>> conformal_pvalues([0.9, 0.2], [0.1, 0.2, 0.3, 0.4]).tolist()
    [0.2, 0.8]
    """
    import numpy as np

    s = np.asarray(scores, dtype=np.float64)
    ref = np.sort(np.asarray(reference_scores, dtype=np.float64))
    m = len(ref)
    return (1 + m - np.searchsorted(ref, s, side="left")) / (m + 1)


def bh_select(pvalues, fdr: float) -> list[int]:
    """Positions (sorted) rejected by the Benjamini-Hochberg step-up procedure at false discovery rate
    ``fdr``: the k smallest p-values, k the largest rank with p_(k) <= fdr · k / n (Benjamini &
    Hochberg, JRSS B 1995). Controls the FDR for independent or positively dependent p-values,
    conformal p-values against one reference included (Bates et al. 2023).

    >>> bh_select([0.01, 0.04, 0.03, 0.2], 0.05)
    [0]
    """
    import numpy as np

    pv = np.asarray(pvalues, dtype=np.float64)
    n = len(pv)
    order = np.argsort(pv, kind="stable")
    ok = np.flatnonzero(pv[order] <= fdr * np.arange(1, n + 1) / n)
    return sorted(int(i) for i in order[: ok[-1] + 1]) if len(ok) else []


def bh_adjust(pvalues):
    """Benjamini-Hochberg adjusted p-values (q-values) in the input order: q_(i) = min over j >= i of
    p_(j) m / j, capped at 1 (Benjamini & Hochberg 1995). Equal to
    ``scipy.stats.false_discovery_control(p, method="bh")``.

    >>> [round(q, 4) for q in bh_adjust([0.01, 0.04, 0.03, 0.2])]
    [0.04, 0.0533, 0.0533, 0.2]
    """
    import numpy as np

    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty(m)
    out[order] = q
    return [float(x) for x in out]


def conformal_outliers(scores, reference_scores, fdr: float = 0.1) -> list[int]:
    """Positions of ``scores`` that are outliers among ``reference_scores`` (higher = more unusual).

    Each score gets its conformal p-value (``conformal_pvalues``); rows are chosen by the
    Benjamini-Hochberg procedure at false discovery rate ``fdr`` (``bh_select``). With exchangeable
    scores (a row from the reference's distribution) the conformal p-values are valid and BH controls
    the share of false flags (Bates, Candès, Lei, Romano & Sesia, "Testing for outliers with conformal
    p-values", Annals of Statistics 2023).

    >>> conformal_outliers([0.9, 0.5, 0.95], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8] * 5, fdr=0.1)
    [0, 2]
    """
    if len(scores) == 0 or len(reference_scores) == 0:
        return []
    return bh_select(conformal_pvalues(scores, reference_scores), fdr)
