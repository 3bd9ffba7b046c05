"""InnerProductLayer: a fully connected layer, y = neuron(x W^T + b), on every bottom.

Every non-batch dimension of a bottom is flattened (Mocha/Caffe), so a (N, C, H, W) blob feeds an
inner product with K = C*H*W inputs. Weights are (output_dim, K) ("weight") and the bias (output_dim,)
("bias"). Several bottoms share the parameters; their batch sizes may differ, their K may not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerState, check_neuron
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
class InnerProductLayer(Layer):
    output_dim: int
    param_key: str = ""
    weight_init: Any = field(default_factory=XavierInitializer)
    bias_init: Any = field(default_factory=ConstantInitializer)
    weight_regu: Any = field(default_factory=L2Regu)
    bias_regu: Any = field(default_factory=NoRegu)
    weight_cons: Any = field(default_factory=NoCons)
    bias_cons: Any = field(default_factory=NoCons)
    weight_lr: float = 1.0
    bias_lr: float = 2.0
    neuron: Neuron = field(default_factory=Neuron)

    has_params = True
    can_backprop = True

    def validate(self) -> None:
        if not isinstance(self.output_dim, int) or isinstance(self.output_dim, bool) or self.output_dim < 1:
            raise self.fail(f"output_dim must be a positive int, got {self.output_dim!r}")
        check_neuron(self, self.neuron)
        if not self.bottoms or len(self.bottoms) != len(self.tops):
            raise self.fail(f"needs one top per bottom, got bottoms {self.bottoms} and tops {self.tops}")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train",
              shared_params: list[Any] | None = None) -> InnerProductState:
        features = {math.prod(blob.shape[1:]) for blob in inputs}
        if len(features) != 1:
            raise self.fail(f"all bottoms must have the same feature size, got shapes {[b.shape for b in inputs]}")
        k = features.pop()
        w_shape, b_shape = (self.output_dim, k), (self.output_dim,)
        params = make_or_share_parameters(self, backend, [
            ParameterSpec("weight", w_shape, self.weight_init, self.weight_regu, self.weight_cons, self.weight_lr),
            ParameterSpec("bias", b_shape, self.bias_init, self.bias_regu, self.bias_cons, self.bias_lr),
        ], shared_params)
        blobs = [Blob.empty(backend, (blob.shape[0], self.output_dim), top) for blob, top in zip(inputs, self.tops)]
        return InnerProductState(self, backend, blobs, params)


class InnerProductState(LayerState):
    """Tops ``(N, output_dim)`` and the parameters [weight, bias]; scratch gradients for extra bottoms."""

    layer: InnerProductLayer

    def __init__(self, layer: InnerProductLayer, backend: Any, blobs: list[Blob], parameters: list[Any]) -> None:
        super().__init__(layer, backend, blobs, parameters)
        # The first bottom with a top gradient writes the parameter gradients; every other one writes into
        # these scratch blobs, which are then added.
        extra = len(blobs) > 1
        self._scratch = [Blob.empty(backend, p.shape, p.name + "-scratch") for p in parameters] if extra else []

    def forward(self, inputs: list[Blob]) -> None:
        weight, bias = self.parameters
        neuron = self.layer.neuron
        for x, y in zip(inputs, self.blobs):
            self.ops.inner_product_forward(x.reshape(x.shape[0], -1).data, weight.blob.data, bias.blob.data, y.data,
                                           neuron.op_name, neuron.negative_slope)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        weight, bias = self.parameters
        neuron = self.layer.neuron
        first = True
        for x, y, dy, dx in zip(inputs, self.blobs, self.blobs_diff, diffs):
            if dy is None:
                continue
            if not neuron.is_identity:  # the gradient w.r.t. the pre-activation, in place
                self.ops.neuron_backward(y.data, dy.data, dy.data, neuron.op_name, neuron.negative_slope)
            x2 = x.reshape(x.shape[0], -1)
            if not self.frozen:
                grad_w, grad_b = (weight.gradient, bias.gradient) if first else self._scratch
                self.ops.inner_product_backward_weight(x2.data, dy.data, grad_w.data)
                self.ops.inner_product_backward_bias(dy.data, grad_b.data)
                if not first:
                    self.ops.axpy(1.0, grad_w.data, weight.gradient.data)
                    self.ops.axpy(1.0, grad_b.data, bias.gradient.data)
                first = False
            if dx is not None:
                self.ops.inner_product_backward_data(dy.data, weight.blob.data, dx.reshape(dx.shape[0], -1).data)
