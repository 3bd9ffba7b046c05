"""Argument checks for the index family (argmax_forward, index_to_onehot); shared by cpu_ref.index and
kernels.index.

Both ops work along axis 1 of ``(N, C, *S)`` blobs: ``C`` classes at each of the ``N * prod(S)``
*positions*. Each check returns an :class:`IndexGeometry`.

Indices travel as floats (Mocha and Caffe store class indices as floats): the argmax output holds them
in the dtype of ``x``, and a label may be a float of the dtype of ``y`` (or int32/int64). Since
float32 represents every integer only up to ``2**24``, a float32 index tensor is refused when ``C``
is larger than that.

:func:`check_index_to_onehot` reads label **values**, on the host: every label must be an integral
class index in ``[0, C)``. On the Triton side that is a device-to-host copy of the label, one value per
position (C times smaller than the one-hot output the op writes); it buys the same error message on
both backends and kernels that can trust their labels (the loss family checks its labels the same way).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    dtype_name,
    require_array,
    require_float,
    require_min_ndim,
    require_same_dtype,
    shape_of,
)
from mocha_triton.checks.loss import LABEL_INT_DTYPES, require_class_indices

FLOAT32_EXACT_INTEGERS = 2**24  # every integer in [0, 2**24] is exactly a float32


@dataclass(frozen=True)
class IndexGeometry:
    """Sizes of one call: the class axis of ``(n, c, *spatial)``; ``s`` is ``prod(spatial)`` (1 if none)."""

    n: int
    c: int
    spatial: tuple[int, ...]

    @property
    def s(self) -> int:
        return math.prod(self.spatial)

    @property
    def positions(self) -> int:
        """N * prod(S): the number of places with one index each."""
        return self.n * self.s

    @property
    def index_shape(self) -> tuple[int, ...]:
        """(N, 1, *S): the shape of an index tensor with the class axis kept."""
        return (self.n, 1, *self.spatial)


def _geometry(op: str, name: str, a: Any, dtype: str) -> IndexGeometry:
    require_min_ndim(op, name, a, 2)
    n, c, *spatial = shape_of(a)
    if c == 0:
        raise ValueError(f"{op}: {name} has no classes (axis 1 has size 0), got shape {shape_of(a)}")
    if dtype == "float32" and c > FLOAT32_EXACT_INTEGERS:
        raise ValueError(f"{op}: {name} has {c} classes; float32 holds class indices exactly only up to "
                         f"2**24 = {FLOAT32_EXACT_INTEGERS}")
    return IndexGeometry(n, c, tuple(spatial))


def check_argmax_forward(x: Any, y: Any, allowed: tuple[str, ...] = FLOAT_DTYPES) -> IndexGeometry:
    """x (N, C, *S) and y (N, 1, *S) of one float dtype; return the geometry of x."""
    op = "argmax_forward"
    require_float(op, "x", x, allowed)
    require_float(op, "y", y, allowed)
    dtype = require_same_dtype(op, {"x": x, "y": y})
    g = _geometry(op, "x", x, dtype)
    if shape_of(y) != g.index_shape:
        raise ValueError(f"{op}: y has shape {shape_of(y)}, expected {g.index_shape} (x's shape with 1 on axis 1)")
    return g


def check_index_to_onehot(label: Any, y: Any, allowed: tuple[str, ...] = FLOAT_DTYPES) -> IndexGeometry:
    """y (N, C, *S) float; label (N, *S) or (N, 1, *S), of y's dtype or int32/int64, holding integral
    class indices in [0, C) (checked on the host). Return the geometry of y."""
    op = "index_to_onehot"
    dtype = require_float(op, "y", y, allowed)
    g = _geometry(op, "y", y, dtype)
    require_array(op, "label", label)
    label_dtype = dtype_name(label)
    if label_dtype != dtype and label_dtype not in LABEL_INT_DTYPES:
        raise TypeError(f"{op}: label has dtype {label_dtype}; expected {dtype} (the dtype of y) or one of "
                        f"{LABEL_INT_DTYPES}")
    flat_shape = (g.n, *g.spatial)
    if shape_of(label) not in (flat_shape, g.index_shape):
        raise ValueError(f"{op}: label has shape {shape_of(label)}, expected {flat_shape} or {g.index_shape}")
    require_class_indices(op, label, label_dtype == dtype, g.c)
    return g
