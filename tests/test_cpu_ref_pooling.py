"""cpu_ref.pooling against torch float64, a plain-loop statement of the rules, and finite differences."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cases_pooling import (
    PoolCase,
    loop_max_backward,
    loop_mean_backward,
    loop_output_size,
    loop_pool,
    pool_arrays,
    pool_cases,
    random_cases,
    run_all,
)
from mocha_triton.checks.pooling import pool2d_output_size
from support import CPU, assert_close, call_op

DTYPES = ["float32", "float64"]
TORCH_CASES = pool_cases("torch") + random_cases(seed=1, count=30, torch_ok=True)
LOOP_CASES = pool_cases("edge") + random_cases(seed=2, count=20, max_size=7)


def torch_pool(case: PoolCase, x: np.ndarray, dy: np.ndarray) -> dict[str, np.ndarray]:
    """torch float64 results (max_pool2d with indices, avg_pool2d counting the padding) and autograd."""
    args = dict(kernel_size=case.kernel, stride=case.stride, padding=case.pad, ceil_mode=case.ceil_mode)
    tdy = torch.from_numpy(dy).double()
    out = {}
    tx = torch.from_numpy(x).double().requires_grad_()
    y, index = F.max_pool2d(tx, return_indices=True, **args)
    y.backward(tdy)
    out.update(max=y.detach().numpy(), argmax=index.numpy(), max_dx=tx.grad.numpy())
    tx = torch.from_numpy(x).double().requires_grad_()
    y = F.avg_pool2d(tx, count_include_pad=True, **args)
    y.backward(tdy)
    out.update(mean=y.detach().numpy(), mean_dx=tx.grad.numpy())
    return out


def compare(got: dict, want: dict, case: PoolCase, dtype: str) -> None:
    assert np.array_equal(got["argmax"], want["argmax"]), f"{case.id}: argmax differs"
    assert_close(got["max"], want["max"], dtype, what=f"{case.id} max")
    assert_close(got["max_dx"], want["max_dx"], dtype, case.overlap, what=f"{case.id} max_dx")
    assert_close(got["mean"], want["mean"], dtype, case.window, what=f"{case.id} mean")
    assert_close(got["mean_dx"], want["mean_dx"], dtype, case.overlap, what=f"{case.id} mean_dx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: c.id)
def test_against_torch(case, dtype):
    x, dy = pool_arrays(case, dtype)
    got = run_all(CPU, case, x, dy)
    assert got["max"].shape == case.y_shape
    compare(got, torch_pool(case, x, dy), case, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LOOP_CASES, ids=lambda c: c.id)
def test_against_loops(case, dtype):
    """Configurations torch rejects (pad > kernel / 2) or where its rule is not Caffe's."""
    x, dy = pool_arrays(case, dtype)
    got = run_all(CPU, case, x, dy)
    y_max, argmax, y_mean = loop_pool(case, x)
    want = dict(max=y_max, argmax=argmax, mean=y_mean, max_dx=loop_max_backward(case, dy, argmax),
                mean_dx=loop_mean_backward(case, dy))
    compare(got, want, case, dtype)


@pytest.mark.parametrize("case", pool_cases("torch")[:8] + pool_cases("edge"), ids=lambda c: c.id)
def test_ties_take_the_first_maximum(case):
    """Inputs in {-1, 0, 1}: most windows tie; the first maximum in row-major order wins."""
    x, dy = pool_arrays(case, "float64", ties=True)
    got = run_all(CPU, case, x, dy)
    y_max, argmax, _ = loop_pool(case, x)
    assert np.array_equal(got["argmax"], argmax)
    assert np.array_equal(got["max"], y_max)
    assert_close(got["max_dx"], loop_max_backward(case, dy, argmax), "float64", case.overlap)


def test_minus_inf_and_nan():
    """NaN is never greater, so it is skipped; an all -inf/NaN window gives -inf at its first pixel."""
    case = PoolCase(1, 1, 4, 5, (2, 3), (2, 2), (1, 1))
    x = np.arange(20, dtype=np.float64).reshape(case.x_shape) % 7
    x[0, 0, 0, :3] = -np.inf
    x[0, 0, 1, 0] = np.nan   # window (0, 0) holds only -inf and NaN
    x[0, 0, 2, 3] = np.nan   # a NaN among finite values
    x[0, 0, 3, 4] = -np.inf
    got = call_op(CPU, "max_pool2d_forward", x=x, y=np.empty(case.y_shape), argmax=np.empty(case.y_shape, np.int32),
                  **case.params())
    y_max, argmax, _ = loop_pool(case, x)
    assert got["y"][0, 0, 0, 0] == -np.inf and got["argmax"][0, 0, 0, 0] == 0
    assert np.array_equal(got["y"], y_max) and np.array_equal(got["argmax"], argmax)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [PoolCase(2, 3, 9, 11, (3, 3), (2, 2)), PoolCase(1, 2, 7, 8, (2, 3), (1, 2), (1, 1))],
                         ids=lambda c: c.id)
def test_signed_zero_maxima_are_the_first_maximum(case, dtype):
    """Windows of +0 and -0 only: the maximum is the pixel the argmax names, sign bit included."""
    rng = np.random.default_rng(7)
    x = np.where(rng.random(case.x_shape) < 0.5, -0.0, 0.0).astype(dtype)
    got = call_op(CPU, "max_pool2d_forward", x=x, y=np.empty(case.y_shape, dtype),
                  argmax=np.empty(case.y_shape, np.int32), **case.params())
    _, argmax, _ = loop_pool(case, x)
    assert np.array_equal(got["argmax"], argmax)
    chosen = np.take_along_axis(x.reshape(case.n, case.c, -1), argmax.reshape(case.n, case.c, -1), axis=2)
    assert np.array_equal(np.signbit(got["y"]).reshape(chosen.shape), np.signbit(chosen))


@pytest.mark.parametrize("case", [PoolCase(1, 2, 5, 6, (3, 2), (2, 1), (1, 1)),
                                  PoolCase(2, 1, 4, 5, (2, 3), (3, 2), (1, 2), ceil_mode=False),
                                  PoolCase(1, 1, 5, 5, (3, 3), (2, 2), (2, 2))], ids=lambda c: c.id)
def test_gradients_by_finite_differences(case):
    """Central differences of sum(y * dy) in float64 equal both backward passes (both ops are
    piecewise linear; random inputs keep the argmax fixed under the small steps)."""
    x, dy = pool_arrays(case, "float64", seed=5)
    got = run_all(CPU, case, x, dy)
    step = 1e-6
    for kind in ("max", "mean"):
        numeric = np.empty_like(x)
        for i in np.ndindex(*x.shape):
            total = []
            for sign in (1, -1):
                xs = x.copy()
                xs[i] += sign * step
                total.append(float(np.sum(run_all(CPU, case, xs, dy)[kind] * dy)))
            numeric[i] = (total[0] - total[1]) / (2 * step)
        np.testing.assert_allclose(got[f"{kind}_dx"], numeric, rtol=0, atol=1e-7, err_msg=f"{case.id} {kind}")


@pytest.mark.parametrize("case", TORCH_CASES + LOOP_CASES, ids=lambda c: c.id)
def test_output_size(case):
    assert pool2d_output_size(case.h, case.w, case.kernel, case.stride, case.pad, case.ceil_mode) == (case.oh, case.ow)


def test_output_size_rules():
    # ceil adds a partial last window; floor does not
    assert pool2d_output_size(5, 5, 2, 2, 0, True) == (3, 3)
    assert pool2d_output_size(5, 5, 2, 2, 0, False) == (2, 2)
    # ceil((5 + 2 - 2) / 2) + 1 = 4, but the 4th window would start at 6 - 1 = 5 = H: dropped
    assert pool2d_output_size(5, 5, 2, 2, 1, True) == (3, 3)
    # pad 0, kernel < stride: Caffe keeps a 3rd window starting at row 6 of 6 rows; we drop it
    assert pool2d_output_size(6, 6, 2, 3, 0, True) == (2, 2)
    assert loop_output_size(6, 2, 3, 0, True) == 2
    # global pooling and non-square arguments
    assert pool2d_output_size(5, 7, (5, 7), 1, 0) == (1, 1)
    assert pool2d_output_size(9, 5, (3, 2), (2, 1), (1, 0)) == (5, 4)
    # torch agrees wherever it accepts the arguments
    for h, k, s, p in [(5, 2, 2, 1), (6, 2, 3, 0), (7, 3, 2, 1), (16, 3, 2, 0), (10, 4, 3, 2)]:
        for ceil in (True, False):
            want = F.max_pool2d(torch.zeros(1, 1, h, h), k, s, p, ceil_mode=ceil).shape[-1]
            assert pool2d_output_size(h, h, k, s, p, ceil) == (want, want)


def test_writes_nothing_for_an_empty_batch():
    case = PoolCase(0, 3, 4, 4, (2, 2), (2, 2))
    x, dy = pool_arrays(case, "float32")
    got = run_all(CPU, case, x, dy)
    assert all(a.size == 0 for a in got.values())


F32, F64, I32 = np.float32, np.float64, np.int32


def _max_fwd(x=None, y=None, argmax=None, kernel=(2, 2), stride=(2, 2), pad=(0, 0), ceil_mode=True):
    from mocha_triton.cpu_ref import pooling

    x = np.zeros((1, 2, 4, 4), F32) if x is None else x
    y = np.zeros((1, 2, 2, 2), F32) if y is None else y
    argmax = np.zeros((1, 2, 2, 2), I32) if argmax is None else argmax
    pooling.max_pool2d_forward(x, y, argmax, kernel, stride, pad, ceil_mode)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(x=np.zeros((1, 2, 4, 4), np.int64)), TypeError, r"max_pool2d_forward: x has dtype int64"),
    (dict(y=np.zeros((1, 2, 2, 2), F64)), TypeError, r"max_pool2d_forward: all float arguments must share one dtype"),
    (dict(argmax=np.zeros((1, 2, 2, 2), np.int64)), TypeError,
     r"max_pool2d_forward: argmax has dtype int64; expected int32"),
    (dict(x=np.zeros((2, 4, 4), F32)), ValueError, r"max_pool2d_forward: x must be 4-D"),
    (dict(pad=(2, 0)), ValueError, r"max_pool2d_forward: pad \(2, 0\) must be smaller than kernel \(2, 2\)"),
    (dict(kernel=(5, 2)), ValueError, r"max_pool2d_forward: kernel \(5, 2\) is larger than the padded input"),
    (dict(stride=0), ValueError, r"max_pool2d_forward: stride must be >= 1"),
    (dict(kernel="2x2"), TypeError, r"max_pool2d_forward: kernel must be an int or a pair"),
    (dict(ceil_mode=1), TypeError, r"max_pool2d_forward: ceil_mode must be a bool"),
    (dict(y=np.zeros((1, 2, 3, 2), F32)), ValueError,
     r"max_pool2d_forward: y has shape \(1, 2, 3, 2\), expected \(1, 2, 2, 2\)"),
    (dict(argmax=np.zeros((1, 2, 2, 3), I32)), ValueError, r"max_pool2d_forward: argmax has shape \(1, 2, 2, 3\)"),
    (dict(x=np.zeros((1, 2, 0, 4), F32), pad=(1, 0)), ValueError, r"max_pool2d_forward: x has an empty image"),
])
def test_bad_forward_inputs(kwargs, error, match):
    with pytest.raises(error, match=match):
        _max_fwd(**kwargs)


def test_bad_backward_and_mean_inputs():
    from mocha_triton.cpu_ref import pooling

    dx = np.zeros((1, 2, 5, 5), F32)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: dy has shape \(1, 2, 4, 4\), expected "
                                         r"\(1, 2, 3, 3\) \(ceil mode\) or \(1, 2, 2, 2\) \(floor mode\)"):
        pooling.max_pool2d_backward(np.zeros((1, 2, 4, 4), F32), np.zeros((1, 2, 4, 4), I32), dx, 2, 2, 0)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: argmax has shape \(1, 2, 3, 2\)"):
        pooling.max_pool2d_backward(np.zeros((1, 2, 3, 3), F32), np.zeros((1, 2, 3, 2), I32), dx, 2, 2, 0)
    with pytest.raises(TypeError, match=r"max_pool2d_backward: argmax has dtype float32; expected int32"):
        pooling.max_pool2d_backward(np.zeros((1, 2, 3, 3), F32), np.zeros((1, 2, 3, 3), F32), dx, 2, 2, 0)
    with pytest.raises(TypeError, match=r"mean_pool2d_forward: all float arguments must share one dtype"):
        pooling.mean_pool2d_forward(np.zeros((1, 2, 5, 5), F32), np.zeros((1, 2, 3, 3), F64), 2, 2, 0)
    with pytest.raises(ValueError, match=r"mean_pool2d_forward: y has shape \(1, 2, 3, 3\), expected \(1, 2, 2, 2\)"):
        pooling.mean_pool2d_forward(np.zeros((1, 2, 5, 5), F32), np.zeros((1, 2, 3, 3), F32), 2, 2, 0, False)
    with pytest.raises(ValueError, match=r"mean_pool2d_backward: dy has shape \(1, 2, 2, 2\), expected \(1, 2, 3, 3\)"):
        pooling.mean_pool2d_backward(np.zeros((1, 2, 2, 2), F32), dx, 2, 2, 0)
    with pytest.raises(ValueError, match=r"mean_pool2d_backward: pad \(0, 3\) must be smaller than kernel \(3, 3\)"):
        pooling.mean_pool2d_backward(np.zeros((1, 2, 3, 3), F32), dx, 3, 2, (0, 3))
    with pytest.raises(ValueError, match=r"pool2d_output_size: pad \(1, 1\) must be smaller than kernel \(1, 1\)"):
        pool2d_output_size(4, 4, 1, 1, 1)
