"""ConvolutionLayer: 2-D cross-correlation with filters and a bias, y = neuron(conv(x, W) + b).

The layout is NCHW. With ``n_filter = F`` filters, ``n_group = g`` groups and a ``kernel = (KH, KW)``,
the parameters are ``"filter"`` of shape ``(F, C // g, KH, KW)`` and ``"bias"`` of shape ``(F,)``; group
``j`` convolves input channels ``[j C/g, (j+1) C/g)`` with filters ``[j F/g, (j+1) F/g)``. The output of
an ``(N, C, H, W)`` bottom is ``(N, F, OH, OW)`` with ``OH = (H + 2 ph - KH) // sh + 1`` (and alike for
OW), like Caffe and Mocha.

Every bottom is convolved with the same parameters into its own top (N bottoms -> N tops); the
bottoms must all have the same shape. The parameter gradients are summed over the bottoms.

The ``neuron`` is fused into the forward op; the backward first turns the top's gradient into the
gradient of the pre-activation, in place (Mocha's order), then computes the parameter and data
gradients.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mocha_triton.blob import Blob
from mocha_triton.checks.conv import conv2d_output_size
from mocha_triton.layers.base import Layer, LayerState, as_pair, check_neuron
from mocha_triton.neurons import Neuron
from mocha_triton.parameter import (
    ConstantInitializer,
    L2Regu,
    NoCons,
    NoRegu,
    ParameterSpec,
    XavierInitializer,
    make_or_share_parameters,
)


@dataclass(frozen=True, kw_only=True)
class ConvolutionLayer(Layer):
    """Convolution of each bottom ``(N, C, H, W)`` into a top ``(N, n_filter, OH, OW)``.

    ``kernel``, ``stride`` and ``pad`` are ``(h, w)`` pairs (an int means the same for both); padding
    is symmetric zero padding. ``param_key`` shares the parameters with other layers of the same key.
    """

    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    n_filter: int = 1
    n_group: int = 1
    neuron: Neuron = field(default_factory=Neuron)
    param_key: str = ""
    filter_init: Any = field(default_factory=XavierInitializer)
    bias_init: Any = field(default_factory=ConstantInitializer)
    filter_regu: Any = field(default_factory=L2Regu)
    bias_regu: Any = field(default_factory=NoRegu)
    filter_cons: Any = field(default_factory=NoCons)
    bias_cons: Any = field(default_factory=NoCons)
    filter_lr: float = 1.0
    bias_lr: float = 2.0

    has_params = True
    can_backprop = True

    def validate(self) -> None:
        object.__setattr__(self, "kernel", as_pair(self, "kernel", self.kernel, 1))
        object.__setattr__(self, "stride", as_pair(self, "stride", self.stride, 1))
        object.__setattr__(self, "pad", as_pair(self, "pad", self.pad, 0))
        for name in ("n_filter", "n_group"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise self.fail(f"{name} must be a positive int, got {value!r}")
        if self.n_filter % self.n_group:
            raise self.fail(f"n_group={self.n_group} does not divide n_filter={self.n_filter}")
        check_neuron(self, self.neuron)
        if not self.bottoms or len(self.bottoms) != len(self.tops):
            raise self.fail(f"needs one top per bottom, got bottoms {self.bottoms} and tops {self.tops}")

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The top shape ``(N, n_filter, OH, OW)`` of a bottom of ``input_shape``; checks the input."""
        if len(input_shape) != 4:
            raise self.fail(f"needs 4-D bottoms (N, C, H, W), got shape {input_shape}")
        n, c, h, w = input_shape
        if c % self.n_group:
            raise self.fail(f"n_group={self.n_group} does not divide the {c} input channels of shape {input_shape}")
        (kh, kw), (ph, pw) = self.kernel, self.pad
        if kh > h + 2 * ph or kw > w + 2 * pw:
            raise self.fail(f"kernel {self.kernel} is larger than the padded input {(h + 2 * ph, w + 2 * pw)} "
                            f"of shape {input_shape}")
        oh, ow = conv2d_output_size(h, w, kh, kw, self.stride, self.pad)
        return (n, self.n_filter, oh, ow)

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train",
              shared_params: list[Any] | None = None) -> ConvolutionState:
        shapes = [blob.shape for blob in inputs]
        if len(inputs) != len(self.bottoms):
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        if len(set(shapes)) != 1:
            raise self.fail(f"all bottoms must have the same shape, got {shapes}")
        y_shape = self.output_shape(shapes[0])
        channels = shapes[0][1]
        f_shape = (self.n_filter, channels // self.n_group, *self.kernel)
        b_shape = (self.n_filter,)
        params = make_or_share_parameters(self, backend, [
            ParameterSpec("filter", f_shape, self.filter_init, self.filter_regu, self.filter_cons, self.filter_lr),
            ParameterSpec("bias", b_shape, self.bias_init, self.bias_regu, self.bias_cons, self.bias_lr),
        ], shared_params)
        blobs = [Blob.empty(backend, y_shape, top) for top in self.tops]
        return ConvolutionState(self, backend, blobs, params)


class ConvolutionState(LayerState):
    """Tops ``(N, F, OH, OW)`` and the parameters [filter, bias]; scratch gradients for extra bottoms."""

    layer: ConvolutionLayer

    def __init__(self, layer: ConvolutionLayer, backend: Any, blobs: list[Blob], parameters: list[Any]) -> None:
        super().__init__(layer, backend, blobs, parameters)
        # With several bottoms the parameter gradients are sums: the first bottom writes the
        # gradient, every other one writes into these scratch blobs that are then added.
        self._scratch: list[Blob] = []
        if len(blobs) > 1:
            self._scratch = [Blob.empty(backend, p.shape, p.name + "-scratch") for p in parameters]

    def forward(self, inputs: list[Blob]) -> None:
        filt, bias = self.parameters
        layer = self.layer
        for x, y in zip(inputs, self.blobs):
            self.ops.conv2d_forward(x.data, filt.blob.data, bias.blob.data, y.data, layer.stride, layer.pad,
                                    layer.n_group, layer.neuron.op_name, layer.neuron.negative_slope)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        filt, bias = self.parameters
        layer = self.layer
        neuron = layer.neuron
        first = True  # the first bottom with a top gradient writes the parameter gradients
        for x, y, dy, dx in zip(inputs, self.blobs, self.blobs_diff, diffs):
            if dy is None:
                continue
            if not neuron.is_identity:  # the gradient w.r.t. the pre-activation, in place
                self.ops.neuron_backward(y.data, dy.data, dy.data, neuron.op_name, neuron.negative_slope)
            if not self.frozen:
                grad_f, grad_b = (filt.gradient, bias.gradient) if first else self._scratch
                self.ops.conv2d_backward_weight(x.data, dy.data, grad_f.data, layer.stride, layer.pad, layer.n_group)
                self.ops.conv2d_backward_bias(dy.data, grad_b.data)
                if not first:
                    self.ops.axpy(1.0, grad_f.data, filt.gradient.data)
                    self.ops.axpy(1.0, grad_b.data, bias.gradient.data)
                first = False
            if dx is not None:
                self.ops.conv2d_backward_data(dy.data, filt.blob.data, dx.data, layer.stride, layer.pad, layer.n_group)
