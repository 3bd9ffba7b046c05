"""Argument checks for the norm constraints; shared by cpu_ref.constraints and kernels.constraints."""

from __future__ import annotations

import math
from typing import Any

from mocha_triton.checks.common import FLOAT_DTYPES, require_finite_scalar, require_float, require_min_ndim, shape_of


def check_l2_norm_constraint(w: Any, threshold: Any,
                             allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, int, float]:
    """Return (units, unit_size, threshold).

    A parameter of shape (U, *rest) with at least two dimensions has U units of prod(rest) elements
    (a row each in C order); a 1-D parameter of shape (K,) is one unit of K elements.
    """
    op = "l2_norm_constraint"
    require_float(op, "w", w, allowed)
    require_min_ndim(op, "w", w, 1)
    threshold = require_finite_scalar(op, "threshold", threshold)
    if threshold <= 0:
        raise ValueError(f"{op}: threshold must be > 0, got {threshold!r}")
    shape = shape_of(w)
    if len(shape) == 1:
        return 1, shape[0], threshold
    return shape[0], math.prod(shape[1:]), threshold
