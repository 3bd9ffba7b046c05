"""kernels.normalization equals cpu_ref.normalization (float32): LRN both regions, power every kind.

On a GPU with MOCHA_TRITON_ALL_CONFIGS=1 every autotune config of the LRN kernels runs; in the
interpreter the cases include an image wider than one across-channel program and more planes and
pixels than one within-channel program.
"""

import re

import numpy as np
import pytest

from cases_normalization import (
    POWER_CASES,
    LRNCase,
    assert_close_nan,
    lrn_arrays,
    lrn_cases,
    power_arrays,
    power_id,
    random_lrn_cases,
    run_lrn,
)
from mocha_triton.kernels import normalization
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts

# log2 of a negative base (the NaN of non-integer powers) warns inside Triton's interpreter
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning",
                                        "ignore:divide by zero encountered:RuntimeWarning")

CASES = lrn_cases("tiny") + random_lrn_cases(seed=3, count=6, max_size=5)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_lrn_matches_reference(case):
    x, dy = lrn_arrays(case, "float32")
    want = run_lrn(CPU, case, x, dy)
    for label, context in triton_config_contexts(normalization):
        with context:
            got = run_lrn(TRITON, case, x, dy)
        what = f"{case.id} [{label}]"
        # the sliding window adds and subtracts each of the C channels once
        slide = case.c if case.region == "across_channels" else case.window
        assert_close(got["scale"], want["scale"], "float32", slide, what=f"{what} scale")
        assert_close(got["y"], want["y"], "float32", slide, what=f"{what} y")
        assert_close(got["dx"], want["dx"], "float32", slide * case.window, what=f"{what} dx")


def test_lrn_sliding_window_does_not_drift():
    """A huge term entering and leaving the sliding window (x in channel 2 forward, dy in channel 6
    backward) leaves no error on the channels after it: the sliding sums are fp64. In fp32 the scale
    of every later channel would be off by about ulp(3000**2) = 0.5."""
    case = LRNCase(1, 12, 2, 2, 3, alpha=1.0, beta=0.75, k=1.0)
    x, dy = lrn_arrays(case, "float32")
    x[:, 2] = 3000.0
    dy[:, 6] = 1e6
    want, got = run_lrn(CPU, case, x, dy), run_lrn(TRITON, case, x, dy)
    np.testing.assert_allclose(got["scale"][:, 4:], want["scale"][:, 4:], rtol=1e-6)
    np.testing.assert_allclose(got["dx"][:, 8:], want["dx"][:, 8:], rtol=1e-5, atol=1e-5)
    assert_close(got["y"], want["y"], "float32", case.c)
    assert_close(got["dx"], want["dx"], "float32", case.c * case.window)


def test_lrn_empty_batch():
    case = LRNCase(0, 3, 2, 2, 3)
    x, dy = lrn_arrays(case, "float32")
    assert all(a.size == 0 for a in run_lrn(TRITON, case, x, dy).values())


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
