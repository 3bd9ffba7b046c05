"""Neurons (activations) fused into layers with a ``neuron=`` field, Mocha's vocabulary.

Each neuron names an activation of the op contract; layers pass ``neuron.op_name`` and
``neuron.negative_slope`` to the fused ops (convolution, inner product) or to ``neuron_forward``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Neuron:
    op_name: str = "identity"
    negative_slope: float = 0.01

    @property
    def is_identity(self) -> bool:
        return self.op_name == "identity"


def Identity() -> Neuron:  # noqa: N802 - Mocha's constructor names
    return Neuron("identity")


def ReLU() -> Neuron:  # noqa: N802
    return Neuron("relu")


def LReLU(negative_slope: float = 0.01) -> Neuron:  # noqa: N802
    """Leaky ReLU: x for x > 0, else negative_slope * x (Mocha fixes 0.01; Caffe's ReLU makes it a field)."""
    if not negative_slope > 0:
        raise ValueError(f"LReLU: negative_slope must be > 0, got {negative_slope}")
    return Neuron("leaky_relu", float(negative_slope))


def Sigmoid() -> Neuron:  # noqa: N802
    return Neuron("sigmoid")


def Tanh() -> Neuron:  # noqa: N802
    return Neuron("tanh")


def Exponential() -> Neuron:  # noqa: N802
    return Neuron("exp")
