"""Layers that join, combine, cut or rename blobs: Concat, ElementWise, Crop and Identity.

They compute through the ``combine`` ops of the contract (:mod:`mocha_triton.cpu_ref.combine`,
whose docstring explains the op design) plus ``fill`` and the neuron ops.

* :class:`ConcatLayer` joins its bottoms along one axis (``dim``, a Python axis: 1 is the channels of
  NCHW blobs; Mocha's ``dim`` counts Julia's reversed axes from 1, so Mocha's default ``dim=3`` on a 4-D
  blob is ``dim=1`` here, and in general Python ``dim = ndim - mocha_dim``). Every other dimension must
  match. Forward copies each bottom into its slice of the top; backward copies each slice of the top's
  gradient back.
* :class:`ElementWiseLayer` applies ``add``, ``subtract``, ``multiply``, ``divide`` (Mocha's functors,
  two bottoms for the last two) or ``max`` to bottoms of one shape. Add, multiply and max take two or
  more bottoms, as Caffe's Eltwise SUM, PROD and MAX (``coeffs`` are Caffe's SUM coefficients). k bottoms
  are a chain of binary ops, ``y = op(x0, x1)`` then ``y = op(y, x_i)``, with no extra memory:

  - add: ``dx_i = c_i dy`` (one launch per pair of bottoms);
  - multiply: ``dx_i = dy * prod_{j != i} x_j``, a chain of multiplies into ``dx_i`` (Caffe's
    ``stable_prod_grad``: no division by ``x_i``, so zeros are fine);
  - max: the gradient goes to the first bottom holding the maximum (ties go to the earlier bottom; Caffe
    sends a tie between its first two bottoms to the second, an arbitrary choice not copied). With more
    than two bottoms a remainder ``r`` starts as ``dy``; bottom by bottom ``dx_i = r`` where ``x_i``
    equals the maximum and ``r`` becomes 0 there, one ``eltwise_backward(x_i, max, r, dx_i, r)`` each
    (one extra blob for ``r``).

* :class:`CropLayer` cuts windows. Mocha's form (``crop_size=(h, w)``) crops every 4-D bottom to
  ``(N, C, h, w)``: centred (offset ``(H - h) // 2``), or at a random offset with ``random_crop``, and
  flipped left-right with probability 1/2 with ``random_mirror``. The draws come from ``backend.rng``,
  per bottom and forward (one offset and flip for the whole batch, like Mocha), so seeding the backend
  or restoring a snapshot replays them. In the "test" phase the crop is centred and never flipped
  (Caffe's rule for its data transformer; Mocha has no phases). Caffe's form (no ``crop_size``) takes
  two bottoms and crops the first to the shape of the second from ``axis`` on, at ``offset`` (none: 0,
  one value: for every cropped axis, else one per cropped axis). Both forms back-propagate (Mocha's
  CropLayer does not): the window's gradient goes back into a zeroed bottom gradient; Caffe's second
  bottom, which only gives the shape, gets a zero gradient.
* :class:`IdentityLayer` renames blobs: each top is its bottom's data and each top gradient its
  bottom's gradient (the same memory, like :class:`~mocha_triton.ReshapeLayer`), so neither pass does
  anything. An in-place layer (dropout) on a top therefore changes the bottom too.

Concat and ElementWise take a ``neuron`` (as Mocha's convolution and pooling layers do), applied to the
top in place after the forward and undone on the top gradient, in place, before the backward; the
Caffe converter fuses a ReLU that follows an Eltwise (ResNet) or a Concat this way.

A blob given twice as a bottom of one layer that must back-propagate into it is refused (both gradients
would land in one blob, the second overwriting the first): fan it out with a SplitLayer.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mocha_triton.blob import Blob
from mocha_triton.checks.combine import ELTWISE_OPERATIONS
from mocha_triton.layers.base import Layer, LayerState, as_int, as_pair, check_neuron
from mocha_triton.layers.utility import ViewState
from mocha_triton.neurons import Neuron

__all__ = [
    "ConcatLayer", "ConcatState", "CropLayer", "CropState", "ElementWiseFunctors", "ElementWiseLayer",
    "ElementWiseState", "IdentityLayer", "IdentityState",
]


# --- shared helpers ------------------------------------------------------------------------------------


def _check_inputs(layer: Layer, inputs: list[Blob], diffs: list[Blob | None]) -> None:
    """One input per bottom, and no gradient blob shared by two bottoms."""
    if len(inputs) != len(layer.bottoms):
        raise layer.fail(f"got {len(inputs)} input blobs for bottoms {layer.bottoms}")
    seen: dict[int, str] = {}
    for bottom, dx in zip(layer.bottoms, diffs):
        if dx is None:
            continue
        if id(dx) in seen:
            raise layer.fail(f"bottom {bottom!r} is given twice and needs a gradient; fan it out with a SplitLayer "
                             f"and give this layer different tops of it")
        seen[id(dx)] = bottom


def _resolve_axis(layer: Layer, name: str, axis: int, ndim: int) -> int:
    """A possibly negative axis of an ``ndim``-D blob as a non-negative one."""
    if not -ndim <= axis < ndim:
        raise layer.fail(f"{name} {axis} is out of range for {ndim}-D bottoms")
    return axis % ndim


def _apply_neuron(state: LayerState, neuron: Neuron, pre: Blob, y: Blob) -> None:
    if not neuron.is_identity:
        state.ops.neuron_forward(pre.data, y.data, neuron.op_name, neuron.negative_slope)


def _undo_neuron(state: LayerState, neuron: Neuron, y: Blob, dy: Blob) -> None:
    """The gradient w.r.t. the pre-activation top, in place in ``dy`` (from the stored output ``y``)."""
    if not neuron.is_identity:
        state.ops.neuron_backward(y.data, dy.data, dy.data, neuron.op_name, neuron.negative_slope)


# --- Concat --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ConcatLayer(Layer):
    """Joins its bottoms along the Python axis ``dim`` (negative counts from the end) into one top."""

    dim: int = 1
    neuron: Neuron = field(default_factory=Neuron)

    can_backprop = True

    def validate(self) -> None:
        object.__setattr__(self, "dim", as_int(self, "dim", self.dim))
        check_neuron(self, self.neuron)
        if not self.bottoms:
            raise self.fail("needs at least one bottom")
        if len(self.tops) != 1:
            raise self.fail(f"needs exactly one top, got {self.tops}")

    def output_shape(self, shapes: list[tuple[int, ...]]) -> tuple[tuple[int, ...], int]:
        """(top shape, resolved axis) for bottoms of ``shapes``; checks that they fit together."""
        ndim = len(shapes[0])
        if ndim == 0 or any(len(s) != ndim for s in shapes):
            raise self.fail(f"needs bottoms with one number of dimensions (>= 1), got shapes {shapes}")
        axis = _resolve_axis(self, "dim", self.dim, ndim)
        rest = {s[:axis] + s[axis + 1:] for s in shapes}
        if len(rest) > 1:
            raise self.fail(f"bottoms must have the same shape except along dim {self.dim}, got shapes "
                            f"{dict(zip(self.bottoms, shapes))}")
        top = list(shapes[0])
        top[axis] = sum(s[axis] for s in shapes)
        return tuple(top), axis

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> ConcatState:
        _check_inputs(self, inputs, diffs)
        shape, axis = self.output_shape([x.shape for x in inputs])
        starts, offset = [], 0
        for x in inputs:
            start = [0] * len(shape)
            start[axis] = offset
            starts.append(tuple(start))
            offset += x.shape[axis]
        return ConcatState(self, backend, [Blob.empty(backend, shape, self.tops[0])], starts)


class ConcatState(LayerState):
    """The top; ``starts[i]`` is where bottom i begins in it."""

    layer: ConcatLayer

    def __init__(self, layer: ConcatLayer, backend: Any, blobs: list[Blob], starts: list[tuple[int, ...]]) -> None:
        super().__init__(layer, backend, blobs)
        self.starts = starts

    def forward(self, inputs: list[Blob]) -> None:
        y = self.blobs[0]
        origin = (0,) * y.ndim
        for x, start in zip(inputs, self.starts):
            self.ops.copy_block(x.data, y.data, origin, start, x.shape)
        _apply_neuron(self, self.layer.neuron, y, y)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        dy = self.blobs_diff[0]
        if dy is None or all(dx is None for dx in diffs):
            return
        _undo_neuron(self, self.layer.neuron, self.blobs[0], dy)
        origin = (0,) * dy.ndim
        for dx, start in zip(diffs, self.starts):
            if dx is not None:
                self.ops.copy_block(dy.data, dx.data, start, origin, dx.shape)


# --- ElementWise ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Functor:
    name: ClassVar[str] = ""


@dataclass(frozen=True)
class Add(_Functor):
    """y = x0 + x1 (+ ...), or with coefficients sum c_i x_i."""

    name: ClassVar[str] = "add"


@dataclass(frozen=True)
class Subtract(_Functor):
    """y = x0 - x1."""

    name: ClassVar[str] = "subtract"


@dataclass(frozen=True)
class Multiply(_Functor):
    """y = x0 * x1 (* ...)."""

    name: ClassVar[str] = "multiply"


@dataclass(frozen=True)
class Divide(_Functor):
    """y = x0 / x1."""

    name: ClassVar[str] = "divide"


@dataclass(frozen=True)
class Max(_Functor):
    """y = max(x0, x1, ...); the gradient goes to the first bottom holding the maximum."""

    name: ClassVar[str] = "max"


class ElementWiseFunctors:
    """Mocha's ``ElementWiseFunctors`` namespace: ``ElementWiseFunctors.Add()`` etc. (plus ``Max``)."""

    Add = Add
    Subtract = Subtract
    Multiply = Multiply
    Divide = Divide
    Max = Max


BINARY_ONLY = ("subtract", "divide")


@dataclass(frozen=True, kw_only=True)
class ElementWiseLayer(Layer):
    """Combines bottoms of one shape elementwise into one top.

    ``operation`` is a name from ``("add", "subtract", "multiply", "divide", "max")`` or a functor such
    as ``ElementWiseFunctors.Add()`` (stored as its name). ``coeffs`` (add only) holds one coefficient
    per bottom: ``y = sum c_i x_i`` (Caffe's Eltwise SUM ``coeff``); empty means all ones.
    """

    operation: Any = "add"
    coeffs: tuple[float, ...] = ()
    neuron: Neuron = field(default_factory=Neuron)

    can_backprop = True

    def validate(self) -> None:
        operation = self.operation
        if isinstance(operation, _Functor) or (isinstance(operation, type) and issubclass(operation, _Functor)):
            operation = operation.name
        if operation not in ELTWISE_OPERATIONS:
            raise self.fail(f"operation must be one of {ELTWISE_OPERATIONS} or an ElementWiseFunctors functor, "
                            f"got {self.operation!r}")
        object.__setattr__(self, "operation", operation)
        check_neuron(self, self.neuron)
        if len(self.tops) != 1:
            raise self.fail(f"needs exactly one top, got {self.tops}")
        if operation in BINARY_ONLY and len(self.bottoms) != 2:
            raise self.fail(f"{operation} needs exactly two bottoms, got {self.bottoms}")
        if len(self.bottoms) < 2:
            raise self.fail(f"needs at least two bottoms, got {self.bottoms}")
        if self.coeffs:
            if operation != "add":
                raise self.fail(f"coeffs are for the add operation only (Caffe's SUM), got operation {operation!r}")
            try:
                coeffs = tuple(float(c) for c in self.coeffs)
            except (TypeError, ValueError):
                raise self.fail(f"coeffs must be numbers, got {self.coeffs!r}") from None
            if len(coeffs) != len(self.bottoms) or not all(math.isfinite(c) for c in coeffs):
                raise self.fail(f"coeffs must hold one finite number per bottom ({len(self.bottoms)}), got "
                                f"{self.coeffs!r}")
            object.__setattr__(self, "coeffs", coeffs)

    @property
    def coefficients(self) -> tuple[float, ...]:
        return self.coeffs or (1.0,) * len(self.bottoms)

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> ElementWiseState:
        _check_inputs(self, inputs, diffs)
        if len({x.shape for x in inputs}) > 1:
            shapes = dict(zip(self.bottoms, (x.shape for x in inputs)))
            raise self.fail(f"bottoms must all have one shape, got {shapes}")
        shape = inputs[0].shape
        y = Blob.empty(backend, shape, self.tops[0])
        chained_max = self.operation == "max" and len(inputs) > 2
        # the k-ary max backward compares with the maximum itself: keep it apart when a neuron overwrites y
        maximum = Blob.empty(backend, shape, self.name + "-max") if chained_max and not self.neuron.is_identity else y
        wants_grad = any(dx is not None for dx in diffs)
        remainder = Blob.empty(backend, shape, self.name + "-remainder") if chained_max and wants_grad else None
        return ElementWiseState(self, backend, [y], maximum, remainder)


class ElementWiseState(LayerState):
    """The top; for a max of more than two bottoms, ``maximum`` (the top itself unless a neuron
    overwrites it) and ``remainder`` (the gradient not yet routed, during the backward)."""

    layer: ElementWiseLayer

    def __init__(self, layer: ElementWiseLayer, backend: Any, blobs: list[Blob], maximum: Blob,
                 remainder: Blob | None) -> None:
        super().__init__(layer, backend, blobs)
        self.maximum = maximum
        self.remainder = remainder

    def forward(self, inputs: list[Blob]) -> None:
        layer, y = self.layer, self.blobs[0]
        op, c = layer.operation, layer.coefficients
        out = self.maximum  # y, except for a max with a neuron
        self.ops.eltwise_forward(inputs[0].data, inputs[1].data, out.data, op, c[0], c[1])
        for x, ci in zip(inputs[2:], c[2:]):
            self.ops.eltwise_forward(out.data, x.data, out.data, op, 1.0, ci)
        _apply_neuron(self, layer.neuron, out, y)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        dy = self.blobs_diff[0]
        if dy is None or all(dx is None for dx in diffs):
            return
        layer = self.layer
        _undo_neuron(self, layer.neuron, self.blobs[0], dy)
        op, c = layer.operation, layer.coefficients
        xs = [x.data for x in inputs]
        dxs = [dx.data if dx is not None else None for dx in diffs]
        if len(xs) == 2:
            self.ops.eltwise_backward(xs[0], xs[1], dy.data, dxs[0], dxs[1], op, c[0], c[1])
        elif op == "add":
            for i in range(0, len(xs), 2):  # dx_i = c_i dy, two bottoms per launch
                j = min(i + 1, len(xs) - 1)
                db = dxs[j] if j != i else None
                if dxs[i] is not None or db is not None:
                    self.ops.eltwise_backward(xs[i], xs[j], dy.data, dxs[i], db, "add", c[i], c[j])
        elif op == "multiply":
            for i, dx in enumerate(dxs):  # dx_i = dy * prod of the other bottoms
                if dx is None:
                    continue
                others = [x for j, x in enumerate(xs) if j != i]
                self.ops.eltwise_forward(dy.data, others[0], dx, "multiply")
                for x in others[1:]:
                    self.ops.eltwise_forward(dx, x, dx, "multiply")
        else:  # max of more than two bottoms: route the remainder to the first bottom equal to the maximum
            maximum, remainder = self.maximum.data, self.remainder.data
            self.ops.eltwise_backward(xs[0], maximum, dy.data, dxs[0], remainder, "max")
            for x, dx in zip(xs[1:-1], dxs[1:-1]):
                self.ops.eltwise_backward(x, maximum, remainder, dx, remainder, "max")
            if dxs[-1] is not None:
                self.ops.eltwise_backward(xs[-1], maximum, remainder, dxs[-1], None, "max")


# --- Crop ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CropLayer(Layer):
    """Crops windows out of its bottoms: Mocha's form with ``crop_size``, Caffe's with ``axis``/``offset``.

    * ``crop_size=(h, w)``: each 4-D bottom ``(N, C, H, W)`` gives a top ``(N, C, h, w)``, centred, or at
      a random offset (``random_crop``), flipped left-right half of the time (``random_mirror``); random
      only in the "train" phase.
    * no ``crop_size``: bottoms ``[A, B]`` give one top of ``A.shape[:axis] + B.shape[axis:]``, the window
      of A at ``offset`` (empty: 0 everywhere; one value: for every axis from ``axis`` on; else one value
      per axis from ``axis`` on). ``axis`` may be negative.
    """

    crop_size: Any = None
    random_crop: bool = False
    random_mirror: bool = False
    axis: int = 2
    offset: tuple[int, ...] = ()

    can_backprop = True

    def validate(self) -> None:
        for name in ("random_crop", "random_mirror"):
            if not isinstance(getattr(self, name), bool):
                raise self.fail(f"{name} must be a bool, got {getattr(self, name)!r}")
        object.__setattr__(self, "axis", as_int(self, "axis", self.axis))
        try:
            if isinstance(self.offset, (str, bytes)) or any(isinstance(o, bool) for o in self.offset):
                raise TypeError
            offset = tuple(operator.index(o) for o in self.offset)
        except TypeError:
            raise self.fail(f"offset must be a sequence of ints, got {self.offset!r}") from None
        if any(o < 0 for o in offset):
            raise self.fail(f"offset must hold ints >= 0, got {self.offset!r}")
        object.__setattr__(self, "offset", offset)
        if self.crop_size is not None:
            object.__setattr__(self, "crop_size", as_pair(self, "crop_size", self.crop_size, 1))
            if self.axis != 2 or self.offset:
                raise self.fail("axis and offset belong to the two-bottom (Caffe) form; crop_size crops the last "
                                "two axes centred or at random offsets")
            if not self.bottoms or len(self.bottoms) != len(self.tops):
                raise self.fail(f"needs one top per bottom, got bottoms {self.bottoms} and tops {self.tops}")
        else:
            if self.random_crop or self.random_mirror:
                raise self.fail("random_crop and random_mirror need crop_size (Mocha's form)")
            if len(self.bottoms) != 2 or len(self.tops) != 1:
                raise self.fail(f"without crop_size needs two bottoms (the blob to crop, then one giving the shape) "
                                f"and one top, got bottoms {self.bottoms} and tops {self.tops}")

    def windows(self, shapes: list[tuple[int, ...]]) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        """(top shape, centred or Caffe start) of each cropped bottom, for bottoms of ``shapes``."""
        if self.crop_size is not None:
            h, w = self.crop_size
            result = []
            for bottom, shape in zip(self.bottoms, shapes):
                if len(shape) != 4:
                    raise self.fail(f"needs 4-D bottoms (N, C, H, W), got shape {shape} for bottom {bottom!r}")
                if shape[2] < h or shape[3] < w:
                    raise self.fail(f"crop_size {(h, w)} is larger than the image {shape[2:]} of bottom {bottom!r}")
                result.append(((*shape[:2], h, w), (0, 0, (shape[2] - h) // 2, (shape[3] - w) // 2)))
            return result
        big, ref = shapes
        if len(big) != len(ref):
            raise self.fail(f"the two bottoms must have one number of dimensions, got shapes {big} and {ref}")
        axis = _resolve_axis(self, "axis", self.axis, len(big))
        cropped = len(big) - axis
        if len(self.offset) not in (0, 1, cropped):
            raise self.fail(f"offset must hold 0, 1 or {cropped} values (one per axis from axis {self.axis} on), "
                            f"got {self.offset}")
        offsets = self.offset if len(self.offset) == cropped else (self.offset or (0,)) * cropped
        start = (0,) * axis + offsets
        top = big[:axis] + ref[axis:]
        if any(s + n > d for s, n, d in zip(start, top, big)):
            raise self.fail(f"the window of shape {top} at offset {start} does not fit in the bottom "
                            f"{self.bottoms[0]!r} of shape {big}")
        return [(top, start)]

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> CropState:
        _check_inputs(self, inputs, diffs)
        if phase not in ("train", "test"):
            raise self.fail(f"phase must be 'train' or 'test', got {phase!r}")
        windows = self.windows([x.shape for x in inputs])
        blobs = [Blob.empty(backend, shape, top) for (shape, _), top in zip(windows, self.tops)]
        return CropState(self, backend, blobs, [start for _, start in windows], phase)


class CropState(LayerState):
    """The tops; ``starts[i]`` and ``mirrors[i]`` are the window of top i in the last forward."""

    layer: CropLayer

    def __init__(self, layer: CropLayer, backend: Any, blobs: list[Blob], starts: list[tuple[int, ...]],
                 phase: str) -> None:
        super().__init__(layer, backend, blobs)
        self.phase = phase
        self.centred = list(starts)
        self.starts = list(starts)
        self.mirrors = [False] * len(blobs)

    def _draw(self, inputs: list[Blob]) -> None:
        """This forward's windows: random offsets and flips in training, else the centred ones."""
        layer = self.layer
        if layer.crop_size is None or self.phase != "train":
            return
        rng = self.backend.rng
        for i, (x, y) in enumerate(zip(inputs, self.blobs)):
            if layer.random_crop:
                h_off = int(rng.integers(0, x.shape[2] - y.shape[2] + 1))
                w_off = int(rng.integers(0, x.shape[3] - y.shape[3] + 1))
                self.starts[i] = (0, 0, h_off, w_off)
            if layer.random_mirror:
                self.mirrors[i] = bool(rng.integers(0, 2))

    def forward(self, inputs: list[Blob]) -> None:
        self._draw(inputs)
        for x, y, start, mirror in zip(inputs, self.blobs, self.starts, self.mirrors):
            self.ops.copy_block(x.data, y.data, start, (0,) * y.ndim, y.shape, mirror)

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        for dy, dx, start, mirror in zip(self.blobs_diff, diffs, self.starts, self.mirrors):
            if dy is None or dx is None:
                continue
            dx.fill(0.0)
            self.ops.copy_block(dy.data, dx.data, (0,) * dy.ndim, start, dy.shape, mirror)
        if self.layer.crop_size is None and diffs[1] is not None:  # the shape bottom: no gradient
            diffs[1].fill(0.0)


# --- Identity ------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IdentityLayer(Layer):
    """Each top is its bottom under another name: same data, same gradient memory (Mocha's IdentityLayer)."""

    can_backprop = True

    def validate(self) -> None:
        if not self.bottoms or len(self.bottoms) != len(self.tops):
            raise self.fail(f"needs one top per bottom, got bottoms {self.bottoms} and tops {self.tops}")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> IdentityState:
        _check_inputs(self, inputs, diffs)
        state = IdentityState(self, backend, [Blob(backend, x.data, top) for x, top in zip(inputs, self.tops)])
        for i, (dx, top) in enumerate(zip(diffs, self.tops)):
            if dx is not None:
                state.blobs_diff[i] = Blob(backend, dx.data, top + "-diff")
        return state


class IdentityState(ViewState):
    """Tops and their gradients share the bottoms' memory: both passes are free."""

    layer: IdentityLayer
