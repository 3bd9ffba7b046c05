"""cpu_ref.elementwise against torch float64."""

import numpy as np
import pytest
import torch

from support import CPU, assert_close, call_op

SHAPES = [(1,), (7,), (3, 5), (2, 3, 4, 5), (0, 3)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", SHAPES)
def test_elementwise_ops(dtype, shape):
    rng = np.random.default_rng(abs(hash((dtype, shape))) % 2**32)
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal(shape).astype(dtype)
    tx, ty = torch.from_numpy(x).double(), torch.from_numpy(y).double()

    assert_close(call_op(CPU, "fill", y=y, value=-2.5)["y"], np.full(shape, -2.5), dtype, what="fill")
    assert_close(call_op(CPU, "copy", x=x, y=y)["y"], x, dtype, what="copy")
    assert_close(call_op(CPU, "axpy", alpha=0.3, x=x, y=y)["y"], (ty + 0.3 * tx).numpy(), dtype, what="axpy")
    assert_close(call_op(CPU, "scale", y=y, alpha=-1.7)["y"], (ty * -1.7).numpy(), dtype, what="scale")
    out = call_op(CPU, "sum_of_squares", x=x, out=np.empty(1, dtype))["out"]
    assert_close(out, [float((tx * tx).sum())], dtype, reduction=max(x.size, 1), what="sum_of_squares")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(2, 3), (1, 4, 5), (3, 2, 4, 5)])
def test_bias_add(dtype, shape):
    rng = np.random.default_rng(7)
    y = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape[1]).astype(dtype)
    expected = torch.from_numpy(y).double() + torch.from_numpy(b).double().view(1, -1, *[1] * (len(shape) - 2))
    assert_close(call_op(CPU, "bias_add", y=y, b=b)["y"], expected.numpy(), dtype)


def test_bad_inputs():
    from mocha_triton.cpu_ref import elementwise as ew

    with pytest.raises(ValueError, match=r"copy: arguments must have the same shape"):
        ew.copy(np.zeros(3), np.zeros(4))
    with pytest.raises(TypeError, match=r"axpy: all float arguments must share one dtype"):
        ew.axpy(1.0, np.zeros(3, np.float32), np.zeros(3))
    with pytest.raises(TypeError, match=r"fill: y has dtype int64"):
        ew.fill(np.zeros(3, np.int64), 1.0)
    with pytest.raises(ValueError, match=r"bias_add: b has shape \(4,\), expected \(3,\)"):
        ew.bias_add(np.zeros((2, 3)), np.zeros(4))
    with pytest.raises(ValueError, match=r"scale: alpha must be finite"):
        ew.scale(np.zeros(3), float("nan"))
