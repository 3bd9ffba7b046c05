"""SquareLossLayer, BinaryCrossEntropyLossLayer, HingeLossLayer and BinaryAccuracyLayer.

Loss values and the gradients of both bottoms are checked against torch float64 autograd on NumpyBackend
float64 (directly, and through a net whose two computed blobs feed a square loss); the Triton backend
against the NumPy backend in float32; statistics against running averages; bad inputs must name the layer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.blob import Blob
from mocha_triton.layers.base import LayerError
from mocha_triton.layers.data import MemoryDataLayer
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.layers.pointwise_loss import (
    BinaryAccuracyLayer,
    BinaryCrossEntropyLossLayer,
    HingeLossLayer,
    SquareLossLayer,
)
from mocha_triton.net import Net
from support import assert_close


def case(kind: str, shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "square":
        return rng.standard_normal(shape), rng.standard_normal(shape)
    if kind == "bce":
        return rng.uniform(0.05, 0.95, shape), rng.uniform(0.0, 1.0, shape)
    return 2 * rng.standard_normal(shape) + 0.01, rng.choice([-1.0, 1.0], shape)


def torch_loss(kind: str, a: torch.Tensor, b: torch.Tensor, weight: float) -> torch.Tensor:
    n = a.shape[0]
    if kind == "square":
        value = 0.5 * ((a - b) ** 2).sum()
    elif kind == "bce":
        value = -(b * torch.log(a) + (1 - b) * torch.log(1 - a)).sum()
    else:
        value = torch.clamp(1 - b * a, min=0).sum()
    return weight * value / n


LAYERS = {"square": SquareLossLayer, "bce": BinaryCrossEntropyLossLayer, "hinge": HingeLossLayer}


@pytest.mark.parametrize("kind", ["square", "bce", "hinge"])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2), (5, 1)])
def test_loss_and_both_gradients_match_torch(kind, shape):
    backend = NumpyBackend("float64")
    a, b = case(kind, shape, seed=len(shape))
    weight = 0.75
    layer = LAYERS[kind](name="l", weight=weight, bottoms=["a", "b"])
    blobs = [Blob.from_numpy(backend, a, "a"), Blob.from_numpy(backend, b, "b")]
    diffs = [Blob.zeros(backend, shape, "da"), Blob.zeros(backend, shape, "db")]
    state = layer.setup(backend, blobs, diffs)
    state.forward(blobs)
    state.backward(blobs, diffs)
    ta, tb = (torch.tensor(x, requires_grad=True) for x in (a, b))
    loss = torch_loss(kind, ta, tb, weight)
    loss.backward()
    assert state.loss == pytest.approx(loss.item(), rel=1e-12)
    assert_close(diffs[0].to_numpy(), ta.grad.numpy(), "float64", what="prediction gradient")
    assert_close(diffs[1].to_numpy(), tb.grad.numpy(), "float64", what="target gradient")
    state.backward(blobs, [diffs[0], None])  # the target's gradient is optional


def test_square_loss_between_two_computed_blobs_trains_both_sides():
    """An autoencoder-style square loss between two inner products: both receive gradients (Mocha)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 4))
    backend = NumpyBackend("float64", seed=1)
    layers = [MemoryDataLayer(name="data", batch_size=6, data=[x], tops=["x"]),
              InnerProductLayer(name="ip_a", output_dim=3, bottoms=["x"], tops=["a"]),
              InnerProductLayer(name="ip_b", output_dim=3, bottoms=["x"], tops=["b"]),
              SquareLossLayer(name="loss", weight=2.0, bottoms=["a", "b"])]
    net = Net("two-sided", backend, layers)
    objective = net.forward()
    net.backward()
    wa, ba = (torch.tensor(p.blob.to_numpy(), requires_grad=True) for p in net.params["ip_a"])
    wb, bb = (torch.tensor(p.blob.to_numpy(), requires_grad=True) for p in net.params["ip_b"])
    tx = torch.tensor(x)
    loss = torch_loss("square", tx @ wa.T + ba, tx @ wb.T + bb, 2.0)
    loss.backward()
    assert objective == pytest.approx(loss.item(), rel=1e-12)
    for name, tensors in (("ip_a", (wa, ba)), ("ip_b", (wb, bb))):
        for param, tensor in zip(net.params[name], tensors):
            assert_close(param.gradient.to_numpy(), tensor.grad.numpy(), "float64", reduction=6, what=name)


def test_statistics_are_running_averages_and_the_weight_applies():
    backend = NumpyBackend("float64")
    layer = HingeLossLayer(name="h", weight=3.0, bottoms=["p", "y"])
    first, second = case("hinge", (4, 2), seed=1), case("hinge", (4, 2), seed=2)
    blobs = [Blob.from_numpy(backend, first[0], "p"), Blob.from_numpy(backend, first[1], "y")]
    state = layer.setup(backend, blobs, [None, None])
    losses = []
    for pred, label in (first, second):
        blobs[0].copy_from(pred)
        blobs[1].copy_from(label)
        state.forward(blobs)
        losses.append(state.loss)
        assert state.loss == pytest.approx(3.0 * np.maximum(0, 1 - label * pred).sum() / 4, rel=1e-12)
    assert state.statistics() == {"h-hinge-loss": pytest.approx(sum(losses) / 2, rel=1e-12)}
    state.reset_statistics()
    assert state.statistics() == {"h-hinge-loss": 0.0}
    square = SquareLossLayer(name="sq", bottoms=["p", "y"]).setup(backend, blobs, [None, None])
    square.forward(blobs)
    assert square.statistics() == {"sq-square-loss": pytest.approx(square.loss, rel=1e-12)}
    assert not BinaryCrossEntropyLossLayer.has_stats and SquareLossLayer.has_stats and HingeLossLayer.has_stats


def test_binary_accuracy_accumulates():
    backend = NumpyBackend("float32")
    layer = BinaryAccuracyLayer(name="acc", threshold=0.5, report_error=True, bottoms=["p", "y"])
    pred = np.array([[0.9], [0.2], [0.6], [0.4]], np.float32)
    label = np.array([1.0, 0.0, 0.0, 0.0], np.float32)  # (N,) for an (N, 1) prediction
    blobs = [Blob.from_numpy(backend, pred, "p"), Blob.from_numpy(backend, label, "y")]
    state = layer.setup(backend, blobs, [None, None])
    state.forward(blobs)
    assert state.statistics() == {"acc-accuracy": 0.75, "acc-error": 0.25}
    blobs[1].copy_from(np.ones(4, np.float32))
    state.forward(blobs)  # 2 of 4 more
    assert state.statistics()["acc-accuracy"] == pytest.approx(5 / 8)


def test_triton_backend_matches_numpy():
    triton_backend, numpy_backend = TritonBackend(), NumpyBackend("float32")
    for kind in ("square", "bce", "hinge"):
        a, b = (x.astype(np.float32) for x in case(kind, (3, 5), seed=4))
        results = []
        for backend in (numpy_backend, triton_backend):
            layer = LAYERS[kind](name="l", weight=1.5, bottoms=["a", "b"])
            blobs = [Blob.from_numpy(backend, a, "a"), Blob.from_numpy(backend, b, "b")]
            diffs = [Blob.zeros(backend, a.shape, "da"), Blob.zeros(backend, a.shape, "db")]
            state = layer.setup(backend, blobs, diffs)
            state.forward(blobs)
            state.backward(blobs, diffs)
            results.append((state.loss, diffs[0].to_numpy(), diffs[1].to_numpy()))
        (loss_np, da_np, db_np), (loss_tr, da_tr, db_tr) = results
        assert loss_tr == pytest.approx(loss_np, rel=1e-5), kind
        assert_close(da_tr, da_np, "float32", what=kind)
        assert_close(db_tr, db_np, "float32", what=kind)
    layer = BinaryAccuracyLayer(name="acc", bottoms=["p", "y"])
    a, b = case("hinge", (6, 2), seed=5)
    counts = []
    for backend in (numpy_backend, triton_backend):
        blobs = [Blob.from_numpy(backend, a.astype(np.float32), "p"), Blob.from_numpy(backend, b.astype(np.float32),
                                                                                     "y")]
        state = layer.setup(backend, blobs, [None, None])
        state.forward(blobs)
        counts.append(state.statistics())
    assert counts[0] == counts[1]


def test_bad_configurations_and_inputs_name_the_layer():
    backend = NumpyBackend("float64")
    with pytest.raises(LayerError, match="SquareLossLayer 'sq': needs bottoms=\\[prediction, label\\]"):
        SquareLossLayer(name="sq", bottoms=["a"])
    with pytest.raises(LayerError, match="HingeLossLayer 'h': weight must be a finite number"):
        HingeLossLayer(name="h", weight=float("inf"), bottoms=["a", "b"])
    with pytest.raises(LayerError, match="BinaryAccuracyLayer 'acc': threshold must be a finite number"):
        BinaryAccuracyLayer(name="acc", threshold="0.5", bottoms=["a", "b"])
    blobs = [Blob.zeros(backend, (4, 3), "a"), Blob.zeros(backend, (3, 4), "b")]
    with pytest.raises(LayerError, match=r"BinaryCrossEntropyLossLayer 'bce': the target 'b' has shape \(3, 4\), "
                                         r"which does not match the prediction 'a' of shape \(4, 3\)"):
        BinaryCrossEntropyLossLayer(name="bce", bottoms=["a", "b"]).setup(backend, blobs, [None, None])
