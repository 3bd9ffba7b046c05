"""kernels.random draws exactly the numbers cpu_ref.random draws, and dropout matches it.

Uniform fills are bit-exact everywhere (integer Philox, one int -> float conversion, one multiply,
fills launched without FMA contraction). Normal fills are bit-exact in Triton's interpreter, which
evaluates log/sqrt/cos with the same NumPy float32 functions as the reference; on a GPU the device's
log/cos and approximate sqrt may differ in the last bits (measured on an H200: at most 7.2e-7, see
kernels/random.py), so there they are compared with the float32 tolerance.
"""

import numpy as np
import pytest
from test_cpu_ref_random import FILL_CASES, UNIT_FILLS

from mocha_triton.kernels import random
from mocha_triton.kernels._runtime import INTERPRET
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts

F32 = np.float32


def assert_normal_equal(got, want, what=""):
    if INTERPRET:
        assert np.array_equal(got, want), f"{what}: max difference {np.max(np.abs(got - want), initial=0.0)}"
    else:
        assert_close(got, want, "float32", what=what)


@pytest.mark.parametrize("shape,seed,offset", FILL_CASES)
def test_fills_match_reference(shape, seed, offset):
    y = np.empty(shape, F32)
    for _, context in triton_config_contexts(random):
        with context:
            kwargs = dict(y=y, low=-1.5, high=2.5, seed=seed, offset=offset)
            got, want = call_op(TRITON, "uniform_fill", **kwargs)["y"], call_op(CPU, "uniform_fill", **kwargs)["y"]
            assert np.array_equal(got, want), f"uniform_fill differs at {np.argwhere(got != want)[:5]}"
            kwargs = dict(y=y, mean=0.5, std=2.0, seed=seed, offset=offset)
            got, want = call_op(TRITON, "normal_fill", **kwargs)["y"], call_op(CPU, "normal_fill", **kwargs)["y"]
            assert_normal_equal(got, want, "normal_fill")


def test_raw_draws_match_reference():
    """low=0, high=1 and mean=0, std=1 expose tl.rand and tl.randn themselves."""
    n, seed = 20_000, 31337
    got = call_op(TRITON, "uniform_fill", y=np.empty(n, F32), low=0.0, high=1.0, seed=seed)["y"]
    assert np.array_equal(got, CPU.module("random").rand_float32(seed, 0, n))
    got = call_op(TRITON, "normal_fill", y=np.empty(n, F32), mean=0.0, std=1.0, seed=seed)["y"]
    assert_normal_equal(got, CPU.module("random").randn_float32(seed, 0, n), "randn")


@pytest.mark.parametrize("op,params", UNIT_FILLS)
def test_offset_shifts_the_stream_exactly(op, params):
    """On the device itself: a fill at offset k equals elements k.. of a larger fill (bit for bit)."""
    full = call_op(TRITON, op, y=np.empty(9000, F32), seed=5, **params)["y"]
    for k, shape in [(1, (7,)), (4095, (3, 700)), (5000, (4000,))]:
        part = call_op(TRITON, op, y=np.empty(shape, F32), seed=5, offset=k, **params)["y"]
        assert np.array_equal(part.reshape(-1), full[k:k + int(np.prod(shape))])
    other = call_op(TRITON, op, y=np.empty(9000, F32), seed=6, **params)["y"]
    assert np.mean(other == full) < 0.01


def test_dropout_matches_reference():
    rng = np.random.default_rng(8)
    for shape in [(1,), (2, 3, 4, 5), (5000,), (0, 4)]:
        x = rng.standard_normal(shape).astype(F32)
        rand = rng.random(shape).astype(F32)
        for _, context in triton_config_contexts(random):
            with context:
                for ratio, scale in [(0.5, 2.0), (0.25, 1.0), (0.9, 10.0)]:
                    for op, src, dst in (("dropout_forward", "x", "y"), ("dropout_backward", "dy", "dx")):
                        kwargs = {src: x, "rand": rand, dst: np.empty_like(x), "ratio": ratio, "scale": scale}
                        got, want = call_op(TRITON, op, **kwargs)[dst], call_op(CPU, op, **kwargs)[dst]
                        assert np.array_equal(got, want), f"{op} {shape} ratio={ratio}"


def test_dropout_in_place():
    x = np.array([1.0, np.inf, -2.0, np.nan, 4.0, 3.0], F32)
    rand = np.array([0.9, 0.1, 0.2, 0.3, 0.6, 0.5], F32)
    tx, trand = TRITON.to_backend(x), TRITON.to_backend(rand)
    random.dropout_forward(tx, trand, tx, 0.5, 2.0)  # y is x; rand == ratio drops
    assert np.array_equal(TRITON.to_numpy(tx), np.array([2.0, 0.0, 0.0, 0.0, 8.0, 0.0], F32))
    tdy = TRITON.to_backend(np.full(6, 3.0, F32))
    random.dropout_backward(tdy, trand, tdy, 0.5, 2.0)  # dx is dy
    assert np.array_equal(TRITON.to_numpy(tdy), np.array([6.0, 0.0, 0.0, 0.0, 6.0, 0.0], F32))


def test_drawn_mask_round_trip():
    """uniform_fill into a rand buffer, then dropout forward and backward with it, all on the device."""
    n = 10_000
    trand, tx, ty, tdx = (TRITON.to_backend(np.empty(n, F32)) for _ in range(4))
    random.uniform_fill(trand, 0.0, 1.0, seed=11)
    random.normal_fill(tx, 0.0, 1.0, seed=12)
    random.dropout_forward(tx, trand, ty, 0.4, 1 / 0.6)
    random.dropout_backward(TRITON.to_backend(np.ones(n, F32)), trand, tdx, 0.4, 1 / 0.6)
    y, dx, x = TRITON.to_numpy(ty), TRITON.to_numpy(tdx), TRITON.to_numpy(tx)
    kept = dx != 0
    assert abs(kept.mean() - 0.6) < 0.025
    assert np.array_equal(y[kept], x[kept] * F32(1 / 0.6)) and np.all(y[~kept] == 0)


def test_rejects_float64_and_bad_inputs():
    t64 = TRITON.to_backend(np.zeros(3))
    t32 = TRITON.to_backend(np.zeros(3, F32))
    with pytest.raises(TypeError, match=r"uniform_fill: y has dtype float64; expected one of \('float32',\)"):
        random.uniform_fill(t64, 0.0, 1.0, 1)
    with pytest.raises(TypeError, match=r"normal_fill: y has dtype float64"):
        random.normal_fill(t64, 0.0, 1.0, 1)
    with pytest.raises(ValueError, match=r"normal_fill: seed must be in \[0, 2\*\*63\)"):
        random.normal_fill(t32, 0.0, 1.0, -3)
    with pytest.raises(ValueError, match=r"uniform_fill: offset \+ y.size = .* exceeds the counter limit"):
        random.uniform_fill(t32, 0.0, 1.0, 1, 2**63 - 1)
    with pytest.raises(TypeError, match=r"dropout_forward: x has dtype float64"):
        random.dropout_forward(t64, t32, t32, 0.5, 2.0)
    with pytest.raises(ValueError, match=r"dropout_forward: ratio must be in \(0, 1\)"):
        random.dropout_forward(t32, t32, t32, 1.0, 2.0)
    with pytest.raises(ValueError, match=r"dropout_backward: arguments must have the same shape"):
        random.dropout_backward(t32, TRITON.to_backend(np.zeros(4, F32)), t32, 0.5, 2.0)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        random.uniform_fill(np.zeros(3, F32), 0.0, 1.0, 1)
