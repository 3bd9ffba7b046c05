"""Argument checks for the solver updates; shared by cpu_ref.solvers and kernels.solvers."""

from __future__ import annotations

from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    require_finite_scalar,
    require_float,
    require_same_dtype,
    require_same_shape,
)


def _check_arrays(op: str, w: Any, dw: Any, v: Any, allowed: tuple[str, ...]) -> None:
    for name, a in (("w", w), ("dw", dw), ("v", v)):
        require_float(op, name, a, allowed)
    require_same_dtype(op, {"w": w, "dw": dw, "v": v})
    require_same_shape(op, {"w": w, "dw": dw, "v": v})


def _non_negative(op: str, name: str, value: Any) -> float:
    value = require_finite_scalar(op, name, value)
    if value < 0:
        raise ValueError(f"{op}: {name} must be >= 0, got {value!r}")
    return value


def check_sgd_momentum_update(w: Any, dw: Any, v: Any, lr: Any, momentum: Any,
                              allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float]:
    """Return (lr, momentum) as floats; both must be finite and >= 0."""
    op = "sgd_momentum_update"
    _check_arrays(op, w, dw, v, allowed)
    return _non_negative(op, "lr", lr), _non_negative(op, "momentum", momentum)


def check_nesterov_update(w: Any, dw: Any, v: Any, lr: Any, momentum: Any, next_momentum: Any,
                          allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float, float]:
    """Return (lr, momentum, next_momentum) as floats; all must be finite and >= 0."""
    op = "nesterov_update"
    _check_arrays(op, w, dw, v, allowed)
    return (_non_negative(op, "lr", lr), _non_negative(op, "momentum", momentum),
            _non_negative(op, "next_momentum", next_momentum))
