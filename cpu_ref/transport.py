"""Entropic optimal transport by Sinkhorn's iteration (NumPy reference): the Wasserstein loss.

Mirrors :mod:`mocha_triton.kernels.transport`. The ops implement Mocha's ``WassersteinLossLayer``
(Frogner et al. 2015, "Learning with a Wasserstein loss"), for N samples at once.

**Forward.** Each sample n compares a predicted histogram ``a = pred[n]`` (P bins) with a target
histogram ``b = target[n]`` (Q bins) under a ground cost ``M = cost`` (P, Q), shared by all samples. With
the Gibbs kernel ``K = exp(-lambda_ * M)``, the row scaling starts uniform, ``u = 1/P``, and ``n_iter``
Sinkhorn iterations::

    u <- a / (K @ (b / (K.T @ u)))

are followed by the column scaling ``v = b / (K.T @ u)``. The transport plan ``T = diag(u) K diag(v)``
then has exactly the column sums ``b`` and (once the iteration has converged) the row sums ``a``; the
loss of the sample is its transport cost ``<T, M> = u . ((K * M) @ v)``, and the op reports their mean
over the N samples (Mocha's ``L``). Everything is computed in the dtype of the inputs.

**Backward.** With the scaling ``u`` the forward kept, the gradient is the dual potential of the
entropy-regularised transport problem::

    dpred = scale * (log u - c) / (lambda_ * N),     c = mean over the P bins of log u when center

(``log`` of ``max(u, 1e-20)``, Mocha's clamp, so an empty bin gives a large finite value, not -inf).
Once Sinkhorn has converged this is the gradient w.r.t. ``a`` of the regularised OT distance
``W_lambda(a, b) = min over plans T with marginals (a, b) of <T, M> - H(T) / lambda_`` (entropy
``H(T) = -sum T log T``), averaged over the samples: ``log(u) / lambda_`` is the optimal dual variable
``alpha`` up to an additive constant per sample. It is *not* the gradient of the reported transport cost
``<T, M>`` (the two differ by the entropy term's gradient), and at a finite ``n_iter`` it is the
approximation Frogner et al. use. The constant is free because ``a`` lives on the simplex (a change of
``a`` that keeps its mass sees no constant): Mocha keeps ``log(u) / lambda_`` as it comes (``center=False``),
which depends on the arbitrary scale of the starting ``u``; Frogner et al.'s Algorithm 1 picks the dual
solution with zero sum (``center=True``), the gradient projected onto the simplex' tangent space. Behind
a softmax both give the same gradient of the logits. The same op with ``v`` in place of ``u`` gives the
gradient w.r.t. the target ``b`` (``log(v) / lambda_`` is the dual variable ``beta``).

**Inputs that are not histograms.** Values are not checked. Sinkhorn needs non-negative inputs of equal
mass per sample (``sum a == sum b``), samples of ``a`` and ``b`` that are not all zero, and a kernel ``K``
whose entries neither underflow nor overflow in the dtype (``lambda_ * M`` roughly within +-80 for
float32): otherwise it divides by zero and yields inf/NaN, or (unequal masses) matches the marginal
updated last. A zero-mass sample (``a`` or ``b`` all zero) gets ``u = 0`` and ``v = b / 0`` (or ``v = 0``
and ``u = a / 0``), hence a NaN transport cost (``0 * inf``), and so a NaN ``loss``; a NaN in a sample
makes its u, v and cost NaN. The Triton kernels give the same NaN/inf (IEEE arithmetic, NaN-propagating
clamp in the backward), never a finite loss in their place.

**Aliasing.** No output may share memory with another argument (the shared checks reject it), except that
``sinkhorn_backward`` may write ``dpred`` over ``u`` itself.
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import transport as checks
from mocha_triton.contract import LOG_CLAMP


def sinkhorn_forward(pred: np.ndarray, target: np.ndarray, cost: np.ndarray, u: np.ndarray, v: np.ndarray,
                     sample_loss: np.ndarray, loss: np.ndarray, lambda_: float, n_iter: int) -> None:
    """Sinkhorn scalings ``u`` (N, P), ``v`` (N, Q), transport costs ``sample_loss`` (N,) and their mean
    ``loss`` (1,) of the histograms ``pred`` (N, P) and ``target`` (N, Q) under ``cost`` (P, Q)."""
    sizes, lam, n_iter = checks.check_sinkhorn_forward(pred, target, cost, u, v, sample_loss, loss, lambda_, n_iter)
    dtype = pred.dtype.type
    gibbs = np.exp(cost * dtype(-lam))  # K, (P, Q)
    # The samples are rows: K.T @ u for every sample at once is u @ K, and K @ v is v @ K.T.
    scaling = np.full((sizes.n, sizes.p), dtype(1.0 / sizes.p), dtype=pred.dtype)
    for _ in range(n_iter):
        scaling = pred / ((target / (scaling @ gibbs)) @ gibbs.T)
    np.copyto(u, scaling)
    np.divide(target, u @ gibbs, out=v)
    np.sum(u * (v @ (gibbs * cost).T), axis=1, out=sample_loss)
    loss[0] = sample_loss.sum() / dtype(sizes.n)


def sinkhorn_backward(u: np.ndarray, dpred: np.ndarray, lambda_: float, scale: float = 1.0,
                      center: bool = True) -> None:
    """``dpred = scale * (log u - c) / (lambda_ * N)`` for ``u`` (N, D), ``c`` the row mean of ``log u`` when
    ``center`` (else 0), ``log`` of ``max(u, 1e-20)``; ``dpred`` may be ``u`` itself."""
    _, _, coef, center = checks.check_sinkhorn_backward(u, dpred, lambda_, scale, center)
    dtype = u.dtype.type
    logs = np.log(np.maximum(u, dtype(LOG_CLAMP)))
    if center:
        logs -= logs.mean(axis=1, keepdims=True)
    np.multiply(logs, dtype(coef), out=dpred)
