"""Softmax along the channel axis of (N, C, *S) tensors in Triton.

Mirrors :mod:`mocha_triton.cpu_ref.softmax`. The tensors are viewed as (N, C, S), S the product of
the spatial sizes. Reducing over C is a strided ("non-inner") reduction whenever S > 1: consecutive
channels of one position are S elements apart, while consecutive positions are adjacent. So there
are two kernel pairs, each loading tiles that are contiguous along their fast axis:

* **channels** kernels (S > 1): one program per (n, tile of BLOCK_S positions), a flat 1-D grid of
  ``N * cdiv(S, BLOCK_S)`` programs. A tile is [BLOCK_C channels, BLOCK_S positions], contiguous
  along S, and the reduction runs over axis 0.
* **rows** kernels (S == 1, e.g. a 2-D (N, C) input of class scores): rows are contiguous, so one
  program owns BLOCK_N whole rows, a tile [BLOCK_N rows, BLOCK_C channels] reduced over axis 1.

When C fits in one block (``C <= BLOCK_C``) a program loads its tile once and writes the result:
one read and one write per element. Otherwise it makes two passes over C in chunks of BLOCK_C: the
forward's first pass keeps an *online* max and normaliser per position (the running sum is rescaled
by exp(old max - new max) whenever the max grows; masked lanes load -inf, so they add exp(-inf) = 0),
the second pass writes exp(x - max) / sum. The backward's first pass sums dy * y, the second writes
y * (dy - sum). The forward subtracts the max, so any finite logits are safe from overflow.

Block sizes and warps are autotuned (key: C, and S for the channels kernels). Before benchmarking,
the candidates are pruned to the configs with the smallest BLOCK_C that holds all C channels (one
pass), or to the largest BLOCK_C when none does. The autotuner restores the input before each
benchmark run, so an output that aliases its input (``y is x``, ``dx is dy``) is still correct.

Measured on an H200 (Triton 3.6; bytes = one read and one write forward, two reads and one write
backward): 2500-3500 GB/s forward and 2100-3900 GB/s backward for tensors of tens of MB or more, e.g.
(8192, 1000) 3.1/3.2 TB/s and (16, 21, 256, 256) 3.1/3.9 TB/s, at or above torch.softmax everywhere
but tiny tensors of a few MB, where launch latency and autotuning noise dominate.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from mocha_triton.checks import softmax as checks
from mocha_triton.kernels._runtime import CompileCase, autotune, same_device

FLOAT32 = ("float32",)


def _prune_by_channels(configs: list[triton.Config], named_args: dict[str, Any], **kwargs: Any) -> list[triton.Config]:
    """Keep the configs with the smallest BLOCK_C >= C (one pass over C), else those with the largest."""
    c = {**named_args, **kwargs}["C"]
    blocks = {cfg.kwargs["BLOCK_C"] for cfg in configs}
    fitting = [b for b in blocks if b >= c]
    chosen = min(fitting) if fitting else max(blocks)
    return [cfg for cfg in configs if cfg.kwargs["BLOCK_C"] == chosen]


def _channels_configs() -> list[triton.Config]:
    """[BLOCK_C, BLOCK_S] tiles of 2048 elements on 4 warps and of 4096 on 8 warps (16 per thread)."""
    configs = []
    for block_c in (4, 8, 16, 32, 64, 128):
        for tile, num_warps in ((2048, 4), (4096, 8)):
            configs.append(triton.Config({"BLOCK_C": block_c, "BLOCK_S": tile // block_c},
                                         num_warps=num_warps, num_stages=1))
    return configs


def _rows_configs() -> list[triton.Config]:
    """[BLOCK_N, BLOCK_C] tiles. Narrow rows (BLOCK_C <= 128) get few warps, about one per 64 channels,
    so a row's reduction mostly stays inside a warp (shuffles, no shared-memory round trip); that was
    up to 1.3x faster on an H200 for unaligned C such as 100; they also get 1024 elements on 4 warps.
    Wider rows get 2048 elements on 4 warps and 4096 on 8 warps."""
    configs = []
    for block_c in (16, 32, 64, 128, 256, 512, 1024, 2048, 4096):
        if block_c <= 128:
            warps = max(block_c // 64, 1)
            shapes = [(1024, 4), (8 * 32 * warps, warps), (16 * 32 * warps, warps)]
        else:
            shapes = [(2048, 4), (4096, 8)]
        for tile, num_warps in shapes:
            configs.append(triton.Config({"BLOCK_N": max(tile // block_c, 1), "BLOCK_C": block_c},
                                         num_warps=num_warps, num_stages=1))
    return configs


CHANNELS_CONFIGS = _channels_configs()
ROWS_CONFIGS = _rows_configs()
# The interpreter runs one config: a small BLOCK_C, so that tiny test shapes also exercise the loop.
CHANNELS_INTERPRETER_CONFIG = triton.Config({"BLOCK_C": 8, "BLOCK_S": 256}, num_warps=4, num_stages=1)
ROWS_INTERPRETER_CONFIG = triton.Config({"BLOCK_N": 64, "BLOCK_C": 16}, num_warps=4, num_stages=1)
PRUNE = {"early_config_prune": _prune_by_channels}


# --- device helpers ---------------------------------------------------------------------------------
# Each program first moves its pointers to its sample (channels) or first row (rows) with 64-bit
# arithmetic; offsets inside that block then fit in int32 (checked on the host: C * S < 2**31), which
# keeps register use low.

@triton.jit
def _finite_max(m):
    """The running max with -inf (every lane of that position masked) replaced by 0, to subtract safely."""
    return tl.where(m == -float("inf"), 0.0, m)


@triton.jit
def _reciprocal(total):
    """1 / total, and 1 where total is 0 (masked positions), so no division by zero is ever evaluated."""
    return 1.0 / tl.where(total > 0.0, total, 1.0)


@triton.jit
def _channel_tile(s, s_mask, c0, C, S, BLOCK_C: tl.constexpr):
    """Offsets inside one sample, and mask, of the [BLOCK_C, BLOCK_S] tile: channels c0.., positions s."""
    ch = c0 + tl.arange(0, BLOCK_C)
    return ch[:, None] * S + s[None, :], (ch < C)[:, None] & s_mask[None, :]


@triton.jit
def _row_tile(r, row_mask, c0, C, BLOCK_C: tl.constexpr):
    """Offsets from the program's first row, and mask, of the [BLOCK_N, BLOCK_C] tile: rows r, channels c0.."""
    ch = c0 + tl.arange(0, BLOCK_C)
    return r[:, None] * C + ch[None, :], row_mask[:, None] & (ch < C)[None, :]


# --- channels kernels (S > 1): tile [BLOCK_C, BLOCK_S], reduce over axis 0 ---------------------------

@autotune(CHANNELS_CONFIGS, key=["C", "S"], interpreter_config=CHANNELS_INTERPRETER_CONFIG,
          prune_configs_by=PRUNE, restore_value=["x_ptr"])
@triton.jit
def softmax_channels_forward_kernel(x_ptr, y_ptr, C, S, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    """y[n, :, s] = softmax(x[n, :, s]) for the BLOCK_S positions s of program (n, s-tile)."""
    pid = tl.program_id(0)
    tiles_s = tl.cdiv(S, BLOCK_S)
    sample = (pid // tiles_s).to(tl.int64) * C * S
    x_ptr += sample
    y_ptr += sample
    s = (pid % tiles_s) * BLOCK_S + tl.arange(0, BLOCK_S)
    s_mask = s < S
    if C <= BLOCK_C:  # one pass: the whole channel axis is in the tile
        offs, mask = _channel_tile(s, s_mask, 0, C, S, BLOCK_C)
        x = tl.load(x_ptr + offs, mask=mask, other=-float("inf"))
        p = tl.exp(x - _finite_max(tl.max(x, axis=0))[None, :])
        tl.store(y_ptr + offs, p * _reciprocal(tl.sum(p, axis=0))[None, :], mask=mask)
    else:  # two passes: online max and normaliser, then the output
        m = tl.full((BLOCK_S,), -float("inf"), tl.float32)
        total = tl.zeros((BLOCK_S,), tl.float32)
        for c0 in range(0, C, BLOCK_C):
            offs, mask = _channel_tile(s, s_mask, c0, C, S, BLOCK_C)
            x = tl.load(x_ptr + offs, mask=mask, other=-float("inf"))
            m_new = _finite_max(tl.maximum(m, tl.max(x, axis=0)))
            total = total * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new[None, :]), axis=0)
            m = m_new
        inv = _reciprocal(total)
        for c0 in range(0, C, BLOCK_C):
            offs, mask = _channel_tile(s, s_mask, c0, C, S, BLOCK_C)
            x = tl.load(x_ptr + offs, mask=mask, other=-float("inf"))
            tl.store(y_ptr + offs, tl.exp(x - m[None, :]) * inv[None, :], mask=mask)


@autotune(CHANNELS_CONFIGS, key=["C", "S"], interpreter_config=CHANNELS_INTERPRETER_CONFIG,
          prune_configs_by=PRUNE, restore_value=["dy_ptr"])
@triton.jit
def softmax_channels_backward_kernel(y_ptr, dy_ptr, dx_ptr, C, S, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr):
    """dx[n, :, s] = y * (dy - sum_c(dy * y)) for the BLOCK_S positions s of program (n, s-tile)."""
    pid = tl.program_id(0)
    tiles_s = tl.cdiv(S, BLOCK_S)
    sample = (pid // tiles_s).to(tl.int64) * C * S
    y_ptr += sample
    dy_ptr += sample
    dx_ptr += sample
    s = (pid % tiles_s) * BLOCK_S + tl.arange(0, BLOCK_S)
    s_mask = s < S
    if C <= BLOCK_C:
        offs, mask = _channel_tile(s, s_mask, 0, C, S, BLOCK_C)
        y = tl.load(y_ptr + offs, mask=mask, other=0.0)
        dy = tl.load(dy_ptr + offs, mask=mask, other=0.0)
        dot = tl.sum(y * dy, axis=0)
        tl.store(dx_ptr + offs, y * (dy - dot[None, :]), mask=mask)
    else:
        dot = tl.zeros((BLOCK_S,), tl.float32)
        for c0 in range(0, C, BLOCK_C):
            offs, mask = _channel_tile(s, s_mask, c0, C, S, BLOCK_C)
            y = tl.load(y_ptr + offs, mask=mask, other=0.0)
            dy = tl.load(dy_ptr + offs, mask=mask, other=0.0)
            dot += tl.sum(y * dy, axis=0)
        for c0 in range(0, C, BLOCK_C):
            offs, mask = _channel_tile(s, s_mask, c0, C, S, BLOCK_C)
            y = tl.load(y_ptr + offs, mask=mask, other=0.0)
            dy = tl.load(dy_ptr + offs, mask=mask, other=0.0)
            tl.store(dx_ptr + offs, y * (dy - dot[None, :]), mask=mask)


# --- rows kernels (S == 1): tile [BLOCK_N, BLOCK_C], reduce over axis 1 ------------------------------

@autotune(ROWS_CONFIGS, key=["C"], interpreter_config=ROWS_INTERPRETER_CONFIG, prune_configs_by=PRUNE,
          restore_value=["x_ptr"])
@triton.jit
def softmax_rows_forward_kernel(x_ptr, y_ptr, N, C, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    """y[n, :] = softmax(x[n, :]) for the BLOCK_N rows n of this program."""
    row0 = tl.program_id(0).to(tl.int64) * BLOCK_N
    x_ptr += row0 * C
    y_ptr += row0 * C
    r = tl.arange(0, BLOCK_N)
    row_mask = r < N - row0
    if C <= BLOCK_C:
        offs, mask = _row_tile(r, row_mask, 0, C, BLOCK_C)
        x = tl.load(x_ptr + offs, mask=mask, other=-float("inf"))
        p = tl.exp(x - _finite_max(tl.max(x, axis=1))[:, None])
        tl.store(y_ptr + offs, p * _reciprocal(tl.sum(p, axis=1))[:, None], mask=mask)
    else:
        m = tl.full((BLOCK_N,), -float("inf"), tl.float32)
        total = tl.zeros((BLOCK_N,), tl.float32)
        for c0 in range(0, C, BLOCK_C):
            offs, mask = _row_tile(r, row_mask, c0, C, BLOCK_C)
            x = tl.load(x_ptr + offs, mask=mask, other=-float("inf"))
            m_new = _finite_max(tl.maximum(m, tl.max(x, axis=1)))
            total = total * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new[:, None]), axis=1)
            m = m_new
        inv = _reciprocal(total)
        for c0 in range(0, C, BLOCK_C):
            offs, mask = _row_tile(r, row_mask, c0, C, BLOCK_C)
            x = tl.load(x_ptr + offs, mask=mask, other=-float("inf"))
            tl.store(y_ptr + offs, tl.exp(x - m[:, None]) * inv[:, None], mask=mask)


@autotune(ROWS_CONFIGS, key=["C"], interpreter_config=ROWS_INTERPRETER_CONFIG, prune_configs_by=PRUNE,
          restore_value=["dy_ptr"])
@triton.jit
def softmax_rows_backward_kernel(y_ptr, dy_ptr, dx_ptr, N, C, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    """dx[n, :] = y * (dy - sum_c(dy * y)) for the BLOCK_N rows n of this program."""
    row0 = tl.program_id(0).to(tl.int64) * BLOCK_N
    y_ptr += row0 * C
    dy_ptr += row0 * C
    dx_ptr += row0 * C
    r = tl.arange(0, BLOCK_N)
    row_mask = r < N - row0
    if C <= BLOCK_C:
        offs, mask = _row_tile(r, row_mask, 0, C, BLOCK_C)
        y = tl.load(y_ptr + offs, mask=mask, other=0.0)
        dy = tl.load(dy_ptr + offs, mask=mask, other=0.0)
        dot = tl.sum(y * dy, axis=1)
        tl.store(dx_ptr + offs, y * (dy - dot[:, None]), mask=mask)
    else:
        dot = tl.zeros((BLOCK_N,), tl.float32)
        for c0 in range(0, C, BLOCK_C):
            offs, mask = _row_tile(r, row_mask, c0, C, BLOCK_C)
            y = tl.load(y_ptr + offs, mask=mask, other=0.0)
            dy = tl.load(dy_ptr + offs, mask=mask, other=0.0)
            dot += tl.sum(y * dy, axis=1)
        for c0 in range(0, C, BLOCK_C):
            offs, mask = _row_tile(r, row_mask, c0, C, BLOCK_C)
            y = tl.load(y_ptr + offs, mask=mask, other=0.0)
            dy = tl.load(dy_ptr + offs, mask=mask, other=0.0)
            tl.store(dx_ptr + offs, y * (dy - dot[:, None]), mask=mask)


# --- host side --------------------------------------------------------------------------------------

def _channels_grid(n: int, s: int):
    """Flat 1-D grid over (n, s-tile), program id = n * cdiv(S, BLOCK_S) + s-tile (no 65535 limit on N)."""
    return lambda meta: (n * triton.cdiv(s, meta["BLOCK_S"]),)


def _rows_grid(n: int):
    return lambda meta: (triton.cdiv(n, meta["BLOCK_N"]),)


def _require_int32_sample(op: str, name: str, c: int, s: int) -> None:
    """The kernels index inside one sample (C * S elements) with int32 offsets."""
    if c * s >= 2**31:
        raise ValueError(f"{op}: one sample of {name} has {c * s} elements; the Triton kernels need fewer "
                         f"than 2**31")


def softmax_forward(x: torch.Tensor, y: torch.Tensor) -> None:
    """y = exp(x - max_c x) / sum_c exp(x - max_c x) along axis 1 of (N, C, *S); stable for any finite logits."""
    n, c, s = checks.check_softmax_forward(x, y, FLOAT32)
    same_device("softmax_forward", {"x": x, "y": y})
    _require_int32_sample("softmax_forward", "x", c, s)
    if x.numel() == 0:
        return
    if s == 1:
        softmax_rows_forward_kernel[_rows_grid(n)](x, y, n, c)
    else:
        softmax_channels_forward_kernel[_channels_grid(n, s)](x, y, c, s)


def softmax_backward(y: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> None:
    """dx = y * (dy - sum_c(dy * y)) along axis 1 of (N, C, *S), from the stored output y."""
    n, c, s = checks.check_softmax_backward(y, dy, dx, FLOAT32)
    same_device("softmax_backward", {"y": y, "dy": dy, "dx": dx})
    _require_int32_sample("softmax_backward", "y", c, s)
    if y.numel() == 0:
        return
    if s == 1:
        softmax_rows_backward_kernel[_rows_grid(n)](y, dy, dx, n, c)
    else:
        softmax_channels_backward_kernel[_channels_grid(n, s)](y, dy, dx, c, s)


def compile_cases() -> list[CompileCase]:
    """Every autotune config of the four kernels (the gate adds each config's constexprs)."""
    ptr = "*fp32"
    return [
        CompileCase(softmax_channels_forward_kernel, {"x_ptr": ptr, "y_ptr": ptr, "C": "i32", "S": "i32"}),
        CompileCase(softmax_channels_backward_kernel,
                    {"y_ptr": ptr, "dy_ptr": ptr, "dx_ptr": ptr, "C": "i32", "S": "i32"}),
        CompileCase(softmax_rows_forward_kernel, {"x_ptr": ptr, "y_ptr": ptr, "N": "i64", "C": "i32"}),
        CompileCase(softmax_rows_backward_kernel,
                    {"y_ptr": ptr, "dy_ptr": ptr, "dx_ptr": ptr, "N": "i64", "C": "i32"}),
    ]
