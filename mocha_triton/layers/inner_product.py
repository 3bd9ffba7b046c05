"""InnerProductLayer: a fully connected layer, y = neuron(x W^T + b), on every bottom; and
TiedInnerProductLayer, the transposed map of an encoder's weights (y = neuron(h W + b)).

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
    share_parameter,
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


@dataclass(frozen=True, kw_only=True)
class TiedInnerProductLayer(Layer):
    """The transposed map of an encoder's inner product: ``y = neuron(h W + b)`` (Mocha's
    TiedInnerProductLayer, for autoencoders with tied weights).

    ``tied_param_key`` is the ``param_key`` (or the name) of an :class:`InnerProductLayer` set up earlier
    on the same backend, in this net or a previous one; its weight ``W`` is ``(O, K)``, so the bottom has O
    features and the top is ``(N, K)``. The layer has its own bias ``(K,)`` ("bias") and uses the encoder's
    weight blob as its "weight" parameter with its own gradient ``h^T dy``: unlike Mocha, where the tied
    weight got no gradient from the decoder, the decoder's reconstruction error trains ``W`` too (with
    ``weight_lr`` as its local learning rate; ``weight_lr=0`` gives Mocha's behaviour). The decoder adds no
    regularization of ``W`` (the encoder's regularizer covers it).
    """

    tied_param_key: str
    param_key: str = ""
    bias_init: Any = field(default_factory=ConstantInitializer)
    bias_regu: Any = field(default_factory=NoRegu)
    bias_cons: Any = field(default_factory=NoCons)
    bias_lr: float = 2.0
    weight_lr: float = 1.0
    neuron: Neuron = field(default_factory=Neuron)

    has_params = True
    can_backprop = True

    def validate(self) -> None:
        if not isinstance(self.tied_param_key, str) or not self.tied_param_key:
            raise self.fail(f"tied_param_key must name an InnerProductLayer's param_key, got {self.tied_param_key!r}")
        check_neuron(self, self.neuron)
        if len(self.bottoms) != 1 or len(self.tops) != 1:
            raise self.fail(f"needs one bottom and one top, got bottoms {self.bottoms} and tops {self.tops}")
        for name in ("weight_lr", "bias_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise self.fail(f"{name} must be a finite number >= 0, got {value!r}")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train",
              shared_params: list[Any] | None = None) -> TiedInnerProductState:
        encoder = backend.registry.get(self.tied_param_key)
        if not encoder or len(encoder[0].shape) != 2:
            raise self.fail(f"tied_param_key {self.tied_param_key!r} names no inner product on this backend: set up "
                            f"the encoder (an InnerProductLayer with that param_key or name) first, in this net or "
                            f"an earlier one")
        weight = encoder[0]
        o, k = weight.shape
        (h,) = inputs
        if math.prod(h.shape[1:]) != o:
            raise self.fail(f"the bottom {self.bottoms[0]!r} has {math.prod(h.shape[1:])} features (shape {h.shape}), "
                            f"but the tied weight of {self.tied_param_key!r} is {weight.shape}: expected {o}")
        if shared_params is not None:  # this layer's own key was set up before (e.g. a test net)
            if [p.shape for p in shared_params] != [(o, k), (k,)]:
                raise self.fail(f"shared parameters (param_key {self.param_key_or_name!r}) have shapes "
                                f"{[p.shape for p in shared_params]}, expected {[(o, k), (k,)]}")
            tied, bias_source = shared_params
        else:
            tied, bias_source = weight, None
        params = [share_parameter(backend, tied, NoRegu(), NoCons(), self.weight_lr)]
        bias_spec = [ParameterSpec("bias", (k,), self.bias_init, self.bias_regu, self.bias_cons, self.bias_lr)]
        params += make_or_share_parameters(self, backend, bias_spec, None if bias_source is None else [bias_source])
        blob = Blob.empty(backend, (h.shape[0], k), self.tops[0])
        return TiedInnerProductState(self, backend, [blob], params)


class TiedInnerProductState(LayerState):
    """The top ``(N, K)`` and the parameters [tied weight (shared blob, own gradient), bias]."""

    layer: TiedInnerProductLayer

    def forward(self, inputs: list[Blob]) -> None:
        weight, bias = self.parameters
        (h,), (y,) = inputs, self.blobs
        neuron = self.layer.neuron
        # y = h @ W is the data gradient of the encoder's map, the same op run forward
        self.ops.inner_product_backward_data(h.reshape(h.shape[0], -1).data, weight.blob.data, y.data)
        self.ops.bias_add(y.data, bias.blob.data)
        if not neuron.is_identity:
            self.ops.neuron_forward(y.data, y.data, neuron.op_name, neuron.negative_slope)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        weight, bias = self.parameters
        (h,), (y,), (dy,), (dh,) = inputs, self.blobs, self.blobs_diff, diffs
        if dy is None:
            return
        neuron = self.layer.neuron
        if not neuron.is_identity:
            self.ops.neuron_backward(y.data, dy.data, dy.data, neuron.op_name, neuron.negative_slope)
        h2 = h.reshape(h.shape[0], -1)
        if not self.frozen:
            self.ops.inner_product_backward_weight(dy.data, h2.data, weight.gradient.data)  # h^T dy: (O, K)
            self.ops.inner_product_backward_bias(dy.data, bias.gradient.data)
        if dh is not None:  # dh = dy @ W^T: the encoder's forward map, without bias
            self.ops.inner_product_forward(dy.data, weight.blob.data, None, dh.reshape(dh.shape[0], -1).data)
