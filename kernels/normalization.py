"""Local response normalization and the power function in Triton.

Mirrors :mod:`mocha_triton.cpu_ref.normalization`; the formulas and argument rules are written down in
:mod:`mocha_triton.checks.normalization`. Sums are fp32; ``scale ** -beta`` (LRN) and non-integer
powers are ``exp2(p * log2(b))``; integer powers are exact products (see Power below).

Organisation.

* **LRN across channels** (:func:`lrn_across_forward_kernel`, :func:`lrn_across_backward_kernel`): a
  1-D grid of ``N * cdiv(H * W, BLOCK_S)`` programs; program ``pid`` owns ``BLOCK_S`` consecutive
  pixels of sample ``pid // tiles`` and walks the channels ``c = 0 .. C - 1`` in a loop. For each
  channel it sums its window **directly**, ``size`` masked loads (``other=0``: zero padding past the
  channel range): the forward sums ``x**2`` over ``[c - pre, c + post]``, the backward
  ``dy * y / scale`` over the transposed window ``[c - post, c + pre]``. Neighbouring channels reread
  the same lines, which the cache serves. A running sum (add the channel entering the window, subtract
  the one leaving it: two loads per channel, Caffe's CPU code) is not used: a NaN or an infinity that
  entered it would never leave (``inf - inf`` is NaN) and would spoil every later channel, and in fp32
  the rounding of a large term would stay in the sum after the term left. A direct sum of ``size``
  fp32 terms has neither problem and rounds like the reference's. Lanes are contiguous pixels, so
  every load is coalesced. Offsets are int64 (sample and channel), so a sample may exceed 2**31
  elements.
* **LRN within a channel** (:func:`lrn_within_forward_kernel`, :func:`lrn_within_backward_kernel`): a
  1-D grid over blocks of ``BLOCK_P`` planes ``(n, c)`` times blocks of ``BLOCK_S`` pixels of a plane
  (flat ``h * W + w``); each program loops over the ``size x size`` taps (runtime loops), one masked
  load per tap (``other=0``: zero padding), like mean pooling with stride 1. The backward gathers
  ``dy * y / scale`` from the outputs whose square holds the pixel (atomic-free, deterministic). Plane
  offsets are int64, offsets inside a plane int32 (the checks keep a plane below 2**31 pixels).
* **Power** (:func:`power_forward_kernel`, :func:`power_backward_kernel`): streaming elementwise
  kernels over a flat view (the shared launch of :mod:`mocha_triton.kernels._runtime`), safe in place.
  The exponent's kind (0, 1, 2, positive or negative integer, other) is a constexpr chosen on the
  host from the float32 exponent (what the float32 reference uses), so a kernel compiles only the
  branch it needs. An integer power ``b ** +-e`` is exact binary exponentiation in fp64: ``e``'s bits
  (a runtime loop of ``bit_length(e)`` steps) select which of ``b, b**2, b**4, ...`` to multiply,
  then ``1 / product`` for a negative exponent, rounded once to fp32. Its relative error before that
  rounding is at most about ``(e + 64) * 2**-53`` (each of the <= 64 fp64 operations rounds once, and
  squaring doubles the error of ``b ** 2**i``): for ``e <= 2**24`` that is below 1/30 of a float32
  ulp, so the result is the correctly rounded float32 (NumPy's float32 ``power`` itself is within 1
  ulp), and signs, zeros, infinities and NaN come out of the products by IEEE rules. fp64's range
  covers a product that leaves float32's range while its reciprocal is back inside it
  (``(2**16.1) ** -8``); a product that leaves fp64's range gives inf or 0, as float32 would.
  Float32 exponents of 2**31 and beyond are even integers whose power is 1 for +-1 and 0 or inf for
  every other float32 base (``(1 + 2**-23) ** 2**31 = e**256``, ``(1 - 2**-24) ** 2**31 = e**-128``),
  so ``e`` is capped at ``2**31`` (at most 32 steps); for ``2**24 < e < 2**31`` only bases within a
  few dozen ulps of +-1 have finite non-zero powers, and their error may reach a few ulps (the bound
  above). The fp64 work is a handful of multiplies per element for the usual small exponents, which
  even GPUs with slow fp64 absorb in a memory-bound kernel. Non-integer exponents use
  ``exp2(p * log2(b))``: NaN for a negative base, -inf included, as in the reference.

NaN propagation: every reduction here is a sum or a product (which keep NaN); there is no
``tl.maximum``/``tl.minimum`` (which drop NaN unless told ``propagate_nan=tl.PropagateNan.ALL``).

The LRN kernels write outputs that do not alias their inputs, so they are autotuned
(:func:`mocha_triton.kernels._runtime.autotune`); the power kernels may run in place, so they are not
(the autotuner's repeated launches would apply the power several times).
"""

from __future__ import annotations

from typing import Any

import numpy as np
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

# Kinds of exponent p for _pow (host: _exponent). POW_INT and POW_INV_INT take the integer |p| as E.
POW_ZERO, POW_ONE, POW_TWO, POW_INT, POW_INV_INT, POW_REAL = range(6)
# Cap of |p| for the integer kinds: every float32 exponent beyond it is even and gives 0, 1 or inf for
# every float32 base, like the cap itself (see the module docstring).
POW_INT_CAP = 2**31

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
    """b ** p for b > 0 (0 ** p and inf ** p follow the IEEE limits of log2 and exp2; NaN for b < 0)."""
    return tl.exp2(p * tl.log2(b))


@triton.jit
def _scale_pow(scale, neg_beta):
    """scale ** -beta for the LRN scale (> 0, or inf/NaN when x holds them); 1 when beta is 0, as in
    NumPy even for an infinite or NaN scale (where exp2(0 * log2(scale)) would be NaN)."""
    return tl.where(neg_beta == 0, 1.0, _positive_pow(scale, neg_beta))


@triton.jit
def _int_pow(b, E, E_BITS):
    """b ** E for the integer E >= 1 of E_BITS bits, in fp64: binary exponentiation, exact up to one
    rounding per product (see the module docstring)."""
    square = b.to(tl.float64)  # b ** (2 ** i) at step i
    out = tl.full(b.shape, 1.0, tl.float64)
    for i in range(0, E_BITS):
        out = tl.where(((E >> i) & 1) != 0, out * square, out)
        square = square * square
    return out


@triton.jit
def _pow(b, p, E, E_BITS, KIND: tl.constexpr):
    """b ** p with NumPy's rules, for an exponent p of the given KIND (the POW_* codes, see _exponent);
    the integer kinds use E = |p| (capped) of E_BITS bits instead of p."""
    if KIND == 0:  # POW_ZERO: anything ** 0 is 1
        out = tl.full(b.shape, 1.0, tl.float32)
    elif KIND == 1:  # POW_ONE
        out = b
    elif KIND == 2:  # POW_TWO
        out = b * b
    elif KIND == 3:  # POW_INT: b ** E; the sign of a negative base comes out of the products
        out = _int_pow(b, E, E_BITS).to(tl.float32)
    elif KIND == 4:  # POW_INV_INT: b ** -E = 1 / b ** E, divided in fp64 (b ** E may pass float32's range)
        out = (1.0 / _int_pow(b, E, E_BITS)).to(tl.float32)
    else:  # POW_REAL: log2 of a negative base is NaN, hence NaN (NumPy's result)
        out = _positive_pow(b, p)
    return out


@triton.jit
def _masked_if(mask, cond):
    """``mask & cond`` for a scalar ``cond`` (the interpreter cannot ``&`` a mask with a Python bool)."""
    return tl.where(cond, mask, False)


@triton.jit
def _pixel_block(HW, BLOCK_S: tl.constexpr):
    """Across-channel programs: this program's sample (int64), its BLOCK_S pixels (int64) and their mask."""
    pid = tl.program_id(0).to(tl.int64)
    tiles = tl.cdiv(HW, BLOCK_S)
    pixels = (pid % tiles) * BLOCK_S + tl.arange(0, BLOCK_S)
    return pid // tiles, pixels, pixels < HW


@triton.jit
def _channel_offsets(sample, j, HW):
    """int64 offsets of channel ``j`` (int32 loop index) at the pixels whose channel-0 offsets are
    ``sample`` (int64): j * HW passes 2**31 in a sample of more than 2**31 elements."""
    return sample + tl.cast(j, tl.int64) * HW


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
    for c in range(0, C):
        total = tl.zeros((BLOCK_S,), tl.float32)
        for t in range(0, SIZE):  # the window, summed afresh for every channel (module docstring)
            j = c - PRE + t
            v = tl.load(x_ptr + _channel_offsets(sample, j, HW), mask=_masked_if(mask, (j >= 0) & (j < C)),
                        other=0.0)
            total += v * v
        scale = k + alpha_over_n * total
        here = _channel_offsets(sample, c, HW)
        x = tl.load(x_ptr + here, mask=mask, other=0.0)
        tl.store(scale_ptr + here, scale, mask=mask)
        tl.store(y_ptr + here, x * _scale_pow(scale, neg_beta), mask=mask)


@autotune(ACROSS_CONFIGS, key=["C", "HW", "SIZE"], interpreter_config=ACROSS_INTERPRETER)
@triton.jit
def lrn_across_backward_kernel(x_ptr, y_ptr, scale_ptr, dy_ptr, dx_ptr, C, HW, SIZE, PRE, ratio_coef, neg_beta,
                               BLOCK_S: tl.constexpr):
    """dx[n, c] = dy * scale**-beta - ratio_coef * x * sum of dy * y / scale over the channels j whose
    window holds c, j in [c - post, c + PRE], at this program's pixels, for every channel c."""
    n, pixels, mask = _pixel_block(HW, BLOCK_S)
    sample = n * C * HW + pixels
    post = SIZE - 1 - PRE
    for c in range(0, C):
        total = tl.zeros((BLOCK_S,), tl.float32)
        for t in range(0, SIZE):  # the transposed window, summed afresh for every channel
            j = c - post + t
            at = _channel_offsets(sample, j, HW)
            ok = _masked_if(mask, (j >= 0) & (j < C))
            total += (tl.load(dy_ptr + at, mask=ok, other=0.0) * tl.load(y_ptr + at, mask=ok, other=0.0)
                      / tl.load(scale_ptr + at, mask=ok, other=1.0))
        here = _channel_offsets(sample, c, HW)
        x = tl.load(x_ptr + here, mask=mask, other=0.0)
        dy = tl.load(dy_ptr + here, mask=mask, other=0.0)
        scale = tl.load(scale_ptr + here, mask=mask, other=1.0)
        tl.store(dx_ptr + here, dy * _scale_pow(scale, neg_beta) - ratio_coef * x * total, mask=mask)


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
    tl.store(y_ptr + here, x * _scale_pow(scale, neg_beta), mask=mask)


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
    tl.store(dx_ptr + here, dy * _scale_pow(scale, neg_beta) - ratio_coef * x * total, mask=mask)


# --- power -------------------------------------------------------------------------------------------------


@triton.jit
def power_forward_kernel(x_ptr, y_ptr, numel, power, E, E_BITS, scale, shift, KIND: tl.constexpr,
                         BLOCK: tl.constexpr):
    """y[i] = (shift + scale * x[i]) ** power, the exponent of the given KIND (E, E_BITS: its capped
    absolute value and bit length for the integer kinds)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    tl.store(y_ptr + offs, _pow(shift + scale * x, power, E, E_BITS, KIND), mask=mask)


@triton.jit
def power_backward_kernel(x_ptr, dy_ptr, dx_ptr, numel, power_minus_1, E, E_BITS, coef, scale, shift,
                          KIND: tl.constexpr, BLOCK: tl.constexpr):
    """dx[i] = dy[i] * (coef * (shift + scale * x[i]) ** power_minus_1), coef = power * scale; KIND, E
    and E_BITS those of power - 1."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    dy = tl.load(dy_ptr + offs, mask=mask, other=0.0)
    slope = coef * _pow(shift + scale * x, power_minus_1, E, E_BITS, KIND)
    tl.store(dx_ptr + offs, dy * slope, mask=mask)


# --- host side -------------------------------------------------------------------------------------------


def _exponent(p: float) -> dict[str, Any]:
    """KIND, E and E_BITS of exponent ``p``, taken from its float32 value (the exponent the kernels and
    the float32 reference raise to): for the integer kinds E = min(|p|, POW_INT_CAP) and its bit
    length, else 0 and 0."""
    p32 = float(np.float32(p))
    e = min(int(abs(p32)), POW_INT_CAP) if p32.is_integer() else 0
    if p32 == 0:
        kind = POW_ZERO
    elif p32 == 1:
        kind = POW_ONE
    elif p32 == 2:
        kind = POW_TWO
    elif p32.is_integer():
        kind = POW_INT if p32 > 0 else POW_INV_INT
    else:
        kind = POW_REAL
    return {"E": e, "E_BITS": e.bit_length(), "KIND": kind}


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
        exponent = _exponent(power)
        power_forward_kernel[stream_grid(x.numel())](x, y, x.numel(), power, exponent["E"], exponent["E_BITS"],
                                                     scale, shift, KIND=exponent["KIND"], **STREAM_LAUNCH)


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
        # power - 1 and power * scale rounded to float32 from the float64 values, like the reference
        exponent = _exponent(power - 1)
        power_backward_kernel[stream_grid(x.numel())](x, dy, dx, x.numel(), power - 1, exponent["E"],
                                                      exponent["E_BITS"], power * scale, scale, shift,
                                                      KIND=exponent["KIND"], **STREAM_LAUNCH)


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
    forward = {"x_ptr": ptr, "y_ptr": ptr, "numel": "i64", "power": f32, "E": "i64", "E_BITS": "i32",
               "scale": f32, "shift": f32}
    backward = {"x_ptr": ptr, "dy_ptr": ptr, "dx_ptr": ptr, "numel": "i64", "power_minus_1": f32, "E": "i64",
                "E_BITS": "i32", "coef": f32, "scale": f32, "shift": f32}
    for kind in (POW_ZERO, POW_ONE, POW_TWO, POW_INT, POW_INV_INT, POW_REAL):
        cases.append(stream_compile_case(power_forward_kernel, forward, {"KIND": kind}, label=f"KIND={kind}"))
        cases.append(stream_compile_case(power_backward_kernel, backward, {"KIND": kind}, label=f"KIND={kind}"))
    return cases
