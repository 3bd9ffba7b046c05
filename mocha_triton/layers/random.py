"""Random layers: RandomNormalLayer (a source of N(0, 1) noise) and RandomMaskLayer (in-place corruption).

* :class:`RandomNormalLayer` — a source (no bottoms): every forward fills each top, of shape
  ``(batch_sizes[i], *output_dims)``, with fresh i.i.d. standard normal draws (the reparameterisation
  noise of a variational auto-encoder). Mocha's ``output_dims`` is the per-sample shape in Julia order
  and its batch axis comes last; here ``output_dims`` is the per-sample shape in Python order and the
  batch axis comes first.
* :class:`RandomMaskLayer` — in place on each of its bottoms: every forward zeroes each element with
  probability ``ratio`` and leaves the others unchanged, **without** rescaling (the corruption of a
  denoising auto-encoder); the backward multiplies each bottom's gradient by the same mask. It is Mocha's
  composition: one :class:`~mocha_triton.DropoutLayer` with ``auto_scale=False`` (scale 1, so the kept
  values are exactly the inputs) per bottom. From the dropout it inherits how the draw is kept (a stored
  uniform blob per bottom, ``state.dropouts[i].rand``; the mask is ``rand > ratio``), the restore of the
  bottom's values after the backward (the producer's backward needs its real output), and the phases:
  the mask is applied in the ``"train"`` phase and the layer is the identity in ``"test"`` nets (Mocha has
  no phases; its test nets leave the layer out).

Both layers draw from the backend's device random stream: Philox at ``backend.random_seed``, with a
fresh ``backend.next_random_offset(count)`` per blob and forward, through the ``normal_fill`` and
``uniform_fill`` ops. So both backends draw the same numbers, reseeding the backend replays them, and a
snapshot (whose resume point holds the backend's seed and offset) resumes them bit for bit; neither
layer has a read position of its own to save.
"""

from __future__ import annotations

import numbers
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mocha_triton.blob import Blob
from mocha_triton.checks.common import FLOAT_DTYPES
from mocha_triton.layers.base import Layer, LayerState
from mocha_triton.layers.dropout import DropoutLayer, DropoutState

__all__ = ["RandomMaskLayer", "RandomMaskState", "RandomNormalLayer", "RandomNormalState"]


def _positive_ints(layer: Layer, name: str, value: Any) -> tuple[int, ...]:
    try:
        if not isinstance(value, tuple) or any(isinstance(v, bool) for v in value):
            raise TypeError
        ints = tuple(operator.index(v) for v in value)
    except TypeError:
        raise layer.fail(f"{name} must be a tuple of ints, got {value!r}") from None
    if any(v < 1 for v in ints):
        raise layer.fail(f"{name} must hold positive ints, got {value!r}")
    return ints


@dataclass(frozen=True, kw_only=True)
class RandomNormalLayer(Layer):
    """A source of standard normal noise: top i is ``(batch_sizes[i], *output_dims)``, redrawn every forward.

    ``batch_sizes`` has one entry per top (an int means the same for every top). ``eltype`` is the
    dtype of the tops: None (the default) is the backend's dtype; any other dtype is refused, since the
    float blobs of a net all have the backend's dtype (Mocha's default ``Float32`` is its backends' usual
    one).
    """

    name: str = "random-normal"
    output_dims: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    eltype: Any = None

    is_source = True

    def validate(self) -> None:
        if self.bottoms:
            raise self.fail(f"is a source and takes no bottoms, got {self.bottoms}")
        names_ok = all(isinstance(t, str) and t for t in self.tops) and len(set(self.tops)) == len(self.tops)
        if not self.tops or not names_ok:
            raise self.fail(f"tops must be a non-empty list of distinct names, got {self.tops!r}")
        object.__setattr__(self, "output_dims", _positive_ints(self, "output_dims", self.output_dims))
        batch_sizes = self.batch_sizes
        if isinstance(batch_sizes, numbers.Integral) and not isinstance(batch_sizes, bool):
            batch_sizes = (batch_sizes,) * len(self.tops)
        batch_sizes = _positive_ints(self, "batch_sizes", batch_sizes)
        if len(batch_sizes) != len(self.tops):
            raise self.fail(f"batch_sizes must have one entry per top {self.tops}, got {batch_sizes}")
        object.__setattr__(self, "batch_sizes", batch_sizes)
        if self.eltype is not None:
            try:
                eltype = np.dtype(self.eltype).name
            except TypeError:
                eltype = None
            if eltype not in FLOAT_DTYPES:
                raise self.fail(f"eltype must be None (the backend's dtype) or one of {FLOAT_DTYPES}, "
                                f"got {self.eltype!r}")
            object.__setattr__(self, "eltype", eltype)

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> RandomNormalState:
        if inputs:
            raise self.fail(f"is a source and takes no input blobs, got {len(inputs)}")
        if self.eltype is not None and self.eltype != backend.dtype:
            raise self.fail(f"eltype {self.eltype} differs from the dtype {backend.dtype} of the backend "
                            f"{backend!r}; leave eltype=None to use the backend's")
        blobs = [Blob.empty(backend, (n, *self.output_dims), top) for top, n in zip(self.tops, self.batch_sizes)]
        return RandomNormalState(self, backend, blobs)


class RandomNormalState(LayerState):
    """Tops: the last forward's draws."""

    def forward(self, inputs: list[Blob]) -> None:
        backend = self.backend
        for blob in self.blobs:
            self.ops.normal_fill(blob.data, 0.0, 1.0, backend.random_seed, backend.next_random_offset(blob.size))


@dataclass(frozen=True, kw_only=True)
class RandomMaskLayer(Layer):
    """Zeroes each element of each bottom with probability ``ratio``, in place and without rescaling; no tops."""

    name: str = "random-mask"
    ratio: float = 0.5

    is_inplace = True
    can_backprop = True

    def validate(self) -> None:
        if isinstance(self.ratio, bool) or not isinstance(self.ratio, numbers.Real) or not 0 < self.ratio < 1:
            raise self.fail(f"ratio must be a number in (0, 1), got {self.ratio!r}")
        if not self.bottoms:
            raise self.fail("needs at least one bottom")
        if len(set(self.bottoms)) != len(self.bottoms):
            raise self.fail(f"bottoms must be distinct (a blob is masked once), got {self.bottoms}")
        if self.tops:
            raise self.fail(f"works in place on its bottoms and takes no tops, got {self.tops}")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> RandomMaskState:
        if len(inputs) != len(self.bottoms):
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        if phase not in ("train", "test"):
            raise self.fail(f"phase must be 'train' or 'test', got {phase!r}")
        diffs = list(diffs) if diffs else [None] * len(inputs)
        dropouts = [
            DropoutLayer(name=f"{self.name}-dropout-{i}", bottoms=(bottom,), ratio=float(self.ratio),
                         auto_scale=False).setup(backend, [x], [dx], phase)
            for i, (bottom, x, dx) in enumerate(zip(self.bottoms, inputs, diffs))
        ]
        return RandomMaskState(self, backend, dropouts)


class RandomMaskState(LayerState):
    """No tops; ``dropouts[i]`` is the non-scaling dropout state of bottom i (its ``rand`` blob holds the
    last forward's uniform draws: element kept where ``rand > ratio``)."""

    def __init__(self, layer: RandomMaskLayer, backend: Any, dropouts: list[DropoutState]) -> None:
        super().__init__(layer, backend)
        self.dropouts = dropouts

    def forward(self, inputs: list[Blob]) -> None:
        for dropout, x in zip(self.dropouts, inputs):
            dropout.forward([x])

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        for dropout, x, dx in zip(self.dropouts, inputs, diffs):
            dropout.backward([x], [dx])

    def shutdown(self) -> None:
        for dropout in self.dropouts:
            dropout.shutdown()
