"""Distribution distance between a candidate (synthetic) corpus and the real reference.

All metrics read cached sentence embeddings (``ctx.embeddings`` for the candidate,
``ctx.reference.embeddings`` for the reference); the classifier two-sample test on TF-IDF reads
the texts. Heavy work that several registry entries share (the k-NN balls behind precision,
recall, density and coverage) is computed once per Context and reused.

Conventions: the candidate is the "fake"/synthetic sample, the reference the "real" one.
Wherever a metric subsamples, the sample is drawn from ``ctx.rng(<metric salt>)``, so results
are reproducible under the run seed and the sizes used are reported in ``details``.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass

from harness.metrics.base import KNN_RECALL, MODE_COLLAPSE_BBC, Identity, MetricSkipped, extend_doc, metric
from harness.stats import conformal_outliers, normal_ci, t_interval, wilson_ci
from harness.stats.knn import Screen, exact_dist, f32_up, knn_radii, nonzero2d, rows_per_block
from harness.stats.rank import delong_auc
from harness.types import Score

INF = math.inf

# ----------------------------------------------------------------------------- shared helpers


def _memo(ctx, key, fn):
    """Compute ``fn()`` once per Context and key (the Context lives as long as its candidate)."""
    return ctx.memo(("distance", key), fn)


def _reference(ctx):
    if ctx.reference is None:
        raise MetricSkipped("needs a reference dataset (--reference)")
    return ctx.reference


def _pair(ctx, min_rows: int):
    """(candidate, reference) embedding arrays, each with at least ``min_rows`` rows."""
    import numpy as np

    ref = _reference(ctx)
    X, Y = np.asarray(ctx.embeddings), np.asarray(ref.embeddings)
    if X.shape[0] < min_rows or Y.shape[0] < min_rows:
        raise MetricSkipped(f"needs at least {min_rows} rows on each side "
                            f"(candidate {X.shape[0]}, reference {Y.shape[0]})")
    if X.shape[1] != Y.shape[1]:
        raise MetricSkipped(f"embedding sizes differ (candidate {X.shape[1]}, reference {Y.shape[1]})")
    return X, Y


def _sample(rng, n: int, size: int):
    """Sorted indices of a seeded sample of ``size`` out of ``n`` rows (all rows if size >= n)."""
    import numpy as np

    if size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


@contextmanager
def _blas_threads(n: int | None):
    """Limit BLAS/LAPACK threads for small dense algebra (``None``: leave as is).

    LAPACK on a few-hundred-square matrix gains nothing from threads, and on shared cores
    OpenBLAS's spinning workers made a 384 x 384 eigh take seconds instead of milliseconds.
    """
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(n, user_api="blas"):
        yield


# ----------------------------------------------------------------------------- MAUVE


@contextmanager
def _quiet_native_stderr():
    """Silence writes to file descriptor 2 (faiss prints k-means warnings from C++)."""
    import os
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _import_mauve():
    try:
        import mauve  # GPL-3.0, optional
    except ImportError:
        raise MetricSkipped("MAUVE needs the optional package mauve-text: pip install 'synthbench[mauve]'") from None
    return mauve


def mauve_values(P, Q, seeds, num_buckets="auto", kmeans_num_redo=1, kmeans_max_iter=100):
    """MAUVE of reference features ``P`` against candidate features ``Q`` for each k-means seed."""
    import warnings

    import numpy as np

    mauve = _import_mauve()
    import faiss  # a dependency of mauve-text

    threads = faiss.omp_get_max_threads()
    if len(P) + len(Q) < 2000:
        # small problems (per-class MAUVE, tests): OpenMP threads cost more than they bring and
        # spin badly when the cores are shared
        faiss.omp_set_num_threads(1)
    out, buckets = [], None
    try:
        for s in seeds:
            with warnings.catch_warnings(), _quiet_native_stderr(), _blas_threads(1):
                warnings.simplefilter("ignore")
                r = mauve.compute_mauve(p_features=np.asarray(P, dtype=np.float32),
                                        q_features=np.asarray(Q, dtype=np.float32),
                                        num_buckets=num_buckets, kmeans_num_redo=kmeans_num_redo,
                                        kmeans_max_iter=kmeans_max_iter, seed=int(s), verbose=False)
            out.append(float(r.mauve))
            buckets = int(r.num_buckets)
    finally:
        faiss.omp_set_num_threads(threads)
    return out, buckets


def _seed_list(rng, seeds: int):
    return [int(x) for x in rng.integers(0, 2**30, size=seeds)]


@metric("distance/mauve", args={"seeds": 5, "max_rows": 2500},
        needs=("embeddings", "reference_embeddings"),
        higher_is_better=True,
        bounds=(0, 1),
        size_dependent=True,
        seeded=True,
        cost="heavy",
        expect={"label-noise": "0", "topic-drift": "-", "mode-collapse": "-", "class-drop": "-"},
        identity=Identity(1, 0.01, 1, 0.15,
                 "1 = same distribution"),
        range="(0, 1]")
def mauve_score(ctx, seeds: int = 5, max_rows: int = 2500, kmeans_num_redo: int = 1,
                kmeans_max_iter: int = 100) -> Score:
    """MAUVE between candidate and reference embeddings; higher is better (1 = same distribution).

    Range (0, 1]; higher is better. Both sides are subsampled (seeded) to the same size,
    min(n_candidate, n_reference, ``max_rows``), since MAUVE's histograms and its default
    ``num_buckets='auto'`` (= rows/10 clusters) assume comparable sizes. The score moves with the
    k-means seed, so it is computed for ``seeds`` seeds: the value is their mean and the interval
    a 95% Student-t interval of that mean, i.e. it covers the clustering noise only, not the
    sampling of rows. k-means runs 1 restart x 100 iterations per seed instead of mauve-text's
    5 x 500: averaging several seeds already does what restarts do, faiss k-means has converged
    by 100 iterations on sentence embeddings, and it is 15-60x cheaper. Needs the optional
    GPL package mauve-text (``pip install 'synthbench[mauve]'``); skipped without it.
    Pillutla et al., "MAUVE: Measuring the Gap Between Neural Text and Human Text using
    Divergence Frontiers", NeurIPS 2021.
    """
    X, Y = _pair(ctx, 10)
    rng = ctx.rng("distance/mauve")
    size = min(X.shape[0], Y.shape[0], max_rows)
    ix, iy = _sample(rng, X.shape[0], size), _sample(rng, Y.shape[0], size)
    vals, buckets = mauve_values(Y[iy], X[ix], _seed_list(rng, seeds), "auto", kmeans_num_redo, kmeans_max_iter)
    value = sum(vals) / len(vals)
    return Score(value, t_interval(vals, 0.0, 1.0),
                 {"per_seed": [round(v, 6) for v in vals], "num_buckets": buckets, "rows_per_side": int(size),
                  "kmeans": f"{kmeans_num_redo} restart(s) x {kmeans_max_iter} iterations",
                  "ci": "t-interval over k-means seeds"})


# ----------------------------------------------------------------------------- Fréchet distance


def frechet_from_moments(mu1, cov1, mu2, cov2) -> float:
    """Fréchet (2-Wasserstein) distance squared between N(mu1, cov1) and N(mu2, cov2).

    ``|mu1 - mu2|^2 + Tr(C1) + Tr(C2) - 2 Tr((C1 C2)^(1/2))`` with the trace term taken from the
    eigenvalues of the symmetric PSD matrix ``C1^(1/2) C2 C1^(1/2)`` (similar to C1 C2), which is
    stable for singular covariances and never goes complex.

    >>> import numpy as np
    >>> round(frechet_from_moments(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2)), 6)
    4.0
    """
    import numpy as np

    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    c1, c2 = np.asarray(cov1, dtype=np.float64), np.asarray(cov2, dtype=np.float64)
    with _blas_threads(1 if c1.shape[0] <= 1024 else None):
        w, V = np.linalg.eigh((c1 + c1.T) / 2)
        s1 = (V * np.sqrt(np.clip(w, 0, None))) @ V.T
        m = s1 @ c2 @ s1
        ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(ev, 0, None)).sum())
    diff = mu1 - mu2
    return max(0.0, float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * tr_sqrt))


def mean_cov(X, chunk: int = 8192):
    """Mean and sample covariance (``np.cov(X, rowvar=False)``) in float64, a chunk of rows at a time: two
    passes (the mean, then the centred cross-products), O(chunk d + d^2) extra memory at any n.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    >>> mu, C = mean_cov(X, chunk=7)
    >>> bool(np.allclose(C, np.cov(X.astype(np.float64), rowvar=False), rtol=1e-12, atol=1e-15))
    True
    """
    import numpy as np

    n, d = X.shape
    mu = np.zeros(d)
    for a in range(0, n, chunk):
        mu += X[a:a + chunk].astype(np.float64).sum(axis=0)
    mu /= n
    C = np.zeros((d, d))
    for a in range(0, n, chunk):
        Z = X[a:a + chunk].astype(np.float64)
        Z -= mu
        C += Z.T @ Z
    return mu, C / max(n - 1, 1)


@metric("distance/frechet",
        needs=("embeddings", "reference_embeddings"),
        higher_is_better=False,
        bounds=(0, INF),
        size_dependent=True,
        expect={"label-noise": "0", "topic-drift": "+", "mode-collapse": "+", "class-drop": "+"},
        identity=Identity(0, 0.0001, 0, "frechet-bias",
                 ("0; two finite samples have a positive bias, linear in 1/n (Chong & Forsyth 2020): tolerance "
                  "150/n")),
        range="[0, inf)",
        resampler="frechet_resampler")
def frechet_distance(ctx) -> Score:
    """Fréchet distance between Gaussians fitted to candidate and reference embeddings; lower is better.

    Range [0, inf) (0 when means and covariances coincide; unit-norm embeddings keep it below
    about 4). The FID formula of Heusel et al., "GANs Trained by a Two Time-Scale Update Rule
    Converge to a Local Nash Equilibrium", NeurIPS 2017, applied to sentence embeddings (as
    "Fréchet embedding distance" for text). All rows are used; the matrix square root is taken
    through an eigen-decomposition (see ``frechet_from_moments``). The estimate is biased upward
    at finite n (the bias grows like d/n), so compare datasets at equal sizes. No interval: a row
    bootstrap would cost ~100 covariance fits and its replicates carry an extra, different bias
    (duplicated rows shrink the covariance), so a percentile interval would be off-centre.
    """
    X, Y = _pair(ctx, 2)
    (mu1, c1), (mu2, c2) = mean_cov(X), mean_cov(Y)
    value = frechet_from_moments(mu1, c1, mu2, c2)
    d = mu1 - mu2
    return Score(value, None, {"mean_term": float(d @ d), "covariance_term": float(value - d @ d),
                               "n_candidate": int(X.shape[0]), "n_reference": int(Y.shape[0]),
                               "dim": int(X.shape[1]),
                               "rank_deficient": bool(min(X.shape[0], Y.shape[0]) <= X.shape[1])})


# ----------------------------------------------------------------------------- MMD


def rbf_mmd2(X, Y, bandwidth=None, permutations: int = 0, rng=None):
    """Unbiased MMD^2 with a Gaussian kernel exp(-|x-y|^2 / (2 s^2)) and its permutation p-value.

    ``bandwidth`` s defaults to the median pairwise distance of the pooled sample (the median
    heuristic). Builds the pooled (n+m)^2 kernel matrix once; each permutation's statistic comes
    from one matrix product with the group indicators, so 200 permutations cost one GEMM.
    Returns (mmd2, bandwidth, p_value or None).
    """
    import numpy as np

    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    n, m = len(X), len(Y)
    Z = np.vstack([X, Y])
    N = n + m
    zz = np.einsum("ij,ij->i", Z, Z)
    K = Z @ Z.T
    K *= -2
    K += zz[:, None]
    K += zz[None, :]
    np.maximum(K, 0, out=K)
    np.fill_diagonal(K, 0)
    if bandwidth is None:
        iu = np.triu_indices(N, 1)
        bandwidth = float(np.sqrt(np.median(K[iu])))
        del iu
        if bandwidth <= 0:
            bandwidth = 1.0
    K *= -1.0 / (2 * bandwidth**2)
    np.exp(K, out=K)
    np.fill_diagonal(K, 0)  # K0: the diagonal never enters the unbiased estimator

    def stat(sxx, syy, sxy):
        return sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2 * sxy / (n * m)

    a = np.zeros(N)
    a[:n] = 1.0
    row = K.sum(axis=1)
    total = row.sum()
    Ka = K @ a
    sxx = a @ Ka
    sxy = a @ row - sxx
    syy = total - 2 * (a @ row) + sxx
    value = float(stat(sxx, syy, sxy))
    p = None
    if permutations:
        rng = rng if rng is not None else np.random.default_rng(0)
        A = np.zeros((N, permutations))
        for j in range(permutations):
            A[rng.permutation(N)[:n], j] = 1.0
        KA = K @ A
        sxx_p = np.einsum("ij,ij->j", A, KA)
        ar = A.T @ row
        null = stat(sxx_p, total - 2 * ar + sxx_p, ar - sxx_p)
        p = float((1 + np.sum(null >= value)) / (1 + permutations))
    return value, float(bandwidth), p


@metric("distance/mmd", args={"permutations": 200, "max_exact": 4000, "subsample": 2000},
        needs=("embeddings", "reference_embeddings"),
        higher_is_better=False,
        bounds=(0, 2),
        seeded=True,
        neutral_args={"permutations": 0},
        expect={"label-noise": "0", "topic-drift": "+", "mode-collapse": "+", "class-drop": "+"},
        identity=Identity(0, 0.01, 0, 0.02,
                 "0 (the unbiased estimate is near 0 for one distribution)"),
        range="[0, 2] (the unbiased estimate can dip below 0)",
        resampler="mmd_resampler")
def mmd_rbf(ctx, permutations: int = 200, max_exact: int = 4000, subsample: int = 2000) -> Score:
    """Squared maximum mean discrepancy (RBF kernel) between candidate and reference embeddings; lower is better.

    Range about [0, 2]: 0 when the distributions match (the unbiased estimate then scatters
    around 0 and can be slightly negative). Gaussian kernel with the median-heuristic bandwidth,
    unbiased U-statistic estimator and a permutation test (``permutations`` relabellings; the
    p-value is in details: small means the two samples differ). Exact on all rows when
    n + m <= ``max_exact``; otherwise on a seeded subsample of ``subsample`` rows per side, so it
    stays fast at any size (details name the estimator and sizes). No interval: the permutation
    p-value is the inferential output. Gretton et al., "A Kernel Two-Sample Test", JMLR 2012.
    """
    X, Y = _pair(ctx, 2)
    n, m = X.shape[0], Y.shape[0]
    rng = ctx.rng("distance/mmd")
    if n + m <= max_exact:
        estimator, ix, iy = "exact", slice(None), slice(None)
    else:
        estimator = "subsample"
        ix, iy = _sample(rng, n, min(n, subsample)), _sample(rng, m, min(m, subsample))
    Xs, Ys = X[ix], Y[iy]
    value, bw, p = rbf_mmd2(Xs, Ys, permutations=permutations, rng=rng)
    return Score(value, None, {"p_value": p, "permutations": int(permutations), "bandwidth": bw,
                               "kernel": "rbf exp(-d^2/(2 s^2)), s = median pairwise distance",
                               "estimator": estimator, "n_candidate": int(len(Xs)), "n_reference": int(len(Ys)),
                               "of": [int(n), int(m)]})


# ----------------------------------------------------------------------------- precision / recall / density / coverage
# the k-NN radii and the screened, exactly settled distances come from harness.stats.knn


@dataclass(frozen=True)
class PRDC:
    """Per-row outcomes of the k-NN ball tests (Naeem et al. 2020) and the four summaries."""

    fake_counts: object   # per fake row: how many real k-NN balls contain it
    real_covered: object  # per real row: its own k-NN ball contains some fake row
    real_recalled: object  # per real row: it lies in some fake row's k-NN ball
    k: int
    refined: int          # pairs whose comparison was settled in exact arithmetic

    @property
    def precision(self) -> float:
        return float((self.fake_counts > 0).mean())

    @property
    def density(self) -> float:
        return float((1.0 / self.k) * self.fake_counts.mean())  # the prdc package's order of operations

    @property
    def recall(self) -> float:
        return float(self.real_recalled.mean())

    @property
    def coverage(self) -> float:
        return float(self.real_covered.mean())

    def values(self) -> dict:
        return {"precision": self.precision, "recall": self.recall, "density": self.density,
                "coverage": self.coverage}


def prdc(real, fake, k: int = 5, block_rows: int | None = None) -> PRDC:
    """Precision, recall, density and coverage of ``fake`` against ``real`` (Naeem et al. 2020).

    Same definitions and numerics as the ``prdc`` package (Euclidean distances, strict ``<``
    against k-NN radii): the float32 blocks only screen, and every comparison within the
    float32 error bound of its radius is redone in the package's arithmetic (squared distance in
    float64, rounded to the input dtype), so the four values agree exactly. The one exception is
    distances at rounding-noise level (rows that coincide up to ~1e-7 of their norm, e.g. exact
    duplicates with at least k copies), where no two summation orders agree. Memory is
    O(block_rows x n) instead of three full n x m matrices.
    """
    import numpy as np

    real, fake = np.asarray(real), np.asarray(fake)
    r_real, ref1 = knn_radii(real, k, block_rows)
    r_fake, ref2 = knn_radii(fake, k, block_rows)
    out_dtype = r_real.dtype if r_real.dtype == r_fake.dtype else np.float64
    sc = Screen(fake, real, out_dtype)  # block rows: fake; columns: real
    t_real, m_real = sc.margin(r_real)
    t_fake, m_fake = sc.margin(r_fake)
    hi_real, lo_real = f32_up(t_real + m_real), t_real - m_real
    hi_fake, lo_fake = f32_up(t_fake + m_fake), t_fake - m_fake
    n_fake, n_real = fake.shape[0], real.shape[0]
    counts = np.zeros(n_fake, dtype=np.int64)
    covered = np.zeros(n_real, dtype=bool)
    recalled = np.zeros(n_real, dtype=bool)
    refined = ref1 + ref2
    B = rows_per_block(n_real, block_rows)

    def settle(sv, rows, cols, lo, radius_of):
        """Keep the (row, col) pairs whose distance is below the radius; exact where unsure."""
        nonlocal refined
        sure = sv < lo
        unsure = np.flatnonzero(~sure)
        if len(unsure):
            refined += len(unsure)
            d = exact_dist(real, fake, cols[unsure], rows[unsure], sc.bb, sc.aa, out_dtype)
            sure[unsure] = d < radius_of[unsure]
        return rows[sure], cols[sure]

    for s in range(0, n_fake, B):
        e = min(n_fake, s + B)
        S = sc.block(s, e)
        # one sparse scan for both tests, then each test on the few values gathered
        mask = S < hi_real[None, :]
        mask |= S < hi_fake[s:e, None]
        rows, cols = nonzero2d(mask)
        del mask
        sv = S[rows, cols]
        del S
        rows += s
        # fake j inside real i's ball (precision, density, coverage)
        i = np.flatnonzero(sv < hi_real[cols])
        rr, cc = settle(sv[i], rows[i], cols[i], lo_real[cols[i]], r_real[cols[i]])
        counts += np.bincount(rr, minlength=n_fake)
        covered[cc] = True
        # real i inside fake j's ball (recall)
        i = np.flatnonzero(sv < hi_fake[rows])
        rr, cc = settle(sv[i], rows[i], cols[i], lo_fake[rows[i]], r_fake[rows[i]])
        recalled[cc] = True
    return PRDC(counts, covered, recalled, k, refined)


def _prdc_for(ctx, k: int, max_rows: int) -> tuple[PRDC, dict]:
    def compute():
        X, Y = _pair(ctx, k + 1)
        rng = ctx.rng("distance/prdc")
        size = min(X.shape[0], Y.shape[0], max_rows)
        ix, iy = _sample(rng, X.shape[0], size), _sample(rng, Y.shape[0], size)
        res = prdc(Y[iy], X[ix], k)
        return res, {"k": int(k), "rows_per_side": int(size), "of": [int(X.shape[0]), int(Y.shape[0])],
                     "refined_pairs": int(res.refined)}

    return _memo(ctx, ("prdc", k, max_rows), compute)


def _prdc_score(ctx, which: str, k: int, max_rows: int) -> Score:
    res, info = _prdc_for(ctx, k, max_rows)
    vals = res.values()
    v = vals[which]
    if which == "density":
        x = res.fake_counts / res.k
        se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0
        ci = normal_ci(v, se, 0.0, None)
    else:
        rows = res.fake_counts > 0 if which == "precision" else (
            res.real_recalled if which == "recall" else res.real_covered)
        ci = wilson_ci(int(rows.sum()), len(rows))
    return Score(v, ci, {**info, "all": {kk: round(x, 6) for kk, x in vals.items()}})


_PRDC_DOC_TAIL = """
    Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative Models", ICML 2020:
    k = 5 nearest neighbours, Euclidean distances on the embeddings, as in their ``prdc`` package
    (and equal to it value for value; see ``prdc``). Both sides are subsampled (seeded) to the
    same size, min(n_candidate, n_reference, ``max_rows``), as in the paper, whose expected values
    (e.g. coverage ~0.97 for identical distributions) assume equal sizes; the values move with
    that size. The four metrics share one computation per candidate. Interval: Wilson (density:
    normal) over rows, holding the k-NN balls fixed.
"""


@metric("distance/precision", args={"k": 5, "max_rows": 10000},
        needs=("embeddings", "reference_embeddings"),
        higher_is_better=True,
        bounds=(0, 1),
        size_dependent=True,
        seeded=True,
        expect={"label-noise": "0", "topic-drift": "-"},
        identity=Identity(1, 1e-09, 1, 0.35,
                 ("1 = every candidate row on the real manifold; k-NN balls of a finite sample miss some rows of "
                  "another")),
        resampler="prdc_precision_resampler")
def prdc_precision(ctx, k: int = 5, max_rows: int = 10000) -> Score:
    """Precision: share of candidate rows inside the k-NN ball of some reference row; higher is better.

    Range [0, 1]; higher is better (fidelity: candidates look like real data).
    """
    return _prdc_score(ctx, "precision", k, max_rows)


@metric("distance/recall", args={"k": 5, "max_rows": 10000},
        needs=("embeddings", "reference_embeddings"),
        higher_is_better=True,
        bounds=(0, 1),
        seeded=True,
        expect={"label-noise": "0", "topic-drift": "-", "mode-collapse": "-", "class-drop": "-"},
        limits={"mode-collapse": KNN_RECALL, "topic-drift": KNN_RECALL},
        identity=Identity(1, 1e-09, 1, 0.35,
                 "as precision, the other way round"),
        resampler="prdc_recall_resampler")
def prdc_recall(ctx, k: int = 5, max_rows: int = 10000) -> Score:
    """Recall: share of reference rows inside the k-NN ball of some candidate row; higher is better.

    Range [0, 1]; higher is better (diversity: the candidate spans the real data).
    """
    return _prdc_score(ctx, "recall", k, max_rows)


@metric("distance/density", args={"k": 5, "max_rows": 10000},
        needs=("embeddings", "reference_embeddings"),
        bounds=(0, INF),
        size_dependent=True,
        seeded=True,
        expect={"label-noise": "0", "topic-drift": "-"},
        identity=Identity(1, 1e-09, 1, 0.35,
                 ("membership is strict (distance < radius, as in prdc), so each real ball holds its centre and k "
                  "- 1 neighbours: a set against itself gives k/k = 1 (not (k + 1)/k as first declared); two "
                  "samples give about 1")),
        range="[0, n/k] (about 1 = matching)",
        resampler="prdc_density_resampler")
def prdc_density(ctx, k: int = 5, max_rows: int = 10000) -> Score:
    """Density: mean number of reference k-NN balls holding a candidate row, over k; about 1 when distributions match.

    Range [0, n/k], no fixed upper bound; no direction: ~1 for matching distributions, below 1 when candidates fall in
    sparse or empty regions, above 1 when they crowd into the densest real regions (a
    mode-collapse symptom, not an improvement), so neither higher nor lower is better.
    """
    return _prdc_score(ctx, "density", k, max_rows)


@metric("distance/coverage", args={"k": 5, "max_rows": 10000},
        needs=("embeddings", "reference_embeddings"),
        higher_is_better=True,
        bounds=(0, 1),
        size_dependent=True,
        seeded=True,
        expect={"label-noise": "0", "topic-drift": "-", "mode-collapse": "-", "class-drop": "-"},
        limits={"mode-collapse": MODE_COLLAPSE_BBC},
        identity=Identity(1, 1e-09, 1, 0.15,
                 "1; for one distribution about 1 - 2^-k = 0.97 (Naeem et al.)"),
        resampler="prdc_coverage_resampler")
def prdc_coverage(ctx, k: int = 5, max_rows: int = 10000) -> Score:
    """Coverage: share of reference rows whose k-NN ball holds some candidate row; higher is better.

    Range [0, 1]; higher is better (about 0.97 for identical distributions with k = 5).
    """
    return _prdc_score(ctx, "coverage", k, max_rows)


extend_doc(_PRDC_DOC_TAIL, prdc_precision, prdc_recall, prdc_density, prdc_coverage)


# ----------------------------------------------------------------------------- classifier two-sample test


def _c2st(ctx, features, folds: int, max_rows: int, salt: str):
    """Balanced sample, out-of-fold logistic-regression probabilities, AUC with a DeLong interval."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    ref = _reference(ctx)
    n, m = len(ctx.texts), len(ref.texts)
    size = min(n, m, max_rows)
    if size < 2 * folds:
        raise MetricSkipped(f"needs at least {2 * folds} rows on each side (candidate {n}, reference {m})")
    rng = ctx.rng(salt)
    ic, ir = _sample(rng, n, size), _sample(rng, m, size)
    X, clf, extra = features(ic, ir)
    y = np.r_[np.ones(size, dtype=int), np.zeros(size, dtype=int)]
    seed = int(rng.integers(2**31 - 1))
    # Identical texts (a copy of a reference row, a duplicate inside the candidate) share one fold: with
    # a copy in training and its twin tested, the classifier "recognises" the twin, which pushed the AUC
    # of a set against itself to 0.03-0.17 and made copying the reference look better than 0.5 (found by
    # `synthbench validate`). Without identical texts the folds are the plain stratified ones, as before.
    from harness.metrics.direct.duplicates import normalise

    keys = [normalise(ctx.texts[i]) for i in ic] + [normalise(ref.texts[j]) for j in ir]
    if len(set(keys)) < len(keys):
        from sklearn.model_selection import StratifiedGroupKFold

        groups = np.unique(keys, return_inverse=True)[1]
        cv = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        p = cross_val_predict(clf, X, y, groups=groups, cv=cv, method="predict_proba")[:, 1]
        extra_details = {"grouped_identical_texts": int(len(keys) - len(set(keys)))}
    else:
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        p = cross_val_predict(clf, X, y, cv=cv, method="predict_proba")[:, 1]
        extra_details = {}
    auc, se = delong_auc(y, p)
    top = np.argsort(-p[:size], kind="stable")[:5]
    details = {"rows_per_side": int(size), "of": [int(n), int(m)], "folds": int(folds),
               "accuracy": float(((p >= 0.5) == y).mean()), "se": se,
               "most_synthetic_looking": [{"row": int(ic[i]), "p_synthetic": round(float(p[i]), 4),
                                           "text": ctx.texts[ic[i]][:160]} for i in top]}
    details.update(extra(X, y) if extra else {})
    details.update(extra_details)
    # row flags: sampled candidate rows that are outliers among the reference rows' scores (FDR 10%)
    ood = sorted(int(ic[i]) for i in conformal_outliers(p[:size], p[size:], fdr=0.1))
    return Score(auc, normal_ci(auc, se, 0.0, 1.0), details, rows={"out-of-distribution": ood})


_C2ST_DOC = """
    Classifier two-sample test (Lopez-Paz & Oquab, "Revisiting Classifier Two-Sample Tests",
    ICLR 2017): candidate rows are labelled 1 and reference rows 0, the larger side is subsampled
    (seeded) to the smaller, each side capped at ``max_rows``; a logistic regression is
    cross-validated (stratified, ``folds`` folds) and the value is the ROC AUC of its out-of-fold
    probabilities. Range [0, 1]: 0.5 = indistinguishable from real data, 1 = trivially separable;
    lower is better. Interval: DeLong (normal, clipped). Details list the five candidate rows the
    classifier found most synthetic-looking. Row flags: ``out-of-distribution`` for the sampled
    candidate rows whose out-of-fold probability of being synthetic is an outlier among the sampled
    reference rows' probabilities: conformal p-values, Benjamini-Hochberg at a false discovery rate
    of 10% (Bates et al., Annals of Statistics 2023; ``harness.stats.conformal_outliers``). When the
    AUC is near 1 most rows qualify; rows left out of the balanced sample are never flagged.
"""


@metric("distance/c2st-embed", args={"folds": 5, "max_rows": 5000},
        needs=("texts", "embeddings", "reference_embeddings"),
        size_dependent=True,
        higher_is_better=False,
        bounds=(0, 1),
        seeded=True,
        cost="heavy",
        expect={"label-noise": "0", "topic-drift": "+", "mode-collapse": "+", "class-drop": "+"},
        identity=Identity(0.5, 0.1, 0.5, 0.1,
                 "AUC 0.5 = indistinguishable"),
        range="[0, 1] (0.5 = indistinguishable)")
def c2st_embed(ctx, folds: int = 5, max_rows: int = 5000) -> Score:
    """Classifier two-sample test AUC on sentence embeddings: 0.5 = indistinguishable from real, 1 = separable; lower is better."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    X, Y = _pair(ctx, 2)

    def features(ic, ir):
        Z = np.vstack([X[ic], Y[ir]]).astype(np.float64)
        return Z, LogisticRegression(C=1.0, max_iter=1000), None

    s = _c2st(ctx, features, folds, max_rows, "distance/c2st-embed")
    s.details["classifier"] = "logistic regression (C=1, lbfgs) on the embeddings"
    return s


@metric("distance/c2st-tfidf", args={"folds": 5, "max_rows": 5000},
        needs=("texts", "reference"),
        size_dependent=True,
        higher_is_better=False,
        bounds=(0, 1),
        seeded=True,
        cost="heavy",
        expect={"label-noise": "0", "topic-drift": "+", "mode-collapse": "+", "class-drop": "+", "shuffled-words": "+"},
        identity=Identity(0.5, 0.1, 0.5, 0.1,
                 "AUC 0.5 = indistinguishable"),
        range="[0, 1] (0.5 = indistinguishable)")
def c2st_tfidf(ctx, folds: int = 5, max_rows: int = 5000) -> Score:
    """Classifier two-sample test AUC on TF-IDF word 1-2-grams: 0.5 = indistinguishable from real, 1 = separable; lower is better.

    Features: TF-IDF of lower-cased word uni- and bigrams seen in at least 2 rows (sublinear tf),
    fitted on the balanced sample (no labels involved). Details add the 15 n-grams pushing most
    towards "synthetic" and the 15 pushing most towards "real", from a fit on the whole sample.
    """
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    ref = _reference(ctx)

    def features(ic, ir):
        texts = [ctx.texts[i] for i in ic] + [ref.texts[i] for i in ir]
        vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
        try:
            Z = vec.fit_transform(texts)
        except ValueError:  # empty vocabulary
            raise MetricSkipped("no word n-gram occurs in two rows") from None

        def extra(Z, y):
            clf = LogisticRegression(C=1.0, solver="liblinear").fit(Z, y)
            names = vec.get_feature_names_out()
            coef = clf.coef_[0]
            order = np.argsort(coef, kind="stable")
            return {"synthetic_ngrams": [[str(names[i]), round(float(coef[i]), 3)] for i in order[::-1][:15]],
                    "real_ngrams": [[str(names[i]), round(float(coef[i]), 3)] for i in order[:15]],
                    "vocabulary": int(len(names))}

        return Z, LogisticRegression(C=1.0, solver="liblinear"), extra

    s = _c2st(ctx, features, folds, max_rows, "distance/c2st-tfidf")
    s.details["classifier"] = "logistic regression (C=1, liblinear) on TF-IDF word 1-2-grams"
    return s


extend_doc(_C2ST_DOC, c2st_embed, c2st_tfidf)


# ----------------------------------------------------------------------------- per class


def _perclass(ctx, key, min_rows: int, compute):
    """Run ``compute(real, fake, rng)`` -> dict of values within every label both sides share.

    Returns (per-class dicts, details skeleton). Classes are compared at equal sizes
    (seeded subsample of the larger side)."""

    def run():
        import numpy as np

        ref = _reference(ctx)
        if ctx.labels is None:
            raise MetricSkipped("needs labels")
        if ref.labels is None:
            raise MetricSkipped("needs a labelled reference")
        X, Y = _pair(ctx, 1)
        rng = ctx.rng(f"perclass/{key[1]}")
        cand, real = {}, {}
        for i, lab in enumerate(ctx.labels):
            cand.setdefault(lab, []).append(i)
        for i, lab in enumerate(ref.labels):
            real.setdefault(lab, []).append(i)
        shared = sorted(set(cand) & set(real))
        per, skipped = {}, {}
        for lab in shared:
            ic, ir = np.asarray(cand[lab]), np.asarray(real[lab])
            if len(ic) < min_rows or len(ir) < min_rows:
                skipped[lab] = [len(ic), len(ir)]
                continue
            size = min(len(ic), len(ir))
            ic, ir = ic[_sample(rng, len(ic), size)], ir[_sample(rng, len(ir), size)]
            per[lab] = compute(Y[ir], X[ic], rng)
        info = {"classes_evaluated": len(per), "min_rows": int(min_rows),
                "skipped_too_few_rows": {str(k): v for k, v in skipped.items()},
                "missing_from_reference": sorted(map(str, set(cand) - set(real))),
                "missing_from_candidate": sorted(map(str, set(real) - set(cand)))}
        return per, info

    per, info = _memo(ctx, key, run)
    if not per:
        if not info["skipped_too_few_rows"]:
            raise MetricSkipped("no label is shared by the candidate and the reference")
        raise MetricSkipped(f"no shared label has at least {min_rows} rows on both sides")
    return per, info


def _macro(per, which, info) -> Score:
    vals = {str(lab): d[which] for lab, d in per.items()}
    value = sum(vals.values()) / len(vals)
    worst = sorted(vals.items(), key=lambda kv: kv[1])[:5]
    return Score(value, None, {**info, "per_class": {k: round(v, 4) for k, v in sorted(vals.items())},
                               "worst": [[k, round(v, 4)] for k, v in worst]})


_PERCLASS_DOC = """
    Computed separately within every label that candidate and reference share, each class at
    equal sizes (seeded subsample of the larger side); classes with fewer than ``min_rows`` rows
    on either side are skipped. Value: the macro-average over evaluated classes. Details: the
    per-class values, the five worst classes, and the labels skipped or present on one side
    only. Catches data that matches overall but not within classes (e.g. every row resembles
    real data of some *other* intent). No interval: the label set is fixed, not sampled; the
    per-class values show the spread.
"""


def _perclass_prdc(ctx, which, k, min_rows):
    per, info = _perclass(ctx, ("perclass", "prdc", k, min_rows), max(min_rows, k + 1),
                          lambda real, fake, rng: prdc(real, fake, k).values())
    return _macro(per, which, {**info, "k": int(k)})


@metric("perclass/precision", args={"k": 5, "min_rows": 6},
        needs=("labels", "embeddings", "reference_embeddings"),
        higher_is_better=True,
        bounds=(0, 1),
        seeded=True,
        expect={"label-noise": "-", "topic-drift": "-"},
        identity=Identity(1, 1e-09, 1, 0.4,
                 "as distance/precision, within each class"),
        resampler="perclass_precision_resampler")
def perclass_precision(ctx, k: int = 5, min_rows: int = 6) -> Score:
    """Macro-average over labels of within-class precision (Naeem et al., ICML 2020); higher is better.

    Range [0, 1]; higher is better. See ``distance/precision``.
    """
    return _perclass_prdc(ctx, "precision", k, min_rows)


@metric("perclass/recall", args={"k": 5, "min_rows": 6},
        needs=("labels", "embeddings", "reference_embeddings"),
        higher_is_better=True,
        bounds=(0, 1),
        size_dependent=True,
        seeded=True,
        expect={"topic-drift": "-"},
        limits={"topic-drift": KNN_RECALL},
        identity=Identity(1, 1e-09, 1, 0.4,
                 "as distance/recall, within each class"),
        resampler="perclass_recall_resampler")
def perclass_recall(ctx, k: int = 5, min_rows: int = 6) -> Score:
    """Macro-average over labels of within-class recall (Naeem et al., ICML 2020); higher is better.

    Range [0, 1]; higher is better. See ``distance/recall``.
    """
    return _perclass_prdc(ctx, "recall", k, min_rows)


@metric("perclass/coverage", args={"k": 5, "min_rows": 6},
        needs=("labels", "embeddings", "reference_embeddings"),
        higher_is_better=True,
        bounds=(0, 1),
        size_dependent=True,
        seeded=True,
        expect={"topic-drift": "-"},
        identity=Identity(1, 1e-09, 1, 0.25,
                 "as distance/coverage, within each class"),
        resampler="perclass_coverage_resampler")
def perclass_coverage(ctx, k: int = 5, min_rows: int = 6) -> Score:
    """Macro-average over labels of within-class coverage (Naeem et al., ICML 2020); higher is better.

    Range [0, 1]; higher is better. See ``distance/coverage``.
    """
    return _perclass_prdc(ctx, "coverage", k, min_rows)


@metric("perclass/mauve", args={"seeds": 3, "min_rows": 20},
        needs=("labels", "embeddings", "reference_embeddings"),
        higher_is_better=True,
        bounds=(0, 1),
        size_dependent=True,
        seeded=True,
        cost="heavy",
        expect={"label-noise": "-", "topic-drift": "-"},
        limits={
            "identity": ("Per-class MAUVE runs mauve-text on tiny histograms (4 k-means buckets for ~40 rows a class). "
             "For identical sets mauve-text itself returns 0.75 with some k-means seeds: reproduced on the 43 "
             "politics rows of the BBC identity sample, compute_mauve(P, P) = 0.75 with seed 284985359 and "
             "1.0 with the two others, so the class mean is 0.917 and the macro-average 0.983. An artefact of "
             "mauve-text on small classes, not of the harness code; per-class MAUVE below ~50 rows a class is "
             "noisy."),
        },
        identity=Identity(1, 0.01, 1, 0.25,
                 "as distance/mauve, within each class"),
        range="(0, 1]")
def perclass_mauve(ctx, seeds: int = 3, min_rows: int = 20, kmeans_num_redo: int = 1,
                   kmeans_max_iter: int = 100) -> Score:
    """Macro-average over labels of within-class MAUVE (Pillutla et al., NeurIPS 2021); higher is better.

    Range (0, 1]; higher is better. Each class's value is the mean over ``seeds`` k-means seeds
    with mauve-text's automatic ``num_buckets`` (rows/10, at least 2), so small classes get
    coarse histograms. Needs the optional package mauve-text. See ``distance/mauve``.
    """
    _import_mauve()

    def compute(real, fake, rng):
        vals, buckets = mauve_values(real, fake, _seed_list(rng, seeds), "auto", kmeans_num_redo, kmeans_max_iter)
        return {"mauve": sum(vals) / len(vals)}

    per, info = _perclass(ctx, ("perclass", "mauve", seeds, min_rows, kmeans_num_redo, kmeans_max_iter),
                          min_rows, compute)
    return _macro(per, "mauve", info)


extend_doc(_PERCLASS_DOC, perclass_precision, perclass_recall, perclass_coverage, perclass_mauve)


# ----------------------------------------------------------------------------- resamplers (compare)
# fn(pool_ctx, **args) -> harness.stats.sufficient.Resampler (harness/stats/sufficient.py).

def frechet_resampler(ctx):
    """Fréchet distance on a subset: the sum and d x d sum of outer products of its rows (a permutation's
    B side is the pooled sums minus A's), and per reference subset its mean, covariance and a factor
    C2 = F F^T (Cholesky; the symmetric square root when C2 is singular). Tr((C1 C2)^(1/2)) is taken as
    the sum of square roots of the eigenvalues of F^T C1 F (similar to C1 C2, like the metric's
    C1^(1/2) C2 C1^(1/2)): equal to the metric's value to floating-point tolerance."""
    import numpy as np

    from harness.stats.linalg import eigvalsh  # numpy's, without the GIL: resamplers run in threads
    from harness.stats.sufficient import BatchResampler, PerRef, rows_of

    if ctx.reference is None:
        return None
    X = np.asarray(ctx.embeddings, dtype=np.float64)
    Y = np.asarray(ctx.reference.embeddings)
    n_pool = len(X)
    total_s = X.sum(axis=0)
    per_ref = PerRef()

    def ref_side(ref_rows):
        mu2, c2 = mean_cov(Y[rows_of(ref_rows, len(Y))])
        c2 = (c2 + c2.T) / 2
        try:  # C2 = L L^T: L^T C1 L is similar to C1 C2, a Cholesky factor costs a tenth of a square root
            f2 = np.linalg.cholesky(c2)
        except np.linalg.LinAlgError:  # singular (fewer rows than dimensions, repeated rows)
            w, V = np.linalg.eigh(c2)
            f2 = (V * np.sqrt(np.clip(w, 0, None))) @ V.T
        return mu2, c2, f2, float(np.trace(c2)), len(rows_of(ref_rows, len(Y)))

    def finish(n, s1, m1, ref):
        mu2, c2, s2, tr2, m = ref
        if n < 2 or m < 2:
            raise MetricSkipped("needs at least 2 rows on each side")
        mu1 = s1 / n
        c1 = (m1 - n * np.outer(mu1, mu1)) / (n - 1)
        mm = s2.T @ c1 @ s2
        ev = eigvalsh((mm + mm.T) / 2)
        diff = mu1 - mu2
        return max(0.0, float(diff @ diff + np.trace(c1) + tr2 - 2.0 * np.sqrt(np.clip(ev, 0, None)).sum()))

    # permutations keep the whole reference: the pooled rows projected once on F, so that a side's
    # F^T C1 F is the centred d x d sum of its projected rows (a permutation's second side:
    # the pooled sums minus the first's) and Tr(C1) comes from the rows' squared norms
    proj: dict = {}

    def projected():
        if not proj:
            s2 = per_ref.get(None, ref_side)[2]
            P = X @ s2
            proj.update(P=P, sP=P.sum(axis=0), MP=P.T @ P, sq=np.einsum("ij,ij->i", X, X))
            proj["tot_sq"] = float(proj["sq"].sum())
        return proj

    def finish_projected(n, sx, sq, sP, MP, ref):
        mu2, _, _, tr2, m = ref
        if n < 2 or m < 2:
            raise MetricSkipped("needs at least 2 rows on each side")
        mu1, muP = sx / n, sP / n
        mm = (MP - n * np.outer(muP, muP)) / (n - 1)
        ev = eigvalsh((mm + mm.T) / 2)
        tr1 = (sq - n * float(mu1 @ mu1)) / (n - 1)
        diff = mu1 - mu2
        return max(0.0, float(diff @ diff + tr1 + tr2 - 2.0 * np.sqrt(np.clip(ev, 0, None)).sum()))

    def values(calls):
        out, prev = [], None
        for rows, ref_rows, _ in calls:
            rows = np.asarray(rows, dtype=np.int64)
            try:
                ref = per_ref.get(ref_rows, ref_side)
                if ref_rows is not None:
                    prev = None
                    Z = X[rows]
                    out.append(finish(len(rows), Z.sum(axis=0), Z.T @ Z, ref))
                    continue
                pj = projected()
                if prev is not None and len(rows) + prev[0] == n_pool:
                    # a permutation's second side: the pooled sums minus the first side's
                    n0, sx0, sq0, sP0, MP0 = prev
                    out.append(finish_projected(len(rows), total_s - sx0, pj["tot_sq"] - sq0, pj["sP"] - sP0,
                                                pj["MP"] - MP0, ref))
                    prev = None
                    continue
                Pz = pj["P"][rows]
                cur = (len(rows), X[rows].sum(axis=0), float(pj["sq"][rows].sum()), Pz.sum(axis=0), Pz.T @ Pz)
                prev = cur
                out.append(finish_projected(*cur, ref))
            except MetricSkipped as e:
                out.append(e)
                prev = None
        return out

    res = BatchResampler(values, "sums of rows and outer products")
    return res


def _pair_median(D, n_first: int, rest):
    """``np.median`` of the distinct pairs (the strict upper triangle) of ``D[both, both]``, where ``both``
    is rows ``0..n_first-1`` then the rows ``rest`` of the symmetric, zero-diagonal, non-negative ``D``:
    the same number, without the triangle's index arrays. The blocks' full matrix lists every pair twice
    and its diagonal's zeros first, so the triangle's i-th smallest is the full list's (N + 2i)-th.

    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(9, 2))
    >>> D = ((X[:, None] - X[None]) ** 2).sum(-1)
    >>> both = np.r_[0:4, [5, 7, 8]]
    >>> bool(_pair_median(D, 4, np.array([5, 7, 8])) == np.median(D[np.ix_(both, both)][np.triu_indices(7, 1)]))
    True
    """
    import numpy as np

    rest = np.asarray(rest, dtype=np.int64)
    cross = D[:n_first][:, rest].ravel()
    full = np.concatenate([D[:n_first, :n_first].ravel(), cross, cross, D[np.ix_(rest, rest)].ravel()])
    N = n_first + len(rest)
    M = N * (N - 1) // 2
    if M % 2:
        return float(np.partition(full, N + M - 1)[N + M - 1])
    part = np.partition(full, [N + M - 2, N + M])
    return float(np.mean(part[[N + M - 2, N + M]]))


def mmd_resampler(ctx, permutations: int = 200, max_exact: int = 4000, subsample: int = 2000):
    """MMD on a subset, with the kernel bandwidth held fixed: an approximation (stated in compare's notes).

    The metric's bandwidth is the median pairwise distance of each evaluation's own rows, an order
    statistic over (n + m)^2 / 2 pairs that has no cheap representation (0.6 s per evaluation on 4,000
    rows). Here it is fixed at the median heuristic of the pooled rows together with the reference
    rows the metric uses, computed once, so that each resample's unbiased MMD^2 is an exact quadratic
    form in one precomputed kernel matrix (all subsets in a few GEMMs). Everything else mimics the
    metric on the subset: the exact estimator up to ``max_exact`` rows, the seeded ``subsample`` beyond.
    Compare takes the p-value from this statistic's own observed difference (a valid permutation test:
    the bandwidth is a symmetric function of the pooled rows) and the interval's spread from its
    half-samples; the reported values are the metric's. tests/unit/analysis/test_resamplers.py bounds
    its distance from the exact value. None when the kernel matrix would exceed 1.2 GB."""
    import numpy as np

    from harness.stats.sufficient import BatchResampler, rows_of

    if ctx.reference is None:
        return None
    X = np.asarray(ctx.embeddings, dtype=np.float64)
    Y = np.asarray(ctx.reference.embeddings, dtype=np.float64)
    n_p, m_all = len(X), len(Y)
    N = n_p + m_all
    if N * N * 8 > 1.2e9:
        return None
    seed_rng = lambda: ctx.rng("distance/mmd")  # noqa: E731  (the metric's stream, fresh per evaluation)

    def select(rows, ref_rows):
        rows = np.asarray(rows, dtype=np.int64)
        ref = rows_of(ref_rows, m_all)
        n, m = len(rows), len(ref)
        if n < 2 or m < 2:
            raise MetricSkipped("needs at least 2 rows on each side")
        if n + m <= max_exact:
            return rows, ref
        rng = seed_rng()
        return rows[_sample(rng, n, min(n, subsample))], ref[_sample(rng, m, min(m, subsample))]

    Z = np.vstack([X, Y])
    zz = np.einsum("ij,ij->i", Z, Z)
    K = Z @ Z.T
    K *= -2
    K += zz[:, None]
    K += zz[None, :]
    np.maximum(K, 0, out=K)
    np.fill_diagonal(K, 0)
    # the fixed bandwidth: median pairwise distance of the pooled rows and the reference rows A's full
    # evaluation uses (A's selection applied to the whole pool)
    _, ref0 = select(np.arange(n_p), None)
    bandwidth = float(np.sqrt(_pair_median(K, n_p, n_p + ref0)))
    if bandwidth <= 0:
        bandwidth = 1.0
    K *= -1.0 / (2 * bandwidth**2)
    np.exp(K, out=K)
    np.fill_diagonal(K, 0)

    Kpp, Krp, Krr = K[:n_p, :n_p], K[n_p:, :n_p], K[n_p:, n_p:]
    row_pp = Kpp.sum(axis=1)
    tot_pp = float(row_pp.sum())

    def values(calls):
        sel, out = [], [None] * len(calls)
        for i, (rows, ref_rows, _) in enumerate(calls):
            try:
                sel.append((i,) + select(rows, ref_rows))
            except MetricSkipped as e:
                out[i] = e
        # reference side, once per distinct reference selection: sum of its kernel and its kernel row
        # sums against every pooled row
        keys, ref_of = {}, []
        for _, _, ref in sel:
            ref_of.append(keys.setdefault(ref.tobytes(), (len(keys), ref))[0])
        uniq = sorted(keys.values())
        syy, cross = np.empty(len(uniq)), np.empty((len(uniq), n_p))
        for b0 in range(0, len(uniq), 64):
            Bu = np.zeros((len(uniq[b0:b0 + 64]), m_all))
            for j, (_, ref) in enumerate(uniq[b0:b0 + 64]):
                Bu[j, ref] = 1.0
            syy[b0:b0 + len(Bu)] = np.einsum("ij,ij->i", Bu @ Krr, Bu)
            cross[b0:b0 + len(Bu)] = Bu @ Krp
        # candidate side: a permutation's second side is the complement of the first in the pool
        sxx = np.full(len(sel), np.nan)
        comp = np.zeros(len(sel), dtype=bool)
        for j in range(1, len(sel)):
            if (not comp[j - 1] and sel[j][0] == sel[j - 1][0] + 1 and len(sel[j][1]) + len(sel[j - 1][1]) == n_p
                    and len(np.union1d(sel[j][1], sel[j - 1][1])) == n_p):
                comp[j] = True
        todo = np.flatnonzero(~comp)
        A_all = {}
        for b0 in range(0, len(todo), 128):
            blk = todo[b0:b0 + 128]
            A = np.zeros((len(blk), n_p))
            for j, t in enumerate(blk):
                A[j, sel[t][1]] = 1.0
            sxx[blk] = np.einsum("ij,ij->i", A @ Kpp, A)
            for j, t in enumerate(blk):
                if t + 1 < len(sel) and comp[t + 1]:
                    A_all[t] = float(A[j] @ row_pp)
        for t in np.flatnonzero(comp):
            sxx[t] = tot_pp - 2 * A_all[t - 1] + sxx[t - 1]
        for t, (i, rows, ref) in enumerate(sel):
            n, m = len(rows), len(ref)
            sxy = float(cross[ref_of[t], rows].sum())
            out[i] = float(sxx[t] / (n * (n - 1)) + syy[ref_of[t]] / (m * (m - 1)) - 2 * sxy / (n * m))
        return out

    res = BatchResampler(values, f"RBF kernel of pooled and reference rows, bandwidth fixed at {bandwidth:.4g}")
    res.approximate = (f"bandwidth fixed at the pooled median heuristic ({bandwidth:.4g}) instead of each "
                       "resample's own median: p from this statistic's observed difference")
    return res


def _nearest_sorted(D, L: int):
    """Per row of the distance matrix ``D``: the columns of its ``L`` smallest entries, nearest first
    (equal distances in argpartition's order), and those distances."""
    import numpy as np

    part = np.argpartition(D, L - 1, axis=1)[:, :L]
    dist = np.take_along_axis(D, part, axis=1)
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(dist, order, axis=1)


class _PRDCResampler:
    """Precision, recall, density and coverage on any subset, from distances computed once: pooled x
    reference, pooled x pooled and reference x reference, in the arithmetic of :func:`prdc` (squared
    distance in float64, rounded to the input dtype, square root: harness.stats.knn.exact_dist), so a
    subset's k-NN radii and ball tests are the metric's. A subset is sampled to min(n, m, ``max_rows``)
    per side with the metric's seeded stream. Per reference selection (permutations share one) its radii,
    each pooled row's count of the balls it falls in (precision, density), the balls' pooled members
    (coverage) and the (pooled row, reference row) pairs closer than the pooled row's last listed
    neighbour (recall) are computed once; a candidate row's k-NN radius within a subset comes from its
    sorted list of nearest pooled rows (the full row when the list holds too few of the subset), and is
    never beyond that last neighbour, so those pairs hold every recall hit."""

    def __init__(self, ctx, k: int, max_rows: int, neighbours: int = 64):
        import numpy as np

        self.ctx, self.k, self.max_rows = ctx, int(k), int(max_rows)
        X = np.asarray(ctx.embeddings)
        Y = np.asarray(ctx.reference.embeddings)
        dt = np.float32 if (X.dtype == np.float32 and Y.dtype == np.float32) else np.float64
        self.n_p, self.m = len(X), len(Y)
        self.Dpp, self.Dpr, self.Drr = self._dist(X, X, dt), self._dist(X, Y, dt), self._dist(Y, Y, dt)
        np.fill_diagonal(self.Dpp, 0)
        np.fill_diagonal(self.Drr, 0)
        L = min(neighbours, self.n_p)
        self.nbr = _nearest_sorted(self.Dpp, L)[0]
        self.neighbours = int(neighbours)
        self._ref_lists, self._lists_lock = None, threading.Lock()
        self.radii: dict = {}
        self.cache: dict = {}

    def _lists(self):
        """Computed once, on the first reference selection: each reference row's nearest reference rows
        (sorted, itself first) and nearest pooled rows (sorted, with their distances), and every (pooled
        row, reference row) pair closer than the pooled row's last listed pooled neighbour (CSR over
        pooled rows). A selection's radii, balls and pairs are then read from these lists."""
        with self._lists_lock:  # the four PRDC metrics may ask at once (compare prepares in threads)
            if self._ref_lists is None:
                self._ref_lists = self._build_lists()
        return self._ref_lists

    def _build_lists(self):
        import numpy as np

        rnbr = _nearest_sorted(self.Drr, min(self.neighbours, self.m))[0]
        pnbr, pdist = _nearest_sorted(np.ascontiguousarray(self.Dpr.T), min(self.neighbours, self.n_p))
        ub = self.Dpp[np.arange(self.n_p), self.nbr[:, -1]]
        near_row, near_ref = np.nonzero(self.Dpr < ub[:, None])
        return rnbr, pnbr, pdist, near_row, near_ref, self.Dpr[near_row, near_ref]

    def _balls(self, r):
        """For the reference rows ``r``: their k-NN radii among themselves; per pooled row, how many of
        their balls hold it; the balls' pooled members (CSR over ``r``); and the (pooled row, reference
        row) pairs closer than the pooled row's last listed neighbour (CSR over pooled rows). Equal to
        the dense computation over ``Drr[r, r]`` and ``Dpr[:, r]``: a radius is the (k+1)-th listed row
        of ``r`` (the full row when the list holds fewer), a ball's members are a prefix of the sorted
        pooled list (the full column when the whole list is inside the ball)."""
        import numpy as np

        k = self.k
        rnbr, pnbr, pdist, near_row_all, near_ref_all, near_d_all = self._lists()
        in_r = np.zeros(self.m, dtype=bool)
        in_r[r] = True
        pos = np.full(self.m, -1, dtype=np.int64)
        pos[r] = np.arange(len(r))
        nb = rnbr[r]
        cum = np.cumsum(in_r[nb], axis=1)
        ok = cum[:, -1] >= k + 1
        r_real = self.Drr[r, nb[np.arange(len(r)), np.argmax(cum >= k + 1, axis=1)]]
        for i in np.flatnonzero(~ok):
            r_real[i] = np.partition(self.Drr[r[i], r], k)[k]
        inside = pdist[r] < r_real[:, None]
        cnt = inside.sum(axis=1)
        members = pnbr[r][inside]  # row-major: each ball's members, nearest first
        full = np.flatnonzero(cnt == pnbr.shape[1])  # the whole list inside: the ball may hold more
        if len(full):
            parts = np.split(members, np.cumsum(cnt)[:-1])
            for i in full:
                parts[i] = np.flatnonzero(self.Dpr[:, r[i]] < r_real[i])
                cnt[i] = len(parts[i])
            members = np.concatenate(parts)
        ball_ptr = np.concatenate([[0], np.cumsum(cnt)])
        counts_all = np.bincount(members, minlength=self.n_p)
        keep = in_r[near_ref_all]
        near_row, near_ref = near_row_all[keep], pos[near_ref_all[keep]]
        near_ptr = np.searchsorted(near_row, np.arange(self.n_p + 1))
        return counts_all, ball_ptr, members, near_ptr, near_ref, near_d_all[keep]

    @staticmethod
    def _dist(A, B, dt):
        import numpy as np

        A64, B64 = A.astype(np.float64), B.astype(np.float64)
        aa, bb = np.einsum("ij,ij->i", A64, A64), np.einsum("ij,ij->i", B64, B64)
        out = np.empty((len(A), len(B)), dtype=dt)
        for s in range(0, len(A), 1024):
            sq = A64[s:s + 1024] @ B64.T
            sq *= -2
            sq += aa[s:s + 1024, None]
            sq += bb[None, :]
            sq = sq.astype(dt)
            np.maximum(sq, 0, out=sq)
            out[s:s + 1024] = np.sqrt(sq)
        return out

    def get(self, rows, ref_rows):
        import numpy as np

        from harness.stats.sufficient import rows_of

        rows = np.asarray(rows, dtype=np.int64)
        ref = rows_of(ref_rows, self.m)
        key = (hash(rows.tobytes()), None if ref_rows is None else hash(ref.tobytes()))
        if key in self.cache:
            return self.cache[key]
        k = self.k
        n, m = len(rows), len(ref)
        if n < k + 1 or m < k + 1:
            raise MetricSkipped(f"needs at least {k + 1} rows on each side (candidate {n}, reference {m})")
        rng = self.ctx.rng("distance/prdc")
        size = min(n, m, self.max_rows)
        f, r = rows[_sample(rng, n, size)], ref[_sample(rng, m, size)]
        rk = hash(r.tobytes())
        balls = self.radii.get(rk)  # (held here: another thread may clear the dict meanwhile)
        if balls is None:
            balls = self._balls(r)
            if len(self.radii) > 4:
                self.radii.clear()
            self.radii[rk] = balls
        counts_all, ball_ptr, ball_rows, near_ptr, near_ref, near_d = balls
        inside = np.zeros(self.n_p, dtype=bool)
        inside[f] = True
        nb = self.nbr[f]
        cum = np.cumsum(inside[nb], axis=1)
        ok = cum[:, -1] >= k + 1
        pos = np.argmax(cum >= k + 1, axis=1)
        r_fake = self.Dpp[f, nb[np.arange(len(f)), pos]]
        for i in np.flatnonzero(~ok):
            r_fake[i] = np.partition(self.Dpp[f[i], f], k)[k]
        counts = counts_all[f]
        # coverage: reference balls (CSR over reference rows) holding a row of the subset
        hit = inside[ball_rows].astype(np.int64)
        if len(hit):  # (reduceat gives an empty ball the next entry, and needs starts inside the array)
            covered = np.add.reduceat(hit, np.minimum(ball_ptr[:-1], len(hit) - 1))
            covered[ball_ptr[:-1] == ball_ptr[1:]] = 0
        else:
            covered = np.zeros(len(r), dtype=np.int64)
        # recall: a reference row inside some subset row's k-NN ball; a subset row's radius is at most its
        # distance to its last listed pooled neighbour, so the (pooled row, reference row) pairs closer than
        # that, listed once, hold every hit; rows whose radius had to be computed in full are checked in full
        radius = np.full(self.n_p, -np.inf, dtype=r_fake.dtype)
        radius[f[ok]] = r_fake[ok]
        row_of = np.repeat(np.arange(self.n_p), np.diff(near_ptr))
        found = np.zeros(len(r), dtype=bool)
        found[near_ref[near_d < radius[row_of]]] = True
        for i in np.flatnonzero(~ok):
            found |= self.Dpr[f[i], r] < r_fake[i]
        out = {"precision": float((counts > 0).mean()), "density": float((1.0 / k) * counts.mean()),
               "coverage": float((covered > 0).mean()), "recall": float(found.mean())}
        if len(self.cache) > 4096:
            self.cache.clear()
        self.cache[key] = out
        return out


def _prdc_resampler(ctx, which: str, k: int, max_rows: int):
    from harness.stats.sufficient import Resampler

    if ctx.reference is None:
        return None
    n = len(ctx.embeddings) + len(ctx.reference.embeddings)
    if n * n * 4 > 1.5e9:
        return None
    engine = ctx.memo(("distance.prdc-resampler", k, max_rows), lambda: _PRDCResampler(ctx, k, max_rows))
    return Resampler(lambda rows, ref_rows=None, test_rows=None: engine.get(rows, ref_rows)[which],
                     "pooled and reference k-NN distances")


def prdc_precision_resampler(ctx, k: int = 5, max_rows: int = 10000):
    """Precision on a subset (see _PRDCResampler)."""
    return _prdc_resampler(ctx, "precision", k, max_rows)


def prdc_recall_resampler(ctx, k: int = 5, max_rows: int = 10000):
    """Recall on a subset (see _PRDCResampler)."""
    return _prdc_resampler(ctx, "recall", k, max_rows)


def prdc_density_resampler(ctx, k: int = 5, max_rows: int = 10000):
    """Density on a subset (see _PRDCResampler)."""
    return _prdc_resampler(ctx, "density", k, max_rows)


def prdc_coverage_resampler(ctx, k: int = 5, max_rows: int = 10000):
    """Coverage on a subset (see _PRDCResampler)."""
    return _prdc_resampler(ctx, "coverage", k, max_rows)


def _label_codes(ctx):
    """(pooled codes, reference codes, number of labels): the labels numbered in their sorted order (the
    raw labels', as ``_perclass`` sorts them), so that code order is the metric's order of classes."""
    import numpy as np

    names = sorted(set(ctx.labels) | set(ctx.reference.labels))
    code = {lab: i for i, lab in enumerate(names)}
    return (np.array([code[x] for x in ctx.labels], dtype=np.int64),
            np.array([code[x] for x in ctx.reference.labels], dtype=np.int64), len(names))


def _perclass_prdc_values(engine, ctx, rows, ref_rows, k: int, min_rows: int) -> dict:
    """Per-class precision, recall and coverage of a subset, macro-averaged, as ``_perclass`` and
    :func:`prdc` compute them (the same classes, the same seeded equal-size samples, in the same order),
    from the engine's distances. The classes are evaluated together: each class's sample distances are
    gathered into one (classes x size x size) block padded with +inf, which changes no k-th smallest
    distance, no ball test and no count."""
    import numpy as np

    from harness.stats.sufficient import rows_of

    rows = np.asarray(rows, dtype=np.int64)
    ref = rows_of(ref_rows, engine.m)
    key = ("perclass", hash(rows.tobytes()), None if ref_rows is None else hash(ref.tobytes()))
    if key in engine.cache:
        return engine.cache[key]
    codes, ref_codes, n_labels = ctx.memo(("distance.perclass-label-codes",), lambda: _label_codes(ctx))
    rng = ctx.rng("perclass/prdc")
    cc, rc = codes[rows], ref_codes[ref]
    c_order, r_order = np.argsort(cc, kind="stable"), np.argsort(rc, kind="stable")
    c_cnt, r_cnt = np.bincount(cc, minlength=n_labels), np.bincount(rc, minlength=n_labels)
    c_start, r_start = np.concatenate([[0], np.cumsum(c_cnt)]), np.concatenate([[0], np.cumsum(r_cnt)])
    need = max(min_rows, k + 1)
    fs, rs = [], []
    # codes follow the sorted labels, so this is the metric's order of classes and of seeded draws
    for lab in np.flatnonzero((c_cnt > 0) & (r_cnt > 0)).tolist():
        nc, nr = int(c_cnt[lab]), int(r_cnt[lab])
        if nc < need or nr < need:
            continue
        size = min(nc, nr)
        ic, ir = c_order[c_start[lab]:c_start[lab + 1]], r_order[r_start[lab]:r_start[lab + 1]]
        fs.append(rows[ic[_sample(rng, nc, size)]])
        rs.append(ref[ir[_sample(rng, nr, size)]])
    if not fs:
        raise MetricSkipped(f"no shared label has at least {need} rows on both sides")
    sizes = np.array([len(f) for f in fs])
    S_max = int(sizes.max())
    valid = np.arange(S_max)[None, :] < sizes[:, None]  # classes x S_max
    F, R = np.zeros(valid.shape, dtype=np.int64), np.zeros(valid.shape, dtype=np.int64)
    F[valid], R[valid] = np.concatenate(fs), np.concatenate(rs)
    pair = valid[:, :, None] & valid[:, None, :]

    def block(D, a, b):
        out = D[a[:, :, None], b[:, None, :]]
        out[~pair] = np.inf
        return out

    r_real = np.partition(block(engine.Drr, R, R), k, axis=2)[:, :, k]  # padded columns: +inf
    r_fake = np.partition(block(engine.Dpp, F, F), k, axis=2)[:, :, k]
    S = block(engine.Dpr, F, R)
    ball = S < r_real[:, None, :]
    sz = sizes.astype(np.float64)
    per = {"precision": ball.any(axis=2).sum(axis=1) / sz, "coverage": ball.any(axis=1).sum(axis=1) / sz,
           "recall": (S < r_fake[:, :, None]).any(axis=1).sum(axis=1) / sz}
    out = {w: sum(v.tolist()) / len(v) for w, v in per.items()}
    engine.cache[key] = out
    return out


def _perclass_prdc_resampler(ctx, which: str, k: int, min_rows: int):

    from harness.stats.sufficient import Resampler

    if ctx.reference is None or ctx.labels is None or ctx.reference.labels is None:
        return None
    n = len(ctx.embeddings) + len(ctx.reference.embeddings)
    if n * n * 4 > 1.5e9:
        return None
    engine = ctx.memo(("distance.prdc-resampler", k, 10_000), lambda: _PRDCResampler(ctx, k, 10_000))
    return Resampler(lambda rows, ref_rows=None, test_rows=None:
                     _perclass_prdc_values(engine, ctx, rows, ref_rows, k, min_rows)[which],
                     "pooled and reference k-NN distances, per class")


def perclass_precision_resampler(ctx, k: int = 5, min_rows: int = 6):
    """Per-class precision on a subset (see _perclass_prdc_values)."""
    return _perclass_prdc_resampler(ctx, "precision", k, min_rows)


def perclass_recall_resampler(ctx, k: int = 5, min_rows: int = 6):
    """Per-class recall on a subset (see _perclass_prdc_values)."""
    return _perclass_prdc_resampler(ctx, "recall", k, min_rows)


def perclass_coverage_resampler(ctx, k: int = 5, min_rows: int = 6):
    """Per-class coverage on a subset (see _perclass_prdc_values)."""
    return _perclass_prdc_resampler(ctx, "coverage", k, min_rows)
