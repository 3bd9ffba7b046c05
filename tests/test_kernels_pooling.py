"""kernels.pooling equals cpu_ref.pooling (float32); argmax exactly.

In the interpreter every case runs twice: with the tiles each launch fits to its shape (one tile per
plane, many planes per program) and with the small fixed INTERPRETER_CONFIG (several tiles per plane,
a partial last block of planes). On a GPU with MOCHA_TRITON_ALL_CONFIGS=1, every autotune config.
"""

import contextlib
import re

import numpy as np
import pytest

from cases_pooling import PoolCase, pool_arrays, pool_cases, random_cases, run_all
from mocha_triton.kernels import pooling
from mocha_triton.kernels._runtime import INTERPRET
from support import CPU, TRITON, assert_close, triton_config_contexts

CASES = pool_cases("tiny") + random_cases(seed=3, count=6, max_size=9)


@contextlib.contextmanager
def fixed_interpreter_tiles():
    old = pooling.FIT_INTERPRETER_TILES
    pooling.FIT_INTERPRETER_TILES = False
    try:
        yield
    finally:
        pooling.FIT_INTERPRETER_TILES = old


def configs() -> list:
    """Fresh (label, context) pairs (a context manager from contextlib runs once)."""
    fixed = [("fixed interpreter tiles", fixed_interpreter_tiles())] if INTERPRET else []
    return triton_config_contexts(pooling) + fixed


def compare(got: dict, want: dict, case: PoolCase, label: str) -> None:
    what = f"{case.id} [{label}]"
    assert np.array_equal(got["argmax"], want["argmax"]), f"{what}: argmax differs"
    assert np.array_equal(got["max"], want["max"]), f"{what}: max differs"  # a max picks, it does not round
    assert_close(got["max_dx"], want["max_dx"], "float32", case.overlap, what=f"{what} max_dx")
    assert_close(got["mean"], want["mean"], "float32", case.window, what=f"{what} mean")
    assert_close(got["mean_dx"], want["mean_dx"], "float32", case.overlap, what=f"{what} mean_dx")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_reference(case):
    x, dy = pool_arrays(case, "float32")
    want = run_all(CPU, case, x, dy)
    for label, context in configs():
        with context:
            compare(run_all(TRITON, case, x, dy), want, case, label)


@pytest.mark.parametrize("case", pool_cases("tiny")[:4], ids=lambda c: c.id)
def test_ties_and_non_finite_values(case):
    """Ties, -inf and NaN: the same first strict maximum as the reference (NaN skipped)."""
    x, dy = pool_arrays(case, "float32", ties=True)
    flat = x.reshape(-1)
    flat[::5] = -np.inf
    flat[::7] = np.nan
    want = run_all(CPU, case, x, dy)
    for label, context in configs():
        with context:
            got = run_all(TRITON, case, x, dy)
            assert np.array_equal(got["argmax"], want["argmax"]), label
            assert np.array_equal(got["max"], want["max"]), label
            assert_close(got["max_dx"], want["max_dx"], "float32", case.overlap, what=label)


def test_backward_is_deterministic():
    case = PoolCase(2, 3, 9, 9, (3, 3), (1, 1), (1, 1))
    x, dy = pool_arrays(case, "float32")
    first, second = run_all(TRITON, case, x, dy), run_all(TRITON, case, x, dy)
    for name in ("max_dx", "mean_dx"):
        assert first[name].tobytes() == second[name].tobytes(), name


def test_empty_batch():
    case = PoolCase(0, 2, 4, 4, (2, 2), (2, 2))
    x, dy = pool_arrays(case, "float32")
    assert all(a.size == 0 for a in run_all(TRITON, case, x, dy).values())


def _messages(call) -> tuple[type, str]:
    """The error type and message of ``call(module, convert)``, the same on cpu_ref and on Triton."""
    from mocha_triton.cpu_ref import pooling as reference

    seen = []
    for module, convert in ((reference, CPU.to_backend), (pooling, TRITON.to_backend)):
        with pytest.raises((TypeError, ValueError)) as info:
            call(module, convert)
        seen.append((info.type, str(info.value)))
    assert seen[0] == seen[1], seen
    return seen[1]


F32, I32 = np.float32, np.int32


@pytest.mark.parametrize("call, match", [
    (lambda m, t: m.max_pool2d_forward(t(np.zeros((1, 2, 5, 5), F32)), t(np.zeros((1, 2, 3, 3), F32)),
                                       t(np.zeros((1, 2, 3, 3), np.int64)), 2, 2, 0),
     "max_pool2d_forward: argmax has dtype int64; expected int32"),
    (lambda m, t: m.max_pool2d_forward(t(np.zeros((1, 2, 5, 5), F32)), t(np.zeros((1, 2, 2, 2), F32)),
                                       t(np.zeros((1, 2, 2, 2), I32)), 2, 2, 0),
     r"max_pool2d_forward: y has shape \(1, 2, 2, 2\), expected \(1, 2, 3, 3\)"),
    (lambda m, t: m.max_pool2d_backward(t(np.zeros((1, 2, 3, 3), F32)), t(np.zeros((1, 2, 3, 3), I32)),
                                        t(np.zeros((1, 2, 5, 5), F32)), 2, 2, 2),
     r"max_pool2d_backward: pad \(2, 2\) must be smaller than kernel \(2, 2\)"),
    (lambda m, t: m.mean_pool2d_forward(t(np.zeros((1, 2, 5), F32)), t(np.zeros((1, 2, 3, 3), F32)), 2, 2, 0),
     "mean_pool2d_forward: x must be 4-D"),
    (lambda m, t: m.mean_pool2d_backward(t(np.zeros((1, 2, 2, 2), F32)), t(np.zeros((1, 2, 5, 5), F32)), 2, 2, 0),
     r"mean_pool2d_backward: dy has shape \(1, 2, 2, 2\), expected \(1, 2, 3, 3\)"),
])
def test_rejects_bad_inputs_like_the_reference(call, match):
    _, message = _messages(call)
    assert re.search(match, message), message


def test_rejects_float64_and_non_tensors():
    t = TRITON.to_backend
    with pytest.raises(TypeError, match=r"max_pool2d_forward: x has dtype float64; expected one of \('float32',\)"):
        pooling.max_pool2d_forward(t(np.zeros((1, 1, 4, 4))), t(np.zeros((1, 1, 2, 2))),
                                   t(np.zeros((1, 1, 2, 2), I32)), 2, 2, 0)
    with pytest.raises(TypeError, match=r"mean_pool2d_backward: dy has dtype float64"):
        pooling.mean_pool2d_backward(t(np.zeros((1, 1, 2, 2))), t(np.zeros((1, 1, 4, 4))), 2, 2, 0)
    with pytest.raises(TypeError, match=r"mean_pool2d_forward: x must be a torch.Tensor"):
        pooling.mean_pool2d_forward(np.zeros((1, 1, 4, 4), F32), t(np.zeros((1, 1, 2, 2), F32)), 2, 2, 0)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: dx must be contiguous"):
        dx = t(np.zeros((1, 1, 4, 8), F32))[..., ::2]
        pooling.max_pool2d_backward(t(np.zeros((1, 1, 2, 2), F32)), t(np.zeros((1, 1, 2, 2), I32)), dx, 2, 2, 0)
