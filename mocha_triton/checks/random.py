"""Argument checks for random fills and dropout; shared by cpu_ref.random and kernels.random.

Limits of the random stream (see :mod:`mocha_triton.cpu_ref.random`): the seed is an int in
``[0, 2**63)`` (Philox's 64-bit key; the Triton side passes it as a signed 64-bit kernel argument),
and element ``i`` of a fill uses the counter ``offset + i``, a signed 64-bit integer in the kernel, so
``offset >= 0`` and ``offset + numel <= 2**63``.
"""

from __future__ import annotations

import operator
from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    numel,
    require_finite_scalar,
    require_float,
    require_floats,
    require_same_shape,
)

COUNTER_LIMIT = 2**63  # seeds and counters (offset + element index) stay below this


def _int(op: str, name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int, got {value!r}") from None


def _seed_and_offset(op: str, y: Any, seed: Any, offset: Any) -> tuple[int, int]:
    seed = _int(op, "seed", seed)
    if not 0 <= seed < COUNTER_LIMIT:
        raise ValueError(f"{op}: seed must be in [0, 2**63), got {seed}")
    offset = _int(op, "offset", offset)
    if offset < 0:
        raise ValueError(f"{op}: offset must be >= 0, got {offset}")
    if offset + numel(y) > COUNTER_LIMIT:
        raise ValueError(f"{op}: offset + y.size = {offset + numel(y)} exceeds the counter limit 2**63")
    return seed, offset


def check_uniform_fill(y: Any, low: Any, high: Any, seed: Any, offset: Any = 0,
                       allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float, int, int]:
    """Return (low, high, seed, offset); low <= high, both finite."""
    op = "uniform_fill"
    require_float(op, "y", y, allowed)
    low = require_finite_scalar(op, "low", low)
    high = require_finite_scalar(op, "high", high)
    if high < low:
        raise ValueError(f"{op}: high must be >= low, got low={low!r}, high={high!r}")
    return (low, high, *_seed_and_offset(op, y, seed, offset))


def check_normal_fill(y: Any, mean: Any, std: Any, seed: Any, offset: Any = 0,
                      allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float, int, int]:
    """Return (mean, std, seed, offset); std >= 0, both finite."""
    op = "normal_fill"
    require_float(op, "y", y, allowed)
    mean = require_finite_scalar(op, "mean", mean)
    std = require_finite_scalar(op, "std", std)
    if std < 0:
        raise ValueError(f"{op}: std must be >= 0, got {std!r}")
    return (mean, std, *_seed_and_offset(op, y, seed, offset))


def _check_dropout(op: str, src_name: str, src: Any, rand: Any, dst_name: str, dst: Any, ratio: Any, scale: Any,
                   allowed: tuple[str, ...]) -> tuple[float, float]:
    named = {src_name: src, "rand": rand, dst_name: dst}
    require_floats(op, named, allowed)
    require_same_shape(op, named)
    ratio = require_finite_scalar(op, "ratio", ratio)
    if not 0 < ratio < 1:
        raise ValueError(f"{op}: ratio must be in (0, 1), got {ratio!r}")
    return ratio, require_finite_scalar(op, "scale", scale)


def check_dropout_forward(x: Any, rand: Any, y: Any, ratio: Any, scale: Any,
                          allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float]:
    """Return (ratio, scale); ratio in (0, 1), scale finite."""
    return _check_dropout("dropout_forward", "x", x, rand, "y", y, ratio, scale, allowed)


def check_dropout_backward(dy: Any, rand: Any, dx: Any, ratio: Any, scale: Any,
                           allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[float, float]:
    """Return (ratio, scale); ratio in (0, 1), scale finite."""
    return _check_dropout("dropout_backward", "dy", dy, rand, "dx", dx, ratio, scale, allowed)
