"""Entropic optimal transport by Sinkhorn's iteration in Triton: the Wasserstein loss.

Mirrors :mod:`mocha_triton.cpu_ref.transport` (read its docstring for the mathematics). Organisation:

* ``gibbs_kernel`` computes the Gibbs kernel ``K = exp(-lambda_ * M)`` once per call (a streaming
  kernel), so the iterations read K instead of recomputing P * Q exponentials every time.
* The iteration itself runs in **one program per sample**, the whole loop of ``n_iter`` iterations
  inside the kernel (no launch per iteration). Each iteration is two matrix-vector products with the
  shared K, done as broadcast-multiply-and-``tl.sum`` (no ``tl.dot``: a vector is not a tile, and the
  sums stay exact fp32). Two variants, chosen by the size of K:

  - ``sinkhorn_resident_kernel`` when the padded K tile (``next_power_of_2`` of P and Q, at least 16,
    at most ``RESIDENT_MAX_TILE`` elements) fits in registers: K, u and v stay in registers for the
    whole loop, and the cost tile is read once at the end for the loss.
  - ``sinkhorn_streamed_kernel`` for larger K: K is streamed from global memory (L2-resident across the
    programs) in ``STREAM_TILE x STREAM_TILE`` tiles at every half-iteration, and u and v live in their
    output rows. One program's threads write a vector and then read other threads' elements of it, so
    every half-iteration ends with ``tl.debug_barrier()`` (a CTA barrier, which also orders the global
    memory accesses of the program's threads). Each program walks all of K twice per iteration, one tile
    after the other, so this variant is latency bound: fine for a few hundred bins a side, slow for
    thousands (a batched GEMM per half-iteration across the samples would suit those; not done).

* ``mean_kernel`` adds the per-sample losses in a fixed order (one program): deterministic.
* ``sinkhorn_backward_kernel``: one program per row of u, a first pass for the mean of ``log u`` (when
  centring) and a second that writes the gradient; each element is read and written by the same
  thread, so the gradient may overwrite u in place.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import transport as checks
from mocha_triton.contract import LOG_CLAMP
from mocha_triton.kernels._runtime import STREAM_LAUNCH, CompileCase, same_device, stream_compile_case, stream_grid

FLOAT32 = ("float32",)
MIN_BLOCK = 16  # smallest padded size of a K tile dimension
RESIDENT_MAX_TILE = 4096  # largest padded K tile kept in registers: 16 fp32 per thread at 8 warps, ~120 registers
STREAM_TILE = 64  # K tile side of the streamed variant: few, wide loads per program (it is latency bound)
STREAM_NUM_WARPS = 8
REDUCE_BLOCK = 1024  # elements per step of the row and mean reductions
_LOG_CLAMP = tl.constexpr(LOG_CLAMP)  # Mocha's clamp before a log: log(max(u, 1e-20))


@triton.jit
def gibbs_kernel(cost_ptr, gibbs_ptr, neg_lambda, numel, BLOCK: tl.constexpr):
    """gibbs[i] = exp(neg_lambda * cost[i]) for i < numel."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    cost = tl.load(cost_ptr + offs, mask=mask, other=0.0)
    tl.store(gibbs_ptr + offs, tl.exp(neg_lambda * cost), mask=mask)


@triton.jit
def sinkhorn_resident_kernel(pred_ptr, target_ptr, gibbs_ptr, cost_ptr, u_ptr, v_ptr, sample_loss_ptr, P, Q, n_iter,
                             BLOCK_P: tl.constexpr, BLOCK_Q: tl.constexpr):
    """Sample n = program_id: the Sinkhorn loop with K (BLOCK_P x BLOCK_Q, zero padded) in registers."""
    n = tl.program_id(0).to(tl.int64)
    rows = tl.arange(0, BLOCK_P)
    cols = tl.arange(0, BLOCK_Q)
    row_in, col_in = rows < P, cols < Q
    tile_in = row_in[:, None] & col_in[None, :]
    tile = rows[:, None] * Q + cols[None, :]
    gibbs = tl.load(gibbs_ptr + tile, mask=tile_in, other=0.0)
    a = tl.load(pred_ptr + n * P + rows, mask=row_in, other=0.0)
    b = tl.load(target_ptr + n * Q + cols, mask=col_in, other=0.0)
    # Padded lanes divide by 1 instead of 0: a and b are 0 there, so u and v stay 0 on the padding.
    u = tl.where(row_in, 1.0 / P, 0.0)
    for _ in range(n_iter):
        v = b / tl.where(col_in, tl.sum(gibbs * u[:, None], axis=0), 1.0)  # b / (K.T @ u)
        u = a / tl.where(row_in, tl.sum(gibbs * v[None, :], axis=1), 1.0)  # a / (K @ v)
    v = b / tl.where(col_in, tl.sum(gibbs * u[:, None], axis=0), 1.0)
    cost = tl.load(cost_ptr + tile, mask=tile_in, other=0.0)
    plan_cost = tl.sum(u * tl.sum(gibbs * cost * v[None, :], axis=1), axis=0)  # u . ((K * M) @ v)
    tl.store(u_ptr + n * P + rows, u, mask=row_in)
    tl.store(v_ptr + n * Q + cols, v, mask=col_in)
    tl.store(sample_loss_ptr + n, plan_cost)


@triton.jit
def _rescale(x_ptr, out_ptr, marginal_ptr, gibbs_ptr, OUT, IN, out_stride, in_stride,
             BLOCK_OUT: tl.constexpr, BLOCK_IN: tl.constexpr):
    """out[o] = marginal[o] / sum_i G[o, i] * x[i] with G[o, i] = gibbs[o * out_stride + i * in_stride]:
    ``(Q, P, 1, Q)`` makes G = K.T (column update), ``(P, Q, Q, 1)`` makes G = K (row update)."""
    for out_start in range(0, OUT, BLOCK_OUT):
        outs = out_start + tl.arange(0, BLOCK_OUT)
        out_in = outs < OUT
        acc = tl.zeros((BLOCK_OUT,), tl.float32)
        for in_start in range(0, IN, BLOCK_IN):
            ins = in_start + tl.arange(0, BLOCK_IN)
            in_in = ins < IN
            offs = outs.to(tl.int64)[:, None] * out_stride + ins.to(tl.int64)[None, :] * in_stride
            g = tl.load(gibbs_ptr + offs, mask=out_in[:, None] & in_in[None, :], other=0.0)
            x = tl.load(x_ptr + ins, mask=in_in, other=0.0)
            acc += tl.sum(g * x[None, :], axis=1)
        marginal = tl.load(marginal_ptr + outs, mask=out_in, other=0.0)
        tl.store(out_ptr + outs, marginal / tl.where(out_in, acc, 1.0), mask=out_in)


@triton.jit
def sinkhorn_streamed_kernel(pred_ptr, target_ptr, gibbs_ptr, cost_ptr, u_ptr, v_ptr, sample_loss_ptr, P, Q, n_iter,
                             BLOCK_P: tl.constexpr, BLOCK_Q: tl.constexpr):
    """Sample n = program_id: the Sinkhorn loop with K streamed in tiles and u, v in their output rows."""
    n = tl.program_id(0).to(tl.int64)
    a_row, u_row = pred_ptr + n * P, u_ptr + n * P
    b_row, v_row = target_ptr + n * Q, v_ptr + n * Q
    for start in range(0, P, BLOCK_P):
        rows = start + tl.arange(0, BLOCK_P)
        tl.store(u_row + rows, tl.full((BLOCK_P,), 1.0, tl.float32) / P, mask=rows < P)
    tl.debug_barrier()
    for _ in range(n_iter):
        _rescale(u_row, v_row, b_row, gibbs_ptr, Q, P, 1, Q, BLOCK_Q, BLOCK_P)  # v = b / (K.T @ u)
        tl.debug_barrier()
        _rescale(v_row, u_row, a_row, gibbs_ptr, P, Q, Q, 1, BLOCK_P, BLOCK_Q)  # u = a / (K @ v)
        tl.debug_barrier()
    _rescale(u_row, v_row, b_row, gibbs_ptr, Q, P, 1, Q, BLOCK_Q, BLOCK_P)
    tl.debug_barrier()
    total = tl.zeros((BLOCK_P,), tl.float32)  # u . ((K * M) @ v), accumulated per row lane
    for p_start in range(0, P, BLOCK_P):
        rows = p_start + tl.arange(0, BLOCK_P)
        row_in = rows < P
        acc = tl.zeros((BLOCK_P,), tl.float32)
        for q_start in range(0, Q, BLOCK_Q):
            cols = q_start + tl.arange(0, BLOCK_Q)
            col_in = cols < Q
            tile_in = row_in[:, None] & col_in[None, :]
            tile = rows.to(tl.int64)[:, None] * Q + cols[None, :]
            gibbs = tl.load(gibbs_ptr + tile, mask=tile_in, other=0.0)
            cost = tl.load(cost_ptr + tile, mask=tile_in, other=0.0)
            v = tl.load(v_row + cols, mask=col_in, other=0.0)
            acc += tl.sum(gibbs * cost * v[None, :], axis=1)
        total += tl.load(u_row + rows, mask=row_in, other=0.0) * acc
    tl.store(sample_loss_ptr + n, tl.sum(total, axis=0))


@triton.jit
def mean_kernel(x_ptr, out_ptr, numel, BLOCK: tl.constexpr):
    """out[0] = sum(x[:numel]) / numel, one program, in a fixed order."""
    acc = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, numel, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(x_ptr + offs, mask=offs < numel, other=0.0)
    tl.store(out_ptr, tl.sum(acc, axis=0) / numel)


@triton.jit
def sinkhorn_backward_kernel(u_ptr, d_ptr, D, coef, CENTER: tl.constexpr, BLOCK: tl.constexpr):
    """Row r = program_id: d[r] = coef * (log(max(u[r], 1e-20)) - mean of those logs if CENTER)."""
    row = tl.program_id(0).to(tl.int64) * D
    shift = 0.0
    if CENTER:
        acc = tl.zeros((BLOCK,), tl.float32)
        for start in range(0, D, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            u = tl.load(u_ptr + row + offs, mask=offs < D, other=1.0)  # log(1) = 0 on the padding
            acc += tl.log(tl.maximum(u, _LOG_CLAMP))
        shift = tl.sum(acc, axis=0) / D
    for start in range(0, D, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < D
        u = tl.load(u_ptr + row + offs, mask=mask, other=1.0)
        tl.store(d_ptr + row + offs, coef * (tl.log(tl.maximum(u, _LOG_CLAMP)) - shift), mask=mask)


def resident_blocks(p: int, q: int) -> tuple[int, int] | None:
    """(BLOCK_P, BLOCK_Q) of the register-resident variant for a (p, q) cost, or None when K is too big."""
    block_p, block_q = max(triton.next_power_of_2(p), MIN_BLOCK), max(triton.next_power_of_2(q), MIN_BLOCK)
    return (block_p, block_q) if block_p * block_q <= RESIDENT_MAX_TILE else None


def resident_warps(block_p: int, block_q: int) -> int:
    """8 or 16 K elements per thread: 1 warp for a 16 x 16 tile (its reductions stay inside the warp), 8 at most."""
    return min(8, max(1, block_p * block_q // 256))


def _reduce_block(numel: int) -> int:
    return min(max(triton.next_power_of_2(numel), MIN_BLOCK), REDUCE_BLOCK)


def sinkhorn_forward(pred: torch.Tensor, target: torch.Tensor, cost: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                     sample_loss: torch.Tensor, loss: torch.Tensor, lambda_: float, n_iter: int) -> None:
    """Sinkhorn scalings ``u`` (N, P), ``v`` (N, Q), transport costs ``sample_loss`` (N,) and their mean
    ``loss`` (1,) of the histograms ``pred`` (N, P) and ``target`` (N, Q) under ``cost`` (P, Q)."""
    sizes, lam, n_iter = checks.check_sinkhorn_forward(pred, target, cost, u, v, sample_loss, loss, lambda_, n_iter,
                                                       FLOAT32)
    same_device("sinkhorn_forward", {"pred": pred, "target": target, "cost": cost, "u": u, "v": v,
                                     "sample_loss": sample_loss, "loss": loss})
    gibbs = torch.empty_like(cost)
    gibbs_kernel[stream_grid(cost.numel())](cost, gibbs, -lam, cost.numel(), **STREAM_LAUNCH)
    args = (pred, target, gibbs, cost, u, v, sample_loss, sizes.p, sizes.q, n_iter)
    blocks = resident_blocks(sizes.p, sizes.q)
    if blocks is not None:
        sinkhorn_resident_kernel[(sizes.n,)](*args, BLOCK_P=blocks[0], BLOCK_Q=blocks[1],
                                            num_warps=resident_warps(*blocks), num_stages=1)
    else:
        sinkhorn_streamed_kernel[(sizes.n,)](*args, BLOCK_P=STREAM_TILE, BLOCK_Q=STREAM_TILE,
                                            num_warps=STREAM_NUM_WARPS, num_stages=1)
    mean_kernel[(1,)](sample_loss, loss, sizes.n, BLOCK=_reduce_block(sizes.n), num_warps=4, num_stages=1)


def sinkhorn_backward(u: torch.Tensor, dpred: torch.Tensor, lambda_: float, scale: float = 1.0,
                      center: bool = True) -> None:
    """``dpred = scale * (log u - c) / (lambda_ * N)`` for ``u`` (N, D), ``c`` the row mean of ``log u`` when
    ``center`` (else 0), ``log`` of ``max(u, 1e-20)``; ``dpred`` may be ``u`` itself."""
    n, d, coef, center = checks.check_sinkhorn_backward(u, dpred, lambda_, scale, center, FLOAT32)
    same_device("sinkhorn_backward", {"u": u, "dpred": dpred})
    sinkhorn_backward_kernel[(n,)](u, dpred, d, coef, CENTER=center, BLOCK=_reduce_block(d), num_warps=4,
                                   num_stages=1)


def compile_cases() -> list[CompileCase]:
    ptr, i32, f32 = "*fp32", "i32", "fp32"
    sinkhorn_sig = {"pred_ptr": ptr, "target_ptr": ptr, "gibbs_ptr": ptr, "cost_ptr": ptr, "u_ptr": ptr,
                    "v_ptr": ptr, "sample_loss_ptr": ptr, "P": i32, "Q": i32, "n_iter": i32}
    resident = [
        CompileCase(sinkhorn_resident_kernel, sinkhorn_sig, {"BLOCK_P": bp, "BLOCK_Q": bq}, resident_warps(bp, bq), 1,
                    label=f"{bp}x{bq}")
        for bp, bq in [(16, 16), (16, 64), (32, 32), (32, 64), (64, 64), (16, 256), (256, 16)]
    ]
    backward_sig = {"u_ptr": ptr, "d_ptr": ptr, "D": i32, "coef": f32}
    return [
        stream_compile_case(gibbs_kernel, {"cost_ptr": ptr, "gibbs_ptr": ptr, "neg_lambda": f32, "numel": "i64"}),
        *resident,
        CompileCase(sinkhorn_streamed_kernel, sinkhorn_sig, {"BLOCK_P": STREAM_TILE, "BLOCK_Q": STREAM_TILE},
                    STREAM_NUM_WARPS, 1),
        CompileCase(mean_kernel, {"x_ptr": ptr, "out_ptr": ptr, "numel": i32}, {"BLOCK": REDUCE_BLOCK}, 4, 1),
        *[CompileCase(sinkhorn_backward_kernel, backward_sig, {"CENTER": center, "BLOCK": REDUCE_BLOCK}, 4, 1,
                      label=f"center={center}") for center in (True, False)],
    ]
