"""Computation and utility layers: Convolution, Pooling, Softmax, Split, Reshape, Dropout.

Every layer is set up directly (``layer.setup`` with explicit gradient blobs), run forward, given a
random upstream gradient in ``state.blobs_diff`` and run backward. The reference is torch autograd in
float64 on the NumPy backend (outputs, bottom gradients, parameter gradients); the Triton backend
(float32, tiny shapes: the interpreter is slow) is compared with the NumPy backend in float32. Then
parameter sharing, frozen layers and the errors for bad configurations and inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.blob import Blob
from mocha_triton.layers.base import LayerError
from mocha_triton.layers.convolution import ConvolutionLayer
from mocha_triton.layers.dropout import DropoutLayer
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.layers.pooling import Pooling, PoolingLayer
from mocha_triton.layers.softmax import SoftmaxLayer
from mocha_triton.layers.utility import ReshapeLayer, SplitLayer
from mocha_triton.neurons import Exponential, Identity, LReLU, Neuron, ReLU, Sigmoid, Tanh
from mocha_triton.parameter import GaussianInitializer
from support import assert_close

# --- machinery -----------------------------------------------------------------------------------


@dataclass
class Run:
    """What one forward + backward of a layer produced, as host arrays."""

    state: Any
    inputs: list[Blob]
    diffs: list[Blob | None]
    ys: list[np.ndarray]
    dys: list[np.ndarray]
    dxs: list[np.ndarray | None]
    grads: list[np.ndarray]


def setup_state(layer: Any, backend: Any, xs: list[np.ndarray], phase: str = "train", with_diffs: bool = True,
                shared: list[Any] | None = None) -> tuple[Any, list[Blob], list[Blob | None]]:
    """Set ``layer`` up on blobs holding ``xs``, with zeroed bottom gradients (or None) and top gradients."""
    inputs = [Blob.from_numpy(backend, x, name) for x, name in zip(xs, layer.bottoms)]
    diffs = [Blob.zeros(backend, x.shape, name + "-diff") if with_diffs else None
             for x, name in zip(xs, layer.bottoms)]
    kwargs = {"shared_params": shared} if layer.has_params else {}
    state = layer.setup(backend, inputs, diffs, phase=phase, **kwargs)
    for i, blob in enumerate(state.blobs):
        if state.blobs_diff[i] is None:
            state.blobs_diff[i] = Blob.zeros(backend, blob.shape, blob.name + "-diff")
    return state, inputs, diffs


def run_layer(layer: Any, backend: Any, xs: list[np.ndarray], seed: int = 1, params: list[np.ndarray] | None = None,
              with_diffs: bool = True, **kwargs: Any) -> Run:
    """Forward, a random upstream gradient (from ``seed``), backward; bottom diffs and parameter
    gradients are poisoned with NaN first, so whatever the layer forgets to write fails the checks."""
    state, inputs, diffs = setup_state(layer, backend, xs, with_diffs=with_diffs, **kwargs)
    for param, value in zip(state.parameters, params or []):
        param.blob.copy_from(value)
    state.forward(inputs)
    ys = [blob.to_numpy() for blob in state.blobs]
    rng = np.random.default_rng(seed)
    dys = [rng.standard_normal(y.shape) for y in ys]
    for blob, dy in zip(state.blobs_diff, dys):
        blob.copy_from(dy)
    for d in diffs:
        if d is not None:
            d.fill(float("nan"))
    for param in state.parameters:
        param.gradient.fill(float("nan"))
    state.backward(inputs, diffs)
    return Run(state, inputs, diffs, ys, dys, [d.to_numpy() if d is not None else None for d in diffs],
               [p.gradient.to_numpy() for p in state.parameters])


def torch_reference(fn: Any, xs: list[np.ndarray], params: list[np.ndarray], dys: list[np.ndarray]
                    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Outputs, input gradients and parameter gradients of ``fn(inputs, params) -> outputs`` in float64
    autograd, for the upstream gradients ``dys``."""
    tx = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    tp = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in params]
    outs = fn(tx, tp)
    sum((o * torch.tensor(dy)).sum() for o, dy in zip(outs, dys)).backward()
    return ([o.detach().numpy() for o in outs], [t.grad.numpy() for t in tx],
            [t.grad.numpy() if t.grad is not None else np.zeros_like(p) for t, p in zip(tp, params)])


TORCH_NEURONS = {
    "identity": lambda x, s: x,
    "relu": lambda x, s: torch.relu(x),
    "leaky_relu": lambda x, s: F.leaky_relu(x, s),
    "sigmoid": lambda x, s: torch.sigmoid(x),
    "tanh": lambda x, s: torch.tanh(x),
    "exp": lambda x, s: torch.exp(x),
}


def torch_neuron(neuron: Neuron) -> Any:
    return lambda x: TORCH_NEURONS[neuron.op_name](x, neuron.negative_slope)


def check_close(actual: list[Any], expected: list[Any], dtype: str, what: str, reduction: int = 1) -> None:
    assert len(actual) == len(expected), what
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert_close(a, e, dtype, reduction=reduction, what=f"{what}[{i}]")


# --- convolution ---------------------------------------------------------------------------------

CONV_CASES = {
    # name: (bottom shape, n_bottoms, layer kwargs)
    "plain": ((2, 3, 5, 6), 1, dict(n_filter=4, kernel=(3, 2))),
    "groups-stride-pad-relu": ((2, 4, 6, 5), 1, dict(n_filter=6, n_group=2, kernel=(3, 3), stride=(2, 1),
                                                     pad=(1, 2), neuron=ReLU())),
    "nonsquare-lrelu": ((1, 2, 7, 5), 1, dict(n_filter=3, kernel=(2, 3), stride=(2, 3), pad=(1, 0),
                                              neuron=LReLU(0.1))),
    "depthwise-sigmoid": ((2, 3, 4, 4), 1, dict(n_filter=3, n_group=3, kernel=2, neuron=Sigmoid())),
    "tanh-1x1": ((2, 3, 3, 4), 1, dict(n_filter=2, kernel=1, neuron=Tanh())),
    "exp-two-bottoms": ((2, 2, 5, 5), 2, dict(n_filter=3, kernel=(3, 3), pad=1, neuron=Exponential())),
    "three-bottoms-relu": ((1, 2, 4, 5), 3, dict(n_filter=2, kernel=(2, 2), stride=2, neuron=ReLU())),
}


def conv_layer(n_bottoms: int, **kwargs: Any) -> ConvolutionLayer:
    return ConvolutionLayer(name="conv", bottoms=[f"x{i}" for i in range(n_bottoms)],
                            tops=[f"y{i}" for i in range(n_bottoms)], **kwargs)


def torch_conv(layer: ConvolutionLayer) -> Any:
    act = torch_neuron(layer.neuron)
    return lambda xs, p: [act(F.conv2d(x, p[0], p[1], stride=layer.stride, padding=layer.pad,
                                       groups=layer.n_group)) for x in xs]


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_convolution_matches_torch(case):
    shape, n_bottoms, kwargs = CONV_CASES[case]
    layer = conv_layer(n_bottoms, **kwargs)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(shape) * 0.5 for _ in range(n_bottoms)]
    backend = NumpyBackend("float64", seed=2)
    c = shape[1]
    params = [rng.standard_normal((layer.n_filter, c // layer.n_group, *layer.kernel)) * 0.5,
              rng.standard_normal(layer.n_filter) * 0.5]
    run = run_layer(layer, backend, xs, params=params)
    assert [p.name for p in run.state.parameters] == ["filter", "bias"]
    ys, dxs, grads = torch_reference(torch_conv(layer), xs, params, run.dys)
    k = c // layer.n_group * layer.kernel[0] * layer.kernel[1]
    check_close(run.ys, ys, "float64", "y", k)
    check_close(run.dxs, dxs, "float64", "dx", k)
    check_close(run.grads, grads, "float64", "param grads", shape[0] * ys[0].shape[2] * ys[0].shape[3] * n_bottoms)


def test_convolution_default_parameters_and_shapes():
    layer = ConvolutionLayer(name="c", n_filter=5, kernel=(3, 3), bottoms=["x"], tops=["y"])
    assert (layer.stride, layer.pad, layer.n_group, layer.filter_lr, layer.bias_lr) == ((1, 1), (0, 0), 1, 1.0, 2.0)
    backend = NumpyBackend("float64", seed=0)
    state, _, _ = setup_state(layer, backend, [np.zeros((2, 4, 6, 7))])
    filt, bias = state.parameters
    assert filt.shape == (5, 4, 3, 3) and bias.shape == (5,) and state.blobs[0].shape == (2, 5, 4, 5)
    limit = np.sqrt(3.0 / (4 * 9))  # Xavier: U[-sqrt(3/fan_in), sqrt(3/fan_in)]
    assert np.all(np.abs(filt.blob.to_numpy()) <= limit) and np.abs(filt.blob.to_numpy()).max() > limit / 2
    np.testing.assert_array_equal(bias.blob.to_numpy(), 0.0)
    assert (filt.learning_rate, bias.learning_rate) == (1.0, 2.0)
    assert type(filt.regularizer).__name__ == "L2Regu" and type(bias.regularizer).__name__ == "NoRegu"


def test_convolution_without_bottom_diff_still_computes_parameter_gradients():
    layer = conv_layer(1, n_filter=2, kernel=2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 1, 4, 4))
    run = run_layer(layer, NumpyBackend("float64"), [x], with_diffs=False)
    params = [p.blob.to_numpy() for p in run.state.parameters]
    _, _, grads = torch_reference(torch_conv(layer), [x], params, run.dys)
    assert run.dxs == [None]
    check_close(run.grads, grads, "float64", "param grads", 18)


def test_convolution_shared_parameters_identical_outputs_separate_gradients():
    backend = NumpyBackend("float64", seed=5)
    first = ConvolutionLayer(name="conv-a", param_key="tied", n_filter=3, kernel=2, bottoms=["x"], tops=["a"],
                             bias_init=GaussianInitializer(0.0, 0.5))
    second = ConvolutionLayer(name="conv-b", param_key="tied", n_filter=3, kernel=2, bottoms=["x"], tops=["b"])
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4))
    run_a = run_layer(first, backend, [x], seed=10)
    run_b = run_layer(second, backend, [x], seed=11, shared=run_a.state.parameters)
    for pa, pb in zip(run_a.state.parameters, run_b.state.parameters):
        assert pa.blob is pb.blob and pa.gradient is not pb.gradient and pa.name == pb.name
    np.testing.assert_array_equal(run_a.ys[0], run_b.ys[0])
    params = [p.blob.to_numpy() for p in run_a.state.parameters]
    for run in (run_a, run_b):
        _, _, grads = torch_reference(torch_conv(first), [x], params, run.dys)
        check_close(run.grads, grads, "float64", "param grads", 2 * 9)
    assert not np.allclose(run_a.grads[0], run_b.grads[0])
    other = ConvolutionLayer(name="conv-c", param_key="tied", n_filter=4, kernel=2, bottoms=["x"], tops=["c"])
    with pytest.raises(LayerError, match="'conv-c'.*shared parameters"):
        setup_state(other, backend, [x], shared=run_a.state.parameters)


def test_frozen_convolution_computes_no_parameter_gradients():
    layer = conv_layer(2, n_filter=2, kernel=2, neuron=ReLU())
    backend = NumpyBackend("float64", seed=1)
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((1, 2, 3, 3)) for _ in range(2)]
    state, inputs, diffs = setup_state(layer, backend, xs)
    state.frozen = True
    for p in state.parameters:
        p.gradient.fill(7.0)
    state.forward(inputs)
    dys = [rng.standard_normal(b.shape) for b in state.blobs]
    for blob, dy in zip(state.blobs_diff, dys):
        blob.copy_from(dy)
    state.backward(inputs, diffs)
    for p in state.parameters:
        np.testing.assert_array_equal(p.gradient.to_numpy(), 7.0)
    params = [p.blob.to_numpy() for p in state.parameters]
    _, dxs, _ = torch_reference(torch_conv(layer), xs, params, dys)
    check_close([d.to_numpy() for d in diffs], dxs, "float64", "dx", 8)


# --- pooling -------------------------------------------------------------------------------------

POOL_CASES = {
    # name: (bottom shapes, layer kwargs); torch's ceil rule is the one we use (see checks.pooling)
    "max-2x2-ceil-odd": ([(2, 3, 5, 5)], dict(kernel=2, stride=2)),
    "max-3x3-s2-p1-ceil": ([(2, 2, 6, 7)], dict(kernel=3, stride=2, pad=1)),
    "max-3x3-s2-p1-floor": ([(2, 2, 6, 7)], dict(kernel=3, stride=2, pad=1, ceil_mode=False)),
    "max-kernel-below-stride": ([(1, 2, 7, 8)], dict(kernel=2, stride=3)),
    "max-nonsquare": ([(2, 2, 7, 6)], dict(kernel=(3, 2), stride=(2, 1), pad=(1, 0))),
    "mean-3x3-s2-p1-ceil": ([(2, 2, 6, 7)], dict(kernel=3, stride=2, pad=1, pooling=Pooling.Mean())),
    "mean-2x2-floor": ([(2, 3, 5, 7)], dict(kernel=2, stride=2, ceil_mode=False, pooling=Pooling.Mean())),
    "mean-nonsquare-ceil": ([(1, 2, 7, 6)], dict(kernel=(2, 3), stride=(2, 2), pad=(1, 1),
                                                  pooling=Pooling.Mean())),
    "max-global": ([(2, 3, 4, 5)], dict(global_pooling=True)),
    "mean-global": ([(2, 3, 4, 5)], dict(global_pooling=True, pooling=Pooling.Mean())),
    "max-relu": ([(2, 2, 6, 6)], dict(kernel=3, stride=2, neuron=ReLU())),
    "mean-tanh": ([(2, 2, 6, 6)], dict(kernel=2, stride=1, pooling=Pooling.Mean(), neuron=Tanh())),
    "max-two-bottoms-differ": ([(2, 2, 6, 6), (1, 3, 5, 4)], dict(kernel=2, stride=2)),
    "mean-global-two-bottoms": ([(2, 2, 3, 3), (1, 1, 4, 6)], dict(global_pooling=True, pooling=Pooling.Mean())),
}


def pool_layer(n_bottoms: int, **kwargs: Any) -> PoolingLayer:
    return PoolingLayer(name="pool", bottoms=[f"x{i}" for i in range(n_bottoms)],
                        tops=[f"y{i}" for i in range(n_bottoms)], **kwargs)


def torch_pool(layer: PoolingLayer) -> Any:
    act = torch_neuron(layer.neuron)

    def pool(x: torch.Tensor) -> torch.Tensor:
        if layer.global_pooling:
            return x.amax(dim=(2, 3), keepdim=True) if layer.is_max else x.mean(dim=(2, 3), keepdim=True)
        if layer.is_max:
            return F.max_pool2d(x, layer.kernel, layer.stride, layer.pad, ceil_mode=layer.ceil_mode)
        return F.avg_pool2d(x, layer.kernel, layer.stride, layer.pad, ceil_mode=layer.ceil_mode, count_include_pad=True)

    return lambda xs, p: [act(pool(x)) for x in xs]


@pytest.mark.parametrize("case", list(POOL_CASES))
def test_pooling_matches_torch(case):
    shapes, kwargs = POOL_CASES[case]
    layer = pool_layer(len(shapes), **kwargs)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(shape) for shape in shapes]
    run = run_layer(layer, NumpyBackend("float64"), xs)
    ys, dxs, _ = torch_reference(torch_pool(layer), xs, [], run.dys)
    assert [y.shape for y in run.ys] == [y.shape for y in ys]
    check_close(run.ys, ys, "float64", "y", 30)
    check_close(run.dxs, dxs, "float64", "dx", 30)
    if layer.is_max:
        assert [a.dtype for a in run.state.argmax] == ["int32"] * len(shapes)
    else:
        assert run.state.argmax == []


def test_pooling_caffe_ceil_and_floor_output_sizes():
    backend = NumpyBackend("float64")
    x = np.zeros((1, 1, 6, 6))
    ceil = pool_layer(1, kernel=3, stride=2)  # ceil((6-3)/2)+1 = 3
    floor = pool_layer(1, kernel=3, stride=2, ceil_mode=False)  # (6-3)//2+1 = 2
    padded = pool_layer(1, kernel=2, stride=2, pad=1)  # ceil(6/2)+1 = 4, last starts at 6 >= 6+1? no -> 4
    assert setup_state(ceil, backend, [x])[0].blobs[0].shape == (1, 1, 3, 3)
    assert setup_state(floor, backend, [x])[0].blobs[0].shape == (1, 1, 2, 2)
    assert setup_state(padded, backend, [x])[0].blobs[0].shape == (1, 1, 4, 4)
    assert pool_layer(1).pooling == Pooling.Max() and pool_layer(1).ceil_mode is True


# --- softmax -------------------------------------------------------------------------------------

@pytest.mark.parametrize("shapes", [[(4, 5)], [(2, 3, 4)], [(2, 4, 3, 2), (3, 2)]], ids=["2d", "3d", "4d+2d"])
def test_softmax_matches_torch(shapes):
    layer = SoftmaxLayer(name="softmax", bottoms=[f"x{i}" for i in range(len(shapes))],
                         tops=[f"p{i}" for i in range(len(shapes))])
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal(shape) * 3 for shape in shapes]
    run = run_layer(layer, NumpyBackend("float64"), xs)
    ys, dxs, _ = torch_reference(lambda t, p: [torch.softmax(x, dim=1) for x in t], xs, [], run.dys)
    check_close(run.ys, ys, "float64", "y", 5)
    check_close(run.dxs, dxs, "float64", "dx", 5)


# --- split and reshape ---------------------------------------------------------------------------

@pytest.mark.parametrize("no_copy", [False, True])
def test_split_aliases_top_one_and_sums_gradients(no_copy):
    backend = NumpyBackend("float64")
    layer = SplitLayer(name="split", bottoms=["x"], tops=["a", "b", "c"], no_copy=no_copy)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 2))
    state, inputs, diffs = setup_state(layer, backend, [x])
    assert state.blobs[0] is inputs[0] and state.blobs_diff[0] is diffs[0]
    assert all((blob is inputs[0]) == no_copy for blob in state.blobs[1:])
    state.forward(inputs)
    for blob in state.blobs:
        np.testing.assert_array_equal(blob.to_numpy(), x)
    dys = [rng.standard_normal(x.shape) for _ in range(3)]
    for blob, dy in zip(state.blobs_diff, dys):  # top 1's consumer writes the bottom's diff
        blob.copy_from(dy)
    state.backward(inputs, diffs)
    np.testing.assert_allclose(diffs[0].to_numpy(), dys[0] + dys[1] + dys[2], rtol=1e-15)


def test_split_without_bottom_diff_is_forward_only():
    backend = NumpyBackend("float32")
    layer = SplitLayer(name="split", bottoms=["x"], tops=["a", "b"])
    state, inputs, diffs = setup_state(layer, backend, [np.ones((2, 2))], with_diffs=False)
    state.backward(inputs, diffs)  # nothing to do, no error
    assert diffs == [None]


def test_reshape_tops_and_diffs_are_views():
    backend = NumpyBackend("float64")
    layer = ReshapeLayer(name="reshape", shape=(6, 2), bottoms=["x", "z"], tops=["y", "w"])
    xs = [np.arange(24.0).reshape(2, 3, 4), np.arange(12.0).reshape(1, 12)]
    state, inputs, diffs = setup_state(layer, backend, xs)
    assert [b.shape for b in state.blobs] == [(2, 6, 2), (1, 6, 2)]
    assert [b.shape for b in state.blobs_diff] == [(2, 6, 2), (1, 6, 2)]
    state.forward(inputs)
    for top, x in zip(state.blobs, xs):
        np.testing.assert_array_equal(top.to_numpy(), x.reshape(top.shape))
    inputs[0].copy_from(-xs[0])  # the top is a view: new bottom values show through
    np.testing.assert_array_equal(state.blobs[0].to_numpy(), -xs[0].reshape(2, 6, 2))
    state.blobs_diff[1].copy_from(np.full((1, 6, 2), 3.0))
    state.backward(inputs, diffs)
    np.testing.assert_array_equal(diffs[1].to_numpy(), np.full((1, 12), 3.0))


# --- dropout -------------------------------------------------------------------------------------

@pytest.mark.parametrize("auto_scale", [True, False])
def test_dropout_train_masks_from_the_stored_draws(auto_scale):
    backend = NumpyBackend("float64", seed=7)
    layer = DropoutLayer(name="drop", ratio=0.3, auto_scale=auto_scale, bottoms=["x"])
    assert layer.is_inplace and layer.can_backprop and not layer.tops
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 50))
    state, inputs, diffs = setup_state(layer, backend, [x])
    state.forward(inputs)
    rand = state.rand.to_numpy()
    assert rand.shape == x.shape and rand.min() >= 0.0 and rand.max() < 1.0
    keep = rand > 0.3
    assert abs(keep.mean() - 0.7) < 0.03
    scale = 1 / 0.7 if auto_scale else 1.0
    np.testing.assert_allclose(inputs[0].to_numpy(), np.where(keep, x * scale, 0.0), rtol=1e-15)
    dy = rng.standard_normal(x.shape)
    diffs[0].copy_from(dy)
    state.backward(inputs, diffs)
    np.testing.assert_allclose(diffs[0].to_numpy(), np.where(keep, dy * scale, 0.0), rtol=1e-15)
    # the bottom gets its values back for its producer's backward (a neuron's derivative reads them)
    np.testing.assert_array_equal(inputs[0].to_numpy(), x)
    # a new forward draws a new mask; reseeding the backend replays the first one
    inputs[0].copy_from(x)
    state.forward(inputs)
    assert not np.array_equal(state.rand.to_numpy(), rand)
    backend.seed(7)
    inputs[0].copy_from(x)
    state.forward(inputs)
    np.testing.assert_array_equal(state.rand.to_numpy(), rand)


def test_dropout_test_phase_is_identity():
    backend = NumpyBackend("float32")
    layer = DropoutLayer(name="drop", bottoms=["x"])
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    state, inputs, diffs = setup_state(layer, backend, [x], phase="test")
    state.forward(inputs)
    np.testing.assert_array_equal(inputs[0].to_numpy(), x)
    diffs[0].copy_from(x)
    state.backward(inputs, diffs)
    np.testing.assert_array_equal(diffs[0].to_numpy(), x)
    assert backend.random_offset == 0  # no draws in the test phase


# --- Triton backend against the NumPy backend (float32, tiny shapes) ---------------------------

def _parity_cases() -> dict[str, tuple[Any, list[tuple[int, ...]]]]:
    return {
        "conv-groups-stride-pad-relu-2bottoms": (
            ConvolutionLayer(name="conv", n_filter=2, n_group=2, kernel=(3, 2), stride=(2, 1), pad=(1, 1),
                             neuron=ReLU(), bias_init=GaussianInitializer(0.0, 0.3),
                             bottoms=["x0", "x1"], tops=["y0", "y1"]),
            [(2, 2, 5, 4), (2, 2, 5, 4)]),
        "conv-tanh": (
            ConvolutionLayer(name="conv", n_filter=3, kernel=2, neuron=Tanh(), bottoms=["x0"], tops=["y0"]),
            [(1, 2, 3, 4)]),
        "pool-max-ceil-pad": (pool_layer(1, kernel=3, stride=2, pad=1), [(2, 2, 5, 6)]),
        "pool-mean-sigmoid-2bottoms": (pool_layer(2, kernel=2, stride=2, pooling=Pooling.Mean(), neuron=Sigmoid()),
                                       [(1, 2, 5, 5), (2, 1, 4, 3)]),
        "pool-max-global": (pool_layer(1, global_pooling=True), [(2, 3, 3, 4)]),
        "softmax": (SoftmaxLayer(name="sm", bottoms=["x0"], tops=["y0"]), [(2, 4, 3)]),
    }


@pytest.mark.parametrize("case", list(_parity_cases()))
def test_triton_matches_numpy_float32(case):
    layer, shapes = _parity_cases()[case]
    rng = np.random.default_rng(8)
    xs = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    cpu = run_layer(layer, NumpyBackend("float32", seed=3), xs, seed=9)
    gpu = run_layer(layer, TritonBackend(seed=3), xs, seed=9)
    for pc, pg in zip(cpu.state.parameters, gpu.state.parameters):  # same seed -> same initial weights
        np.testing.assert_array_equal(pc.blob.to_numpy(), pg.blob.to_numpy())
    check_close(gpu.ys, cpu.ys, "float32", "y", 12)
    check_close(gpu.dxs, cpu.dxs, "float32", "dx", 12)
    check_close(gpu.grads, cpu.grads, "float32", "param grads", 40)


def test_triton_split_reshape_dropout_match_numpy_float32():
    """x -> split(a, b); b -> reshape -> flat; dropout on flat. Gradients: a gets dy0, flat gets dy1."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    dys = [rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 12)).astype(np.float32)]
    results = []
    for backend in (NumpyBackend("float32", seed=4), TritonBackend(seed=4)):
        split = SplitLayer(name="split", bottoms=["x"], tops=["a", "b"])
        reshape = ReshapeLayer(name="reshape", shape=(12,), bottoms=["b"], tops=["flat"])
        drop = DropoutLayer(name="drop", ratio=0.4, bottoms=["flat"])
        s_state, s_in, s_diff = setup_state(split, backend, [x])
        r_state = reshape.setup(backend, [s_state.blobs[1]], [s_state.blobs_diff[1]])
        d_state = drop.setup(backend, r_state.blobs, r_state.blobs_diff)
        s_state.forward(s_in)
        r_state.forward([s_state.blobs[1]])
        d_state.forward(r_state.blobs)
        dropped = r_state.blobs[0].to_numpy()
        s_state.blobs_diff[0].copy_from(dys[0])  # what the consumers of a and flat write
        r_state.blobs_diff[0].copy_from(dys[1])
        d_state.backward(r_state.blobs, r_state.blobs_diff)
        r_state.backward([s_state.blobs[1]], [s_state.blobs_diff[1]])
        s_state.backward(s_in, s_diff)
        np.testing.assert_array_equal(s_in[0].to_numpy(), x)  # restored by the dropout's backward
        results.append([s_state.blobs[0].to_numpy(), dropped, d_state.rand.to_numpy(), s_diff[0].to_numpy()])
    (a0, f0, r0, d0), (a1, f1, r1, d1) = results
    np.testing.assert_array_equal(a0, x)  # top 1 is the bottom; the dropout works on the copy b
    np.testing.assert_array_equal(a1, x)
    np.testing.assert_array_equal(r1, r0)  # the same Philox draws on both backends
    scale = np.float32(1 / 0.6)
    np.testing.assert_allclose(f0, np.where(r0 > 0.4, x.reshape(2, 12) * scale, 0), rtol=1e-6)
    assert_close(f1, f0, "float32", what="dropped")
    np.testing.assert_allclose(d0, dys[0] + np.where(r0 > 0.4, dys[1] * scale, 0).reshape(x.shape), rtol=1e-6)
    assert_close(d1, d0, "float32", what="split diff")


# --- bad configurations and inputs ---------------------------------------------------------------

BAD_CONFIGS = [
    (lambda: ConvolutionLayer(name="c1", n_filter=3, n_group=2, bottoms=["x"], tops=["y"]), "does not divide n_filter"),
    (lambda: ConvolutionLayer(name="c1", kernel=(0, 3), bottoms=["x"], tops=["y"]), "kernel must be >= 1"),
    (lambda: ConvolutionLayer(name="c1", stride=(1, 2, 3), bottoms=["x"], tops=["y"]), "stride must be an int or"),
    (lambda: ConvolutionLayer(name="c1", pad=-1, bottoms=["x"], tops=["y"]), "pad must be >= 0"),
    (lambda: ConvolutionLayer(name="c1", n_filter=0, bottoms=["x"], tops=["y"]), "n_filter must be a positive"),
    (lambda: ConvolutionLayer(name="c1", bottoms=["x", "z"], tops=["y"]), "one top per bottom"),
    (lambda: ConvolutionLayer(name="c1", neuron="relu", bottoms=["x"], tops=["y"]), "neuron must be"),
    (lambda: PoolingLayer(name="p1", kernel=2, pad=2, bottoms=["x"], tops=["y"]), "pad .* smaller than kernel"),
    (lambda: PoolingLayer(name="p1", pooling="max", bottoms=["x"], tops=["y"]), "Pooling.Max"),
    (lambda: PoolingLayer(name="p1", bottoms=[], tops=[]), "one top per bottom"),
    (lambda: SoftmaxLayer(name="s1", bottoms=["x"], tops=[]), "one top per bottom"),
    (lambda: SplitLayer(name="sp1", bottoms=["x", "z"], tops=["a", "b"]), "exactly one bottom"),
    (lambda: SplitLayer(name="sp1", bottoms=["x"], tops=[]), "at least one top"),
    (lambda: ReshapeLayer(name="r1", shape=(3, 0), bottoms=["x"], tops=["y"]), "positive ints"),
    (lambda: ReshapeLayer(name="r1", shape=3, bottoms=["x"], tops=["y"]), "tuple of ints"),
    (lambda: DropoutLayer(name="d1", ratio=0.0, bottoms=["x"]), r"ratio must be a number in \(0, 1\)"),
    (lambda: DropoutLayer(name="d1", ratio=1.0, bottoms=["x"]), r"ratio must be a number in \(0, 1\)"),
    (lambda: DropoutLayer(name="d1", ratio=-0.2, bottoms=["x"]), r"ratio must be a number in \(0, 1\)"),
    (lambda: DropoutLayer(name="d1", ratio=0.5, bottoms=["x"], tops=["y"]), "takes no tops"),
    (lambda: DropoutLayer(name="d1", bottoms=["x", "z"]), "exactly one bottom"),
]


@pytest.mark.parametrize("make, message", BAD_CONFIGS, ids=[f"{i}" for i in range(len(BAD_CONFIGS))])
def test_bad_configurations_name_the_layer(make, message):
    with pytest.raises(LayerError, match=message) as info:
        make()
    assert "'" in str(info.value) and any(name in str(info.value) for name in ("'c1'", "'p1'", "'s1'", "'sp1'",
                                                                               "'r1'", "'d1'"))


BAD_INPUTS = [
    (ConvolutionLayer(name="conv1", n_filter=2, kernel=2, bottoms=["x"], tops=["y"]), [(2, 3, 4)], "4-D"),
    (ConvolutionLayer(name="conv1", n_filter=2, n_group=2, kernel=2, bottoms=["x"], tops=["y"]), [(1, 3, 4, 4)],
     "does not divide the 3 input channels"),
    (ConvolutionLayer(name="conv1", kernel=(5, 2), pad=(1, 0), bottoms=["x"], tops=["y"]), [(1, 1, 2, 4)],
     "larger than the padded input"),
    (ConvolutionLayer(name="conv1", kernel=2, bottoms=["x", "z"], tops=["y", "w"]), [(1, 1, 4, 4), (1, 2, 4, 4)],
     "same shape"),
    (PoolingLayer(name="pool1", kernel=2, bottoms=["x"], tops=["y"]), [(2, 3, 4)], "4-D"),
    (PoolingLayer(name="pool1", kernel=(4, 2), pad=(1, 0), bottoms=["x"], tops=["y"]), [(1, 1, 1, 4)],
     "larger than the padded input"),
    (SoftmaxLayer(name="softmax1", bottoms=["x"], tops=["y"]), [(5,)], "at least 2 dimensions"),
    (ReshapeLayer(name="reshape1", shape=(5,), bottoms=["x"], tops=["y"]), [(2, 2, 3)], "cannot reshape"),
]


@pytest.mark.parametrize("layer, shapes, message", BAD_INPUTS, ids=[f"{i}" for i in range(len(BAD_INPUTS))])
def test_bad_inputs_name_the_layer(layer, shapes, message):
    with pytest.raises(LayerError, match=message) as info:
        setup_state(layer, NumpyBackend("float64"), [np.zeros(s) for s in shapes])
    assert f"'{layer.name}'" in str(info.value)


def test_neuron_helpers_cover_identity():
    assert Identity().is_identity and conv_layer(1).neuron.is_identity


def test_layer_names_and_output_dims_are_checked():
    with pytest.raises(LayerError, match="InnerProductLayer: name must be a non-empty string, got ''"):
        InnerProductLayer(name="", output_dim=3, bottoms=["x"], tops=["y"])
    with pytest.raises(LayerError, match="InnerProductLayer 'ip9': output_dim must be a positive int, got True"):
        InnerProductLayer(name="ip9", output_dim=True, bottoms=["x"], tops=["y"])
