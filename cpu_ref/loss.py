"""Losses and accuracy for classification (NumPy reference), with Mocha's semantics.

Mirrors :mod:`mocha_triton.kernels.loss`. Every op takes scores ``x`` (logits) or probabilities
``prob`` of shape ``(N, C, *S)`` (``S`` may be empty) and a ``label`` of shape ``(N, *S)`` or
``(N, 1, *S)`` holding 0-based class indices (floats of the dtype of ``x``, or int32/int64). Each
spatial position ``p`` (one of the ``N * prod(S)``) is one classification.

* **Class weights** ``w`` (``(C,)``, non-negative, or None for all ones) are rescaled by
  ``normalize``: ``"local"`` and ``"global"`` both give ``w * (C / sum(w))`` (Mocha's ``:local``
  rescales the weights to sum to C at each location, ``:global`` rescales the per-sample weight
  tensor to sum to ``C * prod(S)``; for per-class weights the two coincide), ``"no"`` keeps ``w``.
* **softmax loss**: ``loss = sum_p -w[l_p] * max(x[l_p] - lse_p, log(1e-20)) / (N * prod(S))``
  with ``lse_p = logsumexp_c x[:, c]`` (Mocha clamps the probability at 1e-20 before the log).
  ``lse`` is kept for the backward, ``dx = scale * w[l_p] * (exp(x - lse_p) - onehot(l_p)) /
  (N * prod(S))`` (Mocha's fused gradient, which ignores the clamp).
* **soft-label softmax loss** (a target distribution ``q`` of the shape of ``x`` instead of a label):
  ``loss = sum_{p,c} -q[c] * max(x[c] - lse_p, log(1e-20)) / (N * prod(S))``, ``lse`` kept for the
  backward, ``dx = scale * (exp(x - lse_p) - q) / (N * prod(S))`` (Mocha's gradient: exact when q
  sums to 1 over C at each position) and ``dtarget = -scale * max(x - lse_p, log(1e-20)) /
  (N * prod(S))``.
* **multinomial logistic loss**: the same loss on given probabilities,
  ``sum_p -w[l_p] * log(max(prob[l_p], 1e-20)) / (N * prod(S))``.
* **accuracy**: the number of positions where fewer than ``top_k`` classes rank above the label (a
  higher score, or an equal score at a lower class index: ``argmax == label`` for ``top_k=1``, with
  argmax's first-index rule on ties, as Mocha).

Everything is computed in the dtype of ``x`` on the flat ``(N, C, S)`` view; sums use NumPy's
pairwise summation.
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import loss as checks
from mocha_triton.checks.loss import LossGeometry
from mocha_triton.contract import LOG_CLAMP


def _scores(x: np.ndarray, g: LossGeometry) -> np.ndarray:
    """The (N, C, S) view of x."""
    return x.reshape(g.n, g.c, g.s)


def _labels(label: np.ndarray, g: LossGeometry) -> np.ndarray:
    """The (N, S) class indices (intp) of a checked label array."""
    return label.reshape(g.n, g.s).astype(np.intp)


def _weights_at(class_weights: np.ndarray | None, labels: np.ndarray, c: int, normalize: str,
                dtype: np.dtype) -> np.ndarray | None:
    """(N, S) weight of each position's label after normalisation, or None when all are one."""
    if class_weights is None:
        return None
    w = class_weights
    if normalize != "no":
        w = w * (dtype.type(c) / w.sum())  # Mocha: weights .* (C ./ sum(weights))
    return w[labels]


def _logsumexp(xs: np.ndarray) -> np.ndarray:
    """(N, S) logsumexp over axis 1 of (N, C, S), with the maximum subtracted first."""
    m = xs.max(axis=1)
    return m + np.log(np.exp(xs - m[:, None, :]).sum(axis=1))


def _picked(xs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N, S) entries xs[n, labels[n, s], s]."""
    return np.take_along_axis(xs, labels[:, None, :], axis=1)[:, 0, :]


def _weighted_mean(terms: np.ndarray, weights: np.ndarray | None, g: LossGeometry) -> np.ndarray:
    if weights is not None:
        terms = weights * terms
    return terms.sum() / terms.dtype.type(g.positions)


def softmax_loss_forward(x: np.ndarray, label: np.ndarray, class_weights: np.ndarray | None, lse: np.ndarray,
                         loss: np.ndarray, normalize: str = "local") -> None:
    """Fused softmax + multinomial logistic loss (Mocha's SoftmaxLossLayer), along axis 1.

    x: (N, C, *S) logits; label: (N, *S) or (N, 1, *S) class indices; class_weights: (C,) or None.
    Writes lse (N, *S) = logsumexp of x over C, and loss (1,) =
    sum_p -w[l_p] * max(x[l_p] - lse_p, log(1e-20)) / (N * prod(S)), w normalised by ``normalize``.
    """
    g = checks.check_softmax_loss_forward(x, label, class_weights, lse, loss, normalize)
    xs, labels = _scores(x, g), _labels(label, g)
    lse_flat = _logsumexp(xs)
    log_p = np.maximum(_picked(xs, labels) - lse_flat, np.log(x.dtype.type(LOG_CLAMP)))
    lse[...] = lse_flat.reshape(lse.shape)
    loss[0] = _weighted_mean(-log_p, _weights_at(class_weights, labels, g.c, normalize, x.dtype), g)


def softmax_loss_backward(x: np.ndarray, label: np.ndarray, class_weights: np.ndarray | None, lse: np.ndarray,
                          dx: np.ndarray, normalize: str = "local", scale: float = 1.0) -> None:
    """Gradient of softmax_loss_forward w.r.t. the logits, from the stored lse (N, *S).

    dx (N, C, *S) = scale * w[l_p] * (exp(x - lse_p) - onehot(l_p)) / (N * prod(S)) at every position
    p; like Mocha it ignores the 1e-20 clamp of the forward.
    """
    g, scale = checks.check_softmax_loss_backward(x, label, class_weights, lse, dx, normalize, scale)
    xs, labels = _scores(x, g), _labels(label, g)
    grad = np.exp(xs - lse.reshape(g.n, 1, g.s))
    np.put_along_axis(grad, labels[:, None, :], _picked(grad, labels)[:, None, :] - 1, axis=1)
    factor = x.dtype.type(scale / g.positions)
    weights = _weights_at(class_weights, labels, g.c, normalize, x.dtype)
    if weights is not None:
        factor = weights[:, None, :] * factor
    dx[...] = (factor * grad).reshape(dx.shape)


def softlabel_softmax_loss_forward(x: np.ndarray, target: np.ndarray, lse: np.ndarray, loss: np.ndarray) -> None:
    """Fused softmax + cross-entropy with a target distribution (Mocha's SoftlabelSoftmaxLossLayer), along axis 1.

    x, target: (N, C, *S). Writes lse (N, *S) = logsumexp of x over C, and loss (1,) =
    sum over all elements of -target * max(x - lse, log(1e-20)) / (N * prod(S)) (Mocha clamps the
    probability at 1e-20 before the log).
    """
    g = checks.check_softlabel_softmax_loss_forward(x, target, lse, loss)
    xs, q = _scores(x, g), _scores(target, g)
    lse_flat = _logsumexp(xs)
    log_p = np.maximum(xs - lse_flat[:, None, :], np.log(x.dtype.type(LOG_CLAMP)))
    lse[...] = lse_flat.reshape(lse.shape)
    loss[0] = -(q * log_p).sum() / x.dtype.type(g.positions)


def softlabel_softmax_loss_backward(x: np.ndarray, target: np.ndarray, lse: np.ndarray, dx: np.ndarray | None,
                                    dtarget: np.ndarray | None, scale: float = 1.0) -> None:
    """Gradients of softlabel_softmax_loss_forward from the stored lse (N, *S); either output may be None.

    dx (N, C, *S) = scale * (exp(x - lse) - target) / (N * prod(S)): Mocha's gradient, exact when the
    target sums to 1 over C at each position, and like Mocha it ignores the 1e-20 clamp.
    dtarget = -scale * max(x - lse, log(1e-20)) / (N * prod(S)), the clamped log-probability.
    """
    g, scale = checks.check_softlabel_softmax_loss_backward(x, target, lse, dx, dtarget, scale)
    xs, lse_flat = _scores(x, g), lse.reshape(g.n, 1, g.s)
    factor = x.dtype.type(scale / g.positions)
    if dx is not None:
        dx[...] = (factor * (np.exp(xs - lse_flat) - _scores(target, g))).reshape(dx.shape)
    if dtarget is not None:
        log_p = np.maximum(xs - lse_flat, np.log(x.dtype.type(LOG_CLAMP)))
        dtarget[...] = (-factor * log_p).reshape(dtarget.shape)


def multinomial_logistic_loss_forward(prob: np.ndarray, label: np.ndarray, class_weights: np.ndarray | None,
                                      loss: np.ndarray, normalize: str = "local") -> None:
    """Multinomial logistic loss on probabilities (Mocha's MultinomialLogisticLossLayer; no backward).

    prob: (N, C, *S); loss (1,) = sum_p -w[l_p] * log(max(prob[l_p], 1e-20)) / (N * prod(S)).
    """
    g = checks.check_multinomial_logistic_loss_forward(prob, label, class_weights, loss, normalize)
    labels = _labels(label, g)
    picked = _picked(_scores(prob, g), labels)
    terms = -np.log(np.maximum(picked, prob.dtype.type(LOG_CLAMP)))
    loss[0] = _weighted_mean(terms, _weights_at(class_weights, labels, g.c, normalize, prob.dtype), g)


def accuracy_forward(x: np.ndarray, label: np.ndarray, correct: np.ndarray, top_k: int = 1) -> None:
    """correct (1,) int64 = number of positions where fewer than top_k classes rank above the label: a
    class ranks above it with a higher score, or an equal score at a lower class index (argmax's
    first-index rule, so top_k=1 counts argmax == label, as Mocha). Divide by N * prod(S) for the accuracy.
    """
    g, top_k = checks.check_accuracy_forward(x, label, correct, top_k)
    xs, labels = _scores(x, g), _labels(label, g)
    picked = _picked(xs, labels)[:, None, :]
    earlier = np.arange(g.c)[None, :, None] < labels[:, None, :]
    ahead = ((xs > picked) | ((xs == picked) & earlier)).sum(axis=1)
    correct[0] = np.count_nonzero(ahead < top_k)
