"""Max and mean 2-D pooling in Triton, with Caffe's rules.

Mirrors :mod:`mocha_triton.cpu_ref.pooling`; the rules (output size, window clipping, mean divisor,
first strict maximum, ``-inf``/NaN handling) are written down in :mod:`mocha_triton.checks.pooling`.

Organisation. Every kernel runs a 1-D grid of ``planes * tiles`` programs: program ``pid`` takes the
``(n, c)`` plane ``pid // tiles`` and, inside it, one ``BLOCK_H x BLOCK_W`` tile of pixels (a flat grid,
because CUDA limits the second and third grid dimensions to 65535). Plane offsets are int64; offsets
inside a plane are int32 (the checks bound a plane below 2**31 pixels).

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
element is overwritten by each run, so the autotuner's repeated launches are harmless.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import pooling as checks
from mocha_triton.checks.pooling import Pool2dGeometry
from mocha_triton.kernels._runtime import CompileCase, autotune, same_device

FLOAT32 = ("float32",)

# Pooled maps are small (LeNet 12x12 and 4x4, CIFAR 16x16 and 8x8), so the tiles are small too.
TILE_CONFIGS = [
    triton.Config({"BLOCK_H": 4, "BLOCK_W": 16}, num_warps=2, num_stages=1),
    triton.Config({"BLOCK_H": 8, "BLOCK_W": 16}, num_warps=4, num_stages=1),
    triton.Config({"BLOCK_H": 16, "BLOCK_W": 16}, num_warps=4, num_stages=1),
    triton.Config({"BLOCK_H": 8, "BLOCK_W": 32}, num_warps=4, num_stages=1),
    triton.Config({"BLOCK_H": 16, "BLOCK_W": 64}, num_warps=8, num_stages=1),
]
# The interpreter's cost grows with the number of programs: one large tile covers a test plane.
INTERPRETER_CONFIG = triton.Config({"BLOCK_H": 32, "BLOCK_W": 32}, num_warps=4, num_stages=1)
TUNE_KEY = ["H", "W", "OH", "OW", "KH", "KW", "SH", "SW"]


@triton.jit
def _plane_tile(OUT_H, OUT_W, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """This program's plane (int64) and the (BLOCK_H, 1) rows and (1, BLOCK_W) columns of its tile
    of an OUT_H x OUT_W grid of pixels, with the mask of those inside the grid."""
    pid = tl.program_id(0).to(tl.int64)
    tiles_w = tl.cdiv(OUT_W, BLOCK_W)
    tiles = tl.cdiv(OUT_H, BLOCK_H) * tiles_w
    plane = pid // tiles
    tile = (pid % tiles).to(tl.int32)
    rows = (tile // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)[:, None]
    cols = (tile % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)[None, :]
    return plane, rows, cols, (rows < OUT_H) & (cols < OUT_W)


@autotune(TILE_CONFIGS, key=TUNE_KEY, interpreter_config=INTERPRETER_CONFIG)
@triton.jit
def max_pool2d_forward_kernel(x_ptr, y_ptr, argmax_ptr, H, W, OH, OW, KH, SH, SW, PH, PW,
                              KW: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """y[p, oh, ow] = first strict maximum of window (oh, ow) of plane p of x; argmax its offset."""
    plane, oh, ow, out_mask = _plane_tile(OH, OW, BLOCK_H, BLOCK_W)
    x_plane = x_ptr + plane * H * W
    hstart = oh * SH - PH
    wstart = ow * SW - PW
    best = tl.full((BLOCK_H, BLOCK_W), float("-inf"), tl.float32)
    # Start at the window's first image pixel, so a window of -inf (or NaN) still names a pixel.
    index = tl.maximum(hstart, 0) * W + tl.maximum(wstart, 0)
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
    out = plane * OH * OW + oh * OW + ow
    tl.store(y_ptr + out, best, mask=out_mask)
    tl.store(argmax_ptr + out, index, mask=out_mask)


@autotune(TILE_CONFIGS, key=TUNE_KEY, interpreter_config=INTERPRETER_CONFIG)
@triton.jit
def mean_pool2d_forward_kernel(x_ptr, y_ptr, H, W, OH, OW, KH, SH, SW, PH, PW,
                               KW: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """y[p, oh, ow] = sum of window (oh, ow) of plane p of x / its size clipped to the padded image."""
    plane, oh, ow, out_mask = _plane_tile(OH, OW, BLOCK_H, BLOCK_W)
    x_plane = x_ptr + plane * H * W
    hstart = oh * SH - PH
    wstart = ow * SW - PW
    total = tl.zeros((BLOCK_H, BLOCK_W), tl.float32)
    for r in range(KH):
        ih = hstart + r
        row_ok = out_mask & (ih >= 0) & (ih < H)
        for s in tl.static_range(KW):
            iw = wstart + s
            ok = row_ok & (iw >= 0) & (iw < W)
            total += tl.load(x_plane + ih * W + iw, mask=ok, other=0.0)
    size = (tl.minimum(hstart + KH, H + PH) - hstart) * (tl.minimum(wstart + KW, W + PW) - wstart)
    size = tl.where(out_mask, size, 1)  # lanes past the output: keep the division finite
    tl.store(y_ptr + plane * OH * OW + oh * OW + ow, total / size.to(tl.float32), mask=out_mask)


@autotune(TILE_CONFIGS, key=TUNE_KEY, interpreter_config=INTERPRETER_CONFIG)
@triton.jit
def max_pool2d_backward_kernel(dy_ptr, argmax_ptr, dx_ptr, H, W, OH, OW, KH, SH, SW, PH, PW,
                               KW: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """dx[p, ih, iw] = sum of dy[p, oh, ow] over the windows (oh, ow) whose argmax is ih * W + iw."""
    plane, ih, iw, in_mask = _plane_tile(H, W, BLOCK_H, BLOCK_W)
    here = ih * W + iw
    out_plane = plane * OH * OW
    total = tl.zeros((BLOCK_H, BLOCK_W), tl.float32)
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
    tl.store(dx_ptr + plane * H * W + here, total, mask=in_mask)


@autotune(TILE_CONFIGS, key=TUNE_KEY, interpreter_config=INTERPRETER_CONFIG)
@triton.jit
def mean_pool2d_backward_kernel(dy_ptr, dx_ptr, H, W, OH, OW, KH, SH, SW, PH, PW,
                                KW: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr):
    """dx[p, ih, iw] = sum of dy[p, oh, ow] / divisor(oh, ow) over the windows (oh, ow) holding it."""
    plane, ih, iw, in_mask = _plane_tile(H, W, BLOCK_H, BLOCK_W)
    out_plane = plane * OH * OW
    total = tl.zeros((BLOCK_H, BLOCK_W), tl.float32)
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
    tl.store(dx_ptr + plane * H * W + ih * W + iw, total, mask=in_mask)


def _sizes(g: Pool2dGeometry) -> tuple[int, ...]:
    """The runtime size arguments every kernel takes, in order: H, W, OH, OW, KH, SH, SW, PH, PW."""
    return (g.h, g.w, g.oh, g.ow, g.kh, g.sh, g.sw, g.ph, g.pw)


def _grid(planes: int, rows: int, cols: int):
    """Launch grid: one program per (plane, BLOCK_H x BLOCK_W tile of a rows x cols grid)."""
    return lambda meta: (planes * triton.cdiv(rows, meta["BLOCK_H"]) * triton.cdiv(cols, meta["BLOCK_W"]),)


def max_pool2d_forward(x: torch.Tensor, y: torch.Tensor, argmax: torch.Tensor, kernel: tuple[int, int],
                       stride: tuple[int, int], pad: tuple[int, int], ceil_mode: bool = True) -> None:
    """y[n, c, oh, ow] = max of x over window (oh, ow); argmax = its int32 offset h * W + w.

    x (N, C, H, W) float32; y (N, C, OH, OW) float32 and argmax (N, C, OH, OW) int32, with (OH, OW)
    from ``pool2d_output_size``. The first strict maximum in row-major window order wins.
    """
    g = checks.check_max_pool2d_forward(x, y, argmax, kernel, stride, pad, ceil_mode, FLOAT32)
    same_device("max_pool2d_forward", {"x": x, "y": y, "argmax": argmax})
    if g.planes:
        max_pool2d_forward_kernel[_grid(g.planes, g.oh, g.ow)](x, y, argmax, *_sizes(g), KW=g.kw)


def max_pool2d_backward(dy: torch.Tensor, argmax: torch.Tensor, dx: torch.Tensor, kernel: tuple[int, int],
                        stride: tuple[int, int], pad: tuple[int, int]) -> None:
    """dx[n, c, h, w] = sum of dy[n, c, oh, ow] over the windows whose argmax is h * W + w.

    dy (N, C, OH, OW) float32 and argmax (N, C, OH, OW) int32 from :func:`max_pool2d_forward` with the
    same geometry; dx (N, C, H, W) float32, every element written once (a gather, no atomics).
    """
    g = checks.check_max_pool2d_backward(dy, argmax, dx, kernel, stride, pad, FLOAT32)
    same_device("max_pool2d_backward", {"dy": dy, "argmax": argmax, "dx": dx})
    if g.planes:
        max_pool2d_backward_kernel[_grid(g.planes, g.h, g.w)](dy, argmax, dx, *_sizes(g), KW=g.kw)


def mean_pool2d_forward(x: torch.Tensor, y: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                        pad: tuple[int, int], ceil_mode: bool = True) -> None:
    """y[n, c, oh, ow] = (sum of x over window (oh, ow) clipped to the image) / divisor(oh, ow).

    x (N, C, H, W) float32; y (N, C, OH, OW) float32. The divisor is the window size clipped to the
    padded image (Caffe). Sums are fp32, taps in row-major order.
    """
    g = checks.check_mean_pool2d_forward(x, y, kernel, stride, pad, ceil_mode, FLOAT32)
    same_device("mean_pool2d_forward", {"x": x, "y": y})
    if g.planes:
        mean_pool2d_forward_kernel[_grid(g.planes, g.oh, g.ow)](x, y, *_sizes(g), KW=g.kw)


def mean_pool2d_backward(dy: torch.Tensor, dx: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                         pad: tuple[int, int], ceil_mode: bool = True) -> None:
    """dx[n, c, h, w] = sum of dy[n, c, oh, ow] / divisor(oh, ow) over the windows holding (h, w).

    dy (N, C, OH, OW) float32, dx (N, C, H, W) float32, the geometry of :func:`mean_pool2d_forward`;
    every element of dx written once (a gather, no atomics).
    """
    g = checks.check_mean_pool2d_backward(dy, dx, kernel, stride, pad, ceil_mode, FLOAT32)
    same_device("mean_pool2d_backward", {"dy": dy, "dx": dx})
    if g.planes:
        mean_pool2d_backward_kernel[_grid(g.planes, g.h, g.w)](dy, dx, *_sizes(g), KW=g.kw)


def compile_cases() -> list[CompileCase]:
    f32, i32 = "*fp32", "*i32"
    sizes = dict.fromkeys(("H", "W", "OH", "OW", "KH", "SH", "SW", "PH", "PW"), "i32")
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
    return cases
