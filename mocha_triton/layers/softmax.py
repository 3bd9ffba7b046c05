"""SoftmaxLayer: the softmax along the channel axis (axis 1), at every spatial position.

Each bottom ``(N, C, *S)`` (any number of dimensions >= 2) gives a top of the same shape with
``y[n, :, s] = exp(x[n, :, s]) / sum_c exp(x[n, c, s])`` (computed stably). The backward is
``dx = y * (dy - sum_c(dy * y))``. N bottoms -> N tops; their shapes may differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerState


@dataclass(frozen=True, kw_only=True)
class SoftmaxLayer(Layer):
    """Softmax along axis 1 of each bottom into a top of the same shape."""

    can_backprop = True

    def validate(self) -> None:
        if not self.bottoms or len(self.bottoms) != len(self.tops):
            raise self.fail(f"needs one top per bottom, got bottoms {self.bottoms} and tops {self.tops}")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> SoftmaxState:
        if len(inputs) != len(self.bottoms):
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        for blob in inputs:
            if blob.ndim < 2:
                raise self.fail(f"needs bottoms with at least 2 dimensions (N, C, ...), got shape {blob.shape}")
        blobs = [Blob.empty(backend, blob.shape, top) for blob, top in zip(inputs, self.tops)]
        return SoftmaxState(self, backend, blobs)


class SoftmaxState(LayerState):
    """Tops: the probabilities, kept for the backward."""

    layer: SoftmaxLayer

    def forward(self, inputs: list[Blob]) -> None:
        for x, y in zip(inputs, self.blobs):
            self.ops.softmax_forward(x.data, y.data)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        for y, dy, dx in zip(self.blobs, self.blobs_diff, diffs):
            if dy is not None and dx is not None:
                self.ops.softmax_backward(y.data, dy.data, dx.data)
