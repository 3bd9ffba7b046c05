"""Concat, ElementWise, Crop and Identity layers (mocha_triton/layers/combine.py).

* Each layer set up directly, run forward, given a random top gradient and run backward on the NumPy
  backend in float64, against torch float64 autograd (torch.cat, sums with coefficients, products,
  maxima, slicing and flips); bottoms without a gradient are skipped; fused neurons.
* The k-ary max routes the gradient to the first bottom holding the maximum (ties included).
* Crop: Mocha's centred/random/mirrored form (draws from backend.rng, replayed after restoring a
  resume point; centred and unflipped in the test phase) and Caffe's axis/offset form.
* Identity: tops and gradients share the bottoms' memory.
* Whole nets: an inception-like branch (Concat) and a residual ElementWise with a ReLU through
  Crop and Identity into a softmax loss, every parameter gradient against torch float64; a tiny
  TritonBackend net against the NumPy backend in float32.
* Errors for bad configurations and mismatched shapes name the layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerError, LayerState
from mocha_triton.layers.combine import ConcatLayer, CropLayer, ElementWiseFunctors, ElementWiseLayer, IdentityLayer
from mocha_triton.layers.convolution import ConvolutionLayer
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.layers.loss import SoftmaxLossLayer
from mocha_triton.layers.utility import SplitLayer
from mocha_triton.net import Net
from mocha_triton.neurons import Neuron, ReLU, Sigmoid, Tanh
from mocha_triton.parameter import GaussianInitializer
from mocha_triton.snapshots import capture_resume_point, restore_resume_point
from support import assert_close

# --- machinery -----------------------------------------------------------------------------------------


@dataclass
class Run:
    state: Any
    ys: list[np.ndarray]
    dys: list[np.ndarray]
    dxs: list[np.ndarray | None]


def run_layer(layer: Layer, backend: Any, xs: list[np.ndarray], grad_mask: list[bool] | None = None,
              seed: int = 1, phase: str = "train") -> Run:
    """Forward, a random top gradient, backward; bottom gradients (where ``grad_mask`` says) are poisoned
    with NaN first, so whatever the layer forgets to write fails the comparison."""
    grad_mask = grad_mask or [True] * len(xs)
    inputs = [Blob.from_numpy(backend, x, name) for x, name in zip(xs, layer.bottoms)]
    diffs = [Blob.zeros(backend, x.shape, name + "-diff") if wanted else None
             for x, name, wanted in zip(xs, layer.bottoms, grad_mask)]
    state = layer.setup(backend, inputs, diffs, phase=phase)
    for i, blob in enumerate(state.blobs):
        if state.blobs_diff[i] is None:
            state.blobs_diff[i] = Blob.zeros(backend, blob.shape, blob.name + "-diff")
    state.forward(inputs)
    ys = [blob.to_numpy() for blob in state.blobs]
    rng = np.random.default_rng(seed)
    dys = [rng.standard_normal(y.shape) for y in ys]
    for blob, dy in zip(state.blobs_diff, dys):
        blob.copy_from(dy)
    for d in diffs:
        if d is not None:
            d.fill(float("nan"))
    state.backward(inputs, diffs)
    return Run(state, ys, dys, [d.to_numpy() if d is not None else None for d in diffs])


def torch_reference(fn: Any, xs: list[np.ndarray], dys: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Outputs and input gradients of ``fn(inputs) -> outputs`` in float64 autograd (zeros where unused)."""
    tx = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    outs = fn(tx)
    sum((o * torch.tensor(dy)).sum() for o, dy in zip(outs, dys)).backward()
    return [o.detach().numpy() for o in outs], [t.grad.numpy() if t.grad is not None else np.zeros_like(x)
                                                for t, x in zip(tx, xs)]


TORCH_NEURONS = {"identity": lambda x: x, "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


def check_run(run: Run, fn: Any, xs: list[np.ndarray], dtype: str = "float64", reduction: int = 1) -> None:
    ys, dxs = torch_reference(fn, xs, run.dys)
    for i, (got, want) in enumerate(zip(run.ys, ys)):
        assert_close(got, want, dtype, reduction, what=f"y[{i}]")
    for i, (got, want) in enumerate(zip(run.dxs, dxs)):
        if got is not None:
            assert_close(got, want, dtype, reduction, what=f"dx[{i}]")


def randoms(shapes: list[tuple[int, ...]], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes]


def numpy64(seed: int = 0) -> NumpyBackend:
    return NumpyBackend("float64", seed=seed)


# --- Concat ------------------------------------------------------------------------------------------

CONCAT_CASES = {
    # name: (bottom shapes, dim, neuron)
    "channels-three-bottoms": ([(2, 1, 3, 4), (2, 3, 3, 4), (2, 2, 3, 4)], 1, Neuron()),
    "last-axis-negative-dim": ([(2, 3, 2), (2, 3, 5)], -1, Neuron()),
    "batch-axis": ([(1, 2, 3), (3, 2, 3)], 0, Neuron()),
    "one-bottom-relu": ([(2, 3, 2, 2)], 1, ReLU()),
    "two-d-sigmoid": ([(3, 4), (3, 2)], 1, Sigmoid()),
}


@pytest.mark.parametrize("case", sorted(CONCAT_CASES))
def test_concat_matches_torch(case):
    shapes, dim, neuron = CONCAT_CASES[case]
    layer = ConcatLayer(name="cat", bottoms=[f"x{i}" for i in range(len(shapes))], tops=["y"], dim=dim,
                        neuron=neuron)
    xs = randoms(shapes)
    run = run_layer(layer, numpy64(), xs)
    check_run(run, lambda t: [TORCH_NEURONS[neuron.op_name](torch.cat(t, dim=dim))], xs)


def test_concat_skips_bottoms_without_gradient():
    layer = ConcatLayer(name="cat", bottoms=["a", "b", "c"], tops=["y"])
    xs = randoms([(2, 2, 3), (2, 1, 3), (2, 3, 3)], seed=4)
    run = run_layer(layer, numpy64(), xs, grad_mask=[True, False, True])
    assert run.dxs[1] is None
    check_run(run, lambda t: [torch.cat(t, dim=1)], xs)


# --- ElementWise ---------------------------------------------------------------------------------------


def torch_eltwise(operation: str, coeffs: tuple[float, ...], neuron: str) -> Any:
    def fn(t: list[torch.Tensor]) -> list[torch.Tensor]:
        c = coeffs or (1.0,) * len(t)
        if operation == "add":
            y = sum(ci * x for ci, x in zip(c, t))
        elif operation == "subtract":
            y = t[0] - t[1]
        elif operation == "multiply":
            y = torch.stack(t).prod(0)
        elif operation == "divide":
            y = t[0] / t[1]
        else:  # the first maximum wins: argmax of the stack picks the first on ties, and max routes to it
            y = torch.stack(t).max(0).values
        return [TORCH_NEURONS[neuron](y)]

    return fn


ELTWISE_CASES = {
    # name: (operation, number of bottoms, coeffs, neuron)
    "add": ("add", 2, (), Neuron()),
    "add-functor-coeffs-3": (ElementWiseFunctors.Add(), 3, (0.5, -2.0, 1.5), Neuron()),
    "add-coeffs-4-relu": ("add", 4, (1.0, 0.25, -1.0, 3.0), ReLU()),
    "add-5": ("add", 5, (), Neuron()),
    "subtract": (ElementWiseFunctors.Subtract(), 2, (), Neuron()),
    "multiply-tanh": ("multiply", 2, (), Tanh()),
    "multiply-3": (ElementWiseFunctors.Multiply, 3, (), Neuron()),
    "divide": ("divide", 2, (), Neuron()),
    "max": ("max", 2, (), Neuron()),
    "max-3": ("max", 3, (), Neuron()),
    "max-4-sigmoid": (ElementWiseFunctors.Max(), 4, (), Sigmoid()),
}


@pytest.mark.parametrize("case", sorted(ELTWISE_CASES))
def test_elementwise_matches_torch(case):
    operation, k, coeffs, neuron = ELTWISE_CASES[case]
    layer = ElementWiseLayer(name="elt", bottoms=[f"x{i}" for i in range(k)], tops=["y"], operation=operation,
                             coeffs=coeffs, neuron=neuron)
    xs = randoms([(2, 3, 4)] * k, seed=k)
    if layer.operation == "divide":
        xs[1] = np.sign(xs[1]) * (0.5 + np.abs(xs[1]))
    run = run_layer(layer, numpy64(), xs)
    check_run(run, torch_eltwise(layer.operation, coeffs, neuron.op_name), xs, reduction=k)
    grad_mask = [i % 2 == 1 for i in range(k)]  # the same with some bottoms needing no gradient
    run = run_layer(layer, numpy64(), xs, grad_mask=grad_mask)
    assert [d is None for d in run.dxs] == [not m for m in grad_mask]
    check_run(run, torch_eltwise(layer.operation, coeffs, neuron.op_name), xs, reduction=k)


def test_elementwise_max_routes_ties_to_the_first_bottom():
    x0 = np.array([[1.0, 5.0, 2.0, 0.0, 3.0]])
    x1 = np.array([[1.0, 5.0, 4.0, 0.0, 1.0]])
    x2 = np.array([[0.0, 5.0, 4.0, 7.0, 3.0]])
    for k, xs in ((2, [x0, x1]), (3, [x0, x1, x2])):
        layer = ElementWiseLayer(name="m", bottoms=[f"x{i}" for i in range(k)], tops=["y"], operation="max")
        run = run_layer(layer, numpy64(), xs)
        expected_winner = np.argmax(np.stack(xs), axis=0)  # NumPy's argmax picks the first maximum too
        np.testing.assert_array_equal(run.ys[0], np.max(np.stack(xs), axis=0))
        for i, dx in enumerate(run.dxs):
            np.testing.assert_array_equal(dx, np.where(expected_winner == i, run.dys[0], 0.0))


def test_elementwise_multiply_gradient_with_zeros():
    """The stable product gradient (no division by x_i) is right where a bottom is 0."""
    xs = [np.array([[0.0, 2.0, 0.0]]), np.array([[3.0, 0.0, 0.0]]), np.array([[5.0, 7.0, 1.0]])]
    layer = ElementWiseLayer(name="p", bottoms=["a", "b", "c"], tops=["y"], operation="multiply")
    run = run_layer(layer, numpy64(), xs)
    check_run(run, torch_eltwise("multiply", (), "identity"), xs)


# --- Crop ----------------------------------------------------------------------------------------------


def test_caffe_crop_matches_torch():
    big, ref = randoms([(2, 3, 7, 6), (1, 1, 4, 3)], seed=2)
    for axis, offset, window in ((2, (2, 1), np.s_[:, :, 2:6, 1:4]), (2, (1,), np.s_[:, :, 1:5, 1:4]),
                                 (-2, (), np.s_[:, :, 0:4, 0:3])):
        layer = CropLayer(name="crop", bottoms=["big", "ref"], tops=["y"], axis=axis, offset=offset)
        run = run_layer(layer, numpy64(), [big, ref])
        check_run(run, lambda t, w=window: [t[0][w] + 0.0 * t[1].sum()], [big, ref])
        np.testing.assert_array_equal(run.dxs[1], 0.0)  # the shape bottom gets a zero gradient
    big, ref = randoms([(4, 5, 3), (2, 3, 3)], seed=3)
    layer = CropLayer(name="crop", bottoms=["big", "ref"], tops=["y"], axis=0, offset=(1, 2, 0))
    run = run_layer(layer, numpy64(), [big, ref], grad_mask=[True, False])
    check_run(run, lambda t: [t[0][1:3, 2:5, 0:3]], [big, ref])


def test_mocha_crop_centred_and_test_phase():
    xs = randoms([(2, 3, 7, 6), (1, 2, 5, 5)], seed=5)
    layer = CropLayer(name="crop", bottoms=["a", "b"], tops=["ya", "yb"], crop_size=(4, 3))
    run = run_layer(layer, numpy64(), xs)  # (7 - 4) // 2 = 1, (6 - 3) // 2 = 1; (5 - 4) // 2 = 0, 5 - 3 -> 1
    check_run(run, lambda t: [t[0][:, :, 1:5, 1:4], t[1][:, :, 0:4, 1:4]], xs)
    random_layer = CropLayer(name="crop", bottoms=["a", "b"], tops=["ya", "yb"], crop_size=(4, 3), random_crop=True,
                             random_mirror=True)
    backend = numpy64(seed=3)
    state_before = backend.rng.bit_generator.state
    test_run = run_layer(random_layer, backend, xs, phase="test")
    assert backend.rng.bit_generator.state == state_before  # the test phase draws nothing
    for got, want in zip(test_run.ys, run.ys):
        np.testing.assert_array_equal(got, want)


def test_mocha_random_crop_and_mirror_draw_from_the_backend_rng():
    x = randoms([(2, 2, 6, 7)], seed=6)[0]
    layer = CropLayer(name="crop", bottoms=["x"], tops=["y"], crop_size=(3, 4), random_crop=True, random_mirror=True)
    backend = numpy64(seed=11)
    inputs = [Blob.from_numpy(backend, x, "x")]
    diffs = [Blob.zeros(backend, x.shape, "dx")]
    state = layer.setup(backend, inputs, diffs)
    state.blobs_diff[0] = Blob.zeros(backend, state.blobs[0].shape)
    rng = np.random.default_rng(11)  # numpy64(seed=11) seeds backend.rng the same way
    seen = set()
    for _ in range(12):
        state.forward(inputs)
        h, w = int(rng.integers(0, 4)), int(rng.integers(0, 4))
        mirror = bool(rng.integers(0, 2))
        window = x[:, :, h:h + 3, w:w + 4]
        expected = window[..., ::-1] if mirror else window
        np.testing.assert_array_equal(state.blobs[0].to_numpy(), expected)
        assert state.starts[0] == (0, 0, h, w) and state.mirrors[0] == mirror
        dy = np.random.default_rng(h * 10 + w).standard_normal(expected.shape)
        state.blobs_diff[0].copy_from(dy)
        state.backward(inputs, diffs)
        dx = np.zeros_like(x)
        dx[:, :, h:h + 3, w:w + 4] = dy[..., ::-1] if mirror else dy
        np.testing.assert_array_equal(diffs[0].to_numpy(), dx)
        seen.add((h, w, mirror))
    assert len(seen) > 4  # the windows and flips do vary


def test_random_crops_replay_after_restoring_a_resume_point():
    x = randoms([(1, 1, 8, 8)], seed=7)[0]
    layers = [_Fixed(name="data", tops=["x"], arrays=(x,)),
              CropLayer(name="crop", bottoms=["x"], tops=["y"], crop_size=(3, 3), random_crop=True,
                        random_mirror=True)]
    net = Net("crops", numpy64(seed=21), layers)
    net.forward()
    point = capture_resume_point(net)
    first = []
    for _ in range(4):
        net.forward()
        first.append(net.output_blobs["y"].to_numpy())
    restore_resume_point(net, point)
    for expected in first:
        net.forward()
        np.testing.assert_array_equal(net.output_blobs["y"].to_numpy(), expected)
    assert any(not np.array_equal(first[0], other) for other in first[1:])


# --- Identity ------------------------------------------------------------------------------------------


def test_identity_aliases_data_and_gradients():
    backend = numpy64()
    xs = randoms([(2, 3), (4,)])
    inputs = [Blob.from_numpy(backend, x, n) for x, n in zip(xs, ("a", "b"))]
    diffs = [Blob.zeros(backend, (2, 3), "da"), None]
    layer = IdentityLayer(name="id", bottoms=["a", "b"], tops=["p", "q"])
    state = layer.setup(backend, inputs, diffs)
    assert [b.name for b in state.blobs] == ["p", "q"]
    assert state.blobs[0].data is inputs[0].data and state.blobs[1].data is inputs[1].data
    assert state.blobs_diff[0].data is diffs[0].data and state.blobs_diff[1] is None
    state.forward(inputs)
    state.blobs_diff[0].copy_from(np.full((2, 3), 4.0))
    state.backward(inputs, diffs)
    np.testing.assert_array_equal(diffs[0].to_numpy(), 4.0)
    np.testing.assert_array_equal(state.blobs[1].to_numpy(), xs[1])


# --- whole nets ----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _Fixed(Layer):
    """A source serving the same arrays on every forward."""

    arrays: tuple[Any, ...] = field(default=(), compare=False)

    is_source = True

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> Any:
        return _FixedState(self, backend, [Blob.from_numpy(backend, a, t) for a, t in zip(self.arrays, self.tops)])


class _FixedState(LayerState):
    epoch = 0

    def forward(self, inputs: list[Blob]) -> None:
        for blob, array in zip(self.blobs, self.layer.arrays):
            blob.copy_from(array)


def _gauss(layer_cls: Any, **kwargs: Any) -> Any:
    init = GaussianInitializer(0.0, 0.5)
    if layer_cls is ConvolutionLayer:
        return layer_cls(filter_init=init, bias_init=init, **kwargs)
    return layer_cls(weight_init=init, bias_init=init, **kwargs)


def residual_net_layers(x: np.ndarray, label: np.ndarray) -> list[Layer]:
    """data -> two convolutions -> Concat -> Split -> (1x1 conv) + residual ElementWise add with ReLU
    -> centred Crop -> Identity -> InnerProduct -> SoftmaxLoss."""
    return [
        _Fixed(name="data", tops=["x", "label"], arrays=(x, label)),
        _gauss(ConvolutionLayer, name="branch-a", bottoms=["x"], tops=["a"], n_filter=2, kernel=3, pad=1,
               neuron=ReLU()),
        _gauss(ConvolutionLayer, name="branch-b", bottoms=["x"], tops=["b"], n_filter=3, kernel=1),
        ConcatLayer(name="cat", bottoms=["a", "b"], tops=["c"]),
        SplitLayer(name="c-split", bottoms=["c"], tops=["c1", "c2"]),
        _gauss(ConvolutionLayer, name="res", bottoms=["c1"], tops=["r"], n_filter=5, kernel=3, pad=1),
        ElementWiseLayer(name="sum", bottoms=["c2", "r"], tops=["s"], coeffs=(1.0, 0.5), neuron=ReLU()),
        CropLayer(name="crop", bottoms=["s"], tops=["t"], crop_size=(3, 2)),
        IdentityLayer(name="id", bottoms=["t"], tops=["u"]),
        _gauss(InnerProductLayer, name="ip", bottoms=["u"], tops=["logits"], output_dim=3),
        SoftmaxLossLayer(name="loss", bottoms=["logits", "label"]),
    ]


def torch_residual_net(x: np.ndarray, label: np.ndarray, params: dict[str, list[np.ndarray]]
                       ) -> tuple[float, dict[str, list[np.ndarray]]]:
    p = {k: [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in v] for k, v in params.items()}
    tx = torch.tensor(x, dtype=torch.float64)
    a = torch.relu(F.conv2d(tx, *p["branch-a"], padding=1))
    b = F.conv2d(tx, *p["branch-b"])
    c = torch.cat([a, b], dim=1)
    r = F.conv2d(c, *p["res"], padding=1)
    s = torch.relu(c + 0.5 * r)
    h, w = s.shape[2:]
    t = s[:, :, (h - 3) // 2:(h - 3) // 2 + 3, (w - 2) // 2:(w - 2) // 2 + 2]
    logits = F.linear(t.reshape(t.shape[0], -1), *p["ip"])
    loss = F.cross_entropy(logits, torch.tensor(label, dtype=torch.long))
    loss.backward()
    return float(loss.detach()), {k: [q.grad.numpy() for q in v] for k, v in p.items()}


def test_residual_inception_net_gradients_match_torch():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 2, 5, 6))
    label = np.array([2.0, 0.0])
    net = Net("residual", numpy64(seed=3), residual_net_layers(x, label))
    net.check_bp_topology()
    objective = net.forward()
    net.backward()
    params = {name: [p.blob.to_numpy() for p in ps] for name, ps in net.params.items()}
    loss, grads = torch_residual_net(x, label, params)
    assert abs(objective - loss) <= 1e-12 * max(abs(loss), 1.0)
    for name, ps in net.params.items():
        for p, want in zip(ps, grads[name]):
            assert_close(p.gradient.to_numpy(), want, "float64", reduction=60, what=f"{name}.{p.name}")


def tiny_triton_layers(x: np.ndarray, label: np.ndarray) -> list[Layer]:
    """data -> three 1x1 convolutions -> ElementWise max of three -> Concat with a Split top -> random
    mirrored Crop -> Identity -> InnerProduct -> SoftmaxLoss."""
    def conv(name: str, top: str) -> Layer:
        return _gauss(ConvolutionLayer, name=name, bottoms=["x"], tops=[top], n_filter=2, kernel=1)

    return [
        _Fixed(name="data", tops=["x", "label"], arrays=(x, label)),
        conv("conv-a", "a"), conv("conv-b", "b"), conv("conv-d", "d"),
        SplitLayer(name="a-split", bottoms=["a"], tops=["a1", "a2"]),
        ElementWiseLayer(name="max", bottoms=["a1", "b", "d"], tops=["m"], operation="max"),
        ConcatLayer(name="cat", bottoms=["a2", "m"], tops=["c"], dim=1, neuron=Tanh()),
        CropLayer(name="crop", bottoms=["c"], tops=["r"], crop_size=(3, 3), random_crop=True, random_mirror=True),
        IdentityLayer(name="id", bottoms=["r"], tops=["s"]),
        _gauss(InnerProductLayer, name="ip", bottoms=["s"], tops=["logits"], output_dim=3),
        SoftmaxLossLayer(name="loss", bottoms=["logits", "label"]),
    ]


def test_triton_net_matches_numpy_float32():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    label = np.array([1.0, 2.0], np.float32)
    results = []
    for backend in (NumpyBackend("float32", seed=6), TritonBackend(seed=6)):
        net = Net("tiny", backend, tiny_triton_layers(x, label))
        objectives = []
        for _ in range(2):  # two forwards: two random windows, the same on both backends
            objectives.append(net.forward())
        net.backward()
        results.append((objectives, {f"{n}.{p.name}": p.gradient.to_numpy() for n, ps in net.params.items()
                                     for p in ps}, net.output_blobs["m"].to_numpy()))
    (obj_np, grads_np, m_np), (obj_tr, grads_tr, m_tr) = results
    np.testing.assert_allclose(obj_tr, obj_np, rtol=1e-5)
    assert_close(m_tr, m_np, "float32", what="max")
    for name in grads_np:
        assert_close(grads_tr[name], grads_np[name], "float32", reduction=32, what=name)


# --- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make, message", [
    (lambda: ConcatLayer(name="cat", bottoms=[], tops=["y"]), "ConcatLayer 'cat': needs at least one bottom"),
    (lambda: ConcatLayer(name="cat", bottoms=["a"], tops=["y", "z"]), "ConcatLayer 'cat': needs exactly one top"),
    (lambda: ConcatLayer(name="cat", bottoms=["a"], tops=["y"], dim=1.5), "ConcatLayer 'cat': dim must be an int"),
    (lambda: ElementWiseLayer(name="e", bottoms=["a", "b"], tops=["y"], operation="pow"),
     "ElementWiseLayer 'e': operation must be one of"),
    (lambda: ElementWiseLayer(name="e", bottoms=["a", "b", "c"], tops=["y"], operation="divide"),
     "ElementWiseLayer 'e': divide needs exactly two bottoms"),
    (lambda: ElementWiseLayer(name="e", bottoms=["a"], tops=["y"]), "ElementWiseLayer 'e': needs at least two"),
    (lambda: ElementWiseLayer(name="e", bottoms=["a", "b"], tops=["y"], operation="max", coeffs=(1, 2)),
     "ElementWiseLayer 'e': coeffs are for the add operation only"),
    (lambda: ElementWiseLayer(name="e", bottoms=["a", "b"], tops=["y"], coeffs=(1.0,)),
     r"ElementWiseLayer 'e': coeffs must hold one finite number per bottom \(2\)"),
    (lambda: ElementWiseLayer(name="e", bottoms=["a", "b"], tops=["y"], neuron="relu"),
     "ElementWiseLayer 'e': neuron must be"),
    (lambda: CropLayer(name="c", bottoms=["a"], tops=["y"]), "CropLayer 'c': without crop_size needs two bottoms"),
    (lambda: CropLayer(name="c", bottoms=["a", "b"], tops=["y"], random_mirror=True),
     "CropLayer 'c': random_crop and random_mirror need crop_size"),
    (lambda: CropLayer(name="c", bottoms=["a"], tops=["y"], crop_size=(2, 2), offset=(1,)),
     "CropLayer 'c': axis and offset belong to the two-bottom"),
    (lambda: CropLayer(name="c", bottoms=["a", "b"], tops=["y"], offset=(-1,)),
     "CropLayer 'c': offset must hold ints >= 0"),
    (lambda: CropLayer(name="c", bottoms=["a"], tops=["y"], crop_size=(0, 2)), "CropLayer 'c': crop_size must be"),
    (lambda: IdentityLayer(name="i", bottoms=["a", "b"], tops=["y"]), "IdentityLayer 'i': needs one top per bottom"),
])
def test_bad_configurations_name_the_layer(make, message):
    with pytest.raises(LayerError, match=message):
        make()


@pytest.mark.parametrize("layer, shapes, message", [
    (ConcatLayer(name="cat", bottoms=["a", "b"], tops=["y"]), [(2, 3, 4), (2, 3, 5)],
     r"ConcatLayer 'cat': bottoms must have the same shape except along dim 1, got shapes \{'a': \(2, 3, 4\), "
     r"'b': \(2, 3, 5\)\}"),
    (ConcatLayer(name="cat", bottoms=["a", "b"], tops=["y"]), [(2, 3, 4), (2, 3)],
     "ConcatLayer 'cat': needs bottoms with one number of dimensions"),
    (ConcatLayer(name="cat", bottoms=["a"], tops=["y"], dim=3), [(2, 3, 4)],
     "ConcatLayer 'cat': dim 3 is out of range for 3-D bottoms"),
    (ElementWiseLayer(name="e", bottoms=["a", "b"], tops=["y"]), [(2, 3), (3, 2)],
     r"ElementWiseLayer 'e': bottoms must all have one shape, got \{'a': \(2, 3\), 'b': \(3, 2\)\}"),
    (CropLayer(name="c", bottoms=["a"], tops=["y"], crop_size=(4, 4)), [(1, 2, 3, 5)],
     r"CropLayer 'c': crop_size \(4, 4\) is larger than the image \(3, 5\) of bottom 'a'"),
    (CropLayer(name="c", bottoms=["a"], tops=["y"], crop_size=(2, 2)), [(2, 3, 5)],
     "CropLayer 'c': needs 4-D bottoms"),
    (CropLayer(name="c", bottoms=["a", "b"], tops=["y"], offset=(2, 1)), [(1, 2, 5, 5), (1, 1, 4, 4)],
     r"CropLayer 'c': the window of shape \(1, 2, 4, 4\) at offset \(0, 0, 2, 1\) does not fit in the bottom 'a'"),
    (CropLayer(name="c", bottoms=["a", "b"], tops=["y"], axis=1, offset=(1, 1)), [(1, 2, 5, 5), (1, 1, 4, 4)],
     "CropLayer 'c': offset must hold 0, 1 or 3 values"),
    (CropLayer(name="c", bottoms=["a", "b"], tops=["y"]), [(1, 2, 5, 5), (1, 4, 4)],
     "CropLayer 'c': the two bottoms must have one number of dimensions"),
])
def test_bad_inputs_name_the_layer(layer, shapes, message):
    with pytest.raises(LayerError, match=message):
        run_layer(layer, numpy64(), randoms(shapes))


def test_a_bottom_given_twice_with_a_gradient_is_refused():
    backend = numpy64()
    x = Blob.from_numpy(backend, np.ones((2, 3)), "x")
    dx = Blob.zeros(backend, (2, 3), "dx")
    layer = ElementWiseLayer(name="sq", bottoms=["x", "x"], tops=["y"], operation="multiply")
    with pytest.raises(LayerError, match="ElementWiseLayer 'sq': bottom 'x' is given twice and needs a gradient"):
        layer.setup(backend, [x, x], [dx, dx])
    state = layer.setup(backend, [x, x], [None, None])  # forward only: fine
    state.forward([x, x])
    np.testing.assert_array_equal(state.blobs[0].to_numpy(), 1.0)


def test_mismatched_shapes_in_a_net_name_the_layer():
    layers = [_Fixed(name="data", tops=["a", "b"], arrays=(np.zeros((2, 3, 4)), np.zeros((2, 2, 5)))),
              ConcatLayer(name="join", bottoms=["a", "b"], tops=["c"])]
    with pytest.raises(LayerError, match="ConcatLayer 'join': bottoms must have the same shape except along dim 1"):
        Net("bad", numpy64(), layers)
