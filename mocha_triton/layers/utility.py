"""Utility layers that move no numbers of their own: SplitLayer (fan-out) and ReshapeLayer (views).

* :class:`SplitLayer` hands one blob to several consumers. Top 1 *is* the bottom blob (the same
  :class:`~mocha_triton.blob.Blob` object); the other tops are copies, or aliases too with
  ``no_copy=True``. The gradient of top 1 *is* the bottom's gradient, and the backward adds the other
  tops' gradients into it. This is how a blob that needs back-propagation fans out (Mocha's rule,
  enforced by ``Net.check_bp_topology``): every consumer then writes its own gradient blob, and the
  split sums them.

  Top 1's consumer must back-propagate (overwrite its bottom gradient on every backward): the sum
  starts from what it wrote. Put a consumer that does not (an accuracy layer, an output layer) on
  another top.
* :class:`ReshapeLayer` gives each bottom another per-sample shape, keeping the batch dimension. The
  top is a view of the bottom and its gradient a view of the bottom's gradient, so neither pass
  computes anything.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerState


@dataclass(frozen=True, kw_only=True)
class SplitLayer(Layer):
    """One bottom -> K tops holding the same values; backward sums the tops' gradients."""

    no_copy: bool = False

    can_backprop = True

    def validate(self) -> None:
        if len(self.bottoms) != 1:
            raise self.fail(f"needs exactly one bottom, got {self.bottoms}")
        if not self.tops:
            raise self.fail("needs at least one top")
        if not isinstance(self.no_copy, bool):
            raise self.fail(f"no_copy must be a bool, got {self.no_copy!r}")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> SplitState:
        if len(inputs) != 1:
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        x = inputs[0]
        blobs = [x] + [x if self.no_copy else Blob.empty(backend, x.shape, top, dtype=x.dtype)
                       for top in self.tops[1:]]
        state = SplitState(self, backend, blobs)
        if diffs and diffs[0] is not None:
            state.blobs_diff[0] = diffs[0]  # top 1's gradient is the bottom's gradient
        return state


class SplitState(LayerState):
    layer: SplitLayer

    def forward(self, inputs: list[Blob]) -> None:
        x = inputs[0]
        for top in self.blobs[1:]:
            if top is not x:
                self.ops.copy(x.data, top.data)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        dx = diffs[0]
        if dx is None:
            return
        if self.blobs_diff[0] is not dx:  # set up without the bottom's gradient: start from top 1's
            if self.blobs_diff[0] is None:
                dx.fill(0.0)
            else:
                self.ops.copy(self.blobs_diff[0].data, dx.data)
        for dy in self.blobs_diff[1:]:
            if dy is not None:
                self.ops.axpy(1.0, dy.data, dx.data)


@dataclass(frozen=True, kw_only=True)
class ReshapeLayer(Layer):
    """Each bottom ``(N, ...)`` viewed as ``(N, *shape)``; the element count per sample must match."""

    shape: tuple[int, ...]

    can_backprop = True

    def validate(self) -> None:
        try:
            if not isinstance(self.shape, tuple) or any(isinstance(s, bool) for s in self.shape):
                raise TypeError
            shape = tuple(operator.index(s) for s in self.shape)
        except TypeError:
            raise self.fail(f"shape must be a tuple of ints (the per-sample shape), got {self.shape!r}") from None
        if any(s < 1 for s in shape):
            raise self.fail(f"shape must hold positive ints, got {self.shape!r}")
        object.__setattr__(self, "shape", shape)
        if not self.bottoms or len(self.bottoms) != len(self.tops):
            raise self.fail(f"needs one top per bottom, got bottoms {self.bottoms} and tops {self.tops}")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> ReshapeState:
        if len(inputs) != len(self.bottoms):
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        per_sample = math.prod(self.shape)
        for blob in inputs:
            if blob.ndim < 1 or math.prod(blob.shape[1:]) != per_sample:
                raise self.fail(f"cannot reshape a bottom of shape {blob.shape} to (N, *{self.shape}): "
                                f"{math.prod(blob.shape[1:]) if blob.ndim else 0} elements per sample, "
                                f"shape holds {per_sample}")
        blobs = [x.reshape(x.shape[0], *self.shape) for x in inputs]
        for blob, top in zip(blobs, self.tops):
            blob.name = top
        state = ReshapeState(self, backend, blobs)
        for i, dx in enumerate(diffs):
            if dx is not None:
                state.blobs_diff[i] = dx.reshape(dx.shape[0], *self.shape)
        return state


class ViewState(LayerState):
    """Tops and their gradients are views of the bottoms and theirs: both passes are free."""

    def forward(self, inputs: list[Blob]) -> None:
        pass

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        pass


class ReshapeState(ViewState):
    layer: ReshapeLayer
