"""kernels.pooling's channel pooling equals cpu_ref.pooling's (float32): max and argmax exactly, mean and
both gradients within the tolerance; ties and non-finite values; determinism; rejections with the
shared messages."""

import contextlib

import numpy as np
import pytest

from cases_channel_pooling import ChannelCase, channel_arrays, channel_cases, random_cases, run_all
from mocha_triton.kernels import pooling
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts

CASES = channel_cases("tiny") + random_cases(seed=5, count=6)


@contextlib.contextmanager
def small_tiles():
    """Tiles of 64 elements: several tiles per row and per block of rows, partial ones at the ends."""
    old = pooling.CHANNEL_TILE
    pooling.CHANNEL_TILE = 64
    try:
        yield
    finally:
        pooling.CHANNEL_TILE = old


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_reference(case):
    x, dy = channel_arrays(case, "float32")
    want = run_all(CPU, case, x, dy)
    contexts = triton_config_contexts(pooling) + ([("small tiles", small_tiles())] if case.m * case.s < 1000 else [])
    for label, context in contexts:
        with context:
            got = run_all(TRITON, case, x, dy)
        what = f"{case.id} [{label}]"
        assert np.array_equal(got["argmax"], want["argmax"]), f"{what}: argmax differs"
        assert np.array_equal(got["max"], want["max"]), f"{what}: max differs"
        assert_close(got["max_dx"], want["max_dx"], "float32", case.overlap, what=f"{what} max_dx")
        assert_close(got["mean"], want["mean"], "float32", case.kernel, what=f"{what} mean")
        assert_close(got["mean_dx"], want["mean_dx"], "float32", case.overlap, what=f"{what} mean_dx")


@pytest.mark.parametrize("case", channel_cases("tiny")[:4], ids=lambda c: c.id)
def test_ties_and_non_finite_values(case):
    x, dy = channel_arrays(case, "float32", ties=True)
    flat = x.reshape(-1)
    flat[::5] = -np.inf
    flat[::7] = np.nan
    want, got = run_all(CPU, case, x, dy), run_all(TRITON, case, x, dy)
    assert np.array_equal(got["argmax"], want["argmax"])
    assert np.array_equal(got["max"], want["max"])
    assert_close(got["max_dx"], want["max_dx"], "float32", case.overlap)


def test_backward_is_deterministic():
    case = ChannelCase(3, 9, 7, 5, 1, (2, 2))
    x, dy = channel_arrays(case, "float32")
    first, second = run_all(TRITON, case, x, dy), run_all(TRITON, case, x, dy)
    for name in ("max_dx", "mean_dx"):
        assert first[name].tobytes() == second[name].tobytes(), name


def test_empty_outer_axis():
    x = np.zeros((0, 5, 3), np.float32)
    got = call_op(TRITON, "mean_channel_pool_forward", x=x, y=np.empty((0, 3, 3), np.float32), kernel=3, stride=2,
                  pad=(1, 1))["y"]
    assert got.shape == (0, 3, 3)


def _both_raise(op: str, exc: type, **kwargs) -> str:
    messages = []
    for impl in (CPU, TRITON):
        with pytest.raises(exc) as info:
            call_op(impl, op, **kwargs)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    return messages[0]


def test_rejects_bad_inputs_with_the_shared_messages():
    x = np.zeros((2, 5, 3), np.float32)
    y, argmax = np.empty((2, 5, 3), np.float32), np.empty((2, 5, 3), np.int32)
    message = _both_raise("max_channel_pool_forward", ValueError, x=x, y=y, argmax=argmax, kernel=3, stride=1,
                          pad=(3, 0))
    assert message == "max_channel_pool_forward: pad (3, 0) must be >= 0 and smaller than kernel 3 at both ends"
    _both_raise("mean_channel_pool_forward", ValueError, x=x, y=y, kernel=3, stride=2, pad=(1, 1))
    _both_raise("max_channel_pool_backward", ValueError, dy=y, argmax=argmax, dx=np.empty((2, 6, 3), np.float32),
                kernel=1, stride=1, pad=(0, 0))
    _both_raise("mean_channel_pool_backward", ValueError, dy=y, dx=x, kernel=6, stride=1, pad=(0, 0))


def test_rejects_float64_and_non_tensors():
    t = TRITON.to_backend
    x64 = t(np.zeros((2, 5, 3)))
    with pytest.raises(TypeError, match=r"mean_channel_pool_forward: x has dtype float64; expected one of "
                                        r"\('float32',\)"):
        pooling.mean_channel_pool_forward(x64, x64, 1, 1, (0, 0))
    x32 = t(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(TypeError, match=r"max_channel_pool_forward: argmax must be a torch.Tensor"):
        pooling.max_channel_pool_forward(x32, x32, np.zeros((2, 5, 3), np.int32), 1, 1, (0, 0))
