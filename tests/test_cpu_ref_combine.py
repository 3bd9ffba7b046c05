"""cpu_ref.combine against torch float64: block copies, elementwise binary ops and their gradients.

* copy_block: the named blocks of cases_combine (concat and crop copies, corners) and random ones, in
  float32 and float64, against torch slicing (and torch.flip for mirror); the rest of y keeps its values.
* eltwise_forward / eltwise_backward: every operation with plain and Caffe-style coefficients against
  torch float64 autograd of ``op(alpha * a, beta * b)`` (max as ``where(u >= v, u, v)``, whose
  gradient goes to a on ties like ours); the gradients against central finite differences; ties of max
  go to a; in-place aliasing (y = a or b; da or db = dy); None skips a gradient.
* Bad inputs raise errors naming the op, the argument and the problem.
"""

import numpy as np
import pytest
import torch

from cases_combine import BLOCK_CASES, COEFFICIENTS, ELTWISE_SHAPES, BlockCase, eltwise_arrays, random_block_cases
from mocha_triton.checks.combine import ELTWISE_OPERATIONS
from mocha_triton.cpu_ref import combine
from support import CPU, assert_close, call_op


def torch_copy_block(case: BlockCase, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    tx, ty = torch.from_numpy(x).double(), torch.from_numpy(y).double().clone()
    block = tx[tuple(slice(s, s + n) for s, n in zip(case.x_start, case.size))]
    if case.mirror:
        block = torch.flip(block, dims=(-1,))
    ty[tuple(slice(s, s + n) for s, n in zip(case.y_start, case.size))] = block
    return ty.numpy()


def run_copy_block(impl, case: BlockCase, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return call_op(impl, "copy_block", x=x, y=y, x_start=case.x_start, y_start=case.y_start, size=case.size,
                   mirror=case.mirror)["y"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(BLOCK_CASES))
def test_copy_block_named(dtype, name):
    case = BLOCK_CASES[name]
    x, y = case.arrays(dtype, seed=len(name))
    got = run_copy_block(CPU, case, x, y)
    assert np.array_equal(got, torch_copy_block(case, x, y)), name  # a copy is exact


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_copy_block_random(dtype):
    for k, case in enumerate(random_block_cases(seed=5, count=40)):
        x, y = case.arrays(dtype, seed=k)
        assert np.array_equal(run_copy_block(CPU, case, x, y), torch_copy_block(case, x, y)), case


def test_copy_block_concat_and_crop_round_trips():
    """Concat = torch.cat; slicing the concatenation back gives the bottoms; crop backward puts the
    gradient where the window was and leaves zeros around it."""
    rng = np.random.default_rng(3)
    parts = [rng.standard_normal((2, c, 3, 4)) for c in (1, 3, 2)]
    y = np.zeros((2, 6, 3, 4))
    offset = 0
    for part in parts:
        combine.copy_block(part, y, (0, 0, 0, 0), (0, offset, 0, 0), part.shape)
        offset += part.shape[1]
    assert np.array_equal(y, torch.cat([torch.from_numpy(p) for p in parts], dim=1).numpy())
    offset = 0
    for part in parts:
        back = np.empty_like(part)
        combine.copy_block(y, back, (0, offset, 0, 0), (0, 0, 0, 0), part.shape)
        assert np.array_equal(back, part)
        offset += part.shape[1]

    x = rng.standard_normal((1, 2, 6, 7))
    window = np.empty((1, 2, 3, 4))
    combine.copy_block(x, window, (0, 0, 2, 1), (0, 0, 0, 0), window.shape, mirror=True)
    assert np.array_equal(window, x[:, :, 2:5, 1:5][..., ::-1])
    dx = np.zeros_like(x)
    combine.copy_block(window, dx, (0, 0, 0, 0), (0, 0, 2, 1), window.shape, mirror=True)
    expected = np.zeros_like(x)
    expected[:, :, 2:5, 1:5] = x[:, :, 2:5, 1:5]
    assert np.array_equal(dx, expected)


# --- elementwise ---------------------------------------------------------------------------------------


def torch_eltwise(operation: str, a: np.ndarray, b: np.ndarray, dy: np.ndarray, alpha: float, beta: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """y, da, db of op(alpha * a, beta * b) by torch float64 autograd."""
    ta = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    u, v = alpha * ta, beta * tb
    y = {"add": lambda: u + v, "subtract": lambda: u - v, "multiply": lambda: u * v, "divide": lambda: u / v,
         "max": lambda: torch.where(u >= v, u, v)}[operation]()
    (y * torch.tensor(dy, dtype=torch.float64)).sum().backward()
    return y.detach().numpy(), ta.grad.numpy(), tb.grad.numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("operation", ELTWISE_OPERATIONS)
@pytest.mark.parametrize("coefficients", COEFFICIENTS)
def test_eltwise_against_torch(dtype, operation, coefficients):
    alpha, beta = coefficients
    for k, shape in enumerate(ELTWISE_SHAPES):
        a, b, dy = eltwise_arrays(operation, shape, dtype, seed=k, alpha=alpha, beta=beta)
        y_ref, da_ref, db_ref = torch_eltwise(operation, a, b, dy, alpha, beta)
        y = call_op(CPU, "eltwise_forward", a=a, b=b, y=np.empty_like(a), operation=operation, alpha=alpha,
                    beta=beta)["y"]
        assert_close(y, y_ref, dtype, what=f"{operation} y {shape}")
        grads = call_op(CPU, "eltwise_backward", a=a, b=b, dy=dy, da=np.empty_like(a), db=np.empty_like(a),
                        operation=operation, alpha=alpha, beta=beta)
        assert_close(grads["da"], da_ref, dtype, what=f"{operation} da {shape}")
        assert_close(grads["db"], db_ref, dtype, what=f"{operation} db {shape}")


@pytest.mark.parametrize("operation", ELTWISE_OPERATIONS)
def test_eltwise_gradients_against_finite_differences(operation):
    alpha, beta = 0.7, -1.3
    a, b, dy = eltwise_arrays(operation, (3, 4), "float64", seed=11, alpha=alpha, beta=beta)
    da, db = np.empty_like(a), np.empty_like(b)
    combine.eltwise_backward(a, b, dy, da, db, operation, alpha, beta)

    def objective(a_: np.ndarray, b_: np.ndarray) -> float:
        y = np.empty_like(a_)
        combine.eltwise_forward(a_, b_, y, operation, alpha, beta)
        return float(np.sum(y * dy))

    eps = 1e-6
    for grad, which in ((da, 0), (db, 1)):
        numeric = np.empty_like(grad)
        for i in np.ndindex(grad.shape):
            plus, minus = [a.copy(), b.copy()], [a.copy(), b.copy()]
            plus[which][i] += eps
            minus[which][i] -= eps
            numeric[i] = (objective(*plus) - objective(*minus)) / (2 * eps)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8, err_msg=f"{operation} operand {which}")


def test_eltwise_max_ties_go_to_a():
    a = np.array([1.0, 2.0, -3.0, 0.0])
    b = np.array([1.0, 1.0, -3.0, 5.0])
    y = np.empty(4)
    combine.eltwise_forward(a, b, y, "max")
    assert np.array_equal(y, [1.0, 2.0, -3.0, 5.0])
    da, db = np.empty(4), np.empty(4)
    combine.eltwise_backward(a, b, np.array([1.0, 2.0, 3.0, 4.0]), da, db, "max", 2.0, 2.0)
    assert np.array_equal(da, [2.0, 4.0, 6.0, 0.0]) and np.array_equal(db, [0.0, 0.0, 0.0, 8.0])


@pytest.mark.parametrize("operation", ELTWISE_OPERATIONS)
def test_eltwise_in_place_and_skipped_gradients(operation):
    a, b, dy = eltwise_arrays(operation, (4, 5), "float64", seed=2)
    y_ref, da_ref, db_ref = torch_eltwise(operation, a, b, dy, 1.5, 0.5)
    for alias in ("a", "b"):
        a2, b2 = a.copy(), b.copy()
        out = a2 if alias == "a" else b2
        combine.eltwise_forward(a2, b2, out, operation, 1.5, 0.5)
        assert_close(out, y_ref, "float64", what=f"y is {alias}")
    for alias in ("da", "db"):
        g = dy.copy()
        other = np.empty_like(dy)
        da, db = (g, other) if alias == "da" else (other, g)
        combine.eltwise_backward(a, b, g, da, db, operation, 1.5, 0.5)
        assert_close(da, da_ref, "float64", what=f"{alias} is dy: da")
        assert_close(db, db_ref, "float64", what=f"{alias} is dy: db")
    only_b = np.full_like(b, np.nan)
    combine.eltwise_backward(a, b, dy, None, only_b, operation, 1.5, 0.5)
    assert_close(only_b, db_ref, "float64", what="da skipped")
    only_a = np.full_like(a, np.nan)
    combine.eltwise_backward(a, b, dy, only_a, None, operation, 1.5, 0.5)
    assert_close(only_a, da_ref, "float64", what="db skipped")
    combine.eltwise_backward(a, b, dy, None, None, operation)  # nothing asked, nothing done


def test_chained_k_ary_ops_match_torch():
    """The layer's chains (y = op(y, x_i)) give Caffe's k-ary SUM with coefficients, PROD and MAX."""
    rng = np.random.default_rng(9)
    xs = [rng.standard_normal((2, 3)) for _ in range(4)]
    coeffs = [0.5, -1.0, 2.0, 0.25]
    txs = [torch.from_numpy(x) for x in xs]
    y = np.empty_like(xs[0])
    combine.eltwise_forward(xs[0], xs[1], y, "add", coeffs[0], coeffs[1])
    for x, c in zip(xs[2:], coeffs[2:]):
        combine.eltwise_forward(y, x, y, "add", 1.0, c)
    assert_close(y, sum(c * t for c, t in zip(coeffs, txs)).numpy(), "float64", reduction=4)
    combine.eltwise_forward(xs[0], xs[1], y, "multiply")
    for x in xs[2:]:
        combine.eltwise_forward(y, x, y, "multiply")
    assert_close(y, torch.stack(txs).prod(0).numpy(), "float64")
    combine.eltwise_forward(xs[0], xs[1], y, "max")
    for x in xs[2:]:
        combine.eltwise_forward(y, x, y, "max")
    assert np.array_equal(y, torch.stack(txs).amax(0).numpy())


# --- bad inputs ------------------------------------------------------------------------------------------


def test_copy_block_bad_inputs():
    x, y = np.zeros((2, 3, 4)), np.zeros((2, 5, 4))
    with pytest.raises(ValueError, match=r"copy_block: x and y must have the same number of dimensions"):
        combine.copy_block(x, np.zeros((2, 5)), (0, 0, 0), (0, 0), (2, 3, 4))
    with pytest.raises(ValueError, match=r"copy_block: the block at y_start \(0, 3, 0\) of size \(2, 3, 4\) does "
                                         r"not fit in y of shape \(2, 5, 4\)"):
        combine.copy_block(x, y, (0, 0, 0), (0, 3, 0), (2, 3, 4))
    with pytest.raises(ValueError, match=r"copy_block: the block at x_start \(0, 1, 0\) .* does not fit in x"):
        combine.copy_block(x, y, (0, 1, 0), (0, 0, 0), (2, 3, 4))
    with pytest.raises(ValueError, match=r"copy_block: x_start must hold one int per dimension \(3\)"):
        combine.copy_block(x, y, (0, 0), (0, 0, 0), (2, 3, 4))
    with pytest.raises(ValueError, match=r"copy_block: size must hold ints >= 0"):
        combine.copy_block(x, y, (0, 0, 0), (0, 0, 0), (2, -3, 4))
    with pytest.raises(TypeError, match=r"copy_block: y_start must be a sequence of 3 ints"):
        combine.copy_block(x, y, (0, 0, 0), (0, 0.5, 0), (2, 3, 4))
    with pytest.raises(TypeError, match=r"copy_block: mirror must be a bool"):
        combine.copy_block(x, y, (0, 0, 0), (0, 0, 0), (2, 3, 4), mirror="yes")
    with pytest.raises(TypeError, match=r"copy_block: all float arguments must share one dtype"):
        combine.copy_block(x.astype(np.float32), y, (0, 0, 0), (0, 0, 0), (2, 3, 4))
    with pytest.raises(TypeError, match=r"copy_block: x has dtype int64"):
        combine.copy_block(x.astype(np.int64), y, (0, 0, 0), (0, 0, 0), (2, 3, 4))
    with pytest.raises(ValueError, match=r"copy_block: x must have at least 1 dimensions"):
        combine.copy_block(np.zeros(()), np.zeros(()), (), (), ())


def test_eltwise_bad_inputs():
    a = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"eltwise_forward: operation must be one of \('add', 'subtract', "
                                         r"'multiply', 'divide', 'max'\), got 'sum'"):
        combine.eltwise_forward(a, a, a.copy(), "sum")
    with pytest.raises(ValueError, match=r"eltwise_forward: arguments must have the same shape, got a=\(2, 3\), "
                                         r"b=\(3, 2\)"):
        combine.eltwise_forward(a, np.zeros((3, 2)), a.copy(), "add")
    with pytest.raises(TypeError, match=r"eltwise_forward: all float arguments must share one dtype"):
        combine.eltwise_forward(a, a.astype(np.float32), a.copy(), "add")
    with pytest.raises(ValueError, match=r"eltwise_forward: alpha must be finite"):
        combine.eltwise_forward(a, a, a.copy(), "add", alpha=float("inf"))
    with pytest.raises(ValueError, match=r"eltwise_backward: arguments must have the same shape.*db=\(2, 2\)"):
        combine.eltwise_backward(a, a, a, None, np.zeros((2, 2)), "multiply")
    with pytest.raises(TypeError, match=r"eltwise_backward: dy must be an array/tensor, got None"):
        combine.eltwise_backward(a, a, None, a.copy(), None, "add")
    with pytest.raises(TypeError, match=r"eltwise_backward: beta must be a real scalar"):
        combine.eltwise_backward(a, a, a, a.copy(), None, "add", beta="two")


def test_copy_block_refuses_overlapping_source_and_destination():
    a = np.arange(12.0).reshape(3, 4)
    with pytest.raises(ValueError, match=r"copy_block: y must not share memory with x"):
        combine.copy_block(a, a, (0, 0), (1, 0), (2, 4))
    with pytest.raises(ValueError, match=r"copy_block: y must not share memory with x"):
        combine.copy_block(a[:, :2], a[:, 1:], (0, 0), (0, 0), (3, 2))
