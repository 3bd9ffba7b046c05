"""WassersteinLossLayer.

The loss and the gradients of both bottoms against the independent float64 Sinkhorn of cases_transport
(NumpyBackend float64 and float32); through a net (inner product -> softmax -> Wasserstein loss), the
parameter gradients against torch autograd of the entropy-regularised OT distance, which is what the layer
documents its gradient to be, centred or not; the Triton backend against the NumPy backend, also on
zero-mass and NaN samples (NaN loss on both); bad configurations and inputs name the layer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cases_transport import (
    DEGENERATE_SAMPLES,
    Case,
    assert_same_nonfinite,
    degenerate_inputs,
    make_case,
    oracle_sinkhorn,
)
from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.blob import Blob
from mocha_triton.layers.base import LayerError
from mocha_triton.layers.data import MemoryDataLayer
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.layers.softmax import SoftmaxLayer
from mocha_triton.layers.transport import WassersteinLossLayer
from mocha_triton.net import Net
from support import assert_close


def dual_gradient(scaling: np.ndarray, lambda_: float, weight: float, center: bool) -> np.ndarray:
    logs = np.log(np.maximum(scaling, 1e-20))
    if center:
        logs = logs - logs.mean(axis=1, keepdims=True)
    return weight * logs / (lambda_ * scaling.shape[0])


def run_layer(backend, layer, pred, target, want_target_grad=True):
    blobs = [Blob.from_numpy(backend, pred, "pred"), Blob.from_numpy(backend, target, "target")]
    diffs = [Blob.zeros(backend, pred.shape, "dpred"),
             Blob.zeros(backend, target.shape, "dtarget") if want_target_grad else None]
    state = layer.setup(backend, blobs, diffs)
    state.forward(blobs)
    state.backward(blobs, diffs)
    return state, [None if d is None else d.to_numpy() for d in diffs]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("center", [True, False])
def test_loss_and_gradients_match_the_oracle(center, dtype):
    case = Case(4, 6, 5, 2.5, 40, 3, zero_bins=True)
    pred, target, cost = make_case(case, dtype)
    pred4 = pred.reshape(case.n, 3, 2, 1)  # the bins of a sample are all its elements after the first axis
    layer = WassersteinLossLayer(name="w", M=cost.astype(np.float64).tolist(), lambda_=case.lambda_,
                                 sinkhorn_iter=case.n_iter, weight=0.7, center_gradient=center,
                                 bottoms=["pred", "target"])
    state, (dpred, dtarget) = run_layer(NumpyBackend(dtype), layer, pred4, target)
    want = oracle_sinkhorn(pred, target, cost, case.lambda_, case.n_iter)
    assert_close(np.array([state.loss]), 0.7 * want["loss"], dtype, reduction=case.p * case.q * case.n, what="loss")
    assert_close(state.sample_loss.to_numpy(), want["sample_loss"], dtype, reduction=case.p * case.q)
    assert dpred.shape == pred4.shape
    assert_close(dpred.reshape(case.n, -1), dual_gradient(want["u"], case.lambda_, 0.7, center), dtype,
                 reduction=case.p + case.q, what="prediction gradient")
    assert_close(dtarget, dual_gradient(want["v"], case.lambda_, 0.7, center), dtype, reduction=case.p + case.q,
                 what="target gradient")
    if center:
        assert np.allclose(dpred.reshape(case.n, -1).sum(axis=1), 0.0, atol=1e-5)
    only_pred = Blob.zeros(state.backend, pred4.shape)
    state.backward([], [only_pred, None])  # the target's gradient is optional
    assert_close(only_pred.to_numpy(), dpred, dtype)


def torch_regularised_distance(probs: torch.Tensor, target: torch.Tensor, cost: torch.Tensor, lambda_: float,
                               n_iter: int) -> torch.Tensor:
    """mean_n W_lambda(probs_n, target_n), W_lambda = <T, M> + sum(T log T) / lambda_, unrolled Sinkhorn."""
    gibbs = torch.exp(-lambda_ * cost)
    total = 0.0
    for a, b in zip(probs, target):
        u = torch.full_like(a, 1.0 / a.numel())
        for _ in range(n_iter):
            u = a / (gibbs @ (b / (gibbs.T @ u)))
        plan = u[:, None] * gibbs * (b / (gibbs.T @ u))[None, :]
        total = total + (plan * cost).sum() + (plan * torch.log(plan)).sum() / lambda_
    return total / probs.shape[0]


def test_net_gradients_are_those_of_the_regularised_distance_centred_or_not():
    """inner product -> softmax -> Wasserstein loss: with a converged Sinkhorn the parameter gradients equal
    torch autograd of mean W_lambda(softmax(x W^T + b), target), with or without centring (the softmax
    ignores the constant), and the objective is the transport cost of the oracle's plan."""
    rng = np.random.default_rng(5)
    case = Case(5, 6, 4, 3.0, 200, 8)
    _, target, cost = make_case(case, "float64")
    x = rng.standard_normal((case.n, 3))
    grads = []
    for center in (True, False):
        backend = NumpyBackend("float64", seed=2)
        layers = [MemoryDataLayer(name="data", batch_size=case.n, data=[x, target], tops=["x", "target"]),
                  InnerProductLayer(name="ip", output_dim=case.p, bottoms=["x"], tops=["logits"]),
                  SoftmaxLayer(name="softmax", bottoms=["logits"], tops=["prob"]),
                  WassersteinLossLayer(name="loss", M=cost, lambda_=case.lambda_, sinkhorn_iter=case.n_iter,
                                       center_gradient=center, bottoms=["prob", "target"])]
        net = Net("wasserstein", backend, layers)
        objective = net.forward()
        net.backward()
        w, b = (torch.tensor(p.blob.to_numpy(), requires_grad=True) for p in net.params["ip"])
        probs = torch.softmax(torch.from_numpy(x) @ w.T + b, dim=1)
        want_loss = oracle_sinkhorn(probs.detach().numpy(), target, cost, case.lambda_, case.n_iter)["loss"]
        assert objective == pytest.approx(float(want_loss[0]), rel=1e-12)
        torch_regularised_distance(probs, torch.from_numpy(target), torch.from_numpy(cost), case.lambda_,
                                   case.n_iter).backward()
        for param, tensor in zip(net.params["ip"], (w, b)):
            assert_close(param.gradient.to_numpy(), tensor.grad.numpy(), "float64", reduction=100,
                         what=f"{param.name} (center={center})")
        grads.append([p.gradient.to_numpy() for p in net.params["ip"]])
    for centred, mocha in zip(*grads):
        assert_close(mocha, centred, "float64", reduction=case.p)


def test_triton_matches_numpy_float32():
    case = Case(3, 5, 4, 2.0, 20, 9)
    pred, target, cost = make_case(case, "float32")
    results = []
    for backend in (NumpyBackend("float32"), TritonBackend(precision="ieee")):
        layer = WassersteinLossLayer(name="w", M=cost, lambda_=case.lambda_, sinkhorn_iter=case.n_iter, weight=2.0,
                                     bottoms=["pred", "target"])
        state, diffs = run_layer(backend, layer, pred, target)
        results.append((state.loss, *diffs))
    (loss_np, dp_np, dt_np), (loss_tr, dp_tr, dt_tr) = results
    assert loss_tr == pytest.approx(loss_np, rel=1e-5)
    assert_close(dp_tr, dp_np, "float32", reduction=case.p + case.q, what="prediction gradient")
    assert_close(dt_tr, dt_np, "float32", reduction=case.p + case.q, what="target gradient")


def test_zero_mass_and_nan_samples_make_the_loss_nan_on_both_backends():
    """The layer docstring's promise: a zero-mass or NaN sample gives a NaN loss, never a finite one, on both
    backends, with the same non-finite gradients; the zero side's own gradient stays finite."""
    case = Case(len(DEGENERATE_SAMPLES), 4, 6, 2.0, 10, 14)
    pred, target, cost = degenerate_inputs(case, "float32")
    results = []
    for backend in (NumpyBackend("float32"), TritonBackend(precision="ieee")):
        layer = WassersteinLossLayer(name="w", M=cost, lambda_=case.lambda_, sinkhorn_iter=case.n_iter,
                                     bottoms=["pred", "target"])
        with np.errstate(divide="ignore", invalid="ignore"):
            state, diffs = run_layer(backend, layer, pred, target)
        assert np.isnan(state.loss)
        results.append((state.sample_loss.to_numpy(), *diffs))
    (losses_np, dp_np, dt_np), (losses_tr, dp_tr, dt_tr) = results
    sound = np.array([kind == "sound" for kind in DEGENERATE_SAMPLES])
    assert np.all(np.isnan(losses_np[~sound])) and np.all(np.isfinite(losses_np[sound]))
    pred_zero, target_zero = DEGENERATE_SAMPLES.index("pred all zero"), DEGENERATE_SAMPLES.index("target all zero")
    assert np.all(np.isfinite(dp_np[pred_zero])) and np.all(np.isfinite(dt_np[target_zero]))
    assert_same_nonfinite(losses_tr, losses_np, "float32", reduction=case.p * case.q, what="sample losses")
    assert_same_nonfinite(dp_tr, dp_np, "float32", reduction=case.p + case.q, what="prediction gradient")
    assert_same_nonfinite(dt_tr, dt_np, "float32", reduction=case.p + case.q, what="target gradient")


def test_config_is_checked_and_hashable():
    cost = [[0.0, 1.0], [1.0, 0.0]]
    layer = WassersteinLossLayer(M=np.array(cost), lambda_=1.0, bottoms=["p", "t"])
    assert layer.name == "wasserstein-loss" and layer.sinkhorn_iter == 50 and layer.weight == 1.0
    assert layer.M == ((0.0, 1.0), (1.0, 0.0)) and hash(layer) == hash(WassersteinLossLayer(
        M=cost, lambda_=1.0, bottoms=["p", "t"]))
    bad = [
        (dict(lambda_=-1.0), r"WassersteinLossLayer 'w': lambda_ must be a finite number > 0, got -1.0"),
        (dict(lambda_=0), r"lambda_ must be a finite number > 0, got 0"),
        (dict(lambda_=True), r"lambda_ must be a finite number > 0, got True"),
        (dict(sinkhorn_iter=0), r"sinkhorn_iter must be a positive int, got 0"),
        (dict(sinkhorn_iter=2.5), r"sinkhorn_iter must be a positive int, got 2.5"),
        (dict(M=[1.0, 2.0]), r"M must be a non-empty \(P, Q\) matrix, got shape \(2,\)"),
        (dict(M=[[]]), r"M must be a non-empty \(P, Q\) matrix, got shape \(1, 0\)"),
        (dict(M=[[0.0, float("nan")]]), r"M must be finite"),
        (dict(M="abc"), r"M must be a \(P, Q\) matrix of real numbers"),
        (dict(weight=float("inf")), r"weight must be a finite number"),
        (dict(center_gradient=1), r"center_gradient must be a bool, got 1"),
        (dict(bottoms=["p"]), r"needs bottoms=\[prediction, label\]"),
        (dict(tops=["x"]), r"has no tops"),
    ]
    for changes, message in bad:
        args = dict(name="w", M=cost, lambda_=1.0, bottoms=["p", "t"])
        args.update(changes)
        with pytest.raises(LayerError, match=message):
            WassersteinLossLayer(**args)


def test_bad_inputs_name_the_layer():
    backend = NumpyBackend("float32")
    layer = WassersteinLossLayer(name="w", M=np.ones((3, 4)), lambda_=1.0, bottoms=["p", "t"])
    pred = Blob.from_numpy(backend, np.full((2, 3), 1 / 3), "p")
    target = Blob.from_numpy(backend, np.full((2, 4), 1 / 4), "t")
    with pytest.raises(LayerError, match=r"WassersteinLossLayer 'w': M has shape \(3, 4\), but the prediction 'p' "
                                         r"\(2, 5\) has 5 bins per sample and the target 't' \(2, 4\) has 4: "
                                         r"M must be \(5, 4\)"):
        layer.setup(backend, [Blob.from_numpy(backend, np.full((2, 5), 0.2)), target], [None, None])
    with pytest.raises(LayerError, match=r"'w': the target 't' has shape \(3, 4\), but the prediction 'p' holds 2"):
        layer.setup(backend, [pred, Blob.from_numpy(backend, np.full((3, 4), 0.25))], [None, None])
    with pytest.raises(LayerError, match=r"'w': expected 2 input blobs, got 1"):
        layer.setup(backend, [pred], [None])
    # exp(-lambda_ * M) underflows in float32 beyond lambda_ * M ~ 87.3, not yet in float64.
    far = WassersteinLossLayer(name="far", M=np.full((3, 4), 100.0), lambda_=1.0, bottoms=["p", "t"])
    with pytest.raises(LayerError, match=r"'far': lambda_ \* M spans \[100, 100\], so exp\(-lambda_ \* M\) "
                                         r"underflows or overflows in float32"):
        far.setup(backend, [pred, target], [None, None])
    wide = NumpyBackend("float64")
    far.setup(wide, [Blob.from_numpy(wide, np.full((2, 3), 1 / 3)), Blob.from_numpy(wide, np.full((2, 4), 0.25))],
              [None, None])
    # a target of another dtype reaches the op, whose message is reported with the layer's name
    state = layer.setup(backend, [pred, target], [None, None])
    with pytest.raises(LayerError, match=r"WassersteinLossLayer 'w': sinkhorn_forward: all float arguments must "
                                         r"share one dtype"):
        state.forward([pred, Blob.from_numpy(backend, np.full((2, 4), 0.25), dtype="float64")])
