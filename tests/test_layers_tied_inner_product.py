"""TiedInnerProductLayer: a tied autoencoder (encoder InnerProductLayer + decoder with the transposed weight)
against torch float64 autograd — forward, the gradients of the shared weight from both sides, SGD training —
plus Mocha's behaviour with weight_lr=0, flat weight files, the Triton backend and bad configurations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.layers.base import LayerError
from mocha_triton.layers.data import MemoryDataLayer
from mocha_triton.layers.inner_product import InnerProductLayer, TiedInnerProductLayer
from mocha_triton.layers.pointwise_loss import SquareLossLayer
from mocha_triton.net import Net
from mocha_triton.neurons import Sigmoid
from mocha_triton.parameter import ConstantInitializer, NoRegu
from mocha_triton.policies import LRPolicy
from mocha_triton.snapshots import export_flat_weights, load_flat_weights
from mocha_triton.solvers import SGD, Solver, SolverParameters
from support import assert_close

X = np.random.default_rng(0).uniform(-1, 1, (6, 5))


def autoencoder(backend, weight_lr: float = 1.0, x: np.ndarray = X) -> Net:
    layers = [MemoryDataLayer(name="data", batch_size=len(x), data=[x], tops=["x"]),
              InnerProductLayer(name="enc", param_key="enc", output_dim=3, neuron=Sigmoid(), bottoms=["x"],
                                tops=["h"], weight_regu=NoRegu(), bias_init=ConstantInitializer(0.1)),
              TiedInnerProductLayer(name="dec", tied_param_key="enc", weight_lr=weight_lr, bottoms=["h"],
                                    tops=["y"], bias_init=ConstantInitializer(-0.2)),
              SquareLossLayer(name="loss", bottoms=["y", "x"])]
    return Net("tied-ae", backend, layers)


def torch_autoencoder(net: Net):
    w, b_enc = (torch.tensor(p.blob.to_numpy(), requires_grad=True) for p in net.params["enc"])
    b_dec = torch.tensor(net.params["dec"][1].blob.to_numpy(), requires_grad=True)

    def loss_of(x: np.ndarray) -> torch.Tensor:
        tx = torch.tensor(x)
        y = torch.sigmoid(tx @ w.T + b_enc) @ w + b_dec
        return 0.5 * ((y - tx) ** 2).sum() / len(x)

    return (w, b_enc, b_dec), loss_of


def test_forward_and_the_shared_weight_gradient_match_torch():
    net = autoencoder(NumpyBackend("float64", seed=1))
    assert [p.name for p in net.params["dec"]] == ["weight", "bias"]
    assert net.params["dec"][0].blob is net.params["enc"][0].blob
    objective = net.forward()
    net.backward()
    (w, b_enc, b_dec), loss_of = torch_autoencoder(net)
    loss = loss_of(X)
    loss.backward()
    assert objective == pytest.approx(loss.item(), rel=1e-12)
    # the encoder's and the decoder's gradients of the one weight add up to torch's
    total = net.params["enc"][0].gradient.to_numpy() + net.params["dec"][0].gradient.to_numpy()
    assert_close(total, w.grad.numpy(), "float64", reduction=6)
    assert np.abs(net.params["dec"][0].gradient.to_numpy()).sum() > 0
    assert_close(net.params["enc"][1].gradient.to_numpy(), b_enc.grad.numpy(), "float64", reduction=6)
    assert_close(net.params["dec"][1].gradient.to_numpy(), b_dec.grad.numpy(), "float64", reduction=6)


@pytest.mark.parametrize("weight_lr", [1.0, 0.0])
def test_sgd_training_matches_torch(weight_lr):
    """Plain SGD with one update per sharer equals one update with the summed gradient; with weight_lr=0
    the decoder's gradient is dropped (Mocha's tied layer, whose weight only the encoder trains)."""
    net = autoencoder(NumpyBackend("float64", seed=2), weight_lr=weight_lr)
    (w, b_enc, b_dec), loss_of = torch_autoencoder(net)
    lr = 0.5
    Solver(SGD(), SolverParameters(max_iter=5, regu_coef=0.0, lr_policy=LRPolicy.Fixed(lr))).solve(net)
    for _ in range(5):
        for t in (w, b_enc, b_dec):
            t.grad = None
        if weight_lr == 1.0:
            loss_of(X).backward()
            w_step = w.grad.clone()
        else:  # only the encoder's path to w: the decoder's use of w is a constant
            w_const = w.detach()
            tx = torch.tensor(X)
            y = torch.sigmoid(tx @ w.T + b_enc) @ w_const + b_dec
            (0.5 * ((y - tx) ** 2).sum() / len(X)).backward()
            w_step = w.grad.clone()
        with torch.no_grad():
            w -= lr * w_step
            b_enc -= 2 * lr * b_enc.grad  # bias_lr = 2
            b_dec -= 2 * lr * b_dec.grad
    assert_close(net.params["enc"][0].blob.to_numpy(), w.detach().numpy(), "float64", reduction=30)
    assert_close(net.params["dec"][1].blob.to_numpy(), b_dec.detach().numpy(), "float64", reduction=30)


def test_flat_weight_files_round_trip_and_mocha_files_without_the_tied_weight_load(tmp_path):
    net = autoencoder(NumpyBackend("float64", seed=3))
    path = export_flat_weights(net, tmp_path / "ae.h5")
    fresh = autoencoder(NumpyBackend("float64", seed=4))
    load_flat_weights(fresh, path)
    for name in ("enc", "dec"):
        for a, b in zip(net.params[name], fresh.params[name]):
            np.testing.assert_array_equal(a.blob.to_numpy(), b.blob.to_numpy())
    import h5py

    with h5py.File(path, "a") as f:  # Mocha's tied layer has only a bias
        del f["dec___weight"]
    other = autoencoder(NumpyBackend("float64", seed=5))
    load_flat_weights(other, path)
    np.testing.assert_array_equal(other.params["dec"][0].blob.to_numpy(), net.params["enc"][0].blob.to_numpy())


def test_triton_backend_matches_numpy():
    results = []
    for backend in (NumpyBackend("float32", seed=6), TritonBackend(seed=6)):
        net = autoencoder(backend, x=X.astype(np.float32))
        objective = net.forward()
        net.backward()
        results.append((objective, [p.gradient.to_numpy() for p in net.params["dec"]]))
    assert results[1][0] == pytest.approx(results[0][0], rel=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        assert_close(b, a, "float32", reduction=6)


def test_bad_configurations_name_the_layer():
    backend = NumpyBackend("float64")
    with pytest.raises(LayerError, match="TiedInnerProductLayer 'dec': tied_param_key must name"):
        TiedInnerProductLayer(name="dec", tied_param_key="", bottoms=["h"], tops=["y"])
    with pytest.raises(LayerError, match="weight_lr must be a finite number >= 0"):
        TiedInnerProductLayer(name="dec", tied_param_key="enc", weight_lr=-1.0, bottoms=["h"], tops=["y"])
    layers = [MemoryDataLayer(name="data", batch_size=6, data=[X], tops=["x"]),
              TiedInnerProductLayer(name="dec", tied_param_key="nowhere", bottoms=["x"], tops=["y"])]
    with pytest.raises(LayerError, match="tied_param_key 'nowhere' names no inner product on this backend"):
        Net("bad", backend, layers)
    layers = [MemoryDataLayer(name="data", batch_size=6, data=[X], tops=["x"]),
              InnerProductLayer(name="enc2", output_dim=3, bottoms=["x"], tops=["h"]),
              TiedInnerProductLayer(name="dec2", tied_param_key="enc2", bottoms=["x"], tops=["y"])]
    with pytest.raises(LayerError, match=r"the bottom 'x' has 5 features .* tied weight of 'enc2' is \(3, 5\): "
                                         r"expected 3"):
        Net("bad2", NumpyBackend("float64"), layers)
