"""Pointwise losses (NumPy reference): square loss, binary cross-entropy, hinge loss, Gaussian KL loss and
binary accuracy.

Mirrors :mod:`mocha_triton.kernels.pointwise_loss`. Each op compares a prediction with a target of the
same shape ``(N, ...)`` element by element; losses are summed over every element and divided by the
number of samples N (Mocha's convention; Caffe's EuclideanLoss is the square loss). The formulas:

==============================  ===================================================================
square loss                     ``sum((pred - target)**2) / (2N)``; gradient ``scale * (pred - target) / N``
binary cross-entropy            ``-sum(y log p + (1 - y) log(1 - p)) / N`` on probabilities, *no clamping*
                                (Mocha): p must lie in (0, 1) where it matters; gradients
                                ``-scale (y/p - (1-y)/(1-p)) / N`` (prob) and ``-scale log(p/(1-p)) / N``
                                (label)
hinge loss                      ``sum(max(0, 1 - y * pred)) / N`` for labels y in {-1, +1}; where the
                                margin is violated (``y * pred < 1``) the gradients are
                                ``-scale * y / N`` (pred) and ``-scale * pred / N`` (label), 0 elsewhere
Gaussian KL loss                ``sum(mu**2 + sigma**2 - 2 log(sigma) - 1) / (2N)``, the KL divergence of
                                ``N(mu, diag sigma**2)`` from ``N(0, I)`` for standard deviations
                                ``sigma > 0`` (not checked: ``sigma <= 0`` gives NaN or inf); gradients
                                ``scale * mu / N`` (mu) and ``scale * (sigma - 1/sigma) / N`` (sigma)
binary accuracy                 the number of elements with ``(pred > t) == (label > t)``
==============================  ===================================================================

Everything is computed in the dtype of the inputs; the gradient coefficient ``scale / N`` is rounded to
that dtype once, as the kernels receive it; sums use NumPy's pairwise summation.
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import pointwise_loss as checks


def square_loss_forward(pred: np.ndarray, target: np.ndarray, loss: np.ndarray) -> None:
    """loss[0] = sum((pred - target)**2) / (2 * N)."""
    n = checks.check_square_loss_forward(pred, target, loss)
    diff = pred - target
    loss[0] = np.sum(diff * diff) / pred.dtype.type(2 * n)


def square_loss_backward(pred: np.ndarray, target: np.ndarray, dpred: np.ndarray, scale: float = 1.0) -> None:
    """dpred = scale * (pred - target) / N."""
    n, scale = checks.check_square_loss_backward(pred, target, dpred, scale)
    np.subtract(pred, target, out=dpred)
    dpred *= pred.dtype.type(scale / n)


def binary_cross_entropy_forward(prob: np.ndarray, label: np.ndarray, loss: np.ndarray) -> None:
    """loss[0] = -sum(label * log(prob) + (1 - label) * log(1 - prob)) / N."""
    n = checks.check_binary_cross_entropy_forward(prob, label, loss)
    one = prob.dtype.type(1)
    with np.errstate(divide="ignore", invalid="ignore"):  # p at 0 or 1 gives inf/nan, as in Mocha
        terms = label * np.log(prob) + (one - label) * np.log(one - prob)
    loss[0] = -np.sum(terms) / prob.dtype.type(n)


def binary_cross_entropy_backward(prob: np.ndarray, label: np.ndarray, dprob: np.ndarray | None,
                                  dlabel: np.ndarray | None, scale: float = 1.0) -> None:
    """dprob = -scale * (label / prob - (1 - label) / (1 - prob)) / N; dlabel = -scale * log(prob / (1 - prob)) / N.

    Either output may be None (not computed).
    """
    n, scale = checks.check_binary_cross_entropy_backward(prob, label, dprob, dlabel, scale)
    t = prob.dtype.type
    coef, one = t(-scale / n), t(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if dprob is not None:
            dprob[...] = coef * (label / prob - (one - label) / (one - prob))
        if dlabel is not None:
            dlabel[...] = coef * np.log(prob / (one - prob))


def hinge_loss_forward(pred: np.ndarray, label: np.ndarray, loss: np.ndarray) -> None:
    """loss[0] = sum(max(0, 1 - label * pred)) / N."""
    n = checks.check_hinge_loss_forward(pred, label, loss)
    t = pred.dtype.type
    loss[0] = np.sum(np.maximum(t(1) - label * pred, t(0))) / t(n)


def hinge_loss_backward(pred: np.ndarray, label: np.ndarray, dpred: np.ndarray | None, dlabel: np.ndarray | None,
                        scale: float = 1.0) -> None:
    """Where label * pred < 1: dpred = -scale * label / N and dlabel = -scale * pred / N; 0 elsewhere.

    Either output may be None (not computed).
    """
    n, scale = checks.check_hinge_loss_backward(pred, label, dpred, dlabel, scale)
    t = pred.dtype.type
    coef, zero = t(-scale / n), t(0)
    violated = label * pred < t(1)
    if dpred is not None:
        dpred[...] = np.where(violated, coef * label, zero)
    if dlabel is not None:
        dlabel[...] = np.where(violated, coef * pred, zero)


def gaussian_kl_loss_forward(mu: np.ndarray, sigma: np.ndarray, loss: np.ndarray) -> None:
    """loss[0] = sum(mu**2 + sigma**2 - 2 * log(sigma) - 1) / (2 * N)."""
    n = checks.check_gaussian_kl_loss_forward(mu, sigma, loss)
    t = mu.dtype.type
    with np.errstate(divide="ignore", invalid="ignore"):  # sigma <= 0 gives inf/nan, not a warning
        terms = mu * mu + sigma * sigma - t(2) * np.log(sigma) - t(1)
    loss[0] = np.sum(terms) / t(2 * n)


def gaussian_kl_loss_backward(mu: np.ndarray, sigma: np.ndarray, dmu: np.ndarray | None, dsigma: np.ndarray | None,
                              scale: float = 1.0) -> None:
    """dmu = scale * mu / N; dsigma = scale * (sigma - 1 / sigma) / N. Either output may be None (not computed)."""
    n, scale = checks.check_gaussian_kl_loss_backward(mu, sigma, dmu, dsigma, scale)
    coef = mu.dtype.type(scale / n)
    if dmu is not None:
        np.multiply(mu, coef, out=dmu)
    if dsigma is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            dsigma[...] = coef * (sigma - mu.dtype.type(1) / sigma)


def binary_accuracy_forward(pred: np.ndarray, label: np.ndarray, correct: np.ndarray, threshold: float = 0.0) -> None:
    """correct[0] = the number of elements where (pred > threshold) == (label > threshold)."""
    threshold = checks.check_binary_accuracy_forward(pred, label, correct, threshold)
    t = pred.dtype.type(threshold)
    correct[0] = np.count_nonzero((pred > t) == (label > t))
