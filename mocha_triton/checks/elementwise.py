"""Argument checks for the elementwise family (fill, copy, axpy, scale, bias_add, sum_of_squares)."""

from __future__ import annotations

from typing import Any

from mocha_triton.checks.common import (
    require_finite_scalar,
    require_float,
    require_min_ndim,
    require_same_dtype,
    require_same_shape,
    require_shape,
)


def check_fill(y: Any, value: Any, allowed=("float32", "float64")) -> float:
    require_float("fill", "y", y, allowed)
    try:
        return float(value)  # inf/nan are legitimate fill values
    except (TypeError, ValueError):
        raise TypeError(f"fill: value must be a real scalar, got {value!r}") from None


def check_copy(x: Any, y: Any, allowed=("float32", "float64")) -> None:
    require_float("copy", "x", x, allowed)
    require_float("copy", "y", y, allowed)
    require_same_dtype("copy", {"x": x, "y": y})
    require_same_shape("copy", {"x": x, "y": y})


def check_axpy(alpha: Any, x: Any, y: Any, allowed=("float32", "float64")) -> float:
    require_float("axpy", "x", x, allowed)
    require_float("axpy", "y", y, allowed)
    require_same_dtype("axpy", {"x": x, "y": y})
    require_same_shape("axpy", {"x": x, "y": y})
    return require_finite_scalar("axpy", "alpha", alpha)


def check_scale(y: Any, alpha: Any, allowed=("float32", "float64")) -> float:
    require_float("scale", "y", y, allowed)
    return require_finite_scalar("scale", "alpha", alpha)


def check_bias_add(y: Any, b: Any, allowed=("float32", "float64")) -> tuple[int, int, int]:
    """Return (N, C, S) with S the product of the trailing (spatial) sizes."""
    require_float("bias_add", "y", y, allowed)
    require_float("bias_add", "b", b, allowed)
    require_same_dtype("bias_add", {"y": y, "b": b})
    require_min_ndim("bias_add", "y", y, 2)
    n, c = int(y.shape[0]), int(y.shape[1])
    require_shape("bias_add", "b", b, (c,))
    s = 1
    for d in y.shape[2:]:
        s *= int(d)
    return n, c, s


def check_sum_of_squares(x: Any, out: Any, allowed=("float32", "float64")) -> None:
    require_float("sum_of_squares", "x", x, allowed)
    require_float("sum_of_squares", "out", out, allowed)
    require_same_dtype("sum_of_squares", {"x": x, "out": out})
    require_shape("sum_of_squares", "out", out, (1,))
