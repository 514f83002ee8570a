"""harness.stats.linalg.eigvalsh: numpy.linalg.eigvalsh's values (the same LAPACK routine, called with
the GIL released), on real embedding covariances and on edge cases, and numpy's own function whenever
the pointer is not to be had or the matrix is not float64."""

from __future__ import annotations

import numpy as np
import pytest

from harness.stats import linalg


def _cov(n: int, d: int, seed: int = 0):
    X = np.random.default_rng(seed).normal(size=(n, d)) @ np.diag(np.logspace(0, -4, d))
    M = np.cov(X.T)
    return (M + M.T) / 2


@pytest.mark.parametrize("n,d", [(1000, 384), (30, 64), (3, 3), (1, 1)])
def test_same_values_as_numpy(n, d):
    M = _cov(n, d) if d > 1 else np.array([[2.5]])
    got, want = linalg.eigvalsh(M), np.linalg.eigvalsh(M)
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12 * float(np.abs(want).max()))


def test_reads_the_lower_triangle_like_numpy():
    M = _cov(50, 8)
    M[np.triu_indices(8, 1)] = 99.0  # numpy reads the lower triangle only ("L")
    np.testing.assert_allclose(linalg.eigvalsh(M), np.linalg.eigvalsh(M), rtol=1e-12, atol=1e-12)


def test_float32_and_odd_shapes_take_numpys_function():
    M32 = _cov(100, 16).astype(np.float32)
    got = linalg.eigvalsh(M32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.linalg.eigvalsh(M32))
    stack = np.stack([_cov(40, 5, s) for s in range(3)])
    np.testing.assert_array_equal(linalg.eigvalsh(stack), np.linalg.eigvalsh(stack))


def test_without_the_pointer_numpy_answers(monkeypatch):
    M = _cov(60, 10)
    monkeypatch.setattr(linalg, "_FN", [None])
    np.testing.assert_array_equal(linalg.eigvalsh(M), np.linalg.eigvalsh(M))


def test_the_pointer_is_found_here():
    # scipy publishes dsyevd for Cython on every supported install: a missing pointer would silently cost
    # compare its parallel eigendecompositions
    assert linalg._dsyevd() is not None


def test_threads_get_the_same_values():
    from concurrent.futures import ThreadPoolExecutor

    mats = [_cov(200, 48, s) for s in range(8)]
    with ThreadPoolExecutor(2) as ex:
        got = list(ex.map(linalg.eigvalsh, mats))
    for g, M in zip(got, mats):
        np.testing.assert_allclose(g, np.linalg.eigvalsh(M), rtol=1e-12, atol=1e-14)
