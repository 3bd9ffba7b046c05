"""AccuracyLayer: the classification accuracy, accumulated over forwards (a statistics layer).

``bottoms=[prediction, label]`` with the same shapes as the classification losses
(:mod:`mocha_triton.layers.loss`): scores ``(N, C, *S)`` and one 0-based class index per sample and
spatial position. A position counts as correct when fewer than ``top_k`` classes rank above its
label: a higher score, or an equal score at a lower class index. For ``top_k=1`` that is
``argmax == label`` with argmax's first index on ties, as Mocha (Caffe counts every tied class as above
the label).

The layer accumulates the number of correct positions and the number of positions over every
forward until ``reset_statistics()``; ``statistics()`` returns ``{"<name>-accuracy": correct / seen}``
and, with ``report_error=True``, ``"<name>-error": 1 - accuracy`` (Mocha's keys). Before any forward
the accuracy is reported as 0.0, like Mocha.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerState
from mocha_triton.layers.loss import check_two_bottoms, label_shape_for, label_view, run_layer_op


@dataclass(frozen=True, kw_only=True)
class AccuracyLayer(Layer):
    """Top-k classification accuracy, accumulated until ``reset_statistics``."""

    name: str = "accuracy"
    top_k: int = 1
    report_error: bool = False

    is_sink = True
    has_stats = True

    def validate(self) -> None:
        check_two_bottoms(self)
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, numbers.Integral) or self.top_k < 1:
            raise self.fail(f"top_k must be a positive int, got {self.top_k!r}")
        if not isinstance(self.report_error, bool):
            raise self.fail(f"report_error must be a bool, got {self.report_error!r}")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> AccuracyState:
        if len(inputs) != 2:
            raise self.fail(f"expected 2 input blobs, got {len(inputs)}")
        pred, label = inputs
        label_shape = label_shape_for(self, pred.shape, label.shape)
        if self.top_k > pred.shape[1]:
            raise self.fail(f"top_k={self.top_k} exceeds the {pred.shape[1]} classes of the prediction "
                            f"{self.bottoms[0]!r} (shape {pred.shape})")
        correct = Blob.empty(backend, (1,), f"{self.name}-correct", dtype="int64")
        positions = pred.shape[0] * math.prod(pred.shape[2:])
        return AccuracyState(self, backend, label_shape, correct, positions)


class AccuracyCounts(LayerState):
    """Correct / seen counts accumulated over forwards until ``reset_statistics`` (shared by the accuracy
    layers); ``statistics()`` reports ``"<name>-accuracy"`` and, with ``report_error``, ``"<name>-error"``."""

    def __init__(self, layer: Layer, backend: Any) -> None:
        super().__init__(layer, backend)
        self.n_correct = 0  # accumulated since the last reset
        self.n_seen = 0

    def add_counts(self, correct: int, seen: int) -> None:
        self.n_correct += correct
        self.n_seen += seen

    @property
    def accuracy(self) -> float:
        """Correct / seen since the last reset (0.0 before any forward, like Mocha)."""
        return self.n_correct / self.n_seen if self.n_seen else 0.0

    def statistics(self) -> dict[str, float]:
        stats = {f"{self.layer.name}-accuracy": self.accuracy}
        if self.layer.report_error:
            stats[f"{self.layer.name}-error"] = 1.0 - self.accuracy
        return stats

    def reset_statistics(self) -> None:
        self.n_correct = 0
        self.n_seen = 0


class AccuracyState(AccuracyCounts):
    layer: AccuracyLayer

    def __init__(self, layer: AccuracyLayer, backend: Any, label_shape: tuple[int, ...], correct: Blob,
                 positions: int) -> None:
        super().__init__(layer, backend)
        self.label_shape = label_shape
        self.correct = correct  # (1,) int64: correct positions of the last forward
        self.positions = positions  # N * prod(S): positions per forward

    def forward(self, inputs: list[Blob]) -> None:
        pred, label = inputs
        run_layer_op(self, "accuracy_forward", pred.data, label_view(label, self.label_shape), self.correct.data,
                     self.layer.top_k)
        self.add_counts(int(self.correct.to_numpy()[0]), self.positions)


__all__ = ["AccuracyCounts", "AccuracyLayer", "AccuracyState"]
