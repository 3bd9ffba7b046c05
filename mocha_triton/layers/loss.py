"""Classification losses: SoftmaxLossLayer (fused softmax + multinomial logistic loss),
MultinomialLogisticLossLayer (on given probabilities) and SoftlabelSoftmaxLossLayer (softmax +
cross-entropy against a target distribution), with Mocha's semantics.

Both take ``bottoms=[prediction, label]``. The prediction is ``(N, C, *S)``: N samples, C classes along
axis 1 and optional spatial dimensions S (one classification per spatial position, as in a fully
convolutional net). The label holds 0-based class indices (floats like Caffe/Mocha HDF5 files, or
integers), one per position; its shape may be

* ``(N, *S)`` or ``(N, 1, *S)`` — in particular ``(N,)`` or ``(N, 1)`` for a ``(N, C)`` prediction;
* more generally ``(N, ...)`` whose non-singleton dimensions after N are those of S, e.g. the usual
  ``(N, 1)`` label feeding a ``(N, C, 1, 1)`` prediction of a convolutional head.

The loss is averaged over the ``N * prod(S)`` positions; ``weights`` are optional per-class weights
(length C) rescaled by ``normalize`` (``"local"``/``"global"``: to sum to C; ``"no"``: as given); see
:mod:`mocha_triton.cpu_ref.loss` for the formulas. ``weight`` multiplies the loss and its gradient (to
combine several losses in one objective).

``SoftlabelSoftmaxLossLayer`` takes ``bottoms=[logits, target]`` with a target of the prediction's
shape (or the same non-singleton dimensions) holding a probability distribution over the C classes at
each position, instead of a class index.

The class axis is Python's axis 1, Mocha's default ``dim=-2`` (Mocha counts Julia's column-major axes
from the end; its ``-2`` is the axis just inside the batch axis, which row-major NCHW puts at 1).

Loss layers follow the framework's protocol: ``state.loss`` is a Python float set by ``forward``;
``backward`` writes the gradient into the prediction's diff (when one is allocated).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from mocha_triton.blob import Blob
from mocha_triton.contract import NORMALIZE_MODES
from mocha_triton.layers.base import Layer, LayerError, LayerState

# --- helpers shared by the loss and accuracy layers --------------------------------------------


def label_shape_for(layer: Layer, pred_shape: tuple[int, ...], label_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape the ops should see the label as: ``label_shape`` itself when the ops accept it
    (``(N, *S)`` or ``(N, 1, *S)``), else ``(N, *S)`` when the label has the same non-singleton
    dimensions; raises the layer's error when the label does not fit the prediction.
    """
    if len(pred_shape) < 2:
        raise layer.fail(f"the prediction {layer.bottoms[0]!r} must be (N, C, ...) with ndim >= 2, "
                         f"got shape {pred_shape}")
    n, _, *spatial = pred_shape
    flat, channel = (n, *spatial), (n, 1, *spatial)
    if label_shape in (flat, channel):
        return label_shape
    squeezed = [d for d in label_shape[1:] if d != 1]
    if label_shape and label_shape[0] == n and squeezed == [d for d in spatial if d != 1]:
        return flat
    raise layer.fail(f"the label {layer.bottoms[1]!r} has shape {label_shape}, which does not match the prediction "
                     f"{layer.bottoms[0]!r} of shape {pred_shape}; expected {flat} or {channel} "
                     f"(one class index per sample and spatial position)")


def label_view(label: Blob, shape: tuple[int, ...]) -> Any:
    """The raw array of ``label`` viewed with ``shape`` (no copy)."""
    return label.data if label.shape == shape else label.reshape(shape).data


def target_shape_for(layer: Layer, pred_shape: tuple[int, ...], target_shape: tuple[int, ...]) -> None:
    """Raise the layer's error unless the target can be viewed with the prediction's shape: the same
    number of samples and the same non-singleton dimensions after it."""
    squeeze = [d for d in pred_shape[1:] if d != 1]
    if (len(pred_shape) >= 1 and pred_shape[0] >= 1 and len(target_shape) >= 1 and target_shape[0] == pred_shape[0]
            and [d for d in target_shape[1:] if d != 1] == squeeze):
        return
    raise layer.fail(f"the target {layer.bottoms[1]!r} has shape {target_shape}, which does not match the prediction "
                     f"{layer.bottoms[0]!r} of shape {pred_shape} (one target per prediction element)")


def viewed(blob: Blob | None, shape: tuple[int, ...]) -> Any:
    """The raw array of ``blob`` viewed with ``shape`` (None stays None)."""
    if blob is None:
        return None
    return blob.data if blob.shape == shape else blob.reshape(shape).data


def check_two_bottoms(layer: Layer, names: str = "prediction, label") -> None:
    if len(layer.bottoms) != 2:
        raise layer.fail(f"needs bottoms=[{names}], got {layer.bottoms}")
    if layer.tops:
        raise layer.fail(f"has no tops (it is a sink), got {layer.tops}")


def check_weight(layer: Layer, weight: Any) -> None:
    if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not math.isfinite(weight):
        raise layer.fail(f"weight must be a finite number, got {weight!r}")


def _normalized_class_weights(layer: Layer, weights: Any) -> tuple[float, ...] | None:
    """``weights`` as a tuple of floats (None or empty: no class weights); raises the layer's error."""
    if weights is None:
        return None
    try:
        values = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise layer.fail(f"weights must be a 1-D sequence of per-class weights, got {weights!r}") from err
    if values.ndim != 1:
        raise layer.fail(f"weights must be 1-D (one weight per class), got shape {values.shape}")
    if values.size == 0:
        return None
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise layer.fail(f"weights must be finite and non-negative, got {values.tolist()}")
    return tuple(float(v) for v in values)


@dataclass(frozen=True, kw_only=True)
class _ClassificationLoss(Layer):
    """Fields and checks shared by the two classification losses."""

    weight: float = 1.0
    weights: Any = None  # per-class weights, length C; None (or empty) for none
    normalize: str = "local"

    is_sink = True
    has_loss = True

    def validate(self) -> None:
        check_two_bottoms(self)
        check_weight(self, self.weight)
        object.__setattr__(self, "weights", _normalized_class_weights(self, self.weights))
        if self.normalize not in NORMALIZE_MODES:
            raise self.fail(f"normalize must be one of {NORMALIZE_MODES}, got {self.normalize!r}")

    def _setup_common(self, backend: Any, inputs: list[Blob]) -> tuple[tuple[int, ...], Blob | None]:
        """Check the bottoms; return the label's op shape and the class-weight blob (or None)."""
        if len(inputs) != 2:
            raise self.fail(f"expected 2 input blobs, got {len(inputs)}")
        pred, label = inputs
        shape = label_shape_for(self, pred.shape, label.shape)
        class_weights = None
        if self.weights is not None:
            if len(self.weights) != pred.shape[1]:
                raise self.fail(f"weights has {len(self.weights)} entries, but the prediction {self.bottoms[0]!r} "
                                f"has {pred.shape[1]} classes (shape {pred.shape})")
            if self.normalize != "no" and not any(self.weights):
                raise self.fail(f"weights are all zero, so normalize={self.normalize!r} cannot rescale them")
            class_weights = Blob.from_numpy(backend, np.asarray(self.weights), f"{self.name}-class-weights",
                                            dtype=pred.dtype)
        return shape, class_weights


def run_layer_op(state: LayerState, op: str, *args: Any, **kwargs: Any) -> None:
    """Call ``state.ops.<op>(*args, **kwargs)``, turning the op's bad-input errors (ValueError, TypeError)
    into errors that name the layer (a LayerError passes through unchanged)."""
    try:
        getattr(state.ops, op)(*args, **kwargs)
    except (ValueError, TypeError) as err:
        if isinstance(err, LayerError):
            raise
        raise state.layer.fail(str(err)) from err


class _LossState(LayerState):
    """Runs a loss op, turning its bad-input errors into errors that name the layer."""

    def _run(self, op: str, *args: Any, **kwargs: Any) -> None:
        run_layer_op(self, op, *args, **kwargs)


# --- SoftmaxLossLayer --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SoftmaxLossLayer(_ClassificationLoss):
    """Softmax along the class axis followed by the multinomial logistic loss, fused (Mocha, Caffe).

    ``bottoms=[logits, label]``. ``loss = weight * sum_p -w[l_p] * log(max(softmax(x)_p[l_p], 1e-20)) /
    (N * prod(S))``; the gradient w.r.t. the logits is ``weight * w[l_p] * (softmax(x) - onehot(l_p)) /
    (N * prod(S))`` (nothing flows to the label).
    """

    name: str = "softmax-loss"
    can_backprop = True

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> SoftmaxLossState:
        label_shape, class_weights = self._setup_common(backend, inputs)
        pred = inputs[0]
        n, _, *spatial = pred.shape
        lse = Blob.empty(backend, (n, *spatial), f"{self.name}-lse", dtype=pred.dtype)
        loss = Blob.empty(backend, (1,), f"{self.name}-loss", dtype=pred.dtype)
        return SoftmaxLossState(self, backend, label_shape, class_weights, lse, loss)


class SoftmaxLossState(_LossState):
    layer: SoftmaxLossLayer

    def __init__(self, layer: SoftmaxLossLayer, backend: Any, label_shape: tuple[int, ...],
                 class_weights: Blob | None, lse: Blob, loss_blob: Blob) -> None:
        super().__init__(layer, backend)
        self.label_shape = label_shape
        self.class_weights = class_weights
        self.lse = lse  # (N, *S) log-sum-exp of the logits, kept for the backward
        self.loss_blob = loss_blob  # (1,) the unweighted loss

    def _weights_data(self) -> Any:
        return None if self.class_weights is None else self.class_weights.data

    def forward(self, inputs: list[Blob]) -> None:
        pred, label = inputs
        self._run("softmax_loss_forward", pred.data, label_view(label, self.label_shape), self._weights_data(),
                  self.lse.data, self.loss_blob.data, self.layer.normalize)
        self.loss = float(self.layer.weight) * float(self.loss_blob.to_numpy()[0])

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        pred, label = inputs
        if diffs[0] is None:
            return
        self._run("softmax_loss_backward", pred.data, label_view(label, self.label_shape), self._weights_data(),
                  self.lse.data, diffs[0].data, self.layer.normalize, scale=float(self.layer.weight))


# --- MultinomialLogisticLossLayer --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MultinomialLogisticLossLayer(_ClassificationLoss):
    """Multinomial logistic loss on probabilities (e.g. the output of a SoftmaxLayer); no backward,
    like Mocha (use SoftmaxLossLayer to train).

    ``bottoms=[prob, label]``; ``loss = weight * sum_p -w[l_p] * log(max(prob_p[l_p], 1e-20)) /
    (N * prod(S))``.
    """

    name: str = "multinomial-logistic-loss"
    can_backprop = False

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> MultinomialLogisticLossState:
        label_shape, class_weights = self._setup_common(backend, inputs)
        loss = Blob.empty(backend, (1,), f"{self.name}-loss", dtype=inputs[0].dtype)
        return MultinomialLogisticLossState(self, backend, label_shape, class_weights, loss)


class MultinomialLogisticLossState(_LossState):
    layer: MultinomialLogisticLossLayer

    def __init__(self, layer: MultinomialLogisticLossLayer, backend: Any, label_shape: tuple[int, ...],
                 class_weights: Blob | None, loss_blob: Blob) -> None:
        super().__init__(layer, backend)
        self.label_shape = label_shape
        self.class_weights = class_weights
        self.loss_blob = loss_blob

    def forward(self, inputs: list[Blob]) -> None:
        prob, label = inputs
        weights = None if self.class_weights is None else self.class_weights.data
        self._run("multinomial_logistic_loss_forward", prob.data, label_view(label, self.label_shape), weights,
                  self.loss_blob.data, self.layer.normalize)
        self.loss = float(self.layer.weight) * float(self.loss_blob.to_numpy()[0])


# --- SoftlabelSoftmaxLossLayer -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SoftlabelSoftmaxLossLayer(Layer):
    """Softmax along the class axis followed by the cross-entropy with a target distribution (Mocha).

    ``bottoms=[logits, target]``, both ``(N, C, *S)`` (the target may have another shape with the same
    non-singleton dimensions, e.g. ``(N, C)`` for an ``(N, C, 1, 1)`` prediction). With ``p =
    softmax(x)`` along axis 1 (Mocha's ``dim=-2``):

    * ``loss = weight * sum -q * log(max(p, 1e-20)) / (N * prod(S))``, the sum over every element;
    * the logits' gradient is ``weight * (p - q) / (N * prod(S))``, Mocha's formula: the exact
      gradient when ``q`` sums to 1 over the classes at each position (not checked; Mocha's docs call
      the layer "KL", which differs from this cross-entropy by the entropy of ``q``, a constant);
    * the target's gradient, ``-weight * log(max(p, 1e-20)) / (N * prod(S))``, is written when the
      target needs one (e.g. the output of a teacher net that trains too). Mocha never writes it, which
      leaves whatever the diff held; here it is the exact gradient.
    """

    name: str = "softlabel-softmax-loss"
    weight: float = 1.0

    is_sink = True
    has_loss = True
    can_backprop = True

    def validate(self) -> None:
        check_two_bottoms(self, "logits, target")
        check_weight(self, self.weight)

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> SoftlabelSoftmaxLossState:
        if len(inputs) != 2:
            raise self.fail(f"expected 2 input blobs, got {len(inputs)}")
        pred, target = inputs
        if len(pred.shape) < 2 or 0 in pred.shape:
            raise self.fail(f"the prediction {self.bottoms[0]!r} must be (N, C, ...) with ndim >= 2 and no empty "
                            f"dimension, got shape {pred.shape}")
        target_shape_for(self, pred.shape, target.shape)
        n, _, *spatial = pred.shape
        lse = Blob.empty(backend, (n, *spatial), f"{self.name}-lse", dtype=pred.dtype)
        loss = Blob.empty(backend, (1,), f"{self.name}-loss", dtype=pred.dtype)
        return SoftlabelSoftmaxLossState(self, backend, pred.shape, lse, loss)


class SoftlabelSoftmaxLossState(_LossState):
    layer: SoftlabelSoftmaxLossLayer

    def __init__(self, layer: SoftlabelSoftmaxLossLayer, backend: Any, shape: tuple[int, ...], lse: Blob,
                 loss_blob: Blob) -> None:
        super().__init__(layer, backend)
        self.shape = shape  # the prediction's shape; the target is viewed with it
        self.lse = lse  # (N, *S) log-sum-exp of the logits, kept for the backward
        self.loss_blob = loss_blob  # (1,) the unweighted loss

    def forward(self, inputs: list[Blob]) -> None:
        pred, target = inputs
        self._run("softlabel_softmax_loss_forward", pred.data, viewed(target, self.shape), self.lse.data,
                  self.loss_blob.data)
        self.loss = float(self.layer.weight) * float(self.loss_blob.to_numpy()[0])

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        pred, target = inputs
        dx, dtarget = viewed(diffs[0], self.shape), viewed(diffs[1], self.shape)
        if dx is not None or dtarget is not None:
            self._run("softlabel_softmax_loss_backward", pred.data, viewed(target, self.shape), self.lse.data, dx,
                      dtarget, float(self.layer.weight))


__all__ = ["MultinomialLogisticLossLayer", "MultinomialLogisticLossState", "SoftlabelSoftmaxLossLayer",
           "SoftlabelSoftmaxLossState", "SoftmaxLossLayer", "SoftmaxLossState", "check_two_bottoms", "check_weight",
           "label_shape_for", "label_view", "run_layer_op", "target_shape_for", "viewed"]
