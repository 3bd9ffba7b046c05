"""DropoutLayer: zero a random fraction of a blob in place during training (Srivastava et al.).

In the "train" phase every forward draws ``u ~ U[0, 1)`` for each element into a stored blob (Mocha's
``rand_vals``) and rescales the bottom in place: ``x <- x * [u > ratio] * scale``, with
``scale = 1 / (1 - ratio)`` when ``auto_scale`` (the default: the expected value is unchanged, so no
rescaling is needed at test time) and 1 otherwise. The backward applies the same mask and scale to
the bottom's gradient, in place, and then puts the bottom's values from before the dropout back.

Why the restore: the layer that produced the bottom computes its own backward from its stored
output (a fused neuron's derivative is taken from ``y``: ``y (1 - y)`` for a sigmoid, ``1 - y^2`` for
a tanh; a softmax uses its probabilities), and that backward runs after this one. Dropped or rescaled
values there would give it a wrong derivative (only a ReLU does not mind). So the forward keeps a copy
of the bottom, one extra blob, like Mocha's GPU dropout. Between forward and backward the bottom
holds the dropped-out values, which is what the consumers read.

In the "test" phase the layer is the identity (both passes do nothing), so one layer list serves a
Caffe-style train/test pair of nets. Mocha has no such phase; its test nets leave dropout out.

The draws come from the backend's Philox stream (``backend.random_seed`` and a fresh
``backend.next_random_offset`` per forward), so both backends draw the same masks and reseeding the
backend replays them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerState


@dataclass(frozen=True, kw_only=True)
class DropoutLayer(Layer):
    """In-place dropout on its single bottom; no tops."""

    ratio: float = 0.5
    auto_scale: bool = True

    is_inplace = True
    can_backprop = True

    def validate(self) -> None:
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)) or not 0 < self.ratio < 1:
            raise self.fail(f"ratio must be a number in (0, 1), got {self.ratio!r}")
        if not isinstance(self.auto_scale, bool):
            raise self.fail(f"auto_scale must be a bool, got {self.auto_scale!r}")
        if len(self.bottoms) != 1:
            raise self.fail(f"needs exactly one bottom, got {self.bottoms}")
        if self.tops:
            raise self.fail(f"works in place on its bottom and takes no tops, got {self.tops}")

    @property
    def scale(self) -> float:
        return 1.0 / (1.0 - self.ratio) if self.auto_scale else 1.0

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> DropoutState:
        if len(inputs) != 1:
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        if phase not in ("train", "test"):
            raise self.fail(f"phase must be 'train' or 'test', got {phase!r}")
        return DropoutState(self, backend, inputs[0], phase)


class DropoutState(LayerState):
    """No tops; ``state.rand`` holds the last forward's uniform draws (the mask is ``rand > ratio``) and
    ``state.saved`` the bottom's values before the dropout (train phase only)."""

    layer: DropoutLayer

    def __init__(self, layer: DropoutLayer, backend: Any, bottom: Blob, phase: str) -> None:
        super().__init__(layer, backend)
        self.phase = phase
        self.rand = Blob.empty(backend, bottom.shape, layer.name + "-rand", dtype=bottom.dtype)
        self.saved = Blob.empty(backend, bottom.shape, layer.name + "-saved", dtype=bottom.dtype)
        self._pending_restore = False  # a forward has dropped values that the backward must restore

    def forward(self, inputs: list[Blob]) -> None:
        x, rand, layer = inputs[0], self.rand, self.layer
        if self.phase != "train" or not rand.size:
            return
        self.ops.copy(x.data, self.saved.data)
        self.ops.uniform_fill(rand.data, 0.0, 1.0, self.backend.random_seed, self.backend.next_random_offset(rand.size))
        self.ops.dropout_forward(x.data, rand.data, x.data, float(layer.ratio), layer.scale)
        self._pending_restore = True

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        if self.phase != "train" or not self.rand.size:
            return
        dx = diffs[0]
        if dx is not None:
            self.ops.dropout_backward(dx.data, self.rand.data, dx.data, float(self.layer.ratio), self.layer.scale)
        if self._pending_restore:  # the producer's backward needs its real output back
            self.ops.copy(self.saved.data, inputs[0].data)
            self._pending_restore = False
