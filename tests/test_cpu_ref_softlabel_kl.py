"""cpu_ref.loss.softlabel_softmax_loss_* and cpu_ref.pointwise_loss.gaussian_kl_loss_* against torch float64:
cross-entropy with probability targets (F.cross_entropy) and the Gaussian KL divergence
(torch.distributions), values and both gradients by autograd; Mocha's 1e-20 clamp; finite differences;
bad inputs.

The case generators (:func:`softlabel_cases`, :func:`softlabel_arrays`, :func:`kl_arrays`) are shared with
tests/test_kernels_softlabel_kl.py.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mocha_triton.contract import LOG_CLAMP
from mocha_triton.cpu_ref import loss as ref_loss
from mocha_triton.cpu_ref import pointwise_loss as ref_pointwise
from support import CPU, assert_close, call_op

DTYPES = ["float32", "float64"]


# --- case generators ----------------------------------------------------------------------------------


def softlabel_cases(kind: str) -> list[tuple[int, ...]]:
    """Logit shapes (N, C, *S): "reference" for cpu_ref against torch; "tiny" for Triton's interpreter,
    with C above one block of 128 classes (several steps of the walks over C) and more positions than
    one program holds."""
    if kind == "reference":
        return [(5, 7), (1, 1), (1, 3), (2, 5, 3, 4), (3, 4, 7), (1, 6, 1, 5), (3, 37, 2, 3)]
    if kind == "tiny":
        return [(5, 7), (1, 1), (3, 150), (2, 300, 3), (2, 5, 3, 4), (3, 5, 20, 20)]
    raise ValueError(kind)


def softlabel_arrays(shape: tuple[int, ...], dtype: str, onehot_rows: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Seeded logits (normal, sd 2) and targets: a Dirichlet(1) distribution over C at every position,
    the first position one-hot (exact zeros) when ``onehot_rows``."""
    rng = np.random.default_rng(zlib.crc32(f"{shape}-{dtype}".encode()))
    n, c, *spatial = shape
    x = rng.normal(0.0, 2.0, shape)
    q = np.moveaxis(rng.dirichlet(np.ones(c), size=(n, *spatial)), -1, 1)
    if onehot_rows:
        first = (0, slice(None), *([0] * len(spatial)))
        q[first] = 0.0
        q[first][c // 2] = 1.0
    return x.astype(dtype), np.ascontiguousarray(q).astype(dtype)


def positions(shape: tuple[int, ...]) -> int:
    return shape[0] * math.prod(shape[2:])


def kl_arrays(shape: tuple[int, ...], dtype: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded means (normal) and standard deviations (uniform in [0.2, 3])."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(dtype), rng.uniform(0.2, 3.0, shape).astype(dtype)


def _lse_out(shape: tuple[int, ...], dtype: str) -> dict[str, np.ndarray]:
    return {"lse": np.empty((shape[0], *shape[2:]), dtype), "loss": np.empty(1, dtype)}


# --- soft-label softmax loss ---------------------------------------------------------------------------


def torch_softlabel(x: np.ndarray, q: np.ndarray, scale: float = 1.0):
    """(loss, dx, dq) of scale * F.cross_entropy(x, q, reduction="sum") / (N * prod(S)) in float64."""
    tx = torch.from_numpy(x).double().requires_grad_()
    tq = torch.from_numpy(q).double().requires_grad_()
    loss = scale * F.cross_entropy(tx, tq, reduction="sum") / positions(x.shape)
    loss.backward()
    return loss.item(), tx.grad.numpy(), tq.grad.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", softlabel_cases("reference"), ids=str)
def test_softlabel_forward_matches_cross_entropy_with_probability_targets(shape, dtype):
    x, q = softlabel_arrays(shape, dtype)
    got = call_op(CPU, "softlabel_softmax_loss_forward", x=x, target=q, **_lse_out(shape, dtype))
    c = shape[1]
    assert_close(got["lse"], torch.logsumexp(torch.from_numpy(x).double(), dim=1).numpy(), dtype, reduction=c,
                 what="lse")
    loss, _, _ = torch_softlabel(x, q)
    assert_close(got["loss"], [loss], dtype, reduction=positions(shape) * c, what="loss")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", softlabel_cases("reference"), ids=str)
def test_softlabel_gradients_match_autograd(shape, dtype):
    x, q = softlabel_arrays(shape, dtype)
    lse = call_op(CPU, "softlabel_softmax_loss_forward", x=x, target=q, **_lse_out(shape, dtype))["lse"]
    scale = 0.75
    got = call_op(CPU, "softlabel_softmax_loss_backward", x=x, target=q, lse=lse, dx=np.empty_like(x),
                  dtarget=np.empty_like(x), scale=scale)
    _, dx, dq = torch_softlabel(x, q, scale)
    assert_close(got["dx"], dx, dtype, reduction=shape[1], what="dx")
    assert_close(got["dtarget"], dq, dtype, reduction=shape[1], what="dtarget")


def test_softlabel_on_one_hot_targets_equals_softmax_loss():
    """A one-hot target is a class label: the soft-label loss and gradient are the softmax loss's."""
    shape = (3, 6, 2, 2)
    x, _ = softlabel_arrays(shape, "float64")
    labels = np.random.default_rng(3).integers(0, 6, (3, 2, 2))
    q = np.moveaxis(np.eye(6)[labels], -1, 1).copy()
    soft = call_op(CPU, "softlabel_softmax_loss_forward", x=x, target=q, **_lse_out(shape, "float64"))
    hard = call_op(CPU, "softmax_loss_forward", x=x, label=labels, class_weights=None, **_lse_out(shape, "float64"))
    assert_close(soft["loss"], hard["loss"], "float64", reduction=24 * 6)
    assert np.array_equal(soft["lse"], hard["lse"])
    dsoft = call_op(CPU, "softlabel_softmax_loss_backward", x=x, target=q, lse=soft["lse"], dx=np.empty_like(x),
                    dtarget=None, scale=2.0)["dx"]
    dhard = call_op(CPU, "softmax_loss_backward", x=x, label=labels, class_weights=None, lse=hard["lse"],
                    dx=np.empty_like(x), scale=2.0)["dx"]
    assert_close(dsoft, dhard, "float64", reduction=6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softlabel_clamps_log_probability_at_1e_20(dtype):
    """A logit gap > 50 makes p < 1e-20: that class contributes -q * log(1e-20) to the loss, and its
    target gradient is the clamped -log(1e-20) / (N * prod(S)); the logits' gradient ignores the clamp."""
    log_clamp = float(np.log(np.dtype(dtype).type(LOG_CLAMP)))
    x = np.array([[0.0, 0.0, -60.0, 0.0], [0.3, -1.2, 0.8, 2.0]], dtype)
    q = np.array([[0.25, 0.25, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4]], dtype)
    got = call_op(CPU, "softlabel_softmax_loss_forward", x=x, target=q, lse=np.empty(2, dtype),
                  loss=np.empty(1, dtype))
    log_p = torch.log_softmax(torch.from_numpy(x).double(), dim=1)
    clamped = torch.clamp(log_p, min=log_clamp)
    want = float(-(torch.from_numpy(q).double() * clamped).sum()) / 2
    assert_close(got["loss"], [want], dtype, reduction=8)
    assert want - float(-(torch.from_numpy(q).double() * log_p).sum()) / 2 < -1.0  # the clamp is active
    grads = call_op(CPU, "softlabel_softmax_loss_backward", x=x, target=q, lse=got["lse"], dx=np.empty_like(x),
                    dtarget=np.empty_like(x))
    assert_close(grads["dtarget"], -clamped.numpy() / 2, dtype, what="dtarget")
    p = torch.softmax(torch.from_numpy(x).double(), dim=1).numpy()
    assert_close(grads["dx"], (p - q) / 2, dtype, what="dx")


def test_softlabel_gradients_match_finite_differences():
    shape = (2, 4, 3)
    x, q = softlabel_arrays(shape, "float64")
    scale = 0.7

    def loss_at(x_, q_):
        return call_op(CPU, "softlabel_softmax_loss_forward", x=x_, target=q_,
                       **_lse_out(shape, "float64"))["loss"][0]

    lse = call_op(CPU, "softlabel_softmax_loss_forward", x=x, target=q, **_lse_out(shape, "float64"))["lse"]
    got = call_op(CPU, "softlabel_softmax_loss_backward", x=x, target=q, lse=lse, dx=np.empty_like(x),
                  dtarget=np.empty_like(x), scale=scale)
    h = 1e-6
    for name, which in (("dx", 0), ("dtarget", 1)):
        fd = np.empty_like(x)
        for i in np.ndindex(shape):
            plus, minus = [x.copy(), q.copy()], [x.copy(), q.copy()]
            plus[which][i] += h
            minus[which][i] -= h
            fd[i] = scale * (loss_at(*plus) - loss_at(*minus)) / (2 * h)
        np.testing.assert_allclose(got[name], fd, rtol=0, atol=1e-8, err_msg=name)


def test_softlabel_optional_gradients():
    shape = (2, 5, 3)
    x, q = softlabel_arrays(shape, "float64")
    lse = call_op(CPU, "softlabel_softmax_loss_forward", x=x, target=q, **_lse_out(shape, "float64"))["lse"]
    both = call_op(CPU, "softlabel_softmax_loss_backward", x=x, target=q, lse=lse, dx=np.empty_like(x),
                   dtarget=np.empty_like(x))
    only_dx = call_op(CPU, "softlabel_softmax_loss_backward", x=x, target=q, lse=lse, dx=np.empty_like(x),
                      dtarget=None)
    only_dt = call_op(CPU, "softlabel_softmax_loss_backward", x=x, target=q, lse=lse, dx=None,
                      dtarget=np.empty_like(x))
    assert np.array_equal(only_dx["dx"], both["dx"]) and np.array_equal(only_dt["dtarget"], both["dtarget"])
    ref_loss.softlabel_softmax_loss_backward(x, q, lse, None, None)  # nothing wanted: a no-op


def test_softlabel_bad_inputs():
    x, q = np.zeros((2, 5)), np.full((2, 5), 0.2)
    lse, loss = np.zeros(2), np.empty(1)
    op = "softlabel_softmax_loss_forward"
    with pytest.raises(ValueError, match=rf"{op}: target has shape \(2, 4\), expected \(2, 5\) \(the shape of x\)"):
        ref_loss.softlabel_softmax_loss_forward(x, q[:, :4], lse, loss)
    with pytest.raises(TypeError, match=rf"{op}: all float arguments must share one dtype, got x=float64, "
                                        r"target=float32"):
        ref_loss.softlabel_softmax_loss_forward(x, q.astype(np.float32), lse, loss)
    with pytest.raises(TypeError, match=rf"{op}: target has dtype int64"):
        ref_loss.softlabel_softmax_loss_forward(x, np.zeros((2, 5), np.int64), lse, loss)
    with pytest.raises(ValueError, match=rf"{op}: lse has shape \(2, 1\), expected \(2,\)"):
        ref_loss.softlabel_softmax_loss_forward(x, q, np.zeros((2, 1)), loss)
    with pytest.raises(ValueError, match=rf"{op}: loss has shape \(2,\), expected \(1,\)"):
        ref_loss.softlabel_softmax_loss_forward(x, q, lse, np.empty(2))
    with pytest.raises(ValueError, match=rf"{op}: x must have at least 2 dimensions"):
        ref_loss.softlabel_softmax_loss_forward(np.zeros(5), np.zeros(5), lse, loss)
    with pytest.raises(ValueError, match=rf"{op}: x must not be empty"):
        ref_loss.softlabel_softmax_loss_forward(np.zeros((0, 5)), np.zeros((0, 5)), np.zeros(0), loss)
    op = "softlabel_softmax_loss_backward"
    with pytest.raises(ValueError, match=rf"{op}: dtarget has shape \(2, 4\), expected \(2, 5\)"):
        ref_loss.softlabel_softmax_loss_backward(x, q, lse, None, np.empty((2, 4)))
    with pytest.raises(TypeError, match=rf"{op}: dx has dtype int64"):
        ref_loss.softlabel_softmax_loss_backward(x, q, lse, np.empty((2, 5), np.int64), None)
    with pytest.raises(ValueError, match=rf"{op}: scale must be finite"):
        ref_loss.softlabel_softmax_loss_backward(x, q, lse, np.empty_like(x), None, float("inf"))


# --- Gaussian KL loss ------------------------------------------------------------------------------------

KL_SHAPES = [(1,), (5,), (3, 4), (2, 3, 4, 5), (7, 1), (4, 1100)]


def torch_kl(mu: np.ndarray, sigma: np.ndarray, scale: float = 1.0):
    """(loss, dmu, dsigma) of scale * KL(N(mu, sigma^2) || N(0, 1)) summed / N, by torch.distributions."""
    tm = torch.from_numpy(mu).double().requires_grad_()
    ts = torch.from_numpy(sigma).double().requires_grad_()
    kl = torch.distributions.kl_divergence(torch.distributions.Normal(tm, ts),
                                           torch.distributions.Normal(torch.zeros_like(tm), torch.ones_like(ts)))
    loss = scale * kl.sum() / mu.shape[0]
    loss.backward()
    return loss.item(), tm.grad.numpy(), ts.grad.numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", KL_SHAPES, ids=str)
def test_gaussian_kl_matches_torch_distributions(shape, dtype):
    mu, sigma = kl_arrays(shape, dtype, seed=sum(shape))
    got = call_op(CPU, "gaussian_kl_loss_forward", mu=mu, sigma=sigma, loss=np.empty(1, dtype))["loss"]
    scale = 1.25
    loss, dmu, dsigma = torch_kl(mu, sigma, scale)
    assert_close(got, [loss / scale], dtype, reduction=mu.size)
    # the closed form of the contract, independently of torch.distributions
    closed = (mu.astype(np.float64) ** 2 + sigma.astype(np.float64) ** 2 - 2 * np.log(sigma.astype(np.float64))
              - 1).sum() / (2 * shape[0])
    assert_close(got, [closed], dtype, reduction=mu.size)
    grads = call_op(CPU, "gaussian_kl_loss_backward", mu=mu, sigma=sigma, dmu=np.empty_like(mu),
                    dsigma=np.empty_like(mu), scale=scale)
    assert_close(grads["dmu"], dmu, dtype, what="dmu")
    assert_close(grads["dsigma"], dsigma, dtype, what="dsigma")


def test_gaussian_kl_is_zero_at_the_standard_normal_and_its_gradients_vanish():
    mu, sigma = np.zeros((3, 4)), np.ones((3, 4))
    assert call_op(CPU, "gaussian_kl_loss_forward", mu=mu, sigma=sigma, loss=np.empty(1))["loss"].tolist() == [0.0]
    grads = call_op(CPU, "gaussian_kl_loss_backward", mu=mu, sigma=sigma, dmu=np.empty_like(mu),
                    dsigma=np.empty_like(mu))
    assert not grads["dmu"].any() and not grads["dsigma"].any()


def test_gaussian_kl_gradients_match_finite_differences():
    mu, sigma = kl_arrays((3, 4), "float64", seed=7)

    def loss_of(m, s):
        return call_op(CPU, "gaussian_kl_loss_forward", mu=m, sigma=s, loss=np.empty(1))["loss"][0]

    got = call_op(CPU, "gaussian_kl_loss_backward", mu=mu, sigma=sigma, dmu=np.empty_like(mu),
                  dsigma=np.empty_like(mu))
    h = 1e-6
    for name, which in (("dmu", 0), ("dsigma", 1)):
        fd = np.empty_like(mu)
        for i in np.ndindex(mu.shape):
            plus, minus = [mu.copy(), sigma.copy()], [mu.copy(), sigma.copy()]
            plus[which][i] += h
            minus[which][i] -= h
            fd[i] = (loss_of(*plus) - loss_of(*minus)) / (2 * h)
        np.testing.assert_allclose(got[name], fd, rtol=1e-6, atol=1e-8, err_msg=name)


def test_gaussian_kl_optional_gradients_and_non_positive_sigma():
    mu, sigma = kl_arrays((3, 2), "float64", seed=1)
    both = np.empty_like(mu), np.empty_like(mu)
    ref_pointwise.gaussian_kl_loss_backward(mu, sigma, *both)
    only_dmu, only_dsigma = np.empty_like(mu), np.empty_like(mu)
    ref_pointwise.gaussian_kl_loss_backward(mu, sigma, only_dmu, None)
    ref_pointwise.gaussian_kl_loss_backward(mu, sigma, None, only_dsigma)
    np.testing.assert_array_equal(only_dmu, both[0])
    np.testing.assert_array_equal(only_dsigma, both[1])
    np.testing.assert_array_equal(only_dmu, mu * (1 / 3))  # the coefficient scale / N, rounded once
    ref_pointwise.gaussian_kl_loss_backward(mu, sigma, None, None)  # nothing wanted: a no-op
    # sigma <= 0 is outside the domain: NaN or inf, like NumPy, without a warning or an error
    loss = np.empty(1)
    with np.errstate(all="raise"):
        ref_pointwise.gaussian_kl_loss_forward(mu, np.where(sigma > 1, 0.0, sigma), loss)
    assert not np.isfinite(loss[0])


def test_gaussian_kl_bad_inputs():
    mu, sigma, loss = np.zeros((2, 3)), np.ones((2, 3)), np.empty(1)
    with pytest.raises(ValueError, match=r"gaussian_kl_loss_forward: arguments must have the same shape, "
                                         r"got mu=\(2, 3\), sigma=\(3, 2\)"):
        ref_pointwise.gaussian_kl_loss_forward(mu, np.ones((3, 2)), loss)
    with pytest.raises(TypeError, match=r"gaussian_kl_loss_forward: all float arguments must share one dtype"):
        ref_pointwise.gaussian_kl_loss_forward(mu, sigma.astype(np.float32), loss)
    with pytest.raises(TypeError, match=r"gaussian_kl_loss_forward: loss has dtype float32; expected float64"):
        ref_pointwise.gaussian_kl_loss_forward(mu, sigma, np.empty(1, np.float32))
    with pytest.raises(ValueError, match=r"gaussian_kl_loss_forward: mu must hold at least one sample"):
        ref_pointwise.gaussian_kl_loss_forward(np.zeros((0, 3)), np.zeros((0, 3)), loss)
    with pytest.raises(ValueError, match=r"gaussian_kl_loss_backward: arguments must have the same shape, "
                                         r"got mu=\(2, 3\), dsigma=\(2, 2\)"):
        ref_pointwise.gaussian_kl_loss_backward(mu, sigma, None, np.empty((2, 2)))
    with pytest.raises(ValueError, match=r"gaussian_kl_loss_backward: scale must be finite"):
        ref_pointwise.gaussian_kl_loss_backward(mu, sigma, np.empty_like(mu), None, float("nan"))
