"""WassersteinLossLayer: Mocha's entropic optimal-transport loss (Frogner et al. 2015, "Learning with a
Wasserstein loss").

``bottoms=[prediction, target]``: N predicted histograms over P bins and N target histograms over Q bins
(any shapes ``(N, ...)``; the bins of a sample are all its elements after the first axis, like Mocha's
``get_fea_size``). ``M`` is the ground cost of moving mass from predicted bin i to target bin j, a
``(P, Q)`` matrix, and ``lambda_`` the entropic regularisation (Mocha's ``lambda``: a Python keyword, hence
the trailing underscore; it is *not* POT's ``reg``, which is ``1 / lambda``). Larger ``lambda_`` is
closer to the exact Wasserstein distance and makes Sinkhorn converge more slowly.

* **Loss.** ``sinkhorn_iter`` Sinkhorn iterations with ``K = exp(-lambda_ * M)`` from a uniform ``u``,
  then ``v = b / (K.T u)``; the loss is ``weight`` times the mean over the samples of the transport cost
  ``<diag(u) K diag(v), M>`` (Mocha's ``sum(u .* (K.*M) v) / N``). See :mod:`mocha_triton.cpu_ref.transport`.
* **Gradient.** ``weight * (log u - mean(log u)) / (lambda_ * N)`` w.r.t. the prediction: the optimal dual
  variable of the regularised problem, i.e. (once Sinkhorn has converged) the gradient of the
  entropy-regularised OT distance ``W_lambda``, not of the transport cost reported as the loss (Mocha and
  Frogner et al. do the same). The dual variable is defined up to a constant per sample; by default it is
  centred to zero sum as in Frogner et al.'s Algorithm 1 (``center_gradient=True``): the gradient within
  the simplex the histograms live on, independent of the arbitrary scale of Sinkhorn's starting point.
  ``center_gradient=False`` gives Mocha's values, ``log(u) / lambda_ / N``. Behind a softmax both train
  identically (the softmax gradient ignores a constant shift).
* **Target gradient** (not in Mocha): when the target needs one, it gets ``weight * (log v - mean) /
  (lambda_ * N)``, the dual variable of the target's marginal, by the symmetry of the problem.

The inputs should be non-negative histograms of equal mass per sample (e.g. a softmax output against a
normalised label histogram). This is not checked at every forward (that would copy the blobs to the host
on a GPU); Mocha did not check it either. On other inputs Sinkhorn matches only the target's marginal
(unequal masses) or divides by zero:

* **Zero mass.** A sample whose prediction or target is all zeros has a NaN transport cost, so the loss is
  NaN, on both backends alike (never a silently finite number): Sinkhorn divides by zero (``u = 0`` and
  then ``v = b / 0``, or ``v = 0`` and then ``u = a / 0``) and the cost multiplies ``0 * inf``. That
  sample's gradients are meaningless: the all-zero side's scaling is 0, so its gradient is finite (the log
  is clamped), the other side's is inf, so its gradient is inf or NaN.
* **NaN** in a sample's prediction or target makes its cost and both its gradients NaN (the log clamp of
  the gradient keeps NaN on both backends); the other samples are unaffected, but the mean loss is NaN.

``lambda_ * M`` is checked at setup: if ``exp(-lambda_ * M)`` underflows or overflows in the blobs' dtype,
Sinkhorn would divide by zero.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerState
from mocha_triton.layers.loss import check_two_bottoms, check_weight, run_layer_op


@dataclass(frozen=True, kw_only=True)
class WassersteinLossLayer(Layer):
    """Entropy-regularised Wasserstein loss between predicted and target histograms (Mocha)."""

    name: str = "wasserstein-loss"
    M: Any  # (P, Q) ground cost; stored as a tuple of row tuples (floats)
    lambda_: float
    sinkhorn_iter: int = 50
    weight: float = 1.0
    center_gradient: bool = True

    is_sink = True
    has_loss = True
    can_backprop = True

    def validate(self) -> None:
        check_two_bottoms(self)
        check_weight(self, self.weight)
        try:
            cost = np.asarray(self.M, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise self.fail(f"M must be a (P, Q) matrix of real numbers, got {self.M!r}") from err
        if cost.ndim != 2 or cost.size == 0:
            raise self.fail(f"M must be a non-empty (P, Q) matrix, got shape {cost.shape}")
        if not np.all(np.isfinite(cost)):
            raise self.fail("M must be finite")
        object.__setattr__(self, "M", tuple(tuple(float(x) for x in row) for row in cost))
        lam = self.lambda_
        if isinstance(lam, bool) or not isinstance(lam, numbers.Real) or not math.isfinite(lam) or lam <= 0:
            raise self.fail(f"lambda_ must be a finite number > 0, got {lam!r}")
        it = self.sinkhorn_iter
        if isinstance(it, bool) or not isinstance(it, numbers.Integral) or it < 1:
            raise self.fail(f"sinkhorn_iter must be a positive int, got {it!r}")
        if not isinstance(self.center_gradient, bool):
            raise self.fail(f"center_gradient must be a bool, got {self.center_gradient!r}")

    @property
    def cost_matrix(self) -> np.ndarray:
        """``M`` as a (P, Q) float64 array."""
        return np.array(self.M, dtype=np.float64)

    def _check_gibbs_range(self, cost: np.ndarray, dtype: str) -> None:
        """exp(-lambda_ * M) must be a positive, finite, normal number of ``dtype`` everywhere."""
        info = np.finfo(dtype)
        low, high = float(np.log(info.tiny)), float(np.log(info.max))  # exp(x) is normal and finite on [low, high]
        scaled = float(self.lambda_) * cost
        if -scaled.max() < low or -scaled.min() > high:
            raise self.fail(f"lambda_ * M spans [{scaled.min():.6g}, {scaled.max():.6g}], so exp(-lambda_ * M) "
                            f"underflows or overflows in {dtype} (lambda_ * M must lie in [{-high:.4g}, "
                            f"{-low:.4g}]) and Sinkhorn would divide by zero; lower lambda_ or rescale M")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> WassersteinLossState:
        if len(inputs) != 2:
            raise self.fail(f"expected 2 input blobs, got {len(inputs)}")
        pred, target = inputs
        if pred.ndim < 1 or pred.shape[0] < 1:
            raise self.fail(f"the prediction {self.bottoms[0]!r} must be (N, ...) with N >= 1, got shape {pred.shape}")
        n = pred.shape[0]
        if target.ndim < 1 or target.shape[0] != n:
            raise self.fail(f"the target {self.bottoms[1]!r} has shape {target.shape}, but the prediction "
                            f"{self.bottoms[0]!r} holds {n} samples (shape {pred.shape})")
        p, q = math.prod(pred.shape[1:]), math.prod(target.shape[1:])
        cost = self.cost_matrix
        if cost.shape != (p, q):
            raise self.fail(f"M has shape {cost.shape}, but the prediction {self.bottoms[0]!r} {pred.shape} has {p} "
                            f"bins per sample and the target {self.bottoms[1]!r} {target.shape} has {q}: M must be "
                            f"({p}, {q})")
        self._check_gibbs_range(cost, pred.dtype)
        blobs = {
            "cost": Blob.from_numpy(backend, cost, f"{self.name}-cost", dtype=pred.dtype),
            "u": Blob.empty(backend, (n, p), f"{self.name}-u", dtype=pred.dtype),
            "v": Blob.empty(backend, (n, q), f"{self.name}-v", dtype=pred.dtype),
            "sample_loss": Blob.empty(backend, (n,), f"{self.name}-sample-loss", dtype=pred.dtype),
            "loss": Blob.empty(backend, (1,), f"{self.name}-loss", dtype=pred.dtype),
        }
        return WassersteinLossState(self, backend, **blobs)


def _rows(blob: Blob | None, n: int, d: int) -> Any:
    """The raw array of ``blob`` viewed as (n, d) (None stays None)."""
    if blob is None:
        return None
    return blob.data if blob.shape == (n, d) else blob.reshape(n, d).data


class WassersteinLossState(LayerState):
    """Holds the cost matrix, the Sinkhorn scalings ``u`` and ``v`` of the last forward (the backward needs
    them; ``u[n, i] * exp(-lambda_ * M[i, j]) * v[n, j]`` is sample n's transport plan) and the losses."""

    layer: WassersteinLossLayer

    def __init__(self, layer: WassersteinLossLayer, backend: Any, cost: Blob, u: Blob, v: Blob, sample_loss: Blob,
                 loss: Blob) -> None:
        super().__init__(layer, backend)
        self.cost, self.u, self.v = cost, u, v
        self.sample_loss = sample_loss  # (N,) transport cost of each sample (unweighted)
        self.loss_blob = loss  # (1,) their mean (unweighted)

    def forward(self, inputs: list[Blob]) -> None:
        pred, target = inputs
        (n, p), (_, q) = self.u.shape, self.v.shape
        run_layer_op(self, "sinkhorn_forward", _rows(pred, n, p), _rows(target, n, q), self.cost.data, self.u.data,
                     self.v.data, self.sample_loss.data, self.loss_blob.data, float(self.layer.lambda_),
                     int(self.layer.sinkhorn_iter))
        self.loss = float(self.layer.weight) * float(self.loss_blob.to_numpy()[0])

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        """The prediction's gradient from ``u``, the target's (when it needs one) from ``v``."""
        layer = self.layer
        for scaling, diff in zip((self.u, self.v), diffs):
            if diff is not None:
                run_layer_op(self, "sinkhorn_backward", scaling.data, _rows(diff, *scaling.shape),
                             float(layer.lambda_), float(layer.weight), layer.center_gradient)
