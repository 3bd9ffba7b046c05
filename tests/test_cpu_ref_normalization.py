"""cpu_ref.normalization (LRN and power) against torch float64, torch's own LRN, finite differences."""

import numpy as np
import pytest
import torch

from cases_normalization import (
    NONFINITE_LRN,
    POWER_CASES,
    LRNCase,
    assert_close_nan,
    lrn_arrays,
    lrn_cases,
    nonfinite_id,
    planted_lrn_arrays,
    power_arrays,
    power_id,
    random_lrn_cases,
    run_lrn,
    torch_builtin_lrn,
    torch_lrn,
    torch_lrn_forward,
    torch_power,
    window_holds,
)
from mocha_triton.cpu_ref import normalization as ref
from support import CPU, assert_close, call_op

DTYPES = ["float32", "float64"]
CASES = lrn_cases("reference") + random_lrn_cases(seed=1, count=20)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_lrn_against_torch(case, dtype):
    x, dy = lrn_arrays(case, dtype)
    got = run_lrn(CPU, case, x, dy)
    want = torch_lrn(case, x, dy)
    assert_close(got["scale"], want["scale"], dtype, case.window, what=f"{case.id} scale")
    assert_close(got["y"], want["y"], dtype, case.window, what=f"{case.id} y")
    assert_close(got["dx"], want["dx"], dtype, case.window * case.window, what=f"{case.id} dx")
    assert np.all(got["scale"] >= case.k * (1 - 1e-6))


@pytest.mark.parametrize("case", [c for c in lrn_cases("reference") if c.size % 2], ids=lambda c: c.id)
def test_lrn_odd_sizes_match_torch_builtins(case):
    """The oracle's formula is torch's local_response_norm (and avg_pool2d with the padding counted)."""
    x, dy = lrn_arrays(case, "float64")
    builtin = torch_builtin_lrn(case, x)
    assert_close(run_lrn(CPU, case, x, dy)["y"], builtin, "float64", case.window)
    assert_close(torch_lrn(case, x, dy)["y"], builtin, "float64", case.window)


def test_even_sizes_put_the_extra_element_after_the_centre():
    """size 4 across 5 channels: channel c sums channels c - 1 .. c + 2 (pre 1, post 2), like Caffe's
    padding and unlike torch's local_response_norm (which puts it before)."""
    x = np.zeros((1, 5, 1, 1))
    x[0, 3] = 2.0  # only channel 3 is non-zero: it is in the windows of channels 1, 2, 3 and 4
    y, scale = np.empty_like(x), np.empty_like(x)
    ref.lrn_forward(x, y, scale, 4, 1.0, 1.0, 1.0)
    np.testing.assert_allclose(scale[0, :, 0, 0], [1.0, 2.0, 2.0, 2.0, 2.0])
    ref.lrn_forward(x, y, scale, 4, 1.0, 1.0, 1.0, "within_channel")  # one pixel: only itself
    np.testing.assert_allclose(scale[0, :, 0, 0], [1.0, 1.0, 1.0, 1.25, 1.0])


@pytest.mark.parametrize("case", [
    LRNCase(1, 4, 2, 3, 3, alpha=2.0, beta=0.75, k=1.0),
    LRNCase(2, 3, 2, 2, 4, alpha=1.5, beta=1.3, k=0.7),
    LRNCase(1, 2, 3, 4, 3, alpha=3.0, beta=0.75, k=1.0, region="within_channel"),
    LRNCase(1, 2, 3, 3, 2, alpha=1.0, beta=-0.5, k=2.0, region="within_channel"),
], ids=lambda c: c.id)
def test_lrn_backward_matches_finite_differences(case):
    """dx is the vector-Jacobian product of y: central differences of sum(dy * y) in float64."""
    x, dy = lrn_arrays(case, "float64", seed=5)
    dx = run_lrn(CPU, case, x, dy)["dx"]
    eps = 1e-6
    numeric = np.empty_like(x)
    y, scale = np.empty_like(x), np.empty_like(x)
    for j in range(x.size):
        values = []
        for step in (eps, -eps):
            shifted = x.copy()
            shifted.flat[j] += step
            ref.lrn_forward(shifted, y, scale, **case.params())
            values.append(float(np.sum(dy * y)))
        numeric.flat[j] = (values[0] - values[1]) / (2 * eps)
    assert np.abs(dx - numeric).max() <= 1e-7 * np.abs(numeric).max()


def test_lrn_nonfinite_repro():
    """The review's repro: a NaN in channel 0 of 8 (size 3) reaches channels 0 and 1 at its pixel only;
    an infinite dy in channel 0 reaches dx of channels 0 and 1."""
    case = LRNCase(1, 8, 1, 2, 3)
    x, dy = planted_lrn_arrays(case, "x", (0, 0, 0, 0), np.nan, "float32")
    got = run_lrn(CPU, case, x, dy)
    np.testing.assert_array_equal(np.isnan(got["y"][0, :, 0, 0]), [True, True] + [False] * 6)
    assert np.isfinite(got["y"][0, :, 0, 1]).all()
    x, dy = planted_lrn_arrays(case, "dy", (0, 0, 0, 0), np.inf, "float32")
    got = run_lrn(CPU, case, x, dy)
    np.testing.assert_array_equal(np.isfinite(got["dx"][0, :, 0, 0]), [False, False] + [True] * 6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("item", NONFINITE_LRN, ids=nonfinite_id)
def test_lrn_nonfinite_reaches_only_its_windows(item, dtype):
    """A NaN or infinity planted in x makes non-finite exactly the scales whose window holds it, and y
    follows torch's float64 forward (NaN and inf at the same places); one planted in dy makes
    non-finite exactly the dx whose transposed window holds it, every other dx equal to the oracle's
    with that dy set to 0 (it does not enter their sums)."""
    case, target, index, _ = item
    x, dy = planted_lrn_arrays(*item, dtype)
    got = run_lrn(CPU, case, x, dy)
    if target == "x":
        np.testing.assert_array_equal(~np.isfinite(got["scale"]), window_holds(case, index))
        want_y, want_scale = (a.numpy() for a in torch_lrn_forward(torch.tensor(x, dtype=torch.float64), case))
        assert_close_nan(got["scale"], want_scale, dtype, "scale", case.window)
        assert_close_nan(got["y"], want_y, dtype, "y", case.window)
        return
    assert np.isfinite(got["y"]).all() and np.isfinite(got["scale"]).all()
    reached = window_holds(case, index, transposed=True)
    np.testing.assert_array_equal(~np.isfinite(got["dx"]), reached)
    dy[index] = 0.0
    want = torch_lrn(case, x, dy)["dx"]
    assert_close(got["dx"][~reached], want[~reached], dtype, case.window**2, what="dx")


@pytest.mark.parametrize("region", ["across_channels", "within_channel"])
@pytest.mark.parametrize("shape", [(0, 3, 2, 2), (2, 0, 2, 2), (2, 3, 0, 2), (1, 2, 3, 0)])
def test_lrn_empty_shapes(shape, region):
    """Empty inputs: no error, the outputs keep their shape, and no byte around them is written (they
    are empty views into the middle of a guard buffer)."""
    guard = np.full(16, 7.0)
    x = np.zeros(shape)
    y, scale, dx = (guard[4 * i:4 * i].reshape(shape) for i in (1, 2, 3))
    params = dict(size=3, alpha=1.0, beta=0.75, region=region)
    assert ref.lrn_forward(x, y, scale, k=1.0, **params) is None
    assert ref.lrn_backward(x, y, scale, x.copy(), dx, **params) is None
    assert y.shape == scale.shape == dx.shape == shape
    np.testing.assert_array_equal(guard, 7.0)


# --- power ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POWER_CASES, ids=power_id)
def test_power_against_torch(case, dtype):
    power, scale, shift = case
    x, dy = power_arrays((3, 4, 5), dtype)
    want_y, want_dx = torch_power(x, dy, *case)
    y = call_op(CPU, "power_forward", x=x, y=np.empty_like(x), power=power, scale=scale, shift=shift)["y"]
    dx = call_op(CPU, "power_backward", x=x, dy=dy, dx=np.empty_like(x), power=power, scale=scale,
                 shift=shift)["dx"]
    assert_close_nan(y, want_y, dtype, what="y")
    assert_close_nan(dx, want_dx, dtype, what="dx")
    if power != int(power) and scale != 0:  # negative bases: NaN like NumPy
        assert np.isnan(y).any() == (shift + scale * x < 0).any()


def test_power_special_values():
    """0 ** p is 0 for p > 0 and inf for p < 0 (its slope 0 for p > 1); x ** 0 is 1 even for inf and NaN,
    with a zero gradient; a zero scale makes a constant with a zero gradient."""
    x = np.array([0.0, 1.0, -2.0, np.inf, np.nan])
    y, dx = np.empty_like(x), np.empty_like(x)
    ones = np.ones_like(x)
    ref.power_forward(x, y, 3.0, 1.0, 0.0)
    np.testing.assert_array_equal(y[:3], [0.0, 1.0, -8.0])
    ref.power_backward(x, ones, dx, 3.0, 1.0, 0.0)
    np.testing.assert_array_equal(dx[:3], [0.0, 3.0, 12.0])
    ref.power_forward(x, y, -1.0, 1.0, 0.0)
    np.testing.assert_array_equal(y[:3], [np.inf, 1.0, -0.5])
    ref.power_forward(x, y, 0.0, 2.0, 1.0)
    np.testing.assert_array_equal(y, ones)
    ref.power_backward(x, ones, dx, 0.0, 2.0, 1.0)
    np.testing.assert_array_equal(dx, 0.0)
    ref.power_forward(x[:3], y[:3], 0.5, 0.0, 4.0)
    np.testing.assert_array_equal(y[:3], 2.0)
    ref.power_backward(x, ones, dx, 0.5, 0.0, 0.0)  # 0.5 * 0 * 0 ** -0.5 would be NaN: it is 0
    np.testing.assert_array_equal(dx, 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_power_negative_base_non_integer_exponent_is_nan(dtype):
    """Every negative base, -inf included, gives NaN with a non-integer exponent (y and dx), on every
    platform (NumPy's own float32 power returns 0 for (-inf) ** -0.75 on some); integer exponents keep
    the signed results."""
    x = np.array([-np.inf, -2.0, -0.5, 0.0, 2.0, np.inf], dtype)
    y, dx = np.empty_like(x), np.empty_like(x)
    for power in (0.5, -0.75, 2.5, -1.5):
        ref.power_forward(x, y, power, 1.0, 0.0)
        np.testing.assert_array_equal(np.isnan(y), x < 0)
        ref.power_backward(x, np.ones_like(x), dx, power, 1.0, 0.0)
        np.testing.assert_array_equal(np.isnan(dx), x < 0)
    ref.power_forward(x, y, -3.0, 1.0, 0.0)
    np.testing.assert_array_equal(y, [-0.0, -0.125, -8.0, np.inf, 0.125, 0.0])
    assert np.signbit(y[0])


@pytest.mark.parametrize("case", [(3.0, 0.5, 0.2), (0.75, 2.0, 3.0), (-1.5, 1.0, 4.0), (2.0, -1.0, 0.5)],
                         ids=power_id)
def test_power_backward_matches_finite_differences(case):
    x, dy = power_arrays((4, 3), "float64", seed=2)
    dx = np.empty_like(x)
    ref.power_backward(x, dy, dx, *case)
    eps = 1e-6
    y_plus, y_minus = np.empty_like(x), np.empty_like(x)
    ref.power_forward(x + eps, y_plus, *case)
    ref.power_forward(x - eps, y_minus, *case)
    numeric = dy * (y_plus - y_minus) / (2 * eps)  # elementwise: each y depends on its own x only
    assert np.abs(dx - numeric).max() <= 1e-7 * np.abs(numeric).max()


@pytest.mark.parametrize("case", [(2.0, 1.5, 0.5), (0.5, 1.0, 2.0), (3.0, -1.0, 0.0), (1.0, 2.0, 1.0)],
                         ids=power_id)
def test_power_in_place(case):
    x, dy = power_arrays((2, 3, 4), "float64", seed=3)
    y, dx = np.empty_like(x), np.empty_like(x)
    ref.power_forward(x, y, *case)
    ref.power_backward(x, dy, dx, *case)
    inplace = x.copy()
    ref.power_forward(inplace, inplace, *case)
    np.testing.assert_array_equal(inplace, y)
    grad = dy.copy()
    ref.power_backward(x, grad, grad, *case)
    np.testing.assert_array_equal(grad, dx)


def test_power_matches_torch_on_empty_and_scalar_shapes():
    for shape in [(0,), (1,), (7,)]:
        x, dy = power_arrays(shape, "float64")
        y = call_op(CPU, "power_forward", x=x, y=np.empty_like(x), power=2.5, scale=1.0, shift=3.0)["y"]
        want = torch.pow(3.0 + torch.tensor(x), 2.5).numpy()
        assert_close(y, want, "float64")


# --- bad inputs ------------------------------------------------------------------------------------------

X = np.zeros((1, 3, 2, 2))


@pytest.mark.parametrize("call, error, match", [
    (lambda: ref.lrn_forward(X[0], X[0].copy(), X[0].copy(), 3, 1.0, 0.75, 1.0), ValueError,
     r"lrn_forward: x must be 4-D, got shape \(3, 2, 2\)"),
    (lambda: ref.lrn_forward(X, X.copy(), X.copy(), 0, 1.0, 0.75, 1.0), ValueError,
     "lrn_forward: size must be a positive int, got 0"),
    (lambda: ref.lrn_forward(X, X.copy(), X.copy(), 2.5, 1.0, 0.75, 1.0), ValueError,
     "lrn_forward: size must be a positive int"),
    (lambda: ref.lrn_forward(X, X.copy(), X.copy(), 3, -1.0, 0.75, 1.0), ValueError,
     "lrn_forward: alpha must be >= 0, got -1.0"),
    (lambda: ref.lrn_forward(X, X.copy(), X.copy(), 3, 1.0, float("inf"), 1.0), ValueError,
     "lrn_forward: beta must be finite"),
    (lambda: ref.lrn_forward(X, X.copy(), X.copy(), 3, 1.0, 0.75, 0.0), ValueError,
     r"lrn_forward: k must be > 0 \(it keeps the scale positive\), got 0.0"),
    (lambda: ref.lrn_forward(X, X.copy(), X.copy(), 3, 1.0, 0.75, 1.0, "across_channel"), ValueError,
     r"lrn_forward: region must be one of \('across_channels', 'within_channel'\), got 'across_channel'"),
    (lambda: ref.lrn_forward(X, np.zeros((1, 3, 2, 3)), X.copy(), 3, 1.0, 0.75, 1.0), ValueError,
     "lrn_forward: arguments must have the same shape"),
    (lambda: ref.lrn_forward(X, X.astype(np.float32), X.copy(), 3, 1.0, 0.75, 1.0), TypeError,
     "lrn_forward: all float arguments must share one dtype"),
    (lambda: ref.lrn_forward(X.astype(np.int64), X.copy(), X.copy(), 3, 1.0, 0.75, 1.0), TypeError,
     "lrn_forward: x has dtype int64"),
    (lambda: ref.lrn_forward(X, X, X.copy(), 3, 1.0, 0.75, 1.0), ValueError,
     "lrn_forward: y must not share memory with x"),
    (lambda: ref.lrn_backward(X, X.copy(), X.copy(), X.copy(), X.copy(), 3, 1.0, 0.75, "sideways"), ValueError,
     "lrn_backward: region must be one of"),
    (lambda: ref.lrn_backward(X, X.copy(), X.copy(), X.copy(), np.zeros((1, 3, 2, 1)), 3, 1.0, 0.75), ValueError,
     "lrn_backward: arguments must have the same shape"),
    (lambda: (lambda d: ref.lrn_backward(X, X.copy(), X.copy(), d, d, 3, 1.0, 0.75))(X.copy()), ValueError,
     "lrn_backward: dx must not share memory with dy"),
    (lambda: (lambda b: ref.lrn_forward(b[:12].reshape(X.shape), b[6:].reshape(X.shape), X.copy(), 3, 1.0, 0.75,
                                        1.0))(np.zeros(18)), ValueError,
     r"lrn_forward: y must not share memory with x \(every element reads its neighbours"),
    (lambda: (lambda b: ref.lrn_forward(X, b[:, :3], b[:, 1:], 3, 1.0, 0.75, 1.0))(np.zeros((1, 4, 2, 2))),
     ValueError, "lrn_forward: scale must not share memory with y"),
    (lambda: ref.power_forward(X, X.copy(), float("nan"), 1.0, 0.0), ValueError,
     "power_forward: power must be finite"),
    (lambda: ref.power_forward(X, X.copy(), 2.0, "big", 0.0), TypeError,
     "power_forward: scale must be a real scalar"),
    (lambda: ref.power_forward(X, np.zeros(3), 2.0, 1.0, 0.0), ValueError,
     "power_forward: arguments must have the same shape"),
    (lambda: ref.power_backward(X, X.copy(), X.astype(np.float32), 2.0, 1.0, 0.0), TypeError,
     "power_backward: all float arguments must share one dtype"),
    (lambda: ref.power_backward(X, X.copy(), X.copy(), 2.0, 1.0, float("-inf")), ValueError,
     "power_backward: shift must be finite"),
])
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_require_distinct():
    """checks.common.require_distinct (used by the LRN checks): overlap of memory, not only of the first
    element, for NumPy arrays, torch tensors and both over one buffer; interleaved views, empty arrays,
    None and aliased inputs pass; the message names the op, both arguments and the reason."""
    from mocha_triton.checks.common import require_distinct

    def rejects(outputs, inputs, match="must not share memory"):
        with pytest.raises(ValueError, match=match):
            require_distinct("op", outputs, inputs, why="a reason")

    a = np.zeros(20)
    rejects({"y": a[5:15]}, {"x": a[:10]}, r"^op: y must not share memory with x \(a reason\)$")
    rejects({"y": a[:3]}, {"x": a})
    rejects({"y": a[:10], "z": a[9:]}, {"x": np.zeros(3)}, "z must not share memory with y")
    rejects({"y": a.reshape(4, 5)[:, 1]}, {"x": a.reshape(4, 5)[2]})  # strided views crossing at a[11]
    require_distinct("op", {"y": a[::2]}, {"x": a[1::2]})  # interleaved: no element in common
    require_distinct("op", {"y": a[:10], "z": None}, {"x": a[10:], "w": a[10:], "v": None})
    require_distinct("op", {"y": a[4:4]}, {"x": a})  # empty
    t = torch.zeros(20)
    rejects({"y": t[5:15]}, {"x": t[:10]})
    require_distinct("op", {"y": t[10:]}, {"x": t[:10]})
    shared = np.zeros(20, np.float32)
    rejects({"y": torch.from_numpy(shared[8:])}, {"x": torch.from_numpy(shared[:9])})  # two storages, one buffer
    rejects({"y": torch.from_numpy(shared[8:])}, {"x": shared[:9]})
    require_distinct("op", {"y": torch.from_numpy(shared[9:])}, {"x": shared[:9]})
    with pytest.raises(ValueError, match=r"^op: y must not share memory with x$"):
        require_distinct("op", {"y": t}, {"x": t})
