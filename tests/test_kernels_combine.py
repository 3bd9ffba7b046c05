"""kernels.combine equals cpu_ref.combine (float32).

* copy_block on the named and random blocks of cases_combine, bit for bit (a copy is exact), the rest
  of y untouched; once more with tiles shrunk to 16 elements, so that rows and columns span several
  programs and the last ones are partial; the host's block plan (merging, size-1 axes, mirror kept
  apart) and the > 4-axes host loop.
* eltwise_forward / eltwise_backward for every operation and coefficient pair; in place (y = a or b,
  da or db = dy); a skipped gradient is never written.
* float64 and bad shapes are rejected with the shared messages.
Every test iterates support.triton_config_contexts (one context in the interpreter).
"""

import numpy as np
import pytest

from cases_combine import BLOCK_CASES, COEFFICIENTS, ELTWISE_SHAPES, eltwise_arrays, random_block_cases
from mocha_triton.checks.combine import ELTWISE_OPERATIONS
from mocha_triton.kernels import combine as kernels
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts

CONTEXTS = triton_config_contexts(kernels)


def copy_both(case, seed):
    x, y = case.arrays("float32", seed)
    kwargs = dict(x=x, y=y, x_start=case.x_start, y_start=case.y_start, size=case.size, mirror=case.mirror)
    return call_op(TRITON, "copy_block", **kwargs)["y"], call_op(CPU, "copy_block", **kwargs)["y"]


@pytest.mark.parametrize("label, context", CONTEXTS)
def test_copy_block_matches_reference(label, context):
    with context:
        for name, case in BLOCK_CASES.items():
            got, want = copy_both(case, seed=len(name))
            assert np.array_equal(got, want), name
        for k, case in enumerate(random_block_cases(seed=8, count=12)):
            got, want = copy_both(case, seed=k)
            assert np.array_equal(got, want), case


@pytest.mark.parametrize("label, context", CONTEXTS)
def test_copy_block_small_tiles(label, context, monkeypatch):
    """16-element tiles: several row and column blocks per launch, the last ones partial."""
    monkeypatch.setattr(kernels, "TILE_ELEMENTS", 32)
    monkeypatch.setattr(kernels, "MAX_BLOCK_C", 16)
    assert kernels.copy_tiles(columns=40, rows=7) == (2, 16)
    with context:
        for name in ("concat-forward", "crop-forward-mirror", "crop-backward-mirror", "six-axes", "both-offsets"):
            got, want = copy_both(BLOCK_CASES[name], seed=1)
            assert np.array_equal(got, want), name


def test_block_plan():
    # concat along channels of NCHW: (N, C_i * H * W) rows in x, strides of the wider y
    assert kernels.block_plan((2, 3, 4, 5), (2, 7, 4, 5), (0, 0, 0, 0), (0, 2, 0, 0), (2, 3, 4, 5), False) == (
        0, 40, [[2, 60, 140], [60, 1, 1]], False)
    # a spatial crop: planes merge, the window's rows and columns stay; mirror keeps the last axis apart
    assert kernels.block_plan((2, 3, 7, 6), (2, 3, 4, 3), (0, 0, 2, 1), (0, 0, 0, 0), (2, 3, 4, 3), True) == (
        13, 0, [[6, 42, 12], [4, 6, 3], [3, 1, 1]], True)
    # a whole copy is one axis unless mirrored; a size-1 last axis cannot be mirrored
    assert kernels.block_plan((2, 3), (2, 3), (0, 0), (0, 0), (2, 3), False) == (0, 0, [[6, 1, 1]], False)
    assert kernels.block_plan((2, 3), (2, 3), (0, 0), (0, 0), (2, 3), True) == (0, 0, [[2, 3, 3], [3, 1, 1]], True)
    assert kernels.block_plan((2, 3), (2, 4), (1, 2), (0, 3), (1, 1), True) == (5, 3, [[1, 0, 0]], False)
    assert kernels.block_plan((2, 3), (2, 3), (0, 0), (0, 0), (2, 0), False) is None
    # six partial axes stay six: the launcher loops over the outer two
    plan = kernels.block_plan(*(getattr(BLOCK_CASES["six-axes"], f) for f in
                                ("x_shape", "y_shape", "x_start", "y_start", "size", "mirror")))
    assert len(plan[2]) == 6


@pytest.mark.parametrize("label, context", CONTEXTS)
@pytest.mark.parametrize("operation", ELTWISE_OPERATIONS)
def test_eltwise_matches_reference(label, context, operation):
    with context:
        for k, shape in enumerate(ELTWISE_SHAPES + [(5000,)]):
            alpha, beta = COEFFICIENTS[k % len(COEFFICIENTS)]
            a, b, dy = eltwise_arrays(operation, shape, "float32", seed=k, alpha=alpha, beta=beta)
            fwd = dict(a=a, b=b, y=np.empty_like(a), operation=operation, alpha=alpha, beta=beta)
            assert_close(call_op(TRITON, "eltwise_forward", **fwd)["y"], call_op(CPU, "eltwise_forward", **fwd)["y"],
                         "float32", what=f"{operation} y {shape}")
            bwd = dict(a=a, b=b, dy=dy, da=np.empty_like(a), db=np.empty_like(a), operation=operation, alpha=alpha,
                       beta=beta)
            got, want = call_op(TRITON, "eltwise_backward", **bwd), call_op(CPU, "eltwise_backward", **bwd)
            for name in ("da", "db"):
                assert_close(got[name], want[name], "float32", what=f"{operation} {name} {shape}")


@pytest.mark.parametrize("label, context", CONTEXTS)
@pytest.mark.parametrize("operation", ELTWISE_OPERATIONS)
def test_eltwise_in_place_and_skipped(label, context, operation):
    a, b, dy = eltwise_arrays(operation, (3, 7), "float32", seed=4)
    y_want = np.empty_like(a)
    CPU.module("combine").eltwise_forward(a, b, y_want, operation, 0.5, 2.0)
    da_want, db_want = np.empty_like(a), np.empty_like(a)
    CPU.module("combine").eltwise_backward(a, b, dy, da_want, db_want, operation, 0.5, 2.0)
    with context:
        ta, tb = TRITON.to_backend(a), TRITON.to_backend(b)
        kernels.eltwise_forward(ta, tb, ta, operation, 0.5, 2.0)
        assert_close(TRITON.to_numpy(ta), y_want, "float32", what="y is a")
        ta, tb = TRITON.to_backend(a), TRITON.to_backend(b)
        kernels.eltwise_forward(ta, tb, tb, operation, 0.5, 2.0)
        assert_close(TRITON.to_numpy(tb), y_want, "float32", what="y is b")
        ta, tb, tdy = TRITON.to_backend(a), TRITON.to_backend(b), TRITON.to_backend(dy)
        sentinel = TRITON.to_backend(np.full_like(a, 7.0))
        kernels.eltwise_backward(ta, tb, tdy, None, tdy, operation, 0.5, 2.0)  # db in place, da skipped
        assert_close(TRITON.to_numpy(tdy), db_want, "float32", what="db is dy")
        tdy = TRITON.to_backend(dy)
        kernels.eltwise_backward(ta, tb, tdy, tdy, sentinel, operation, 0.5, 2.0)
        assert_close(TRITON.to_numpy(tdy), da_want, "float32", what="da is dy")
        assert_close(TRITON.to_numpy(sentinel), db_want, "float32", what="db beside da in place")


def test_rejects_float64_and_bad_shapes():
    x64 = TRITON.to_backend(np.zeros((2, 3)))
    x32 = TRITON.to_backend(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match=r"copy_block: x has dtype float64; expected one of \('float32',\)"):
        kernels.copy_block(x64, x32, (0, 0), (0, 0), (2, 3))
    with pytest.raises(ValueError, match=r"copy_block: the block at y_start \(1, 0\) of size \(2, 3\) does not fit"):
        kernels.copy_block(x32, TRITON.to_backend(np.zeros((2, 3), np.float32)), (0, 0), (1, 0), (2, 3))
    with pytest.raises(TypeError, match=r"eltwise_forward: a has dtype float64"):
        kernels.eltwise_forward(x64, x32, x32, "add")
    with pytest.raises(ValueError, match=r"eltwise_backward: arguments must have the same shape"):
        kernels.eltwise_backward(x32, x32, x32, TRITON.to_backend(np.zeros(6, np.float32)), None, "max")
    with pytest.raises(ValueError, match=r"eltwise_forward: operation must be one of"):
        kernels.eltwise_forward(x32, x32, x32, "pow")
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        kernels.copy_block(np.zeros((2, 3), np.float32), x32, (0, 0), (0, 0), (2, 3))
