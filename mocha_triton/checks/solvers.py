"""Argument checks for the solver updates (SGD, Nesterov, Adam, Adagrad, RMSProp, Adadelta); shared by
cpu_ref.solvers and kernels.solvers."""

from __future__ import annotations

from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    require_finite_scalar,
    require_floats,
    require_same_shape,
)


def _check_arrays(op: str, arrays: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """The parameter, its gradient and the method's state arrays: float, one dtype, one shape."""
    require_floats(op, arrays, allowed)
    require_same_shape(op, arrays)


def require_non_negative(op: str, name: str, value: Any) -> float:
    """A finite scalar >= 0."""
    value = require_finite_scalar(op, name, value)
    if value < 0:
        raise ValueError(f"{op}: {name} must be >= 0, got {value!r}")
    return value


def require_decay(op: str, name: str, value: Any) -> float:
    """A decay rate: finite, in [0, 1)."""
    value = require_finite_scalar(op, name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{op}: {name} must be in [0, 1), got {value!r}")
    return value


def require_positive(op: str, name: str, value: Any) -> float:
    """A finite scalar > 0."""
    value = require_finite_scalar(op, name, value)
    if value <= 0:
        raise ValueError(f"{op}: {name} must be > 0, got {value!r}")
    return value


def check_sgd_momentum_update(w: Any, dw: Any, v: Any, lr: Any, momentum: Any,
                              allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float]:
    """Return (lr, momentum) as floats; both must be finite and >= 0."""
    op = "sgd_momentum_update"
    _check_arrays(op, {"w": w, "dw": dw, "v": v}, allowed)
    return require_non_negative(op, "lr", lr), require_non_negative(op, "momentum", momentum)


def check_nesterov_update(w: Any, dw: Any, v: Any, lr: Any, momentum: Any, next_momentum: Any,
                          allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float, float]:
    """Return (lr, momentum, next_momentum) as floats; all must be finite and >= 0."""
    op = "nesterov_update"
    _check_arrays(op, {"w": w, "dw": dw, "v": v}, allowed)
    return (require_non_negative(op, "lr", lr), require_non_negative(op, "momentum", momentum),
            require_non_negative(op, "next_momentum", next_momentum))


def check_adam_update(w: Any, dw: Any, m: Any, v: Any, step_size: Any, beta1: Any, beta2: Any, epsilon: Any,
                      allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float, float, float]:
    """Return (step_size, beta1, beta2, epsilon) as floats: step_size and epsilon >= 0, betas in [0, 1)."""
    op = "adam_update"
    _check_arrays(op, {"w": w, "dw": dw, "m": m, "v": v}, allowed)
    return (require_non_negative(op, "step_size", step_size), require_decay(op, "beta1", beta1),
            require_decay(op, "beta2", beta2), require_non_negative(op, "epsilon", epsilon))


def check_adagrad_update(w: Any, dw: Any, h: Any, lr: Any, epsilon: Any,
                         allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float]:
    """Return (lr, epsilon) as floats; both must be finite and >= 0."""
    op = "adagrad_update"
    _check_arrays(op, {"w": w, "dw": dw, "h": h}, allowed)
    return require_non_negative(op, "lr", lr), require_non_negative(op, "epsilon", epsilon)


def check_rmsprop_update(w: Any, dw: Any, h: Any, lr: Any, decay: Any, epsilon: Any,
                         allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float, float]:
    """Return (lr, decay, epsilon) as floats: lr and epsilon >= 0, decay in [0, 1)."""
    op = "rmsprop_update"
    _check_arrays(op, {"w": w, "dw": dw, "h": h}, allowed)
    return (require_non_negative(op, "lr", lr), require_decay(op, "decay", decay),
            require_non_negative(op, "epsilon", epsilon))


def check_adadelta_update(w: Any, dw: Any, h: Any, u: Any, lr: Any, rho: Any, epsilon: Any,
                          allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float, float]:
    """Return (lr, rho, epsilon) as floats: lr >= 0, rho in [0, 1), epsilon > 0 (the first step divides
    sqrt(epsilon) by sqrt(h + epsilon), which must not be 0/0)."""
    op = "adadelta_update"
    _check_arrays(op, {"w": w, "dw": dw, "h": h, "u": u}, allowed)
    return require_non_negative(op, "lr", lr), require_decay(op, "rho", rho), require_positive(op, "epsilon", epsilon)
