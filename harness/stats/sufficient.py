"""Resampling on sufficient statistics: what ``compare`` needs from a metric to evaluate it on thousands
of row subsets without recomputing it from the rows.

A metric declares ``resampler=`` in its ``@metric(...)`` (a function beside it, or its name in the
metric's module): ``fn(pool_ctx, **args) -> Resampler``. ``pool_ctx`` is a
:class:`harness.metrics.base.Context` over the pooled rows of the two candidates (A's rows, then B's),
with the shared reference and test contexts; the function computes per-row or per-cluster statistics
once (a row x n-gram incidence, per-row count vectors, unit embeddings, duplicate clusters, pairwise
scores) and returns an object with

``value(rows, ref_rows=None, test_rows=None) -> float``
    the metric's value on the pooled rows ``rows`` (positions, in the order a resample drew them)
    against the reference rows ``ref_rows`` (positions; None: all of them) and test rows ``test_rows``.
    It must equal what the metric returns when computed from those rows (to floating-point
    tolerance: summation order may differ), and raise :class:`harness.metrics.base.MetricSkipped`
    where the metric would. ``tests/unit/analysis/test_resamplers.py`` checks every declared
    resampler against the metric on real data.

A resampler function returns None when its representation does not hold for these rows (for example a
metric that switches to a sampled estimator beyond some size): compare then recomputes that metric
from the rows and says so. Permutations never change the reference; half-samples halve it (the same
half for A and B, so a resampler may cache reference-side work per ``ref_rows``: see :class:`PerRef`).
"""

from __future__ import annotations


class Counts:
    """Per-row sparse counts of a corpus: entry e says row ``row[e]`` holds ``count[e]`` of column
    ``col[e]`` (an n-gram, a word, a label). ``sums(rows)`` are the column totals over ``rows`` (with
    multiplicity), exact integers in float64.

    >>> import numpy as np
    >>> c = Counts(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), np.array([1, 2, 1, 5]), 3, 3)
    >>> c.sums(np.array([0, 1])).tolist()
    [1.0, 3.0, 0.0]
    """

    def __init__(self, row, col, count, n_rows: int, n_cols: int):
        import numpy as np

        self.row = np.asarray(row, dtype=np.int64)
        self.col = np.asarray(col, dtype=np.int64)
        self.count = np.asarray(count, dtype=np.float64)
        self.n_rows, self.n_cols = int(n_rows), int(n_cols)

    def sums(self, rows):
        import numpy as np

        if rows is None:
            return np.bincount(self.col, weights=self.count, minlength=self.n_cols)
        mult = np.bincount(np.asarray(rows, dtype=np.int64), minlength=self.n_rows).astype(np.float64)
        return np.bincount(self.col, weights=self.count * mult[self.row], minlength=self.n_cols)


def rows_of(rows, n: int):
    """``rows`` as an int64 array (None: all ``n`` rows)."""
    import numpy as np

    return np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)


class PerRef:
    """Reference-side work computed once per reference subset: ``get(ref_rows, compute)`` returns
    ``compute(ref_rows)``, recomputed only when ``ref_rows`` is another array than the last call's
    (A and B of one half-sample share the same array object)."""

    def __init__(self):
        self._key = self._val = None
        self._full = None
        self._done = False

    def get(self, ref_rows, compute):
        if ref_rows is None:
            if not self._done:
                self._full, self._done = compute(None), True
            return self._full
        if self._key is not ref_rows:
            self._key, self._val = ref_rows, compute(ref_rows)
        return self._val


class Resampler:
    """A resampler from a plain function ``fn(rows, ref_rows, test_rows) -> float``. ``cheap``: one value
    costs a few vector operations over the rows (counts, sums, lookups), so compare may draw more
    permutations for it where its p-value is small (a declaration, not a timing: the p-values of a seed
    must not depend on the machine's speed)."""

    cheap = False

    def __init__(self, fn, what: str = "", cheap: bool = False):
        self.fn = fn
        self.what = what
        self.cheap = bool(cheap)

    def value(self, rows, ref_rows=None, test_rows=None) -> float:
        return float(self.fn(rows, ref_rows, test_rows))


class BatchResampler(Resampler):
    """A resampler from a batched function ``values(calls) -> list`` over ``(rows, ref_rows, test_rows)``
    calls, each entry a float or the :class:`harness.metrics.base.MetricSkipped` that call raised (compare
    hands it all resamples at once, so that work shared between calls is done once)."""

    def __init__(self, values, what: str = ""):
        self.values = values
        self.what = what

    def value(self, rows, ref_rows=None, test_rows=None) -> float:
        got = self.values([(rows, ref_rows, test_rows)])[0]
        if isinstance(got, Exception):
            raise got
        return got
