"""The numpy backend of the ridge solvers: the functions of himalaya's ``numpy`` backend that b2m uses, with the
same implementations (so a fit gives the same bits with either), without importing himalaya; except ``eigh``,
which asks LAPACK for its divide-and-conquer driver (syevd, as numpy's and torch's eigh) where scipy's default
is syevr: 2.9 s against 18.3 s for a 3811-row kernel on 2 cores (``benchmarks/eigh_drivers.py``)."""

from __future__ import annotations

import numpy as np
import scipy.linalg as linalg

name = "numpy"
argmax = np.argmax
concatenate = np.concatenate
finfo = np.finfo
flatnonzero = np.flatnonzero
log = np.log
sqrt = np.sqrt
matmul = np.matmul
stack = np.stack
unique = np.unique


def eigh(a):
    """Eigenvalues (ascending) and eigenvectors of a symmetric matrix."""
    return linalg.eigh(a, driver="evd")


def svd(X, full_matrices=True):
    return linalg.svd(X, full_matrices=full_matrices)


def transpose(a, axes=None):
    """``a`` with its axes permuted, as a contiguous array: numpy's batched matmul over a strided view is about
    15 times slower."""
    return np.ascontiguousarray(np.transpose(a, axes))


def asarray(a, dtype=None, order=None, device=None):
    return np.asarray(a, dtype=dtype, order=order)


def to_numpy(array):
    return array


def mean_float64(array, axis=None, keepdims=False):
    """The mean in double precision, cast back to the array's dtype."""
    return array.mean(axis, dtype=np.float64, keepdims=keepdims).astype(array.dtype, copy=False)


def apply_argmax(array, argmax, axis):
    """``array`` at the precomputed ``argmax`` indices along ``axis``."""
    return np.take(np.take_along_axis(array, np.expand_dims(argmax, axis=axis), axis=axis), 0, axis=axis)


def zeros_like(array, shape=None, dtype=None, device=None):
    return np.zeros(array.shape if shape is None else shape, dtype=array.dtype if dtype is None else dtype)


def full_like(array, fill_value, shape=None, dtype=None, device=None):
    return np.full(array.shape if shape is None else shape, fill_value, dtype=array.dtype if dtype is None else dtype)
