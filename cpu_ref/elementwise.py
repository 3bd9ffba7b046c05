"""Elementwise ops and reductions the framework needs (NumPy reference).

Mirrors :mod:`mocha_triton.kernels.elementwise`. Every op writes its output in place.
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import elementwise as checks


def fill(y: np.ndarray, value: float) -> None:
    """y[...] = value."""
    y[...] = checks.check_fill(y, value)


def copy(x: np.ndarray, y: np.ndarray) -> None:
    """y[...] = x (same shape and dtype)."""
    checks.check_copy(x, y)
    np.copyto(y, x)


def axpy(alpha: float, x: np.ndarray, y: np.ndarray) -> None:
    """y += alpha * x."""
    alpha = checks.check_axpy(alpha, x, y)
    y += y.dtype.type(alpha) * x


def scale(y: np.ndarray, alpha: float) -> None:
    """y *= alpha."""
    y *= y.dtype.type(checks.check_scale(y, alpha))


def bias_add(y: np.ndarray, b: np.ndarray) -> None:
    """y[:, c, ...] += b[c] for y of shape (N, C, *S)."""
    checks.check_bias_add(y, b)
    y += b.reshape((1, -1) + (1,) * (y.ndim - 2))  # broadcasting writes through any strides


def sum_of_squares(x: np.ndarray, out: np.ndarray) -> None:
    """out[0] = sum(x ** 2), accumulated in the dtype of x (pairwise summation by NumPy)."""
    checks.check_sum_of_squares(x, out)
    flat = x.reshape(-1)
    out[0] = np.dot(flat, flat) if flat.size else 0.0
