"""LRNLayer and PowerLayer (mocha_triton/layers/normalization.py).

* Each layer set up directly on the NumPy backend in float64: outputs and bottom gradients against
  torch float64 (the LRN written directly from Mocha's formula, the power as torch.pow; gradients by
  autograd), both LRN modes, several bottoms, Mocha's defaults.
* A small net Convolution -> LRN (across) -> LRN (within) -> Power -> InnerProduct -> square loss:
  the parameter gradients of back-propagation against central finite differences of the objective.
* The Triton backend (interpreter, tiny shapes) equals the NumPy backend in float32.
* Bad configurations and inputs raise errors that name the layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.blob import Blob
from mocha_triton.layers.base import LayerError
from mocha_triton.layers.convolution import ConvolutionLayer
from mocha_triton.layers.data import MemoryDataLayer
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.layers.normalization import LRNLayer, LRNMode, PowerLayer
from mocha_triton.layers.pointwise_loss import SquareLossLayer
from mocha_triton.net import Net
from mocha_triton.parameter import GaussianInitializer
from support import assert_close

# --- machinery -----------------------------------------------------------------------------------------


def run(layer: Any, backend: Any, xs: list[np.ndarray], seed: int = 1) -> tuple[list, list, list]:
    """Forward, a seeded upstream gradient, backward (bottom gradients poisoned with NaN first);
    returns (outputs, upstream gradients, bottom gradients) as host arrays."""
    inputs = [Blob.from_numpy(backend, x, name) for x, name in zip(xs, layer.bottoms)]
    diffs = [Blob.zeros(backend, x.shape, name + "-diff") for x, name in zip(xs, layer.bottoms)]
    state = layer.setup(backend, inputs, diffs)
    state.forward(inputs)
    ys = [blob.to_numpy() for blob in state.blobs]
    rng = np.random.default_rng(seed)
    dys = [rng.standard_normal(y.shape) for y in ys]
    state.blobs_diff = [Blob.from_numpy(backend, dy, "dy") for dy in dys]
    for d in diffs:
        d.fill(float("nan"))
    state.backward(inputs, diffs)
    return ys, dys, [d.to_numpy() for d in diffs]


def torch_lrn(layer: LRNLayer, x: torch.Tensor) -> torch.Tensor:
    """Mocha's formula: y = x / (shift + scale * mean of x**2 over the zero-padded window) ** power."""
    pre = (layer.kernel - 1) // 2
    post = layer.kernel - 1 - pre
    squares = x * x
    if layer.mode == "across_channel":
        padded = F.pad(squares, (0, 0, 0, 0, pre, post))
        mean = sum(padded[:, t:t + x.shape[1]] for t in range(layer.kernel)) / layer.kernel
    else:
        padded = F.pad(squares, (pre, post, pre, post))
        mean = sum(padded[:, :, r:r + x.shape[2], s:s + x.shape[3]]
                   for r in range(layer.kernel) for s in range(layer.kernel)) / layer.kernel ** 2
    return x / (layer.shift + layer.scale * mean) ** layer.power


def torch_power(layer: PowerLayer, x: torch.Tensor) -> torch.Tensor:
    return torch.pow(layer.shift + layer.scale * x, layer.power)


def torch_outputs(fn: Any, xs: list[np.ndarray], dys: list[np.ndarray]) -> tuple[list, list]:
    """Outputs of ``fn`` on each bottom and the bottom gradients by float64 autograd."""
    tx = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    ys = [fn(t) for t in tx]
    sum((y * torch.tensor(dy)).sum() for y, dy in zip(ys, dys)).backward()
    return [y.detach().numpy() for y in ys], [t.grad.numpy() for t in tx]


def layer_with(cls: Any, n_bottoms: int, **kwargs: Any) -> Any:
    return cls(name="norm", bottoms=[f"x{i}" for i in range(n_bottoms)], tops=[f"y{i}" for i in range(n_bottoms)],
               **kwargs)


# --- LRN -----------------------------------------------------------------------------------------------

LRN_CASES = {
    # name: (bottom shapes, layer kwargs)
    "defaults": ([(2, 7, 3, 4)], {}),
    "across-strong": ([(2, 4, 2, 3)], dict(kernel=3, scale=2.0, shift=0.5, power=1.5)),
    "across-wider-than-channels": ([(1, 3, 2, 2)], dict(kernel=7, scale=1.0, power=0.75)),
    "across-even": ([(2, 5, 2, 2)], dict(kernel=4, scale=1.5)),
    "across-alexnet": ([(2, 6, 3, 3)], dict(kernel=5, scale=1e-4, power=0.75)),
    "within-cifar": ([(2, 3, 5, 5)], dict(kernel=3, scale=5.0, power=0.75, mode="within_channel")),
    "within-even-big": ([(1, 2, 4, 3)], dict(kernel=4, scale=3.0, shift=2.0, power=1.0, mode="within_channel")),
    "two-bottoms-differ": ([(2, 3, 3, 3), (1, 5, 2, 4)], dict(kernel=3, scale=1.0)),
}


@pytest.mark.parametrize("case", list(LRN_CASES))
def test_lrn_layer_matches_torch(case):
    shapes, kwargs = LRN_CASES[case]
    layer = layer_with(LRNLayer, len(shapes), **kwargs)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(shape) for shape in shapes]
    ys, dys, dxs = run(layer, NumpyBackend("float64"), xs)
    want_ys, want_dxs = torch_outputs(lambda x: torch_lrn(layer, x), xs, dys)
    window = layer.kernel if layer.mode == "across_channel" else layer.kernel ** 2
    for got, want in zip(ys, want_ys):
        assert_close(got, want, "float64", window, what=f"{case} y")
    for got, want in zip(dxs, want_dxs):
        assert_close(got, want, "float64", window * window, what=f"{case} dx")


def test_lrn_defaults_are_mochas_and_scale_is_caffes_alpha():
    layer = LRNLayer(name="lrn", bottoms=["x"], tops=["y"])
    assert (layer.kernel, layer.scale, layer.shift, layer.power, layer.mode) == (5, 1.0, 1.0, 0.75, "across_channel")
    assert LRNMode.AcrossChannel() == "across_channel" and LRNMode.WithinChannel() == "within_channel"
    assert layer.region == "across_channels"
    assert LRNLayer(name="l", bottoms=["x"], tops=["y"], mode=LRNMode.WithinChannel()).region == "within_channel"
    # Caffe: y = x / (k + alpha / n * sum x**2) ** beta, with torch's implementation of it
    x = np.random.default_rng(1).standard_normal((2, 6, 2, 2))
    mocha = layer_with(LRNLayer, 1, kernel=3, scale=0.3, shift=2.0, power=0.6)
    ys, _, _ = run(mocha, NumpyBackend("float64"), [x])
    caffe = F.local_response_norm(torch.tensor(x), 3, alpha=0.3, beta=0.6, k=2.0).numpy()
    assert_close(ys[0], caffe, "float64", 3)


def test_lrn_stores_the_scale_and_works_without_bottom_gradient():
    layer = layer_with(LRNLayer, 1, kernel=3, scale=1.0)
    backend = NumpyBackend("float64")
    x = np.random.default_rng(2).standard_normal((1, 4, 2, 2))
    inputs = [Blob.from_numpy(backend, x, "x0")]
    state = layer.setup(backend, inputs, [None])
    state.forward(inputs)
    scale = state.scales[0].to_numpy()
    y = state.blobs[0].to_numpy()
    np.testing.assert_allclose(y, x * scale ** -0.75, rtol=1e-14)
    assert state.scales[0].shape == (1, 4, 2, 2) and np.all(scale >= 1.0)
    state.blobs_diff = [Blob.from_numpy(backend, np.ones_like(x))]
    state.backward(inputs, [None])  # nothing to compute, nothing fails


# --- power ---------------------------------------------------------------------------------------------

POWER_CASES = {
    "defaults-identity": ([(2, 3)], {}),
    "square": ([(2, 3, 4)], dict(power=2.0, scale=1.5, shift=-0.5)),
    "cube-negative-scale": ([(3, 4)], dict(power=3.0, scale=-0.7)),
    "sqrt-shifted": ([(2, 5)], dict(power=0.5, scale=0.5, shift=4.0)),
    "inverse": ([(2, 2, 3)], dict(power=-1.0, scale=1.0, shift=5.0)),
    "non-integer-two-bottoms": ([(2, 3, 2, 2), (4, 5)], dict(power=-0.75, scale=2.0, shift=8.0)),
}


@pytest.mark.parametrize("case", list(POWER_CASES))
def test_power_layer_matches_torch(case):
    shapes, kwargs = POWER_CASES[case]
    layer = layer_with(PowerLayer, len(shapes), **kwargs)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal(shape) for shape in shapes]
    ys, dys, dxs = run(layer, NumpyBackend("float64"), xs)
    want_ys, want_dxs = torch_outputs(lambda x: torch_power(layer, x), xs, dys)
    for got, want in zip(ys, want_ys):
        assert_close(got, want, "float64", what=f"{case} y")
    for got, want in zip(dxs, want_dxs):
        assert_close(got, want, "float64", what=f"{case} dx")


def test_power_layer_nan_for_negative_bases_and_constant_cases():
    x = np.array([[-1.0, 0.0, 4.0]])
    ys, _, _ = run(layer_with(PowerLayer, 1, power=0.5), NumpyBackend("float64"), [x])
    np.testing.assert_array_equal(ys[0], [[np.nan, 0.0, 2.0]])
    ys, _, dxs = run(layer_with(PowerLayer, 1, power=0.0, scale=3.0, shift=1.0), NumpyBackend("float64"), [x])
    np.testing.assert_array_equal(ys[0], 1.0)
    np.testing.assert_array_equal(dxs[0], 0.0)
    assert PowerLayer(name="p", bottoms=["x"], tops=["y"]) == PowerLayer(name="p", bottoms=["x"], tops=["y"],
                                                                         power=1, scale=1, shift=0)


# --- gradients through a net ------------------------------------------------------------------------------


def normalization_net(backend: Any) -> Net:
    rng = np.random.default_rng(4)
    n = 2
    data = rng.standard_normal((n, 2, 5, 5))
    target = rng.uniform(0.0, 1.0, (n, 3))
    layers = [
        MemoryDataLayer(name="data", tops=["data", "target"], batch_size=n, data=(data, target)),
        ConvolutionLayer(name="conv", n_filter=4, kernel=(2, 2), bottoms=["data"], tops=["conv"],
                         filter_init=GaussianInitializer(0.0, 0.7), bias_init=GaussianInitializer(0.0, 0.3)),
        LRNLayer(name="lrn-across", kernel=3, scale=2.0, shift=1.0, power=0.75, bottoms=["conv"], tops=["norm1"]),
        LRNLayer(name="lrn-within", kernel=3, scale=3.0, shift=0.5, power=1.25, mode="within_channel",
                 bottoms=["norm1"], tops=["norm2"]),
        PowerLayer(name="power", power=3.0, scale=0.8, shift=1.5, bottoms=["norm2"], tops=["cubed"]),
        InnerProductLayer(name="ip", output_dim=3, bottoms=["cubed"], tops=["out"],
                          weight_init=GaussianInitializer(0.0, 0.1)),
        SquareLossLayer(name="loss", bottoms=["out", "target"]),
    ]
    net = Net("normalization", backend, layers)
    net.check_bp_topology()
    return net


def test_net_gradients_match_finite_differences():
    """Every parameter gradient (conv ones flow back through Power, both LRNs) against central differences."""
    net = normalization_net(NumpyBackend("float64", seed=1))
    net.forward()
    net.backward()
    eps = 1e-6
    for layer_name, params in net.params.items():
        for param in params:
            analytic = param.gradient.to_numpy()
            w = param.blob.to_numpy()
            numeric = np.empty_like(w)
            for j in range(w.size):
                values = []
                for step in (eps, -eps):
                    shifted = w.copy()
                    shifted.flat[j] += step
                    param.blob.copy_from(shifted)
                    values.append(net.forward())
                numeric.flat[j] = (values[0] - values[1]) / (2 * eps)
            param.blob.copy_from(w)
            scale = np.abs(numeric).max()
            assert scale > 1e-6, f"{layer_name}.{param.name}: the objective does not depend on it"
            assert np.abs(analytic - numeric).max() <= 1e-6 * scale, f"{layer_name}.{param.name}"


# --- the Triton backend --------------------------------------------------------------------------------


@pytest.mark.parametrize("layer", [
    layer_with(LRNLayer, 1, kernel=5, scale=2.0, power=0.75),
    layer_with(LRNLayer, 2, kernel=3, scale=4.0, shift=2.0, power=1.5, mode="within_channel"),
    layer_with(PowerLayer, 2, power=2.5, scale=0.5, shift=3.0),
], ids=["lrn-across", "lrn-within-two-bottoms", "power"])
def test_triton_backend_matches_numpy(layer):
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((2, 6, 3, 4)).astype(np.float32), rng.standard_normal((1, 2, 4, 3)).astype(np.float32)]
    xs = xs[:len(layer.bottoms)]
    want_ys, _, want_dxs = run(layer, NumpyBackend("float32"), xs)
    ys, _, dxs = run(layer, TritonBackend("cpu"), xs)
    window = 25 if isinstance(layer, LRNLayer) else 1
    for got, want in zip(ys + dxs, want_ys + want_dxs):
        assert_close(got, want, "float32", window * 6)


# --- bad configurations and inputs ------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    (dict(kernel=0), r"LRNLayer 'bad': kernel must be a positive int, got 0"),
    (dict(kernel=2.5), r"LRNLayer 'bad': kernel must be a positive int, got 2.5"),
    (dict(kernel=True), r"LRNLayer 'bad': kernel must be a positive int"),
    (dict(scale=-1.0), r"LRNLayer 'bad': scale must be >= 0, got -1.0"),
    (dict(shift=0.0), r"LRNLayer 'bad': shift must be > 0"),
    (dict(power=float("nan")), r"LRNLayer 'bad': power must be a finite number, got nan"),
    (dict(power="0.75"), r"LRNLayer 'bad': power must be a finite number"),
    (dict(mode="AcrossChannel"), r"LRNLayer 'bad': mode must be one of \('across_channel', 'within_channel'\)"),
    (dict(mode="across_channel", tops=[]), r"LRNLayer 'bad': needs one top per bottom"),
])
def test_lrn_bad_configurations(kwargs, match):
    kwargs = {"bottoms": ["x"], "tops": ["y"], **kwargs}
    with pytest.raises(LayerError, match=match):
        LRNLayer(name="bad", **kwargs)


@pytest.mark.parametrize("kwargs, match", [
    (dict(power=float("inf")), r"PowerLayer 'bad': power must be a finite number, got inf"),
    (dict(scale=None), r"PowerLayer 'bad': scale must be a finite number, got None"),
    (dict(shift=False), r"PowerLayer 'bad': shift must be a finite number"),
    (dict(bottoms=["x", "z"]), r"PowerLayer 'bad': needs one top per bottom"),
])
def test_power_bad_configurations(kwargs, match):
    kwargs = {"bottoms": ["x"], "tops": ["y"], **kwargs}
    with pytest.raises(LayerError, match=match):
        PowerLayer(name="bad", **kwargs)


def test_lrn_rejects_bottoms_that_are_not_4d():
    backend = NumpyBackend("float64")
    layer = layer_with(LRNLayer, 1)
    x = Blob.from_numpy(backend, np.zeros((2, 3, 4)), "x0")
    with pytest.raises(LayerError, match=r"LRNLayer 'norm': needs 4-D bottoms \(N, C, H, W\), got shape \(2, 3, 4\)"):
        layer.setup(backend, [x], [None])
    with pytest.raises(LayerError, match=r"LRNLayer 'norm': got 2 input blobs for bottoms \('x0',\)"):
        layer.setup(backend, [x, x], [None, None])
