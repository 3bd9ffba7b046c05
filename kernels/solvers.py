"""Solver parameter updates in Triton: SGD with momentum and Nesterov momentum, each one fused pass.

Mirrors :mod:`mocha_triton.cpu_ref.solvers`. Each kernel reads w, dw and v once and writes w and v
once, over a 1-D grid of ``cdiv(numel, BLOCK)`` programs on the flat contiguous tensors (64-bit
offsets). On a GPU the multiply-adds may be contracted to FMAs, so results can differ from the NumPy
reference in the last bit.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import solvers as checks
from mocha_triton.kernels._runtime import STREAM_LAUNCH, CompileCase, same_device, stream_compile_case, stream_grid

FLOAT32 = ("float32",)


@triton.jit
def sgd_momentum_kernel(w_ptr, dw_ptr, v_ptr, lr, momentum, numel, BLOCK: tl.constexpr):
    """v = momentum * v - lr * dw; w += v."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    dw = tl.load(dw_ptr + offs, mask=mask, other=0.0)
    v = tl.load(v_ptr + offs, mask=mask, other=0.0)
    v = momentum * v - lr * dw
    tl.store(v_ptr + offs, v, mask=mask)
    tl.store(w_ptr + offs, w + v, mask=mask)


@triton.jit
def nesterov_kernel(w_ptr, dw_ptr, v_ptr, lr, momentum, one_plus_next_momentum, numel, BLOCK: tl.constexpr):
    """w -= momentum * v_old; v = momentum * v_old - lr * dw; w += (1 + next_momentum) * v, in that order."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    dw = tl.load(dw_ptr + offs, mask=mask, other=0.0)
    v_old = tl.load(v_ptr + offs, mask=mask, other=0.0)
    w = w - momentum * v_old
    v = momentum * v_old - lr * dw
    w = w + one_plus_next_momentum * v
    tl.store(v_ptr + offs, v, mask=mask)
    tl.store(w_ptr + offs, w, mask=mask)


def sgd_momentum_update(w: torch.Tensor, dw: torch.Tensor, v: torch.Tensor, lr: float, momentum: float) -> None:
    """v = momentum * v - lr * dw; w += v (float32 tensors of one shape)."""
    lr, momentum = checks.check_sgd_momentum_update(w, dw, v, lr, momentum, FLOAT32)
    same_device("sgd_momentum_update", {"w": w, "dw": dw, "v": v})
    if w.numel():
        sgd_momentum_kernel[stream_grid(w.numel())](w, dw, v, lr, momentum, w.numel(), **STREAM_LAUNCH)


def nesterov_update(w: torch.Tensor, dw: torch.Tensor, v: torch.Tensor, lr: float, momentum: float,
                    next_momentum: float) -> None:
    """w -= momentum * v; v = momentum * v - lr * dw; w += (1 + next_momentum) * v, fused in one pass."""
    lr, momentum, next_momentum = checks.check_nesterov_update(w, dw, v, lr, momentum, next_momentum, FLOAT32)
    same_device("nesterov_update", {"w": w, "dw": dw, "v": v})
    if w.numel():
        nesterov_kernel[stream_grid(w.numel())](w, dw, v, lr, momentum, 1.0 + next_momentum, w.numel(),
                                                **STREAM_LAUNCH)


def compile_cases() -> list[CompileCase]:
    ptrs = {"w_ptr": "*fp32", "dw_ptr": "*fp32", "v_ptr": "*fp32"}
    return [
        stream_compile_case(sgd_momentum_kernel, {**ptrs, "lr": "fp32", "momentum": "fp32", "numel": "i64"}),
        stream_compile_case(nesterov_kernel, {**ptrs, "lr": "fp32", "momentum": "fp32",
                                              "one_plus_next_momentum": "fp32", "numel": "i64"}),
    ]
