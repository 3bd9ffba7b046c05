"""Local response normalization and the power function in Triton.

Mirrors :mod:`mocha_triton.cpu_ref.normalization`; the formulas and argument rules are written down in
:mod:`mocha_triton.checks.normalization`. Sums are fp32 except the sliding sums below (fp64);
``b ** p`` for a positive base is ``exp2(p * log2(b))``.

Organisation.

* **LRN across channels** (:func:`lrn_across_forward_kernel`, :func:`lrn_across_backward_kernel`): a
  1-D grid of ``N * cdiv(H * W, BLOCK_S)`` programs; program ``pid`` owns ``BLOCK_S`` consecutive
  pixels of sample ``pid // tiles`` and walks the channels ``c = 0 .. C - 1`` in a loop, keeping the
  window sum in registers as a **sliding window**: each step adds the channel entering the window
  and subtracts the one leaving it (two loads per step, whatever ``size``; Caffe's CPU code slides the
  same way). The forward slides ``x**2`` over ``[c - pre, c + post]``; the backward slides
  ``dy * y / scale`` over the transposed window ``[c - post, c + pre]``. The sliding sum is kept in
  **fp64**: in fp32 the rounding of each addition would stay in the sum for every later channel, so
  one large channel (1000x its neighbours) would leave an error of the order of ulp(its square) on all
  the channels after it (Caffe's fp32 code has that flaw); fp64 sums of fp32 terms make it negligible.
  Lanes are contiguous pixels, so every load is coalesced. Sample offsets are int64.
* **LRN within a channel** (:func:`lrn_within_forward_kernel`, :func:`lrn_within_backward_kernel`): a
  1-D grid over blocks of ``BLOCK_P`` planes ``(n, c)`` times blocks of ``BLOCK_S`` pixels of a plane
  (flat ``h * W + w``); each program loops over the ``size x size`` taps (runtime loops), one masked
  load per tap (``other=0``: zero padding), like mean pooling with stride 1. The backward gathers
  ``dy * y / scale`` from the outputs whose square holds the pixel (atomic-free, deterministic).
* **Power** (:func:`power_forward_kernel`, :func:`power_backward_kernel`): streaming elementwise
  kernels over a flat view (the shared launch of :mod:`mocha_triton.kernels._runtime`), safe in place.
  The exponent's kind (0, 1, 2, even or odd integer, other) is a constexpr chosen on the host, so a
  kernel compiles only the branch it needs and integer powers of negative bases keep their sign.

The LRN kernels write outputs that do not alias their inputs, so they are autotuned
(:func:`mocha_triton.kernels._runtime.autotune`); the power kernels may run in place, so they are not
(the autotuner's repeated launches would apply the power several times).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import normalization as checks
from mocha_triton.checks.normalization import LRNSetting
from mocha_triton.kernels._runtime import (
    STREAM_LAUNCH,
    CompileCase,
    autotune,
    same_device,
    stream_compile_case,
    stream_grid,
)
from mocha_triton.kernels.elementwise import fill

FLOAT32 = ("float32",)

# Kinds of exponent p for _pow (host: _pow_kind). Integer kinds take |b| ** p and restore the sign.
POW_ZERO, POW_ONE, POW_TWO, POW_EVEN, POW_ODD, POW_REAL = range(6)

# Across channels: one program per BLOCK_S pixels of one sample, looping over C channels. On a GPU a
# block of 256-1024 pixels at 4 warps keeps each load coalesced; the interpreter's cost grows with the
# number of programs, so there one program takes a whole (small) image.
ACROSS_CONFIGS = [
    triton.Config({"BLOCK_S": 256}, num_warps=2, num_stages=2),
    triton.Config({"BLOCK_S": 512}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_S": 1024}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_S": 2048}, num_warps=8, num_stages=2),
]
ACROSS_INTERPRETER = triton.Config({"BLOCK_S": 4096}, num_warps=4, num_stages=1)
# Within a channel: BLOCK_P planes x BLOCK_S pixels per program. Several planes per program serve small
# maps (CIFAR's 8x8); one plane and more pixels serve large ones.
WITHIN_CONFIGS = [
    triton.Config({"BLOCK_P": 1, "BLOCK_S": 256}, num_warps=4, num_stages=1),
    triton.Config({"BLOCK_P": 1, "BLOCK_S": 1024}, num_warps=4, num_stages=1),
    triton.Config({"BLOCK_P": 4, "BLOCK_S": 64}, num_warps=2, num_stages=1),
    triton.Config({"BLOCK_P": 8, "BLOCK_S": 128}, num_warps=4, num_stages=1),
]
WITHIN_INTERPRETER = triton.Config({"BLOCK_P": 16, "BLOCK_S": 256}, num_warps=4, num_stages=1)


# --- device helpers --------------------------------------------------------------------------------


@triton.jit
def _positive_pow(b, p):
    """b ** p for b > 0 (0 ** p and inf ** p follow the IEEE limits of log2 and exp2)."""
    return tl.exp2(p * tl.log2(b))


@triton.jit
def _pow(b, p, KIND: tl.constexpr):
    """b ** p with NumPy's rules, for an exponent p of the given KIND (the POW_* codes, see _pow_kind)."""
    if KIND == 0:  # POW_ZERO: anything ** 0 is 1
        out = tl.full(b.shape, 1.0, tl.float32)
    elif KIND == 1:  # POW_ONE
        out = b
    elif KIND == 2:  # POW_TWO
        out = b * b
    elif KIND == 5:  # POW_REAL: log2 of a negative base is NaN, hence NaN (NumPy's result)
        out = _positive_pow(b, p)
    else:  # POW_EVEN, POW_ODD: |b| ** p, negated for a negative base and an odd p
        out = _positive_pow(tl.abs(b), p)
        if KIND == 4:
            out = tl.where(b < 0, -out, out)
    return out


@triton.jit
def _masked_if(mask, cond):
    """``mask & cond`` for a scalar ``cond`` (the interpreter cannot ``&`` a mask with a Python bool)."""
    return tl.where(cond, mask, False)


@triton.jit
def _ratio(y_ptr, scale_ptr, dy_ptr, offsets, mask):
    """dy * y / scale at ``offsets`` (0 where masked), in fp64 for a sliding sum."""
    ratio = (tl.load(dy_ptr + offsets, mask=mask, other=0.0) * tl.load(y_ptr + offsets, mask=mask, other=0.0)
             / tl.load(scale_ptr + offsets, mask=mask, other=1.0))
    return ratio.to(tl.float64)


@triton.jit
def _pixel_block(HW, BLOCK_S: tl.constexpr):
    """Across-channel programs: this program's sample (int64), its BLOCK_S pixels and their mask."""
    pid = tl.program_id(0).to(tl.int64)
    tiles = tl.cdiv(HW, BLOCK_S)
    pixels = (pid % tiles) * BLOCK_S + tl.arange(0, BLOCK_S)
    return pid // tiles, pixels, pixels < HW


@triton.jit
def _plane_block(PLANES, HW, BLOCK_P: tl.constexpr, BLOCK_S: tl.constexpr):
    """Within-channel programs: (BLOCK_P, 1) planes (int64) and (1, BLOCK_S) flat pixels of this
    program, with the mask of the lanes inside the PLANES planes of HW pixels."""
    pid = tl.program_id(0).to(tl.int64)
    tiles = tl.cdiv(HW, BLOCK_S)
    planes = (pid // tiles) * BLOCK_P + tl.arange(0, BLOCK_P)[:, None]
    pixels = ((pid % tiles) * BLOCK_S).to(tl.int32) + tl.arange(0, BLOCK_S)[None, :]
    return planes, pixels, (planes < PLANES) & (pixels < HW)


# --- LRN across channels -----------------------------------------------------------------------------


@autotune(ACROSS_CONFIGS, key=["C", "HW", "SIZE"], interpreter_config=ACROSS_INTERPRETER)
@triton.jit
def lrn_across_forward_kernel(x_ptr, y_ptr, scale_ptr, C, HW, SIZE, PRE, alpha_over_n, neg_beta, k,
                              BLOCK_S: tl.constexpr):
    """scale[n, c] = k + alpha / SIZE * sum of x[n, j]**2 over j in [c - PRE, c - PRE + SIZE - 1];
    y = x * scale**-beta, at this program's pixels, for every channel c."""
    n, pixels, mask = _pixel_block(HW, BLOCK_S)
    sample = n * C * HW + pixels  # int64 offsets of channel 0
    post = SIZE - 1 - PRE
    window = tl.zeros((BLOCK_S,), tl.float64)  # fp64: see the module docstring
    for j in range(0, post):  # the window of channel -1, [-1 - PRE, post - 1], inside the channels
        v = tl.load(x_ptr + sample + j * HW, mask=_masked_if(mask, j < C), other=0.0).to(tl.float64)
        window += v * v
    for c in range(0, C):
        head = c + post  # enters the window of channel c
        v = tl.load(x_ptr + sample + head * HW, mask=_masked_if(mask, head < C), other=0.0).to(tl.float64)
        window += v * v
        tail = c - PRE - 1  # left it
        v = tl.load(x_ptr + sample + tail * HW, mask=_masked_if(mask, tail >= 0), other=0.0).to(tl.float64)
        window -= v * v
        # Rounding may leave a tiny negative sum where the true one is 0: clamp it.
        scale = k + alpha_over_n * tl.maximum(window, 0.0).to(tl.float32)
        here = sample + c * HW
        x = tl.load(x_ptr + here, mask=mask, other=0.0)
        tl.store(scale_ptr + here, scale, mask=mask)
        tl.store(y_ptr + here, x * _positive_pow(scale, neg_beta), mask=mask)


@autotune(ACROSS_CONFIGS, key=["C", "HW", "SIZE"], interpreter_config=ACROSS_INTERPRETER)
@triton.jit
def lrn_across_backward_kernel(x_ptr, y_ptr, scale_ptr, dy_ptr, dx_ptr, C, HW, SIZE, PRE, ratio_coef, neg_beta,
                               BLOCK_S: tl.constexpr):
    """dx[n, c] = dy * scale**-beta - ratio_coef * x * sum of dy * y / scale over the channels j whose
    window holds c, j in [c - post, c + PRE], at this program's pixels, for every channel c."""
    n, pixels, mask = _pixel_block(HW, BLOCK_S)
    sample = n * C * HW + pixels
    post = SIZE - 1 - PRE
    window = tl.zeros((BLOCK_S,), tl.float64)  # fp64: see the module docstring
    for j in range(0, PRE):  # the transposed window of channel -1, [-1 - post, PRE - 1]
        window += _ratio(y_ptr, scale_ptr, dy_ptr, sample + j * HW, _masked_if(mask, j < C))
    for c in range(0, C):
        head = c + PRE
        window += _ratio(y_ptr, scale_ptr, dy_ptr, sample + head * HW, _masked_if(mask, head < C))
        tail = c - post - 1
        window -= _ratio(y_ptr, scale_ptr, dy_ptr, sample + tail * HW, _masked_if(mask, tail >= 0))
        here = sample + c * HW
        x = tl.load(x_ptr + here, mask=mask, other=0.0)
        dy = tl.load(dy_ptr + here, mask=mask, other=0.0)
        scale = tl.load(scale_ptr + here, mask=mask, other=1.0)
        ratios = window.to(tl.float32)
        tl.store(dx_ptr + here, dy * _positive_pow(scale, neg_beta) - ratio_coef * x * ratios, mask=mask)


# --- LRN within a channel ---------------------------------------------------------------------------------


@autotune(WITHIN_CONFIGS, key=["H", "W", "SIZE"], interpreter_config=WITHIN_INTERPRETER)
@triton.jit
def lrn_within_forward_kernel(x_ptr, y_ptr, scale_ptr, PLANES, H, W, SIZE, PRE, alpha_over_n, neg_beta, k,
                              BLOCK_P: tl.constexpr, BLOCK_S: tl.constexpr):
    """scale[p, h, w] = k + alpha / SIZE**2 * sum of x[p]**2 over rows [h - PRE, h - PRE + SIZE - 1] and
    columns [w - PRE, w - PRE + SIZE - 1] (zero padded); y = x * scale**-beta."""
    planes, pixels, mask = _plane_block(PLANES, H * W, BLOCK_P, BLOCK_S)
    plane = planes * H * W
    h = pixels // W
    w = pixels % W
    total = tl.zeros((BLOCK_P, BLOCK_S), tl.float32)
    for r in range(0, SIZE):
        ih = h - PRE + r
        row_ok = mask & (ih >= 0) & (ih < H)
        for s in range(0, SIZE):
            iw = w - PRE + s
            v = tl.load(x_ptr + plane + ih * W + iw, mask=row_ok & (iw >= 0) & (iw < W), other=0.0)
            total += v * v
    scale = k + alpha_over_n * total
    here = plane + pixels
    x = tl.load(x_ptr + here, mask=mask, other=0.0)
    tl.store(scale_ptr + here, scale, mask=mask)
    tl.store(y_ptr + here, x * _positive_pow(scale, neg_beta), mask=mask)


@autotune(WITHIN_CONFIGS, key=["H", "W", "SIZE"], interpreter_config=WITHIN_INTERPRETER)
@triton.jit
def lrn_within_backward_kernel(x_ptr, y_ptr, scale_ptr, dy_ptr, dx_ptr, PLANES, H, W, SIZE, PRE, ratio_coef,
                               neg_beta, BLOCK_P: tl.constexpr, BLOCK_S: tl.constexpr):
    """dx[p, h, w] = dy * scale**-beta - ratio_coef * x * sum of dy * y / scale over the outputs
    (h + PRE - r, w + PRE - s), r and s in [0, SIZE), inside the image: those whose square holds (h, w)."""
    planes, pixels, mask = _plane_block(PLANES, H * W, BLOCK_P, BLOCK_S)
    plane = planes * H * W
    h = pixels // W
    w = pixels % W
    total = tl.zeros((BLOCK_P, BLOCK_S), tl.float32)
    for r in range(0, SIZE):
        oh = h + PRE - r
        row_ok = mask & (oh >= 0) & (oh < H)
        for s in range(0, SIZE):
            ow = w + PRE - s
            ok = row_ok & (ow >= 0) & (ow < W)
            at = plane + oh * W + ow
            total += (tl.load(dy_ptr + at, mask=ok, other=0.0) * tl.load(y_ptr + at, mask=ok, other=0.0)
                      / tl.load(scale_ptr + at, mask=ok, other=1.0))
    here = plane + pixels
    x = tl.load(x_ptr + here, mask=mask, other=0.0)
    dy = tl.load(dy_ptr + here, mask=mask, other=0.0)
    scale = tl.load(scale_ptr + here, mask=mask, other=1.0)
    tl.store(dx_ptr + here, dy * _positive_pow(scale, neg_beta) - ratio_coef * x * total, mask=mask)


# --- power -------------------------------------------------------------------------------------------------


@triton.jit
def power_forward_kernel(x_ptr, y_ptr, numel, power, scale, shift, KIND: tl.constexpr, BLOCK: tl.constexpr):
    """y[i] = (shift + scale * x[i]) ** power, the exponent of the given KIND."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    tl.store(y_ptr + offs, _pow(shift + scale * x, power, KIND), mask=mask)


@triton.jit
def power_backward_kernel(x_ptr, dy_ptr, dx_ptr, numel, power, scale, shift, KIND: tl.constexpr,
                          BLOCK: tl.constexpr):
    """dx[i] = dy[i] * power * scale * (shift + scale * x[i]) ** (power - 1), KIND that of power - 1."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    dy = tl.load(dy_ptr + offs, mask=mask, other=0.0)
    slope = (power * scale) * _pow(shift + scale * x, power - 1.0, KIND)
    tl.store(dx_ptr + offs, dy * slope, mask=mask)


# --- host side -------------------------------------------------------------------------------------------


def _pow_kind(p: float) -> int:
    """The KIND of exponent p for _pow."""
    if p == 0:
        return POW_ZERO
    if p == 1:
        return POW_ONE
    if p == 2:
        return POW_TWO
    if float(p).is_integer():
        return POW_ODD if int(p) % 2 else POW_EVEN
    return POW_REAL


def _lrn_launch(fwd: bool, s: LRNSetting, *tensors: torch.Tensor) -> None:
    """Launch the forward or backward kernel of the setting's region on ``tensors`` (pointer arguments)."""
    hw = s.h * s.w
    if s.across:
        kernel = lrn_across_forward_kernel if fwd else lrn_across_backward_kernel
        sizes = (s.c, hw, s.size, s.pre)
        grid = lambda meta: (s.n * triton.cdiv(hw, meta["BLOCK_S"]),)
    else:
        kernel = lrn_within_forward_kernel if fwd else lrn_within_backward_kernel
        planes = s.n * s.c
        sizes = (planes, s.h, s.w, s.size, s.pre)
        grid = lambda meta: (triton.cdiv(planes, meta["BLOCK_P"]) * triton.cdiv(hw, meta["BLOCK_S"]),)
    if fwd:
        kernel[grid](*tensors, *sizes, s.alpha / s.divisor, -s.beta, s.k)
    else:
        kernel[grid](*tensors, *sizes, 2.0 * s.alpha * s.beta / s.divisor, -s.beta)


def lrn_forward(x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, size: int, alpha: float, beta: float,
                k: float, region: str = "across_channels") -> None:
    """scale = k + alpha / n * (window sum of x**2); y = x * scale**-beta (Caffe's LRN).

    x, y, scale (N, C, H, W) float32. ``region`` "across_channels": windows of ``size`` channels,
    n = size; "within_channel": ``size x size`` squares, n = size * size; zero padded,
    ``pre = (size - 1) // 2`` before the centre. ``scale`` is kept for :func:`lrn_backward`.
    """
    s = checks.check_lrn_forward(x, y, scale, size, alpha, beta, k, region, FLOAT32)
    same_device("lrn_forward", {"x": x, "y": y, "scale": scale})
    if s.numel:
        _lrn_launch(True, s, x, y, scale)


def lrn_backward(x: torch.Tensor, y: torch.Tensor, scale: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                 size: int, alpha: float, beta: float, region: str = "across_channels") -> None:
    """dx = dy * scale**-beta - 2 alpha beta / n * x * (sum of dy * y / scale over the windows holding x).

    x, y and scale from :func:`lrn_forward` with the same ``size``, ``alpha``, ``beta`` and ``region``
    (``k`` is inside the stored scale); dy, dx (N, C, H, W) float32.
    """
    s = checks.check_lrn_backward(x, y, scale, dy, dx, size, alpha, beta, region, FLOAT32)
    same_device("lrn_backward", {"x": x, "y": y, "scale": scale, "dy": dy, "dx": dx})
    if s.numel:
        _lrn_launch(False, s, x, y, scale, dy, dx)


def power_forward(x: torch.Tensor, y: torch.Tensor, power: float, scale: float, shift: float) -> None:
    """y = (shift + scale * x) ** power elementwise; ``y`` may be ``x`` itself.

    NumPy's rules: a negative base with a non-integer power gives NaN, 0 ** negative gives inf,
    anything ** 0 gives 1. Any shape, float32.
    """
    power, scale, shift = checks.check_power_forward(x, y, power, scale, shift, FLOAT32)
    same_device("power_forward", {"x": x, "y": y})
    if x.numel():
        power_forward_kernel[stream_grid(x.numel())](x, y, x.numel(), power, scale, shift, KIND=_pow_kind(power),
                                                     **STREAM_LAUNCH)


def power_backward(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, power: float, scale: float,
                   shift: float) -> None:
    """dx = dy * power * scale * (shift + scale * x) ** (power - 1); ``dx`` may be ``dy`` itself.

    The derivative is computed from the forward input x (not from y / base, which is 0 / 0 where the
    base is 0). ``dx = 0`` exactly when ``power == 0`` or ``scale == 0``. Any shape, float32.
    """
    power, scale, shift = checks.check_power_backward(x, dy, dx, power, scale, shift, FLOAT32)
    same_device("power_backward", {"x": x, "dy": dy, "dx": dx})
    if checks.power_has_zero_gradient(power, scale):
        fill(dx, 0.0)
    elif x.numel():
        power_backward_kernel[stream_grid(x.numel())](x, dy, dx, x.numel(), power, scale, shift,
                                                      KIND=_pow_kind(power - 1), **STREAM_LAUNCH)


def compile_cases() -> list[CompileCase]:
    """Every LRN kernel with every autotune config, and both power kernels for every exponent kind."""
    ptr = "*fp32"
    f32 = "fp32"
    across = {"C": "i32", "HW": "i64", "SIZE": "i32", "PRE": "i32"}
    within = {"PLANES": "i64", "H": "i32", "W": "i32", "SIZE": "i32", "PRE": "i32"}
    cases = [
        CompileCase(lrn_across_forward_kernel, {"x_ptr": ptr, "y_ptr": ptr, "scale_ptr": ptr, **across,
                                                "alpha_over_n": f32, "neg_beta": f32, "k": f32}),
        CompileCase(lrn_across_backward_kernel, {"x_ptr": ptr, "y_ptr": ptr, "scale_ptr": ptr, "dy_ptr": ptr,
                                                 "dx_ptr": ptr, **across, "ratio_coef": f32, "neg_beta": f32}),
        CompileCase(lrn_within_forward_kernel, {"x_ptr": ptr, "y_ptr": ptr, "scale_ptr": ptr, **within,
                                                "alpha_over_n": f32, "neg_beta": f32, "k": f32}),
        CompileCase(lrn_within_backward_kernel, {"x_ptr": ptr, "y_ptr": ptr, "scale_ptr": ptr, "dy_ptr": ptr,
                                                 "dx_ptr": ptr, **within, "ratio_coef": f32, "neg_beta": f32}),
    ]
    scalars = {"numel": "i64", "power": f32, "scale": f32, "shift": f32}
    for kind in (POW_ZERO, POW_ONE, POW_TWO, POW_EVEN, POW_ODD, POW_REAL):
        cases.append(stream_compile_case(power_forward_kernel, {"x_ptr": ptr, "y_ptr": ptr, **scalars},
                                         {"KIND": kind}, label=f"KIND={kind}"))
        cases.append(stream_compile_case(power_backward_kernel, {"x_ptr": ptr, "dy_ptr": ptr, "dx_ptr": ptr,
                                                                 **scalars}, {"KIND": kind}, label=f"KIND={kind}"))
    return cases
