"""Parameters and their pluggable parts: initializers, regularizers, norm constraints.

A :class:`Parameter` holds a learnable blob, its gradient blob and how to treat it: initializer,
regularizer (scaled by the solver's ``regu_coef``), constraint (applied after each update) and a local
learning-rate multiplier. The rules follow Mocha, except that L2 regularization uses the
Caffe/PyTorch weight-decay convention (gradient ``coef * regu_coef * W``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mocha_triton.blob import Blob

# --- initializers ------------------------------------------------------------------------------


class Initializer:
    """Fills a parameter blob at setup. Draws come from the backend's seeded host RNG."""

    def init(self, blob: Blob, rng: np.random.Generator) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class NullInitializer(Initializer):
    """Leaves the blob as it is (shared or loaded parameters)."""

    def init(self, blob: Blob, rng: np.random.Generator) -> None:
        pass


@dataclass(frozen=True)
class ConstantInitializer(Initializer):
    value: float = 0.0

    def init(self, blob: Blob, rng: np.random.Generator) -> None:
        blob.fill(self.value)


def fan_in(shape: tuple[int, ...]) -> int:
    """Inputs per output unit: all dimensions but the first (IP (out, in) -> in; conv -> C/g*KH*KW)."""
    return max(math.prod(shape[1:]), 1) if len(shape) > 1 else max(shape[0], 1)


@dataclass(frozen=True)
class XavierInitializer(Initializer):
    """U[-s, s] with s = sqrt(3 / fan_in) (Mocha/Caffe's Xavier)."""

    def init(self, blob: Blob, rng: np.random.Generator) -> None:
        s = math.sqrt(3.0 / fan_in(blob.shape))
        blob.copy_from(rng.uniform(-s, s, blob.shape))


@dataclass(frozen=True)
class GaussianInitializer(Initializer):
    mean: float = 0.0
    std: float = 1.0

    def init(self, blob: Blob, rng: np.random.Generator) -> None:
        blob.copy_from(rng.normal(self.mean, self.std, blob.shape))


@dataclass(frozen=True)
class OrthogonalInitializer(Initializer):
    """An orthogonal matrix of shape (shape[0], prod(shape[1:])) times ``gain`` (Saxe et al.)."""

    gain: float = 1.0

    def init(self, blob: Blob, rng: np.random.Generator) -> None:
        if blob.ndim < 2:
            raise ValueError(f"OrthogonalInitializer needs a parameter with >= 2 dimensions, got {blob.shape}")
        rows, cols = blob.shape[0], math.prod(blob.shape[1:])
        u, _, vt = np.linalg.svd(rng.normal(0.0, 1.0, (rows, cols)), full_matrices=False)
        q = u if u.shape == (rows, cols) else vt
        blob.copy_from(self.gain * q)


# --- regularizers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoRegu:
    coefficient: float = 0.0

    def add_gradient(self, param: Parameter, regu_coef: float) -> None:
        pass


@dataclass(frozen=True)
class L2Regu:
    """Adds coefficient * regu_coef * W to the gradient (objective term c*lambda/2*||W||^2)."""

    coefficient: float = 1.0

    def add_gradient(self, param: Parameter, regu_coef: float) -> None:
        coef = self.coefficient * regu_coef
        if coef:
            param.blob.backend.ops.l2_regularizer_gradient(param.blob.data, param.gradient.data, coef)


@dataclass(frozen=True)
class L1Regu:
    """Adds coefficient * regu_coef * sign(W) to the gradient."""

    coefficient: float = 1.0

    def add_gradient(self, param: Parameter, regu_coef: float) -> None:
        coef = self.coefficient * regu_coef
        if coef:
            param.blob.backend.ops.l1_regularizer_gradient(param.blob.data, param.gradient.data, coef)


# --- constraints -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoCons:
    every_n_iter: int = 1

    def constrain(self, param: Parameter) -> None:
        pass


@dataclass(frozen=True)
class L2Cons:
    """Rescales every output unit whose L2 norm exceeds ``threshold`` back to it."""

    threshold: float
    every_n_iter: int = 1

    def constrain(self, param: Parameter) -> None:
        param.blob.backend.ops.l2_norm_constraint(param.blob.data, self.threshold)


# --- parameter ---------------------------------------------------------------------------------


@dataclass(eq=False)
class Parameter:
    """A learnable blob of a layer ("filter", "weight", "bias") and how the solver treats it."""

    name: str
    blob: Blob
    gradient: Blob
    initializer: Any = field(default_factory=NullInitializer)
    regularizer: Any = field(default_factory=NoRegu)
    constraint: Any = field(default_factory=NoCons)
    learning_rate: float = 1.0

    @property
    def shape(self) -> tuple[int, ...]:
        return self.blob.shape

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.shape}, lr={self.learning_rate})"


def make_parameter(backend: Any, name: str, shape: tuple[int, ...], initializer: Any, regularizer: Any,
                   constraint: Any, learning_rate: float) -> Parameter:
    """A fresh parameter on ``backend``, initialized with ``initializer`` and a zeroed gradient."""
    blob = Blob.empty(backend, shape, name)
    initializer.init(blob, backend.rng)
    return Parameter(name, blob, Blob.zeros(backend, shape, name + "-grad"), initializer, regularizer,
                     constraint, float(learning_rate))


def share_parameter(backend: Any, shared: Parameter, regularizer: Any, constraint: Any,
                    learning_rate: float) -> Parameter:
    """A parameter that uses ``shared``'s blob but keeps its own gradient (Mocha's sharing)."""
    return Parameter(shared.name, shared.blob, Blob.zeros(backend, shared.shape, shared.name + "-grad"),
                     NullInitializer(), regularizer, constraint, float(learning_rate))


@dataclass(frozen=True)
class ParameterSpec:
    """What a layer asks for one of its parameters: name, shape and how to treat it."""

    name: str
    shape: tuple[int, ...]
    initializer: Any
    regularizer: Any
    constraint: Any
    learning_rate: float


def make_or_share_parameters(layer: Any, backend: Any, specs: list[ParameterSpec],
                             shared: list[Parameter] | None) -> list[Parameter]:
    """The parameters of a layer: fresh ones from ``specs``, or ones sharing the blobs of ``shared``
    (the parameters registered under the layer's ``param_key``), whose shapes must match the specs."""
    if shared is None:
        return [make_parameter(backend, s.name, s.shape, s.initializer, s.regularizer, s.constraint,
                               s.learning_rate) for s in specs]
    if [p.shape for p in shared] != [s.shape for s in specs]:
        raise layer.fail(f"shared parameters (param_key {layer.param_key_or_name!r}) have shapes "
                         f"{[p.shape for p in shared]}, expected {[s.shape for s in specs]}")
    return [share_parameter(backend, p, s.regularizer, s.constraint, s.learning_rate) for p, s in zip(shared, specs)]
