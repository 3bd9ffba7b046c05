"""Block copies (concat, crop) and elementwise binary ops in Triton.

Mirrors :mod:`mocha_triton.cpu_ref.combine`, whose docstring explains why three ops serve the Concat,
Crop and ElementWise layers; the argument rules live in :mod:`mocha_triton.checks.combine`.

* **copy_block.** The host first reduces the block to at most four axes, each an ``(size, x stride,
  y stride)`` triple over the contiguous tensors (:func:`block_plan`): the starts fold into one base
  offset per tensor, axes of size 1 disappear, and two neighbouring axes merge when they are
  contiguous in both tensors (a concat along channels of NCHW blobs becomes ``(N, C_i*H*W)`` rows of
  one long run; a spatial crop ``(N*C, h, w)``). With ``mirror`` the last axis stays on its own,
  since only it is reversed. One kernel then copies a ``(rows, columns)`` view: rows are the first
  three axes flattened, columns the last axis. Program ``pid`` takes the tile of ``BLOCK_R`` rows and
  ``BLOCK_C`` columns at ``(pid // column blocks, pid % column blocks)`` (a flat 1-D grid); each row's
  two offsets come from a divmod of its index, so the lanes of a row read and write consecutive
  addresses when the last stride is 1. ``BLOCK_C`` is the column count rounded up to a power of two,
  between 16 and :data:`MAX_BLOCK_C`, and ``BLOCK_R`` fills the tile up to :data:`TILE_ELEMENTS`.
  A block that keeps more than four axes after merging (only possible with five or more dimensions)
  is copied four inner axes per launch, the host looping over the outer ones. Offsets are int64.
* **eltwise_forward / eltwise_backward** are streaming kernels over the flat tensors (the 1-D grid
  and block of :data:`~mocha_triton.kernels._runtime.STREAM_LAUNCH`), the operation a constexpr so
  each launch compiles to just its arithmetic; the backward writes ``da`` and ``db`` only where asked
  (two more constexprs; a skipped one gets ``dy`` as a never-written placeholder). Each lane loads
  its inputs before it stores, so ``y`` may alias ``a`` or ``b`` and ``da``/``db`` may alias ``dy``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from mocha_triton.checks import combine as checks
from mocha_triton.checks.combine import ELTWISE_OPERATIONS
from mocha_triton.kernels._runtime import (
    INTERPRET,
    STREAM_LAUNCH,
    CompileCase,
    same_device,
    stream_compile_case,
    stream_grid,
)

FLOAT32 = ("float32",)

#: Operation codes of the eltwise kernels (a constexpr): the index in ELTWISE_OPERATIONS.
OPERATION_CODES = {name: code for code, name in enumerate(ELTWISE_OPERATIONS)}

# copy_block tiles: on a GPU 1024 elements for 4 warps (8 per thread) streams at bandwidth without
# many registers for the int64 offsets; the interpreter's cost is per program, so it gets bigger tiles.
# Tests shrink both to cover several row and column blocks on tiny tensors.
GPU_TILE_ELEMENTS = 1024
TILE_ELEMENTS = 8192 if INTERPRET else GPU_TILE_ELEMENTS
MIN_BLOCK_C = 16
MAX_BLOCK_C = 1024
COPY_NUM_WARPS = 4
COPY_NUM_STAGES = 1
MAX_AXES = 4  # axes the copy kernel walks; the host loops over any outer ones


# --- copy_block -------------------------------------------------------------------------------------


@triton.jit
def copy_block_kernel(x_ptr, y_ptr, x_base, y_base, S1, S2, S3, XS0, XS1, XS2, XS3, YS0, YS1, YS2, YS3, ROWS,
                      MIRROR: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    """y[y_base + i . YS] = x[x_base + i' . XS] over the block i in (S0, S1, S2, S3), ROWS = S0*S1*S2,
    where i' is i with its last coordinate reversed (S3 - 1 - i3) when MIRROR, else i."""
    pid = tl.program_id(0).to(tl.int64)
    column_blocks = tl.cdiv(S3, BLOCK_C)
    rows = (pid // column_blocks) * BLOCK_R + tl.arange(0, BLOCK_R)[:, None]
    cols = (pid % column_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
    mask = (rows < ROWS) & (cols < S3)
    i2 = rows % S2
    i01 = rows // S2
    i1 = i01 % S1
    i0 = i01 // S1
    x_row = x_base + i0 * XS0 + i1 * XS1 + i2 * XS2
    y_row = y_base + i0 * YS0 + i1 * YS1 + i2 * YS2
    if MIRROR:
        x_cols = S3 - 1 - cols
    else:
        x_cols = cols
    values = tl.load(x_ptr + x_row + x_cols * XS3, mask=mask, other=0.0)
    tl.store(y_ptr + y_row + cols * YS3, values, mask=mask)


def _contiguous_strides(shape: Sequence[int]) -> list[int]:
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return strides[::-1]


def block_plan(x_shape: Sequence[int], y_shape: Sequence[int], x_start: Sequence[int], y_start: Sequence[int],
               size: Sequence[int], mirror: bool) -> tuple[int, int, list[list[int]], bool] | None:
    """The block as ``(x_base, y_base, axes, mirror)``, ``axes`` a list of ``[size, x_stride, y_stride]``
    from outermost to innermost (at least one; axes of size 1 dropped, contiguous neighbours merged),
    or None for an empty block. ``mirror`` comes back False when the last axis has size 1."""
    if 0 in size:
        return None
    x_strides, y_strides = _contiguous_strides(x_shape), _contiguous_strides(y_shape)
    x_base = sum(s * st for s, st in zip(x_start, x_strides))
    y_base = sum(s * st for s, st in zip(y_start, y_strides))
    mirror = mirror and size[-1] > 1
    last = len(size) - 1
    axes: list[list[int]] = []
    for k, n in enumerate(size):
        if n == 1:  # its start is in the bases already
            continue
        keep_apart = mirror and k == last  # only the last axis is reversed: never merge it
        if axes and not keep_apart and axes[-1][1] == n * x_strides[k] and axes[-1][2] == n * y_strides[k]:
            axes[-1] = [axes[-1][0] * n, x_strides[k], y_strides[k]]  # index i * n + j walks both as one axis
        else:
            axes.append([n, x_strides[k], y_strides[k]])
    return x_base, y_base, axes or [[1, 0, 0]], mirror


def copy_tiles(columns: int, rows: int) -> tuple[int, int]:
    """(BLOCK_R, BLOCK_C) for a copy of ``rows`` x ``columns``: the columns rounded up to a power of two in
    [MIN_BLOCK_C, MAX_BLOCK_C], the rows filling TILE_ELEMENTS (in the interpreter, no more rows than
    there are)."""
    block_c = min(max(triton.next_power_of_2(columns), MIN_BLOCK_C), MAX_BLOCK_C, TILE_ELEMENTS)
    block_r = max(TILE_ELEMENTS // block_c, 1)
    if INTERPRET:
        block_r = min(block_r, triton.next_power_of_2(rows))
    return block_r, block_c


def copy_block(x: torch.Tensor, y: torch.Tensor, x_start: Sequence[int], y_start: Sequence[int],
               size: Sequence[int], mirror: bool = False) -> None:
    """``y[y_start : y_start + size] = x[x_start : x_start + size]`` along every axis; with ``mirror`` the
    block's last axis is reversed. Elements of ``y`` outside the block are left as they were."""
    x_start, y_start, size, mirror = checks.check_copy_block(x, y, x_start, y_start, size, mirror, FLOAT32)
    same_device("copy_block", {"x": x, "y": y})
    plan = block_plan(tuple(x.shape), tuple(y.shape), x_start, y_start, size, mirror)
    if plan is None:
        return
    x_base, y_base, axes, mirror = plan
    outer, inner = axes[:-MAX_AXES], [[1, 0, 0]] * (MAX_AXES - len(axes)) + axes[-MAX_AXES:]
    (s0, xs0, ys0), (s1, xs1, ys1), (s2, xs2, ys2), (s3, xs3, ys3) = inner
    rows = s0 * s1 * s2
    block_r, block_c = copy_tiles(s3, rows)
    grid = (triton.cdiv(rows, block_r) * triton.cdiv(s3, block_c),)
    for index in itertools.product(*(range(n) for n, _, _ in outer)):  # one empty index without outer axes
        x_off = x_base + sum(i * st for i, (_, st, _) in zip(index, outer))
        y_off = y_base + sum(i * st for i, (_, _, st) in zip(index, outer))
        copy_block_kernel[grid](x, y, x_off, y_off, s1, s2, s3, xs0, xs1, xs2, xs3, ys0, ys1, ys2, ys3, rows,
                                MIRROR=mirror, BLOCK_R=block_r, BLOCK_C=block_c, num_warps=COPY_NUM_WARPS,
                                num_stages=COPY_NUM_STAGES)


# --- elementwise binary ops ---------------------------------------------------------------------------


@triton.jit
def _operands(a_ptr, b_ptr, alpha, beta, offs, mask):
    """u = alpha * a and v = beta * b on this block (masked lanes: u = 0, v = beta, never divided by 0)."""
    u = tl.load(a_ptr + offs, mask=mask, other=0.0) * alpha
    v = tl.load(b_ptr + offs, mask=mask, other=1.0) * beta
    return u, v


@triton.jit
def eltwise_forward_kernel(a_ptr, b_ptr, y_ptr, alpha, beta, numel, OP: tl.constexpr, BLOCK: tl.constexpr):
    """y[i] = op(alpha * a[i], beta * b[i]), op by code: 0 add, 1 subtract, 2 multiply, 3 divide, 4 max."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    u, v = _operands(a_ptr, b_ptr, alpha, beta, offs, mask)
    if OP == 0:
        y = u + v
    elif OP == 1:
        y = u - v
    elif OP == 2:
        y = u * v
    elif OP == 3:
        y = u / v
    else:
        y = tl.where(u >= v, u, v)  # ties go to a
    tl.store(y_ptr + offs, y, mask=mask)


@triton.jit
def eltwise_backward_kernel(a_ptr, b_ptr, dy_ptr, da_ptr, db_ptr, alpha, beta, numel, OP: tl.constexpr,
                            WRITE_A: tl.constexpr, WRITE_B: tl.constexpr, BLOCK: tl.constexpr):
    """da[i], db[i]: the gradients of eltwise_forward (see cpu_ref.combine.eltwise_backward)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    dy = tl.load(dy_ptr + offs, mask=mask, other=0.0)
    if OP == 0:
        ga = alpha * dy
        gb = beta * dy
    elif OP == 1:
        ga = alpha * dy
        gb = -beta * dy
    else:
        u, v = _operands(a_ptr, b_ptr, alpha, beta, offs, mask)
        if OP == 2:
            ga = alpha * (v * dy)
            gb = beta * (u * dy)
        elif OP == 3:
            ga = alpha * (dy / v)
            gb = -beta * ((u / v) * dy / v)
        else:
            first = u >= v
            ga = tl.where(first, alpha * dy, 0.0)
            gb = tl.where(first, 0.0, beta * dy)
    if WRITE_A:
        tl.store(da_ptr + offs, ga, mask=mask)
    if WRITE_B:
        tl.store(db_ptr + offs, gb, mask=mask)


def eltwise_forward(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, operation: str, alpha: float = 1.0,
                    beta: float = 1.0) -> None:
    """``y = op(alpha * a, beta * b)``: add, subtract, multiply, divide, or max (ties go to ``a``)."""
    alpha, beta = checks.check_eltwise_forward(a, b, y, operation, alpha, beta, FLOAT32)
    same_device("eltwise_forward", {"a": a, "b": b, "y": y})
    if y.numel():
        eltwise_forward_kernel[stream_grid(y.numel())](a, b, y, alpha, beta, y.numel(),
                                                       OP=OPERATION_CODES[operation], **STREAM_LAUNCH)


def eltwise_backward(a: torch.Tensor, b: torch.Tensor, dy: torch.Tensor, da: torch.Tensor | None,
                     db: torch.Tensor | None, operation: str, alpha: float = 1.0, beta: float = 1.0) -> None:
    """The gradients of :func:`eltwise_forward` w.r.t. ``a`` (into ``da``) and ``b`` (into ``db``); None
    skips one. ``da`` or ``db`` may be ``dy`` itself."""
    alpha, beta = checks.check_eltwise_backward(a, b, dy, da, db, operation, alpha, beta, FLOAT32)
    same_device("eltwise_backward", {"a": a, "b": b, "dy": dy, "da": da, "db": db})
    if (da is None and db is None) or not dy.numel():
        return
    eltwise_backward_kernel[stream_grid(dy.numel())](
        a, b, dy, dy if da is None else da, dy if db is None else db, alpha, beta, dy.numel(),
        OP=OPERATION_CODES[operation], WRITE_A=da is not None, WRITE_B=db is not None, **STREAM_LAUNCH)


# --- compile gate ----------------------------------------------------------------------------------------


def compile_cases() -> list[CompileCase]:
    ptr, i64, f32 = "*fp32", "i64", "fp32"
    copy_signature = {"x_ptr": ptr, "y_ptr": ptr, "x_base": i64, "y_base": i64, "S1": i64, "S2": i64, "S3": i64,
                      "XS0": i64, "XS1": i64, "XS2": i64, "XS3": i64, "YS0": i64, "YS1": i64, "YS2": i64,
                      "YS3": i64, "ROWS": i64}
    cases = []
    block_c = MIN_BLOCK_C
    while block_c <= min(MAX_BLOCK_C, GPU_TILE_ELEMENTS):  # every tile copy_tiles picks on a GPU
        for mirror in (False, True):
            cases.append(CompileCase(copy_block_kernel, copy_signature,
                                     {"MIRROR": mirror, "BLOCK_R": max(GPU_TILE_ELEMENTS // block_c, 1),
                                      "BLOCK_C": block_c}, COPY_NUM_WARPS, COPY_NUM_STAGES,
                                     label=f"BLOCK_C={block_c},mirror={mirror}"))
        block_c *= 2
    forward = {"a_ptr": ptr, "b_ptr": ptr, "y_ptr": ptr, "alpha": f32, "beta": f32, "numel": i64}
    backward = {"a_ptr": ptr, "b_ptr": ptr, "dy_ptr": ptr, "da_ptr": ptr, "db_ptr": ptr, "alpha": f32, "beta": f32,
                "numel": i64}
    for name, code in OPERATION_CODES.items():
        cases.append(stream_compile_case(eltwise_forward_kernel, forward, {"OP": code}, label=name))
        for write_a, write_b in ((True, True), (True, False), (False, True)):
            cases.append(stream_compile_case(eltwise_backward_kernel, backward,
                                             {"OP": code, "WRITE_A": write_a, "WRITE_B": write_b},
                                             label=f"{name},da={write_a},db={write_b}"))
    return cases
