"""Whole-net gradient checks: back-propagation through a Net against central finite differences.

Small nets in float64 on the NumPy backend. For every element of every parameter, the gradient that
``Net.forward`` + ``Net.backward(regu_coef=0)`` leaves in ``param.gradient`` is compared with
``(f(w + eps) - f(w - eps)) / (2 eps)`` of the objective ``f`` that ``Net.forward`` returns.

* LeNet-like: fixed data -> Convolution(ReLU) -> Pooling(max) -> InnerProduct(Tanh) -> InnerProduct
  -> loss (an in-test square loss, and SoftmaxLossLayer when mocha_triton.layers.loss provides it).
* Fan-out: Convolution -> Pooling(mean) -> Split into two branches, one through Reshape,
  InnerProduct(Sigmoid), Dropout (the backend is reseeded before each forward, so every forward draws
  the same mask), InnerProduct and a loss, the other through global max Pooling, InnerProduct and
  Softmax into a square loss: the split must sum both branches' gradients.
* Two convolutions sharing their parameters through ``param_key``: each keeps its own gradient, and
  their sum is the derivative of the objective w.r.t. the shared blob.

Then ``regu_coef`` adds ``coefficient * regu_coef * W`` to the gradients of L2-regularised parameters
only, and a frozen layer's gradients are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from mocha_triton.backends import NumpyBackend
from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerState
from mocha_triton.layers.convolution import ConvolutionLayer
from mocha_triton.layers.dropout import DropoutLayer
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.layers.pooling import Pooling, PoolingLayer
from mocha_triton.layers.softmax import SoftmaxLayer
from mocha_triton.layers.utility import ReshapeLayer, SplitLayer
from mocha_triton.net import Net
from mocha_triton.neurons import ReLU, Sigmoid, Tanh
from mocha_triton.parameter import GaussianInitializer, L2Regu

try:
    from mocha_triton.layers.loss import SoftmaxLossLayer
except ImportError:  # written by another part of the project; the square loss covers the check meanwhile
    SoftmaxLossLayer = None

EPS = 1e-6
N_CLASSES = 3

# --- tiny in-test layers ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class FixedDataLayer(Layer):
    """A source serving the same arrays on every forward (one per top)."""

    arrays: tuple[Any, ...] = field(default=(), compare=False)

    is_source = True

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> Any:
        return FixedDataState(self, backend, [Blob.from_numpy(backend, a, t) for a, t in zip(self.arrays, self.tops)])


class FixedDataState(LayerState):
    epoch = 0

    def forward(self, inputs: list[Blob]) -> None:
        for blob, array in zip(self.blobs, self.layer.arrays):
            blob.copy_from(array)


@dataclass(frozen=True, kw_only=True)
class SquareLossLayer(Layer):
    """loss = 1/2 ||pred - target||^2 / N; the gradient goes to the prediction only."""

    is_sink = True
    has_loss = True
    can_backprop = True

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> Any:
        return SquareLossState(self, backend, inputs[0].shape)


class SquareLossState(LayerState):
    def __init__(self, layer: Layer, backend: Any, shape: tuple[int, ...]) -> None:
        super().__init__(layer, backend)
        self.residual = Blob.empty(backend, shape)
        self.total = Blob.empty(backend, (1,))

    def forward(self, inputs: list[Blob]) -> None:
        pred, target = inputs
        self.ops.copy(pred.data, self.residual.data)
        self.ops.axpy(-1.0, target.reshape(pred.shape).data, self.residual.data)
        self.ops.sum_of_squares(self.residual.data, self.total.data)
        self.loss = 0.5 * float(self.total.to_numpy()[0]) / pred.shape[0]

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        if diffs[0] is not None:
            self.ops.copy(self.residual.data, diffs[0].data)
            self.ops.scale(diffs[0].data, 1.0 / inputs[0].shape[0])


def make_loss(kind: str, name: str, pred: str, label: str) -> Layer:
    if kind == "softmax":
        if SoftmaxLossLayer is None:
            pytest.skip("mocha_triton.layers.loss.SoftmaxLossLayer is not available")
        return SoftmaxLossLayer(name=name, bottoms=[pred, label])
    return SquareLossLayer(name=name, bottoms=[pred, label + "-onehot"])


def fixed_data(rng: np.random.Generator, shape: tuple[int, ...], n_targets: int = 1) -> FixedDataLayer:
    """Tops: data, label (class indices, (N, 1)), label-onehot and target-k (random vectors)."""
    n = shape[0]
    label = rng.integers(0, N_CLASSES, (n, 1)).astype(np.float64)
    onehot = np.eye(N_CLASSES)[label[:, 0].astype(int)]
    targets = [rng.uniform(0.1, 0.9, (n, N_CLASSES)) for _ in range(n_targets)]
    tops = ["data", "label", "label-onehot", *[f"target{k}" for k in range(n_targets)]]
    return FixedDataLayer(name="data", tops=tops, arrays=(rng.standard_normal(shape), label, onehot, *targets))


# --- the check ---------------------------------------------------------------------------------------


def analytic_gradients(net: Net, reseed: int | None, regu_coef: float = 0.0) -> dict[tuple[str, int], np.ndarray]:
    if reseed is not None:
        net.backend.seed(reseed)
    net.forward()
    net.backward(regu_coef=regu_coef)
    return {(layer, i): p.gradient.to_numpy() for layer, params in net.params.items() for i, p in enumerate(params)}


def objective(net: Net, reseed: int | None) -> float:
    if reseed is not None:
        net.backend.seed(reseed)
    return net.forward()


def numeric_gradient(net: Net, param: Any, reseed: int | None) -> np.ndarray:
    """Central differences of the objective w.r.t. every element of ``param``."""
    w = param.blob.to_numpy()
    grad = np.empty_like(w)
    for j in range(w.size):
        values = []
        for step in (EPS, -EPS):
            shifted = w.copy()
            shifted.flat[j] += step
            param.blob.copy_from(shifted)
            values.append(objective(net, reseed))
        grad.flat[j] = (values[0] - values[1]) / (2 * EPS)
    param.blob.copy_from(w)
    return grad


def assert_gradients_match(net: Net, reseed: int | None = None) -> dict[tuple[str, int], np.ndarray]:
    analytic = analytic_gradients(net, reseed)
    checked = 0
    for layer, params in net.params.items():
        for i, param in enumerate(params):
            numeric = numeric_gradient(net, param, reseed)
            scale = max(np.abs(numeric).max(), 1e-3)
            err = np.abs(analytic[layer, i] - numeric).max() / scale
            assert err < 1e-6, f"{layer}.{param.name}: relative error {err:.2e}"
            assert np.abs(numeric).max() > 1e-6, f"{layer}.{param.name}: the objective does not depend on it"
            checked += param.blob.size
    assert checked > 0
    return analytic


# --- nets ----------------------------------------------------------------------------------------------


def lenet(backend: Any, loss: str) -> Net:
    rng = np.random.default_rng(0)
    layers = [
        fixed_data(rng, (2, 2, 6, 6)),
        ConvolutionLayer(name="conv1", n_filter=3, kernel=(3, 3), neuron=ReLU(), bottoms=["data"], tops=["conv1"],
                         bias_init=GaussianInitializer(0.0, 0.2)),
        PoolingLayer(name="pool1", kernel=(2, 2), stride=(2, 2), pooling=Pooling.Max(), bottoms=["conv1"],
                     tops=["pool1"]),
        InnerProductLayer(name="ip1", output_dim=5, neuron=Tanh(), bottoms=["pool1"], tops=["ip1"],
                          weight_regu=L2Regu(2.0), bias_init=GaussianInitializer(0.0, 0.2)),
        InnerProductLayer(name="ip2", output_dim=N_CLASSES, bottoms=["ip1"], tops=["ip2"]),
        make_loss(loss, "loss", "ip2", "label"),
    ]
    net = Net("lenet", backend, layers)
    net.check_bp_topology()
    return net


@pytest.mark.parametrize("loss", ["square", "softmax"])
def test_lenet_gradients_match_finite_differences(loss):
    net = lenet(NumpyBackend("float64", seed=1), loss)
    assert sorted(net.params) == ["conv1", "ip1", "ip2"]
    assert_gradients_match(net)


def test_regularization_adds_coefficient_times_weights_and_frozen_layers_are_left_alone():
    net = lenet(NumpyBackend("float64", seed=2), "square")
    plain = analytic_gradients(net, None)
    regu = analytic_gradients(net, None, regu_coef=0.1)
    coefficients = {("conv1", 0): 0.1, ("conv1", 1): 0.0, ("ip1", 0): 0.2, ("ip1", 1): 0.0,
                    ("ip2", 0): 0.1, ("ip2", 1): 0.0}  # L2Regu(1) filters/weights, L2Regu(2) on ip1, no bias regu
    for (layer, i), coef in coefficients.items():
        w = net.params[layer][i].blob.to_numpy()
        np.testing.assert_allclose(regu[layer, i], plain[layer, i] + coef * w, rtol=1e-13, atol=1e-15)
    net.freeze("conv1")
    for param in net.params["conv1"]:
        param.gradient.fill(5.0)
    frozen = analytic_gradients(net, None, regu_coef=0.1)
    for key in coefficients:
        expected = np.full_like(regu[key], 5.0) if key[0] == "conv1" else regu[key]
        np.testing.assert_array_equal(frozen[key], expected)


@pytest.mark.parametrize("loss", ["square", "softmax"])
def test_fan_out_net_with_split_reshape_dropout_softmax(loss):
    rng = np.random.default_rng(3)
    layers = [
        fixed_data(rng, (2, 2, 5, 5)),
        ConvolutionLayer(name="conv", n_filter=3, kernel=(3, 3), pad=(1, 1), neuron=ReLU(), bottoms=["data"],
                         tops=["conv"], bias_init=GaussianInitializer(0.0, 0.2)),
        PoolingLayer(name="pool", kernel=(2, 2), stride=(2, 2), pooling=Pooling.Mean(), bottoms=["conv"],
                     tops=["pool"]),  # ceil rounding: (2, 3, 3, 3)
        SplitLayer(name="split", bottoms=["pool"], tops=["pool-a", "pool-b"]),
        ReshapeLayer(name="flatten", shape=(27,), bottoms=["pool-a"], tops=["flat"]),
        InnerProductLayer(name="ip-a", output_dim=4, neuron=Sigmoid(), bottoms=["flat"], tops=["hidden"]),
        DropoutLayer(name="drop", ratio=0.3, bottoms=["hidden"]),
        InnerProductLayer(name="ip-a2", output_dim=N_CLASSES, bottoms=["hidden"], tops=["out-a"]),
        make_loss(loss, "loss-a", "out-a", "label"),
        PoolingLayer(name="global", global_pooling=True, bottoms=["pool-b"], tops=["global"]),
        InnerProductLayer(name="ip-b", output_dim=N_CLASSES, bottoms=["global"], tops=["out-b"]),
        SoftmaxLayer(name="softmax", bottoms=["out-b"], tops=["prob-b"]),
        SquareLossLayer(name="loss-b", bottoms=["prob-b", "target0"]),
    ]
    net = Net("fan-out", NumpyBackend("float64", seed=4), layers)
    net.check_bp_topology()
    assert net.output_blobs["pool-a"] is net.output_blobs["pool"]
    assert net.diff_blobs["pool-a"] is net.diff_blobs["pool"]
    assert net.output_blobs["global"].shape == (2, 3, 1, 1)
    assert_gradients_match(net, reseed=7)
    drop = net.get_state("drop")
    assert 0 < (drop.rand.to_numpy() <= 0.3).sum() < drop.rand.size  # some units were dropped, not all


def test_shared_parameters_get_separate_gradients_that_sum_to_the_derivative():
    rng = np.random.default_rng(5)
    layers = [
        fixed_data(rng, (2, 1, 4, 4), n_targets=2),
        ConvolutionLayer(name="conv-a", param_key="tied", n_filter=2, kernel=2, neuron=Tanh(), bottoms=["data"],
                         tops=["a"], bias_init=GaussianInitializer(0.0, 0.2)),
        ConvolutionLayer(name="conv-b", param_key="tied", n_filter=2, kernel=2, neuron=ReLU(), bottoms=["data"],
                         tops=["b"]),
        InnerProductLayer(name="ip-a", output_dim=N_CLASSES, bottoms=["a"], tops=["out-a"]),
        InnerProductLayer(name="ip-b", output_dim=N_CLASSES, bottoms=["b"], tops=["out-b"]),
        SquareLossLayer(name="loss-a", bottoms=["out-a", "target0"]),
        SquareLossLayer(name="loss-b", bottoms=["out-b", "target1"]),
    ]
    net = Net("tied", NumpyBackend("float64", seed=6), layers)
    net.check_bp_topology()
    shared_a, shared_b = net.params["conv-a"], net.params["conv-b"]
    for pa, pb in zip(shared_a, shared_b):
        assert pa.blob is pb.blob and pa.gradient is not pb.gradient
    analytic = analytic_gradients(net, None)
    for i, param in enumerate(shared_a):
        numeric = numeric_gradient(net, param, None)
        total = analytic["conv-a", i] + analytic["conv-b", i]
        assert np.abs(total - numeric).max() <= 1e-6 * np.abs(numeric).max()
        assert not np.allclose(analytic["conv-a", i], numeric)  # one layer's gradient alone is not it
