"""Elementwise ops and reductions in Triton: fill, copy, axpy, scale, bias_add, sum_of_squares.

Mirrors :mod:`mocha_triton.cpu_ref.elementwise`. Every kernel walks a flat view of contiguous tensors
with a 1-D grid of ``cdiv(numel, BLOCK)`` programs; offsets are 64-bit so tensors past 2**31
elements are safe. ``sum_of_squares`` is a deterministic two-stage reduction (per-block partial sums,
then one program adds the partials in a fixed order), so it gives bit-identical results run to run.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import elementwise as checks
from mocha_triton.kernels._runtime import (
    STREAM_BLOCK,
    STREAM_LAUNCH,
    CompileCase,
    same_device,
    stream_compile_case,
    stream_grid,
)

FLOAT32 = ("float32",)


@triton.jit
def _block_offsets(numel, BLOCK: tl.constexpr):
    """64-bit offsets of this program's block and the mask of those inside ``numel``."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    return offs, offs < numel


@triton.jit
def fill_kernel(y_ptr, value, numel, BLOCK: tl.constexpr):
    """y[i] = value for i < numel."""
    offs, mask = _block_offsets(numel, BLOCK)
    tl.store(y_ptr + offs, tl.full((BLOCK,), value, tl.float32).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def axpby_kernel(x_ptr, y_ptr, alpha, beta, numel, BLOCK: tl.constexpr):
    """y[i] = alpha * x[i] + beta * y[i]; with beta == 0, y is not read (copy)."""
    offs, mask = _block_offsets(numel, BLOCK)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    if beta == 0.0:
        out = alpha * x
    else:
        y = tl.load(y_ptr + offs, mask=mask, other=0.0)
        out = alpha * x + beta * y
    tl.store(y_ptr + offs, out, mask=mask)


@triton.jit
def scale_kernel(y_ptr, alpha, numel, BLOCK: tl.constexpr):
    """y[i] *= alpha."""
    offs, mask = _block_offsets(numel, BLOCK)
    y = tl.load(y_ptr + offs, mask=mask, other=0.0)
    tl.store(y_ptr + offs, y * alpha, mask=mask)


@triton.jit
def bias_add_kernel(y_ptr, b_ptr, numel, C, S, BLOCK: tl.constexpr):
    """y[n, c, s] += b[c] over the flat (N, C, S) view of y."""
    offs, mask = _block_offsets(numel, BLOCK)
    channel = (offs // S) % C
    y = tl.load(y_ptr + offs, mask=mask, other=0.0)
    b = tl.load(b_ptr + channel, mask=mask, other=0.0)
    tl.store(y_ptr + offs, y + b, mask=mask)


@triton.jit
def sum_of_squares_partial_kernel(x_ptr, partial_ptr, numel, BLOCK: tl.constexpr):
    """partial[pid] = sum of x**2 over this program's block."""
    offs, mask = _block_offsets(numel, BLOCK)
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    tl.store(partial_ptr + tl.program_id(0), tl.sum(x * x, axis=0))


@triton.jit
def sum_kernel(partial_ptr, out_ptr, n_partial, BLOCK: tl.constexpr):
    """out[0] = sum(partial[:n_partial]), one program, in a fixed order."""
    acc = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, n_partial, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(partial_ptr + offs, mask=offs < n_partial, other=0.0)
    tl.store(out_ptr, tl.sum(acc, axis=0))


def fill(y: torch.Tensor, value: float) -> None:
    """y[...] = value."""
    value = checks.check_fill(y, value, FLOAT32)
    same_device("fill", {"y": y})
    if y.numel():
        fill_kernel[stream_grid(y.numel())](y, value, y.numel(), **STREAM_LAUNCH)


def copy(x: torch.Tensor, y: torch.Tensor) -> None:
    """y[...] = x (same shape and dtype)."""
    checks.check_copy(x, y, FLOAT32)
    same_device("copy", {"x": x, "y": y})
    if y.numel():
        axpby_kernel[stream_grid(y.numel())](x, y, 1.0, 0.0, y.numel(), **STREAM_LAUNCH)


def axpy(alpha: float, x: torch.Tensor, y: torch.Tensor) -> None:
    """y += alpha * x."""
    alpha = checks.check_axpy(alpha, x, y, FLOAT32)
    same_device("axpy", {"x": x, "y": y})
    if y.numel():
        axpby_kernel[stream_grid(y.numel())](x, y, alpha, 1.0, y.numel(), **STREAM_LAUNCH)


def scale(y: torch.Tensor, alpha: float) -> None:
    """y *= alpha."""
    alpha = checks.check_scale(y, alpha, FLOAT32)
    same_device("scale", {"y": y})
    if y.numel():
        scale_kernel[stream_grid(y.numel())](y, alpha, y.numel(), **STREAM_LAUNCH)


def bias_add(y: torch.Tensor, b: torch.Tensor) -> None:
    """y[:, c, ...] += b[c] for y of shape (N, C, *S)."""
    _, c, s = checks.check_bias_add(y, b, FLOAT32)
    same_device("bias_add", {"y": y, "b": b})
    if y.numel():
        bias_add_kernel[stream_grid(y.numel())](y, b, y.numel(), c, s, **STREAM_LAUNCH)


def sum_of_squares(x: torch.Tensor, out: torch.Tensor) -> None:
    """out[0] = sum(x ** 2), accumulated in fp32 blockwise, then the block sums in a fixed order."""
    checks.check_sum_of_squares(x, out, FLOAT32)
    same_device("sum_of_squares", {"x": x, "out": out})
    n_partial = max(triton.cdiv(x.numel(), STREAM_BLOCK), 1)
    partial = torch.empty(n_partial, dtype=torch.float32, device=x.device)
    if x.numel():
        sum_of_squares_partial_kernel[(n_partial,)](x, partial, x.numel(), **STREAM_LAUNCH)
    else:
        fill(partial, 0.0)
    sum_kernel[(1,)](partial, out, n_partial, **STREAM_LAUNCH)


def compile_cases() -> list[CompileCase]:
    ptr, i64, f32 = "*fp32", "i64", "fp32"
    return [
        stream_compile_case(fill_kernel, {"y_ptr": ptr, "value": f32, "numel": i64}),
        stream_compile_case(axpby_kernel, {"x_ptr": ptr, "y_ptr": ptr, "alpha": f32, "beta": f32, "numel": i64}),
        stream_compile_case(scale_kernel, {"y_ptr": ptr, "alpha": f32, "numel": i64}),
        stream_compile_case(bias_add_kernel, {"y_ptr": ptr, "b_ptr": ptr, "numel": i64, "C": "i32", "S": "i32"}),
        stream_compile_case(sum_of_squares_partial_kernel, {"x_ptr": ptr, "partial_ptr": ptr, "numel": i64}),
        stream_compile_case(sum_kernel, {"partial_ptr": ptr, "out_ptr": ptr, "n_partial": "i32"}),
    ]
