"""The nearest-neighbour service: exact k-th-neighbour distances within a set, and the nearest row
of another set (or of the same set, itself excluded).

``knn_radii`` is the k-NN ball radius of every row (the distance to its k-th nearest other row),
equal value for value to scikit-learn's ``euclidean_distances`` arithmetic (and so to the ``prdc``
package) while never building the n x n matrix: float32 blocks from one GEMM each screen the pairs
(``Screen``), and the near ties within a proven float32 error bound are settled exactly
(``exact_dist``). Memory is one block of rows x n plus the candidate pairs. ``nearest`` and
``nearest_other`` are brute-force exact searches through scikit-learn's ``NearestNeighbors``, which
computes the distances in bounded-memory chunks.

numpy, scipy and scikit-learn are imported inside the functions.
"""

from __future__ import annotations

#: the unit round-off of float32
_U32 = 2.0**-24


def exact_dist(A, B, ia, ib, aa, bb, out_dtype):
    """Euclidean distances of the pairs (A[ia], B[ib]) computed exactly as scikit-learn's
    ``euclidean_distances`` (hence the ``prdc`` package) does: squared distance in float64 as
    ``-2 a.b + |a|^2 + |b|^2``, cast to the input dtype, clipped at 0, square root."""
    import numpy as np

    ia, ib = np.asarray(ia), np.asarray(ib)
    sq = np.empty(len(ia), dtype=np.float64)
    step = max(1, (1 << 19) // max(1, A.shape[1]))  # a few MB of float64 rows at a time
    for s in range(0, len(ia), step):
        a = A[ia[s:s + step]].astype(np.float64)
        b = B[ib[s:s + step]].astype(np.float64)
        sq[s:s + step] = np.einsum("ij,ij->i", a, b)
    sq *= -2
    sq += aa[ia]
    sq += bb[ib]
    sq = sq.astype(out_dtype)
    np.maximum(sq, 0, out=sq)
    return np.sqrt(sq)


def _sq_norms64(A, chunk: int = 4096):
    """|a|^2 per row in float64, as scikit-learn's ``row_norms`` of the float64 upcast, a chunk of
    rows at a time (no float64 copy of the whole matrix)."""
    import numpy as np

    out = np.empty(A.shape[0], dtype=np.float64)
    for s in range(0, A.shape[0], chunk):
        a = A[s:s + chunk].astype(np.float64)
        out[s:s + chunk] = np.einsum("ij,ij->i", a, a)
    return out


def f32_up(x):
    """float64 values rounded up to float32, so that ``S <= f32_up(t)`` keeps every float32 S <= t."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    y = x.astype(np.float32)
    low = y.astype(np.float64) < x
    y[low] = np.nextafter(y[low], np.float32(np.inf))
    return y


class Screen:
    """float32 squared distances from one GEMM per block, with an error bound for the exact
    re-check of near ties.

    Rows of A become ``[a, |a|^2, 1]`` and rows of B ``[-2b, 1, |b|^2]`` (float32), so one sgemm
    gives ``|a|^2 + |b|^2 - 2 a.b`` with no further pass over the block. Its distance from the
    float64 value is at most (d + 2) u (2|a||b| + |a|^2 + |b|^2) <= 2 (d + 2) u (|a|^2 + |b|^2) for
    the float32 summation in any order, plus u (|a|^2 + |b|^2) for the rounded norms and
    2 u (|a|^2 + |b|^2) for float64 inputs rounded to float32: (2d + 7) u, taken as (2d + 16) u.
    """

    def __init__(self, A, B, out_dtype):
        import numpy as np

        self.A, self.B = A, B
        d = A.shape[1]
        self.aa = _sq_norms64(A)
        self.bb = self.aa if B is A else _sq_norms64(B)
        self.L = np.empty((A.shape[0], d + 2), dtype=np.float32)
        self.L[:, :d] = A
        self.L[:, d] = self.aa
        self.L[:, d + 1] = 1.0
        self.R = np.empty((B.shape[0], d + 2), dtype=np.float32)
        self.R[:, :d] = B
        self.R[:, :d] *= -2
        self.R[:, d] = 1.0
        self.R[:, d + 1] = self.bb
        self.out_dtype = out_dtype
        self.eps_out = float(np.finfo(out_dtype).eps)
        self.bound = (2 * d + 16) * _U32 * float(self.aa.max(initial=0) + self.bb.max(initial=0)) + 1e-30

    def block(self, s, e, c0=0, c1=None):
        """Approximate squared distances of A[s:e] to B[c0:c1] (float32)."""
        return self.L[s:e] @ self.R[c0:c1].T

    def exact(self, ia, ib):
        return exact_dist(self.A, self.B, ia, ib, self.aa, self.bb, self.out_dtype)

    def margin(self, radii):
        """Half-width around r^2 inside which a float32 comparison cannot be trusted."""
        import numpy as np

        t = radii.astype(np.float64) ** 2
        return t, self.bound + 8 * self.eps_out * t


def rows_per_block(n_cols: int, block_rows: int | None) -> int:
    if block_rows:
        return max(1, int(block_rows))
    # ~8M float32 values (32 MB) and at most 512 rows: larger blocks made OpenBLAS's sgemm 2x slower here
    return max(1, min(512, (1 << 23) // max(1, n_cols)))


def nonzero2d(mask):
    """``np.nonzero`` of a sparse C-contiguous 2-D boolean array, skipping 8 zero bytes at a time."""
    import numpy as np

    flat = mask.reshape(-1)
    n8 = flat.size - flat.size % 8
    words = np.flatnonzero(flat[:n8].view(np.uint64))
    wi, bi = np.nonzero(flat[:n8].view(np.uint8).reshape(-1, 8)[words])
    idx = np.concatenate([words[wi] * 8 + bi, n8 + np.flatnonzero(flat[n8:])])
    return np.divmod(idx, mask.shape[1])


def _kth_exact(sc, rows, cols, vals, row_ids, k: int):
    """The (k+1)-th smallest exact distance (self at 0) of each row in ``row_ids`` (sorted), from
    its candidate pairs (rows[i], cols[i]) with float32 squared distances vals[i].

    Each row's candidates must include self and every pair whose float32 value is within
    ``2 bound`` of its (k+1)-th smallest true value. Then the (k+1)-th smallest float32 value
    ``kth`` among them is within ``bound`` of the true one, and every pair that can rank at or
    below the true (k+1)-th has a float32 value <= kth + 2 bound: only those are redone exactly.
    Returns (radii, pairs redone).
    """
    import numpy as np

    v = np.maximum(vals, np.float32(0))  # non-negative float32 bit patterns sort as integers
    key = (rows.astype(np.uint64) << np.uint64(32)) | v.view(np.uint32).astype(np.uint64)
    key.sort()
    first = np.searchsorted(key, row_ids.astype(np.uint64) << np.uint64(32))
    last = np.append(first[1:], len(key))
    if not (last - first > k).all():
        raise AssertionError("k-NN screening kept fewer than k + 1 candidates for a row (a bug)")
    kth = np.zeros(int(row_ids.max()) + 1)
    kth[row_ids] = (key[first + k] & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
    del key
    sel = np.flatnonzero(v <= kth[rows] + 2 * sc.bound)
    rows, cols = rows[sel], cols[sel]
    d = np.zeros(len(rows), dtype=sc.out_dtype)  # self-distance 0, as sklearn sets the diagonal
    other = np.flatnonzero(rows != cols)
    d[other] = sc.exact(rows[other], cols[other])
    order = np.lexsort((d, rows))
    first = np.searchsorted(rows[order], row_ids)
    return d[order][first + k], len(d)


def _knn_by_rows(sc, n: int, k: int, B: int):
    """k-NN radii one block of whole rows at a time: B x n float32 per block, nothing kept between
    blocks. Used for small inputs and where the symmetric pass would keep too many candidates."""
    import numpy as np

    radii = np.empty(n, dtype=sc.out_dtype)
    refined = 0
    for s in range(0, n, B):
        e = min(n, s + B)
        S = sc.block(s, e)
        r = np.arange(e - s)
        S[r, r + s] = 0.0
        # an upper bound of each row's (k+1)-th smallest value from a strided subset of columns
        # (cheaper than partitioning whole rows), then all values within 2 bounds of it
        step = max(1, min(8, n // (8 * (k + 1))))
        upper = np.partition(S[:, ::step], k, axis=1)[:, k] if step > 1 else np.partition(S, k, axis=1)[:, k]
        rows, cols = nonzero2d(S <= f32_up(upper.astype(np.float64) + 2 * sc.bound)[:, None])
        vals = S[rows, cols]
        del S
        radii[s:e], got = _kth_exact(sc, rows + s, cols, vals, np.arange(s, e), k)
        refined += got
    return radii, refined


# the symmetric pass is used from this many rows on, and while it is expected to keep at most
# this many candidate pairs per row on average
_SYMMETRIC_MIN_ROWS = 2048
_SYMMETRIC_MAX_PER_ROW = 400


def _knn_symmetric(sc, n: int, k: int, B: int, sample: int | None = None):
    """k-NN radii with each pair's float32 distance computed once (the upper triangle of X X^T, half
    the GEMM work of whole rows), or None where too many candidates would have to be kept.

    1. Every row against a seeded random sample of ``sample`` rows: the (k+1)-th smallest value
       ``u`` bounds the row's true (k+1)-th smallest from above (within ``bound``), since the
       sample's values are a subset of the row's.
    2. Row strips of the upper triangle: pair (i, j) is computed once and kept for row i if its
       value is <= u_i + 2 bound, for row j if <= u_j + 2 bound: every pair that can rank at or
       below the true (k+1)-th of its row (see ``_kth_exact``).
    """
    import numpy as np

    m = min(n, sample or max(32 * (k + 1), n // 16))
    P = np.sort(np.random.default_rng(0).choice(n, m, replace=False))
    RP = np.ascontiguousarray(sc.R[P])
    hi = np.empty(n, dtype=np.float32)
    expected = 0.0
    Bs = max(1, min(4096, (1 << 23) // m))
    for s in range(0, n, Bs):
        e = min(n, s + Bs)
        S = sc.L[s:e] @ RP.T
        hi[s:e] = f32_up(np.partition(S, k, axis=1)[:, k].astype(np.float64) + 2 * sc.bound)
        expected += np.count_nonzero(S <= hi[s:e, None]) * (n / m)
    if expected > _SYMMETRIC_MAX_PER_ROW * n:
        return None
    rows_l, cols_l, vals_l = [], [], []
    for s in range(0, n, B):
        e = min(n, s + B)
        S = sc.block(s, e, s)  # rows s:e against columns s:n
        r, c = nonzero2d(S <= hi[s:e, None])
        rows_l.append((r + s).astype(np.int32))
        cols_l.append((c + s).astype(np.int32))
        vals_l.append(S[r, c])
        if e < n:  # the same values for the rows e:n (columns here), pairs with rows s:e
            r, c = nonzero2d(S[:, e - s:] <= hi[None, e:])
            rows_l.append((c + e).astype(np.int32))
            cols_l.append((r + s).astype(np.int32))
            vals_l.append(S[r, c + (e - s)])
        del S
    rows, cols, vals = (np.concatenate(x) for x in (rows_l, cols_l, vals_l))
    del rows_l, cols_l, vals_l
    return _kth_exact(sc, rows, cols, vals, np.arange(n), k)


def knn_radii(X, k: int, block_rows: int | None = None, symmetric: bool | None = None):
    """Distance from each row of X to its k-th nearest other row (the (k+1)-th smallest with itself
    at distance 0), screened in float32 with near ties re-checked exactly.

    Returns (radii in X's float dtype, or float64 for other dtypes; the number of pairs settled in
    exact arithmetic). Euclidean distances; equal, value for value, to the radii of the ``prdc``
    package (Naeem et al., "Reliable Fidelity and Diversity Metrics for Generative Models", ICML 2020),
    which builds the full n x n matrix with scikit-learn's ``euclidean_distances``. From 2,048 rows
    on, each pair is screened once (``_knn_symmetric``: half the arithmetic); memory is one block of
    ``block_rows`` x n plus the candidate pairs (~100 per row). Needs more than k rows.
    """
    import numpy as np

    X = np.asarray(X)
    out_dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    n = X.shape[0]
    if n < k + 1:
        raise ValueError(f"needs more than k={k} rows, got {n}")
    sc = Screen(X, X, out_dtype)
    B = rows_per_block(n, block_rows)
    if symmetric is None:
        symmetric = n >= _SYMMETRIC_MIN_ROWS
    if symmetric:
        got = _knn_symmetric(sc, n, k, B)
        if got is not None:
            return got
    return _knn_by_rows(sc, n, k, B)


# ----------------------------------------------------------------------------- nearest row


def nearest(queries, base, metric: str = "cosine"):
    """(distance, index) of each query row's nearest row of ``base``: exact brute force (scikit-learn's
    ``NearestNeighbors(algorithm="brute")``, distances computed in bounded-memory chunks). Cosine
    distances (1 - cosine similarity) are clipped to [0, 2] (float noise of a copy can dip below 0).

    >>> import numpy as np
    >>> d, j = nearest(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[0.0, 2.0], [3.0, 0.1]]))
    >>> j.tolist(), [round(float(x), 4) for x in d]
    ([1, 0], [0.0006, 0.0])
    """
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=1, metric=metric, algorithm="brute").fit(np.asarray(base))
    d, j = nn.kneighbors(np.asarray(queries))  # sklearn computes distances in bounded-memory chunks
    d = d[:, 0]
    if metric == "cosine":
        d = np.clip(d, 0.0, 2.0)
    return d, j[:, 0]


def nearest_other(X, rows=None, metric: str = "euclidean"):
    """Index of the nearest *other* row of X for every row (``rows`` None) or for the rows ``rows``
    (sorted, distinct), by exact brute force (scikit-learn, chunked: memory O(n d)). A row is never its
    own neighbour; an exact twin of it may be returned (it is at distance 0 too). For unit rows the
    Euclidean order is the cosine order.

    >>> import numpy as np
    >>> nearest_other(np.array([[0.0], [1.0], [3.0]])).tolist(), nearest_other(np.array([[0.0], [1.0], [3.0]]), np.array([2])).tolist()
    ([1, 0, 1], [1])
    """
    import numpy as np
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=1, algorithm="brute", metric=metric).fit(X)
    if rows is None:
        return nn.kneighbors(return_distance=False)[:, 0]  # X=None: a row is never its own neighbour
    two = nn.kneighbors(X[rows], n_neighbors=2, return_distance=False)
    # the row itself is one of its two nearest (an exact twin may tie with it: either is at distance 0)
    return np.where(two[:, 0] == rows, two[:, 1], two[:, 0])
