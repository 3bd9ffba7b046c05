"""SoftlabelSoftmaxLossLayer and GaussianKLLossLayer.

Loss values and the gradients of both bottoms against torch float64 autograd on NumpyBackend float64 (and
float32 within its tolerance); through nets (a student trained towards a teacher that trains too, a
variational encoder's means and standard deviations); the Triton backend against the NumPy backend in
float32 on tiny cases; the KL statistics as running averages; bad configurations and inputs name the layer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.blob import Blob
from mocha_triton.layers.base import LayerError
from mocha_triton.layers.data import MemoryDataLayer
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.layers.loss import SoftlabelSoftmaxLossLayer
from mocha_triton.layers.pointwise_loss import GaussianKLLossLayer
from mocha_triton.layers.softmax import SoftmaxLayer
from mocha_triton.net import Net
from mocha_triton.neurons import Exponential
from support import assert_close


def soft_case(pred_shape: tuple[int, ...], target_shape: tuple[int, ...] | None = None, seed: int = 0):
    """Logits (normal, sd 2) and a target distribution over axis 1, viewed with ``target_shape``."""
    rng = np.random.default_rng(seed)
    n, c, *spatial = pred_shape
    x = rng.normal(0.0, 2.0, pred_shape)
    q = np.ascontiguousarray(np.moveaxis(rng.dirichlet(np.ones(c), size=(n, *spatial)), -1, 1))
    return x, q.reshape(target_shape or pred_shape)


def torch_softlabel(x: np.ndarray, q: np.ndarray, weight: float):
    """(loss, dx, dq) of weight * cross-entropy with probability targets / (N * prod(S)), float64."""
    tx = torch.tensor(x, requires_grad=True)
    tq = torch.tensor(q.reshape(x.shape), requires_grad=True)
    loss = weight * F.cross_entropy(tx, tq, reduction="sum") / (x.shape[0] * math.prod(x.shape[2:]))
    loss.backward()
    return loss.item(), tx.grad.numpy(), tq.grad.numpy().reshape(q.shape)


def torch_kl(mu: np.ndarray, sigma: np.ndarray, weight: float):
    tm, ts = torch.tensor(mu, requires_grad=True), torch.tensor(sigma.reshape(mu.shape), requires_grad=True)
    loss = weight * 0.5 * (tm ** 2 + ts ** 2 - 2 * torch.log(ts) - 1).sum() / mu.shape[0]
    loss.backward()
    return loss.item(), tm.grad.numpy(), ts.grad.numpy().reshape(sigma.shape)


def run_layer(layer, backend, a: np.ndarray, b: np.ndarray, grads: tuple[bool, bool] = (True, True)):
    """Set up, forward and backward one loss layer on two bottoms; return (state, [da, db] or None)."""
    blobs = [Blob.from_numpy(backend, a, layer.bottoms[0]), Blob.from_numpy(backend, b, layer.bottoms[1])]
    diffs = [Blob.from_numpy(backend, np.full_like(v, np.nan), f"d{name}") if wanted else None
             for v, name, wanted in zip((a, b), layer.bottoms, grads)]
    state = layer.setup(backend, blobs, diffs)
    state.forward(blobs)
    state.backward(blobs, diffs)
    return state, [None if d is None else d.to_numpy() for d in diffs]


# --- SoftlabelSoftmaxLossLayer ---------------------------------------------------------------------------

SOFT_SHAPES = [((5, 4), None), ((3, 4, 2, 3), None), ((3, 4, 1, 1), (3, 4)), ((2, 3, 5), None), ((4, 2), None)]


@pytest.mark.parametrize("pred_shape,target_shape", SOFT_SHAPES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softlabel_loss_and_both_gradients_match_torch(pred_shape, target_shape, dtype):
    x, q = soft_case(pred_shape, target_shape, seed=len(pred_shape))
    weight = 0.75
    layer = SoftlabelSoftmaxLossLayer(name="soft", weight=weight, bottoms=["logits", "target"])
    state, (dx, dq) = run_layer(layer, NumpyBackend(dtype), x.astype(dtype), q.astype(dtype))
    loss, want_dx, want_dq = torch_softlabel(x, q, weight)
    c = pred_shape[1]
    assert isinstance(state.loss, float)
    assert_close([state.loss], [loss], dtype, reduction=x.size, what="loss")
    assert_close(dx, want_dx, dtype, reduction=c, what="logits gradient")
    assert_close(dq, want_dq, dtype, reduction=c, what="target gradient")


def test_softlabel_gradients_are_optional_and_weight_scales():
    x, q = soft_case((4, 3, 2), seed=2)
    backend = NumpyBackend("float64")
    layer = SoftlabelSoftmaxLossLayer(name="soft", bottoms=["x", "q"])
    full, (dx, dq) = run_layer(layer, backend, x, q)
    _, (only_dx, none) = run_layer(layer, backend, x, q, grads=(True, False))
    _, (none2, only_dq) = run_layer(layer, backend, x, q, grads=(False, True))
    assert none is None and none2 is None
    assert np.array_equal(only_dx, dx) and np.array_equal(only_dq, dq)
    _, (dx4, _) = run_layer(SoftlabelSoftmaxLossLayer(name="soft", weight=4.0, bottoms=["x", "q"]), backend, x, q)
    np.testing.assert_allclose(dx4, 4.0 * dx, rtol=1e-14)
    # a one-hot target is a label: the loss is the softmax loss of that label
    labels = np.argmax(q, axis=1)
    onehot = np.moveaxis(np.eye(3)[labels], -1, 1).copy()
    state, _ = run_layer(layer, backend, x, onehot, grads=(False, False))
    want = F.cross_entropy(torch.tensor(x), torch.tensor(labels), reduction="mean").item()
    assert state.loss == pytest.approx(want, rel=1e-12)


def test_softlabel_student_and_teacher_both_train_in_a_net():
    """student logits = ip_s(x), teacher target = softmax(ip_t(x)): the target is computed, so the loss
    back-propagates into the teacher too; every parameter gradient against torch float64 autograd."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 4))
    backend = NumpyBackend("float64", seed=3)
    layers = [MemoryDataLayer(name="data", batch_size=6, data=[x], tops=["x"]),
              InnerProductLayer(name="student", output_dim=5, bottoms=["x"], tops=["logits"]),
              InnerProductLayer(name="teacher", output_dim=5, bottoms=["x"], tops=["teacher-logits"]),
              SoftmaxLayer(name="teacher-prob", bottoms=["teacher-logits"], tops=["q"]),
              SoftlabelSoftmaxLossLayer(name="distill", weight=1.5, bottoms=["logits", "q"])]
    net = Net("distill", backend, layers)
    objective = net.forward()
    net.backward()
    params = {name: [torch.tensor(p.blob.to_numpy(), requires_grad=True) for p in net.params[name]]
              for name in ("student", "teacher")}
    tx = torch.tensor(x)
    (ws, bs), (wt, bt) = params["student"], params["teacher"]
    loss = 1.5 * F.cross_entropy(tx @ ws.T + bs, torch.softmax(tx @ wt.T + bt, dim=1), reduction="sum") / 6
    loss.backward()
    assert objective == pytest.approx(loss.item(), rel=1e-12)
    for name, tensors in params.items():
        for param, tensor in zip(net.params[name], tensors):
            assert_close(param.gradient.to_numpy(), tensor.grad.numpy(), "float64", reduction=6, what=name)


# --- GaussianKLLossLayer ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,sigma_shape", [((4, 3), None), ((2, 3, 2, 2), None), ((5, 1), (5,))])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_kl_loss_and_both_gradients_match_torch(shape, sigma_shape, dtype):
    rng = np.random.default_rng(len(shape))
    mu, sigma = rng.standard_normal(shape), rng.uniform(0.3, 2.0, sigma_shape or shape)
    weight = 0.5
    layer = GaussianKLLossLayer(name="kl", weight=weight)
    assert layer.bottoms == ("mu", "sigma")  # Mocha's default bottoms
    state, (dmu, dsigma) = run_layer(layer, NumpyBackend(dtype), mu.astype(dtype), sigma.astype(dtype))
    loss, want_mu, want_sigma = torch_kl(mu, sigma, weight)
    assert_close([state.loss], [loss], dtype, reduction=mu.size, what="loss")
    assert_close(dmu, want_mu, dtype, what="mu gradient")
    assert_close(dsigma, want_sigma, dtype, what="sigma gradient")


def test_kl_statistics_are_running_averages():
    backend = NumpyBackend("float64")
    layer = GaussianKLLossLayer(name="enc", weight=2.0)
    rng = np.random.default_rng(1)
    batches = [(rng.standard_normal((4, 3)), rng.uniform(0.5, 1.5, (4, 3))) for _ in range(2)]
    blobs = [Blob.from_numpy(backend, batches[0][0], "mu"), Blob.from_numpy(backend, batches[0][1], "sigma")]
    state = layer.setup(backend, blobs, [None, None])
    losses = []
    for mu, sigma in batches:
        blobs[0].copy_from(mu)
        blobs[1].copy_from(sigma)
        state.forward(blobs)
        losses.append(state.loss)
        assert state.loss == pytest.approx(torch_kl(mu, sigma, 2.0)[0], rel=1e-12)
    assert GaussianKLLossLayer.has_stats
    assert state.statistics() == {"enc-encoder-loss": pytest.approx(sum(losses) / 2, rel=1e-12)}
    state.reset_statistics()
    assert state.statistics() == {"enc-encoder-loss": 0.0}


def test_kl_trains_a_variational_encoder_in_a_net():
    """mu = ip_mu(x), sigma = exp(ip_sigma(x)) (an exponential neuron keeps it positive): every parameter
    gradient against torch float64 autograd."""
    rng = np.random.default_rng(7)
    x = 0.5 * rng.standard_normal((5, 3))
    backend = NumpyBackend("float64", seed=2)
    layers = [MemoryDataLayer(name="data", batch_size=5, data=[x], tops=["x"]),
              InnerProductLayer(name="enc-mu", output_dim=2, bottoms=["x"], tops=["mu"]),
              InnerProductLayer(name="enc-sigma", output_dim=2, neuron=Exponential(), bottoms=["x"], tops=["sigma"]),
              GaussianKLLossLayer(name="kl", weight=0.8)]
    net = Net("vae-encoder", backend, layers)
    objective = net.forward()
    net.backward()
    params = {name: [torch.tensor(p.blob.to_numpy(), requires_grad=True) for p in net.params[name]]
              for name in ("enc-mu", "enc-sigma")}
    tx = torch.tensor(x)
    (wm, bm), (ws, bs) = params["enc-mu"], params["enc-sigma"]
    mu, sigma = tx @ wm.T + bm, torch.exp(tx @ ws.T + bs)
    loss = 0.8 * 0.5 * (mu ** 2 + sigma ** 2 - 2 * torch.log(sigma) - 1).sum() / 5
    loss.backward()
    assert objective == pytest.approx(loss.item(), rel=1e-12)
    for name, tensors in params.items():
        for param, tensor in zip(net.params[name], tensors):
            assert_close(param.gradient.to_numpy(), tensor.grad.numpy(), "float64", reduction=5, what=name)


# --- both backends, bad inputs ------------------------------------------------------------------------------


def test_triton_backend_matches_numpy():
    triton_backend, numpy_backend = TritonBackend(), NumpyBackend("float32")
    x, q = soft_case((3, 6, 2, 2), seed=4)
    rng = np.random.default_rng(4)
    mu, sigma = rng.standard_normal((3, 5)), rng.uniform(0.3, 2.0, (3, 5))
    for layer, a, b in ((SoftlabelSoftmaxLossLayer(name="soft", weight=1.5, bottoms=["x", "q"]), x, q),
                        (GaussianKLLossLayer(name="kl", weight=1.5), mu, sigma)):
        results = [run_layer(layer, backend, a.astype(np.float32), b.astype(np.float32))
                   for backend in (numpy_backend, triton_backend)]
        (state_np, grads_np), (state_tr, grads_tr) = results
        assert_close([state_tr.loss], [state_np.loss], "float32", reduction=a.size, what=layer.name)
        for got, want in zip(grads_tr, grads_np):
            assert_close(got, want, "float32", reduction=a.shape[1], what=layer.name)
        if layer.has_stats:
            assert state_tr.statistics() == pytest.approx(state_np.statistics(), rel=1e-5)


def test_bad_configurations_and_inputs_name_the_layer():
    backend = NumpyBackend("float64")
    with pytest.raises(LayerError, match=r"SoftlabelSoftmaxLossLayer 'soft': needs bottoms=\[logits, target\]"):
        SoftlabelSoftmaxLossLayer(name="soft", bottoms=["x"])
    with pytest.raises(LayerError, match=r"SoftlabelSoftmaxLossLayer 'soft': weight must be a finite number"):
        SoftlabelSoftmaxLossLayer(name="soft", weight=float("nan"), bottoms=["x", "q"])
    with pytest.raises(LayerError, match=r"SoftlabelSoftmaxLossLayer 'soft': has no tops"):
        SoftlabelSoftmaxLossLayer(name="soft", bottoms=["x", "q"], tops=["y"])
    with pytest.raises(LayerError, match=r"GaussianKLLossLayer 'kl': needs bottoms=\[mu, sigma\], got \('mu',\)"):
        GaussianKLLossLayer(name="kl", bottoms=["mu"])
    with pytest.raises(LayerError, match=r"GaussianKLLossLayer 'kl': weight must be a finite number"):
        GaussianKLLossLayer(name="kl", weight="1")

    soft = SoftlabelSoftmaxLossLayer(name="soft", bottoms=["x", "q"])
    blobs = [Blob.zeros(backend, (4, 3), "x"), Blob.zeros(backend, (4, 2), "q")]
    with pytest.raises(LayerError, match=r"SoftlabelSoftmaxLossLayer 'soft': the target 'q' has shape \(4, 2\), "
                                         r"which does not match the prediction 'x' of shape \(4, 3\)"):
        soft.setup(backend, blobs, [None, None])
    with pytest.raises(LayerError, match=r"SoftlabelSoftmaxLossLayer 'soft': the prediction 'x' must be \(N, C, "
                                         r"\.\.\.\) with ndim >= 2"):
        soft.setup(backend, [Blob.zeros(backend, (4,), "x"), Blob.zeros(backend, (4,), "q")], [None, None])
    blobs = [Blob.zeros(backend, (4, 3), "mu"), Blob.zeros(backend, (3, 4), "sigma")]
    with pytest.raises(LayerError, match=r"GaussianKLLossLayer 'kl': the target 'sigma' has shape \(3, 4\)"):
        GaussianKLLossLayer(name="kl").setup(backend, blobs, [None, None])
    # an op's own error surfaces with the layer's name: a float32 target next to float64 logits
    blobs = [Blob.zeros(backend, (4, 3), "x"), Blob.from_numpy(backend, np.zeros((4, 3), np.float32), "q",
                                                               dtype="float32")]
    state = soft.setup(backend, blobs, [None, None])
    with pytest.raises(LayerError, match=r"SoftlabelSoftmaxLossLayer 'soft': softlabel_softmax_loss_forward: all "
                                         r"float arguments must share one dtype"):
        state.forward(blobs)
