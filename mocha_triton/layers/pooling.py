"""PoolingLayer: max or mean pooling over 2-D windows of every channel, Caffe's rules; ChannelPoolingLayer:
max or mean pooling along one axis (Mocha's rules).

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

``ChannelPoolingLayer`` pools 1-D windows along one non-batch axis (by default the channels) of
bottoms of any rank; see its docstring.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

from mocha_triton.blob import Blob
from mocha_triton.checks.pooling import channel_pool_output_size, pool2d_output_size
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


# --- ChannelPoolingLayer -------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ChannelPoolingLayer(Layer):
    """Pools 1-D windows along the axis ``channel_dim`` of each bottom (Mocha's ChannelPoolingLayer).

    ``kernel`` and ``stride`` are ints; ``pad`` is ``(front, back)`` (an int pads both ends alike), each
    in ``[0, kernel)``. Along an axis of C elements the top has ``OC = ceil((C + front + back - kernel) /
    stride) + 1`` of them, one fewer when the last window would start in the back padding; window
    ``oc`` covers ``[oc * stride - front, oc * stride - front + kernel)`` clipped to the axis. Max
    keeps the first strict maximum (its index, for the backward); **mean divides by ``kernel``**
    always, as Mocha does (padding and the part of a last window past the padding count as zeros,
    unlike PoolingLayer's Caffe divisor). Bottoms may differ in shape and rank (>= 2); each gets its own top.

    ``channel_dim`` is a Python axis of the row-major blob: 1 (the default, the channels of NCHW) up
    to ``ndim - 1``, or negative counting from the end (``-1`` is the last axis); the batch axis 0
    cannot be pooled. Mocha counts its column-major axes the other way: its ``channel_dim=d`` is
    Python's ``-1 - d`` for ``d < 0`` (Mocha's default -2 is Python's 1) and ``ndim - d`` for ``d > 0``.

    The rules are Mocha's, except that two kinds of configuration are errors here: a padding of
    ``kernel`` or more at either end (Mocha then makes windows of padding only and reads outside the
    blob for them) and a kernel longer than the padded axis (as in PoolingLayer; Mocha's size rule
    then gives no window at all unless the stride is long enough).

    Why not the 2-D pooling ops on an ``(M, 1, C, S)`` view with a ``(kernel, 1)`` window? They pad
    both ends alike, where Mocha's ``(front, back)`` may differ (e.g. ``(1, 2)`` for a window of 4
    centred as LRN centres it), which changes both the output size and the window starts; and their
    mean divides by the window clipped to the padded axis (Caffe), where Mocha divides by ``kernel``:
    the last window of ``C = 5, kernel = 3, stride = 3`` sums 2 channels and divides by 3 here, by 2
    there. So channel pooling has ops of its own (``max_channel_pool_*`` and ``mean_channel_pool_*``
    in the pooling family), on an ``(M, C, S)`` view: ``M`` the product of the axes before the pooled
    one, ``S`` of those after it.
    """

    name: str = "channel-pooling"
    kernel: int = 1
    stride: int = 1
    pad: tuple[int, int] = (0, 0)
    channel_dim: int = 1
    pooling: Any = field(default_factory=MaxPooling)

    can_backprop = True

    def validate(self) -> None:
        for field_name in ("kernel", "stride"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise self.fail(f"{field_name} must be an int >= 1, got {value!r}")
        pad = self.pad if isinstance(self.pad, (tuple, list)) else (self.pad, self.pad)
        try:
            if len(pad) != 2 or any(isinstance(v, bool) for v in pad):
                raise TypeError
            pad = tuple(operator.index(v) for v in pad)
        except TypeError:
            raise self.fail(f"pad must be an int or a pair of ints (front, back), got {self.pad!r}") from None
        if not all(0 <= v < self.kernel for v in pad):
            raise self.fail(f"pad {pad} must be >= 0 and smaller than kernel {self.kernel} at both ends")
        object.__setattr__(self, "pad", pad)
        if isinstance(self.channel_dim, bool) or not isinstance(self.channel_dim, int) or self.channel_dim == 0:
            raise self.fail(f"channel_dim must be a non-zero int (a Python axis; 0 is the batch axis), "
                            f"got {self.channel_dim!r}")
        if not isinstance(self.pooling, (MaxPooling, MeanPooling)):
            raise self.fail(f"pooling must be Pooling.Max() or Pooling.Mean(), got {self.pooling!r}")
        if not self.bottoms or len(self.bottoms) != len(self.tops):
            raise self.fail(f"needs one top per bottom, got bottoms {self.bottoms} and tops {self.tops}")

    @property
    def is_max(self) -> bool:
        return isinstance(self.pooling, MaxPooling)

    def view(self, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """The ``(M, C, S)`` view of a bottom of ``input_shape`` that the ops pool along its axis 1."""
        axis = self.axis(input_shape)
        return math.prod(input_shape[:axis]), input_shape[axis], math.prod(input_shape[axis + 1:])

    def axis(self, input_shape: tuple[int, ...]) -> int:
        """The pooled axis of a bottom of ``input_shape`` as a non-negative Python axis; checks it."""
        ndim = len(input_shape)
        axis = self.channel_dim + ndim if self.channel_dim < 0 else self.channel_dim
        if not 1 <= axis < ndim:
            raise self.fail(f"channel_dim {self.channel_dim} is not a non-batch axis of a bottom of shape "
                            f"{input_shape} (axes 1 to {ndim - 1}, or -1 to {1 - ndim})")
        return axis

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The top shape of a bottom of ``input_shape``: the pooled axis shortened to OC; checks the input."""
        axis = self.axis(input_shape)
        try:
            pooled = channel_pool_output_size(input_shape[axis], self.kernel, self.stride, self.pad)
        except ValueError as error:
            raise self.fail(f"{error} (a bottom of shape {input_shape})") from error
        return (*input_shape[:axis], pooled, *input_shape[axis + 1:])

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> ChannelPoolingState:
        if len(inputs) != len(self.bottoms):
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        shapes = [self.output_shape(blob.shape) for blob in inputs]
        blobs = [Blob.empty(backend, shape, top, dtype=blob.dtype)
                 for shape, top, blob in zip(shapes, self.tops, inputs)]
        argmax = ([Blob.empty(backend, shape, top + "-argmax", dtype="int32") for shape, top in zip(shapes, self.tops)]
                  if self.is_max else [])
        views = [(self.view(blob.shape), self.view(shape)) for blob, shape in zip(inputs, shapes)]
        return ChannelPoolingState(self, backend, blobs, argmax, views)


class ChannelPoolingState(LayerState):
    """Tops with the pooled axis shortened; for max pooling, one int32 argmax blob per top
    (``state.argmax``, the index along the pooled axis of each output's maximum)."""

    layer: ChannelPoolingLayer

    def __init__(self, layer: ChannelPoolingLayer, backend: Any, blobs: list[Blob], argmax: list[Blob],
                 views: list[tuple[tuple[int, int, int], tuple[int, int, int]]]) -> None:
        super().__init__(layer, backend, blobs)
        self.argmax = argmax
        self.views = views  # the (M, C, S) views of each bottom and of its top

    def forward(self, inputs: list[Blob]) -> None:
        layer = self.layer
        for i, (x, y, (x_view, y_view)) in enumerate(zip(inputs, self.blobs, self.views)):
            x3, y3 = x.reshape(x_view).data, y.reshape(y_view).data
            if layer.is_max:
                self.ops.max_channel_pool_forward(x3, y3, self.argmax[i].reshape(y_view).data, layer.kernel,
                                                  layer.stride, layer.pad)
            else:
                self.ops.mean_channel_pool_forward(x3, y3, layer.kernel, layer.stride, layer.pad)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        layer = self.layer
        for i, (dy, dx, (x_view, y_view)) in enumerate(zip(self.blobs_diff, diffs, self.views)):
            if dy is None or dx is None:
                continue
            dy3, dx3 = dy.reshape(y_view).data, dx.reshape(x_view).data
            if layer.is_max:
                self.ops.max_channel_pool_backward(dy3, self.argmax[i].reshape(y_view).data, dx3, layer.kernel,
                                                   layer.stride, layer.pad)
            else:
                self.ops.mean_channel_pool_backward(dy3, dx3, layer.kernel, layer.stride, layer.pad)
