"""Argument checks for the transport family (entropic optimal transport by Sinkhorn's iteration); shared
by cpu_ref.transport and kernels.transport.

``sinkhorn_forward`` compares N predicted histograms ``pred`` (N, P) with N target histograms ``target``
(N, Q) under a ground cost ``cost`` (P, Q); ``sinkhorn_backward`` turns the row scaling ``u`` it kept
into the gradient. Shapes, dtypes, parameters and aliasing are checked: no output may share memory with
another argument (the ops write u and v while they still read the histograms, in an order that differs
between the backends and the Triton variants), except that sinkhorn_backward may write its result over
``u`` itself. The *values* of the histograms are not checked (that would cost a copy to the host on a GPU
at every forward), see :mod:`mocha_triton.cpu_ref.transport` for what the iteration gives on inputs that
are not histograms of equal mass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    require_distinct,
    require_finite_scalar,
    require_float,
    require_ndim,
    require_positive_int,
    require_same_dtype,
    require_same_shape,
    require_shape,
    shape_of,
)


@dataclass(frozen=True)
class TransportSizes:
    """Sizes of one Sinkhorn call: ``n`` samples, ``p`` predicted and ``q`` target bins."""

    n: int
    p: int
    q: int


def _require_positive_finite(op: str, name: str, value: Any) -> float:
    v = require_finite_scalar(op, name, value)
    if isinstance(value, bool) or v <= 0.0:
        raise ValueError(f"{op}: {name} must be > 0, got {value!r}")
    return v


def _same_view(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` (NumPy arrays or torch tensors of one shape) view the same elements in the same
    order: the same first address and the same strides."""
    if hasattr(a, "data_ptr") and hasattr(b, "data_ptr"):
        return (str(a.device), a.data_ptr(), tuple(a.stride())) == (str(b.device), b.data_ptr(), tuple(b.stride()))
    if hasattr(a, "__array_interface__") and hasattr(b, "__array_interface__"):
        return (a.__array_interface__["data"][0], a.strides) == (b.__array_interface__["data"][0], b.strides)
    return False


def check_sinkhorn_forward(pred: Any, target: Any, cost: Any, u: Any, v: Any, sample_loss: Any, loss: Any,
                           lambda_: Any, n_iter: Any,
                           allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[TransportSizes, float, int]:
    """Return (sizes, lambda_, n_iter)."""
    op = "sinkhorn_forward"
    named = {"pred": pred, "target": target, "cost": cost, "u": u, "v": v, "sample_loss": sample_loss,
             "loss": loss}
    for name, array in named.items():
        require_float(op, name, array, allowed)
    require_same_dtype(op, named)
    require_ndim(op, "pred", pred, 2)
    require_ndim(op, "target", target, 2)
    (n, p), (n_target, q) = shape_of(pred), shape_of(target)
    if n < 1 or p < 1:
        raise ValueError(f"{op}: pred must be (N, P) with N >= 1 samples and P >= 1 bins, got shape {(n, p)}")
    if q < 1:
        raise ValueError(f"{op}: target must be (N, Q) with Q >= 1 bins, got shape {(n_target, q)}")
    if n_target != n:
        raise ValueError(f"{op}: target holds {n_target} samples but pred holds {n} (shapes {(n_target, q)} "
                         f"and {(n, p)})")
    require_shape(op, "cost", cost, (p, q))
    require_shape(op, "u", u, (n, p))
    require_shape(op, "v", v, (n, q))
    require_shape(op, "sample_loss", sample_loss, (n,))
    require_shape(op, "loss", loss, (1,))
    lam = _require_positive_finite(op, "lambda_", lambda_)
    n_iter = require_positive_int(op, "n_iter", n_iter)
    require_distinct(op, {"u": u, "v": v, "sample_loss": sample_loss, "loss": loss},
                     {"pred": pred, "target": target, "cost": cost},
                     why="the outputs are written while the other arguments may still be read")
    return TransportSizes(n, p, q), lam, n_iter


def check_sinkhorn_backward(u: Any, dpred: Any, lambda_: Any, scale: Any, center: Any,
                            allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, int, float, bool]:
    """Return (N, D, coef, center) with ``coef = scale / (lambda_ * N)`` the factor of the log-scaling."""
    op = "sinkhorn_backward"
    require_float(op, "u", u, allowed)
    require_float(op, "dpred", dpred, allowed)
    require_same_dtype(op, {"u": u, "dpred": dpred})
    require_ndim(op, "u", u, 2)
    require_same_shape(op, {"u": u, "dpred": dpred})
    n, d = shape_of(u)
    if n < 1 or d < 1:
        raise ValueError(f"{op}: u must be (N, D) with N >= 1 and D >= 1, got shape {(n, d)}")
    lam = _require_positive_finite(op, "lambda_", lambda_)
    s = require_finite_scalar(op, "scale", scale)
    if not isinstance(center, bool):
        raise TypeError(f"{op}: center must be a bool, got {center!r}")
    coef = s / (lam * n)
    if not math.isfinite(coef):
        raise ValueError(f"{op}: scale / (lambda_ * N) = {coef} is not finite")
    if not _same_view(u, dpred):
        # The Triton kernel reads a whole row (for its mean) before writing it: a shifted view would see rows
        # that another program has already overwritten.
        require_distinct(op, {"dpred": dpred}, {"u": u}, why="it may be u itself, but not overlap it otherwise")
    return n, d, coef, center
