"""Regularizer gradients in Triton: dw += coef * w (L2) and dw += coef * sign(w) (L1).

Mirrors :mod:`mocha_triton.cpu_ref.regularizers`. One streaming kernel serves both (the norm is a
constexpr): a 1-D grid of ``cdiv(numel, BLOCK)`` programs over the flat contiguous tensors, with
64-bit offsets.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import regularizers as checks
from mocha_triton.kernels._runtime import STREAM_LAUNCH, CompileCase, same_device, stream_compile_case, stream_grid

FLOAT32 = ("float32",)


@triton.jit
def regularizer_gradient_kernel(w_ptr, dw_ptr, coef, numel, NORM: tl.constexpr, BLOCK: tl.constexpr):
    """dw[i] += coef * w[i] (NORM == 2) or coef * sign(w[i]) with sign(0) = 0 (NORM == 1)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    dw = tl.load(dw_ptr + offs, mask=mask, other=0.0)
    if NORM == 2:
        grad = w
    else:
        grad = tl.where(w > 0, 1.0, tl.where(w < 0, -1.0, 0.0))
    tl.store(dw_ptr + offs, dw + coef * grad, mask=mask)


def _launch(w: torch.Tensor, dw: torch.Tensor, coef: float, norm: int) -> None:
    if w.numel():
        regularizer_gradient_kernel[stream_grid(w.numel())](w, dw, coef, w.numel(), NORM=norm, **STREAM_LAUNCH)


def l2_regularizer_gradient(w: torch.Tensor, dw: torch.Tensor, coef: float) -> None:
    """dw += coef * w (float32 tensors of one shape; coef >= 0)."""
    coef = checks.check_l2_regularizer_gradient(w, dw, coef, FLOAT32)
    same_device("l2_regularizer_gradient", {"w": w, "dw": dw})
    _launch(w, dw, coef, 2)


def l1_regularizer_gradient(w: torch.Tensor, dw: torch.Tensor, coef: float) -> None:
    """dw += coef * sign(w), sign(0) = 0 (float32 tensors of one shape; coef >= 0)."""
    coef = checks.check_l1_regularizer_gradient(w, dw, coef, FLOAT32)
    same_device("l1_regularizer_gradient", {"w": w, "dw": dw})
    _launch(w, dw, coef, 1)


def compile_cases() -> list[CompileCase]:
    signature = {"w_ptr": "*fp32", "dw_ptr": "*fp32", "coef": "fp32", "numel": "i64"}
    return [
        stream_compile_case(regularizer_gradient_kernel, signature, {"NORM": norm}, label=f"L{norm}")
        for norm in (1, 2)
    ]
