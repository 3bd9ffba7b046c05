"""The inner-product (fully connected) layer in Triton: forward with a fused neuron, and its gradients.

Mirrors :mod:`mocha_triton.cpu_ref.inner_product`. Sizes: ``N`` samples, ``K`` input features,
``O`` outputs; weights ``(O, K)``. The three products are one kernel, :func:`~mocha_triton.kernels.gemm.gemm`,
fed strided views instead of transposed copies:

=============================  ============  ============  ===========  ==========================
op                             a             b             c            epilogue
=============================  ============  ============  ===========  ==========================
inner_product_forward          x (N, K)      w.t() (K, O)  y (N, O)     bias along O, neuron
inner_product_backward_data    dy (N, O)     w (O, K)      dx (N, K)    none
inner_product_backward_weight  dy.t() (O, N) x (N, K)      dw (O, K)    none
=============================  ============  ============  ===========  ==========================

The bias gradient is a column sum of dy, :data:`column_sum_kernel`: each program owns
``BLOCK_O`` columns and walks down all N rows in ``BLOCK_N`` chunks, accumulating in fp32 in a fixed
order, so the result is deterministic without atomics.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import inner_product as checks
from mocha_triton.kernels._runtime import CompileCase, same_device
from mocha_triton.kernels.gemm import gemm

FLOAT32 = ("float32",)
SUM_BLOCK_N, SUM_BLOCK_O, SUM_WARPS, SUM_STAGES = 32, 128, 4, 2


@triton.jit
def column_sum_kernel(x_ptr, out_ptr, N, O, stride_xn, BLOCK_N: tl.constexpr, BLOCK_O: tl.constexpr):
    """out[o] = sum over n of x[n, o] for x (N, O) with unit column stride; grid cdiv(O, BLOCK_O)."""
    offs_o = tl.program_id(0).to(tl.int64) * BLOCK_O + tl.arange(0, BLOCK_O)
    mask_o = offs_o < O
    offs_n = tl.arange(0, BLOCK_N).to(tl.int64)
    acc = tl.zeros((BLOCK_N, BLOCK_O), dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        rows = start + offs_n
        mask = (rows < N)[:, None] & mask_o[None, :]
        acc += tl.load(x_ptr + rows[:, None] * stride_xn + offs_o[None, :], mask=mask, other=0.0)
    tl.store(out_ptr + offs_o, tl.sum(acc, axis=0), mask=mask_o)


def inner_product_forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, y: torch.Tensor,
                          neuron: str = "identity", negative_slope: float = 0.01) -> None:
    """y = neuron(x @ w.T + b) for x (N, K), w (O, K), b (O,) or None, y (N, O)."""
    checks.check_inner_product_forward(x, w, b, y, neuron, negative_slope, FLOAT32)
    same_device("inner_product_forward", {"x": x, "w": w, "b": b, "y": y})
    gemm(x, w.t(), y, bias=b, bias_along="n", neuron=neuron, negative_slope=negative_slope)


def inner_product_backward_data(dy: torch.Tensor, w: torch.Tensor, dx: torch.Tensor) -> None:
    """dx = dy @ w for dy (N, O), w (O, K), dx (N, K): the gradient before any neuron."""
    checks.check_inner_product_backward_data(dy, w, dx, FLOAT32)
    same_device("inner_product_backward_data", {"dy": dy, "w": w, "dx": dx})
    gemm(dy, w, dx)


def inner_product_backward_weight(x: torch.Tensor, dy: torch.Tensor, dw: torch.Tensor) -> None:
    """dw = dy.T @ x for x (N, K), dy (N, O), dw (O, K)."""
    checks.check_inner_product_backward_weight(x, dy, dw, FLOAT32)
    same_device("inner_product_backward_weight", {"x": x, "dy": dy, "dw": dw})
    gemm(dy.t(), x, dw)


def inner_product_backward_bias(dy: torch.Tensor, db: torch.Tensor) -> None:
    """db = dy summed over the N samples, for dy (N, O), db (O,)."""
    n, o = checks.check_inner_product_backward_bias(dy, db, FLOAT32)
    same_device("inner_product_backward_bias", {"dy": dy, "db": db})
    if o:
        column_sum_kernel[(triton.cdiv(o, SUM_BLOCK_O),)](dy, db, n, o, dy.stride(0), BLOCK_N=SUM_BLOCK_N,
                                                          BLOCK_O=SUM_BLOCK_O, num_warps=SUM_WARPS,
                                                          num_stages=SUM_STAGES)


def compile_cases() -> list[CompileCase]:
    cases = []
    for int_type in ("i32", "i64"):
        signature = {"x_ptr": "*fp32", "out_ptr": "*fp32", "N": int_type, "O": int_type, "stride_xn": int_type}
        cases.append(CompileCase(column_sum_kernel, signature, {"BLOCK_N": SUM_BLOCK_N, "BLOCK_O": SUM_BLOCK_O},
                                 SUM_WARPS, SUM_STAGES, label=int_type))
    return cases
