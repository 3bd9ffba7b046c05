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


def require_floats(op: str, named: dict[str, Any], allowed: Sequence[str] = FLOAT_DTYPES) -> str:
    """Every array of ``named`` (None entries skipped) has one of the ``allowed`` float dtypes, all the
    same one; return it."""
    for name, a in named.items():
        if a is not None:
            require_float(op, name, a, allowed)
    return require_same_dtype(op, named)


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


def as_int(value: Any) -> int | None:
    """``value`` as a Python int if it is an integer (int, NumPy integer; not bool), else None."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def pair(op: str, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """Normalise an int or an (h, w) pair of ints, each >= minimum."""
    if as_int(value) is not None:
        value = (value, value)
    try:
        h, w = value
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be an int or a pair (h, w) of ints, got {value!r}") from None
    h, w = as_int(h), as_int(w)
    if h is None or w is None:
        raise TypeError(f"{op}: {name} must hold ints, got {value!r}")
    if h < minimum or w < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum} in both dimensions, got {(h, w)}")
    return h, w


def require_choice(op: str, name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{op}: {name} must be one of {tuple(choices)}, got {value!r}")


def require_positive_int(op: str, name: str, value: Any) -> int:
    number = as_int(value)
    if number is None or number < 1:
        raise ValueError(f"{op}: {name} must be a positive int, got {value!r}")
    return number


def require_finite_scalar(op: str, name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a real scalar, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{op}: {name} must be finite, got {value!r}")
    return v


def _byte_range(a: Any) -> tuple[str, int, int] | None:
    """(device, first byte, one past the last byte) of the memory a NumPy array or a torch tensor can
    touch (its elements and the gaps between them), or None for an empty or unknown object."""
    if numel(a) == 0:
        return None
    if hasattr(a, "data_ptr") and hasattr(a, "stride"):  # torch: strides are in elements, never negative
        start = int(a.data_ptr())
        last = sum((int(size) - 1) * int(step) for size, step in zip(a.shape, a.stride()))
        return str(a.device), start, start + (last + 1) * int(a.element_size())
    if hasattr(a, "__array_interface__"):  # NumPy (strides in bytes, possibly negative)
        from numpy.lib.array_utils import byte_bounds

        low, high = byte_bounds(a)
        return "cpu", int(low), int(high)
    return None


def _share_memory(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` may share memory: exact for two NumPy arrays (``np.shares_memory``,
    which tells interleaved views apart); otherwise whether their byte ranges overlap on one device
    (exact for contiguous tensors, cautious for strided ones)."""
    import numpy as np

    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        try:
            return bool(np.shares_memory(a, b, max_work=10_000))
        except np.exceptions.TooHardError:  # strides too tangled to decide cheaply: assume the worst
            return bool(np.may_share_memory(a, b))
    ra, rb = _byte_range(a), _byte_range(b)
    if ra is None or rb is None or ra[0] != rb[0]:
        return False
    return ra[1] < rb[2] and rb[1] < ra[2]


def require_distinct(op: str, outputs: dict[str, Any], inputs: dict[str, Any], why: str = "") -> None:
    """Every output shares no memory with any input nor with any output before it (dict order).

    For ops that cannot run in place (an output element is written while other elements still read the
    inputs, or outputs overwrite each other). Arguments are NumPy arrays or torch tensors; None entries
    and empty arrays are skipped; inputs may alias each other. Memory is compared, not only the first
    element's address: two NumPy arrays are tested with ``np.shares_memory`` (a view of part of an
    array, or of the same buffer, is caught; interleaved views that touch disjoint elements pass);
    torch tensors (and a tensor against an array) by the overlap of the byte ranges they span on the
    same device, which catches views of one storage and separate storages over one buffer (e.g.
    ``torch.from_numpy``). Raises ``ValueError("<op>: <output> must not share memory with <other>
    (<why>)")``; ``why`` (optional) says why the op needs distinct memory.
    """
    reason = f" ({why})" if why else ""
    seen = {name: a for name, a in inputs.items() if a is not None}
    for name, a in outputs.items():
        if a is None:
            continue
        for other, b in seen.items():
            if _share_memory(a, b):
                raise ValueError(f"{op}: {name} must not share memory with {other}{reason}")
        seen[name] = a
