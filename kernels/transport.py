"""Entropic optimal transport by Sinkhorn's iteration in Triton: the Wasserstein loss.

Mirrors :mod:`mocha_triton.cpu_ref.transport` (read its docstring for the mathematics). Organisation:

* ``gibbs_kernel`` computes the Gibbs kernel ``K = exp(-lambda_ * M)`` once per call (a streaming
  kernel), so the iterations read K instead of recomputing P * Q exponentials every time.
* Each iteration is two matrix-vector products per sample with the shared K, done as
  broadcast-multiply-and-``tl.sum`` (no ``tl.dot``: a vector is not a tile, and the sums stay exact fp32).
  Two variants, chosen by the size of K:

  - ``sinkhorn_resident_kernel`` when the padded K tile (``next_power_of_2`` of P and Q, at least 16,
    at most ``RESIDENT_MAX_TILE`` elements) fits in registers: **one program per sample** runs the whole
    loop of ``n_iter`` iterations with K, u and v in registers (its threads exchange values only through
    ``tl.sum``), and reads the cost tile once at the end for the loss.
  - otherwise **the host runs the loop**, one launch per half-iteration over all the samples (2 * n_iter + 1
    launches): ``scaling_kernel`` is a batched matrix-vector product, one program per (sample n, block j
    of ``MATVEC_BLOCK_OUT`` outputs) on a 1-D grid, computing its part of ``v[n] = b[n] / (K.T @ u[n])``
    (K read transposed in place) or of ``u[n] = a[n] / (K @ v[n])``, looping over ``MATVEC_BLOCK_IN`` wide
    tiles of K (which stays in L2 across the programs). A launch reads only what earlier launches wrote: no program
    depends on another program's (or another thread's) stores of the same launch, so nothing needs a
    barrier. ``plan_cost_kernel`` then writes per-row-block partial sums of the loss
    ``u . ((K * M) @ v)`` on the same grid, and ``row_sum_kernel`` adds each sample's partials.

* ``row_sum_kernel`` also averages the per-sample losses into ``loss`` (one program): every sum runs in a
  fixed order, so the results are deterministic.
* ``sinkhorn_backward_kernel``: one program per row of u, a first pass for the mean of ``log u`` (when
  centring) and a second that writes the gradient; each element is read and written by the same
  thread, so the gradient may overwrite u in place. Its clamp ``max(u, 1e-20)`` propagates NaN as NumPy's
  does (``tl.maximum`` drops it by default).

**Non-finite values** follow IEEE arithmetic as the reference does: a zero-mass histogram divides by zero
and its sample's loss is NaN, a NaN input makes its sample NaN. Padded lanes never mix into real ones
(masked denominators are 1, masked rows are left out of the loss sums), so they add no NaN of their own.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import transport as checks
from mocha_triton.contract import LOG_CLAMP
from mocha_triton.kernels._runtime import STREAM_LAUNCH, CompileCase, same_device, stream_compile_case, stream_grid
from mocha_triton.kernels.elementwise import fill

FLOAT32 = ("float32",)
MIN_BLOCK = 16  # smallest padded size of a K tile dimension
RESIDENT_MAX_TILE = 4096  # largest padded K tile kept in registers: 16 fp32 per thread at 8 warps, ~120 registers
# Tile of K per step of the host-driven variant's matrix-vector products: 32 x 64 is 16 fp32 per thread at
# 4 warps, and the loss (which also loads a tile of M) takes 8 warps for the same 16 per thread of each. Every
# element of a tile carries its own 64-bit address, so larger tiles cost registers fast (64 x 64: 167 and
# 215 registers). The same on a GPU and in the interpreter, so that the tests run the shapes the GPU runs.
MATVEC_BLOCK_OUT = 32
MATVEC_BLOCK_IN = 64
MATVEC_NUM_WARPS = 4
PLAN_COST_NUM_WARPS = 8
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
    # u . ((K * M) @ v); a padded row is 0 * (0 * v), NaN where v is inf: keep it out of the sum.
    plan_cost = tl.sum(tl.where(row_in, u * tl.sum(gibbs * cost * v[None, :], axis=1), 0.0), axis=0)
    tl.store(u_ptr + n * P + rows, u, mask=row_in)
    tl.store(v_ptr + n * Q + cols, v, mask=col_in)
    tl.store(sample_loss_ptr + n, plan_cost)


@triton.jit
def _gibbs_matvec(gibbs_ptr, cost_ptr, x_row_ptr, outs, out_in, OUT, IN, TRANSPOSED: tl.constexpr,
                  WITH_COST: tl.constexpr, BLOCK_OUT: tl.constexpr, BLOCK_IN: tl.constexpr):
    """acc[o] = sum_i G[o, i] * x[i] for the block ``outs`` of rows of G, looping over column tiles of G.

    G is K (stored (P, Q) row-major; OUT = P, IN = Q), or K.T when TRANSPOSED (OUT = Q, IN = P, read from K
    in place: consecutive ``outs`` are consecutive addresses then); with WITH_COST it is K * M elementwise.
    Rows outside ``out_in`` may hold garbage (0 * inf): callers mask them."""
    acc = tl.zeros((BLOCK_OUT,), tl.float32)
    for in_start in range(0, IN, BLOCK_IN):
        ins = in_start + tl.arange(0, BLOCK_IN)
        in_in = ins < IN
        if TRANSPOSED:
            offs = ins.to(tl.int64)[None, :] * OUT + outs[:, None]
        else:
            offs = outs.to(tl.int64)[:, None] * IN + ins[None, :]
        tile_in = out_in[:, None] & in_in[None, :]
        g = tl.load(gibbs_ptr + offs, mask=tile_in, other=0.0)
        if WITH_COST:
            g = g * tl.load(cost_ptr + offs, mask=tile_in, other=0.0)
        x = tl.load(x_row_ptr + ins, mask=in_in, other=0.0)
        acc += tl.sum(g * x[None, :], axis=1)
    return acc


@triton.jit
def scaling_kernel(x_ptr, marginal_ptr, gibbs_ptr, out_ptr, OUT, IN, TRANSPOSED: tl.constexpr,
                   BLOCK_OUT: tl.constexpr, BLOCK_IN: tl.constexpr):
    """Half a Sinkhorn iteration, ``BLOCK_OUT`` elements of one sample's row of the (N, OUT) output:
    out[n] = marginal[n] / (G @ x[n]), i.e. u = a / (K @ v), or v = b / (K.T @ u) when TRANSPOSED.

    1-D grid of N * cdiv(OUT, BLOCK_OUT) programs, sample-major (no 65535 limit on either count). x (N, IN)
    was written by an earlier launch; out must not overlap x or marginal."""
    blocks = tl.cdiv(OUT, BLOCK_OUT)
    n = (tl.program_id(0) // blocks).to(tl.int64)
    outs = (tl.program_id(0) % blocks) * BLOCK_OUT + tl.arange(0, BLOCK_OUT)
    out_in = outs < OUT
    acc = _gibbs_matvec(gibbs_ptr, gibbs_ptr, x_ptr + n * IN, outs, out_in, OUT, IN, TRANSPOSED, False, BLOCK_OUT,
                        BLOCK_IN)
    marginal = tl.load(marginal_ptr + n * OUT + outs, mask=out_in, other=0.0)
    tl.store(out_ptr + n * OUT + outs, marginal / tl.where(out_in, acc, 1.0), mask=out_in)


@triton.jit
def plan_cost_kernel(u_ptr, v_ptr, gibbs_ptr, cost_ptr, partial_ptr, P, Q, BLOCK_P: tl.constexpr,
                     BLOCK_Q: tl.constexpr):
    """partial[n, j] = sum over the rows r of row block j of u[n, r] * ((K * M) @ v[n])[r]: partial is
    (N, cdiv(P, BLOCK_P)) and its rows add up to the transport costs. Program n * cdiv(P, BLOCK_P) + j
    computes partial[n, j] (the grid of scaling_kernel's u update)."""
    pid = tl.program_id(0)
    n = (pid // tl.cdiv(P, BLOCK_P)).to(tl.int64)
    rows = (pid % tl.cdiv(P, BLOCK_P)) * BLOCK_P + tl.arange(0, BLOCK_P)
    row_in = rows < P
    acc = _gibbs_matvec(gibbs_ptr, cost_ptr, v_ptr + n * Q, rows, row_in, P, Q, False, True, BLOCK_P, BLOCK_Q)
    u = tl.load(u_ptr + n * P + rows, mask=row_in, other=0.0)
    tl.store(partial_ptr + pid, tl.sum(tl.where(row_in, u * acc, 0.0), axis=0))


@triton.jit
def row_sum_kernel(x_ptr, out_ptr, D, divisor, BLOCK: tl.constexpr):
    """out[r] = sum(x[r, :D]) / divisor for the row r = program_id of x (R, D), in a fixed order."""
    row = tl.program_id(0).to(tl.int64) * D
    acc = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, D, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(x_ptr + row + offs, mask=offs < D, other=0.0)
    tl.store(out_ptr + tl.program_id(0), tl.sum(acc, axis=0) / divisor)


@triton.jit
def sinkhorn_backward_kernel(u_ptr, d_ptr, D, coef, CENTER: tl.constexpr, BLOCK: tl.constexpr):
    """Row r = program_id: d[r] = coef * (log(max(u[r], 1e-20)) - mean of those logs if CENTER).

    The clamp propagates NaN (tl.maximum's default drops it, unlike NumPy's np.maximum)."""
    row = tl.program_id(0).to(tl.int64) * D
    shift = 0.0
    if CENTER:
        acc = tl.zeros((BLOCK,), tl.float32)
        for start in range(0, D, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            u = tl.load(u_ptr + row + offs, mask=offs < D, other=1.0)  # log(1) = 0 on the padding
            acc += tl.log(tl.maximum(u, _LOG_CLAMP, propagate_nan=tl.PropagateNan.ALL))
        shift = tl.sum(acc, axis=0) / D
    for start in range(0, D, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        mask = offs < D
        u = tl.load(u_ptr + row + offs, mask=mask, other=1.0)
        log_u = tl.log(tl.maximum(u, _LOG_CLAMP, propagate_nan=tl.PropagateNan.ALL))
        tl.store(d_ptr + row + offs, coef * (log_u - shift), mask=mask)


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
    ``loss`` (1,) of the histograms ``pred`` (N, P) and ``target`` (N, Q) under ``cost`` (P, Q). No output
    may share memory with another argument."""
    sizes, lam, n_iter = checks.check_sinkhorn_forward(pred, target, cost, u, v, sample_loss, loss, lambda_, n_iter,
                                                       FLOAT32)
    same_device("sinkhorn_forward", {"pred": pred, "target": target, "cost": cost, "u": u, "v": v,
                                     "sample_loss": sample_loss, "loss": loss})
    gibbs = torch.empty_like(cost)
    gibbs_kernel[stream_grid(cost.numel())](cost, gibbs, -lam, cost.numel(), **STREAM_LAUNCH)
    blocks = resident_blocks(sizes.p, sizes.q)
    if blocks is not None:
        sinkhorn_resident_kernel[(sizes.n,)](pred, target, gibbs, cost, u, v, sample_loss, sizes.p, sizes.q, n_iter,
                                             BLOCK_P=blocks[0], BLOCK_Q=blocks[1], num_warps=resident_warps(*blocks),
                                             num_stages=1)
    else:
        _sinkhorn_host_loop(pred, target, gibbs, cost, u, v, sample_loss, sizes.n, sizes.p, sizes.q, n_iter)
    row_sum_kernel[(1,)](sample_loss, loss, sizes.n, float(sizes.n), BLOCK=_reduce_block(sizes.n), num_warps=4,
                         num_stages=1)


def _sinkhorn_host_loop(pred: torch.Tensor, target: torch.Tensor, gibbs: torch.Tensor, cost: torch.Tensor,
                        u: torch.Tensor, v: torch.Tensor, sample_loss: torch.Tensor, n: int, p: int, q: int,
                        n_iter: int) -> None:
    """The iteration for a K too large for registers: one launch per half-iteration over all the samples,
    then the transport costs from per-block partial sums. Each launch only reads what earlier launches wrote."""
    launch = {"BLOCK_OUT": MATVEC_BLOCK_OUT, "BLOCK_IN": MATVEC_BLOCK_IN, "num_warps": MATVEC_NUM_WARPS,
              "num_stages": 1}
    row_blocks, col_blocks = triton.cdiv(p, MATVEC_BLOCK_OUT), triton.cdiv(q, MATVEC_BLOCK_OUT)
    fill(u, 1.0 / p)
    for _ in range(n_iter):
        scaling_kernel[(n * col_blocks,)](u, target, gibbs, v, q, p, TRANSPOSED=True, **launch)  # v = b / (K.T @ u)
        scaling_kernel[(n * row_blocks,)](v, pred, gibbs, u, p, q, TRANSPOSED=False, **launch)  # u = a / (K @ v)
    scaling_kernel[(n * col_blocks,)](u, target, gibbs, v, q, p, TRANSPOSED=True, **launch)
    partial = torch.empty((n, row_blocks), dtype=u.dtype, device=u.device)
    plan_cost_kernel[(n * row_blocks,)](u, v, gibbs, cost, partial, p, q, BLOCK_P=MATVEC_BLOCK_OUT,
                                        BLOCK_Q=MATVEC_BLOCK_IN, num_warps=PLAN_COST_NUM_WARPS, num_stages=1)
    row_sum_kernel[(n,)](partial, sample_loss, row_blocks, 1.0, BLOCK=_reduce_block(row_blocks), num_warps=4,
                         num_stages=1)


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
    resident_sig = {"pred_ptr": ptr, "target_ptr": ptr, "gibbs_ptr": ptr, "cost_ptr": ptr, "u_ptr": ptr,
                    "v_ptr": ptr, "sample_loss_ptr": ptr, "P": i32, "Q": i32, "n_iter": i32}
    resident = [
        CompileCase(sinkhorn_resident_kernel, resident_sig, {"BLOCK_P": bp, "BLOCK_Q": bq}, resident_warps(bp, bq),
                    1, label=f"{bp}x{bq}")
        for bp, bq in [(16, 16), (16, 64), (32, 32), (32, 64), (64, 64), (16, 256), (256, 16)]
    ]
    matvec = {"BLOCK_OUT": MATVEC_BLOCK_OUT, "BLOCK_IN": MATVEC_BLOCK_IN}
    scaling_sig = {"x_ptr": ptr, "marginal_ptr": ptr, "gibbs_ptr": ptr, "out_ptr": ptr, "OUT": i32, "IN": i32}
    plan_cost_sig = {"u_ptr": ptr, "v_ptr": ptr, "gibbs_ptr": ptr, "cost_ptr": ptr, "partial_ptr": ptr, "P": i32,
                     "Q": i32}
    backward_sig = {"u_ptr": ptr, "d_ptr": ptr, "D": i32, "coef": f32}
    return [
        stream_compile_case(gibbs_kernel, {"cost_ptr": ptr, "gibbs_ptr": ptr, "neg_lambda": f32, "numel": "i64"}),
        *resident,
        *[CompileCase(scaling_kernel, scaling_sig, {**matvec, "TRANSPOSED": transposed}, MATVEC_NUM_WARPS, 1,
                      label="v = b / (K.T @ u)" if transposed else "u = a / (K @ v)") for transposed in (True, False)],
        CompileCase(plan_cost_kernel, plan_cost_sig, {"BLOCK_P": MATVEC_BLOCK_OUT, "BLOCK_Q": MATVEC_BLOCK_IN},
                    PLAN_COST_NUM_WARPS, 1),
        CompileCase(row_sum_kernel, {"x_ptr": ptr, "out_ptr": ptr, "D": i32, "divisor": f32}, {"BLOCK": REDUCE_BLOCK},
                    4, 1),
        *[CompileCase(sinkhorn_backward_kernel, backward_sig, {"CENTER": center, "BLOCK": REDUCE_BLOCK}, 4, 1,
                      label=f"center={center}") for center in (True, False)],
    ]
