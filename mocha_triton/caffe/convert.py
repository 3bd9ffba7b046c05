"""Caffe nets as mocha-triton nets: :func:`load_net` (a ``.prototxt`` and optionally its ``.caffemodel``)
and :func:`load_weights` (trained weights into an existing net, by layer name).

::

    from mocha_triton.caffe import feed, load_net
    net = load_net("lenet.prototxt", "lenet_iter_10000.caffemodel", backend)   # phase "test"
    feed(net, data=images / 256)          # fills the Input layer's blob (N, 1, 28, 28)
    net.forward()
    probabilities = net.output_blobs["prob"].to_numpy()

How Caffe layers map (``lp`` is the Caffe ``LayerParameter``)
--------------------------------------------------------------
=====================  ===========================================================================
Caffe type             mocha-triton
=====================  ===========================================================================
Input                  :class:`InputLayer` (this module): blobs of ``input_param.shape`` that the
                       user fills with :func:`feed` or ``net.output_blobs[top].copy_from(array)``
HDF5Data               :class:`~mocha_triton.HDF5DataLayer` (``source``, ``batch_size``, ``shuffle``)
MemoryData             :class:`~mocha_triton.MemoryDataLayer` on arrays the user provides
                       (``memory_data={layer name: (data, label)}``), else on zero arrays of
                       ``(batch_size, channels, height, width)`` and ``(batch_size,)`` to fill in place
Data, ImageData, ...   only through ``input_shapes`` (an :class:`InputLayer`); mocha-triton reads no
                       LMDB/LevelDB databases or image lists
Convolution            :class:`~mocha_triton.ConvolutionLayer`
Pooling                :class:`~mocha_triton.PoolingLayer` (MAX/AVE, Caffe's ceil rounding, global)
InnerProduct           :class:`~mocha_triton.InnerProductLayer`
ReLU, Sigmoid, TanH    fused into the ``neuron`` of the layer that produces their bottom when it can,
                       else a :class:`~mocha_triton.NeuronLayer` (``negative_slope > 0``: leaky ReLU)
Softmax                :class:`~mocha_triton.SoftmaxLayer`
SoftmaxWithLoss        :class:`~mocha_triton.SoftmaxLossLayer` (``weight`` = ``loss_weight``)
MultinomialLogisticLoss :class:`~mocha_triton.MultinomialLogisticLossLayer`
EuclideanLoss          :class:`~mocha_triton.SquareLossLayer` (``weight`` = ``loss_weight``; both bottoms
                       get gradients when they need them)
Accuracy               :class:`~mocha_triton.AccuracyLayer` (``top_k``)
Dropout                :class:`~mocha_triton.DropoutLayer` in place (train phase; left out in test)
Split                  :class:`~mocha_triton.SplitLayer`
Flatten, Reshape       :class:`CaffeReshapeLayer` (this module; Caffe's 0 / -1 dimensions)
LRN                    :class:`~mocha_triton.LRNLayer` (``kernel`` = ``local_size``, which must be odd as
                       in Caffe; ``scale`` = ``alpha``, ``power`` = ``beta``, ``shift`` = ``k``, except
                       for WITHIN_CHANNEL, where Caffe ignores ``k`` and uses 1)
Power                  :class:`~mocha_triton.PowerLayer` (``power``, ``scale``, ``shift``); an in-place
                       Power gets a top of its own (``<blob>/<layer name>``) that later layers read
Concat                 :class:`~mocha_triton.ConcatLayer` (``concat_param.axis`` or the legacy
                       ``concat_dim``)
Eltwise                :class:`~mocha_triton.ElementWiseLayer`: SUM (with ``coeff``) is "add", PROD
                       "multiply", MAX "max"; ``stable_prod_grad`` is ignored (the product's gradient
                       is always the product of the other bottoms, Caffe's stable form; ``false``
                       warns), and so are MAX coefficients (Caffe ignores them too)
Crop                   :class:`~mocha_triton.CropLayer`, Caffe's two-bottom form (``crop_param.axis``,
                       ``offset``; the second bottom gives the shape and gets no gradient)
ArgMax                 :class:`~mocha_triton.ArgmaxLayer` (``dim`` = ``argmax_param.axis``; the batch
                       axis is refused), or without an axis :class:`CaffeArgMaxLayer` (the index over
                       all of a sample's values, top ``(N, 1, 1)``); only ``top_k: 1`` and
                       ``out_max_val: false``. Ties give the first index (Caffe's sort gives the last)
=====================  ===========================================================================

Rules and deliberate choices
----------------------------
* **Phases.** ``include``/``exclude`` rules are Caffe's (phase, ``min_level``/``max_level``,
  ``stage``/``not_stage``); ``phase`` is ``"train"`` or ``"test"`` (the default: inference).
* **Activations** are fused neurons where possible: a ReLU, Sigmoid or TanH is fused into the layer
  that produced its bottom when that layer is a Convolution, InnerProduct, Pooling, Eltwise (ResNet's
  ReLU after the sum) or Concat with one top and nothing reads the blob between the two (an in-place
  activation: ``bottom == top``). A non-in-place activation is fused too when nothing else reads its
  bottom (the producer then writes the activation's top directly). Any other activation becomes a
  :class:`~mocha_triton.NeuronLayer` of its own; an in-place one then writes a blob of its own,
  ``<blob>/<layer name>``, which the layers after it read.
* **Parameters** follow Caffe, not mocha-triton's defaults: ``param { lr_mult decay_mult }`` give the
  ``*_lr`` multipliers and the regularizers ``L2Regu(decay_mult)`` (``NoRegu()`` for 0; ``L1Regu``
  with ``regularization="L1"``), and both default to 1 for weights *and* biases, as in Caffe. The
  solver's ``weight_decay`` is the ``regu_coef`` (same convention: gradient ``decay_mult *
  weight_decay * W``). Named params (``param { name: "w" }``) share blobs through ``param_key``; a
  layer must then name all its params, and takes the lr_mults of the first layer that names them (one
  it gives itself must agree, as in Caffe). Each
  sharer updates the blob with its own gradient (Mocha's sharing), which adds up to Caffe's single
  update of the summed gradient for SGD and Nesterov; only the first layer adds the weight decay, so it
  counts once, as in Caffe (the adaptive methods' per-sharer statistics differ from Caffe's).
* **No bias** (``bias_term: false``): the layer keeps a bias parameter fixed at zero (initializer 0,
  learning rate 0, no regularizer), so it never changes; the caffemodel's single blob is the weight.
* **Fillers** become initializers: ``constant`` (Caffe's default filler, so an unspecified
  ``weight_filler`` gives zeros, as in Caffe), ``xavier``, ``msra``, ``gaussian`` (not sparse) and
  ``uniform``.
* **Loss and accuracy tops** disappear: mocha-triton's loss and statistics layers are sinks (the loss
  is ``state.loss``, the accuracy in ``net.statistics()``). A layer reading such a top is an error.
* **Fan-out.** When a blob that needs back-propagation feeds several back-propagating layers, a
  :class:`~mocha_triton.SplitLayer` named ``<blob>_split`` is inserted (Caffe inserts splits too).
* **Transformations** (``transform_param``) of a MemoryData layer become data transformers (SubMean
  of ``mean_value``, then Scale: Caffe's ``(x - mean) * scale``). On a data layer replaced through
  ``input_shapes`` they are kept by the :class:`InputLayer` and applied by :func:`feed` (feed raw
  values, as the Caffe data layer read them); ``mean_file`` is read when it exists (a BlobProto
  ``.binaryproto``), ``crop_size`` and ``mirror`` are not applied (a warning says so).
* Not supported (an error names the layer and the field): ``ignore_label``, loss normalisations
  other than VALID/FULL, dilation, ``axis`` other than 1, transposed inner products, stochastic
  pooling, losses on non-loss layers (``loss_weight``). ``propagate_down`` is ignored.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mocha_triton.blob import Blob
from mocha_triton.caffe import proto
from mocha_triton.caffe.reader import CaffeFormatError, blob_to_numpy, filter_net, read_blob, read_caffemodel, read_net
from mocha_triton.layers.accuracy import AccuracyLayer
from mocha_triton.layers.activation import NeuronLayer
from mocha_triton.layers.base import Layer, LayerError, LayerState, TopologyError
from mocha_triton.layers.combine import ConcatLayer, CropLayer, ElementWiseLayer
from mocha_triton.layers.convolution import ConvolutionLayer
from mocha_triton.layers.data import HDF5DataLayer, MemoryDataLayer
from mocha_triton.layers.dropout import DropoutLayer
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.layers.loss import MultinomialLogisticLossLayer, SoftmaxLossLayer
from mocha_triton.layers.normalization import LRNLayer, PowerLayer
from mocha_triton.layers.output import ArgmaxLayer
from mocha_triton.layers.pointwise_loss import SquareLossLayer
from mocha_triton.layers.pooling import Pooling, PoolingLayer
from mocha_triton.layers.softmax import SoftmaxLayer
from mocha_triton.layers.utility import ReshapeLayer, SplitLayer
from mocha_triton.net import Net
from mocha_triton.neurons import LReLU, Neuron, ReLU, Sigmoid, Tanh
from mocha_triton.parameter import (
    ConstantInitializer,
    GaussianInitializer,
    Initializer,
    L1Regu,
    L2Regu,
    NoRegu,
    XavierInitializer,
)
from mocha_triton.transformers import DataTransformer, Scale, SubMean

__all__ = [
    "SUPPORTED_TYPES", "CaffeArgMaxLayer", "CaffeConversionError", "CaffeFillerInitializer", "CaffeReshapeLayer",
    "InputLayer",
    "InputState", "NoBiasInitializer", "UniformInitializer", "feed", "load_net", "load_weights",
]

#: Caffe layer types that :func:`load_net` converts.
SUPPORTED_TYPES = (
    "Accuracy", "Convolution", "Dropout", "EuclideanLoss", "Flatten", "HDF5Data", "InnerProduct", "Input", "LRN",
    "MemoryData", "MultinomialLogisticLoss", "Pooling", "Power", "ReLU", "Reshape", "Sigmoid", "Softmax",
    "SoftmaxWithLoss", "Split", "TanH", "Concat", "Crop", "Eltwise", "ArgMax",
)
#: Data layers whose source mocha-triton cannot read: converted only through ``input_shapes``.
REPLACEABLE_DATA_TYPES = ("Data", "ImageData", "WindowData", "DummyData")
DATA_TYPES = ("Input", "HDF5Data", "MemoryData", *REPLACEABLE_DATA_TYPES)
ACTIVATIONS = ("ReLU", "Sigmoid", "TanH")
FUSING_PRODUCERS = ("Convolution", "InnerProduct", "Pooling", "Eltwise", "Concat")
LOSS_TYPES = ("SoftmaxWithLoss", "MultinomialLogisticLoss", "EuclideanLoss")
SINK_TYPES = (*LOSS_TYPES, "Accuracy")
PHASES = {"train": proto.TRAIN, "test": proto.TEST}


class CaffeConversionError(CaffeFormatError):
    """A Caffe net or model that is valid Caffe but cannot become a mocha-triton net (or does not fit
    the net it should load into). ``source`` is the file (or ``"<text>"``); the message names the file,
    the layer and the problem."""


# --- layers and initializers of this module ------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class InputLayer(Layer):
    """Caffe's Input layer: a source whose blobs hold whatever the user puts there.

    ``shapes`` gives one full blob shape ``(N, ...)`` per top. The blobs start as zeros; fill them with
    :func:`feed` (which applies ``transformers``, pairs ``(top, DataTransformer)`` taken from a replaced
    Caffe data layer's ``transform_param``) or with ``net.output_blobs[top].copy_from(array)`` (as is).
    ``forward`` does nothing: the blobs keep their contents until the next feed.
    """

    shapes: tuple[tuple[int, ...], ...]
    transformers: Any = ()

    is_source = True

    def validate(self) -> None:
        if self.bottoms:
            raise self.fail(f"an input layer has no bottoms, got {self.bottoms}")
        if not self.tops or len(set(self.tops)) != len(self.tops):
            raise self.fail(f"tops must be distinct names, got {self.tops}")
        try:
            shapes = tuple(tuple(int(d) for d in shape) for shape in self.shapes)
        except TypeError:
            raise self.fail(f"shapes must hold one shape (a tuple of ints) per top, got {self.shapes!r}") from None
        if len(shapes) != len(self.tops):
            raise self.fail(f"needs one shape per top {self.tops}, got {len(shapes)}: {shapes}")
        for top, shape in zip(self.tops, shapes):
            if not shape or any(d < 1 for d in shape):
                raise self.fail(f"the shape of top {top!r} must be non-empty with positive dimensions, got {shape}")
        object.__setattr__(self, "shapes", shapes)
        pairs = []
        for pair in self.transformers or ():
            if not isinstance(pair, (tuple, list)) or len(pair) != 2 or pair[0] not in self.tops \
                    or not isinstance(pair[1], DataTransformer):
                raise self.fail(f"transformers must be (top, DataTransformer) pairs for tops {self.tops}, got {pair!r}")
            pairs.append(tuple(pair))
        object.__setattr__(self, "transformers", tuple(pairs))

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> InputState:
        if inputs:
            raise self.fail(f"an input layer takes no input blobs, got {len(inputs)}")
        blobs = [Blob.zeros(backend, shape, top) for top, shape in zip(self.tops, self.shapes)]
        transforms: dict[str, list[Any]] = {top: [] for top in self.tops}
        for top, transformer in self.transformers:
            shape = self.shapes[self.tops.index(top)]
            try:
                transforms[top].append(transformer.setup(backend, shape[1:], backend.dtype))
            except (ValueError, OSError) as err:
                raise self.fail(f"transformer {type(transformer).__name__} for top {top!r}: {err}") from err
        return InputState(self, backend, blobs, transforms)


class InputState(LayerState):
    """The blobs of an :class:`InputLayer`; :meth:`feed` writes one of them."""

    layer: InputLayer

    def __init__(self, layer: InputLayer, backend: Any, blobs: list[Blob], transforms: dict[str, list[Any]]) -> None:
        super().__init__(layer, backend, blobs)
        self.transforms = transforms  # top -> transformer states, applied by feed

    def forward(self, inputs: list[Blob]) -> None:
        pass  # the blobs hold what was fed

    def feed(self, top: str, array: Any, transform: bool = True) -> None:
        """Copy ``array`` into the blob of ``top`` after the top's transformers (unless ``transform=False``).

        The array must have the blob's shape, or the same batch size and number of elements per sample.
        """
        blob = self.blobs[self.layer.tops.index(top)]
        host = np.array(array, dtype=self.backend.dtype, copy=True)
        if host.shape != blob.shape:
            if host.ndim < 1 or host.shape[0] != blob.shape[0] or host.size != blob.size:
                raise self.layer.fail(f"cannot feed an array of shape {host.shape} into top {top!r} of shape "
                                      f"{blob.shape} (batch size and elements per sample must match)")
            host = host.reshape(blob.shape)
        if transform:
            for state in self.transforms.get(top, ()):
                state.forward(host)
        blob.copy_from(host)


def feed(net: Net, arrays: Mapping[str, Any] | None = None, transform: bool = True, **named: Any) -> None:
    """Fill the :class:`InputLayer` blobs of ``net``: ``feed(net, data=x)`` or ``feed(net, {"data": x})``.

    Each array must have the blob's shape (or its batch size and element count). The transformers of
    a replaced Caffe data layer (its ``transform_param``) are applied first unless ``transform=False``.
    """
    values = {**(arrays or {}), **named}
    owners = {top: state for state in net.states if isinstance(state, InputState) for top in state.layer.tops}
    for top, array in values.items():
        if top not in owners:
            raise KeyError(f"feed: net {net.name!r} has no input blob {top!r}; its input blobs are {sorted(owners)}")
        owners[top].feed(top, array, transform)


@dataclass(frozen=True, kw_only=True)
class CaffeReshapeLayer(Layer):
    """Caffe's Reshape (and Flatten) of one bottom: ``dims`` is the top's full shape, where 0 copies the
    bottom's dimension at that position and one -1 is inferred. The batch dimension must stay
    (``dims[0]`` is 0, -1 or the batch size). The top is a view: both passes are free
    (:class:`~mocha_triton.ReshapeLayer` does the work once the shape is known)."""

    dims: tuple[int, ...]

    can_backprop = True

    def validate(self) -> None:
        if len(self.bottoms) != 1 or len(self.tops) != 1:
            raise self.fail(f"needs one bottom and one top, got bottoms {self.bottoms} and tops {self.tops}")
        dims = tuple(int(d) for d in self.dims)
        if not dims or any(d < -1 for d in dims) or dims.count(-1) > 1:
            raise self.fail(f"dims must be ints >= 0 with at most one -1, got {self.dims!r}")
        object.__setattr__(self, "dims", dims)

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The top shape for a bottom of ``shape`` (Caffe's rules for 0 and -1)."""
        out = []
        for i, d in enumerate(self.dims):
            if d == 0:
                if i >= len(shape):
                    raise self.fail(f"dims {self.dims}: dimension {i} is 0 (copy) but the bottom {shape} has "
                                    f"only {len(shape)} dimensions")
                d = shape[i]
            out.append(d)
        total = math.prod(shape)
        if -1 in out:
            known = math.prod(d for d in out if d != -1)
            if known == 0 or total % known:
                raise self.fail(f"cannot infer the -1 in dims {self.dims} for a bottom of shape {shape}")
            out[out.index(-1)] = total // known
        if math.prod(out) != total:
            raise self.fail(f"cannot reshape a bottom of shape {shape} to {tuple(out)}")
        if out[0] != shape[0]:
            raise self.fail(f"reshaping {shape} to {tuple(out)} changes the batch dimension, which mocha-triton "
                            f"keeps")
        return tuple(out)

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> LayerState:
        if len(inputs) != 1:
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        shape = self.output_shape(inputs[0].shape)
        inner = ReshapeLayer(name=self.name, bottoms=self.bottoms, tops=self.tops, shape=shape[1:])
        state = inner.setup(backend, inputs, diffs, phase)
        state.layer = self
        return state


@dataclass(frozen=True, kw_only=True)
class CaffeArgMaxLayer(Layer):
    """Caffe's ArgMax without an axis: for each sample, the index of the maximum over all its values (C
    order, i.e. ``argmax(x[n].ravel())``), as a float in a top of shape ``(N, 1, 1, ...)`` with
    ``max(3, bottom ndim)`` axes, as Caffe. No backward. :class:`~mocha_triton.ArgmaxLayer` does the work
    on the bottom viewed as ``(N, values, 1, ...)``."""

    def validate(self) -> None:
        if len(self.bottoms) != 1 or len(self.tops) != 1:
            raise self.fail(f"needs one bottom and one top, got bottoms {self.bottoms} and tops {self.tops}")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> LayerState:
        if len(inputs) != 1:
            raise self.fail(f"got {len(inputs)} input blobs for bottoms {self.bottoms}")
        x = inputs[0]
        inner = ArgmaxLayer(name=self.name, bottoms=self.bottoms, tops=self.tops, dim=1)
        ones = (1,) * (max(3, x.ndim) - 2)
        state = inner.setup(backend, [x.reshape(x.shape[0], math.prod(x.shape[1:]), *ones)], diffs, phase)
        state.layer = self
        return state


@dataclass(frozen=True)
class NoBiasInitializer(ConstantInitializer):
    """Zero: the bias of a Caffe layer with ``bias_term: false`` (kept at zero with learning rate 0).
    :func:`load_weights` recognises it and expects no bias blob for that layer."""


@dataclass(frozen=True)
class UniformInitializer(Initializer):
    """U[low, high] (Caffe's ``uniform`` filler)."""

    low: float = 0.0
    high: float = 1.0

    def init(self, blob: Blob, rng: np.random.Generator) -> None:
        blob.copy_from(rng.uniform(self.low, self.high, blob.shape))


@dataclass(frozen=True)
class CaffeFillerInitializer(Initializer):
    """Caffe's ``xavier`` (U[-s, s], s = sqrt(3 / n)) and ``msra`` (N(0, 2 / n)) fillers with Caffe's
    fan: n = fan_in = count / shape[0], fan_out = count / shape[1], or their mean (``variance_norm``)."""

    kind: str = "xavier"
    variance_norm: str = "FAN_IN"

    def fan(self, shape: tuple[int, ...]) -> float:
        count = math.prod(shape)
        fan_in = count / shape[0] if shape and shape[0] else 1.0
        fan_out = count / shape[1] if len(shape) > 1 and shape[1] else float(count)
        n = {"FAN_IN": fan_in, "FAN_OUT": fan_out, "AVERAGE": (fan_in + fan_out) / 2}[self.variance_norm]
        return max(n, 1.0)

    def init(self, blob: Blob, rng: np.random.Generator) -> None:
        n = self.fan(blob.shape)
        if self.kind == "xavier":
            s = math.sqrt(3.0 / n)
            blob.copy_from(rng.uniform(-s, s, blob.shape))
        else:
            blob.copy_from(rng.normal(0.0, math.sqrt(2.0 / n), blob.shape))


# --- small helpers ---------------------------------------------------------------------------------


def caffe_float(value: float) -> float:
    """A protobuf ``float`` field (stored in float32) as the Python float of its shortest decimal form,
    so ``std: 0.0001`` gives 0.0001 and not 9.99999974e-05."""
    return float(str(np.float32(value)))


def _enum_name(message: Any, field: str) -> str:
    """The name of the enum value in ``message.field`` (e.g. "MAX")."""
    value = getattr(message, field)
    return message.DESCRIPTOR.fields_by_name[field].enum_type.values_by_number[value].name


def _describe(lp: Any) -> str:
    return f"layer {lp.name!r} (type {lp.type!r})"


@dataclass
class _Node:
    """One Caffe layer on its way to a mocha-triton layer (bottoms/tops after renaming)."""

    lp: Any
    bottoms: list[str]
    tops: list[str]
    neuron: Neuron | None = None
    removed: bool = False

    @property
    def type(self) -> str:
        return self.lp.type

    @property
    def name(self) -> str:
        return self.lp.name


# --- the converter -------------------------------------------------------------------------------------


class _Converter:
    """Turns the layers of one NetParameter into mocha-triton layers (see the module docstring)."""

    def __init__(self, net_param: Any, source: str, base_dir: str, phase: str, input_shapes: Mapping[str, Any],
                 batch_size: int | None, memory_data: Mapping[str, Any], regularization: str, level: int,
                 stages: Sequence[str]) -> None:
        self.net_param = net_param
        self.source = source
        self.base_dir = base_dir
        self.phase = phase
        self.input_shapes = {str(k): tuple(int(d) for d in v) for k, v in (input_shapes or {}).items()}
        self.batch_size = batch_size
        self.memory_data = dict(memory_data or {})
        self.regularization = regularization
        self.level = level
        self.stages = tuple(stages)
        self.shared_lr: dict[str, list[float]] = {}  # named params: the lr_mults of their first (owning) layer
        self.notes: list[str] = []  # warnings for the user, issued by load_net

    def fail(self, lp: Any, problem: str) -> CaffeConversionError:
        return CaffeConversionError(self.source, f"{_describe(lp)}: {problem}")

    # --- passes ----------------------------------------------------------------------------------
    def layers(self) -> list[Layer]:
        kept = list(filter_net(self.net_param, self.phase, level=self.level, stages=self.stages,
                               source=self.source).layer)
        self._check_types(kept)
        self._check_input_shapes(kept)
        nodes = [_Node(lp, list(lp.bottom), list(lp.top)) for lp in kept]
        self._dropouts(nodes)
        self._out_of_place_powers(nodes)
        self._fuse_activations(nodes)
        nodes = [node for node in nodes if not node.removed]
        self._sink_tops(nodes)
        layers = [self.convert(node) for node in nodes]
        return self._insert_splits(layers)

    def _check_types(self, kept: list[Any]) -> None:
        bad = [lp for lp in kept if lp.type not in SUPPORTED_TYPES and lp.type not in REPLACEABLE_DATA_TYPES]
        if bad:
            listed = ", ".join(f"layer {lp.name!r} of type {lp.type!r}" for lp in bad)
            raise CaffeConversionError(
                self.source, f"unsupported layer type(s): {listed}. Supported types: "
                f"{', '.join(SUPPORTED_TYPES)}; and {', '.join(REPLACEABLE_DATA_TYPES)} when input_shapes gives "
                f"their tops' shapes")

    def _check_input_shapes(self, kept: list[Any]) -> None:
        source_tops = [top for lp in kept if lp.type in DATA_TYPES for top in lp.top]
        unknown = sorted(set(self.input_shapes) - set(source_tops))
        if unknown:
            raise CaffeConversionError(self.source, f"input_shapes names {unknown}, which are not tops of a data "
                                                    f"or Input layer in phase {self.phase!r}; those tops are "
                                                    f"{source_tops}")

    def _dropouts(self, nodes: list[_Node]) -> None:
        """Test phase: drop every Dropout (the identity). Train phase: make a non-in-place Dropout in
        place when nothing else reads its bottom, and check in-place ones run where Caffe runs them."""
        for i, node in enumerate(nodes):
            if node.removed or node.type != "Dropout":
                continue
            if len(node.bottoms) != 1 or len(node.tops) != 1:
                raise self.fail(node.lp, f"needs one bottom and one top, got {node.bottoms} and {node.tops}")
            bottom, top = node.bottoms[0], node.tops[0]
            readers = [n.name for n in nodes if n is not node and not n.removed and bottom in n.bottoms]
            if self.phase == "test":
                node.removed = True
            elif top == bottom:
                producer = self._last_writer(nodes, i, bottom)
                early = [n.name for n in nodes[(producer + 1 if producer is not None else 0):i]
                         if not n.removed and bottom in n.bottoms and n.bottoms != n.tops]
                if early:
                    raise self.fail(node.lp, f"layers {early} read {bottom!r} before this in-place dropout; "
                                             "mocha-triton runs in-place layers right after the producer, so they "
                                             "would see the dropped-out values")
                continue
            elif readers:
                raise self.fail(node.lp, f"its bottom {bottom!r} is also read by {readers}; mocha-triton's dropout "
                                         "works in place, so make it in place (top == bottom) or give the other "
                                         "readers their own copy with a Split layer")
            else:
                node.tops = [bottom]
            for later in nodes[i + 1:]:  # consumers of the dropout's top read the bottom now
                later.bottoms = [bottom if b == top else b for b in later.bottoms]
                later.tops = [bottom if t == top else t for t in later.tops]

    def _out_of_place_powers(self, nodes: list[_Node]) -> None:
        """An in-place Power (``top == bottom``, fine in Caffe) writes a blob of its own here, named
        ``<blob>/<layer name>`` (mocha-triton's PowerLayer does not work in place); the layers after it
        read, and in-place ones write, the new blob instead."""
        for i, node in enumerate(nodes):
            if node.removed or node.type != "Power" or len(node.bottoms) != 1 or node.tops != node.bottoms:
                continue
            self._rename_from(nodes, i, node.bottoms[0], f"{node.bottoms[0]}/{node.name}")

    @staticmethod
    def _last_writer(nodes: list[_Node], before: int, blob: str) -> int | None:
        for j in range(before - 1, -1, -1):
            if not nodes[j].removed and blob in nodes[j].tops:
                return j
        return None

    def _fuse_activations(self, nodes: list[_Node]) -> None:
        for i, node in enumerate(nodes):
            if node.type not in ACTIVATIONS:
                continue
            if len(node.bottoms) != 1 or len(node.tops) != 1:
                raise self.fail(node.lp, f"needs one bottom and one top, got {node.bottoms} and {node.tops}")
            bottom, top = node.bottoms[0], node.tops[0]
            j = self._last_writer(nodes, i, bottom)
            producer = nodes[j] if j is not None else None
            reason = ""
            if producer is None:
                reason = f"no earlier layer produces {bottom!r}"
            elif producer.type not in FUSING_PRODUCERS:
                reason = f"{bottom!r} comes from layer {producer.name!r} of type {producer.type!r}"
            elif producer.neuron is not None:
                reason = f"layer {producer.name!r} already has a fused activation"
            elif len(producer.tops) != 1:
                reason = f"layer {producer.name!r} has several tops {producer.tops}"
            else:
                between = [n.name for n in nodes[j + 1:i] if not n.removed and bottom in n.bottoms]
                after = [n.name for n in nodes[i + 1:] if not n.removed and bottom in n.bottoms]
                if between:
                    reason = f"layers {between} read {bottom!r} before the activation"
                elif top != bottom and after:
                    reason = f"layers {after} read the pre-activation {bottom!r} too"
            if reason:  # a NeuronLayer of its own (an in-place one writes a blob of its own)
                if top == bottom:
                    self._rename_from(nodes, i, bottom, f"{bottom}/{node.name}")
                continue
            producer.neuron = self._neuron(node)
            producer.tops = [top]
            node.removed = True

    @staticmethod
    def _rename_from(nodes: list[_Node], i: int, blob: str, new: str) -> None:
        """Node ``i`` writes ``new`` instead of ``blob`` (in place in Caffe); the nodes after it read, and
        in-place ones write, ``new`` too."""
        taken = {b for node in nodes for b in (*node.bottoms, *node.tops)}
        while new in taken:
            new += "_"
        nodes[i].tops = [new if t == blob else t for t in nodes[i].tops]
        for later in nodes[i + 1:]:
            later.bottoms = [new if b == blob else b for b in later.bottoms]
            later.tops = [new if t == blob else t for t in later.tops]

    def _relu(self, node: _Node) -> Layer:
        """An activation that could not be fused (see ``_fuse_activations``) becomes a NeuronLayer."""
        return NeuronLayer(name=node.name, bottoms=node.bottoms, tops=node.tops, neuron=self._neuron(node))

    _sigmoid = _relu
    _tanh = _relu

    def _neuron(self, node: _Node) -> Neuron:
        if node.type == "Sigmoid":
            return Sigmoid()
        if node.type == "TanH":
            return Tanh()
        slope = caffe_float(node.lp.relu_param.negative_slope)
        if slope == 0:
            return ReLU()
        if slope < 0:
            raise self.fail(node.lp, f"negative_slope {slope} < 0 is not supported (leaky ReLUs need a slope > 0)")
        return LReLU(slope)

    def _sink_tops(self, nodes: list[_Node]) -> None:
        """Loss and accuracy layers are sinks here: drop their tops; nothing may read them."""
        dropped: dict[str, str] = {}
        for node in nodes:
            read = [b for b in node.bottoms if b in dropped]
            if read:
                raise self.fail(node.lp, f"reads {read}, the output of {[dropped[b] for b in read]}; mocha-triton's "
                                         "loss and accuracy layers have no tops (see state.loss and "
                                         "net.statistics())")
            if node.type in SINK_TYPES:
                dropped.update({top: node.name for top in node.tops})
                node.tops = []

    def _insert_splits(self, layers: list[Layer]) -> list[Layer]:
        """Caffe fans a blob out automatically; mocha-triton needs a SplitLayer when the blob needs
        back-propagation and several back-propagating layers read it."""
        needs_bp: dict[str, bool] = {}
        for layer in layers:
            upstream = any(needs_bp.get(b, False) for b in layer.bottoms)
            for top in layer.tops:
                needs_bp[top] = layer.can_backprop and (layer.has_params or upstream)
        result = list(layers)
        for blob, needed in needs_bp.items():
            readers = [k for k, layer in enumerate(result)
                       if blob in layer.bottoms and layer.can_backprop and not layer.is_inplace]
            if not needed or len(readers) < 2:
                continue
            tops = [f"{blob}_split_{i}" for i in range(len(readers))]
            for k, top in zip(readers, tops):
                layer = result[k]
                result[k] = replace(layer, bottoms=tuple(top if b == blob else b for b in layer.bottoms))
            result.append(SplitLayer(name=f"{blob}_split", bottoms=(blob,), tops=tuple(tops)))
        return result

    # --- one layer -------------------------------------------------------------------------------
    def convert(self, node: _Node) -> Layer:
        lp = node.lp
        if lp.loss_weight and lp.type not in LOSS_TYPES and any(w != 0 for w in lp.loss_weight):
            raise self.fail(lp, f"has a loss_weight, but only {', '.join(LOSS_TYPES)} layers can be losses in "
                                "mocha-triton")
        method = getattr(self, "_" + lp.type.lower(), None) or self._replaced_data
        try:
            return method(node)
        except CaffeConversionError:
            raise
        except ValueError as err:  # a layer's own validation: say which Caffe layer it came from
            raise self.fail(lp, str(err)) from err

    def _params(self, node: _Node, n: int) -> tuple[str, list[tuple[float, Any]]]:
        """(param_key, [(lr_mult, regularizer)] * n) from the layer's ParamSpecs (Caffe defaults 1, 1)."""
        specs = list(node.lp.param)
        if len(specs) > n:
            raise self.fail(node.lp, f"has {len(specs)} param specs for {n} parameters")
        names = [s.name for s in specs] + [""] * (n - len(specs))
        if any(names) and not all(names):
            raise self.fail(node.lp, f"names only some of its params {names}; mocha-triton shares a layer's "
                                     "parameters all together (name all of them, or none)")
        key = "caffe-params:" + ",".join(names) if all(names) else ""
        result = []
        for k in range(n):
            lr = caffe_float(specs[k].lr_mult) if k < len(specs) else 1.0
            decay = caffe_float(specs[k].decay_mult) if k < len(specs) else 1.0
            if decay == 0:
                regu: Any = NoRegu()
            else:
                regu = L1Regu(decay) if self.regularization == "L1" else L2Regu(decay)
            result.append((lr, regu))
        if key and key in self.shared_lr:
            # Caffe updates a shared blob once, from the sum of its layers' gradients, with the owner's
            # lr_mult and decay_mult. Here every sharer updates it with its own gradient (Mocha's sharing):
            # equal lr_mults make the plain and momentum SGD steps add up to Caffe's, and only the owner
            # adds the weight decay (else it would count once per sharer).
            owner = self.shared_lr[key]
            for k, (lr, _) in enumerate(result):  # an lr_mult given by a sharer must be the owner's (Caffe)
                if k < len(specs) and specs[k].HasField("lr_mult") and lr != owner[k]:
                    raise self.fail(node.lp, f"param {names[k]!r} has lr_mult {lr}, but the first layer sharing it "
                                             f"has {owner[k]}; Caffe needs shared params to agree")
            result = [(lr, NoRegu()) for lr in owner]
        elif key:
            self.shared_lr[key] = [lr for lr, _ in result]
        return key, result

    def _initializer(self, node: _Node, filler: Any, is_weight: bool) -> Initializer:
        kind = filler.type
        if kind == "constant":
            return ConstantInitializer(caffe_float(filler.value))
        if kind == "gaussian":
            if filler.sparse != -1:
                raise self.fail(node.lp, "the sparse gaussian filler is not supported")
            return GaussianInitializer(caffe_float(filler.mean), caffe_float(filler.std))
        if kind == "uniform":
            return UniformInitializer(caffe_float(filler.min), caffe_float(filler.max))
        if kind in ("xavier", "msra"):
            norm = _enum_name(filler, "variance_norm")
            if kind == "xavier" and norm == "FAN_IN" and is_weight:
                return XavierInitializer()
            return CaffeFillerInitializer(kind, norm)
        raise self.fail(node.lp, f"filler type {kind!r} is not supported (constant, gaussian, uniform, xavier, msra)")

    def _weighted(self, node: _Node, param: Any) -> dict[str, Any]:
        """Keyword arguments for the weight/bias fields of a Convolution (prefix "filter") or
        InnerProduct (prefix "weight") layer."""
        if param.axis != 1:
            raise self.fail(node.lp, f"axis {param.axis} is not supported (only 1)")
        if not param.HasField("num_output") or param.num_output < 1:
            raise self.fail(node.lp, "needs num_output >= 1")
        prefix = "filter" if node.type == "Convolution" else "weight"
        if param.bias_term:
            key, ((w_lr, w_regu), (b_lr, b_regu)) = self._params(node, 2)
        else:  # a bias fixed at zero: initialized to 0, never updated nor regularized
            key, ((w_lr, w_regu),) = self._params(node, 1)
            b_lr, b_regu = 0.0, NoRegu()
        return {
            "param_key": key,
            f"{prefix}_init": self._initializer(node, param.weight_filler, True),
            f"{prefix}_regu": w_regu,
            f"{prefix}_lr": w_lr,
            "bias_regu": b_regu,
            "bias_lr": b_lr,
            "bias_init": self._initializer(node, param.bias_filler, False) if param.bias_term
            else NoBiasInitializer(0.0),
            "neuron": node.neuron or Neuron(),
        }

    def _pair(self, lp: Any, param: Any, name: str, default: int | None) -> tuple[int, int]:
        """An (h, w) pair from Caffe's ``name`` field (repeated with 1 or 2 values in ConvolutionParameter,
        a single value in PoolingParameter) or from ``<base>_h``/``<base>_w`` (``kernel_size`` -> ``kernel_h``)."""
        base = name.removesuffix("_size")
        h = getattr(param, f"{base}_h") if param.HasField(f"{base}_h") else None
        w = getattr(param, f"{base}_w") if param.HasField(f"{base}_w") else None
        if param.DESCRIPTOR.fields_by_name[name].is_repeated:
            values = [int(v) for v in getattr(param, name)]
        else:
            values = [int(getattr(param, name))] if param.HasField(name) else []
        if h is not None or w is not None:
            if values:
                raise self.fail(lp, f"give either {name} or {base}_h/{base}_w, not both")
            if h is None or w is None:
                raise self.fail(lp, f"give both {base}_h and {base}_w")
            return int(h), int(w)
        if not values:
            if default is None:
                raise self.fail(lp, f"needs {name} (or {base}_h and {base}_w)")
            return default, default
        if len(values) > 2:
            raise self.fail(lp, f"{name} has {len(values)} values; only 2-D (1 or 2 values) is supported")
        return values[0], values[-1]

    # --- data layers -------------------------------------------------------------------------------
    def _batch(self, n: int) -> int:
        return int(self.batch_size) if self.batch_size else int(n)

    def _input(self, node: _Node) -> Layer:
        lp = node.lp
        declared = [tuple(int(d) for d in s.dim) for s in lp.input_param.shape]
        if declared and len(declared) not in (1, len(lp.top)):
            raise self.fail(lp, f"has {len(declared)} shapes for {len(lp.top)} tops")
        shapes = []
        for k, top in enumerate(lp.top):
            shape = self.input_shapes.get(top) or (declared[k if len(declared) > 1 else 0] if declared else None)
            if shape is None:
                raise self.fail(lp, f"gives no shape for top {top!r}; pass input_shapes={{{top!r}: (N, ...)}}")
            shapes.append((self._batch(shape[0]), *shape[1:]))
        return InputLayer(name=lp.name, tops=node.tops, shapes=tuple(shapes))

    def _replaced_data(self, node: _Node) -> Layer:
        """Data, ImageData, ...: an InputLayer when input_shapes gives the first top's shape."""
        lp = node.lp
        first = lp.top[0] if lp.top else ""
        if first not in self.input_shapes:
            where = next((getattr(lp, f).source for f in ("data_param", "image_data_param", "window_data_param")
                          if lp.HasField(f)), "")
            raise self.fail(lp, f"reads {where or 'its data'!r} through Caffe's {lp.type} layer, which "
                                f"mocha-triton cannot read (LMDB/LevelDB databases, image lists); pass "
                                f"input_shapes={{{first!r}: (N, C, H, W)}} to replace it with an InputLayer you "
                                f"feed, or convert the data to HDF5 and use an HDF5Data layer")
        data_shape = self.input_shapes[first]
        n = self._batch(data_shape[0])
        shapes = [(n, *data_shape[1:])]
        for top in lp.top[1:]:  # the label: (N,) unless given
            given = self.input_shapes.get(top)
            shapes.append((n, *given[1:]) if given else (n,))
        transformers = self._input_transformers(lp, shapes[0])
        return InputLayer(name=lp.name, tops=node.tops, shapes=tuple(shapes), transformers=transformers)

    def _mean(self, lp: Any, tp: Any, sample_shape: tuple[int, ...], must_exist: bool) -> np.ndarray | None:
        """The mean to subtract (shaped like a sample) from ``mean_value`` or ``mean_file``, or None."""
        if tp.mean_value and tp.HasField("mean_file"):
            raise self.fail(lp, "transform_param has both mean_file and mean_value (Caffe forbids this)")
        if tp.mean_value:
            values = np.asarray([caffe_float(v) for v in tp.mean_value], dtype=np.float64)
            channels = sample_shape[0] if sample_shape else 1
            if values.size not in (1, channels):
                raise self.fail(lp, f"transform_param has {values.size} mean_value(s) for {channels} channels")
            shape = (channels,) + (1,) * (len(sample_shape) - 1)
            return np.broadcast_to(np.broadcast_to(values, (channels,)).reshape(shape), sample_shape).copy()
        if tp.HasField("mean_file"):
            path = self._resolve(tp.mean_file)
            if not os.path.isfile(path):
                if must_exist:
                    raise self.fail(lp, f"mean_file {tp.mean_file!r} does not exist")
                self.notes.append(f"{_describe(lp)}: mean_file {tp.mean_file!r} does not exist; feed() will not "
                                  "subtract a mean")
                return None
            try:
                mean = blob_to_numpy(read_blob(path), source=path)
            except CaffeFormatError as err:
                raise self.fail(lp, f"cannot read mean_file: {err}") from err
            if mean.size != math.prod(sample_shape):
                raise self.fail(lp, f"mean_file {path!r} has shape {mean.shape}; one sample has shape {sample_shape}")
            return mean.reshape(sample_shape)
        return None

    def _transformers(self, lp: Any, shape: tuple[int, ...], must_exist: bool) -> tuple[tuple[str, Any], ...]:
        tp = lp.transform_param
        if not lp.HasField("transform_param"):
            return ()
        mean = self._mean(lp, tp, tuple(shape[1:]), must_exist)
        top = lp.top[0]
        result: list[tuple[str, Any]] = []
        if mean is not None:
            result.append((top, SubMean(mean_blob=mean)))
        if tp.scale != 1:
            result.append((top, Scale(caffe_float(tp.scale))))
        return tuple(result)

    def _input_transformers(self, lp: Any, shape: tuple[int, ...]) -> tuple[tuple[str, Any], ...]:
        tp = lp.transform_param
        if tp.crop_size or tp.mirror:
            self.notes.append(f"{_describe(lp)}: transform_param crop_size/mirror are not applied; feed() expects "
                              f"samples of shape {shape[1:]}")
        return self._transformers(lp, shape, must_exist=False)

    def _resolve(self, path: str) -> str:
        """A path from the prototxt: as given (cwd), else next to the prototxt."""
        path = os.path.expanduser(path)
        if os.path.isabs(path) or os.path.exists(path):
            return path
        beside = os.path.join(self.base_dir, path)
        return beside if os.path.exists(beside) else path

    def _hdf5data(self, node: _Node) -> Layer:
        lp = node.lp
        if lp.top and lp.top[0] in self.input_shapes:
            return self._replaced_data(node)
        p = lp.hdf5_data_param
        if not p.source:
            raise self.fail(lp, "needs hdf5_data_param.source (a text file listing HDF5 files)")
        batch = self._batch(p.batch_size)
        if batch < 1:
            raise self.fail(lp, "needs hdf5_data_param.batch_size >= 1")
        return HDF5DataLayer(name=lp.name, tops=node.tops, source=self._resolve(p.source), batch_size=batch,
                             shuffle=bool(p.shuffle))

    def _memorydata(self, node: _Node) -> Layer:
        lp = node.lp
        if lp.top and lp.top[0] in self.input_shapes:
            return self._replaced_data(node)
        p = lp.memory_data_param
        if len(lp.top) != 2:
            raise self.fail(lp, f"needs two tops (data and label), got {list(lp.top)}")
        batch = self._batch(p.batch_size)
        if batch < 1:
            raise self.fail(lp, "needs memory_data_param.batch_size >= 1")
        if lp.transform_param.crop_size or lp.transform_param.mirror:
            raise self.fail(lp, "transform_param crop_size/mirror are not supported")
        if lp.name in self.memory_data:
            data = tuple(np.asarray(a) for a in self.memory_data[lp.name])
        else:
            data = (np.zeros((batch, p.channels, p.height, p.width), np.float32), np.zeros((batch,), np.float32))
        transformers = self._transformers(lp, data[0].shape, must_exist=True)
        return MemoryDataLayer(name=lp.name, tops=node.tops, batch_size=batch, data=data, transformers=transformers)

    # --- computation layers ------------------------------------------------------------------------
    def _convolution(self, node: _Node) -> Layer:
        lp, p = node.lp, node.lp.convolution_param
        kwargs = self._weighted(node, p)
        if any(d != 1 for d in p.dilation):
            raise self.fail(lp, f"dilation {list(p.dilation)} is not supported (only 1)")
        kernel = self._pair(lp, p, "kernel_size", None)
        pad = self._pair(lp, p, "pad", 0)
        stride = self._pair(lp, p, "stride", 1)
        return ConvolutionLayer(name=lp.name, bottoms=node.bottoms, tops=node.tops, n_filter=int(p.num_output),
                                n_group=int(p.group), kernel=kernel, pad=pad, stride=stride, **kwargs)

    def _innerproduct(self, node: _Node) -> Layer:
        lp, p = node.lp, node.lp.inner_product_param
        if p.transpose:
            raise self.fail(lp, "transpose: true is not supported")
        kwargs = self._weighted(node, p)
        return InnerProductLayer(name=lp.name, bottoms=node.bottoms, tops=node.tops, output_dim=int(p.num_output),
                                 **kwargs)

    def _pooling(self, node: _Node) -> Layer:
        lp, p = node.lp, node.lp.pooling_param
        method = _enum_name(p, "pool")
        if method not in ("MAX", "AVE"):
            raise self.fail(lp, f"pool {method} is not supported (MAX, AVE)")
        ceil_mode = _enum_name(p, "round_mode") == "CEIL"
        pooling = Pooling.Max() if method == "MAX" else Pooling.Mean()
        neuron = node.neuron or Neuron()
        if p.global_pooling:
            if p.HasField("kernel_size") or p.HasField("kernel_h") or p.HasField("kernel_w"):
                raise self.fail(lp, "global_pooling takes no kernel size (Caffe forbids it)")
            return PoolingLayer(name=lp.name, bottoms=node.bottoms, tops=node.tops, pooling=pooling,
                                global_pooling=True, ceil_mode=ceil_mode, neuron=neuron)
        kernel = self._pair(lp, p, "kernel_size", None)
        pad = self._pair(lp, p, "pad", 0)
        stride = self._pair(lp, p, "stride", 1)
        return PoolingLayer(name=lp.name, bottoms=node.bottoms, tops=node.tops, kernel=kernel, stride=stride, pad=pad,
                            pooling=pooling, ceil_mode=ceil_mode, neuron=neuron)

    def _softmax(self, node: _Node) -> Layer:
        if node.lp.softmax_param.axis != 1:
            raise self.fail(node.lp, f"axis {node.lp.softmax_param.axis} is not supported (only 1)")
        return SoftmaxLayer(name=node.name, bottoms=node.bottoms, tops=node.tops)

    def _loss_kwargs(self, node: _Node) -> dict[str, Any]:
        lp = node.lp
        if len(lp.top) > 1:
            raise self.fail(lp, f"has {len(lp.top)} tops; only the loss top is supported")
        lossp = lp.loss_param
        if lossp.HasField("ignore_label"):
            raise self.fail(lp, "loss_param.ignore_label is not supported")
        if lossp.HasField("normalize") and not lossp.normalize:
            raise self.fail(lp, "loss_param.normalize: false (BATCH_SIZE normalisation) is not supported")
        norm = _enum_name(lossp, "normalization")
        if norm not in ("VALID", "FULL"):
            raise self.fail(lp, f"loss_param.normalization {norm} is not supported (VALID, FULL: the mean over "
                                "samples and positions)")
        if len(lp.bottom) != 2:
            raise self.fail(lp, f"needs bottoms [prediction, label], got {list(lp.bottom)}")
        weight = caffe_float(lp.loss_weight[0]) if lp.loss_weight else 1.0
        return {"name": lp.name, "bottoms": node.bottoms, "weight": weight}

    def _softmaxwithloss(self, node: _Node) -> Layer:
        if node.lp.softmax_param.axis != 1:
            raise self.fail(node.lp, f"softmax_param.axis {node.lp.softmax_param.axis} is not supported (only 1)")
        return SoftmaxLossLayer(**self._loss_kwargs(node))

    def _multinomiallogisticloss(self, node: _Node) -> Layer:
        return MultinomialLogisticLossLayer(**self._loss_kwargs(node))

    def _euclideanloss(self, node: _Node) -> Layer:
        lp = node.lp
        if len(lp.bottom) != 2 or len(lp.top) > 1:
            raise self.fail(lp, f"needs two bottoms and at most one top, got bottoms {list(lp.bottom)}, "
                                f"tops {list(lp.top)}")
        weight = caffe_float(lp.loss_weight[0]) if lp.loss_weight else 1.0
        return SquareLossLayer(name=lp.name, bottoms=node.bottoms, weight=weight)

    def _accuracy(self, node: _Node) -> Layer:
        lp, p = node.lp, node.lp.accuracy_param
        if p.HasField("ignore_label"):
            raise self.fail(lp, "accuracy_param.ignore_label is not supported")
        if p.axis != 1:
            raise self.fail(lp, f"accuracy_param.axis {p.axis} is not supported (only 1)")
        if len(lp.top) > 1:
            raise self.fail(lp, "per-class accuracy (a second top) is not supported")
        return AccuracyLayer(name=lp.name, bottoms=node.bottoms, top_k=int(p.top_k))

    def _dropout(self, node: _Node) -> Layer:
        ratio = caffe_float(node.lp.dropout_param.dropout_ratio)
        return DropoutLayer(name=node.name, bottoms=node.bottoms, ratio=ratio)

    def _split(self, node: _Node) -> Layer:
        return SplitLayer(name=node.name, bottoms=node.bottoms, tops=node.tops)

    def _flatten(self, node: _Node) -> Layer:
        p = node.lp.flatten_param
        if p.axis != 1 or p.end_axis != -1:
            raise self.fail(node.lp, f"flatten axis {p.axis} to end_axis {p.end_axis} is not supported (only 1 to -1)")
        return CaffeReshapeLayer(name=node.name, bottoms=node.bottoms, tops=node.tops, dims=(0, -1))

    def _reshape(self, node: _Node) -> Layer:
        p = node.lp.reshape_param
        if p.axis != 0 or p.num_axes != -1:
            raise self.fail(node.lp, "reshape_param axis/num_axes are not supported (the shape covers all axes)")
        return CaffeReshapeLayer(name=node.name, bottoms=node.bottoms, tops=node.tops, dims=tuple(p.shape.dim))

    def _lrn(self, node: _Node) -> Layer:
        lp, p = node.lp, node.lp.lrn_param
        if len(lp.bottom) != 1 or len(lp.top) != 1:
            raise self.fail(lp, f"needs one bottom and one top, got {list(lp.bottom)} and {list(lp.top)}")
        if p.local_size % 2 == 0:
            raise self.fail(lp, f"local_size must be odd (Caffe's rule), got {p.local_size}")
        within = _enum_name(p, "norm_region") == "WITHIN_CHANNEL"
        shift = caffe_float(p.k)
        if within:  # Caffe's WITHIN_CHANNEL computes (1 + alpha * mean x**2) ** -beta: k is not used
            if shift != 1:
                self.notes.append(f"{_describe(lp)}: lrn_param.k = {shift} is ignored for WITHIN_CHANNEL, as in "
                                  "Caffe (which uses 1)")
            shift = 1.0
        return LRNLayer(name=lp.name, bottoms=node.bottoms, tops=node.tops, kernel=int(p.local_size),
                        scale=caffe_float(p.alpha), shift=shift, power=caffe_float(p.beta),
                        mode="within_channel" if within else "across_channel")

    def _power(self, node: _Node) -> Layer:
        lp, p = node.lp, node.lp.power_param
        if len(lp.bottom) != 1 or len(lp.top) != 1:
            raise self.fail(lp, f"needs one bottom and one top, got {list(lp.bottom)} and {list(lp.top)}")
        return PowerLayer(name=node.name, bottoms=node.bottoms, tops=node.tops, power=caffe_float(p.power),
                          scale=caffe_float(p.scale), shift=caffe_float(p.shift))

    def _concat(self, node: _Node) -> Layer:
        p = node.lp.concat_param
        if p.HasField("axis") and p.HasField("concat_dim"):
            raise self.fail(node.lp, "give either concat_param.axis or the legacy concat_dim, not both (Caffe's rule)")
        dim = int(p.concat_dim) if p.HasField("concat_dim") else int(p.axis)
        return ConcatLayer(name=node.name, bottoms=node.bottoms, tops=node.tops, dim=dim,
                           neuron=node.neuron or Neuron())

    def _eltwise(self, node: _Node) -> Layer:
        lp, p = node.lp, node.lp.eltwise_param
        method = _enum_name(p, "operation")
        coeffs = tuple(caffe_float(c) for c in p.coeff)
        if coeffs and len(coeffs) != len(lp.bottom):
            raise self.fail(lp, f"has {len(coeffs)} coeff values for {len(lp.bottom)} bottoms (one per bottom)")
        if coeffs and method == "PROD":
            raise self.fail(lp, "coeff is for SUM only (Caffe refuses it with PROD)")
        if coeffs and method == "MAX":
            self.notes.append(f"{_describe(lp)}: coeff is ignored by MAX (as in Caffe)")
            coeffs = ()
        if method == "PROD" and not p.stable_prod_grad:
            self.notes.append(f"{_describe(lp)}: stable_prod_grad: false is ignored; the gradient is always the "
                              "product of the other bottoms (Caffe's stable form)")
        operation = {"SUM": "add", "PROD": "multiply", "MAX": "max"}[method]
        return ElementWiseLayer(name=node.name, bottoms=node.bottoms, tops=node.tops, operation=operation,
                                coeffs=coeffs, neuron=node.neuron or Neuron())

    def _crop(self, node: _Node) -> Layer:
        p = node.lp.crop_param
        return CropLayer(name=node.name, bottoms=node.bottoms, tops=node.tops, axis=int(p.axis),
                         offset=tuple(int(o) for o in p.offset))

    def _argmax(self, node: _Node) -> Layer:
        lp, p = node.lp, node.lp.argmax_param
        if len(lp.bottom) != 1 or len(lp.top) != 1:
            raise self.fail(lp, f"needs one bottom and one top, got {list(lp.bottom)} and {list(lp.top)}")
        if p.out_max_val:
            raise self.fail(lp, "argmax_param.out_max_val: true is not supported (only the indices)")
        if p.top_k != 1:
            raise self.fail(lp, f"argmax_param.top_k {p.top_k} is not supported (only 1)")
        if not p.HasField("axis"):
            return CaffeArgMaxLayer(name=node.name, bottoms=node.bottoms, tops=node.tops)
        if p.axis == 0:
            raise self.fail(lp, "argmax_param.axis 0 (the batch axis) is not supported")
        return ArgmaxLayer(name=node.name, bottoms=node.bottoms, tops=node.tops, dim=int(p.axis))


# --- public API --------------------------------------------------------------------------------------


def _read(prototxt: Any) -> tuple[Any, str, str | None]:
    """(NetParameter, description for errors, folder of the file or None)."""
    if isinstance(prototxt, proto.NetParameter):
        return prototxt, "<NetParameter>", None
    if isinstance(prototxt, os.PathLike) or (isinstance(prototxt, str) and "\n" not in prototxt
                                             and os.path.isfile(prototxt)):
        path = os.fspath(prototxt)
        return read_net(path), path, os.path.dirname(os.path.abspath(path))
    return read_net(prototxt), "<text>", None


def load_net(prototxt: Any, caffemodel: Any = None, backend: Any = None, phase: str = "test",
             input_shapes: Mapping[str, Sequence[int]] | None = None, batch_size: int | None = None, *,
             memory_data: Mapping[str, Sequence[Any]] | None = None, regularization: str = "L2",
             level: int = 0, stages: Sequence[str] = (), name: str | None = None, base_dir: str | None = None) -> Net:
    """Build a mocha-triton :class:`~mocha_triton.Net` from a Caffe net definition.

    * ``prototxt`` — a ``.prototxt`` path, prototxt text or a ``NetParameter``;
    * ``caffemodel`` — trained weights loaded with :func:`load_weights` (path or ``NetParameter``);
    * ``backend`` — default :func:`~mocha_triton.default_backend`;
    * ``phase`` — ``"test"`` (inference; Dropout left out) or ``"train"``;
    * ``input_shapes`` — ``{top: shape}``: shapes of Input tops, or the data top of a Caffe data layer to
      replace with an :class:`InputLayer` (its label top gets ``(N,)`` unless given too);
    * ``batch_size`` — overrides the batch size of every Input and data layer;
    * ``memory_data`` — ``{MemoryData layer name: (data, label)}`` arrays to serve;
    * ``regularization`` — ``"L2"`` (Caffe's default) or ``"L1"``, the solver's ``regularization_type``;
    * ``level``/``stages`` — the NetState for ``include``/``exclude`` rules;
    * ``name`` — the net's name (default: the prototxt's ``name``);
    * ``base_dir`` — where relative paths in the net (HDF5 source lists, mean files) are looked for when
      they are not found from the current directory (default: the prototxt's folder, else the cwd).

    Raises :class:`CaffeConversionError` (a ValueError) naming the layer for anything it cannot convert.
    """
    if phase not in PHASES:
        raise ValueError(f"load_net: phase must be 'train' or 'test', got {phase!r}")
    if regularization not in ("L1", "L2"):
        raise ValueError(f"load_net: regularization must be 'L1' or 'L2', got {regularization!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
        raise ValueError(f"load_net: batch_size must be a positive int, got {batch_size!r}")
    if backend is None:
        from mocha_triton.backends import default_backend

        backend = default_backend()
    net_param, source, folder = _read(prototxt)
    base_dir = os.fspath(base_dir) if base_dir is not None else folder or os.getcwd()
    converter = _Converter(net_param, source, base_dir, phase, input_shapes or {}, batch_size, memory_data or {},
                           regularization, level, stages)
    layers = converter.layers()
    for note in converter.notes:
        warnings.warn(f"{source}: {note}", stacklevel=2)
    try:
        net = Net(name or net_param.name or "caffe-net", backend, layers, phase=phase)
    except (TopologyError, LayerError) as exc:  # wiring or shapes the converted layers cannot take
        raise CaffeConversionError(source, str(exc)) from exc
    if caffemodel is not None:
        load_weights(net, caffemodel)
    return net


def _fit(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``array`` with ``shape``: equal, or equal after leading singleton dimensions (Caffe's legacy 4-D
    blobs: inner-product weights ``(1, 1, out, in)``, biases ``(1, 1, 1, out)``); else None."""
    if array.shape == shape:
        return array
    extra = array.ndim - len(shape)
    if extra > 0 and all(d == 1 for d in array.shape[:extra]) and array.shape[extra:] == shape:
        return array.reshape(shape)
    return None


def load_weights(net: Net, caffemodel: Any, strict: bool = True) -> None:
    """Copy a ``.caffemodel``'s blobs into ``net``'s parameters, by layer name.

    Caffe stores ``[weights, bias]`` per layer: convolution filters ``(F, C/g, KH, KW)``, inner-product
    weights ``(out, in)`` (legacy 4-D ``(1, 1, out, in)`` accepted), biases ``(out,)``. A layer converted
    with ``bias_term: false`` has one blob; its bias stays zero.

    With ``strict`` (default) it is an error when a parameter layer of the net has no weights in the
    model, or the model has weights for a layer the net lacks; ``strict=False`` warns instead (fine
    tuning with renamed layers). A blob count or shape that does not fit is always an error naming the
    layer, the parameter and both shapes. Nothing is modified when the model is rejected.
    """
    if isinstance(caffemodel, proto.NetParameter):
        model, source = caffemodel, "<NetParameter>"
    else:
        source = os.fspath(caffemodel)
        model = read_caffemodel(source)
    weights: dict[str, list[np.ndarray]] = {}
    for lp in model.layer:
        if lp.blobs:
            weights[lp.name] = [blob_to_numpy(b, source=f"{source}: layer {lp.name!r}") for b in lp.blobs]

    def complain(problem: str) -> None:
        if strict:
            raise CaffeConversionError(source, problem)
        warnings.warn(f"{source}: {problem}", stacklevel=3)

    copies: list[tuple[Blob, np.ndarray]] = []
    states = [state for state in net.states if state.parameters]
    for state in states:
        layer, params = state.layer, state.parameters
        arrays = weights.get(layer.name)
        if arrays is None:
            complain(f"the caffemodel has no weights for layer {layer.name!r} of net {net.name!r}; layers "
                     f"with weights in the model: {sorted(weights)}")
            continue
        no_bias = isinstance(getattr(layer, "bias_init", None), NoBiasInitializer)
        expected = len(params) - 1 if no_bias else len(params)
        if len(arrays) != expected:
            raise CaffeConversionError(
                source, f"layer {layer.name!r} has {len(arrays)} blobs {[a.shape for a in arrays]}, but the net's "
                        f"layer expects {expected}: {[(p.name, p.shape) for p in params[:expected]]}"
                        + (f" (bias_term is {not no_bias} in the net)" if abs(len(arrays) - expected) == 1 else ""))
        for param, array in zip(params, arrays):
            fitted = _fit(array, param.shape)
            if fitted is None:
                raise CaffeConversionError(source, f"layer {layer.name!r} parameter {param.name!r} has shape "
                                                   f"{array.shape} in the caffemodel, but the net expects "
                                                   f"{param.shape}")
            copies.append((param.blob, fitted))
        if no_bias:  # bias_term: false -> the fixed bias is zero
            copies.append((params[-1].blob, np.zeros(params[-1].shape)))
    names = {state.layer.name for state in states}
    extra = sorted(set(weights) - names)
    if extra:
        complain(f"the caffemodel has weights for layers {extra} that net {net.name!r} does not have (its "
                 f"parameter layers: {sorted(names)})")
    for blob, array in copies:
        blob.copy_from(array)
