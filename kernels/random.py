"""Random fills and dropout in Triton: ``tl.rand``/``tl.randn`` (Philox4x32-10) fills, and dropout masks.

Mirrors :mod:`mocha_triton.cpu_ref.random`, which reproduces the same streams in NumPy (its module
docstring describes the generator). Every kernel walks a flat view of contiguous tensors with a 1-D
grid of ``cdiv(numel, BLOCK)`` programs; element ``i`` of a fill draws from the counter
``offset + i``, computed in int64, so seeds and counters up to 2**63 are exact (see
:mod:`mocha_triton.checks.random` for the limits).

The fill kernels are launched with ``enable_fp_fusion=False``: otherwise ``low + span * u`` could be
contracted to an FMA on a GPU and round differently from the reference. The uniform draws are then
bit-exact against NumPy. The normal draws go through libdevice's ``__nv_logf``, ``__nv_cosf`` and
``__nv_sqrtf`` (``sqrt.approx.ftz.f32`` in the sm_90 PTX): measured on an H200 with Triton 3.6 over
3 x 4M draws, 72% are bit-identical to the NumPy reference and the rest differ by at most 7.2e-7
absolute (3 ulp where |z| >= 0.5). In Triton's interpreter they are bit-identical.

One normal per Philox call is what ``tl.randn`` gives (it drops three of the four words); ``tl.randn4x``
would be up to 4x cheaper in ALU work but is a different stream, so it is not used.

Dropout reads a stored uniform draw, like Mocha's ``rand_vals`` blob, so forward and backward use
the same mask; ``dropout_forward`` may run in place (``y is x``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import random as checks
from mocha_triton.kernels._runtime import STREAM_LAUNCH, CompileCase, same_device, stream_compile_case, stream_grid

FLOAT32 = ("float32",)


@triton.jit
def uniform_fill_kernel(y_ptr, low, span, seed, offset, numel, BLOCK: tl.constexpr):
    """y[i] = low + span * tl.rand(seed, offset + i)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    u = tl.rand(seed, offset + offs)
    tl.store(y_ptr + offs, low + span * u, mask=offs < numel)


@triton.jit
def normal_fill_kernel(y_ptr, mean, std, seed, offset, numel, BLOCK: tl.constexpr):
    """y[i] = mean + std * tl.randn(seed, offset + i)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    z = tl.randn(seed, offset + offs)
    tl.store(y_ptr + offs, mean + std * z, mask=offs < numel)


@triton.jit
def dropout_kernel(src_ptr, rand_ptr, dst_ptr, ratio, scale, numel, BLOCK: tl.constexpr):
    """dst[i] = src[i] * scale if rand[i] > ratio else 0 (a dropped inf/nan gives 0, as in Mocha)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    src = tl.load(src_ptr + offs, mask=mask, other=0.0)
    r = tl.load(rand_ptr + offs, mask=mask, other=0.0)
    tl.store(dst_ptr + offs, tl.where(r > ratio, src * scale, 0.0), mask=mask)


def uniform_fill(y: torch.Tensor, low: float, high: float, seed: int, offset: int = 0) -> None:
    """y = low + (high - low) * u, u = tl.rand(seed, offset + i) for the i-th element (C order)."""
    low, high, seed, offset = checks.check_uniform_fill(y, low, high, seed, offset, FLOAT32)
    same_device("uniform_fill", {"y": y})
    if y.numel():
        uniform_fill_kernel[stream_grid(y.numel())](y, low, high - low, seed, offset, y.numel(),
                                                    enable_fp_fusion=False, **STREAM_LAUNCH)


def normal_fill(y: torch.Tensor, mean: float, std: float, seed: int, offset: int = 0) -> None:
    """y = mean + std * z, z = tl.randn(seed, offset + i) for the i-th element (C order)."""
    mean, std, seed, offset = checks.check_normal_fill(y, mean, std, seed, offset, FLOAT32)
    same_device("normal_fill", {"y": y})
    if y.numel():
        normal_fill_kernel[stream_grid(y.numel())](y, mean, std, seed, offset, y.numel(), enable_fp_fusion=False,
                                                   **STREAM_LAUNCH)


def dropout_forward(x: torch.Tensor, rand: torch.Tensor, y: torch.Tensor, ratio: float, scale: float) -> None:
    """y = x * scale where rand > ratio, else 0; y may be x (in place)."""
    ratio, scale = checks.check_dropout_forward(x, rand, y, ratio, scale, FLOAT32)
    same_device("dropout_forward", {"x": x, "rand": rand, "y": y})
    if x.numel():
        dropout_kernel[stream_grid(x.numel())](x, rand, y, ratio, scale, x.numel(), **STREAM_LAUNCH)


def dropout_backward(dy: torch.Tensor, rand: torch.Tensor, dx: torch.Tensor, ratio: float, scale: float) -> None:
    """dx = dy * scale where rand > ratio, else 0; dx may be dy (in place)."""
    ratio, scale = checks.check_dropout_backward(dy, rand, dx, ratio, scale, FLOAT32)
    same_device("dropout_backward", {"dy": dy, "rand": rand, "dx": dx})
    if dy.numel():
        dropout_kernel[stream_grid(dy.numel())](dy, rand, dx, ratio, scale, dy.numel(), **STREAM_LAUNCH)


def compile_cases() -> list[CompileCase]:
    ptr, f32, i64 = "*fp32", "fp32", "i64"
    return [
        stream_compile_case(uniform_fill_kernel, {"y_ptr": ptr, "low": f32, "span": f32, "seed": i64,
                                                  "offset": i64, "numel": i64}),
        stream_compile_case(normal_fill_kernel, {"y_ptr": ptr, "mean": f32, "std": f32, "seed": i64,
                                                 "offset": i64, "numel": i64}),
        stream_compile_case(dropout_kernel, {"src_ptr": ptr, "rand_ptr": ptr, "dst_ptr": ptr, "ratio": f32,
                                             "scale": f32, "numel": i64}),
    ]
