"""Symmetric eigenvalues that let other threads run: ``eigvalsh(M)`` is ``numpy.linalg.eigvalsh(M)``
(LAPACK ``dsyevd``, eigenvalues only, lower triangle, optimal workspace) for a float64 matrix, with the
GIL released.

``compare`` resamples metrics in parallel threads, and ``numpy.linalg.eigvalsh`` holds the GIL for the
whole decomposition: measured on these 2 cores, two threads each running 384 x 384 eigendecompositions
took 2.0-2.2x the time of one (fully serialised), where matrix products, which release it, ran side by
side. Here the same LAPACK routine is called through ``ctypes`` (which releases the GIL for the call),
from the function pointer scipy publishes for Cython (``scipy.linalg.cython_lapack``): two threads then
take the time of one. The values are those of numpy's call when numpy and scipy share the LAPACK build
(bit for bit on this machine's wheels; tested to 1e-12 relative otherwise). If the pointer cannot be
had, numpy's function is used.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
_FN: list = []  # [the dsyevd foreign function, or None when unavailable]
_WORK: dict[int, tuple[int, int]] = {}  # n -> (lwork, liwork) from LAPACK's workspace query


def _dsyevd():
    with _LOCK:
        if not _FN:
            try:
                import ctypes

                from scipy.linalg import cython_lapack

                cap = cython_lapack.__pyx_capi__["dsyevd"]
                # private prototypes (ctypes.pythonapi's shared function objects are left as they are)
                get_name = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", ctypes.pythonapi))
                get_ptr = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
                    ("PyCapsule_GetPointer", ctypes.pythonapi))
                ptr = get_ptr(cap, get_name(cap))
                i, d = ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_double)
                # dsyevd(jobz, uplo, n, a, lda, w, work, lwork, iwork, liwork, info), Fortran arguments
                proto = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, i, d, i, d, d, i, i, i, i)
                _FN.append(proto(ptr))
            except Exception:  # no capsule, no ctypes: numpy's function
                _FN.append(None)
        return _FN[0]


def eigvalsh(M):
    """Eigenvalues of the symmetric matrix ``M`` (its lower triangle), ascending: ``numpy.linalg.eigvalsh``
    without holding the GIL. Raises ``numpy.linalg.LinAlgError`` when LAPACK does not converge.

    >>> import numpy as np
    >>> A = np.random.default_rng(0).normal(size=(6, 6)); A = A + A.T
    >>> bool(np.allclose(eigvalsh(A), np.linalg.eigvalsh(A), rtol=1e-12, atol=1e-12))
    True
    """
    import ctypes

    import numpy as np

    M = np.asarray(M)
    fn = _dsyevd() if M.ndim == 2 and M.shape[0] == M.shape[1] and M.shape[0] > 0 else None
    if fn is None or M.dtype != np.float64:  # float32 takes numpy's single-precision routine
        return np.linalg.eigvalsh(M)
    n = M.shape[0]
    a = np.array(M, dtype=np.float64, order="F")  # a copy: LAPACK overwrites it
    w = np.empty(n)
    c_int, dbl = ctypes.c_int, ctypes.POINTER(ctypes.c_double)
    nn, info = c_int(n), c_int(0)

    def call(work, lwork: int, iwork, liwork: int) -> None:
        fn(b"N", b"L", ctypes.byref(nn), a.ctypes.data_as(dbl), ctypes.byref(nn), w.ctypes.data_as(dbl),
           work.ctypes.data_as(dbl), ctypes.byref(c_int(lwork)), iwork.ctypes.data_as(ctypes.POINTER(c_int)),
           ctypes.byref(c_int(liwork)), ctypes.byref(info))

    if n not in _WORK:  # LAPACK's workspace query (lwork = liwork = -1), once per size
        qw, qi = np.empty(1), np.empty(1, dtype=np.intc)
        call(qw, -1, qi, -1)
        if info.value != 0:
            return np.linalg.eigvalsh(M)
        _WORK[n] = (max(1, int(qw[0])), max(1, int(qi[0])))
    lwork, liwork = _WORK[n]
    call(np.empty(lwork), lwork, np.empty(liwork, dtype=np.intc), liwork)
    if info.value < 0:  # an argument LAPACK refused: numpy's function says what
        return np.linalg.eigvalsh(M)
    if info.value > 0:
        raise np.linalg.LinAlgError("Eigenvalues did not converge")
    return w
