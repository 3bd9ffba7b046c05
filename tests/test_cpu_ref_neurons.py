"""cpu_ref.neurons against torch float64; also the case generator shared with test_kernels_neurons."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mocha_triton.contract import NEURONS
from support import CPU, assert_close, call_op

SHAPES = [(1,), (7,), (3, 5), (2, 3, 4, 5), (1, 1, 1, 1), (0, 3)]
SLOPES = {"leaky_relu": (0.01, 0.3, 0.0)}  # the other neurons ignore the slope
# Exact boundary values: both zeros, the relu/leaky_relu kink, tiny and large magnitudes. Sigmoid and
# tanh saturate at +-100 and must stay finite; exp gets the smaller set (exp(100) overflows float32).
BOUNDARY = (0.0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 1.0, -1.0, 20.0, -20.0, 100.0, -100.0)
EXP_BOUNDARY = (0.0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 1.0, -1.0, 20.0, -20.0, 40.0, -80.0)


def neuron_configs() -> list[tuple[str, float]]:
    """(neuron, negative_slope) pairs covering every neuron of the contract."""
    return [(name, slope) for name in NEURONS for slope in SLOPES.get(name, (0.01,))]


def neuron_arrays(shape: tuple[int, ...], dtype: str, neuron: str) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (x, dy) of ``shape``: x is 3 * standard normal with the boundary values written first."""
    rng = np.random.default_rng(zlib.crc32(repr((shape, dtype, neuron)).encode()))
    x = 3.0 * rng.standard_normal(shape)
    dy = rng.standard_normal(shape)
    special = np.array(EXP_BOUNDARY if neuron == "exp" else BOUNDARY)
    k = min(x.size, special.size)
    x.reshape(-1)[:k] = special[:k]
    return x.astype(dtype), dy.astype(dtype)


def torch_neuron(x: torch.Tensor, neuron: str, negative_slope: float) -> torch.Tensor:
    """The oracle: torch's own activation functions."""
    return {
        "identity": lambda t: t * 1,
        "relu": torch.relu,
        "leaky_relu": lambda t: F.leaky_relu(t, negative_slope),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "exp": torch.exp,
    }[neuron](x)


def torch_forward_backward(x: np.ndarray, dy: np.ndarray, neuron: str, negative_slope: float):
    """(y, dx) in float64 from torch autograd."""
    tx = torch.from_numpy(x).double().requires_grad_(True)
    ty = torch_neuron(tx, neuron, negative_slope)
    ty.backward(torch.from_numpy(dy).double())
    return ty.detach().numpy(), tx.grad.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("neuron,slope", neuron_configs())
def test_forward_and_backward_match_torch(neuron, slope, shape, dtype):
    x, dy = neuron_arrays(shape, dtype, neuron)
    y_want, dx_want = torch_forward_backward(x, dy, neuron, slope)
    y = call_op(CPU, "neuron_forward", x=x, y=np.empty_like(x), neuron=neuron, negative_slope=slope)["y"]
    assert_close(y, y_want, dtype, what=f"{neuron} forward")
    # The backward reads the derivative from the stored output (here ours, in the working dtype).
    dx = call_op(CPU, "neuron_backward", y=y, dy=dy, dx=np.empty_like(dy), neuron=neuron,
                 negative_slope=slope)["dx"]
    assert_close(dx, dx_want, dtype, what=f"{neuron} backward")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_boundary_values(dtype):
    """Exact values where the neurons change form or saturate: no NaN/inf, relu'(0) = 0."""
    from mocha_triton.cpu_ref import neurons as nm

    x = np.array([0.0, -0.0, 100.0, -100.0, 1e-30, -1e-30], dtype)
    y = np.empty_like(x)
    nm.neuron_forward(x, y, "sigmoid")
    np.testing.assert_array_equal(y[:3], [0.5, 0.5, 1.0])
    assert 0.0 <= y[3] < 1e-40  # exp(-100), a float32 subnormal
    nm.neuron_forward(x, y, "tanh")
    np.testing.assert_array_equal(y[:4], [0.0, 0.0, 1.0, -1.0])
    nm.neuron_forward(x, y, "relu")
    np.testing.assert_array_equal(y, np.array([0.0, 0.0, 100.0, 0.0, 1e-30, 0.0], dtype))
    nm.neuron_forward(x, y, "leaky_relu", negative_slope=0.5)
    np.testing.assert_array_equal(y, np.array([0.0, 0.0, 100.0, -50.0, 1e-30, -5e-31], dtype))
    dx = np.empty_like(x)
    nm.neuron_backward(np.array([0.0, -0.0, 2.0, -1.0, 1e-30, 0.0], dtype), np.full(6, 3.0, dtype), dx, "relu")
    np.testing.assert_array_equal(dx, [0.0, 0.0, 3.0, 0.0, 3.0, 0.0])  # the gradient at 0 is 0
    nm.neuron_backward(np.array([0.0, -0.0, 2.0, -1.0, 1e-30, 0.0], dtype), np.full(6, 3.0, dtype), dx,
                       "leaky_relu", negative_slope=0.5)
    np.testing.assert_array_equal(dx, [1.5, 1.5, 3.0, 1.5, 3.0, 1.5])  # like torch: slope at x = 0
    for neuron in ("sigmoid", "tanh"):  # saturated outputs give a zero, finite gradient
        nm.neuron_forward(x, y, neuron)
        nm.neuron_backward(y, np.ones_like(x), dx, neuron)
        assert np.all(np.isfinite(dx)) and np.all(np.abs(dx[2:4]) < 1e-40)


@pytest.mark.parametrize("neuron,slope", neuron_configs())
def test_backward_by_finite_differences(neuron, slope):
    """dx_i = dy_i * (f(x_i + h) - f(x_i - h)) / 2h away from the kink of relu/leaky_relu (float64)."""
    from mocha_triton.cpu_ref import neurons as nm

    x, dy = neuron_arrays((4, 9), "float64", neuron)
    x = x[np.abs(x) > 1e-3].reshape(-1)[:20]  # central differences need f smooth on [x - h, x + h]
    x = np.clip(x, -30, 30) if neuron == "exp" else x
    dy = dy.reshape(-1)[: x.size].copy()
    y, dx, up, down = (np.empty_like(x) for _ in range(4))
    h = 1e-6
    nm.neuron_forward(x, y, neuron, slope)
    nm.neuron_backward(y, dy, dx, neuron, slope)
    nm.neuron_forward(x + h, up, neuron, slope)
    nm.neuron_forward(x - h, down, neuron, slope)
    np.testing.assert_allclose(dx, dy * (up - down) / (2 * h), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("neuron,slope", neuron_configs())
def test_in_place(neuron, slope):
    """y may be x (forward) and dx may be dy (backward); both equal the out-of-place results."""
    from mocha_triton.cpu_ref import neurons as nm

    x, dy = neuron_arrays((3, 4, 5), "float32", neuron)
    y = np.empty_like(x)
    nm.neuron_forward(x, y, neuron, slope)
    xy = x.copy()
    nm.neuron_forward(xy, xy, neuron, slope)
    np.testing.assert_array_equal(xy, y)
    dx = np.empty_like(dy)
    nm.neuron_backward(y, dy, dx, neuron, slope)
    nm.neuron_backward(y, dy, dy, neuron, slope)
    np.testing.assert_array_equal(dy, dx)


def test_bad_inputs():
    from mocha_triton.cpu_ref import neurons as nm

    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"neuron_forward: neuron must be one of \('identity', 'relu'.*got 'softplus'"):
        nm.neuron_forward(x, x.copy(), "softplus")
    with pytest.raises(ValueError, match=r"neuron_backward: neuron must be one of .* got None"):
        nm.neuron_backward(x, x.copy(), x.copy(), None)
    with pytest.raises(ValueError, match=r"neuron_forward: arguments must have the same shape, got x=\(2, 3\), "
                                         r"y=\(3, 2\)"):
        nm.neuron_forward(x, np.zeros((3, 2), np.float32), "relu")
    with pytest.raises(ValueError, match=r"neuron_backward: arguments must have the same shape"):
        nm.neuron_backward(x, x.copy(), np.zeros(6, np.float32), "tanh")
    with pytest.raises(TypeError, match=r"neuron_forward: x has dtype int64"):
        nm.neuron_forward(np.zeros((2, 3), np.int64), x, "relu")
    with pytest.raises(TypeError, match=r"neuron_backward: all float arguments must share one dtype"):
        nm.neuron_backward(x, x.astype(np.float64), x.copy(), "sigmoid")
    with pytest.raises(TypeError, match=r"neuron_forward: y must be an array/tensor, got list"):
        nm.neuron_forward(x, [0.0] * 6, "relu")
    with pytest.raises(ValueError, match=r"neuron_forward: negative_slope must be finite"):
        nm.neuron_forward(x, x.copy(), "leaky_relu", float("inf"))
    with pytest.raises(TypeError, match=r"neuron_backward: negative_slope must be a real scalar"):
        nm.neuron_backward(x, x.copy(), x.copy(), "leaky_relu", "steep")
    with pytest.raises(ValueError, match=r"neuron_backward: negative_slope must be >= 0 for leaky_relu"):
        nm.neuron_backward(x, x.copy(), x.copy(), "leaky_relu", -0.5)
