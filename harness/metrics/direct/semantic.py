"""Semantic diversity on sentence embeddings. Symmetric eigenvalues come from
:func:`harness.stats.linalg.eigvalsh`: numpy's values, without holding the GIL (compare resamples in
threads)."""

from __future__ import annotations

from harness.metrics.base import Identity, MetricSkipped, metric
from harness.stats.linalg import eigvalsh
from harness.types import Score

INF = float("inf")


def pairwise_cosine_stats(X):
    """Exact mean cosine distance over all ordered pairs i != j, and its U-statistic standard error.

    With unit rows x_i and S = sum_i x_i: sum_{i != j} x_i.x_j = S.S - n, so the mean needs O(n.d),
    not O(n^2.d). The per-row projection h1_i = 1 - (x_i.S - 1)/(n - 1) is row i's mean distance to
    the others; Var(U) ~ 4 Var(h1) / n (Hoeffding 1948).
    """
    import numpy as np

    X = np.asarray(X)
    n = X.shape[0]
    S = np.zeros(X.shape[1])
    for _, U in _unit_chunks(X):  # float64 a chunk at a time: O(chunk d) extra memory at any n
        S += U.sum(axis=0)
    mean_cos = (S @ S - n) / (n * (n - 1))
    h1 = np.empty(n)
    for a, U in _unit_chunks(X):
        h1[a:a + len(U)] = 1.0 - (U @ S - 1.0) / (n - 1)
    se = float(np.sqrt(4.0 * h1.var(ddof=1) / n))
    return float(1.0 - mean_cos), se, h1


@metric("semantic/pairwise-cosine-distance",
        needs=("embeddings",),
        higher_is_better=True,
        bounds=(0, 2),
        expect={"mode-collapse": "-", "label-noise": "0"},
        limits={
            "mode-collapse": ("Mean pairwise cosine distance of unit vectors equals 1 - |mean embedding|^2: it sees "
             "concentration only through the centroid. Rows pulled into three tight clusters in different "
             "directions barely move the centroid (-0.015 at 50% on Banking77), while Vendi and chamfer, "
             "which see the spectrum and nearest neighbours, fall clearly. A known weakness of "
             "average-similarity diversity (Friedman & Dieng, 'The Vendi Score', TMLR 2023)."),
        },
        resampler="pairwise_cosine_resampler")
def mean_pairwise_cosine_distance(ctx) -> Score:
    """Mean pairwise cosine distance of sentence embeddings; higher means semantically more varied.

    Range [0, 2] (about 0.6-0.9 for varied English text with MiniLM; 0 when all rows say the same).
    Computed exactly for any n in O(n.d) through the sum of unit vectors, with a 95% interval from the
    U-statistic variance. Used as semantic diversity by Tevet & Berant, "Evaluating the Evaluation of
    Diversity in Natural Language Generation", EACL 2021. It is the "remote-clique" score of Cox et al.,
    "Directed Diversity", CHI 2021 (``remote_clique`` in the ``diversity`` package of Shaib et al., 2024,
    which also averages in the n zero self-distances, so it equals this value times (n - 1) / n); its
    nearest-neighbour counterpart is ``semantic/chamfer``.
    """
    from harness.stats import normal_ci

    X = ctx.embeddings
    if X.shape[0] < 3:
        raise MetricSkipped("needs at least 3 rows")
    value, se, h1 = pairwise_cosine_stats(X)
    # the most 'central' rows: smallest mean distance to the others (candidates for redundancy)
    order = h1.argsort()[:3]
    return Score(value, normal_ci(value, se, 0.0, 2.0),
                 {"se": se, "estimator": "exact", "most_central_rows": [int(i) for i in order]})


# ----------------------------------------------------------------------------- shared helpers

def _unit_chunks(X, chunk: int = 8192):
    """(start, float64 unit rows of X[start:start + chunk]) for consecutive chunks (rows of norm 0 stay 0).

    One buffer is reused (no fresh pages per chunk): use each chunk before asking for the next.
    """
    import numpy as np

    n = X.shape[0]
    buf = np.empty((min(chunk, n), X.shape[1]))
    for a in range(0, n, chunk):
        U = buf[:min(chunk, n - a)]
        np.copyto(U, X[a:a + chunk])
        norms = np.sqrt(np.einsum("ij,ij->i", U, U))
        np.maximum(norms, 1e-12, out=norms)
        U /= norms[:, None]
        yield a, U


def _unit64(X):
    """float64 copy of X with unit rows (rows of norm 0 stay 0)."""
    import numpy as np

    X = np.asarray(X, dtype=np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True).clip(min=1e-12)


def _spectrum_entropy(w) -> float:
    """Shannon entropy (nats) of a non-negative spectrum normalised to sum 1; 0 log 0 = 0."""
    import numpy as np

    w = np.clip(np.asarray(w, dtype=np.float64), 0.0, None)
    w = w / w.sum()
    w = w[w > 0]
    return float(-(w * np.log(w)).sum())


def vendi_score(X, chunk: int = 8192, precision: str = "auto") -> float:
    """Vendi score of the rows of X with the cosine kernel, without the n x n kernel.

    VS = exp(-sum_i l_i log l_i) over the eigenvalues l_i of K/n, K = X X^T (unit rows). The nonzero
    eigenvalues of X X^T / n and X^T X / n are the same, so for n > d the d x d matrix is used, summed
    over row chunks: O(n d^2) time, O(chunk d + d^2) extra memory. For n <= d the n x n kernel is
    smaller and used directly (float64).

    ``precision``: "float64" sums the d x d matrix in float64 (relative error ~1e-13). "mixed" sums
    float32 products like vendi-score's dual form (twice the BLAS speed) and then repairs the one place
    where float32 goes wrong: near-zero eigenvalues (collapsed or low-rank sets), where rounding noise of
    ~1e-8 poses as entropy (vendi-score's dual form on 1,000 copies of one float32 row gives 1.00016,
    not 1). Eigenvalues in that band are recomputed in float64 (see _dual_spectrum_mixed), so copies
    still give 1 to 1e-12; the others keep float32's ~1e-9 absolute error, and the score agrees with
    "float64" to ~1e-8 relative on real MiniLM sets. "auto" (default) is "mixed" for float32 rows
    (sentence-transformers' output) and "float64" otherwise.

    >>> import numpy as np
    >>> round(vendi_score(np.eye(5)), 6), round(vendi_score(np.ones((7, 3))), 6)
    (5.0, 1.0)
    """
    import numpy as np

    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    n, d = X.shape
    if n == 0:
        raise ValueError("no rows")
    form = vendi_form(X, precision)
    if form == "kernel":
        U = _unit64(X)
        w = eigvalsh(U @ U.T / n)
    elif form == "dual, mixed":
        w = _dual_spectrum_mixed(X, chunk)
    else:
        w = _dual_spectrum64(X, chunk)
    return float(np.exp(_spectrum_entropy(w)))


def vendi_form(X, precision: str = "auto") -> str:
    """How vendi_score computes on X: "kernel" (n <= d, float64), "dual, mixed" or "dual, float64"."""
    import numpy as np

    if precision not in ("auto", "mixed", "float64"):
        raise ValueError(f"precision must be auto, mixed or float64, not {precision!r}")
    n, d = X.shape
    if n <= d:
        return "kernel"
    if precision == "mixed" or (precision == "auto" and X.dtype == np.float32):
        return "dual, mixed"
    return "dual, float64"


def _dual_spectrum64(X, chunk: int):
    """Eigenvalues of U^T U / n (U: X with unit rows), summed over row chunks in float64."""
    import numpy as np

    n, d = X.shape
    M = np.zeros((d, d))
    for _, U in _unit_chunks(X, chunk):
        M += U.T @ U  # numpy calls syrk for U.T @ U
    return eigvalsh(M / n)


def _dual_spectrum_mixed(X, chunk: int, floor: float = 1e-6, negligible: float = 1e-12):
    """Eigenvalues of U^T U / n from float32 products, the ones below ``floor`` recomputed in float64.

    Pass 1: unit rows in float32, each chunk's U^T U by float32 BLAS, summed in float64; eigvalsh.
    Pass 2, only if m eigenvalues have |l| in [``negligible``, ``floor``) x trace (where float32 noise
    of ~1e-9..1e-8 could pose as, or hide, entropy): the rows' projections P = U V_m on those
    eigenvectors (float32 product, cast up) and the eigenvalues of P^T P / n in float64 replace them.
    Their true values are ~|P|^2, so P's float32 error (~1e-7) enters as ~1e-14, not as the ~1e-8 of
    the float32 matrix. Coupling to the kept eigenvectors is O(1e-9) and shifts them by its square.
    Eigenvalues below ``negligible`` are kept as they are: whatever their true value, each adds under
    3e-11 to the entropy (MiniLM has 3 such, from 3 all-but-zero coordinates). When more than half
    the spectrum needs recomputing the float64 sum is cheaper, and is used.
    """
    import numpy as np

    n, d = X.shape
    M = np.zeros((d, d))
    inv = np.empty(n, dtype=np.float32)
    buf = np.empty((min(chunk, n), d), dtype=np.float32)
    for a in range(0, n, chunk):
        c = X[a:a + chunk]
        U = buf[:len(c)]
        s = np.einsum("ij,ij->i", c, c)
        s = (1.0 / np.sqrt(np.maximum(s, 1e-30))).astype(np.float32)  # rows of norm 0 stay 0
        inv[a:a + len(c)] = s
        np.multiply(c, s[:, None], out=U)
        M += U.T @ U
    M /= n
    w = eigvalsh(M)
    trace = max(float(w.sum()), 1e-300)
    small = (np.abs(w) >= negligible * trace) & (w < floor * trace)
    m = int(small.sum())
    if m == 0:
        return w
    w, V = np.linalg.eigh(M)
    small = (np.abs(w) >= negligible * trace) & (w < floor * trace)
    m = int(small.sum())
    if m == 0:
        return w
    if 2 * m > d:
        return _dual_spectrum64(X, chunk)
    Vm = np.ascontiguousarray(V[:, small], dtype=np.float32)
    B = np.zeros((m, m))
    for a in range(0, n, chunk):
        P = np.asarray(X[a:a + chunk] @ Vm, dtype=np.float64)
        P *= inv[a:a + chunk, None]
        B += P.T @ P
    return np.concatenate([w[~small], eigvalsh(B / n)])


def _normalised_entropy(counts, k: int) -> float:
    """Entropy of the counts divided by log k (1 = spread evenly over k cells, 0 = all in one)."""
    import numpy as np

    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    if k < 2 or c.sum() == 0:
        return 0.0
    p = c / c.sum()
    return float(-(p * np.log(p)).sum() / np.log(k))


def _seed(ctx, salt: str) -> int:
    return int(ctx.rng(salt).integers(2**31 - 1))


def kmeans(X, k: int, seed: int, fit_rows: int = 20_000):
    """Seeded k-means (Lloyd, one k-means++ start as sklearn's default) on unit rows; returns (centres, labels).

    Fitted on at most ``fit_rows`` rows drawn at random (k is small, so 20k rows place the centres as
    well as all would), then every row is assigned to its nearest centre. Full-batch Lloyd on 10k x 384
    takes about a second where sklearn's MiniBatchKMeans took over ten on the same data.
    """
    import numpy as np
    from sklearn.cluster import KMeans

    n = len(X)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, fit_rows, replace=False)) if n > fit_rows else np.arange(n)
    U = _unit64(X[rows]).astype(np.float32)
    km = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed).fit(U)
    centres = km.cluster_centers_.astype(np.float64)
    return centres, nearest_centre(X, centres)


def nearest_centre(X, centres, chunk: int = 65536):
    """Index of the nearest centre (Euclidean, as k-means assigns) for every row of X."""
    import numpy as np

    half = 0.5 * (centres * centres).sum(axis=1)
    out = np.empty(len(X), dtype=np.int64)
    for i in range(0, len(X), chunk):
        out[i:i + chunk] = (_unit64(X[i:i + chunk]) @ centres.T - half).argmax(axis=1)
    return out


def merge_centres(centres, sizes, threshold: float | None):
    """Group k-means cells whose centres have cosine similarity >= threshold (complete linkage).

    Returns the total size of each group. Complete linkage: every pair of centres inside a group is
    at least that similar, so a long chain of neighbouring cells is not fused into one topic.
    """
    import numpy as np

    sizes = np.asarray(sizes, dtype=np.float64)
    if threshold is None or len(centres) < 2:
        return sizes
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    dist = np.clip(pdist(_unit64(centres), "cosine"), 0.0, 2.0)
    groups = fcluster(linkage(dist, "complete"), t=1.0 - threshold, criterion="distance")
    return np.bincount(groups, weights=sizes)[1:]


def class_index(labels):
    """(classes, codes): the sorted distinct labels and each row's class number."""
    import numpy as np

    classes, codes = np.unique(np.asarray([str(x) for x in labels], dtype=object), return_inverse=True)
    return [str(c) for c in classes], codes


def aps_stats(X, labels) -> dict:
    """AttrPrompt's average pairwise cosine similarity within and across classes, exactly in O(n d).

    With unit rows and class sums S_c: the sum over ordered same-class pairs i != j is
    sum_c (S_c.S_c - n_c), over cross-class pairs S.S - sum_c S_c.S_c.
    Returns intra (pooled over all same-class pairs), inter (pooled over cross-class pairs, None with
    one class), intra per class (classes of 2+ rows) and their unweighted mean.
    """
    import numpy as np

    U = _unit64(X)
    classes, codes = class_index(labels)
    k = len(classes)
    sums = np.zeros((k, U.shape[1]))
    np.add.at(sums, codes, U)
    sq_norms = np.bincount(codes, weights=(U * U).sum(axis=1), minlength=k)
    n_c = np.bincount(codes, minlength=k).astype(np.float64)
    self_dots = (sums * sums).sum(axis=1)
    intra_sum = self_dots - sq_norms
    intra_pairs = n_c * (n_c - 1)
    if intra_pairs.sum() == 0:
        raise ValueError("no class has two rows")
    total = sums.sum(axis=0)
    inter_pairs = n_c.sum() ** 2 - (n_c ** 2).sum()
    inter = float((total @ total - self_dots.sum()) / inter_pairs) if inter_pairs > 0 else None
    per_class = {classes[c]: float(intra_sum[c] / intra_pairs[c]) for c in range(k) if intra_pairs[c] > 0}
    return {"intra": float(intra_sum.sum() / intra_pairs.sum()), "inter": inter, "per_class": per_class,
            "intra_macro": float(np.mean(list(per_class.values()))), "sizes": dict(zip(classes, n_c.astype(int).tolist()))}


# ----------------------------------------------------------------------------- metrics

@metric("semantic/vendi",
        needs=("embeddings",),
        higher_is_better=True,
        bounds=(1, INF),
        size_dependent=True,
        tolerance=1e-6,  # the eigenvalues move by ~1e-8 (relative) between 1 and 2 BLAS threads (measured)
        expect={"exact-dup": "-", "near-dup": "-", "mode-collapse": "-", "label-noise": "0"},
        limits={
            "near-dup": ("Vendi is the effective number of distinct rows, and a set in which every row appears twice has "
             "the Vendi score of its distinct rows (Friedman & Dieng 2023). Near copies here copy each kept "
             "row at most once, so at 50% the candidate is its 250 distinct rows, each twice: Vendi falls "
             "only from the Vendi of 500 distinct rows to that of 250 (-1.9 on Banking77, against -6.3 for "
             "exact copies drawn with replacement, which weight rows unevenly). Chamfer, which sees each "
             "row's nearest neighbour, falls clearly."),
        },
        range="[1, min(n, d)]",
        resampler="vendi_resampler")
def vendi(ctx) -> Score:
    """Vendi score with the cosine kernel: the effective number of distinct rows; higher is more diverse.

    Range [1, n]: 1 when every row says the same, n when all rows are orthogonal; with the cosine kernel
    it is also bounded by the embedding dimension d (384 for MiniLM), so it saturates for very diverse
    large sets. The exponential of the Shannon entropy of the eigenvalues of K/n, K_ij = cos(x_i, x_j).
    Computed in the dual form (the d x d matrix X^T X / n has the same nonzero eigenvalues), O(n d^2),
    from float32 products with the near-zero eigenvalues recomputed in float64 (within ~1e-8 of the
    float64 value, collapsed sets exactly 1; see vendi_score): 100k MiniLM rows take about 0.2 s.
    Below n of a few thousand it grows with n, so compare at one ``--sample-size``. No interval: a bootstrap resample repeats rows and so biases the score down.
    Friedman & Dieng, "The Vendi Score: A Diversity Evaluation Metric for Machine Learning", TMLR 2023.
    """
    X = ctx.embeddings
    n, d = X.shape
    if n < 2:
        raise MetricSkipped("needs at least 2 rows")
    value = vendi_score(X)
    form = vendi_form(X)
    return Score(value, None, {"n": int(n), "dim": int(d), "per_row": value / n,
                               "form": "dual (d x d)" if n > d else "kernel (n x n)",
                               "precision": "float32 products, near-zero eigenvalues in float64"
                               if form == "dual, mixed" else "float64"})


@metric("semantic/chamfer", args={"max_queries": 10000},
        needs=("embeddings",),
        higher_is_better=True,
        bounds=(0, 2),
        size_dependent=True,
        seeded=True,
        expect={"exact-dup": "-", "near-dup": "-", "mode-collapse": "-", "label-noise": "0"},
        resampler="chamfer_resampler")
def chamfer(ctx, max_queries: int = 10_000) -> Score:
    """Chamfer diversity: mean cosine distance from each row to its nearest other row; higher is more diverse.

    Range [0, 2]; 0 when every row has an exact twin. It shrinks as n grows (more rows, closer
    neighbours): compare at one ``--sample-size``. Where ``semantic/pairwise-cosine-distance`` (the
    "remote-clique" score: mean distance to all other rows) measures spread, this measures redundancy:
    near-paraphrases pull it down even when the set is spread widely. Exact nearest neighbours with a
    brute-force k-NN index (scikit-learn, chunked: memory stays O(n d)); 95% interval by bootstrap over
    rows of the per-row distances (the neighbours themselves are not re-searched). Beyond ``max_queries``
    rows the nearest neighbour among all n rows is found exactly for a seeded random sample of
    ``max_queries`` rows: the sample mean is an unbiased estimate of the all-rows mean, its bootstrap
    interval covers the sampling, and the time grows as n instead of n² (``details['estimator']``
    says which). Named in Cox et al.,
    "Directed Diversity", CHI 2021; ``chamfer_dist`` in the ``diversity`` package of Shaib et al.,
    "Standardizing the Measurement of Text Diversity", 2024.
    """
    import numpy as np

    from harness.stats import bootstrap_ci
    from harness.stats.knn import nearest_other

    X = ctx.embeddings
    n = X.shape[0]
    if n < 3:
        raise MetricSkipped("needs at least 3 rows")
    U32 = np.empty(X.shape, dtype=np.float32)  # unit rows, float32 (no float64 copy of X: 1M rows fit)
    for a, U in _unit_chunks(X):
        U32[a:a + len(U)] = U
    # Euclidean on unit rows ranks like cosine; the neighbour's similarity is then recomputed in float64
    if n <= max_queries:
        rows = np.arange(n)
        idx = nearest_other(U32)
    else:
        rows = np.sort(ctx.rng("semantic/chamfer").choice(n, max_queries, replace=False))
        idx = nearest_other(U32, rows)
    dist = np.clip(1.0 - (_unit64(X[rows]) * _unit64(X[idx])).sum(axis=1), 0.0, 2.0)
    order = np.argsort(dist, kind="stable")[:3]
    return Score(float(dist.mean()), bootstrap_ci(dist, seed=ctx.seed),
                 {"median": float(np.median(dist)), "share_below_0.05": float((dist < 0.05).mean()),
                  "estimator": "exact" if n <= max_queries else "sampled-queries", "queries": int(len(rows)),
                  "most_redundant_rows": [[int(rows[i]), int(idx[i])] for i in order]})


@metric("semantic/cluster-entropy", args={"k": 20, "merge": 0.6},
        needs=("embeddings",),
        higher_is_better=True,
        bounds=(0, 1),
        size_dependent=True,
        seeded=True,
        expect={"mode-collapse": "-", "label-noise": "0"},
        limits={
            "mode-collapse": ("k-means on the candidate itself adapts to it: the collapsed rows get k-means cells of their "
             "own, so the cell sizes stay balanced and their entropy falls only slightly (about -0.03 at "
             "50%). It sees collapse only when most rows sit in the modes."),
        },
        # bit-identical on one machine, but k-means assignments of near-tied rows flip when OpenBLAS picks
        # other kernels: the golden values moved by up to 9.6e-4 relative between a Zen 3 EPYC without and
        # one with AVX512 (same code, same seed)
        tolerance=5e-3,
        resampler="cluster_entropy_resampler")
def cluster_entropy(ctx, k: int = 20, merge: float | None = 0.6) -> Score:
    """Topic spread: normalised entropy of the sizes of k-means topics; higher means spread over more topics.

    Range [0, 1]: 1 when rows spread evenly over k topics, 0 when all fall in one. k-means (seeded,
    k = min(k, n // 5)) cuts the embeddings into k cells; cells whose centres have cosine similarity
    >= ``merge`` are then joined (complete linkage) into one topic, and the value is H(topic sizes) / log k.
    Why the merge: in high dimension k-means gives every cell about the same number of rows whatever
    the data (its centres follow the density), so plain cell entropy stays near 1 even for rows drawn
    from two intents; joining cells that point the same way restores an absolute scale. The default
    0.6 suits all-MiniLM-L6-v2 (``merge`` None gives the plain cell entropy, also in details).
    Near-duplicates spread over many topics are not caught here: see ``semantic/vendi`` and ``dup/``.
    Entropy over k-means clusters of sentence embeddings is a common topic-diversity read-out; the
    centre merge is synthbench's own addition, and no single paper defines this exact score.
    """
    import numpy as np

    X = ctx.embeddings
    n = X.shape[0]
    k = min(int(k), n // 5)
    if k < 2:
        raise MetricSkipped("needs at least 10 rows")
    centres, labels = kmeans(X, k, _seed(ctx, "semantic/cluster-entropy"))
    sizes = np.bincount(labels, minlength=k)
    topics = merge_centres(centres, sizes, merge)
    value = _normalised_entropy(topics, k)
    return Score(value, None, {"k": int(k), "topics": int((topics > 0).sum()),
                               "effective_topics": float(np.exp(value * np.log(k))),
                               "cell_entropy": _normalised_entropy(sizes, k),
                               "largest_topic_share": float(topics.max() / n)})


def _reference_kmeans(ref, k: int, seed: int):
    """k-means of the reference embeddings, computed once per reference Context and reused by every
    candidate (the runner shares one reference Context across candidates)."""
    return ref.memo(("semantic.kmeans", k, seed), lambda: kmeans(ref.embeddings, k, seed))


@metric("semantic/ref-cluster-coverage", args={"k": 50},
        needs=("embeddings", "reference_embeddings"),
        higher_is_better=True,
        bounds=(0, 1),
        size_dependent=True,
        seeded=True,
        expect={"mode-collapse": "-", "class-drop": "-", "label-noise": "0"},
        limits={
            "mode-collapse": ("Saturates: with half of the rows still random, every one of the 50 reference clusters still "
             "receives a row (change -0.02 at most), so coverage sees collapse only when few rows are left "
             "outside the modes."),
        },
        identity=Identity(1, 1e-09, 1, 0.2,
                 "every reference cluster receives its own rows"),
        resampler="ref_cluster_coverage_resampler")
def ref_cluster_coverage(ctx, k: int = 50) -> Score:
    """Coverage of the reference's topics: share of reference k-means clusters that receive a candidate row; higher is better.

    Range [0, 1]. k-means (seeded, k = min(k, n_ref // 5)) on the reference embeddings; each candidate row
    goes to its nearest reference centre. 1 means every reference topic is touched by at least one
    candidate row; a mode-collapsed candidate covers few. Grows with the candidate's size (more rows,
    more chances to touch a cluster): compare at one ``--sample-size``. Details give the reference mass
    in covered clusters, the normalised entropy of the candidate's assignments (how evenly it spreads
    over the reference topics) and the largest uncovered clusters with two reference examples each.
    In the spirit of the coverage of Naeem et al., "Reliable Fidelity and Diversity Metrics for
    Generative Models", ICML 2020, with k-means cells instead of k-NN balls.
    """
    import numpy as np

    ref = ctx.reference
    R = ref.embeddings
    k = min(int(k), R.shape[0] // 5)
    if k < 2:
        raise MetricSkipped("the reference needs at least 10 rows")
    if ctx.embeddings.shape[0] < 1:
        raise MetricSkipped("no rows")
    centres, ref_labels = _reference_kmeans(ref, k, _seed(ctx, "semantic/ref-cluster-coverage"))
    ref_sizes = np.bincount(ref_labels, minlength=k)
    cand = np.bincount(nearest_centre(ctx.embeddings, centres), minlength=k)
    covered = cand > 0
    uncovered = [int(c) for c in np.argsort(-ref_sizes, kind="stable") if not covered[c] and ref_sizes[c] > 0][:5]
    U = _unit64(R)
    examples = []
    for c in uncovered:
        members = np.flatnonzero(ref_labels == c)
        near = members[np.argsort(-(U[members] @ centres[c]), kind="stable")[:2]]
        examples.append({"cluster": c, "reference_rows": int(ref_sizes[c]),
                         "reference_share": float(ref_sizes[c] / ref_sizes.sum()),
                         "examples": [ref.texts[i][:200] for i in near]})
    return Score(float(covered.mean()), None, {
        "k": int(k), "covered": int(covered.sum()),
        "reference_mass_covered": float(ref_sizes[covered].sum() / ref_sizes.sum()),
        "assignment_entropy": _normalised_entropy(cand, k),
        "largest_uncovered": examples})


@metric("perclass/vendi",
        needs=("labels", "embeddings"),
        higher_is_better=True,
        bounds=(1, INF),
        size_dependent=True,
        expect={"exact-dup": "-", "label-noise": "+"},
        range="[1, n_class] per class, macro-averaged",
        resampler="perclass_vendi_resampler")
def perclass_vendi(ctx) -> Score:
    """Vendi score inside each class, macro-averaged: effective number of distinct rows per label; higher is more diverse.

    Range [1, max class size]. Each class of 2+ rows gets its own cosine-kernel Vendi score (exact, dual
    form where it is smaller); the value is their unweighted mean, so a class that collapses onto one
    phrasing pulls it down however small it is. Bounded by each class's size: compare datasets with
    similar class sizes (``--sample-size``). Details list every class's score and size and the three
    least diverse classes. Friedman & Dieng, "The Vendi Score", TMLR 2023.
    """
    import numpy as np

    X = ctx.embeddings
    classes, codes = class_index(ctx.labels)
    per_class = {}
    for c, name in enumerate(classes):
        rows = np.flatnonzero(codes == c)
        if len(rows) >= 2:
            per_class[name] = {"n": int(len(rows)), "vendi": vendi_score(X[rows])}
    if not per_class:
        raise MetricSkipped("no class has 2 or more rows")
    value = float(np.mean([v["vendi"] for v in per_class.values()]))
    least = sorted(per_class, key=lambda c: per_class[c]["vendi"])[:3]
    return Score(value, None, {"classes": len(per_class), "skipped_classes": len(classes) - len(per_class),
                               "least_diverse": least, "per_class": per_class})


@metric("semantic/aps",
        needs=("labels", "embeddings"),
        higher_is_better=False,
        bounds=(-1, 1),
        expect={"label-noise": "-", "mode-collapse": "+"},
        resampler="aps_resampler")
def aps(ctx) -> Score:
    """Intra-class average pairwise similarity (APS): mean cosine similarity of same-label pairs; lower is more diverse.

    Range [-1, 1] (about 0.2-0.6 for real intent or topic data with MiniLM; 1 when every class repeats
    one text). Pooled over all same-class pairs i != j. Details: inter-class APS (pairs with different
    labels), the gap intra - inter (how much closer a class is to itself than to the others: larger means
    better separated classes), intra APS per class and its unweighted mean. Exact in O(n d) through class
    sums of unit vectors. Yu et al., "Large Language Model as Attributed Training Data Generator: A Tale
    of Diversity and Bias", NeurIPS 2023 (AttrPrompt).
    """
    X = ctx.embeddings
    try:
        s = aps_stats(X, ctx.labels)
    except ValueError as e:
        raise MetricSkipped(str(e)) from None
    gap = s["intra"] - s["inter"] if s["inter"] is not None else None
    most = sorted(s["per_class"], key=lambda c: -s["per_class"][c])[:3]
    return Score(s["intra"], None, {"inter": s["inter"], "gap": gap, "intra_macro": s["intra_macro"],
                                    "most_homogeneous": most, "per_class": s["per_class"]})


# ----------------------------------------------------------------------------- resamplers (compare)
# Each is fn(pool_ctx, **args) -> harness.stats.sufficient.Resampler: the metric's value on any subset
# of the pooled rows from statistics computed once (harness/stats/sufficient.py).

def pairwise_cosine_resampler(ctx):
    """Mean pairwise cosine distance on a subset: the sum of its unit vectors (S.S - n over n(n-1))."""
    from harness.stats.sufficient import Resampler

    U = _unit64(ctx.embeddings)

    def value(rows, ref_rows=None, test_rows=None):
        n = len(rows)
        if n < 3:
            raise MetricSkipped("needs at least 3 rows")
        S = U[rows].sum(axis=0)
        return float(1.0 - (S @ S - n) / (n * (n - 1)))

    return Resampler(value, "sum of unit vectors", cheap=True)


def vendi_resampler(ctx):
    """Vendi on a subset: the d x d Gram contributions of its rows (the dual form of vendi_score, on the
    rows' cached embeddings)."""
    import numpy as np

    from harness.stats.sufficient import Resampler

    X = np.asarray(ctx.embeddings)

    def value(rows, ref_rows=None, test_rows=None):
        if len(rows) < 2:
            raise MetricSkipped("needs at least 2 rows")
        return vendi_score(X[np.sort(rows)])

    return Resampler(value, "d x d Gram contributions")


def perclass_vendi_resampler(ctx):
    """Per-class Vendi on a subset: each class's kernel spectrum from its rows' unit vectors; all classes
    of one subset in one batched eigen-decomposition (kernels zero-padded to the largest class: a zero
    row adds a zero eigenvalue, which adds nothing to the entropy)."""
    import numpy as np

    from harness.stats.sufficient import Resampler

    X = np.asarray(ctx.embeddings)
    U = _unit64(X)
    _, codes = class_index(ctx.labels)
    d = X.shape[1]

    def value(rows, ref_rows=None, test_rows=None):
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        c = codes[rows]
        order = np.argsort(c, kind="stable")
        rows, c = rows[order], c[order]
        cls, start, size = np.unique(c, return_index=True, return_counts=True)
        keep = size >= 2
        if not keep.any():
            raise MetricSkipped("no class has 2 or more rows")
        vals = []
        small = keep & (size <= d)
        if small.any():
            m = int(size[small].max())
            P = np.zeros((int(small.sum()), m, d))
            for b, (s0, n) in enumerate(zip(start[small], size[small])):
                P[b, :n] = U[rows[s0:s0 + n]]
            K = P @ P.transpose(0, 2, 1) / size[small][:, None, None]
            for w in np.linalg.eigvalsh(K):
                vals.append(float(np.exp(_spectrum_entropy(w))))
        for s0, n in zip(start[keep & (size > d)], size[keep & (size > d)]):
            vals.append(vendi_score(X[rows[s0:s0 + n]]))
        return float(np.mean(vals))

    return Resampler(value, "per-class kernels of unit vectors")


def aps_resampler(ctx):
    """APS on a subset: class sums of its rows' unit vectors (the sums and pair counts of aps_stats)."""
    import numpy as np

    from harness.stats.sufficient import Resampler

    U = _unit64(np.asarray(ctx.embeddings))
    _, codes = class_index(ctx.labels)
    sq = (U * U).sum(axis=1)

    def value(rows, ref_rows=None, test_rows=None):
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[np.argsort(codes[rows], kind="stable")]
        c = codes[rows]
        cls, start, n_c = np.unique(c, return_index=True, return_counts=True)
        sums = np.add.reduceat(U[rows], start, axis=0)
        intra_sum = (sums * sums).sum(axis=1) - np.add.reduceat(sq[rows], start)
        pairs = n_c.astype(np.float64) * (n_c - 1)
        if pairs.sum() == 0:
            raise MetricSkipped("no class has two rows")
        return float(intra_sum.sum() / pairs.sum())

    return Resampler(value, "class sums of unit vectors")


def chamfer_resampler(ctx, max_queries: int = 10_000, neighbours: int = 48):
    """Chamfer on a subset: every pooled row's ``neighbours`` nearest pooled rows, sorted, found once; a
    row's nearest neighbour within a subset is the first of them in the subset (rows with none of them
    in it are searched against the subset by brute force). None when a side has more than ``max_queries``
    rows (the metric then samples its queries)."""
    import numpy as np

    from harness.stats.knn import nearest_other
    from harness.stats.sufficient import Resampler

    X = np.asarray(ctx.embeddings)
    n = X.shape[0]
    if n > 2 * max_queries:
        return None
    U64 = _unit64(X)
    U32 = U64.astype(np.float32)
    L = min(neighbours, n - 1)
    nbr = np.empty((n, L), dtype=np.int64)
    for a in range(0, n, 2048):
        S = U32[a:a + 2048] @ U32.T
        S[np.arange(len(S)), np.arange(a, a + len(S))] = -np.inf
        top = np.argpartition(-S, L - 1, axis=1)[:, :L]
        srt = np.argsort(-np.take_along_axis(S, top, axis=1), axis=1, kind="stable")
        nbr[a:a + len(S)] = np.take_along_axis(top, srt, axis=1)

    def value(rows, ref_rows=None, test_rows=None):
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        m = len(rows)
        if m < 3:
            raise MetricSkipped("needs at least 3 rows")
        if m > max_queries:
            raise ValueError("more rows than max_queries")
        inside = np.zeros(n, dtype=bool)
        inside[rows] = True
        hit = inside[nbr[rows]]
        found = hit.any(axis=1)
        j = nbr[rows, hit.argmax(axis=1)]
        if not found.all():
            miss = np.flatnonzero(~found)
            local = nearest_other(U32[rows], miss)
            j[miss] = rows[local]
        dist = np.clip(1.0 - (U64[rows] * U64[j]).sum(axis=1), 0.0, 2.0)
        return float(dist.mean())

    return Resampler(value, f"{L} nearest pooled neighbours per row")


def ref_cluster_coverage_resampler(ctx, k: int = 50, refit: bool = False):
    """Reference-cluster coverage on a subset: each pooled row's nearest reference centre. Exact under
    permutations (they keep the reference and its k-means). A half-sample halves the reference, which
    the metric would cluster anew: with ``refit`` each reference half is clustered the metric's way
    (exact, one k-means per half-sample, about as slow as recomputing); by default the full reference's
    clusters are kept (an approximation, stated in compare's notes: the interval leaves out the refit's
    own noise; the p-value, from permutations, is exact)."""
    import numpy as np

    from harness.stats.sufficient import PerRef, Resampler

    ref = ctx.reference
    if ref is None:
        return None
    X = np.asarray(ctx.embeddings)
    R = np.asarray(ref.embeddings)
    seed = _seed(ctx, "semantic/ref-cluster-coverage")
    per_ref = PerRef()

    def assign(ref_rows):
        Rs = R if ref_rows is None else R[ref_rows]
        kk = min(int(k), Rs.shape[0] // 5)
        if kk < 2:
            raise MetricSkipped("the reference needs at least 10 rows")
        centres, _ = _reference_kmeans(ref, kk, seed) if ref_rows is None else kmeans(Rs, kk, seed)
        return kk, nearest_centre(X, centres)

    def value(rows, ref_rows=None, test_rows=None):
        kk, cell = per_ref.get(ref_rows if refit else None, assign)
        if len(rows) < 1:
            raise MetricSkipped("no rows")
        return float((np.bincount(cell[rows], minlength=kk) > 0).mean())

    res = Resampler(value, "nearest reference centre per row", cheap=True)
    if not refit:
        res.approximate = ("half-samples keep the full reference's k-means clusters instead of clustering each "
                           "reference half; permutations are exact")
    return res


def cluster_entropy_resampler(ctx, k: int = 20, merge: float | None = 0.6):
    """Topic spread on a subset with the topics held fixed: an approximation (stated in compare's notes).

    The metric fits k-means to each evaluation's own rows (seeded k-means++ and Lloyd: no statistic of
    the rows reproduces that fit). Here k-means is fitted once, the metric's way, to the pooled rows, its
    cells merged into topics as the metric merges them, and a subset's value is the normalised entropy of
    its rows' topic sizes. Compare takes the p-value from this statistic's own observed difference (a
    valid permutation test: the topics are a symmetric function of the pooled rows); the half-sample
    spread leaves out the refit's own noise. The reported values are the metric's."""
    import numpy as np

    from harness.stats.sufficient import Resampler

    X = np.asarray(ctx.embeddings)
    n = X.shape[0]
    kk = min(int(k), n // 5)
    if kk < 2:
        return None
    centres, cells = kmeans(X, kk, _seed(ctx, "semantic/cluster-entropy"))
    if merge is None or len(centres) < 2:
        topic = np.arange(kk)
    else:
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import pdist

        dist = np.clip(pdist(_unit64(centres), "cosine"), 0.0, 2.0)
        topic = fcluster(linkage(dist, "complete"), t=1.0 - merge, criterion="distance") - 1
    row_topic = topic[cells]

    def value(rows, ref_rows=None, test_rows=None):
        m = len(rows)
        km = min(int(k), m // 5)
        if km < 2:
            raise MetricSkipped("needs at least 10 rows")
        return _normalised_entropy(np.bincount(row_topic[rows]), km)

    res = Resampler(value, f"{kk} k-means cells of the pooled rows, held fixed", cheap=True)
    res.approximate = ("k-means topics fitted once to the pooled rows and held fixed instead of refitted on each "
                       "resample: p from this statistic's observed difference")
    return res
