"""Generic checks on array-like arguments (NumPy arrays or torch tensors).

Only ``.shape``, ``.dtype`` and ``.ndim``/``.dim()`` are read, so these helpers serve both backends.
Every error names the op, the argument and the problem.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

FLOAT_DTYPES = ("float32", "float64")


_DTYPE_NAMES: dict[Any, str] = {}  # dtype object -> name; checks run on every op call, so cache


def dtype_name(a: Any) -> str:
    """'float32', 'int64', ... for a NumPy array or a torch tensor."""
    dtype = a.dtype
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return name


def shape_of(a: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in a.shape)


def numel(a: Any) -> int:
    return math.prod(shape_of(a))


def require_array(op: str, name: str, a: Any) -> None:
    if not (hasattr(a, "shape") and hasattr(a, "dtype")):
        raise TypeError(f"{op}: {name} must be an array/tensor, got {type(a).__name__}")


def require_float(op: str, name: str, a: Any, allowed: Sequence[str] = FLOAT_DTYPES) -> str:
    """Check that ``a`` is an array of one of the ``allowed`` float dtypes; return the dtype name."""
    require_array(op, name, a)
    dt = dtype_name(a)
    if dt not in allowed:
        raise TypeError(f"{op}: {name} has dtype {dt}; expected one of {tuple(allowed)}")
    return dt


def require_same_dtype(op: str, named: dict[str, Any]) -> str:
    """All the given arrays (None entries skipped) share one float dtype; return it."""
    dts = {name: dtype_name(a) for name, a in named.items() if a is not None}
    if len(set(dts.values())) > 1:
        listing = ", ".join(f"{n}={d}" for n, d in dts.items())
        raise TypeError(f"{op}: all float arguments must share one dtype, got {listing}")
    return next(iter(dts.values()))


def require_ndim(op: str, name: str, a: Any, ndim: int | tuple[int, ...]) -> None:
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if len(a.shape) not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise ValueError(f"{op}: {name} must be {want}-D, got shape {shape_of(a)}")


def require_min_ndim(op: str, name: str, a: Any, ndim: int) -> None:
    if len(a.shape) < ndim:
        raise ValueError(f"{op}: {name} must have at least {ndim} dimensions, got shape {shape_of(a)}")


def require_shape(op: str, name: str, a: Any, shape: Sequence[int]) -> None:
    if shape_of(a) != tuple(shape):
        raise ValueError(f"{op}: {name} has shape {shape_of(a)}, expected {tuple(shape)}")


def require_same_shape(op: str, named: dict[str, Any]) -> tuple[int, ...]:
    shapes = {name: shape_of(a) for name, a in named.items()}
    if len(set(shapes.values())) > 1:
        listing = ", ".join(f"{n}={s}" for n, s in shapes.items())
        raise ValueError(f"{op}: arguments must have the same shape, got {listing}")
    return next(iter(shapes.values()))


def _as_int(value: Any) -> int | None:
    """``value`` as a Python int if it is an integer (int, NumPy integer; not bool), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def pair(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """Normalise an int or an (h, w) pair of ints, each >= minimum."""
    if _as_int(value) is not None:
        value = (value, value)
    try:
        h, w = value
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be an int or a pair (h, w) of ints, got {value!r}") from None
    h, w = _as_int(h), _as_int(w)
    if h is None or w is None:
        raise TypeError(f"{op}: {name} must hold ints, got {value!r}")
    if h < minimum or w < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum} in both dimensions, got {(h, w)}")
    return h, w


def require_choice(op: str, name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{op}: {name} must be one of {tuple(choices)}, got {value!r}")


def require_positive_int(op: str, name: str, value: Any) -> int:
    as_int = _as_int(value)
    if as_int is None or as_int < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    return as_int


def require_finite_scalar(op: str, name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a real scalar, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{op}: {name} must be finite, got {value!r}")
    return v
