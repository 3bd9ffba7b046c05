"""Argument checks for the softmax family; shared by cpu_ref.softmax and kernels.softmax."""

from __future__ import annotations

import math
from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    require_float,
    require_min_ndim,
    require_same_dtype,
    require_same_shape,
    shape_of,
)


def _ncs(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(N, C, S) of an (N, C, *S) shape, S the product of the trailing sizes (1 for a 2-D shape)."""
    return shape[0], shape[1], math.prod(shape[2:])


def check_softmax_forward(x: Any, y: Any, allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, int, int]:
    """Validate ``softmax_forward``; return (N, C, S) of the (N, C, *S) input."""
    op = "softmax_forward"
    require_float(op, "x", x, allowed)
    require_float(op, "y", y, allowed)
    require_same_dtype(op, {"x": x, "y": y})
    require_min_ndim(op, "x", x, 2)
    require_same_shape(op, {"x": x, "y": y})
    return _ncs(shape_of(x))


def check_softmax_backward(y: Any, dy: Any, dx: Any,
                           allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, int, int]:
    """Validate ``softmax_backward``; return (N, C, S) of the (N, C, *S) arrays."""
    op = "softmax_backward"
    require_float(op, "y", y, allowed)
    require_float(op, "dy", dy, allowed)
    require_float(op, "dx", dx, allowed)
    require_same_dtype(op, {"y": y, "dy": dy, "dx": dx})
    require_min_ndim(op, "y", y, 2)
    require_same_shape(op, {"y": y, "dy": dy, "dx": dx})
    return _ncs(shape_of(y))
