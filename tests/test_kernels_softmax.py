"""kernels.softmax equals cpu_ref.softmax (float32), through both kernel pairs and both code paths.

The rows kernels serve S == 1 (2-D input), the channels kernels S > 1. Each path is checked with C
inside one block (one pass) and with C larger than the block of every config in use (the online
two-pass loop), positions and rows spanning more than one program.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_cpu_ref_softmax import SHAPES, random_shapes, softmax_arrays

from mocha_triton.kernels import softmax as kernels_softmax
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts


def _largest(kernel, name: str) -> int:
    """The largest ``name`` block among the configs the autotuned kernel may run right now."""
    return max(cfg.kwargs[name] for cfg in kernel.configs)


def loop_shapes() -> list[tuple[int, ...]]:
    """Shapes whose C exceeds every BLOCK_C in use, and whose rows/positions need several programs."""
    rows_c = _largest(kernels_softmax.softmax_rows_forward_kernel, "BLOCK_C") + 3
    rows_n = _largest(kernels_softmax.softmax_rows_forward_kernel, "BLOCK_N") + 1
    chan_c = _largest(kernels_softmax.softmax_channels_forward_kernel, "BLOCK_C") + 3
    chan_s = _largest(kernels_softmax.softmax_channels_forward_kernel, "BLOCK_S") + 5
    return [(2, rows_c), (rows_n, 5), (2, chan_c, 3, 3), (1, 3, chan_s), (2, chan_c, chan_s)]


def _compare(shape: tuple[int, ...], logits: str, label: str) -> None:
    x, dy = softmax_arrays(shape, "float32", logits)
    c = shape[1]
    fwd = dict(x=x, y=np.empty_like(x))
    y_want, y = call_op(CPU, "softmax_forward", **fwd)["y"], call_op(TRITON, "softmax_forward", **fwd)["y"]
    assert_close(y, y_want, "float32", reduction=c, what=f"softmax_forward {shape} {logits} [{label}]")
    bwd = dict(y=y_want, dy=dy, dx=np.empty_like(dy))
    dx_want, dx = call_op(CPU, "softmax_backward", **bwd)["dx"], call_op(TRITON, "softmax_backward", **bwd)["dx"]
    assert_close(dx, dx_want, "float32", reduction=c, what=f"softmax_backward {shape} {logits} [{label}]")


@pytest.mark.parametrize("label,context", triton_config_contexts(kernels_softmax))
def test_matches_reference(label, context):
    with context:
        for shape in SHAPES + random_shapes(6, seed=9):
            _compare(shape, "normal", label)
        for shape in loop_shapes():
            for logits in ("normal", "ascending"):
                _compare(shape, logits, label)


@pytest.mark.parametrize("logits", ("spread_1e4", "near_plus_1e4", "near_minus_1e4"))
def test_large_logits(logits):
    """Logits around +-1e4 or spread over [-1e4, 1e4]: no overflow, no NaN, both kernel pairs and paths."""
    for shape in [(3, 7), (2, 5, 3, 3)] + loop_shapes()[:1] + loop_shapes()[2:3]:
        x, _ = softmax_arrays(shape, "float32", logits)
        fwd = dict(x=x, y=np.empty_like(x))
        y = call_op(TRITON, "softmax_forward", **fwd)["y"]
        assert_close(y, call_op(CPU, "softmax_forward", **fwd)["y"], "float32", reduction=shape[1],
                     what=f"softmax_forward {shape} {logits}")


def test_one_channel_is_exactly_one():
    for shape in [(4, 1), (2, 1, 3, 5)]:
        x, dy = softmax_arrays(shape, "float32", "spread_1e4")
        y = call_op(TRITON, "softmax_forward", x=x, y=np.empty_like(x))["y"]
        np.testing.assert_array_equal(y, 1.0)
        np.testing.assert_array_equal(call_op(TRITON, "softmax_backward", y=y, dy=dy, dx=np.empty_like(dy))["dx"], 0.0)


@pytest.mark.parametrize("shape", [(3, 7), (2, 5, 3, 3), "rows loop", "channels loop"])
def test_output_may_alias_input(shape):
    """Not required by the contract, but safe: y is x, dx is dy (the autotuner restores the input)."""
    shape = {"rows loop": loop_shapes()[0], "channels loop": loop_shapes()[2]}.get(shape, shape)
    x, dy = softmax_arrays(shape, "float32")
    y_want = call_op(CPU, "softmax_forward", x=x, y=np.empty_like(x))["y"]
    dx_want = call_op(CPU, "softmax_backward", y=y_want, dy=dy, dx=np.empty_like(dy))["dx"]
    tx = TRITON.to_backend(x)
    kernels_softmax.softmax_forward(tx, tx)
    assert_close(TRITON.to_numpy(tx), y_want, "float32", reduction=shape[1], what="softmax_forward in place")
    ty, tdy = TRITON.to_backend(y_want), TRITON.to_backend(dy)
    kernels_softmax.softmax_backward(ty, tdy, tdy)
    assert_close(TRITON.to_numpy(tdy), dx_want, "float32", reduction=shape[1], what="softmax_backward in place")


def test_rejects_float64_and_bad_inputs():
    f32 = TRITON.to_backend(np.zeros((2, 3, 4), np.float32))
    t64 = TRITON.to_backend(np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match=r"softmax_forward: x has dtype float64; expected one of \('float32',\)"):
        kernels_softmax.softmax_forward(t64, t64)
    with pytest.raises(TypeError, match=r"softmax_backward: dx has dtype float64; expected one of \('float32',\)"):
        kernels_softmax.softmax_backward(f32, f32, t64)
    flat = TRITON.to_backend(np.zeros(5, np.float32))
    with pytest.raises(ValueError, match=r"softmax_forward: x must have at least 2 dimensions, got shape \(5,\)"):
        kernels_softmax.softmax_forward(flat, flat)
    with pytest.raises(ValueError, match=r"softmax_backward: arguments must have the same shape, "
                                         r"got y=\(2, 3, 4\), dy=\(2, 3, 4\), dx=\(2, 4, 3\)"):
        kernels_softmax.softmax_backward(f32, f32, TRITON.to_backend(np.zeros((2, 4, 3), np.float32)))
    with pytest.raises(TypeError, match=r"softmax_forward: y must be a torch.Tensor on the Triton backend"):
        kernels_softmax.softmax_forward(f32, np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match=r"softmax_forward: x must be contiguous"):
        kernels_softmax.softmax_forward(f32.transpose(1, 2), TRITON.to_backend(np.zeros((2, 4, 3), np.float32)))
