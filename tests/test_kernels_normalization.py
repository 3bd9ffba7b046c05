"""kernels.normalization equals cpu_ref.normalization (float32): LRN both regions, power every kind.

On a GPU with MOCHA_TRITON_ALL_CONFIGS=1 every autotune config of the LRN kernels runs; in the
interpreter the cases include an image wider than one across-channel program and more planes and
pixels than one within-channel program. NaN and infinities in x and dy land exactly where the
reference puts them; integer powers are correctly rounded (checked bit for bit); the across-channel
kernels address a sample of more than 2**31 elements (checked in a subprocess, on a mostly untouched
9 GiB buffer).
"""

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

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
    ulp_distance,
)
from mocha_triton.kernels import normalization
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts

# log2 of a negative base (the NaN of non-integer powers), 1 / 0 and the overflowing squares of large
# integer powers warn inside Triton's interpreter
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning",
                                        "ignore:divide by zero encountered:RuntimeWarning",
                                        "ignore:overflow encountered:RuntimeWarning")

CASES = lrn_cases("tiny") + random_lrn_cases(seed=3, count=6, max_size=5)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_lrn_matches_reference(case):
    x, dy = lrn_arrays(case, "float32")
    want = run_lrn(CPU, case, x, dy)
    for label, context in triton_config_contexts(normalization):
        with context:
            got = run_lrn(TRITON, case, x, dy)
        what = f"{case.id} [{label}]"
        assert_close(got["scale"], want["scale"], "float32", case.window, what=f"{what} scale")
        assert_close(got["y"], want["y"], "float32", case.window, what=f"{what} y")
        assert_close(got["dx"], want["dx"], "float32", case.window**2, what=f"{what} dx")


@pytest.mark.parametrize("item", NONFINITE_LRN, ids=nonfinite_id)
def test_lrn_nonfinite_values_match_reference(item):
    """A NaN or an infinity in x or dy: NaN and inf at the reference's positions (the outputs whose
    window sums hold it), the finite values close. A running window sum would carry it (inf - inf is
    NaN) to every later channel."""
    case = item[0]
    x, dy = planted_lrn_arrays(*item, "float32")
    want = run_lrn(CPU, case, x, dy)
    for label, context in triton_config_contexts(normalization):
        with context:
            got = run_lrn(TRITON, case, x, dy)
        for name, reduction in (("scale", case.window), ("y", case.window), ("dx", case.window**2)):
            assert_close_nan(got[name], want[name], "float32", f"{nonfinite_id(item)} [{label}] {name}", reduction)


def test_lrn_large_channel_leaves_no_error_on_later_channels():
    """A huge term in one channel (x in channel 2 forward, dy in channel 6 backward) affects only the
    windows that hold it: every window is summed afresh. (A running sum that adds the channel entering
    the window and subtracts the one leaving it would keep the rounding of the huge term: in fp32 the
    scale of every later channel would be off by about ulp(3000**2) = 0.5.)"""
    case = LRNCase(1, 12, 2, 2, 3, alpha=1.0, beta=0.75, k=1.0)
    x, dy = lrn_arrays(case, "float32")
    x[:, 2] = 3000.0
    dy[:, 6] = 1e6
    want, got = run_lrn(CPU, case, x, dy), run_lrn(TRITON, case, x, dy)
    np.testing.assert_allclose(got["scale"][:, 4:], want["scale"][:, 4:], rtol=1e-6)
    np.testing.assert_allclose(got["dx"][:, 8:], want["dx"][:, 8:], rtol=1e-5, atol=1e-5)
    assert_close(got["y"], want["y"], "float32", case.window)
    assert_close(got["dx"], want["dx"], "float32", case.window**2)


@pytest.mark.parametrize("region", ["across_channels", "within_channel"])
@pytest.mark.parametrize("shape", [(0, 3, 2, 2), (2, 0, 2, 2), (2, 3, 0, 2), (1, 2, 3, 0)])
def test_lrn_empty_shapes(shape, region):
    """Empty inputs: no error, outputs keep their shape, and no byte around them is written (the
    outputs are empty views into the middle of a guard buffer)."""
    import torch

    guard = torch.full((16,), 7.0, device=TRITON.device)
    x = torch.empty(shape, device=TRITON.device)
    y, scale, dx = (guard[4 * i:4 * i].view(shape) for i in (1, 2, 3))
    params = dict(size=3, alpha=1.0, beta=0.75, region=region)
    normalization.lrn_forward(x, y, scale, k=1.0, **params)
    normalization.lrn_backward(x, y, scale, x, dx, **params)
    assert y.shape == scale.shape == dx.shape == shape
    np.testing.assert_array_equal(TRITON.to_numpy(guard), 7.0)


# Runs in a subprocess: before channel offsets were int64, channel 8's offset 8 * 2**28 wrapped to -2**31
# and the load crashed the interpreter (or read another buffer on a GPU).
_HUGE_SAMPLE = textwrap.dedent("""
    import numpy as np
    import torch

    from mocha_triton.cpu_ref import normalization as ref
    from mocha_triton.kernels import normalization as kernels

    device = "cuda" if torch.cuda.is_available() else "cpu"
    C, HW, P, GAP = 9, 2**28, 256, 4096  # one sample of 9 * 2**28 elements; P pixels checked
    size, alpha, beta, k = 3, 1.5, 0.75, 1.0
    # One 9 GiB buffer, of which only the pages holding the first GAP pixels of each channel are
    # touched: x, y, scale, dy and dx are views GAP elements apart, and one program (BLOCK_S <= GAP
    # pixels of sample 0) reaches only those.
    try:
        buffer = torch.empty(C * HW + 5 * GAP, dtype=torch.float32, device=device)
    except (RuntimeError, MemoryError) as error:  # no 9 GiB of address space (or of GPU memory) here
        raise SystemExit(f"skip: {error}")
    x, y, scale, dy, dx = (buffer[i * GAP:i * GAP + C * HW] for i in range(5))
    rng = np.random.default_rng(0)
    x_small = rng.standard_normal((1, C, 1, P)).astype(np.float32)
    dy_small = rng.standard_normal((1, C, 1, P)).astype(np.float32)
    for c in range(C):
        x[c * HW:c * HW + P].copy_(torch.from_numpy(x_small[0, c, 0]))
        dy[c * HW:c * HW + P].copy_(torch.from_numpy(dy_small[0, c, 0]))
    kernels.lrn_across_forward_kernel[(1,)](x, y, scale, C, HW, size, 1, alpha / size, -beta, k)
    kernels.lrn_across_backward_kernel[(1,)](x, y, scale, dy, dx, C, HW, size, 1, 2 * alpha * beta / size, -beta)
    want = {name: np.empty_like(x_small) for name in ("y", "scale", "dx")}
    ref.lrn_forward(x_small, want["y"], want["scale"], size, alpha, beta, k)
    ref.lrn_backward(x_small, want["y"], want["scale"], dy_small, want["dx"], size, alpha, beta)
    for name, got in (("y", y), ("scale", scale), ("dx", dx)):
        got = np.stack([got[c * HW:c * HW + P].cpu().numpy() for c in range(C)])
        error = np.abs(got - want[name][0, :, 0]).max() / np.abs(want[name]).max()
        assert error < 1e-5, (name, error)
    print("ok")
""")


def test_lrn_across_channels_addresses_samples_beyond_2_31_elements():
    """Channel offsets are int64: channel 8 of a sample of 2**28-pixel planes starts 2**31 elements in."""
    done = subprocess.run([sys.executable, "-c", _HUGE_SAMPLE], capture_output=True, text=True, timeout=300)
    if "skip: " in done.stderr:
        pytest.skip(done.stderr.split("skip: ", 1)[1][:200])
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), \
        f"exit {done.returncode}: {done.stdout[-2000:]} {done.stderr[-2000:]}"


@pytest.mark.parametrize("case", POWER_CASES, ids=power_id)
def test_power_matches_reference(case):
    power, scale, shift = case
    x, dy = power_arrays((5, 7), "float32")
    kwargs = dict(power=power, scale=scale, shift=shift)
    want = call_op(CPU, "power_forward", x=x, y=np.empty_like(x), **kwargs)["y"]
    got = call_op(TRITON, "power_forward", x=x, y=np.empty_like(x), **kwargs)["y"]
    assert_close_nan(got, want, "float32", what=f"{power_id(case)} y")
    want = call_op(CPU, "power_backward", x=x, dy=dy, dx=np.empty_like(x), **kwargs)["dx"]
    got = call_op(TRITON, "power_backward", x=x, dy=dy, dx=np.empty_like(x), **kwargs)["dx"]
    assert_close_nan(got, want, "float32", what=f"{power_id(case)} dx")


def test_power_special_values_and_in_place():
    """Zero and negative bases, infinities, and y is x / dx is dy."""
    t = TRITON.to_backend
    x = np.array([0.0, 1.0, -2.0, 3.0, -0.5, 0.0, np.inf, 4.0], np.float32)
    for power in (3.0, -1.0, 0.5, 2.0, 0.0, -2.0):
        want = np.empty_like(x)
        CPU.module("normalization").power_forward(x, want, power, 1.0, 0.0)
        inplace = t(x)
        normalization.power_forward(inplace, inplace, power, 1.0, 0.0)
        assert_close_nan(TRITON.to_numpy(inplace), want, "float32", what=f"power {power}")
    dy = np.linspace(-1.0, 1.0, x.size, dtype=np.float32)
    finite = x[np.isfinite(x)]
    for power in (3.0, 1.0, 2.5):
        want = np.empty_like(finite)
        CPU.module("normalization").power_backward(finite, dy[:finite.size], want, power, -0.5, 1.0)
        grad = t(dy[:finite.size])
        normalization.power_backward(t(finite), grad, grad, power, -0.5, 1.0)
        assert_close_nan(TRITON.to_numpy(grad), want, "float32", what=f"power {power} dx")
    grad = t(dy)
    normalization.power_backward(t(x), grad, grad, 0.5, 0.0, 0.0)  # a constant output: exactly 0
    np.testing.assert_array_equal(TRITON.to_numpy(grad), 0.0)


def test_power_large_and_empty():
    x, dy = power_arrays((3, 5000), "float32", seed=4)  # several streaming programs
    kwargs = dict(power=0.75, scale=0.5, shift=2.5)
    assert_close_nan(call_op(TRITON, "power_forward", x=x, y=np.empty_like(x), **kwargs)["y"],
                     call_op(CPU, "power_forward", x=x, y=np.empty_like(x), **kwargs)["y"], "float32")
    empty = np.zeros((0, 4), np.float32)
    assert call_op(TRITON, "power_backward", x=empty, dy=empty, dx=empty, **kwargs)["dx"].shape == (0, 4)


def _correctly_rounded_power(b: np.ndarray, power: float) -> np.ndarray:
    """b ** power rounded once to float32 (NumPy's float64 power, whose error is far below float32's
    rounding), the exponent rounded to float32 first as the float32 reference does."""
    return np.power(b.astype(np.float64), float(np.float32(power))).astype(np.float32)


def _triton_power(x: np.ndarray, dy: np.ndarray, power: float, scale: float = 1.0,
                  shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    kwargs = dict(power=power, scale=scale, shift=shift)
    y = call_op(TRITON, "power_forward", x=x, y=np.empty_like(x), **kwargs)["y"]
    return y, call_op(TRITON, "power_backward", x=x, dy=dy, dx=np.empty_like(x), **kwargs)["dx"]


def _cpu_power(x: np.ndarray, dy: np.ndarray, power: float, scale: float = 1.0,
               shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    kwargs = dict(power=power, scale=scale, shift=shift)
    y = call_op(CPU, "power_forward", x=x, y=np.empty_like(x), **kwargs)["y"]
    return y, call_op(CPU, "power_backward", x=x, dy=dy, dx=np.empty_like(x), **kwargs)["dx"]


@pytest.mark.parametrize("power", [3.0, 4.0, -1.0, -2.0, 7.0, 5.0, -3.0])
def test_integer_powers_are_correctly_rounded(power):
    """Integer powers multiply exactly (no exp2/log2): y is bit for bit the correctly rounded
    float32 of b ** p, hence within 1 ulp of NumPy's float32 power (which is itself up to 1 ulp off);
    dx is bit for bit the reference's two float32 products dy * (p * scale * b ** (p - 1)) taken from
    the correctly rounded power, so within 3 ulps of the reference (its 1 ulp in the power may grow by
    one ulp in each product). Bases span 2**-21 .. 2**19 of both signs, so results include subnormals
    and overflows."""
    rng = np.random.default_rng(int(power) + 100)
    x = (rng.choice([-1.0, 1.0], 3000) * np.exp2(rng.uniform(-21.0, 19.0, 3000))).astype(np.float32)
    dy = rng.standard_normal(3000).astype(np.float32)
    y, dx = _triton_power(x, dy, power)
    want_y, want_dx = _cpu_power(x, dy, power)
    assert ulp_distance(y, _correctly_rounded_power(x, power)).max() == 0
    assert ulp_distance(y, want_y).max() <= 1
    slope = np.float32(power) * _correctly_rounded_power(x, power - 1)
    assert ulp_distance(dx, dy * slope).max() == 0
    assert ulp_distance(dx, want_dx).max() <= 3


@pytest.mark.parametrize("power", [2.0**24, 2.0**24 + 1, 2.0**31 - 1, -(2.0**31 - 1), 3e9, -1e30, 101.0])
def test_huge_integer_powers(power):
    """Exponents up to float32's largest: the float32 exponent decides (2**24 + 1 rounds to the even
    2**24); bases next to +-1 keep finite results up to |p| ~ 2**30; beyond every other base gives 0 or
    inf. Within 1 ulp of the correctly rounded power (2 for the slope's extra products)."""
    one = np.float32(1.0)
    x = np.array([1.0, -1.0, one + 2.0**-23, one - 2.0**-24, -(one + 2.0**-23), one + 5 * 2.0**-23,
                  one - 3 * 2.0**-24, -(one - 2.0**-24), 0.5, 2.0, -3.0, 0.0, np.inf, -np.inf, np.nan], np.float32)
    dy = np.ones_like(x)
    y, dx = _triton_power(x, dy, power)
    assert ulp_distance(y, _correctly_rounded_power(x, power)).max() <= 1, (y, _correctly_rounded_power(x, power))
    slope = np.float32(power) * _correctly_rounded_power(x, power - 1)
    assert ulp_distance(dx, slope).max() <= 2, (dx, slope)


# NaN, infinities, zeros, +-1, the extremes of float32; dy holds NaN and infinities at other places.
SPECIAL_X = np.array([np.nan, np.inf, -np.inf, 0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3e38, -1e-38, 1e-45,
                      1.5, -0.75], np.float32)
SPECIAL_DY = np.array([1.0, 1.0, -1.0, 2.0, np.inf, 1.0, np.nan, -1.0, 1.0, -np.inf, 1.0, 1.0, 1.0,
                       np.nan, np.inf], np.float32)


@pytest.mark.parametrize("case", POWER_CASES + [(3.0, 1.0, 0.0), (-3.0, 1.0, 0.0), (7.0, -1.0, 0.5),
                                                (0.5, 1.0, 0.0), (-1.0, 0.5, -0.25)], ids=power_id)
def test_power_nonfinite_values_match_reference(case):
    """NaN and inf in x and dy: NaN and inf (with their signs) where the reference has them, the
    finite values close."""
    y, dx = _triton_power(SPECIAL_X, SPECIAL_DY, *case)
    want_y, want_dx = _cpu_power(SPECIAL_X, SPECIAL_DY, *case)
    assert_close_nan(y, want_y, "float32", what=f"{power_id(case)} y")
    assert_close_nan(dx, want_dx, "float32", what=f"{power_id(case)} dx")


# --- errors: the same as the reference ---------------------------------------------------------------


def _messages(call) -> tuple[type, str]:
    """The error type and message of ``call(module, convert)``, the same on cpu_ref and on Triton."""
    from mocha_triton.cpu_ref import normalization as reference

    seen = []
    for module, convert in ((reference, CPU.to_backend), (normalization, TRITON.to_backend)):
        with pytest.raises((TypeError, ValueError)) as info:
            call(module, convert)
        seen.append((info.type, str(info.value)))
    assert seen[0] == seen[1], seen
    return seen[1]


F32 = np.float32
X4 = np.zeros((1, 3, 2, 2), F32)


@pytest.mark.parametrize("call, match", [
    (lambda m, t: m.lrn_forward(t(X4[0]), t(X4[0]), t(X4[0]), 3, 1.0, 0.75, 1.0), "lrn_forward: x must be 4-D"),
    (lambda m, t: m.lrn_forward(t(X4), t(X4), t(X4), 3, 1.0, 0.75, -1.0), "lrn_forward: k must be > 0"),
    (lambda m, t: m.lrn_forward(t(X4), t(X4), t(X4), 3, 1.0, 0.75, 1.0, "rows"), "lrn_forward: region must be"),
    (lambda m, t: m.lrn_forward(t(X4), t(np.zeros((1, 3, 2, 3), F32)), t(X4), 3, 1.0, 0.75, 1.0),
     "lrn_forward: arguments must have the same shape"),
    (lambda m, t: (lambda a: m.lrn_forward(a, t(X4), a, 3, 1.0, 0.75, 1.0))(t(X4)),
     "lrn_forward: scale must not share memory with x"),
    (lambda m, t: m.lrn_backward(t(X4), t(X4), t(X4), t(X4), t(X4), -3, 1.0, 0.75),
     "lrn_backward: size must be a positive int"),
    (lambda m, t: (lambda a: m.lrn_backward(t(X4), t(X4), a, t(X4), a, 3, 1.0, 0.75))(t(X4)),
     "lrn_backward: dx must not share memory with scale"),
    (lambda m, t: (lambda b: m.lrn_backward(t(X4), t(X4), t(X4), b[:12].reshape(X4.shape), b[4:].reshape(X4.shape),
                                            3, 1.0, 0.75))(t(np.zeros(16, F32))),
     "lrn_backward: dx must not share memory with dy"),  # overlapping, not starting at the same element
    (lambda m, t: m.power_forward(t(X4), t(np.zeros(4, F32)), 2.0, 1.0, 0.0),
     "power_forward: arguments must have the same shape"),
    (lambda m, t: m.power_backward(t(X4), t(X4), t(X4), 2.0, float("nan"), 0.0),
     "power_backward: scale must be finite"),
])
def test_rejects_bad_inputs_like_the_reference(call, match):
    _, message = _messages(call)
    assert re.search(match, message), message


def test_rejects_float64_and_non_tensors():
    t = TRITON.to_backend
    x64 = np.zeros((1, 2, 2, 2))
    with pytest.raises(TypeError, match=r"lrn_forward: x has dtype float64; expected one of \('float32',\)"):
        normalization.lrn_forward(t(x64), t(x64), t(x64), 3, 1.0, 0.75, 1.0)
    with pytest.raises(TypeError, match=r"power_backward: x has dtype float64"):
        normalization.power_backward(t(x64), t(x64), t(x64), 2.0, 1.0, 0.0)
    with pytest.raises(TypeError, match=r"lrn_backward: x must be a torch.Tensor"):
        x = x64.astype(F32)
        normalization.lrn_backward(x, t(x), t(x), t(x), t(x), 3, 1.0, 0.75)
    with pytest.raises(ValueError, match=r"power_forward: y must be contiguous"):
        normalization.power_forward(t(np.zeros((2, 2), F32)), t(np.zeros((2, 4), F32))[:, ::2], 2.0, 1.0, 0.0)
