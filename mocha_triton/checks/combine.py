"""Argument checks for the combine family (copy_block, eltwise_forward, eltwise_backward).

Shared by :mod:`mocha_triton.cpu_ref.combine` and :mod:`mocha_triton.kernels.combine`, so both reject
the same inputs with the same messages.

* ``copy_block(x, y, x_start, y_start, size, mirror)``: ``x`` and ``y`` have one float dtype and the
  same number of dimensions (>= 1); ``x_start``, ``y_start`` and ``size`` hold one int >= 0 per
  dimension, and the block ``start + size`` fits inside each tensor along every axis.
* ``eltwise_*``: ``a``, ``b`` (and ``y`` or ``dy``, ``da``, ``db``) have one shape and one float dtype;
  ``operation`` is one of :data:`ELTWISE_OPERATIONS`; ``alpha`` and ``beta`` are finite scalars.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    require_choice,
    require_distinct,
    require_finite_scalar,
    require_float,
    require_min_ndim,
    require_same_dtype,
    require_same_shape,
    shape_of,
)

#: The binary operations of eltwise_forward/eltwise_backward (Mocha's Add, Subtract, Multiply,
#: Divide; Caffe's Eltwise SUM, PROD, MAX are add with coefficients, multiply and max).
ELTWISE_OPERATIONS = ("add", "subtract", "multiply", "divide", "max")


def _index_tuple(op: str, name: str, value: Any, ndim: int) -> tuple[int, ...]:
    """``value`` as a tuple of ``ndim`` ints >= 0 (NumPy integers accepted, bools refused)."""
    try:
        items = tuple(value)
        if any(isinstance(v, bool) for v in items):
            raise TypeError
        result = tuple(operator.index(v) for v in items)
    except TypeError:
        raise TypeError(f"{op}: {name} must be a sequence of {ndim} ints, got {value!r}") from None
    if len(result) != ndim:
        raise ValueError(f"{op}: {name} must hold one int per dimension ({ndim}), got {value!r}")
    if any(v < 0 for v in result):
        raise ValueError(f"{op}: {name} must hold ints >= 0, got {value!r}")
    return result


def check_copy_block(x: Any, y: Any, x_start: Sequence[int], y_start: Sequence[int], size: Sequence[int],
                     mirror: Any, allowed: Sequence[str] = FLOAT_DTYPES
                     ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], bool]:
    """Return ``(x_start, y_start, size, mirror)`` normalised to tuples of ints and a bool."""
    op = "copy_block"
    require_float(op, "x", x, allowed)
    require_float(op, "y", y, allowed)
    require_same_dtype(op, {"x": x, "y": y})
    require_min_ndim(op, "x", x, 1)
    require_distinct(op, {"y": y}, {"x": x}, why="the block is copied in parallel, so overlapping source and "
                                                 "destination would race")
    x_shape, y_shape = shape_of(x), shape_of(y)
    if len(x_shape) != len(y_shape):
        raise ValueError(f"{op}: x and y must have the same number of dimensions, got shapes {x_shape} and {y_shape}")
    ndim = len(x_shape)
    x_start = _index_tuple(op, "x_start", x_start, ndim)
    y_start = _index_tuple(op, "y_start", y_start, ndim)
    size = _index_tuple(op, "size", size, ndim)
    for name, start, shape in (("x", x_start, x_shape), ("y", y_start, y_shape)):
        if any(s + n > d for s, n, d in zip(start, size, shape)):
            raise ValueError(f"{op}: the block at {name}_start {start} of size {size} does not fit in {name} of "
                             f"shape {shape}")
    if mirror not in (True, False):
        raise TypeError(f"{op}: mirror must be a bool, got {mirror!r}")
    return x_start, y_start, size, bool(mirror)


def _check_coefficients(op: str, operation: Any, alpha: Any, beta: Any) -> tuple[float, float]:
    require_choice(op, "operation", operation, ELTWISE_OPERATIONS)
    return require_finite_scalar(op, "alpha", alpha), require_finite_scalar(op, "beta", beta)


def check_eltwise_forward(a: Any, b: Any, y: Any, operation: str, alpha: Any, beta: Any,
                          allowed: Sequence[str] = FLOAT_DTYPES) -> tuple[float, float]:
    """Return ``(alpha, beta)`` as floats."""
    op = "eltwise_forward"
    for name, t in (("a", a), ("b", b), ("y", y)):
        require_float(op, name, t, allowed)
    require_same_dtype(op, {"a": a, "b": b, "y": y})
    require_same_shape(op, {"a": a, "b": b, "y": y})
    return _check_coefficients(op, operation, alpha, beta)


def check_eltwise_backward(a: Any, b: Any, dy: Any, da: Any, db: Any, operation: str, alpha: Any, beta: Any,
                           allowed: Sequence[str] = FLOAT_DTYPES) -> tuple[float, float]:
    """Return ``(alpha, beta)`` as floats; ``da`` and ``db`` may be None (that gradient is skipped)."""
    op = "eltwise_backward"
    named = {"a": a, "b": b, "dy": dy, "da": da, "db": db}
    present = {name: t for name, t in named.items() if t is not None}
    for name in ("a", "b", "dy"):
        if named[name] is None:
            raise TypeError(f"{op}: {name} must be an array/tensor, got None")
    for name, t in present.items():
        require_float(op, name, t, allowed)
    require_same_dtype(op, present)
    require_same_shape(op, present)
    return _check_coefficients(op, operation, alpha, beta)
