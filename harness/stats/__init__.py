"""The harness's statistics, one copy of each, by topic.

- ``intervals``: normal (Wald), Wilson, Newcombe, Student t, Welch and percentile intervals;
- ``resampling``: the bootstrap (indices, replicates, weights, percentile interval) and permutation p-values;
- ``rank``: Spearman's rho with its Fisher-z interval, Spearman / Kendall pooled within blocks, DeLong's AUC;
- ``conformal``: conformal p-values against a reference, Benjamini-Hochberg selection and q-values;
- ``effects``: Hedges' g, Cliff's delta, the exact McNemar test;
- ``knn``: the nearest-neighbour service (k-NN radii within a set, nearest row of another set);
- ``linalg``: ``eigvalsh``, numpy's symmetric eigenvalues with the GIL released (for threads).

Importing this package is cheap: numpy, scipy and scikit-learn are imported inside the functions.
"""

from __future__ import annotations

from harness.stats.conformal import bh_adjust, bh_select, conformal_outliers, conformal_pvalues
from harness.stats.effects import cliffs_delta, hedges_g, mcnemar_exact
from harness.stats.intervals import (
    Z95,
    newcombe_diff_ci,
    normal_ci,
    percentile_interval,
    t95,
    t_half_width,
    t_interval,
    t_quantile,
    welch_diff_ci,
    wilson_ci,
)
from harness.stats.rank import delong_auc, pooled_rank_correlations, spearman_interval
from harness.stats.resampling import (
    bootstrap_ci,
    bootstrap_indices,
    bootstrap_replicates,
    bootstrap_weights,
    permutation_pvalue,
    resample_indices,
)

__all__ = [
    "Z95", "bh_adjust", "bh_select", "bootstrap_ci", "bootstrap_indices", "bootstrap_replicates",
    "bootstrap_weights", "cliffs_delta", "conformal_outliers", "conformal_pvalues", "delong_auc", "hedges_g",
    "mcnemar_exact", "newcombe_diff_ci", "normal_ci", "percentile_interval", "permutation_pvalue",
    "pooled_rank_correlations", "resample_indices", "spearman_interval", "t95", "t_half_width", "t_interval",
    "t_quantile", "welch_diff_ci", "wilson_ci",
]
