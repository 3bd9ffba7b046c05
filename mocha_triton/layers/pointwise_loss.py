"""Pointwise losses (Mocha): SquareLossLayer, BinaryCrossEntropyLossLayer, HingeLossLayer,
GaussianKLLossLayer, and the BinaryAccuracyLayer statistic.

Each takes ``bottoms=[prediction, target]`` of one shape ``(N, ...)`` (a target whose non-singleton
dimensions match the prediction's, e.g. ``(N,)`` for an ``(N, 1)`` prediction, is viewed with the
prediction's shape) and compares them element by element; losses are averaged over the N samples and
multiplied by ``weight``:

================================  ========================================================================
``SquareLossLayer``               ``weight * ||pred - target||^2 / (2N)`` (Caffe's EuclideanLoss). The
                                  target receives the opposite gradient when it needs one (so it can
                                  compare two computed blobs, e.g. an autoencoder's reconstruction).
``BinaryCrossEntropyLossLayer``   ``-weight * sum(y log p + (1-y) log(1-p)) / N`` on probabilities p in
                                  (0, 1) and targets y in [0, 1], without clamping (Mocha): a probability
                                  of exactly 0 or 1 against a disagreeing target gives an infinite loss.
                                  Both bottoms may receive gradients.
``HingeLossLayer``                ``weight * sum(max(0, 1 - y * pred)) / N`` for labels y in {-1, +1}
                                  (Mocha's CPU forward ignored ``weight``; here it always applies).
``GaussianKLLossLayer``           ``bottoms=[mu, sigma]`` (by default the blobs "mu" and "sigma"), a
                                  diagonal Gaussian's means and standard deviations (not log-variances):
                                  ``weight * sum(mu^2 + sigma^2 - 2 log sigma - 1) / (2N)``, the KL
                                  divergence from ``N(0, I)`` of a variational autoencoder. Gradients
                                  ``weight * mu / N`` and ``weight * (sigma - 1/sigma) / N``. sigma must be
                                  positive (not checked: ``sigma <= 0`` gives NaN or inf).
================================  ========================================================================

``SquareLossLayer``, ``HingeLossLayer`` and ``GaussianKLLossLayer`` are also statistics layers:
``"<name>-square-loss"`` / ``"<name>-hinge-loss"`` / ``"<name>-encoder-loss"`` is the running average
of the (weighted) loss over the samples seen since the last ``reset_statistics`` (Mocha's keys).
``BinaryAccuracyLayer`` counts the elements where ``(pred > threshold) == (label > threshold)``
(threshold 0 for -1/+1 labels, 0.5 for 0/1 labels) and reports ``"<name>-accuracy"`` (and
``"<name>-error"`` with ``report_error``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from mocha_triton.blob import Blob
from mocha_triton.layers.accuracy import AccuracyCounts
from mocha_triton.layers.base import Layer, LayerState
from mocha_triton.layers.loss import check_two_bottoms, check_weight, run_layer_op, target_shape_for, viewed


class PointwiseLossState(LayerState):
    """Runs the layer's forward op (its loss times ``weight`` goes to ``self.loss``) and backward op, and
    accumulates the running average that the pointwise losses with statistics report."""

    layer: _PointwiseLoss

    def __init__(self, layer: _PointwiseLoss, backend: Any, shape: tuple[int, ...], loss_blob: Blob) -> None:
        super().__init__(layer, backend)
        self.shape = shape  # the prediction's shape; the target is viewed with it
        self.loss_blob = loss_blob
        self.loss_sum = 0.0  # weighted loss * samples, since the last reset
        self.samples = 0

    def forward(self, inputs: list[Blob]) -> None:
        pred, target = inputs
        run_layer_op(self, self.layer.forward_op, pred.data, viewed(target, self.shape), self.loss_blob.data)
        self.loss = float(self.layer.weight) * float(self.loss_blob.to_numpy()[0])
        self.loss_sum += self.loss * self.shape[0]
        self.samples += self.shape[0]

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        """Both gradients in one call of the backward op (either may be None)."""
        pred, target = inputs
        dpred, dtarget = viewed(diffs[0], self.shape), viewed(diffs[1], self.shape)
        if dpred is not None or dtarget is not None:
            run_layer_op(self, self.layer.backward_op, pred.data, viewed(target, self.shape), dpred, dtarget,
                         float(self.layer.weight))

    def statistics(self) -> dict[str, float]:
        return {f"{self.layer.name}-{self.layer.stat_suffix}": self.loss_sum / self.samples if self.samples else 0.0}

    def reset_statistics(self) -> None:
        self.loss_sum, self.samples = 0.0, 0


class SquareLossState(PointwiseLossState):
    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        """The square loss op has one gradient output: the target's is the same call with the roles swapped."""
        pred, target = inputs
        target_data, weight = viewed(target, self.shape), float(self.layer.weight)
        if diffs[0] is not None:
            run_layer_op(self, "square_loss_backward", pred.data, target_data, diffs[0].data, weight)
        if diffs[1] is not None:
            run_layer_op(self, "square_loss_backward", target_data, pred.data, viewed(diffs[1], self.shape), weight)


@dataclass(frozen=True, kw_only=True)
class _PointwiseLoss(Layer):
    """Fields, checks and setup shared by the pointwise losses."""

    weight: float = 1.0

    is_sink = True
    has_loss = True
    can_backprop = True
    forward_op: ClassVar[str]
    backward_op: ClassVar[str]
    stat_suffix: ClassVar[str] = ""
    state_class: ClassVar[type[PointwiseLossState]] = PointwiseLossState

    def validate(self) -> None:
        check_two_bottoms(self)
        check_weight(self, self.weight)

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> PointwiseLossState:
        if len(inputs) != 2:
            raise self.fail(f"expected 2 input blobs, got {len(inputs)}")
        pred, target = inputs
        target_shape_for(self, pred.shape, target.shape)
        loss = Blob.empty(backend, (1,), f"{self.name}-loss", dtype=pred.dtype)
        return self.state_class(self, backend, pred.shape, loss)


@dataclass(frozen=True, kw_only=True)
class SquareLossLayer(_PointwiseLoss):
    """``weight * ||pred - target||^2 / (2N)``; also reports ``"<name>-square-loss"``."""

    name: str = "square-loss"
    has_stats = True
    forward_op = "square_loss_forward"
    stat_suffix = "square-loss"
    state_class = SquareLossState


@dataclass(frozen=True, kw_only=True)
class BinaryCrossEntropyLossLayer(_PointwiseLoss):
    """``-weight * sum(y log p + (1 - y) log(1 - p)) / N`` on probabilities (no clamping)."""

    name: str = "binary-cross-entropy-loss"
    forward_op = "binary_cross_entropy_forward"
    backward_op = "binary_cross_entropy_backward"


@dataclass(frozen=True, kw_only=True)
class HingeLossLayer(_PointwiseLoss):
    """``weight * sum(max(0, 1 - y * pred)) / N`` for labels in {-1, +1}; also reports ``"<name>-hinge-loss"``."""

    name: str = "hinge-loss"
    has_stats = True
    forward_op = "hinge_loss_forward"
    backward_op = "hinge_loss_backward"
    stat_suffix = "hinge-loss"


@dataclass(frozen=True, kw_only=True)
class GaussianKLLossLayer(_PointwiseLoss):
    """``weight * sum(mu^2 + sigma^2 - 2 log sigma - 1) / (2N)`` for ``bottoms=[mu, sigma]`` (sigma the
    standard deviation); also reports ``"<name>-encoder-loss"``."""

    name: str = "gauss-kl-loss"
    bottoms: tuple[str, ...] = ("mu", "sigma")
    has_stats = True
    forward_op = "gaussian_kl_loss_forward"
    backward_op = "gaussian_kl_loss_backward"
    stat_suffix = "encoder-loss"

    def validate(self) -> None:
        check_two_bottoms(self, "mu, sigma")
        super().validate()


@dataclass(frozen=True, kw_only=True)
class BinaryAccuracyLayer(Layer):
    """The fraction of elements where ``(pred > threshold) == (label > threshold)``, accumulated until
    ``reset_statistics``."""

    name: str = "binary-accuracy"
    threshold: float = 0.0
    report_error: bool = False

    is_sink = True
    has_stats = True

    def validate(self) -> None:
        check_two_bottoms(self)
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) or not math.isfinite(
                self.threshold):
            raise self.fail(f"threshold must be a finite number, got {self.threshold!r}")
        if not isinstance(self.report_error, bool):
            raise self.fail(f"report_error must be a bool, got {self.report_error!r}")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> BinaryAccuracyState:
        if len(inputs) != 2:
            raise self.fail(f"expected 2 input blobs, got {len(inputs)}")
        pred, label = inputs
        target_shape_for(self, pred.shape, label.shape)
        correct = Blob.empty(backend, (1,), f"{self.name}-correct", dtype="int64")
        return BinaryAccuracyState(self, backend, pred.shape, correct)


class BinaryAccuracyState(AccuracyCounts):
    layer: BinaryAccuracyLayer

    def __init__(self, layer: BinaryAccuracyLayer, backend: Any, shape: tuple[int, ...], correct: Blob) -> None:
        super().__init__(layer, backend)
        self.shape = shape
        self.correct = correct  # (1,) int64: agreeing elements of the last forward

    def forward(self, inputs: list[Blob]) -> None:
        pred, label = inputs
        run_layer_op(self, "binary_accuracy_forward", pred.data, viewed(label, self.shape), self.correct.data,
                     float(self.layer.threshold))
        self.add_counts(int(self.correct.to_numpy()[0]), math.prod(self.shape))


__all__ = ["BinaryAccuracyLayer", "BinaryCrossEntropyLossLayer", "GaussianKLLossLayer", "HingeLossLayer",
           "SquareLossLayer"]
