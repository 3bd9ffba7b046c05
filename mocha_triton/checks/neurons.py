"""Argument checks for the neurons family; shared by cpu_ref.neurons and kernels.neurons."""

from __future__ import annotations

from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    require_choice,
    require_finite_scalar,
    require_float,
    require_same_dtype,
    require_same_shape,
)
from mocha_triton.contract import NEURONS


def check_neuron_forward(x: Any, y: Any, neuron: Any, negative_slope: Any,
                         allowed: tuple[str, ...] = FLOAT_DTYPES) -> float:
    """Validate ``neuron_forward``; return ``negative_slope`` as a float."""
    op = "neuron_forward"
    require_float(op, "x", x, allowed)
    require_float(op, "y", y, allowed)
    require_same_dtype(op, {"x": x, "y": y})
    require_same_shape(op, {"x": x, "y": y})
    require_choice(op, "neuron", neuron, NEURONS)
    return require_finite_scalar(op, "negative_slope", negative_slope)


def check_neuron_backward(y: Any, dy: Any, dx: Any, neuron: Any, negative_slope: Any,
                          allowed: tuple[str, ...] = FLOAT_DTYPES) -> float:
    """Validate ``neuron_backward``; return ``negative_slope`` as a float.

    The derivative is read from the stored output, so leaky_relu needs ``negative_slope >= 0``: with
    a negative slope, y > 0 no longer tells whether x was positive.
    """
    op = "neuron_backward"
    require_float(op, "y", y, allowed)
    require_float(op, "dy", dy, allowed)
    require_float(op, "dx", dx, allowed)
    require_same_dtype(op, {"y": y, "dy": dy, "dx": dx})
    require_same_shape(op, {"y": y, "dy": dy, "dx": dx})
    require_choice(op, "neuron", neuron, NEURONS)
    slope = require_finite_scalar(op, "negative_slope", negative_slope)
    if neuron == "leaky_relu" and slope < 0:
        raise ValueError(f"{op}: negative_slope must be >= 0 for leaky_relu (the derivative is read from "
                         f"the sign of y), got {negative_slope!r}")
    return slope
