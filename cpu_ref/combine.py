"""Ops that combine or cut blobs (NumPy reference): block copies and elementwise binary ops.

Mirrors :mod:`mocha_triton.kernels.combine`; the argument rules live in
:mod:`mocha_triton.checks.combine`. Three ops serve four layers:

* :func:`copy_block` copies an N-d block between two tensors, each side at its own offset:
  ``y[y_start : y_start + size] = x[x_start : x_start + size]``, optionally reversing the block's last
  axis. One general op instead of a pair per layer, because every data movement of Concat and Crop
  is such a copy:

  ==================  =====================================================================
  concat forward      each bottom whole into its slice of the top (``x_start`` 0)
  concat backward     each slice of the top gradient into a bottom gradient (``y_start`` 0)
  crop forward        the window of the bottom into the whole top (``mirror`` for a flip)
  crop backward       zero the bottom gradient (``fill``), then the top gradient into the window
  ==================  =====================================================================

  It writes only the block, so the rest of ``y`` keeps its values (role ``inout``): that is what
  lets a concat fill its top slice by slice.
* :func:`eltwise_forward` is ``y = op(alpha * a, beta * b)`` for op in add, subtract, multiply,
  divide, max (Mocha's four functors and Caffe's Eltwise; ``alpha``/``beta`` are Caffe's SUM
  coefficients). ``y`` may be ``a`` or ``b`` (in place), so a k-ary sum, product or maximum is a chain
  ``y = op(x0, x1); y = op(y, x2); ...``. Max sends ties to ``a``, so the chain picks the first
  maximum.
* :func:`eltwise_backward` gives both operand gradients from one pass over ``a``, ``b`` and ``dy``
  (None skips one). It needs no forward output, so a neuron applied to ``y`` in place does not get in
  the way, and ``da``/``db`` may be ``dy`` itself (the ElementWise layer routes a k-ary max's gradient
  with ``db`` in place; see :mod:`mocha_triton.layers.combine`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mocha_triton.checks import combine as checks


def copy_block(x: np.ndarray, y: np.ndarray, x_start: Sequence[int], y_start: Sequence[int], size: Sequence[int],
               mirror: bool = False) -> None:
    """``y[y_start : y_start + size] = x[x_start : x_start + size]`` along every axis; with ``mirror`` the
    block's last axis is reversed. Elements of ``y`` outside the block are left as they were."""
    x_start, y_start, size, mirror = checks.check_copy_block(x, y, x_start, y_start, size, mirror)
    block = x[tuple(slice(s, s + n) for s, n in zip(x_start, size))]
    if mirror:
        block = block[..., ::-1]
    y[tuple(slice(s, s + n) for s, n in zip(y_start, size))] = block


def eltwise_forward(a: np.ndarray, b: np.ndarray, y: np.ndarray, operation: str, alpha: float = 1.0,
                    beta: float = 1.0) -> None:
    """``y = op(alpha * a, beta * b)``: add, subtract, multiply, divide, or max (ties go to ``a``)."""
    alpha, beta = checks.check_eltwise_forward(a, b, y, operation, alpha, beta)
    t = y.dtype.type
    u = a * t(alpha)
    v = b * t(beta)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if operation == "add":
            np.add(u, v, out=y)
        elif operation == "subtract":
            np.subtract(u, v, out=y)
        elif operation == "multiply":
            np.multiply(u, v, out=y)
        elif operation == "divide":
            np.divide(u, v, out=y)
        else:
            np.copyto(y, np.where(u >= v, u, v))


def eltwise_backward(a: np.ndarray, b: np.ndarray, dy: np.ndarray, da: np.ndarray | None, db: np.ndarray | None,
                     operation: str, alpha: float = 1.0, beta: float = 1.0) -> None:
    """The gradients of :func:`eltwise_forward` w.r.t. ``a`` (into ``da``) and ``b`` (into ``db``).

    With ``u = alpha * a`` and ``v = beta * b``: add ``(alpha dy, beta dy)``, subtract ``(alpha dy,
    -beta dy)``, multiply ``(alpha v dy, beta u dy)``, divide ``(alpha dy / v, -beta (u / v) dy / v)``,
    max ``(alpha dy [u >= v], beta dy [u < v])``. Both are computed before either is written, so
    ``da`` or ``db`` may be ``dy`` itself.
    """
    alpha, beta = checks.check_eltwise_backward(a, b, dy, da, db, operation, alpha, beta)
    if da is None and db is None:
        return
    t = dy.dtype.type
    alpha, beta = t(alpha), t(beta)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if operation == "add":
            ga, gb = alpha * dy, beta * dy
        elif operation == "subtract":
            ga, gb = alpha * dy, -beta * dy
        else:
            u, v = alpha * a, beta * b
            if operation == "multiply":
                ga, gb = alpha * (v * dy), beta * (u * dy)
            elif operation == "divide":
                ga, gb = alpha * (dy / v), -beta * ((u / v) * dy / v)
            else:
                first = u >= v
                ga, gb = np.where(first, alpha * dy, t(0)), np.where(first, t(0), beta * dy)
    if da is not None:
        np.copyto(da, ga)
    if db is not None:
        np.copyto(db, gb)
