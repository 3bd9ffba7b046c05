"""NeuronLayer: an activation as a layer of its own, ``y = neuron(x)`` on each bottom.

Mocha fuses activations into the layers that produce their input (``neuron=`` of the convolution,
inner-product, pooling, element-wise and concat layers), which saves a pass over memory; use that when
you can. A NeuronLayer is for the other cases, e.g. a Caffe ReLU whose bottom other layers read too, or
one after a layer that takes no neuron. N bottoms give N tops of the same shapes; the backward computes
the derivative from the stored output, ``dx = dy * neuron'(y)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerState, check_neuron
from mocha_triton.neurons import Neuron, ReLU


@dataclass(frozen=True, kw_only=True)
class NeuronLayer(Layer):
    """``y = neuron(x)`` on each bottom into a top of the same shape (default: ReLU)."""

    neuron: Neuron = field(default_factory=ReLU)

    can_backprop = True

    def validate(self) -> None:
        check_neuron(self, self.neuron)
        if not self.bottoms or len(self.bottoms) != len(self.tops):
            raise self.fail(f"needs one top per bottom, got bottoms {self.bottoms} and tops {self.tops}")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> NeuronState:
        if len(inputs) != len(self.bottoms):
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        blobs = [Blob.empty(backend, blob.shape, top) for blob, top in zip(inputs, self.tops)]
        return NeuronState(self, backend, blobs)


class NeuronState(LayerState):
    """Tops: the activations, kept for the backward."""

    layer: NeuronLayer

    def forward(self, inputs: list[Blob]) -> None:
        neuron = self.layer.neuron
        for x, y in zip(inputs, self.blobs):
            self.ops.neuron_forward(x.data, y.data, neuron.op_name, neuron.negative_slope)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        neuron = self.layer.neuron
        for y, dy, dx in zip(self.blobs, self.blobs_diff, diffs):
            if dy is not None and dx is not None:
                self.ops.neuron_backward(y.data, dy.data, dx.data, neuron.op_name, neuron.negative_slope)


__all__ = ["NeuronLayer", "NeuronState"]
