"""PoolingLayer: max or mean pooling over 2-D windows of every channel, Caffe's rules.

Each bottom ``(N, C, H, W)`` gives a top ``(N, C, OH, OW)``; the bottoms may have different shapes.
The output size rounds like Caffe by default (``ceil_mode=True``: ``OH = ceil((H + 2 ph - KH) / sh) + 1``,
minus one when the last window would start in the padding); ``ceil_mode=False`` rounds down like
PyTorch's default. Windows are clipped to the image; the mean divides by the window clipped to the
padded image (zero padding counts). The exact rules live in :mod:`mocha_triton.checks.pooling`.

``global_pooling=True`` pools each bottom's whole image into one value per channel (the kernel is
the bottom's ``(H, W)``, stride 1, no padding), whatever ``kernel``, ``stride`` and ``pad`` say.

Max pooling keeps the int32 position of every window's maximum (one "argmax" blob per bottom), so
the backward routes each gradient to the input that won. A ``neuron`` is applied to the tops in
place after pooling, and undone (its derivative applied to the top gradient in place) before the
pooling backward, like Mocha.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mocha_triton.blob import Blob
from mocha_triton.checks.pooling import pool2d_output_size
from mocha_triton.layers.base import Layer, LayerState, as_pair, check_neuron
from mocha_triton.neurons import Neuron


@dataclass(frozen=True)
class MaxPooling:
    """Each output is the maximum of its window (the first one in row-major order on ties)."""


@dataclass(frozen=True)
class MeanPooling:
    """Each output is the mean of its window (Caffe's divisor: the window clipped to the padded image)."""


class Pooling:
    """Mocha's ``Pooling`` namespace: ``Pooling.Max()`` and ``Pooling.Mean()``."""

    Max = MaxPooling
    Mean = MeanPooling


@dataclass(frozen=True, kw_only=True)
class PoolingLayer(Layer):
    """Pools each bottom ``(N, C, H, W)`` into a top ``(N, C, OH, OW)``.

    ``kernel``, ``stride`` and ``pad`` are ``(h, w)`` pairs (an int means the same for both), with
    ``0 <= pad < kernel`` (Caffe's rule).
    """

    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    pooling: Any = field(default_factory=MaxPooling)
    ceil_mode: bool = True
    global_pooling: bool = False
    neuron: Neuron = field(default_factory=Neuron)

    can_backprop = True

    def validate(self) -> None:
        object.__setattr__(self, "kernel", as_pair(self, "kernel", self.kernel, 1))
        object.__setattr__(self, "stride", as_pair(self, "stride", self.stride, 1))
        object.__setattr__(self, "pad", as_pair(self, "pad", self.pad, 0))
        if self.pad[0] >= self.kernel[0] or self.pad[1] >= self.kernel[1]:
            raise self.fail(f"pad {self.pad} must be smaller than kernel {self.kernel} in both dimensions")
        if not isinstance(self.pooling, (MaxPooling, MeanPooling)):
            raise self.fail(f"pooling must be Pooling.Max() or Pooling.Mean(), got {self.pooling!r}")
        for name in ("ceil_mode", "global_pooling"):
            if not isinstance(getattr(self, name), bool):
                raise self.fail(f"{name} must be a bool, got {getattr(self, name)!r}")
        check_neuron(self, self.neuron)
        if not self.bottoms or len(self.bottoms) != len(self.tops):
            raise self.fail(f"needs one top per bottom, got bottoms {self.bottoms} and tops {self.tops}")

    @property
    def is_max(self) -> bool:
        return isinstance(self.pooling, MaxPooling)

    def window(self, input_shape: tuple[int, ...]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(kernel, stride, pad) used for a bottom of ``input_shape`` (global pooling takes its image)."""
        if self.global_pooling:
            return (input_shape[2], input_shape[3]), (1, 1), (0, 0)
        return self.kernel, self.stride, self.pad

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The top shape ``(N, C, OH, OW)`` of a bottom of ``input_shape``; checks the input."""
        if len(input_shape) != 4:
            raise self.fail(f"needs 4-D bottoms (N, C, H, W), got shape {input_shape}")
        n, c, h, w = input_shape
        if h < 1 or w < 1:
            raise self.fail(f"got an empty image in a bottom of shape {input_shape}")
        kernel, stride, pad = self.window(input_shape)
        if kernel[0] > h + 2 * pad[0] or kernel[1] > w + 2 * pad[1]:
            raise self.fail(f"kernel {kernel} is larger than the padded input {(h + 2 * pad[0], w + 2 * pad[1])} "
                            f"of shape {input_shape}")
        try:
            oh, ow = pool2d_output_size(h, w, kernel, stride, pad, self.ceil_mode)
        except ValueError as error:
            raise self.fail(str(error)) from error
        return (n, c, oh, ow)

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> PoolingState:
        if len(inputs) != len(self.bottoms):
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        shapes = [self.output_shape(blob.shape) for blob in inputs]
        blobs = [Blob.empty(backend, shape, top) for shape, top in zip(shapes, self.tops)]
        argmax = ([Blob.empty(backend, shape, top + "-argmax", dtype="int32") for shape, top in zip(shapes, self.tops)]
                  if self.is_max else [])
        windows = [self.window(blob.shape) for blob in inputs]
        return PoolingState(self, backend, blobs, argmax, windows)


class PoolingState(LayerState):
    """Tops ``(N, C, OH, OW)``; for max pooling, one int32 argmax blob per top (``state.argmax``)."""

    layer: PoolingLayer

    def __init__(self, layer: PoolingLayer, backend: Any, blobs: list[Blob], argmax: list[Blob],
                 windows: list[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]]) -> None:
        super().__init__(layer, backend, blobs)
        self.argmax = argmax
        self.windows = windows  # (kernel, stride, pad) of each bottom

    def forward(self, inputs: list[Blob]) -> None:
        layer = self.layer
        neuron = layer.neuron
        for i, (x, y, (kernel, stride, pad)) in enumerate(zip(inputs, self.blobs, self.windows)):
            if layer.is_max:
                self.ops.max_pool2d_forward(x.data, y.data, self.argmax[i].data, kernel, stride, pad, layer.ceil_mode)
            else:
                self.ops.mean_pool2d_forward(x.data, y.data, kernel, stride, pad, layer.ceil_mode)
            if not neuron.is_identity:
                self.ops.neuron_forward(y.data, y.data, neuron.op_name, neuron.negative_slope)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        layer = self.layer
        neuron = layer.neuron
        for i, (y, dy, dx, (kernel, stride, pad)) in enumerate(zip(self.blobs, self.blobs_diff, diffs, self.windows)):
            if dy is None or dx is None:
                continue
            if not neuron.is_identity:  # the gradient w.r.t. the pooled values, in place
                self.ops.neuron_backward(y.data, dy.data, dy.data, neuron.op_name, neuron.negative_slope)
            if layer.is_max:
                self.ops.max_pool2d_backward(dy.data, self.argmax[i].data, dx.data, kernel, stride, pad)
            else:
                self.ops.mean_pool2d_backward(dy.data, dx.data, kernel, stride, pad, layer.ceil_mode)
