"""LRNLayer (local response normalization) and PowerLayer, with Mocha's parameters.

**LRNLayer** normalises each element of a bottom ``(N, C, H, W)`` by the squares of its neighbours::

    y = x / (shift + scale * mean of x**2 over the window) ** power

``mode="across_channel"`` (Mocha's ``LRNMode.AcrossChannel()``, the default) takes the window over
``kernel`` neighbouring channels at the same pixel; ``mode="within_channel"``
(``LRNMode.WithinChannel()``) over the ``kernel x kernel`` square of pixels around the element in
its own channel. The window has ``pre = (kernel - 1) // 2`` elements before the centre and
``kernel - 1 - pre`` after; it is zero padded, and the mean always divides by the full window
(``kernel`` or ``kernel**2``). The backward uses the stored denominator base (one extra blob per
bottom, Caffe's ``scale_``).

Mapping to Caffe's ``lrn_param`` and to the op contract (``lrn_forward``):

=======================  ======================  ==================================================
Mocha / this layer       Caffe                   op argument
=======================  ======================  ==================================================
``kernel`` (5)           ``local_size`` (5)      ``size``
``scale`` (1)            ``alpha`` (1)           ``alpha`` (both divide the sum by the window size,
                                                 so Mocha's scale *is* Caffe's alpha)
``shift`` (1)            ``k`` (1)               ``k``; Caffe's WITHIN_CHANNEL ignores ``k`` and uses 1
``power`` (0.75)         ``beta`` (0.75)         ``beta``
``mode``                 ``norm_region``         ``region``: "across_channels" / "within_channel"
=======================  ======================  ==================================================

Mocha computes the layer as a composition (split, power 2, channel or spatial mean pooling, power,
element-wise division); here one fused op does it, with the same result. Mocha's ``channel_dim`` is
always the channel axis (1) here: the layout is NCHW.

**PowerLayer** computes ``y = (shift + scale * x) ** power`` elementwise on every bottom (any shape),
with ``dy/dx = power * scale * (shift + scale * x) ** (power - 1)``. NumPy's rules apply: a negative
base with a non-integer power gives NaN, ``0 ** negative`` gives inf; ``power == 0`` or ``scale == 0``
give a constant whose gradient is exactly 0.

Both layers take N bottoms to N tops (shapes may differ between bottoms).
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass
from typing import Any

from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerState

LRN_MODES = ("across_channel", "within_channel")
_REGIONS = {"across_channel": "across_channels", "within_channel": "within_channel"}  # mode -> op region


class LRNMode:
    """Mocha's spelling of the LRN modes: ``LRNMode.AcrossChannel()`` is ``"across_channel"``."""

    @staticmethod
    def AcrossChannel() -> str:  # noqa: N802 - Mocha's name
        return "across_channel"

    @staticmethod
    def WithinChannel() -> str:  # noqa: N802 - Mocha's name
        return "within_channel"


def _real(layer: Layer, name: str, value: Any) -> float:
    """``value`` as a finite float, else the layer's error naming the field."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise layer.fail(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _one_top_per_bottom(layer: Layer) -> None:
    if not layer.bottoms or len(layer.bottoms) != len(layer.tops):
        raise layer.fail(f"needs one top per bottom, got bottoms {layer.bottoms} and tops {layer.tops}")


@dataclass(frozen=True, kw_only=True)
class LRNLayer(Layer):
    """Local response normalization of each bottom ``(N, C, H, W)`` into a top of the same shape.

    ``kernel`` (a positive int) is the window length, ``scale >= 0`` multiplies the window mean of
    ``x**2``, ``shift > 0`` is added to it and ``power`` is the exponent of the result, which divides x.
    """

    kernel: int = 5
    scale: float = 1.0
    shift: float = 1.0
    power: float = 0.75
    mode: str = "across_channel"

    can_backprop = True

    def validate(self) -> None:
        try:
            if isinstance(self.kernel, bool):
                raise TypeError
            kernel = operator.index(self.kernel)
        except TypeError:
            raise self.fail(f"kernel must be a positive int, got {self.kernel!r}") from None
        if kernel < 1:
            raise self.fail(f"kernel must be a positive int, got {self.kernel!r}")
        object.__setattr__(self, "kernel", kernel)
        for name in ("scale", "shift", "power"):
            object.__setattr__(self, name, _real(self, name, getattr(self, name)))
        if self.scale < 0:
            raise self.fail(f"scale must be >= 0, got {self.scale!r}")
        if self.shift <= 0:
            raise self.fail(f"shift must be > 0 (it keeps the denominator positive), got {self.shift!r}")
        if self.mode not in LRN_MODES:
            raise self.fail(f"mode must be one of {LRN_MODES} (LRNMode.AcrossChannel() or "
                            f"LRNMode.WithinChannel()), got {self.mode!r}")
        _one_top_per_bottom(self)

    @property
    def region(self) -> str:
        """The op contract's name of the mode: "across_channels" or "within_channel"."""
        return _REGIONS[self.mode]

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> LRNState:
        if len(inputs) != len(self.bottoms):
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        for blob in inputs:
            if blob.ndim != 4:
                raise self.fail(f"needs 4-D bottoms (N, C, H, W), got shape {blob.shape}")
        blobs = [Blob.empty(backend, blob.shape, top) for blob, top in zip(inputs, self.tops)]
        scales = [Blob.empty(backend, blob.shape, top + "-scale") for blob, top in zip(inputs, self.tops)]
        return LRNState(self, backend, blobs, scales)


class LRNState(LayerState):
    """Tops, and per top the stored ``scale = shift + scale * mean(x**2)`` (``state.scales``)."""

    layer: LRNLayer

    def __init__(self, layer: LRNLayer, backend: Any, blobs: list[Blob], scales: list[Blob]) -> None:
        super().__init__(layer, backend, blobs)
        self.scales = scales

    def forward(self, inputs: list[Blob]) -> None:
        layer = self.layer
        for x, y, scale in zip(inputs, self.blobs, self.scales):
            self.ops.lrn_forward(x.data, y.data, scale.data, layer.kernel, layer.scale, layer.power, layer.shift,
                                 layer.region)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        layer = self.layer
        for x, y, scale, dy, dx in zip(inputs, self.blobs, self.scales, self.blobs_diff, diffs):
            if dy is not None and dx is not None:
                self.ops.lrn_backward(x.data, y.data, scale.data, dy.data, dx.data, layer.kernel, layer.scale,
                                      layer.power, layer.region)


@dataclass(frozen=True, kw_only=True)
class PowerLayer(Layer):
    """``y = (shift + scale * x) ** power`` on each bottom, into a top of the same shape."""

    power: float = 1.0
    scale: float = 1.0
    shift: float = 0.0

    can_backprop = True

    def validate(self) -> None:
        for name in ("power", "scale", "shift"):
            object.__setattr__(self, name, _real(self, name, getattr(self, name)))
        _one_top_per_bottom(self)

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> PowerState:
        if len(inputs) != len(self.bottoms):
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        return PowerState(self, backend, [Blob.empty(backend, blob.shape, top) for blob, top in zip(inputs, self.tops)])


class PowerState(LayerState):
    """Tops; the backward reads the bottoms (the gradient is computed from x)."""

    layer: PowerLayer

    def forward(self, inputs: list[Blob]) -> None:
        layer = self.layer
        for x, y in zip(inputs, self.blobs):
            self.ops.power_forward(x.data, y.data, layer.power, layer.scale, layer.shift)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        layer = self.layer
        for x, dy, dx in zip(inputs, self.blobs_diff, diffs):
            if dy is not None and dx is not None:
                self.ops.power_backward(x.data, dy.data, dx.data, layer.power, layer.scale, layer.shift)
