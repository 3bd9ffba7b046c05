"""Max and mean 2-D pooling in Triton, with Caffe's rules; max and mean channel pooling (1-D pooling along
the middle axis of an ``(M, C, S)`` view, Mocha's ChannelPoolingLayer).

Mirrors :mod:`mocha_triton.cpu_ref.pooling`; the rules (output size, window clipping, mean divisor,
first strict maximum, ``-inf``/NaN handling) are written down in :mod:`mocha_triton.checks.pooling`.

Organisation. Every kernel runs a 1-D grid of ``plane blocks * tiles`` programs (a flat grid, because
CUDA limits the second and third grid dimensions to 65535): program ``pid`` takes ``BLOCK_P``
consecutive ``(n, c)`` planes, block ``pid // tiles``, and inside each of them the same ``BLOCK_H x
BLOCK_W`` tile of pixels, ``pid % tiles``. Plane offsets are int64; offsets inside a plane are int32
(the checks bound a plane below 2**31 pixels).

* **Forward** (max and mean): a tile of *outputs*. The kernel walks the window taps: kernel rows in
  a runtime loop, kernel columns unrolled (``KW`` is a constexpr), so the usual 2x2/3x3 windows are
  fully unrolled rows while a global pool's ``H x W`` window does not unroll into ``H * W`` copies.
  Each tap is one masked load of the tile (``other=-inf`` for max, 0 for mean). Max keeps a running
  maximum and its int32 offset, replaced where a tap is strictly greater; mean accumulates in fp32
  and divides by the window size clipped to the padded image.
* **Backward** (max and mean): an atomic-free **gather**. A program owns a tile of *input* pixels and
  writes each ``dx`` element exactly once. For tap ``(r, s)``, pixel ``(ih, iw)`` is that tap of the
  output ``((ih + ph - r) / sh, (iw + pw - s) / sw)`` when both divisions are exact and land inside
  the output; max adds that output's ``dy`` when its argmax names the pixel, mean adds ``dy`` divided
  by the window's divisor. The sum is fp32, in a fixed order: deterministic, run to run.

Tile sizes are autotuned per shape (:func:`mocha_triton.kernels._runtime.autotune`); every output
element is overwritten by each run, so the autotuner's repeated launches are harmless. On a GPU
``BLOCK_P`` is 1 (one plane per program; a plane tile is already a warp's worth of work). Triton's
interpreter costs about (programs x tl ops), nearly whatever the tile size, and small planes (LeNet's
4x4 maps) would make thousands of tiny programs: there each launch fits its tiles to its shape
(:func:`_interpreter_config`), the whole plane in one tile and as many planes per program as fit in
``INTERPRETER_TILE_ELEMENTS``.

**Channel pooling** kernels stream the ``(M, R, S)`` array they write (``R = OC`` forward, ``C``
backward) as ``M * R`` rows of ``S`` elements, one ``BLOCK_R x BLOCK_S`` tile per program of a flat 1-D
grid (:func:`channel_blocks`: as much of a row as fits in a tile of ``CHANNEL_TILE`` elements, so the
loads are coalesced along ``s`` and ``S == 1``, pooling the last axis, still fills a tile with rows).
Rows are int64 and split into ``(m, r)`` once per row. The forwards walk the ``kernel`` taps of each
row's window in a runtime loop, one masked load per tap (``other=-inf`` for max, 0 for mean; mean
divides by ``kernel`` with ``div_rn``). The backwards are atomic-free gathers again: a lane owns one
input element ``(m, c, s)`` and visits the at most ``ceil(kernel / stride)`` windows that can hold
channel ``c``, the last one first, ``oc = (c + front) // stride`` (non-negative operands), the same
order in which the NumPy reference adds them.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import triton
import triton.language as tl

from mocha_triton.checks import pooling as checks
from mocha_triton.checks.pooling import ChannelPoolGeometry, Pool2dGeometry
from mocha_triton.kernels._runtime import INTERPRET, CompileCase, autotune, only_config, same_device

FLOAT32 = ("float32",)

# Pooled maps are small (LeNet 12x12 and 4x4, CIFAR 16x16 and 8x8), so the tiles are small too.
TILE_CONFIGS = [
    triton.Config({"BLOCK_P": 1, "BLOCK_H": 4, "BLOCK_W": 16}, num_warps=2, num_stages=1),
    triton.Config({"BLOCK_P": 1, "BLOCK_H": 8, "BLOCK_W": 16}, num_warps=4, num_stages=1),
    triton.Config({"BLOCK_P": 1, "BLOCK_H": 16, "BLOCK_W": 16}, num_warps=4, num_stages=1),
    triton.Config({"BLOCK_P": 1, "BLOCK_H": 8, "BLOCK_W": 32}, num_warps=4, num_stages=1),
    triton.Config({"BLOCK_P": 1, "BLOCK_H": 16, "BLOCK_W": 64}, num_warps=8, num_stages=1),
]
# The interpreter's fixed config, used when FIT_INTERPRETER_TILES is off (tests do that to cover
# several tiles per plane and a partial last plane block); otherwise _interpreter_config fits each launch.
INTERPRETER_CONFIG = triton.Config({"BLOCK_P": 2, "BLOCK_H": 4, "BLOCK_W": 4}, num_warps=4, num_stages=1)
FIT_INTERPRETER_TILES = True
INTERPRETER_TILE_ELEMENTS = 1 << 14  # pixels per fitted interpreter program
TUNE_KEY = ["H", "W", "OH", "OW", "KH", "KW", "SH", "SW"]
# Channel pooling streams (no autotuning): tiles of 1024 elements at 4 warps on a GPU (8 per thread),
# bigger ones in the interpreter, whose cost grows with the number of programs.
GPU_CHANNEL_TILE = 1024
CHANNEL_TILE = 8192 if INTERPRET else GPU_CHANNEL_TILE
CHANNEL_WARPS = 4
CHANNEL_STAGES = 1


@triton.jit
def _plane_tile(PLANES, OUT_H, OUT_W, BLOCK_P: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """This program's (BLOCK_P, 1, 1) planes (int64), and the (1, BLOCK_H, 1) rows and (1, 1, BLOCK_W)
    columns of its tile of an OUT_H x OUT_W grid of pixels, with the mask of the (BLOCK_P, BLOCK_H,
    BLOCK_W) lanes inside the PLANES planes and the grid."""
    pid = tl.program_id(0).to(tl.int64)
    tiles_w = tl.cdiv(OUT_W, BLOCK_W)
    tiles = tl.cdiv(OUT_H, BLOCK_H) * tiles_w
    planes = (pid // tiles) * BLOCK_P + tl.arange(0, BLOCK_P)[:, None, None]
    tile = (pid % tiles).to(tl.int32)
    rows = (tile // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)[None, :, None]
    cols = (tile % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)[None, None, :]
    return planes, rows, cols, (planes < PLANES) & (rows < OUT_H) & (cols < OUT_W)


@autotune(TILE_CONFIGS, key=TUNE_KEY, interpreter_config=INTERPRETER_CONFIG)
@triton.jit
def max_pool2d_forward_kernel(x_ptr, y_ptr, argmax_ptr, PLANES, H, W, OH, OW, KH, SH, SW, PH, PW,
                              KW: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_H: tl.constexpr,
                              BLOCK_W: tl.constexpr):
    """y[p, oh, ow] = first strict maximum of window (oh, ow) of plane p of x; argmax its offset."""
    planes, oh, ow, out_mask = _plane_tile(PLANES, OH, OW, BLOCK_P, BLOCK_H, BLOCK_W)
    x_plane = x_ptr + planes * H * W
    hstart = oh * SH - PH
    wstart = ow * SW - PW
    best = tl.full((BLOCK_P, BLOCK_H, BLOCK_W), float("-inf"), tl.float32)
    # Start at the window's first image pixel, so a window of -inf (or NaN) still names a pixel.
    index = tl.broadcast_to(tl.maximum(hstart, 0) * W + tl.maximum(wstart, 0), (BLOCK_P, BLOCK_H, BLOCK_W))
    for r in range(KH):
        ih = hstart + r
        row_ok = out_mask & (ih >= 0) & (ih < H)
        for s in tl.static_range(KW):
            iw = wstart + s
            ok = row_ok & (iw >= 0) & (iw < W)
            value = tl.load(x_plane + ih * W + iw, mask=ok, other=float("-inf"))
            greater = value > best  # NaN and masked lanes (-inf) are never greater
            best = tl.where(greater, value, best)
            index = tl.where(greater, ih * W + iw, index)
    out = planes * OH * OW + oh * OW + ow
    tl.store(y_ptr + out, best, mask=out_mask)
    tl.store(argmax_ptr + out, index, mask=out_mask)


@autotune(TILE_CONFIGS, key=TUNE_KEY, interpreter_config=INTERPRETER_CONFIG)
@triton.jit
def mean_pool2d_forward_kernel(x_ptr, y_ptr, PLANES, H, W, OH, OW, KH, SH, SW, PH, PW,
                               KW: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_H: tl.constexpr,
                               BLOCK_W: tl.constexpr):
    """y[p, oh, ow] = sum of window (oh, ow) of plane p of x / its size clipped to the padded image."""
    planes, oh, ow, out_mask = _plane_tile(PLANES, OH, OW, BLOCK_P, BLOCK_H, BLOCK_W)
    x_plane = x_ptr + planes * H * W
    hstart = oh * SH - PH
    wstart = ow * SW - PW
    total = tl.zeros((BLOCK_P, BLOCK_H, BLOCK_W), tl.float32)
    for r in range(KH):
        ih = hstart + r
        row_ok = out_mask & (ih >= 0) & (ih < H)
        for s in tl.static_range(KW):
            iw = wstart + s
            ok = row_ok & (iw >= 0) & (iw < W)
            total += tl.load(x_plane + ih * W + iw, mask=ok, other=0.0)
    size = (tl.minimum(hstart + KH, H + PH) - hstart) * (tl.minimum(wstart + KW, W + PW) - wstart)
    size = tl.where(out_mask, size, 1)  # lanes past the output: keep the division finite
    tl.store(y_ptr + planes * OH * OW + oh * OW + ow, total / size.to(tl.float32), mask=out_mask)


@autotune(TILE_CONFIGS, key=TUNE_KEY, interpreter_config=INTERPRETER_CONFIG)
@triton.jit
def max_pool2d_backward_kernel(dy_ptr, argmax_ptr, dx_ptr, PLANES, H, W, OH, OW, KH, SH, SW, PH, PW,
                               KW: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_H: tl.constexpr,
                               BLOCK_W: tl.constexpr):
    """dx[p, ih, iw] = sum of dy[p, oh, ow] over the windows (oh, ow) whose argmax is ih * W + iw."""
    planes, ih, iw, in_mask = _plane_tile(PLANES, H, W, BLOCK_P, BLOCK_H, BLOCK_W)
    here = ih * W + iw
    out_plane = planes * OH * OW
    total = tl.zeros((BLOCK_P, BLOCK_H, BLOCK_W), tl.float32)
    for r in range(KH):
        # (ih, iw) is tap (r, s) of output (oh, ow) when ih = oh * SH - PH + r (and alike for iw).
        # Non-negative before dividing: Triton's integer division truncates, the interpreter floors.
        h_from = ih + PH - r
        oh = h_from // SH
        row_ok = in_mask & (h_from >= 0) & (h_from % SH == 0) & (oh < OH)
        for s in tl.static_range(KW):
            w_from = iw + PW - s
            ow = w_from // SW
            ok = row_ok & (w_from >= 0) & (w_from % SW == 0) & (ow < OW)
            out = out_plane + oh * OW + ow
            chosen = tl.load(argmax_ptr + out, mask=ok, other=-1)
            total += tl.load(dy_ptr + out, mask=ok & (chosen == here), other=0.0)
    tl.store(dx_ptr + planes * H * W + here, total, mask=in_mask)


@autotune(TILE_CONFIGS, key=TUNE_KEY, interpreter_config=INTERPRETER_CONFIG)
@triton.jit
def mean_pool2d_backward_kernel(dy_ptr, dx_ptr, PLANES, H, W, OH, OW, KH, SH, SW, PH, PW,
                                KW: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_H: tl.constexpr,
                                BLOCK_W: tl.constexpr):
    """dx[p, ih, iw] = sum of dy[p, oh, ow] / divisor(oh, ow) over the windows (oh, ow) holding it."""
    planes, ih, iw, in_mask = _plane_tile(PLANES, H, W, BLOCK_P, BLOCK_H, BLOCK_W)
    out_plane = planes * OH * OW
    total = tl.zeros((BLOCK_P, BLOCK_H, BLOCK_W), tl.float32)
    for r in range(KH):
        h_from = ih + PH - r  # see max_pool2d_backward_kernel
        oh = h_from // SH
        row_ok = in_mask & (h_from >= 0) & (h_from % SH == 0) & (oh < OH)
        hstart = oh * SH - PH
        rows = tl.minimum(hstart + KH, H + PH) - hstart
        for s in tl.static_range(KW):
            w_from = iw + PW - s
            ow = w_from // SW
            ok = row_ok & (w_from >= 0) & (w_from % SW == 0) & (ow < OW)
            wstart = ow * SW - PW
            size = tl.where(ok, rows * (tl.minimum(wstart + KW, W + PW) - wstart), 1)
            grad = tl.load(dy_ptr + out_plane + oh * OW + ow, mask=ok, other=0.0)
            total += grad / size.to(tl.float32)
    tl.store(dx_ptr + planes * H * W + ih * W + iw, total, mask=in_mask)


def _sizes(g: Pool2dGeometry) -> tuple[int, ...]:
    """The runtime size arguments every kernel takes, in order: PLANES, H, W, OH, OW, KH, SH, SW, PH, PW."""
    return (g.planes, g.h, g.w, g.oh, g.ow, g.kh, g.sh, g.sw, g.ph, g.pw)


def _interpreter_config(planes: int, rows: int, cols: int) -> triton.Config:
    """Interpreter tiles fitted to a launch over ``planes`` grids of rows x cols pixels: the whole
    grid in one tile (up to 64 x 64) and as many planes per program as INTERPRETER_TILE_ELEMENTS allows."""
    block_h = min(triton.next_power_of_2(rows), 64)
    block_w = min(triton.next_power_of_2(cols), 64)
    block_p = min(triton.next_power_of_2(planes), max(INTERPRETER_TILE_ELEMENTS // (block_h * block_w), 1))
    return triton.Config({"BLOCK_P": block_p, "BLOCK_H": block_h, "BLOCK_W": block_w}, num_warps=4, num_stages=1)


def _launch(kernel: Any, g: Pool2dGeometry, rows: int, cols: int, *args: Any) -> None:
    """Run ``kernel`` over the g.planes grids of rows x cols pixels it writes (outputs for the forward
    kernels, input pixels for the backward ones); one program per (block of BLOCK_P planes, tile)."""
    def grid(meta: dict[str, Any]) -> tuple[int]:
        tiles = triton.cdiv(rows, meta["BLOCK_H"]) * triton.cdiv(cols, meta["BLOCK_W"])
        return (triton.cdiv(g.planes, meta["BLOCK_P"]) * tiles,)

    fit = INTERPRET and FIT_INTERPRETER_TILES
    with only_config(kernel, _interpreter_config(g.planes, rows, cols)) if fit else contextlib.nullcontext():
        kernel[grid](*args, *_sizes(g), KW=g.kw)


def max_pool2d_forward(x: torch.Tensor, y: torch.Tensor, argmax: torch.Tensor, kernel: tuple[int, int],
                       stride: tuple[int, int], pad: tuple[int, int], ceil_mode: bool = True) -> None:
    """y[n, c, oh, ow] = max of x over window (oh, ow); argmax = its int32 offset h * W + w.

    x (N, C, H, W) float32; y (N, C, OH, OW) float32 and argmax (N, C, OH, OW) int32, with (OH, OW)
    from ``pool2d_output_size``. The first strict maximum in row-major window order wins.
    """
    g = checks.check_max_pool2d_forward(x, y, argmax, kernel, stride, pad, ceil_mode, FLOAT32)
    same_device("max_pool2d_forward", {"x": x, "y": y, "argmax": argmax})
    if g.planes:
        _launch(max_pool2d_forward_kernel, g, g.oh, g.ow, x, y, argmax)


def max_pool2d_backward(dy: torch.Tensor, argmax: torch.Tensor, dx: torch.Tensor, kernel: tuple[int, int],
                        stride: tuple[int, int], pad: tuple[int, int]) -> None:
    """dx[n, c, h, w] = sum of dy[n, c, oh, ow] over the windows whose argmax is h * W + w.

    dy (N, C, OH, OW) float32 and argmax (N, C, OH, OW) int32 from :func:`max_pool2d_forward` with the
    same geometry; dx (N, C, H, W) float32, every element written once (a gather, no atomics).
    """
    g = checks.check_max_pool2d_backward(dy, argmax, dx, kernel, stride, pad, FLOAT32)
    same_device("max_pool2d_backward", {"dy": dy, "argmax": argmax, "dx": dx})
    if g.planes:
        _launch(max_pool2d_backward_kernel, g, g.h, g.w, dy, argmax, dx)


def mean_pool2d_forward(x: torch.Tensor, y: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                        pad: tuple[int, int], ceil_mode: bool = True) -> None:
    """y[n, c, oh, ow] = (sum of x over window (oh, ow) clipped to the image) / divisor(oh, ow).

    x (N, C, H, W) float32; y (N, C, OH, OW) float32. The divisor is the window size clipped to the
    padded image (Caffe). Sums are fp32, taps in row-major order.
    """
    g = checks.check_mean_pool2d_forward(x, y, kernel, stride, pad, ceil_mode, FLOAT32)
    same_device("mean_pool2d_forward", {"x": x, "y": y})
    if g.planes:
        _launch(mean_pool2d_forward_kernel, g, g.oh, g.ow, x, y)


def mean_pool2d_backward(dy: torch.Tensor, dx: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                         pad: tuple[int, int], ceil_mode: bool = True) -> None:
    """dx[n, c, h, w] = sum of dy[n, c, oh, ow] / divisor(oh, ow) over the windows holding (h, w).

    dy (N, C, OH, OW) float32, dx (N, C, H, W) float32, the geometry of :func:`mean_pool2d_forward`;
    every element of dx written once (a gather, no atomics).
    """
    g = checks.check_mean_pool2d_backward(dy, dx, kernel, stride, pad, ceil_mode, FLOAT32)
    same_device("mean_pool2d_backward", {"dy": dy, "dx": dx})
    if g.planes:
        _launch(mean_pool2d_backward_kernel, g, g.h, g.w, dy, dx)


# --- channel pooling ----------------------------------------------------------------------------------


@triton.jit
def _channel_tile(ROWS, R, S, BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
    """This program's tile of an (M, R, S) array seen as ROWS = M * R rows of S elements: the (BLOCK_R, 1)
    int64 flat rows, split into m and r (one division per row, not per element), the (1, BLOCK_S)
    columns s, and the mask of the tile's lanes inside the array."""
    pid = tl.program_id(0).to(tl.int64)
    tiles_s = tl.cdiv(S, BLOCK_S)
    rows = (pid // tiles_s) * BLOCK_R + tl.arange(0, BLOCK_R)[:, None]
    s = (pid % tiles_s) * BLOCK_S + tl.arange(0, BLOCK_S)[None, :]
    return rows, rows // R, rows % R, s, (rows < ROWS) & (s < S)


@triton.jit
def max_channel_pool_forward_kernel(x_ptr, y_ptr, argmax_ptr, ROWS, C, S, OC, K, STRIDE, FRONT,
                                    BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
    """y[m, oc, s] = first strict maximum of x[m, c, s] over window oc; argmax its channel c (int32)."""
    rows, m, oc, s, mask = _channel_tile(ROWS, OC, S, BLOCK_R, BLOCK_S)
    start = oc * STRIDE - FRONT
    x_lane = x_ptr + m * C * S + s
    best = tl.full((BLOCK_R, BLOCK_S), float("-inf"), tl.float32)
    # Start at the window's first channel, so a window of -inf (or NaN) still names one.
    index = tl.broadcast_to(tl.maximum(start, 0), (BLOCK_R, BLOCK_S))
    for t in range(K):
        c = start + t
        value = tl.load(x_lane + c * S, mask=mask & (c >= 0) & (c < C), other=float("-inf"))
        greater = value > best  # NaN and masked lanes (-inf) are never greater
        best = tl.where(greater, value, best)
        index = tl.where(greater, c, index)
    out = rows * S + s
    tl.store(y_ptr + out, best, mask=mask)
    tl.store(argmax_ptr + out, index.to(tl.int32), mask=mask)


@triton.jit
def mean_channel_pool_forward_kernel(x_ptr, y_ptr, ROWS, C, S, OC, K, STRIDE, FRONT,
                                     BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
    """y[m, oc, s] = sum of x[m, c, s] over the channels of window oc, divided by K (Mocha)."""
    rows, m, oc, s, mask = _channel_tile(ROWS, OC, S, BLOCK_R, BLOCK_S)
    start = oc * STRIDE - FRONT
    x_lane = x_ptr + m * C * S + s
    total = tl.zeros((BLOCK_R, BLOCK_S), tl.float32)
    for t in range(K):
        c = start + t
        total += tl.load(x_lane + c * S, mask=mask & (c >= 0) & (c < C), other=0.0)
    tl.store(y_ptr + rows * S + s, tl.div_rn(total, tl.full((BLOCK_R, BLOCK_S), K, tl.float32)), mask=mask)


@triton.jit
def max_channel_pool_backward_kernel(dy_ptr, argmax_ptr, dx_ptr, ROWS, C, S, OC, K, STRIDE, FRONT, WINDOWS,
                                     BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
    """dx[m, c, s] = sum of dy[m, oc, s] over the windows oc holding channel c whose argmax is c; the
    WINDOWS = ceil(K / STRIDE) candidates oc = (c + FRONT) // STRIDE - j, j = 0, 1, ..."""
    rows, m, c, s, mask = _channel_tile(ROWS, C, S, BLOCK_R, BLOCK_S)
    last = (c + FRONT) // STRIDE  # the last window starting at or before c
    out_lane = m * OC * S + s
    total = tl.zeros((BLOCK_R, BLOCK_S), tl.float32)
    for j in range(WINDOWS):
        oc = last - j
        ok = mask & (oc >= 0) & (oc < OC) & (c < oc * STRIDE - FRONT + K)
        out = out_lane + oc * S
        chosen = tl.load(argmax_ptr + out, mask=ok, other=-1)
        total += tl.load(dy_ptr + out, mask=ok & (chosen == c), other=0.0)
    tl.store(dx_ptr + rows * S + s, total, mask=mask)


@triton.jit
def mean_channel_pool_backward_kernel(dy_ptr, dx_ptr, ROWS, C, S, OC, K, STRIDE, FRONT, WINDOWS,
                                      BLOCK_R: tl.constexpr, BLOCK_S: tl.constexpr):
    """dx[m, c, s] = sum of dy[m, oc, s] / K over the windows oc holding channel c (candidates as in
    max_channel_pool_backward_kernel)."""
    rows, m, c, s, mask = _channel_tile(ROWS, C, S, BLOCK_R, BLOCK_S)
    last = (c + FRONT) // STRIDE
    out_lane = m * OC * S + s
    divisor = tl.full((BLOCK_R, BLOCK_S), K, tl.float32)
    total = tl.zeros((BLOCK_R, BLOCK_S), tl.float32)
    for j in range(WINDOWS):
        oc = last - j
        ok = mask & (oc >= 0) & (oc < OC) & (c < oc * STRIDE - FRONT + K)
        total += tl.div_rn(tl.load(dy_ptr + out_lane + oc * S, mask=ok, other=0.0), divisor)
    tl.store(dx_ptr + rows * S + s, total, mask=mask)


def channel_blocks(s: int, tile: int | None = None) -> tuple[int, int]:
    """(BLOCK_R, BLOCK_S) of a channel-pooling tile of ``tile`` elements (default CHANNEL_TILE, read at
    each launch) for rows of s elements: as much of a row as fits (a power of two), and as many rows as
    fill the tile."""
    tile = CHANNEL_TILE if tile is None else tile
    block_s = min(triton.next_power_of_2(s), tile)
    return tile // block_s, block_s


def _channel_launch(kernel: Any, g: ChannelPoolGeometry, tensors: tuple[torch.Tensor, ...], backward: bool) -> None:
    """Run a channel-pooling kernel on ``tensors`` over the rows of S elements it writes (M * OC for the
    forwards, M * C for the backwards, which also take the number of candidate windows): one program
    per tile, a flat 1-D grid."""
    total_rows = g.m * (g.c if backward else g.oc)
    if total_rows * g.s == 0:
        return
    block_r, block_s = channel_blocks(g.s)
    grid = (triton.cdiv(total_rows, block_r) * triton.cdiv(g.s, block_s),)
    windows = (triton.cdiv(g.kernel, g.stride),) if backward else ()
    kernel[grid](*tensors, total_rows, g.c, g.s, g.oc, g.kernel, g.stride, g.front, *windows,
                 BLOCK_R=block_r, BLOCK_S=block_s, num_warps=CHANNEL_WARPS, num_stages=CHANNEL_STAGES)


def max_channel_pool_forward(x: torch.Tensor, y: torch.Tensor, argmax: torch.Tensor, kernel: int, stride: int,
                             pad: tuple[int, int]) -> None:
    """y[m, oc, s] = max of x[m, c, s] over window oc; argmax = its int32 channel index c.

    x (M, C, S) float32; y (M, OC, S) float32 and argmax (M, OC, S) int32 with OC from
    ``channel_pool_output_size``; pad = (front, back). The first strict maximum along the axis wins.
    """
    g = checks.check_max_channel_pool_forward(x, y, argmax, kernel, stride, pad, FLOAT32)
    same_device("max_channel_pool_forward", {"x": x, "y": y, "argmax": argmax})
    _channel_launch(max_channel_pool_forward_kernel, g, (x, y, argmax), backward=False)


def max_channel_pool_backward(dy: torch.Tensor, argmax: torch.Tensor, dx: torch.Tensor, kernel: int, stride: int,
                              pad: tuple[int, int]) -> None:
    """dx[m, c, s] = sum of dy[m, oc, s] over the windows oc that hold channel c and whose argmax is c.

    dy (M, OC, S) float32 and argmax (M, OC, S) int32 from :func:`max_channel_pool_forward`; dx (M, C, S)
    float32, every element written once (a gather, no atomics).
    """
    g = checks.check_max_channel_pool_backward(dy, argmax, dx, kernel, stride, pad, FLOAT32)
    same_device("max_channel_pool_backward", {"dy": dy, "argmax": argmax, "dx": dx})
    _channel_launch(max_channel_pool_backward_kernel, g, (dy, argmax, dx), backward=True)


def mean_channel_pool_forward(x: torch.Tensor, y: torch.Tensor, kernel: int, stride: int,
                              pad: tuple[int, int]) -> None:
    """y[m, oc, s] = (sum of x[m, c, s] over the channels of window oc) / kernel (Mocha's divisor).

    x (M, C, S) float32; y (M, OC, S) float32. Sums are fp32, channels in increasing order.
    """
    g = checks.check_mean_channel_pool_forward(x, y, kernel, stride, pad, FLOAT32)
    same_device("mean_channel_pool_forward", {"x": x, "y": y})
    _channel_launch(mean_channel_pool_forward_kernel, g, (x, y), backward=False)


def mean_channel_pool_backward(dy: torch.Tensor, dx: torch.Tensor, kernel: int, stride: int,
                               pad: tuple[int, int]) -> None:
    """dx[m, c, s] = sum of dy[m, oc, s] / kernel over the windows oc holding channel c.

    dy (M, OC, S) float32, dx (M, C, S) float32, the geometry of :func:`mean_channel_pool_forward`; every
    element of dx written once (a gather, no atomics).
    """
    g = checks.check_mean_channel_pool_backward(dy, dx, kernel, stride, pad, FLOAT32)
    same_device("mean_channel_pool_backward", {"dy": dy, "dx": dx})
    _channel_launch(mean_channel_pool_backward_kernel, g, (dy, dx), backward=True)


def compile_cases() -> list[CompileCase]:
    f32, i32 = "*fp32", "*i32"
    sizes = {"PLANES": "i64", **dict.fromkeys(("H", "W", "OH", "OW", "KH", "SH", "SW", "PH", "PW"), "i32")}
    cases = []
    for kw in (3, 7):  # a CIFAR-style 3x3 window and a wide (global 7x7) one
        knobs = {"KW": kw}
        cases += [
            CompileCase(max_pool2d_forward_kernel, {"x_ptr": f32, "y_ptr": f32, "argmax_ptr": i32, **sizes},
                        knobs, label=f"KW={kw}"),
            CompileCase(mean_pool2d_forward_kernel, {"x_ptr": f32, "y_ptr": f32, **sizes}, knobs, label=f"KW={kw}"),
            CompileCase(max_pool2d_backward_kernel, {"dy_ptr": f32, "argmax_ptr": i32, "dx_ptr": f32, **sizes},
                        knobs, label=f"KW={kw}"),
            CompileCase(mean_pool2d_backward_kernel, {"dy_ptr": f32, "dx_ptr": f32, **sizes}, knobs,
                        label=f"KW={kw}"),
        ]
    channel = {"ROWS": "i64", "C": "i32", "S": "i64", "OC": "i32", "K": "i32", "STRIDE": "i32", "FRONT": "i32"}
    for s in (1, 49, 4096):  # pooling the last axis, a 7x7 map, a 64x64 map
        block_r, block_s = channel_blocks(s, GPU_CHANNEL_TILE)
        knobs, label = {"BLOCK_R": block_r, "BLOCK_S": block_s}, f"S={s}"
        cases += [
            CompileCase(max_channel_pool_forward_kernel, {"x_ptr": f32, "y_ptr": f32, "argmax_ptr": i32, **channel},
                        knobs, CHANNEL_WARPS, CHANNEL_STAGES, label),
            CompileCase(mean_channel_pool_forward_kernel, {"x_ptr": f32, "y_ptr": f32, **channel},
                        knobs, CHANNEL_WARPS, CHANNEL_STAGES, label),
            CompileCase(max_channel_pool_backward_kernel, {"dy_ptr": f32, "argmax_ptr": i32, "dx_ptr": f32,
                                                           **channel, "WINDOWS": "i32"},
                        knobs, CHANNEL_WARPS, CHANNEL_STAGES, label),
            CompileCase(mean_channel_pool_backward_kernel, {"dy_ptr": f32, "dx_ptr": f32, **channel,
                                                            "WINDOWS": "i32"},
                        knobs, CHANNEL_WARPS, CHANNEL_STAGES, label),
        ]
    return cases
