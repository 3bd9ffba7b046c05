"""2-D convolution in Triton (NCHW, float32, groups, fused bias and neuron), forward and backward.

Mirrors :mod:`mocha_triton.cpu_ref.conv` op for op. Notation: x is (N, C, H, W), the filters w are
(F, C/G, KH, KW), y and dy are (N, F, OH, OW); G groups with CG = C/G input and FG = F/G output
channels each; stride (SH, SW), symmetric zero padding (PH, PW).

Every pass is an *implicit GEMM*: a program owns a (BLOCK_M, BLOCK_N) tile of a GEMM's output and
gathers its operand tiles straight from the NCHW tensors, in fp32 ``tl.dot`` steps of BLOCK_K at the
input precision of :func:`mocha_triton.kernels.set_precision`. Masked loads (``other=0``) stand in for
the zero padding; no im2col matrix, zero-inserted gradient or flipped filter copy is ever built.

**Forward** (``conv2d_forward_kernel``)::

    y[n, f, oh, ow] = neuron(b[f] + sum over (r, s, c) of x[n, c, oh*SH - PH + r, ow*SW - PW + s] * w[f, c, r, s])

GEMM rows: the OH*OW output pixels of one sample; columns: the FG filters of one group; reduction:
the taps (r, s) times the group's channels in BLOCK_K blocks. Grid ``(N * pixel tiles * filter tiles,
G)``, filter tiles fastest so that the programs sharing an input tile run side by side. Bias and
neuron are applied to the fp32 accumulator, and the tile is stored straight into NCHW y. A 1x1,
stride-1, unpadded, ungrouped convolution is a batched GEMM, ``y[n] = w @ x[n]`` on the (C, H*W)
planes, and goes to :func:`mocha_triton.kernels.gemm.gemm` (so does its data gradient).

**Data gradient** (``conv2d_backward_data_kernel``), the transposed convolution, by stride phases::

    dx[n, c, h, w] = sum over (f, r, s) with SH | h + PH - r and SW | w + PW - s
                     of dy[n, f, (h + PH - r) / SH, (w + PW - s) / SW] * w[f, c, r, s]

The pixels of dx fall into SH*SW phases (a, b) = (h mod SH, w mod SW). Along h, phase a holds the
rows h = a + SH*i; only the taps r = th + SH*m with th = (a + PH) mod SH reach them, and tap m reads
dy row i + (a + PH) // SH - m. So each phase is a *dense* stride-1 correlation with the sub-filter
w[:, :, th::SH] read backwards (the flip is in that index, not in a copy): one implicit GEMM with rows
the phase's pixels of one sample, columns the CG channels of a group, and a reduction over the
phase's taps times the FG filters in BLOCK_K blocks. No loaded tap is wasted, unlike a stride-1
convolution over a zero-inserted dy. Grid ``(N * pixel tiles * channel tiles, G * SH * SW)``, the
pixel tiles counted for the largest phase (a = b = 0; smaller phases mask the extra rows). Stride 1
is the single phase: the forward scheme over the flipped, in/out-swapped filter with padding
KH-1-PH. Every dx element belongs to exactly one phase and one program and is written exactly once
(no atomics, no zero fill); a phase no tap reaches (th >= KH, e.g. a 1x1 kernel at stride 2) runs an
empty reduction and stores zeros, as do pixels past the last window.

**Filter gradient** (``conv2d_backward_weight_kernel``), a split-K GEMM::

    dw[f, c, r, s] = sum over (n, oh, ow) of dy[n, f, oh, ow] * x[n, c, oh*SH - PH + r, ow*SW - PW + s]

For one tap (r, s): GEMM rows the FG filters of a group, columns its CG channels, and a reduction
over the N*OH*OW output pixels, in BLOCK_K chunks that stay inside one sample. The output is small
and the reduction long (it grows with the batch), so the batch is cut into SPLIT slices of SLICE
samples. Grid ``(filter tiles * channel tiles, KH * KW, G * SPLIT)``. Slice s stores its partial sums
in ``partial[s]``, a float32 (SPLIT, F, CG, KH, KW) workspace, then ``split_sum_kernel`` adds the
slices in the order s = 0, 1, ... into dw. No atomics, so dw is bit-identical run to run. SPLIT
aims at about two programs per SM (at most 4 slices in the interpreter, 64 on a GPU) with at least
``WEIGHT_MIN_SLICE`` pixels per slice.

**Bias gradient** (``conv2d_backward_bias_kernel``): ``db[f] = sum over (n, oh, ow) of dy[n, f]``.
Grid ``(F, SPLIT)``: program (f, s) sums slice s of channel f's N*OH*OW values in BIAS_BLOCK
vectors; with SPLIT > 1 the partial sums go through ``split_sum_kernel`` as above.

Loop and layout choices, measured with the sm_90 compile gate:

* The reduction of each GEMM is **one flat loop** (taps x channel blocks, decoded per step), not
  nested loops over r, s and channel blocks: the nested form needed about twice the registers and
  spilled in most configs, and its inner loop (often a single channel block) cannot be software
  pipelined. Triton miscompiles this flat form with 8 warps on H100 (pytorch#173068), so every
  config uses 4 warps; GPU tests run every config.
* Pixel tiles stay inside one sample: the sample's base offset is a 64-bit scalar and the offsets
  inside a sample are 32-bit (guarded on the host by :func:`_require_kernel_limits`), which keeps
  the gathered tiles' address arithmetic narrow.
* The pixel operand is loaded as (BLOCK_K, pixels) (pixels along a warp's threads: contiguous along
  W in NCHW, so coalesced at stride 1) and transposed in registers for ``tl.dot``.

In Triton's interpreter a launch costs about (programs x loop steps x tl ops), nearly whatever the
tile size up to some 16K elements, so there each launch fits its tiles to its shape
(:func:`_interpreter_config`): a whole sample's pixels and all the filters (or channels) of a group in
one tile, and the longest reduction blocks the budget allows. Tests switch this off
(``FIT_INTERPRETER_TILES = False``) to run the small fixed interpreter configs, which span several
tiles along every axis of their multi-tile case.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import torch
import triton
import triton.language as tl

from mocha_triton.checks import conv as checks
from mocha_triton.checks.conv import Conv2dGeometry
from mocha_triton.kernels._activations import apply_neuron, neuron_code
from mocha_triton.kernels._runtime import INTERPRET, CompileCase, autotune, get_precision, only_config, same_device
from mocha_triton.kernels.gemm import gemm

FLOAT32 = ("float32",)
INT32_MAX = 2**31 - 1
GRID_YZ_MAX = 65535  # programs along grid axes 1 and 2

REDUCE_BLOCK = 4096 if INTERPRET else 1024  # split_sum_kernel: outputs per program
BIAS_BLOCK = 1024 if INTERPRET else 512  # conv2d_backward_bias_kernel: values per loop step
SMALL_WARPS, SMALL_STAGES = 4, 1  # launch settings of the two reduction kernels
# Slices of the filter/bias gradient: enough programs for about two per SM, each slice still long.
WEIGHT_MIN_SLICE = 16 if INTERPRET else 1024  # output pixels per slice of the filter gradient
BIAS_MIN_SLICE = 16 if INTERPRET else 8192  # values per slice of the bias gradient
MAX_SPLIT = 4 if INTERPRET else 64


def _config(block_m: int, block_n: int, block_k: int, warps: int, stages: int) -> triton.Config:
    return triton.Config({"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k},
                         num_warps=warps, num_stages=stages)


# H100 tiles. Rows are pixels, usually many; columns are channels, often few (20-64 in small nets, a
# few hundred in AlexNet/VGG). Every config compiles for sm_90 at each precision without spilling
# (checked by the compile gate), which rules out 128x128 tiles; all keep 4 warps (see the docstring).
FORWARD_CONFIGS = [
    _config(128, 64, 32, 4, 3),
    _config(64, 128, 32, 4, 3),
    _config(64, 64, 32, 4, 4),
    _config(64, 64, 64, 4, 3),
    _config(128, 32, 32, 4, 4),
    _config(64, 32, 32, 4, 4),
    _config(128, 64, 16, 4, 3),
    _config(64, 32, 16, 4, 4),
]
DATA_CONFIGS = list(FORWARD_CONFIGS)
# Filter gradient: rows are the filters of a group, columns its input channels, K the output pixels.
WEIGHT_CONFIGS = [
    _config(64, 64, 32, 4, 3),
    _config(64, 32, 32, 4, 4),
    _config(32, 64, 32, 4, 4),
    _config(64, 32, 64, 4, 3),
    _config(64, 64, 16, 4, 4),
    _config(64, 32, 16, 4, 4),
]
# The interpreter's fixed configs, used when FIT_INTERPRETER_TILES is off (tests do that): mid-size
# tiles, small enough that the tests' multi-tile case spans several tiles along every axis (and
# several K blocks). Otherwise each launch fits its tiles to its shape (_interpreter_config).
FORWARD_INTERPRETER_CONFIG = _config(64, 32, 16, 4, 1)
DATA_INTERPRETER_CONFIG = _config(64, 16, 16, 4, 1)
WEIGHT_INTERPRETER_CONFIG = _config(32, 16, 32, 4, 1)
FIT_INTERPRETER_TILES = True
INTERPRETER_TILE_ELEMENTS = 1 << 14  # largest fitted operand tile (the accumulator may take twice that)

_SHAPE_KEY = ["N", "C", "H", "W", "F", "OH", "OW", "KH", "KW", "SH", "SW", "PH", "PW", "CG", "FG", "PRECISION"]


# ----------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------


@autotune(FORWARD_CONFIGS, key=_SHAPE_KEY, interpreter_config=FORWARD_INTERPRETER_CONFIG)
@triton.jit
def conv2d_forward_kernel(x_ptr, w_ptr, b_ptr, y_ptr,
                          N, C, H, W, F, OH, OW, KH, KW, SH, SW, PH, PW, CG, FG,
                          negative_slope,
                          HAS_BIAS: tl.constexpr, NEURON: tl.constexpr, PRECISION: tl.constexpr,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """y = neuron(conv(x, w) + b) for one (sample, pixel tile, filter tile) of one group.

    Grid (N * pixel tiles * filter tiles, G). x (N, C, H, W), w (F, CG, KH, KW), b (F,) (read only
    with HAS_BIAS), y (N, F, OH, OW).
    """
    num_pid_n = tl.cdiv(FG, BLOCK_N)
    num_pid_m = tl.cdiv(OH * OW, BLOCK_M)
    pid_n = tl.program_id(0) % num_pid_n
    pid_m = (tl.program_id(0) // num_pid_n) % num_pid_m
    n = tl.program_id(0) // (num_pid_n * num_pid_m)
    group = tl.program_id(1)

    # Rows: output pixels (oh, ow) of sample n; columns: filters of this group.
    pix = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    pix_ok = pix < OH * OW
    ih0 = (pix // OW) * SH - PH
    iw0 = (pix % OW) * SW - PW
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < FG
    ks = tl.arange(0, BLOCK_K)
    x_base = x_ptr + (n.to(tl.int64) * C + group * CG) * (H * W)  # x[n, first channel of the group]
    w_base = w_ptr + (group * FG).to(tl.int64) * (CG * KH * KW)  # w[first filter of the group]
    w_cols = cols * (CG * KH * KW)

    # Reduction over taps (r, s) x channel blocks, as one loop so that loads pipeline across taps.
    c_blocks = tl.cdiv(CG, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for step in range(0, KH * KW * c_blocks):
        tap = step // c_blocks
        c = (step % c_blocks) * BLOCK_K + ks
        c_ok = c < CG
        ih = ih0 + tap // KW
        iw = iw0 + tap % KW
        in_ok = pix_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)  # False in the padding
        # x as (BLOCK_K, BLOCK_M): the threads of a warp walk pixels, contiguous along W.
        x_tile = tl.load(x_base + (ih * W + iw)[None, :] + (c * (H * W))[:, None],
                         mask=c_ok[:, None] & in_ok[None, :], other=0.0)
        w_tile = tl.load(w_base + (w_cols + tap)[None, :] + (c * (KH * KW))[:, None],
                         mask=c_ok[:, None] & col_ok[None, :], other=0.0)
        acc = tl.dot(tl.trans(x_tile), w_tile, acc, input_precision=PRECISION)

    if HAS_BIAS:
        acc += tl.load(b_ptr + group * FG + cols, mask=col_ok, other=0.0)[None, :]
    acc = apply_neuron(acc, NEURON, negative_slope)
    y_base = y_ptr + (n.to(tl.int64) * F + group * FG) * (OH * OW)  # y[n, first filter of the group]
    tl.store(y_base + pix[:, None] + (cols * (OH * OW))[None, :], acc, mask=pix_ok[:, None] & col_ok[None, :])


@autotune(DATA_CONFIGS, key=_SHAPE_KEY, interpreter_config=DATA_INTERPRETER_CONFIG)
@triton.jit
def conv2d_backward_data_kernel(dy_ptr, w_ptr, dx_ptr,
                                N, C, H, W, F, OH, OW, KH, KW, SH, SW, PH, PW, CG, FG,
                                PRECISION: tl.constexpr,
                                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """dx = conv_transpose(dy, w) for one (sample, pixel tile, channel tile) of one (group, phase).

    Grid (N * pixel tiles * channel tiles, G * SH * SW), the pixel tiles counted for the largest
    phase. dy (N, F, OH, OW), w (F, CG, KH, KW), dx (N, C, H, W).
    """
    num_pid_n = tl.cdiv(CG, BLOCK_N)
    num_pid_m = tl.cdiv(tl.cdiv(H, SH) * tl.cdiv(W, SW), BLOCK_M)
    pid_n = tl.program_id(0) % num_pid_n
    pid_m = (tl.program_id(0) // num_pid_n) % num_pid_m
    n = tl.program_id(0) // (num_pid_n * num_pid_m)
    group = tl.program_id(1) // (SH * SW)
    phase = tl.program_id(1) % (SH * SW)

    # The phase holds the pixels h = a + SH*i, w = b + SW*j. Its taps are r = th + SH*mh (mh < MH),
    # which read dy row i + dh - mh; likewise along w.
    a = phase // SW
    b = phase % SW
    th = (a + PH) % SH
    dh = (a + PH) // SH
    tw = (b + PW) % SW
    dw = (b + PW) // SW
    HA = (H - a + SH - 1) // SH  # rows of dx in the phase (0 when a >= H)
    WA = (W - b + SW - 1) // SW
    MH = (KH - th + SH - 1) // SH  # taps of the phase (0 when th >= KH: dx is 0 there)
    MW = (KW - tw + SW - 1) // SW

    # Rows: the phase's pixels (i, j) of sample n; columns: input channels of this group.
    pix = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    pix_ok = pix < HA * WA
    i = pix // WA
    j = pix % WA
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < CG
    ks = tl.arange(0, BLOCK_K)
    dy_base = dy_ptr + (n.to(tl.int64) * F + group * FG) * (OH * OW)  # dy[n, first filter of the group]
    w_base = w_ptr + (group * FG).to(tl.int64) * (CG * KH * KW)  # w[first filter of the group]
    w_cols = cols * (KH * KW)

    # Reduction over the phase's taps x filter blocks, as one loop.
    f_blocks = tl.cdiv(FG, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for step in range(0, MH * MW * f_blocks):
        tap = step // f_blocks
        f = (step % f_blocks) * BLOCK_K + ks
        f_ok = f < FG
        mh = tap // MW
        mw = tap % MW
        oh = i + dh - mh
        ow = j + dw - mw
        out_ok = pix_ok & (oh >= 0) & (oh < OH) & (ow >= 0) & (ow < OW)
        # dy as (BLOCK_K, BLOCK_M): the threads of a warp walk pixels, contiguous along OW.
        dy_tile = tl.load(dy_base + (oh * OW + ow)[None, :] + (f * (OH * OW))[:, None],
                          mask=f_ok[:, None] & out_ok[None, :], other=0.0)
        w_tap = (th + SH * mh) * KW + (tw + SW * mw)
        w_tile = tl.load(w_base + (w_cols + w_tap)[None, :] + (f * (CG * KH * KW))[:, None],
                         mask=f_ok[:, None] & col_ok[None, :], other=0.0)
        acc = tl.dot(tl.trans(dy_tile), w_tile, acc, input_precision=PRECISION)

    dx_base = dx_ptr + (n.to(tl.int64) * C + group * CG) * (H * W)  # dx[n, first channel of the group]
    dx_pix = (a + SH * i) * W + (b + SW * j)
    tl.store(dx_base + dx_pix[:, None] + (cols * (H * W))[None, :], acc, mask=pix_ok[:, None] & col_ok[None, :])


@autotune(WEIGHT_CONFIGS, key=_SHAPE_KEY + ["SPLIT"], interpreter_config=WEIGHT_INTERPRETER_CONFIG)
@triton.jit
def conv2d_backward_weight_kernel(x_ptr, dy_ptr, partial_ptr,
                                  N, C, H, W, F, OH, OW, KH, KW, SH, SW, PH, PW, CG, FG, SPLIT, SLICE,
                                  PRECISION: tl.constexpr,
                                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """partial[s, :, :, r, t] = the filter gradient of tap (r, t) summed over the samples of slice s.

    Grid (filter tiles * channel tiles, KH * KW, G * SPLIT). x (N, C, H, W), dy (N, F, OH, OW),
    partial (SPLIT, F, CG, KH, KW); slice s covers the samples [s * SLICE, min((s + 1) * SLICE, N)).
    With SPLIT == 1, partial is dw itself.
    """
    num_pid_n = tl.cdiv(CG, BLOCK_N)
    pid_m = tl.program_id(0) // num_pid_n
    pid_n = tl.program_id(0) % num_pid_n
    r = tl.program_id(1) // KW
    s = tl.program_id(1) % KW
    group = tl.program_id(2) // SPLIT
    split = tl.program_id(2) % SPLIT

    # Rows: filters of this group; columns: its input channels; reduction: the output pixels of
    # the slice's samples, in BLOCK_K chunks that stay inside one sample.
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < FG
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    col_ok = cols < CG
    ks = tl.arange(0, BLOCK_K)
    dy_rows = (group * FG + rows) * (OH * OW)
    x_cols = (group * CG + cols) * (H * W)
    p_blocks = tl.cdiv(OH * OW, BLOCK_K)
    first = split * SLICE * p_blocks
    last = tl.minimum((split + 1) * SLICE, N) * p_blocks
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for step in range(first, last):
        n = (step // p_blocks).to(tl.int64)
        pix = (step % p_blocks) * BLOCK_K + ks
        pix_ok = pix < OH * OW
        ih = (pix // OW) * SH - PH + r
        iw = (pix % OW) * SW - PW + s
        in_ok = pix_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        dy_tile = tl.load(dy_ptr + n * F * (OH * OW) + dy_rows[:, None] + pix[None, :],
                          mask=row_ok[:, None] & pix_ok[None, :], other=0.0)
        # x as (BLOCK_N, BLOCK_K): the threads of a warp walk pixels, contiguous along W.
        x_tile = tl.load(x_ptr + n * C * (H * W) + x_cols[:, None] + (ih * W + iw)[None, :],
                         mask=col_ok[:, None] & in_ok[None, :], other=0.0)
        acc = tl.dot(dy_tile, tl.trans(x_tile), acc, input_precision=PRECISION)

    out_base = partial_ptr + (split * F + group * FG).to(tl.int64) * (CG * KH * KW) + r * KW + s
    out_offs = (rows * (CG * KH * KW))[:, None] + (cols * (KH * KW))[None, :]
    tl.store(out_base + out_offs, acc, mask=row_ok[:, None] & col_ok[None, :])


@triton.jit
def conv2d_backward_bias_kernel(dy_ptr, partial_ptr, N, F, S, SLICE, BLOCK: tl.constexpr):
    """partial[s, f] = sum of dy[n, f, p] over slice s of the flat (n, p) index; grid (F, SPLIT).

    dy is (N, F, S) with S = OH*OW; slice s covers [s * SLICE, min((s + 1) * SLICE, N*S)).
    """
    f = tl.program_id(0)
    split = tl.program_id(1)
    start = split * SLICE
    end = tl.minimum(start + SLICE, N * S)
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for q0 in range(start, end, BLOCK):
        q = q0 + tl.arange(0, BLOCK)
        n = q // S
        offs = (n.to(tl.int64) * F + f) * S + (q % S)
        acc += tl.load(dy_ptr + offs, mask=q < end, other=0.0)
    tl.store(partial_ptr + split * F + f, tl.sum(acc, axis=0))


@triton.jit
def split_sum_kernel(partial_ptr, out_ptr, numel, SPLIT, BLOCK: tl.constexpr):
    """out[i] = sum over s of partial[s, i], added in the order s = 0, 1, ... (deterministic).

    partial is a contiguous (SPLIT, numel) float32 buffer; grid (cdiv(numel, BLOCK),).
    """
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for s in range(0, SPLIT):
        acc += tl.load(partial_ptr + s * numel + offs, mask=mask, other=0.0)
    tl.store(out_ptr + offs, acc, mask=mask)


# ----------------------------------------------------------------------------------------------------
# Host side
# ----------------------------------------------------------------------------------------------------


def _require_kernel_limits(op: str, g: Conv2dGeometry, grid_yz: int) -> None:
    """The kernels index inside one sample (and inside the filters) with 32-bit offsets, and their
    second and third grid axes hold at most 65535 programs (``grid_yz``: the largest of them)."""
    largest = max(g.c * g.h * g.w, g.f * g.oh * g.ow, g.f * g.c_per_group * g.kh * g.kw)
    if largest > INT32_MAX:
        raise ValueError(f"{op}: one sample or the filters hold {largest} elements; the Triton kernels index "
                         f"them with 32-bit offsets (at most {INT32_MAX})")
    if grid_yz > GRID_YZ_MAX:
        raise ValueError(f"{op}: {grid_yz} groups x stride phases (or taps) exceed the {GRID_YZ_MAX} programs "
                         f"of a grid axis")


def _fit(size: int, largest: int) -> int:
    """The power-of-2 block covering ``size``, between 16 (the smallest tl.dot operand) and ``largest``."""
    return max(16, min(triton.next_power_of_2(max(size, 1)), largest))


def _interpreter_config(rows: int, cols: int, depth: int, long_axis: str) -> triton.Config:
    """Interpreter tiles for a GEMM of ``rows`` x ``cols`` outputs and reduction blocks over ``depth``.

    The short axes get blocks of up to 64; the ``long_axis`` ("M": the pixel rows of the forward and
    data passes, "K": the pixel reduction of the filter gradient) gets what INTERPRETER_TILE_ELEMENTS
    leaves (a whole LeNet sample: 24 x 24 pixels in one 1024-row tile).
    """
    budget = INTERPRETER_TILE_ELEMENTS
    if long_axis == "M":
        block_n, block_k = _fit(cols, 64), _fit(depth, 64)
        block_m = _fit(rows, min(budget // block_k, 2 * budget // block_n))
    else:
        block_m, block_n = _fit(rows, 64), _fit(cols, 64)
        block_k = _fit(depth, budget // max(block_m, block_n))
    return _config(block_m, block_n, block_k, 4, 1)


def _fitted_tiles(kernel: Any, rows: int, cols: int, depth: int, long_axis: str) -> Any:
    """Context that runs ``kernel`` with tiles fitted to the launch in the interpreter (no-op on a GPU
    or with FIT_INTERPRETER_TILES off)."""
    if INTERPRET and FIT_INTERPRETER_TILES:
        return only_config(kernel, _interpreter_config(rows, cols, depth, long_axis))
    return contextlib.nullcontext()


def _geometry_args(g: Conv2dGeometry) -> tuple[int, ...]:
    """The size arguments every convolution kernel takes, in order."""
    return (g.n, g.c, g.h, g.w, g.f, g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.c_per_group, g.f_per_group)


def _is_pointwise(g: Conv2dGeometry) -> bool:
    """1x1, stride 1, no padding, one group: a batched GEMM on the (C, H*W) planes."""
    return (g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.groups) == (1, 1, 1, 1, 0, 0, 1)


@functools.cache
def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 132  # an H100's: the interpreter only needs a plausible value


def _split(length: int, programs_per_slice: int, min_slice: int, device: torch.device,
           max_split: int = MAX_SPLIT) -> tuple[int, int]:
    """(SPLIT, SLICE): how to cut a reduction of ``length`` so that about two programs run per SM.

    ``programs_per_slice`` is how many programs one slice already has; every slice keeps at least
    ``min_slice`` elements (one slice when the reduction is short).
    """
    want = triton.cdiv(2 * _sm_count(device), max(programs_per_slice, 1))
    split = max(1, min(want, length // min_slice, max_split))
    slice_len = max(triton.cdiv(length, split), 1)
    return triton.cdiv(length, slice_len) if length else 1, slice_len


def _sum_slices(partial: torch.Tensor, out: torch.Tensor) -> None:
    """out = partial.sum(0) over a contiguous (SPLIT, *out.shape) buffer, in a fixed order."""
    numel = out.numel()
    split_sum_kernel[(triton.cdiv(numel, REDUCE_BLOCK),)](partial, out, numel, partial.shape[0],
                                                          BLOCK=REDUCE_BLOCK, num_warps=SMALL_WARPS,
                                                          num_stages=SMALL_STAGES)


def conv2d_forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, y: torch.Tensor, stride: Any,
                   pad: Any, groups: int, neuron: str = "identity", negative_slope: float = 0.01) -> None:
    """y = neuron(conv(x, w) + b), cross-correlation per group (Caffe/Mocha convolution).

    x (N, C, H, W), w (F, C/G, KH, KW), b (F,) or None, y (N, F, OH, OW) with
    OH = (H + 2 PH - KH) // SH + 1; stride and pad are ints or (h, w) pairs. float32, contiguous.
    """
    op = "conv2d_forward"
    g = checks.check_conv2d_forward(x, w, b, y, stride, pad, groups, neuron, negative_slope, allowed=FLOAT32)
    same_device(op, {"x": x, "w": w, "b": b, "y": y})
    _require_kernel_limits(op, g, g.groups)
    if y.numel() == 0:
        return
    if _is_pointwise(g):
        # y[n] (F, H*W) = w (F, C) @ x[n] (C, H*W), bias per row.
        gemm(w.view(g.f, g.c), x.view(g.n, g.c, g.h * g.w), y.view(g.n, g.f, g.h * g.w), bias=b, bias_along="m",
             neuron=neuron, negative_slope=float(negative_slope))
        return

    def grid(meta: dict[str, Any]) -> tuple[int, int]:
        tiles = triton.cdiv(g.oh * g.ow, meta["BLOCK_M"]) * triton.cdiv(g.f_per_group, meta["BLOCK_N"])
        return g.n * tiles, g.groups

    with _fitted_tiles(conv2d_forward_kernel, g.oh * g.ow, g.f_per_group, g.c_per_group, "M"):
        conv2d_forward_kernel[grid](x, w, b if b is not None else y, y, *_geometry_args(g), float(negative_slope),
                                    HAS_BIAS=b is not None, NEURON=neuron_code(neuron), PRECISION=get_precision())


def conv2d_backward_data(dy: torch.Tensor, w: torch.Tensor, dx: torch.Tensor, stride: Any, pad: Any,
                         groups: int) -> None:
    """dx = gradient of conv2d_forward (before any neuron) w.r.t. x: the transposed convolution of dy.

    dy (N, F, OH, OW), w (F, C/G, KH, KW), dx (N, C, H, W), overwritten (pixels no window covers
    get 0). float32, contiguous.
    """
    op = "conv2d_backward_data"
    g = checks.check_conv2d_backward_data(dy, w, dx, stride, pad, groups, allowed=FLOAT32)
    same_device(op, {"dy": dy, "w": w, "dx": dx})
    _require_kernel_limits(op, g, g.groups * g.sh * g.sw)
    if dx.numel() == 0:
        return
    if _is_pointwise(g):
        # dx[n] (C, H*W) = w.T (C, F) @ dy[n] (F, H*W).
        gemm(w.view(g.f, g.c).t(), dy.view(g.n, g.f, g.h * g.w), dx.view(g.n, g.c, g.h * g.w))
        return

    def grid(meta: dict[str, Any]) -> tuple[int, int]:
        # Sized for the largest phase, (a, b) = (0, 0); smaller phases mask their extra rows.
        pixels = triton.cdiv(g.h, g.sh) * triton.cdiv(g.w, g.sw)
        tiles = triton.cdiv(pixels, meta["BLOCK_M"]) * triton.cdiv(g.c_per_group, meta["BLOCK_N"])
        return g.n * tiles, g.groups * g.sh * g.sw

    phase_pixels = triton.cdiv(g.h, g.sh) * triton.cdiv(g.w, g.sw)
    with _fitted_tiles(conv2d_backward_data_kernel, phase_pixels, g.c_per_group, g.f_per_group, "M"):
        conv2d_backward_data_kernel[grid](dy, w, dx, *_geometry_args(g), PRECISION=get_precision())


def conv2d_backward_weight(x: torch.Tensor, dy: torch.Tensor, dw: torch.Tensor, stride: Any, pad: Any,
                           groups: int) -> None:
    """dw = gradient of conv2d_forward (before any neuron) w.r.t. w, summed over the batch.

    x (N, C, H, W), dy (N, F, OH, OW), dw (F, C/G, KH, KW), overwritten. float32, contiguous.
    Deterministic: the same inputs give bit-identical dw.
    """
    op = "conv2d_backward_weight"
    g = checks.check_conv2d_backward_weight(x, dy, dw, stride, pad, groups, allowed=FLOAT32)
    same_device(op, {"x": x, "dy": dy, "dw": dw})
    _require_kernel_limits(op, g, max(g.groups, g.kh * g.kw))
    if dw.numel() == 0:
        return
    # Programs per slice: (filter tiles x channel tiles of 64) per tap and group; slices of samples.
    tiles = triton.cdiv(g.f_per_group, 64) * triton.cdiv(g.c_per_group, 64) * g.kh * g.kw * g.groups
    split, slice_len = _split(g.n, tiles, triton.cdiv(WEIGHT_MIN_SLICE, g.oh * g.ow), dw.device,
                              max_split=min(MAX_SPLIT, GRID_YZ_MAX // g.groups))
    partial = dw if split == 1 else torch.empty((split, *dw.shape), dtype=torch.float32, device=dw.device)

    def grid(meta: dict[str, Any]) -> tuple[int, int, int]:
        tiles = triton.cdiv(g.f_per_group, meta["BLOCK_M"]) * triton.cdiv(g.c_per_group, meta["BLOCK_N"])
        return tiles, g.kh * g.kw, g.groups * split

    with _fitted_tiles(conv2d_backward_weight_kernel, g.f_per_group, g.c_per_group, g.oh * g.ow, "K"):
        conv2d_backward_weight_kernel[grid](x, dy, partial, *_geometry_args(g), split, slice_len,
                                            PRECISION=get_precision())
    if split > 1:
        _sum_slices(partial, dw)


def conv2d_backward_bias(dy: torch.Tensor, db: torch.Tensor) -> None:
    """db[f] = sum of dy[:, f, :, :] (the bias gradient). dy (N, F, OH, OW), db (F,). Deterministic."""
    op = "conv2d_backward_bias"
    n, f, s = checks.check_conv2d_backward_bias(dy, db, allowed=FLOAT32)
    same_device(op, {"dy": dy, "db": db})
    if n * s > INT32_MAX:
        raise ValueError(f"{op}: dy has {n * s} values per channel; the Triton kernel counts them in 32 bits "
                         f"(at most {INT32_MAX})")
    if f == 0:
        return
    split, slice_len = _split(n * s, f, BIAS_MIN_SLICE, db.device)
    partial = db if split == 1 else torch.empty((split, f), dtype=torch.float32, device=db.device)
    conv2d_backward_bias_kernel[(f, split)](dy, partial, n, f, s, slice_len, BLOCK=BIAS_BLOCK,
                                            num_warps=SMALL_WARPS, num_stages=SMALL_STAGES)
    if split > 1:
        _sum_slices(partial, db)


def compile_cases() -> list[CompileCase]:
    """Every kernel for sm_90: the three GEMM kernels at each ``tl.dot`` precision (the forward with
    the heaviest epilogue: bias and sigmoid), and the two reduction kernels."""
    ptr, i32 = "*fp32", "i32"
    sizes = dict.fromkeys(["N", "C", "H", "W", "F", "OH", "OW", "KH", "KW", "SH", "SW", "PH", "PW", "CG", "FG"], i32)
    cases = []
    for precision in ("ieee", "tf32", "tf32x3"):
        cases += [
            CompileCase(conv2d_forward_kernel,
                        {"x_ptr": ptr, "w_ptr": ptr, "b_ptr": ptr, "y_ptr": ptr, **sizes, "negative_slope": "fp32"},
                        {"HAS_BIAS": True, "NEURON": neuron_code("sigmoid"), "PRECISION": precision},
                        label=precision),
            CompileCase(conv2d_backward_data_kernel, {"dy_ptr": ptr, "w_ptr": ptr, "dx_ptr": ptr, **sizes},
                        {"PRECISION": precision}, label=precision),
            CompileCase(conv2d_backward_weight_kernel,
                        {"x_ptr": ptr, "dy_ptr": ptr, "partial_ptr": ptr, **sizes, "SPLIT": i32, "SLICE": i32},
                        {"PRECISION": precision}, label=precision),
        ]
    cases += [
        CompileCase(conv2d_backward_bias_kernel,
                    {"dy_ptr": ptr, "partial_ptr": ptr, "N": i32, "F": i32, "S": i32, "SLICE": i32},
                    {"BLOCK": BIAS_BLOCK}, SMALL_WARPS, SMALL_STAGES),
        CompileCase(split_sum_kernel, {"partial_ptr": ptr, "out_ptr": ptr, "numel": "i64", "SPLIT": i32},
                    {"BLOCK": REDUCE_BLOCK}, SMALL_WARPS, SMALL_STAGES),
    ]
    return cases
