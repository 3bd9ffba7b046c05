"""Argument checks for the regularizer gradients; shared by cpu_ref.regularizers and kernels.regularizers."""

from __future__ import annotations

from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    require_finite_scalar,
    require_float,
    require_same_dtype,
    require_same_shape,
)


def _check_regularizer(op: str, w: Any, dw: Any, coef: Any, allowed: tuple[str, ...]) -> float:
    require_float(op, "w", w, allowed)
    require_float(op, "dw", dw, allowed)
    require_same_dtype(op, {"w": w, "dw": dw})
    require_same_shape(op, {"w": w, "dw": dw})
    coef = require_finite_scalar(op, "coef", coef)
    if coef < 0:
        raise ValueError(f"{op}: coef must be >= 0, got {coef!r}")
    return coef


def check_l2_regularizer_gradient(w: Any, dw: Any, coef: Any, allowed: tuple[str, ...] = FLOAT_DTYPES) -> float:
    """Return coef as a float."""
    return _check_regularizer("l2_regularizer_gradient", w, dw, coef, allowed)


def check_l1_regularizer_gradient(w: Any, dw: Any, coef: Any, allowed: tuple[str, ...] = FLOAT_DTYPES) -> float:
    """Return coef as a float."""
    return _check_regularizer("l1_regularizer_gradient", w, dw, coef, allowed)
