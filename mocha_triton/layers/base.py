"""The layer protocol: an immutable configuration (:class:`Layer`) and its realisation on a backend
(:class:`LayerState`), as in Caffe's setup/forward/backward split and Mocha's layer/state pair.

* A ``Layer`` is a small frozen dataclass: ``name``, ``bottoms`` (input blob names), ``tops`` (output
  blob names) and its own fields. Class-level traits say what kind of layer it is.
* ``layer.setup(backend, inputs, diffs, phase)`` allocates the output blobs and parameters and returns
  a ``LayerState``. ``diffs[i]`` is the gradient blob of ``inputs[i]``, or None when no gradient is
  needed there (the layer then skips computing it).
* ``state.forward(inputs)`` computes ``state.blobs``; ``state.backward(inputs, diffs)`` reads
  ``state.blobs_diff`` (gradients w.r.t. the outputs, written by the consumers) and writes the
  parameter gradients and ``diffs``. Loss layers set ``state.loss``.

Layers never branch on the backend: they call ``backend.ops.<op>`` of the op contract.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from mocha_triton.blob import Blob
from mocha_triton.checks.common import as_int as int_or_none
from mocha_triton.contract import NEURONS
from mocha_triton.neurons import Neuron


class TopologyError(ValueError):
    """The layers do not form a valid net (duplicate tops, missing bottoms, cycles, fan-out...)."""


class LayerError(ValueError):
    """A layer got an input it cannot handle; the message names the layer."""


@dataclass(frozen=True, kw_only=True)
class Layer:
    """Base configuration shared by every layer."""

    name: str
    bottoms: tuple[str, ...] = ()
    tops: tuple[str, ...] = ()

    is_source: ClassVar[bool] = False  # a data layer: no bottoms
    is_sink: ClassVar[bool] = False  # no tops (loss, statistics)
    has_params: ClassVar[bool] = False
    can_backprop: ClassVar[bool] = False
    is_inplace: ClassVar[bool] = False  # modifies its single bottom in place, no tops
    has_loss: ClassVar[bool] = False
    has_stats: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for f in fields(self):  # accept lists for tuple fields (user convenience), keep frozen tuples
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        if not isinstance(self.name, str) or not self.name:
            raise LayerError(f"{type(self).__name__}: name must be a non-empty string, got {self.name!r}")
        self.validate()

    def validate(self) -> None:
        """Check the configuration; raise ValueError naming the layer. Subclasses extend this."""

    def fail(self, message: str) -> LayerError:
        return LayerError(f"{type(self).__name__} {self.name!r}: {message}")

    @property
    def param_key_or_name(self) -> str:
        return getattr(self, "param_key", "") or self.name

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> LayerState:
        raise NotImplementedError


class LayerState:
    """A layer set up on a backend: its output blobs, their gradients and its parameters."""

    def __init__(self, layer: Layer, backend: Any, blobs: list[Blob] | None = None,
                 parameters: list[Any] | None = None) -> None:
        self.layer = layer
        self.backend = backend
        self.blobs: list[Blob] = list(blobs or [])
        self.blobs_diff: list[Blob | None] = [None] * len(self.blobs)
        self.parameters: list[Any] = list(parameters or [])
        self.loss = 0.0
        self.frozen = False

    @property
    def ops(self) -> Any:
        return self.backend.ops

    def forward(self, inputs: list[Blob]) -> None:
        raise NotImplementedError

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        """Default for layers that cannot back-propagate: nothing to do."""

    def shutdown(self) -> None:
        """Release backend resources (blobs are freed when unreferenced)."""


# --- field checks shared by layers -------------------------------------------------------------


def as_int(layer: Layer, name: str, value: Any) -> int:
    """``value`` as a Python int (an int or NumPy integer, not a bool), else the layer's error naming the field."""
    number = int_or_none(value)
    if number is None:
        raise layer.fail(f"{name} must be an int, got {value!r}")
    return number


def as_pair(layer: Layer, name: str, value: Any, minimum: int) -> tuple[int, int]:
    """``value`` as an ``(h, w)`` pair of ints >= ``minimum``; an int means the same for both.

    Raises the layer's error (naming the layer and the field) otherwise.
    """
    try:
        items = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
        if len(items) != 2 or any(isinstance(v, bool) for v in items):
            raise TypeError
        result = tuple(operator.index(v) for v in items)
    except TypeError:
        raise layer.fail(f"{name} must be an int or a pair of ints (h, w), got {value!r}") from None
    if min(result) < minimum:
        raise layer.fail(f"{name} must be >= {minimum} in both dimensions, got {value!r}")
    return result  # type: ignore[return-value]


def check_neuron(layer: Layer, neuron: Any) -> None:
    """The ``neuron`` field holds a :class:`~mocha_triton.neurons.Neuron` the op contract knows."""
    if not isinstance(neuron, Neuron) or neuron.op_name not in NEURONS:
        raise layer.fail(f"neuron must be a mocha_triton.neurons.Neuron with op_name in {NEURONS}, got {neuron!r}")
