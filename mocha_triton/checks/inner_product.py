"""Argument checks for the inner-product (fully connected) family; shared by cpu_ref and kernels.

Sizes are named as in the contract: ``N`` samples, ``K`` input features, ``O`` outputs. Weights are
``(O, K)``, so ``y = neuron(x @ w.T + b)``. Every check returns the sizes it derived.
"""

from __future__ import annotations

from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    require_choice,
    require_finite_scalar,
    require_floats,
    require_ndim,
    require_shape,
    shape_of,
)
from mocha_triton.contract import NEURONS


def _require_floats(op: str, named: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """Each array (None skipped) has an allowed float dtype, and all share one."""
    require_floats(op, named, allowed)


def _require_matrices(op: str, named: dict[str, Any]) -> None:
    for name, a in named.items():
        require_ndim(op, name, a, 2)


def _features_match(op: str, data_name: str, data: Any, w: Any) -> None:
    """The feature (last) axis of ``data`` equals the K of ``w`` (O, K)."""
    k_data, k_w = shape_of(data)[1], shape_of(w)[1]
    if k_data != k_w:
        raise ValueError(f"{op}: {data_name} has {k_data} features but w expects {k_w} "
                         f"(w has shape {shape_of(w)})")


def check_inner_product_forward(x: Any, w: Any, b: Any, y: Any, neuron: str = "identity",
                                negative_slope: float = 0.01,
                                allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, int, int]:
    """Return (N, K, O) for x (N, K), w (O, K), b (O,) or None, y (N, O)."""
    op = "inner_product_forward"
    _require_floats(op, {"x": x, "w": w, "b": b, "y": y}, allowed)
    _require_matrices(op, {"x": x, "w": w})
    _features_match(op, "x", x, w)
    n, k = shape_of(x)
    o = shape_of(w)[0]
    if b is not None:
        require_shape(op, "b", b, (o,))
    require_shape(op, "y", y, (n, o))
    require_choice(op, "neuron", neuron, NEURONS)
    require_finite_scalar(op, "negative_slope", negative_slope)
    return n, k, o


def check_inner_product_backward_data(dy: Any, w: Any, dx: Any,
                                      allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, int, int]:
    """Return (N, K, O) for dy (N, O), w (O, K), dx (N, K)."""
    op = "inner_product_backward_data"
    _require_floats(op, {"dy": dy, "w": w, "dx": dx}, allowed)
    _require_matrices(op, {"dy": dy, "w": w})
    n, o = shape_of(dy)
    o_w, k = shape_of(w)
    if o != o_w:
        raise ValueError(f"{op}: dy has {o} outputs but w has {o_w} rows (w has shape {shape_of(w)})")
    require_shape(op, "dx", dx, (n, k))
    return n, k, o


def check_inner_product_backward_weight(x: Any, dy: Any, dw: Any,
                                        allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, int, int]:
    """Return (N, K, O) for x (N, K), dy (N, O), dw (O, K)."""
    op = "inner_product_backward_weight"
    _require_floats(op, {"x": x, "dy": dy, "dw": dw}, allowed)
    _require_matrices(op, {"x": x, "dy": dy})
    n, k = shape_of(x)
    n_dy, o = shape_of(dy)
    if n != n_dy:
        raise ValueError(f"{op}: x has {n} samples but dy has {n_dy}")
    require_shape(op, "dw", dw, (o, k))
    return n, k, o


def check_inner_product_backward_bias(dy: Any, db: Any,
                                      allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, int]:
    """Return (N, O) for dy (N, O), db (O,)."""
    op = "inner_product_backward_bias"
    _require_floats(op, {"dy": dy, "db": db}, allowed)
    _require_matrices(op, {"dy": dy})
    n, o = shape_of(dy)
    require_shape(op, "db", db, (o,))
    return n, o
