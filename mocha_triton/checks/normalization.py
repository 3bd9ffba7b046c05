"""Argument checks for the normalization family (local response normalization and the power function);
shared by cpu_ref.normalization and kernels.normalization.

**Local response normalization** (Caffe's LRN layer, Mocha's LRNLayer) of ``x (N, C, H, W)``::

    scale = k + alpha / n * (sum of x**2 over the window of the element)
    y     = x * scale ** -beta

with ``pre = (size - 1) // 2`` and ``post = size - 1 - pre`` (equal for the odd sizes Caffe allows):

* region ``"across_channels"``: the window of channel ``c`` is channels ``c - pre ... c + post`` at the
  same pixel, zero padded past the channel range; ``n = size``.
* region ``"within_channel"``: the window of pixel ``(h, w)`` is the ``size x size`` square of rows
  ``h - pre ... h + post`` and columns ``w - pre ... w + post`` of the same channel, zero padded past
  the image; ``n = size * size`` whatever part of the square lies in the image (Caffe's mean pooling
  with ``pad = pre``, stride 1, counts the padding).

The backward reads the stored ``scale`` (Caffe's CPU code does the same) and ``y``::

    dx = dy * scale ** -beta - 2 * alpha * beta / n * x * (sum of dy * y / scale over the elements
                                                           whose window holds x)

Arguments: ``size`` a positive int, ``alpha >= 0`` and ``k > 0`` finite (so ``scale >= k > 0`` and
every output of finite inputs is finite), ``beta`` finite. A NaN or an infinity in ``x`` or ``dy``
follows IEEE arithmetic through the formulas: it reaches exactly the outputs whose window sums hold
it (both backends sum each window directly, so it reaches no others). One ``(n, c)`` plane has fewer
than 2**31 pixels (the kernels index inside a plane with int32). Outputs must not share memory with
the inputs nor with each other (``checks.common.require_distinct``): every element reads its
neighbours.

**Power** (Caffe's and Mocha's PowerLayer) of any array::

    y  = (shift + scale * x) ** power
    dx = dy * power * scale * (shift + scale * x) ** (power - 1)

elementwise, with NumPy's rules for ``**``: a negative base with a non-integer exponent gives NaN
(``-inf`` included, whatever the platform's NumPy does there), ``0 ** negative`` gives inf, anything
``** 0`` gives 1. The exponents are rounded to the arrays' dtype first (float32: ``2**24 + 1`` is the
even ``2**24``). When ``power == 0`` or ``scale == 0`` the output does not depend on x and ``dx = 0``
exactly. ``y`` may be ``x`` and ``dx`` may be ``dy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    require_choice,
    require_distinct,
    require_finite_scalar,
    require_float,
    require_floats,
    require_ndim,
    require_positive_int,
    require_same_dtype,
    require_same_shape,
)

LRN_REGIONS = ("across_channels", "within_channel")
MAX_PLANE = 2**31  # pixels of one (n, c) plane must be below this: in-plane offsets are int32
IN_PLACE = "every element reads its neighbours, so the op cannot work in place"


@dataclass(frozen=True)
class LRNSetting:
    """Sizes and parameters of one LRN call: input (n, c, h, w), window ``size`` with ``pre`` zeros
    before and ``post`` after, ``alpha``, ``beta``, ``k`` and the ``region``."""

    n: int
    c: int
    h: int
    w: int
    size: int
    alpha: float
    beta: float
    k: float
    region: str

    @property
    def pre(self) -> int:
        """Window elements before the centre: ``(size - 1) // 2``."""
        return (self.size - 1) // 2

    @property
    def post(self) -> int:
        """Window elements after the centre: ``size - 1 - pre``."""
        return self.size - 1 - self.pre

    @property
    def across(self) -> bool:
        return self.region == "across_channels"

    @property
    def divisor(self) -> int:
        """n of the formula: the number of window elements, ``size`` or ``size * size``."""
        return self.size if self.across else self.size * self.size

    @property
    def numel(self) -> int:
        return self.n * self.c * self.h * self.w


def _lrn_params(op: str, shape: tuple[int, ...], size: Any, alpha: Any, beta: Any, k: Any,
                region: Any) -> LRNSetting:
    size = require_positive_int(op, "size", size)
    alpha = require_finite_scalar(op, "alpha", alpha)
    if alpha < 0:
        raise ValueError(f"{op}: alpha must be >= 0, got {alpha!r}")
    beta = require_finite_scalar(op, "beta", beta)
    k = require_finite_scalar(op, "k", k)
    if k <= 0:
        raise ValueError(f"{op}: k must be > 0 (it keeps the scale positive), got {k!r}")
    require_choice(op, "region", region, LRN_REGIONS)
    n, c, h, w = shape
    if h * w >= MAX_PLANE:
        raise ValueError(f"{op}: planes of {h}x{w} pixels are too large (int32 offsets inside a plane)")
    return LRNSetting(n, c, h, w, size, alpha, beta, k, region)


def check_lrn_forward(x: Any, y: Any, scale: Any, size: Any, alpha: Any, beta: Any, k: Any, region: Any,
                      allowed: tuple[str, ...] = FLOAT_DTYPES) -> LRNSetting:
    """Validate ``lrn_forward``; return the call's :class:`LRNSetting`."""
    op = "lrn_forward"
    named = {"x": x, "y": y, "scale": scale}
    require_floats(op, named, allowed)
    require_ndim(op, "x", x, 4)
    shape = require_same_shape(op, named)
    setting = _lrn_params(op, shape, size, alpha, beta, k, region)
    require_distinct(op, {"y": y, "scale": scale}, {"x": x}, why=IN_PLACE)
    return setting


def check_lrn_backward(x: Any, y: Any, scale: Any, dy: Any, dx: Any, size: Any, alpha: Any, beta: Any,
                       region: Any, allowed: tuple[str, ...] = FLOAT_DTYPES) -> LRNSetting:
    """Validate ``lrn_backward``; return the call's :class:`LRNSetting` (``k`` is not needed: it is in
    the stored scale; the setting holds 1.0)."""
    op = "lrn_backward"
    named = {"x": x, "y": y, "scale": scale, "dy": dy, "dx": dx}
    require_floats(op, named, allowed)
    require_ndim(op, "x", x, 4)
    shape = require_same_shape(op, named)
    setting = _lrn_params(op, shape, size, alpha, beta, 1.0, region)
    require_distinct(op, {"dx": dx}, {"x": x, "y": y, "scale": scale, "dy": dy}, why=IN_PLACE)
    return setting


def _power_params(op: str, power: Any, scale: Any, shift: Any) -> tuple[float, float, float]:
    return (require_finite_scalar(op, "power", power), require_finite_scalar(op, "scale", scale),
            require_finite_scalar(op, "shift", shift))


def check_power_forward(x: Any, y: Any, power: Any, scale: Any, shift: Any,
                        allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float, float]:
    """Validate ``power_forward``; return (power, scale, shift) as floats."""
    op = "power_forward"
    require_float(op, "x", x, allowed)
    require_float(op, "y", y, allowed)
    require_same_dtype(op, {"x": x, "y": y})
    require_same_shape(op, {"x": x, "y": y})
    return _power_params(op, power, scale, shift)


def check_power_backward(x: Any, dy: Any, dx: Any, power: Any, scale: Any, shift: Any,
                         allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float, float]:
    """Validate ``power_backward``; return (power, scale, shift) as floats."""
    op = "power_backward"
    named = {"x": x, "dy": dy, "dx": dx}
    require_floats(op, named, allowed)
    require_same_shape(op, named)
    return _power_params(op, power, scale, shift)


def power_has_zero_gradient(power: float, scale: float) -> bool:
    """The output does not depend on x (``power == 0`` or ``scale == 0``): ``dx = 0`` exactly."""
    return power == 0 or scale == 0
