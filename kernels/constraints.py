"""Norm constraints in Triton: Mocha's L2Cons, rescaling every output unit whose L2 norm is too large.

Mirrors :mod:`mocha_triton.cpu_ref.constraints`. A parameter of shape (U, *rest) is U contiguous
units (rows) of ``prod(rest)`` elements; a 1-D parameter is one unit. One program per unit walks its
row twice in BLOCK-wide chunks: the first pass accumulates the sum of squares in a float32 vector
and reduces it in a fixed order (deterministic, no atomics), the second pass, taken only when the
norm exceeds the threshold, multiplies the row by ``threshold / norm`` (correctly rounded sqrt and
division). Rows within the threshold are not written at all.

A 1-D parameter is therefore reduced by a single program; that is fine for biases, and a very long
1-D blob (millions of elements) would want a split reduction instead.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import constraints as checks
from mocha_triton.kernels._runtime import INTERPRET, CompileCase, same_device

FLOAT32 = ("float32",)
MIN_BLOCK = 16
MAX_BLOCK = 4096 if INTERPRET else 1024  # chunk of a row per loop step
NUM_WARPS = 4
NUM_STAGES = 1


@triton.jit
def l2_norm_constraint_kernel(w_ptr, threshold, unit_size, BLOCK: tl.constexpr):
    """Row ``program_id`` of the (units, unit_size) view of w: if ||row|| > threshold, row *= threshold / ||row||."""
    row_ptr = w_ptr + tl.program_id(0).to(tl.int64) * unit_size
    acc = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, unit_size, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        x = tl.load(row_ptr + offs, mask=offs < unit_size, other=0.0)
        acc += x * x
    norm = tl.sqrt_rn(tl.sum(acc, axis=0))
    if norm > threshold:
        factor = tl.div_rn(threshold, norm)
        for start in range(0, unit_size, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            mask = offs < unit_size
            x = tl.load(row_ptr + offs, mask=mask, other=0.0)
            tl.store(row_ptr + offs, x * factor, mask=mask)


def l2_norm_constraint(w: torch.Tensor, threshold: float) -> None:
    """Rescale in place every unit (row w[u, ...]; a 1-D w is one unit) whose L2 norm exceeds threshold
    to norm == threshold; other units are left untouched."""
    units, unit_size, threshold = checks.check_l2_norm_constraint(w, threshold, FLOAT32)
    same_device("l2_norm_constraint", {"w": w})
    if units and unit_size:
        block = min(max(triton.next_power_of_2(unit_size), MIN_BLOCK), MAX_BLOCK)
        l2_norm_constraint_kernel[(units,)](w, threshold, unit_size, BLOCK=block, num_warps=NUM_WARPS,
                                           num_stages=NUM_STAGES)


def compile_cases() -> list[CompileCase]:
    signature = {"w_ptr": "*fp32", "threshold": "fp32", "unit_size": "i64"}
    return [
        CompileCase(l2_norm_constraint_kernel, signature, {"BLOCK": block}, NUM_WARPS, NUM_STAGES, label=f"B{block}")
        for block in (MIN_BLOCK, 1024)
    ]
