"""cpu_ref.softmax against torch float64; also the case generators shared with test_kernels_softmax."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from support import CPU, assert_close, call_op

# (N, C), (N, C, S) and (N, C, H, W) with odd sizes, batch 1, C = 1, unit and empty spatial sizes.
SHAPES = [
    (1, 1), (3, 7), (5, 1), (1, 13),
    (2, 4, 7), (1, 3, 1), (3, 1, 5),
    (2, 3, 4, 5), (1, 5, 3, 3), (3, 1, 4, 4), (2, 6, 1, 1), (2, 3, 2, 2, 3),
    (0, 3), (2, 3, 0),
]
# How the logits are drawn: moderate; moderate and ascending along C (the running max of a chunked
# reduction grows at every chunk); spread over [-1e4, 1e4] (one-hot-like output, exp underflows); all
# near +1e4 or -1e4 (exp of the raw logits would overflow or underflow: the max must be subtracted).
LOGITS = ("normal", "ascending", "spread_1e4", "near_plus_1e4", "near_minus_1e4")


def random_shapes(count: int, seed: int) -> list[tuple[int, ...]]:
    """``count`` seeded shapes of 2 to 4 dimensions with small odd-ish sizes."""
    rng = np.random.default_rng(seed)
    shapes = []
    for _ in range(count):
        ndim = int(rng.integers(2, 5))
        shapes.append((int(rng.integers(1, 5)), int(rng.integers(1, 12)),
                       *(int(rng.integers(1, 6)) for _ in range(ndim - 2))))
    return shapes


def softmax_arrays(shape: tuple[int, ...], dtype: str, logits: str = "normal") -> tuple[np.ndarray, np.ndarray]:
    """Seeded logits x (drawn as ``logits`` says) and an upstream gradient dy of ``shape``."""
    rng = np.random.default_rng(zlib.crc32(repr((shape, dtype, logits)).encode()))
    x = {
        "normal": lambda: 3.0 * rng.standard_normal(shape),
        "ascending": lambda: np.sort(3.0 * rng.standard_normal(shape), axis=1),
        "spread_1e4": lambda: rng.uniform(-1e4, 1e4, shape),
        "near_plus_1e4": lambda: 1e4 + 3.0 * rng.standard_normal(shape),
        "near_minus_1e4": lambda: -1e4 + 3.0 * rng.standard_normal(shape),
    }[logits]()
    return x.astype(dtype), rng.standard_normal(shape).astype(dtype)


def torch_softmax_and_grad(x: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(softmax(x, dim=1), its gradient given dy) in float64 from torch autograd."""
    tx = torch.from_numpy(x).double().requires_grad_(True)
    ty = torch.softmax(tx, dim=1)
    ty.backward(torch.from_numpy(dy).double())
    return ty.detach().numpy(), tx.grad.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("logits", LOGITS)
@pytest.mark.parametrize("shape", SHAPES + random_shapes(12, seed=5))
def test_forward_and_backward_match_torch(shape, logits, dtype):
    x, dy = softmax_arrays(shape, dtype, logits)
    y_want, dx_want = torch_softmax_and_grad(x, dy)
    c = shape[1]
    y = call_op(CPU, "softmax_forward", x=x, y=np.empty_like(x))["y"]
    assert_close(y, y_want, dtype, reduction=c, what="softmax_forward")
    if y.size:
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=10 * np.finfo(dtype).eps * c)
    if logits == "spread_1e4":
        return  # a one-hot y has an (almost) zero gradient: see test_one_channel_and_extreme_logits
    # The backward reads the stored forward output, here torch's rounded to the working dtype.
    dx = call_op(CPU, "softmax_backward", y=y_want.astype(dtype), dy=dy, dx=np.empty_like(dy))["dx"]
    assert_close(dx, dx_want, dtype, reduction=c, what="softmax_backward")


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 2, 2), (1, 4, 3)])
def test_backward_by_finite_differences(shape):
    """softmax_backward is the gradient of L(x) = sum(dy * softmax_forward(x)) (float64)."""
    from mocha_triton.cpu_ref import softmax as sm

    x, dy = softmax_arrays(shape, "float64")
    y, dx = np.empty_like(x), np.empty_like(x)
    sm.softmax_forward(x, y)
    sm.softmax_backward(y, dy, dx)

    def loss(z: np.ndarray) -> float:
        out = np.empty_like(z)
        sm.softmax_forward(z, out)
        return float(np.sum(dy * out))

    h = 1e-6
    numeric = np.empty_like(x)
    for i in range(x.size):  # a loop over the elements of a tiny test array
        step = np.zeros_like(x)
        step.reshape(-1)[i] = h
        numeric.reshape(-1)[i] = (loss(x + step) - loss(x - step)) / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-9)


def test_one_channel_and_extreme_logits():
    """C = 1 gives exactly 1 and a zero gradient; spread logits give an exact one-hot."""
    from mocha_triton.cpu_ref import softmax as sm

    x = np.array([[-1e4], [0.0], [1e4]], np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    sm.softmax_forward(x, y)
    np.testing.assert_array_equal(y, 1.0)
    sm.softmax_backward(y, np.array([[2.0], [-1.0], [5.0]], np.float32), dx)
    np.testing.assert_array_equal(dx, 0.0)
    x = np.array([[1e4, -1e4, 0.0], [-5e3, 5e3, 1e4]], np.float32)
    y = np.empty_like(x)
    sm.softmax_forward(x, y)
    np.testing.assert_array_equal(y, [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    dx = np.empty_like(x)
    sm.softmax_backward(y, np.array([[0.5, -2.0, 3.0], [1.0, 4.0, -1.5]], np.float32), dx)
    np.testing.assert_array_equal(dx, 0.0)  # a one-hot softmax is flat


def test_bad_inputs():
    from mocha_triton.cpu_ref import softmax as sm

    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"softmax_forward: x must have at least 2 dimensions, got shape \(5,\)"):
        sm.softmax_forward(np.zeros(5, np.float32), np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=r"softmax_backward: y must have at least 2 dimensions, got shape \(\)"):
        sm.softmax_backward(np.float32(1.0), np.float32(1.0), np.float32(1.0))
    with pytest.raises(ValueError, match=r"softmax_forward: arguments must have the same shape, got x=\(2, 3, 4\), "
                                         r"y=\(2, 4, 3\)"):
        sm.softmax_forward(x, np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"softmax_backward: arguments must have the same shape"):
        sm.softmax_backward(x, x.copy(), np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match=r"softmax_forward: x has dtype int32"):
        sm.softmax_forward(np.zeros((2, 3), np.int32), np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match=r"softmax_backward: all float arguments must share one dtype, "
                                        r"got y=float32, dy=float64, dx=float32"):
        sm.softmax_backward(x, x.astype(np.float64), x.copy())
    with pytest.raises(TypeError, match=r"softmax_forward: y must be an array/tensor, got NoneType"):
        sm.softmax_forward(x, None)
