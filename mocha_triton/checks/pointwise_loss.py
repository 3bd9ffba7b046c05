"""Argument checks for the pointwise losses (square, binary cross-entropy, hinge, Gaussian KL, binary
accuracy); shared by cpu_ref.pointwise_loss and kernels.pointwise_loss.

Every op compares a prediction with a target of the same shape ``(N, ...)``, element by element, and
averages over the N samples. The values of the targets are not checked (that would cost a copy to the
host on a GPU): the formulas are defined for any real target, and the layers document what they expect.
"""

from __future__ import annotations

from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    dtype_name,
    require_array,
    require_finite_scalar,
    require_float,
    require_min_ndim,
    require_same_dtype,
    require_same_shape,
    require_shape,
)


def _check_pair(op: str, names: tuple[str, str], a: Any, b: Any, allowed: tuple[str, ...]) -> int:
    """Two float arrays of one dtype and shape (N, ...) with N >= 1; return N."""
    for name, array in zip(names, (a, b)):
        require_float(op, name, array, allowed)
    require_same_dtype(op, dict(zip(names, (a, b))))
    require_same_shape(op, dict(zip(names, (a, b))))
    require_min_ndim(op, names[0], a, 1)
    n = int(a.shape[0])
    if n < 1:
        raise ValueError(f"{op}: {names[0]} must hold at least one sample, got shape {tuple(a.shape)}")
    return n


def _check_loss_out(op: str, loss: Any, dtype: str, allowed: tuple[str, ...]) -> None:
    require_float(op, "loss", loss, allowed)
    if dtype_name(loss) != dtype:
        raise TypeError(f"{op}: loss has dtype {dtype_name(loss)}; expected {dtype} like the inputs")
    require_shape(op, "loss", loss, (1,))


def _check_gradients(op: str, like: tuple[str, Any], grads: dict[str, Any], allowed: tuple[str, ...]) -> None:
    """Each gradient is None (not wanted) or an array of the dtype and shape of ``like`` = (name, array)."""
    for name, g in grads.items():
        if g is None:
            continue
        require_float(op, name, g, allowed)
        require_same_dtype(op, {like[0]: like[1], name: g})
        require_same_shape(op, {like[0]: like[1], name: g})


def check_square_loss_forward(pred: Any, target: Any, loss: Any, allowed: tuple[str, ...] = FLOAT_DTYPES) -> int:
    """Return N."""
    op = "square_loss_forward"
    n = _check_pair(op, ("pred", "target"), pred, target, allowed)
    _check_loss_out(op, loss, dtype_name(pred), allowed)
    return n


def check_square_loss_backward(pred: Any, target: Any, dpred: Any, scale: Any,
                               allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, float]:
    """Return (N, scale)."""
    op = "square_loss_backward"
    n = _check_pair(op, ("pred", "target"), pred, target, allowed)
    require_array(op, "dpred", dpred)
    _check_gradients(op, ("pred", pred), {"dpred": dpred}, allowed)
    return n, require_finite_scalar(op, "scale", scale)


def check_binary_cross_entropy_forward(prob: Any, label: Any, loss: Any,
                                       allowed: tuple[str, ...] = FLOAT_DTYPES) -> int:
    """Return N."""
    op = "binary_cross_entropy_forward"
    n = _check_pair(op, ("prob", "label"), prob, label, allowed)
    _check_loss_out(op, loss, dtype_name(prob), allowed)
    return n


def check_binary_cross_entropy_backward(prob: Any, label: Any, dprob: Any, dlabel: Any, scale: Any,
                                        allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, float]:
    """Return (N, scale); dprob and dlabel may each be None."""
    op = "binary_cross_entropy_backward"
    n = _check_pair(op, ("prob", "label"), prob, label, allowed)
    _check_gradients(op, ("prob", prob), {"dprob": dprob, "dlabel": dlabel}, allowed)
    return n, require_finite_scalar(op, "scale", scale)


def check_hinge_loss_forward(pred: Any, label: Any, loss: Any, allowed: tuple[str, ...] = FLOAT_DTYPES) -> int:
    """Return N."""
    op = "hinge_loss_forward"
    n = _check_pair(op, ("pred", "label"), pred, label, allowed)
    _check_loss_out(op, loss, dtype_name(pred), allowed)
    return n


def check_hinge_loss_backward(pred: Any, label: Any, dpred: Any, dlabel: Any, scale: Any,
                              allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, float]:
    """Return (N, scale); dpred and dlabel may each be None."""
    op = "hinge_loss_backward"
    n = _check_pair(op, ("pred", "label"), pred, label, allowed)
    _check_gradients(op, ("pred", pred), {"dpred": dpred, "dlabel": dlabel}, allowed)
    return n, require_finite_scalar(op, "scale", scale)


def check_gaussian_kl_loss_forward(mu: Any, sigma: Any, loss: Any, allowed: tuple[str, ...] = FLOAT_DTYPES) -> int:
    """Return N."""
    op = "gaussian_kl_loss_forward"
    n = _check_pair(op, ("mu", "sigma"), mu, sigma, allowed)
    _check_loss_out(op, loss, dtype_name(mu), allowed)
    return n


def check_gaussian_kl_loss_backward(mu: Any, sigma: Any, dmu: Any, dsigma: Any, scale: Any,
                                    allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, float]:
    """Return (N, scale); dmu and dsigma may each be None."""
    op = "gaussian_kl_loss_backward"
    n = _check_pair(op, ("mu", "sigma"), mu, sigma, allowed)
    _check_gradients(op, ("mu", mu), {"dmu": dmu, "dsigma": dsigma}, allowed)
    return n, require_finite_scalar(op, "scale", scale)


def check_binary_accuracy_forward(pred: Any, label: Any, correct: Any, threshold: Any,
                                  allowed: tuple[str, ...] = FLOAT_DTYPES) -> float:
    """Return the threshold as a float."""
    op = "binary_accuracy_forward"
    _check_pair(op, ("pred", "label"), pred, label, allowed)
    require_array(op, "correct", correct)
    if dtype_name(correct) != "int64":
        raise TypeError(f"{op}: correct has dtype {dtype_name(correct)}; expected int64")
    require_shape(op, "correct", correct, (1,))
    return require_finite_scalar(op, "threshold", threshold)
