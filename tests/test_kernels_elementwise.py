"""kernels.elementwise equals cpu_ref.elementwise (precision "ieee")."""

import numpy as np
import pytest

from support import CPU, TRITON, assert_close, call_op

SHAPES = [(1,), (7,), (3, 5), (2, 3, 4, 5), (5000,), (0, 3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_reference(shape):
    rng = np.random.default_rng(sum(shape) + len(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.standard_normal(shape).astype(np.float32)
    cases = [
        ("fill", dict(y=y, value=3.25), 1),
        ("copy", dict(x=x, y=y), 1),
        ("axpy", dict(alpha=-0.7, x=x, y=y), 1),
        ("scale", dict(y=y, alpha=0.5), 1),
        ("sum_of_squares", dict(x=x, out=np.empty(1, np.float32)), max(x.size, 1)),
    ]
    for op, kwargs, reduction in cases:
        want = call_op(CPU, op, **kwargs)
        got = call_op(TRITON, op, **kwargs)
        for name in want:
            assert_close(got[name], want[name], "float32", reduction, what=f"{op}.{name}")


@pytest.mark.parametrize("shape", [(2, 3), (3, 4, 5, 6), (1, 1, 7)])
def test_bias_add_matches_reference(shape):
    rng = np.random.default_rng(3)
    y = rng.standard_normal(shape).astype(np.float32)
    b = rng.standard_normal(shape[1]).astype(np.float32)
    assert_close(call_op(TRITON, "bias_add", y=y, b=b)["y"], call_op(CPU, "bias_add", y=y, b=b)["y"], "float32")


def test_copy_is_exact_and_sum_is_deterministic():
    rng = np.random.default_rng(11)
    x = rng.standard_normal(10_000).astype(np.float32)
    got = call_op(TRITON, "copy", x=x, y=np.empty_like(x))["y"]
    assert np.array_equal(got, x)
    a = call_op(TRITON, "sum_of_squares", x=x, out=np.empty(1, np.float32))["out"]
    b = call_op(TRITON, "sum_of_squares", x=x, out=np.empty(1, np.float32))["out"]
    assert a.tobytes() == b.tobytes()


def test_rejects_float64_and_bad_shapes():
    from mocha_triton.kernels import elementwise as ew

    t64 = TRITON.to_backend(np.zeros(3))
    with pytest.raises(TypeError, match=r"fill: y has dtype float64; expected one of \('float32',\)"):
        ew.fill(t64, 1.0)
    with pytest.raises(ValueError, match="copy: arguments must have the same shape"):
        ew.copy(TRITON.to_backend(np.zeros(3, np.float32)), TRITON.to_backend(np.zeros(4, np.float32)))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        ew.scale(np.zeros(3, np.float32), 2.0)
