"""Argument checks for the loss family; shared by cpu_ref.loss and kernels.loss.

The ops (softmax_loss_forward, softmax_loss_backward, multinomial_logistic_loss_forward,
accuracy_forward) all take scores ``x`` (or probabilities ``prob``) of shape ``(N, C, *S)`` and a
``label`` of shape ``(N, *S)`` or ``(N, 1, *S)``. The soft-label softmax loss
(softlabel_softmax_loss_forward/backward) takes a float ``target`` of the shape of ``x`` instead, whose
values are not checked (a distribution over C at each position is expected). Each check returns a
:class:`LossGeometry`.

Besides shapes and dtypes these checks read **values**, on the host:

* every label must be an integral class index in ``[0, C)``;
* class weights must be finite and non-negative, and not all zero when they are normalised.

On the Triton side that means copying the label (and the C class weights) to the host: a copy, not
compute. Labels may be stored as floats of the dtype of ``x`` (like Caffe/Mocha HDF5 files) or as
int32/int64.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    dtype_name,
    numel,
    require_array,
    require_choice,
    require_finite_scalar,
    require_float,
    require_floats,
    require_min_ndim,
    require_same_dtype,
    require_shape,
    shape_of,
)
from mocha_triton.contract import NORMALIZE_MODES

LABEL_INT_DTYPES = ("int32", "int64")


@dataclass(frozen=True)
class LossGeometry:
    """Sizes of one loss call: ``x`` is ``(n, c, *spatial)``; ``s`` is ``prod(spatial)`` (1 if none)."""

    n: int
    c: int
    spatial: tuple[int, ...]

    @property
    def s(self) -> int:
        size = 1
        for d in self.spatial:
            size *= d
        return size

    @property
    def positions(self) -> int:
        """N * prod(S): the number of labelled positions, the loss normaliser."""
        return self.n * self.s

    @property
    def position_shape(self) -> tuple[int, ...]:
        """(N, *S): the shape of ``lse`` and of a label without the channel axis."""
        return (self.n, *self.spatial)


def host_values(a: Any) -> np.ndarray:
    """A NumPy view or host copy of a NumPy array or torch tensor (torch: ``detach().cpu().numpy()``)."""
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _geometry(op: str, name: str, x: Any) -> LossGeometry:
    require_min_ndim(op, name, x, 2)
    if numel(x) == 0:
        raise ValueError(f"{op}: {name} must not be empty, got shape {shape_of(x)}")
    n, c, *spatial = shape_of(x)
    return LossGeometry(n, c, tuple(spatial))


def _check_label(op: str, label: Any, g: LossGeometry, float_dtype: str, values: bool = True) -> None:
    """Dtype, shape ((N, *S) or (N, 1, *S)) and, with ``values``, values (integral, in [0, C)) of a label."""
    require_array(op, "label", label)
    dt = dtype_name(label)
    if dt != float_dtype and dt not in LABEL_INT_DTYPES:
        raise TypeError(f"{op}: label has dtype {dt}; expected {float_dtype} (the dtype of the scores) "
                        f"or one of {LABEL_INT_DTYPES}")
    flat_shape, channel_shape = g.position_shape, (g.n, 1, *g.spatial)
    if shape_of(label) not in (flat_shape, channel_shape):
        raise ValueError(f"{op}: label has shape {shape_of(label)}, expected {flat_shape} or {channel_shape}")
    if values:
        require_class_indices(op, label, dt == float_dtype, g.c)


def require_class_indices(op: str, label: Any, stored_as_float: bool, c: int) -> None:
    """The values of a label array are class indices in [0, c), integral when ``stored_as_float`` (a copy
    of the label to the host on a GPU)."""
    values = host_values(label).reshape(-1)
    if stored_as_float:
        with np.errstate(invalid="ignore"):
            not_integral = ~(np.isfinite(values) & (np.floor(values) == values))
        if not_integral.any():
            bad = values[np.argmax(not_integral)].item()
            raise ValueError(f"{op}: label holds {bad!r}, which is not an integral class index")
    out_of_range = (values < 0) | (values >= c)
    if out_of_range.any():
        bad = values[np.argmax(out_of_range)].item()
        raise ValueError(f"{op}: label holds {bad!r}, outside the class range [0, {c})")


def _check_class_weights(op: str, class_weights: Any, g: LossGeometry, normalize: str) -> None:
    """(C,) finite non-negative weights; with normalize 'local'/'global' they must not sum to zero."""
    if class_weights is None:
        return
    require_shape(op, "class_weights", class_weights, (g.c,))
    values = host_values(class_weights)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{op}: class_weights must be finite")
    if np.any(values < 0):
        raise ValueError(f"{op}: class_weights must be non-negative, found {values[np.argmax(values < 0)].item()!r}")
    if normalize != "no" and not np.any(values > 0):
        raise ValueError(f"{op}: class_weights are all zero, so normalize={normalize!r} cannot rescale them "
                         f"to sum to C")


def check_softmax_loss_forward(x: Any, label: Any, class_weights: Any, lse: Any, loss: Any,
                               normalize: str = "local",
                               allowed: tuple[str, ...] = FLOAT_DTYPES) -> LossGeometry:
    op = "softmax_loss_forward"
    floats = {"x": x, "class_weights": class_weights, "lse": lse, "loss": loss}
    dtype = require_floats(op, floats, allowed)
    g = _geometry(op, "x", x)
    require_choice(op, "normalize", normalize, NORMALIZE_MODES)
    _check_label(op, label, g, dtype)
    _check_class_weights(op, class_weights, g, normalize)
    require_shape(op, "lse", lse, g.position_shape)
    require_shape(op, "loss", loss, (1,))
    return g


def check_softmax_loss_backward(x: Any, label: Any, class_weights: Any, lse: Any, dx: Any,
                                normalize: str = "local", scale: Any = 1.0,
                                allowed: tuple[str, ...] = FLOAT_DTYPES,
                                values_checked: bool = False) -> tuple[LossGeometry, float]:
    """Return the geometry and ``scale`` as a float. With ``values_checked`` the caller vouches that the
    forward just validated these very label and class-weight values, and they are not read again (on a
    GPU that read is a copy to the host); dtypes and shapes are always checked."""
    op = "softmax_loss_backward"
    floats = {"x": x, "class_weights": class_weights, "lse": lse, "dx": dx}
    dtype = require_floats(op, floats, allowed)
    g = _geometry(op, "x", x)
    require_choice(op, "normalize", normalize, NORMALIZE_MODES)
    scale = require_finite_scalar(op, "scale", scale)
    _check_label(op, label, g, dtype, values=not values_checked)
    if not values_checked:
        _check_class_weights(op, class_weights, g, normalize)
    elif class_weights is not None:
        require_shape(op, "class_weights", class_weights, (g.c,))
    require_shape(op, "lse", lse, g.position_shape)
    require_shape(op, "dx", dx, shape_of(x))
    return g, scale


def check_multinomial_logistic_loss_forward(prob: Any, label: Any, class_weights: Any, loss: Any,
                                            normalize: str = "local",
                                            allowed: tuple[str, ...] = FLOAT_DTYPES) -> LossGeometry:
    op = "multinomial_logistic_loss_forward"
    floats = {"prob": prob, "class_weights": class_weights, "loss": loss}
    dtype = require_floats(op, floats, allowed)
    g = _geometry(op, "prob", prob)
    require_choice(op, "normalize", normalize, NORMALIZE_MODES)
    _check_label(op, label, g, dtype)
    _check_class_weights(op, class_weights, g, normalize)
    require_shape(op, "loss", loss, (1,))
    return g


def check_accuracy_forward(x: Any, label: Any, correct: Any, top_k: Any = 1,
                           allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[LossGeometry, int]:
    """Return the geometry and ``top_k`` as an int in [1, C]."""
    op = "accuracy_forward"
    dtype = require_float(op, "x", x, allowed)
    require_array(op, "correct", correct)
    if dtype_name(correct) != "int64":
        raise TypeError(f"{op}: correct has dtype {dtype_name(correct)}; expected int64")
    g = _geometry(op, "x", x)
    if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or not 1 <= top_k <= g.c:
        raise ValueError(f"{op}: top_k must be an int in [1, C] = [1, {g.c}], got {top_k!r}")
    _check_label(op, label, g, dtype)
    require_shape(op, "correct", correct, (1,))
    return g, int(top_k)


def _check_soft_target(op: str, x: Any, target: Any) -> LossGeometry:
    """Scores ``x`` (N, C, *S), not empty, and a ``target`` of the same shape (dtypes checked by the caller)."""
    g = _geometry(op, "x", x)
    if shape_of(target) != shape_of(x):
        raise ValueError(f"{op}: target has shape {shape_of(target)}, expected {shape_of(x)} (the shape of x)")
    return g


def check_softlabel_softmax_loss_forward(x: Any, target: Any, lse: Any, loss: Any,
                                         allowed: tuple[str, ...] = FLOAT_DTYPES) -> LossGeometry:
    op = "softlabel_softmax_loss_forward"
    floats = {"x": x, "target": target, "lse": lse, "loss": loss}
    require_floats(op, floats, allowed)
    g = _check_soft_target(op, x, target)
    require_shape(op, "lse", lse, g.position_shape)
    require_shape(op, "loss", loss, (1,))
    return g


def check_softlabel_softmax_loss_backward(x: Any, target: Any, lse: Any, dx: Any, dtarget: Any, scale: Any = 1.0,
                                          allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[LossGeometry, float]:
    """Return the geometry and ``scale`` as a float; ``dx`` and ``dtarget`` may each be None."""
    op = "softlabel_softmax_loss_backward"
    floats = {"x": x, "target": target, "lse": lse, "dx": dx, "dtarget": dtarget}
    for name, a in floats.items():
        if a is not None or name not in ("dx", "dtarget"):
            require_float(op, name, a, allowed)
    require_same_dtype(op, floats)
    g = _check_soft_target(op, x, target)
    scale = require_finite_scalar(op, "scale", scale)
    require_shape(op, "lse", lse, g.position_shape)
    for name in ("dx", "dtarget"):
        if floats[name] is not None:
            require_shape(op, name, floats[name], shape_of(x))
    return g, scale
