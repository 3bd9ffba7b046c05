"""A general tiled GEMM in Triton, ``c = neuron(a @ b + bias)``, shared by the layers that need one.

:func:`gemm` takes any strided torch views: a transposed weight (``w.t()``), a permuted activation,
a broadcast operand (``.expand()``, batch stride 0). The kernel reads every stride, so the backward
passes of a layer reuse it through swapped strides instead of transposed copies.

How the work is organised:

* **Grid.** ``(tiles, batch, split)``. Axis 0 walks the ``BLOCK_M x BLOCK_N`` output tiles in the
  grouped order of Triton's matmul tutorial: ``GROUP_M`` consecutive tile rows share their column
  tiles, so the b tiles a group reads stay in L2. Axis 1 is the batch of a batched product. Axis 2
  is the slice of the reduction a program owns when the product is split along K (below).
* **Reduction.** Each program loops over its K range in ``BLOCK_K`` steps, loading an a tile
  ``(BLOCK_M, BLOCK_K)`` and a b tile ``(BLOCK_K, BLOCK_N)`` (edges masked with zeros) and
  accumulating ``tl.dot`` into fp32 with the input precision chosen by
  :func:`mocha_triton.kernels.set_precision`. The edge masks compare in-tile offsets with what is
  left of M, N, K, so when the sizes are multiples of 16 they are constant over 16 elements and the
  loads stay 16-byte vectorised.
* **Offsets.** Each tile's origin (batch, split slice, first row and column) is a 64-bit scalar, and
  the pointers advance along K by 64-bit steps; offsets inside a tile are 32-bit (cheaper in
  registers) unless some stride times a block side passes 2**31 (``WIDE``, chosen on the host).
* **Epilogue.** bias (along N or along M) and the neuron are applied to the fp32 accumulator, then
  the tile is stored through c's strides.
* **Layouts and tf32.** With "ieee" (CUDA-core FMA) every layout runs alike. The tf32 tensor-core
  path (wgmma) wants both operands K-contiguous (a row-major, b = ``w.t()``, as in the forward of a
  fully connected layer); an operand contiguous along M or N is copied to shared memory 4 bytes at a
  time, which is slower, but still needs no transposed copy in global memory.
* **Split-K.** When the output has too few tiles to fill the GPU and K is long (a weight gradient
  such as ``dw = dy.T @ x`` of a 1x1 convolution, reducing over batch x pixels), the K range is
  split over ``grid[2]``. Each slice stores its partial tile into a float32 workspace, then
  :data:`splitk_reduce_kernel` adds the slices in a fixed order and applies the epilogue. No atomics:
  the result is bit-identical run to run.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
import triton
import triton.language as tl

from mocha_triton.checks.common import require_choice, require_finite_scalar, require_float, shape_of
from mocha_triton.contract import NEURONS
from mocha_triton.kernels._activations import apply_neuron, neuron_code
from mocha_triton.kernels._runtime import CompileCase, autotune, get_precision

GROUP_M = 8
REDUCE_BLOCK_M, REDUCE_BLOCK_N, REDUCE_WARPS, REDUCE_STAGES = 32, 128, 4, 1


def _config(block_m: int, block_n: int, block_k: int, warps: int, stages: int) -> triton.Config:
    return triton.Config({"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": block_k, "GROUP_M": GROUP_M},
                         num_warps=warps, num_stages=stages)


# H100 tiles, every one free of register spills in all three precisions with 32- and 64-bit sizes
# (fp32 operands are register-hungry: 128x128 tiles spill, and tiles with a 128 side need 8 warps). Square-ish
# tiles serve large products; the narrow ones serve small M (a batch of 64) or small N.
GEMM_CONFIGS = [
    _config(128, 64, 32, 8, 3),
    _config(128, 64, 32, 8, 4),
    _config(64, 128, 32, 8, 3),
    _config(64, 64, 32, 4, 4),
    _config(128, 32, 32, 8, 4),
    _config(64, 32, 32, 4, 4),
    _config(32, 64, 32, 4, 4),
    _config(32, 32, 32, 4, 3),
]
# The interpreter's cost grows with the number of programs: one big tile.
INTERPRETER_CONFIG = _config(64, 64, 32, 4, 1)
# Every K slice of a split product starts at a multiple of every BLOCK_K.
SPLIT_K_ALIGN = max(config.kwargs["BLOCK_K"] for config in GEMM_CONFIGS + [INTERPRETER_CONFIG])
# The largest tile side of any config (split-K reduction included): bounds the 32-bit in-tile offsets.
MAX_BLOCK = max([REDUCE_BLOCK_M, REDUCE_BLOCK_N] + [max(config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"],
                                                         config.kwargs["BLOCK_K"])
                                                     for config in GEMM_CONFIGS + [INTERPRETER_CONFIG]])


@triton.jit
def _epilogue(acc, c_ptr, bias_ptr, rows, cols, rows_left, cols_left, stride_cm, stride_cn, stride_bias,
              negative_slope, HAS_BIAS: tl.constexpr, BIAS_ALONG_M: tl.constexpr, NEURON: tl.constexpr):
    """Store neuron(acc + bias) into a (BLOCK_M, BLOCK_N) tile of c.

    ``c_ptr`` and ``bias_ptr`` point at the tile's first element (batch, split slice and tile origin
    already added in 64 bits); ``rows``/``cols`` are the in-tile offsets and ``rows_left``/``cols_left``
    how many of them lie inside the matrix.
    """
    mask_m = rows < rows_left
    mask_n = cols < cols_left
    if HAS_BIAS:
        if BIAS_ALONG_M:
            bias = tl.load(bias_ptr + rows * stride_bias, mask=mask_m, other=0.0)
            acc = acc + bias[:, None]
        else:
            bias = tl.load(bias_ptr + cols * stride_bias, mask=mask_n, other=0.0)
            acc = acc + bias[None, :]
    acc = apply_neuron(acc, NEURON, negative_slope)
    tl.store(c_ptr + rows[:, None] * stride_cm + cols[None, :] * stride_cn, acc,
             mask=mask_m[:, None] & mask_n[None, :])


@triton.jit
def _tile_offsets(BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, WIDE: tl.constexpr):
    """In-tile offsets along M, N and K: int32, or int64 when WIDE (a stride times a block passes 2**31)."""
    rows = tl.arange(0, BLOCK_M)
    cols = tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    if WIDE:
        rows = rows.to(tl.int64)
        cols = cols.to(tl.int64)
        ks = ks.to(tl.int64)
    return rows, cols, ks


@autotune(GEMM_CONFIGS, key=["M", "N", "K", "K_PER_SPLIT", "stride_am", "stride_ak", "stride_bk", "stride_bn",
                             "PRECISION"],
          interpreter_config=INTERPRETER_CONFIG)
@triton.jit
def gemm_kernel(a_ptr, b_ptr, c_ptr, bias_ptr, M, N, K, K_PER_SPLIT,
                stride_ab, stride_am, stride_ak, stride_bb, stride_bk, stride_bn,
                stride_cs, stride_cb, stride_cm, stride_cn, stride_bias, negative_slope,
                HAS_BIAS: tl.constexpr, BIAS_ALONG_M: tl.constexpr, NEURON: tl.constexpr,
                PRECISION: tl.constexpr, WIDE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    """c[s, b] = neuron(a[b] @ b[b] + bias) over the K slice s (grid: tiles, batch, split).

    a is (B, M, K), b (B, K, N), c (S, B, M, N), each through its strides (a batch stride of 0
    broadcasts). With S > 1 the caller passes HAS_BIAS=False and the identity neuron, and
    ``splitk_reduce_kernel`` finishes the job. Each tile's origin is a 64-bit scalar offset; offsets
    inside a tile are 32-bit unless WIDE.
    """
    # Grouped tile order: GROUP_M tile rows are walked column by column.
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + (pid % num_pid_in_group) % group_size_m
    pid_n = (pid % num_pid_in_group) // group_size_m
    batch = tl.program_id(1).to(tl.int64)
    split = tl.program_id(2)

    row0 = pid_m.to(tl.int64) * BLOCK_M  # the tile's origin, in 64 bits
    col0 = pid_n.to(tl.int64) * BLOCK_N
    rows_left = M - pid_m * BLOCK_M  # rows of this tile inside the matrix
    cols_left = N - pid_n * BLOCK_N
    k_start = split * K_PER_SPLIT
    k_end = min(k_start + K_PER_SPLIT, K)
    rows, cols, ks = _tile_offsets(BLOCK_M, BLOCK_N, BLOCK_K, WIDE)
    # Edge masks rather than clamped or wrapped indices: when M, N, K are multiples of 16 (Triton
    # specialises on that) the masks are constant over 16 elements and the loads stay vectorised.
    mask_m = (rows < rows_left)[:, None]
    mask_n = (cols < cols_left)[None, :]
    k0 = k_start.to(tl.int64)
    a_ptrs = a_ptr + (batch * stride_ab + row0 * stride_am + k0 * stride_ak) \
        + rows[:, None] * stride_am + ks[None, :] * stride_ak
    b_ptrs = b_ptr + (batch * stride_bb + k0 * stride_bk + col0 * stride_bn) \
        + ks[:, None] * stride_bk + cols[None, :] * stride_bn
    a_step = (batch * 0 + BLOCK_K) * stride_ak  # 64-bit pointer steps along K
    b_step = (batch * 0 + BLOCK_K) * stride_bk

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(k_start, k_end, BLOCK_K):
        k_mask = ks < k_end - k
        a = tl.load(a_ptrs, mask=mask_m & k_mask[None, :], other=0.0)
        b = tl.load(b_ptrs, mask=k_mask[:, None] & mask_n, other=0.0)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
        a_ptrs += a_step
        b_ptrs += b_step

    c_tile = c_ptr + (split.to(tl.int64) * stride_cs + batch * stride_cb + row0 * stride_cm + col0 * stride_cn)
    bias_tile = bias_ptr + (row0 if BIAS_ALONG_M else col0) * stride_bias
    _epilogue(acc, c_tile, bias_tile, rows, cols, rows_left, cols_left, stride_cm, stride_cn, stride_bias,
              negative_slope, HAS_BIAS, BIAS_ALONG_M, NEURON)


@triton.jit
def splitk_reduce_kernel(ws_ptr, c_ptr, bias_ptr, M, N, SPLIT, stride_ws, stride_wb, stride_wm,
                         stride_cb, stride_cm, stride_cn, stride_bias, negative_slope,
                         HAS_BIAS: tl.constexpr, BIAS_ALONG_M: tl.constexpr, NEURON: tl.constexpr,
                         WIDE: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """c[b] = neuron(sum over s of ws[s, b] + bias), the slices added in order s = 0, 1, ...

    ws is a contiguous float32 (S, B, M, N) workspace (column stride 1); grid (tiles, batch).
    """
    num_pid_n = tl.cdiv(N, BLOCK_N)
    pid_m = tl.program_id(0) // num_pid_n
    pid_n = tl.program_id(0) % num_pid_n
    batch = tl.program_id(1).to(tl.int64)
    row0 = pid_m.to(tl.int64) * BLOCK_M
    col0 = pid_n.to(tl.int64) * BLOCK_N
    rows_left = M - pid_m * BLOCK_M
    cols_left = N - pid_n * BLOCK_N
    rows, cols, _ = _tile_offsets(BLOCK_M, BLOCK_N, 16, WIDE)
    mask = (rows < rows_left)[:, None] & (cols < cols_left)[None, :]
    ws_tile = ws_ptr + (batch * stride_wb + row0 * stride_wm + col0) + rows[:, None] * stride_wm + cols[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    ws_step = batch * 0 + stride_ws  # 64-bit step from one slice to the next
    for _ in range(0, SPLIT):
        acc += tl.load(ws_tile, mask=mask, other=0.0)
        ws_tile += ws_step
    c_tile = c_ptr + (batch * stride_cb + row0 * stride_cm + col0 * stride_cn)
    bias_tile = bias_ptr + (row0 if BIAS_ALONG_M else col0) * stride_bias
    _epilogue(acc, c_tile, bias_tile, rows, cols, rows_left, cols_left, stride_cm, stride_cn, stride_bias,
              negative_slope, HAS_BIAS, BIAS_ALONG_M, NEURON)


# ----------------------------------------------------------------------------------------------------
# Host side
# ----------------------------------------------------------------------------------------------------


def _span(t: torch.Tensor) -> tuple[int, int]:
    """[first, last] byte addresses a non-empty view can touch."""
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride(), strict=True)) * t.element_size()
    return t.data_ptr(), t.data_ptr() + last + t.element_size() - 1


def _check(a: Any, b: Any, c: Any, bias: Any, bias_along: str, neuron: str,
           negative_slope: Any) -> tuple[int, int, int, int, float]:
    """Validate gemm's arguments; return (batch, M, N, K, negative_slope)."""
    named = {"a": a, "b": b, "c": c, "bias": bias}
    device = None
    for name, t in named.items():
        if t is None:
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"gemm: {name} must be a torch.Tensor, got {type(t).__name__}")
        require_float("gemm", name, t, ("float32",))
        if device is not None and t.device != device:
            raise ValueError(f"gemm: {name} is on {t.device}, expected {device}")
        device = t.device
    for name in ("a", "b", "c"):
        if named[name].dim() not in (2, 3):
            raise ValueError(f"gemm: {name} must be 2-D or 3-D, got shape {shape_of(named[name])}")
    batch = c.shape[0] if c.dim() == 3 else 1
    for name in ("a", "b"):
        t = named[name]
        if t.dim() == 3 and (c.dim() == 2 or t.shape[0] != batch):
            raise ValueError(f"gemm: {name} has batch {t.shape[0]} but c has shape {shape_of(c)} "
                             f"(a 3-D operand needs a 3-D c with the same batch)")
    m, k = a.shape[-2:]
    k_b, n = b.shape[-2:]
    if k != k_b:
        raise ValueError(f"gemm: a has {k} columns but b has {k_b} rows (a {shape_of(a)}, b {shape_of(b)})")
    if tuple(c.shape[-2:]) != (m, n):
        raise ValueError(f"gemm: c has shape {shape_of(c)}, expected (..., {m}, {n}) for a {shape_of(a)} "
                         f"and b {shape_of(b)}")
    require_choice("gemm", "bias_along", bias_along, ("n", "m"))
    require_choice("gemm", "neuron", neuron, NEURONS)
    slope = require_finite_scalar("gemm", "negative_slope", negative_slope)
    if bias is not None:
        length = n if bias_along == "n" else m
        if tuple(bias.shape) != (length,):
            raise ValueError(f"gemm: bias has shape {shape_of(bias)}, expected ({length},) along {bias_along}")
    if c.numel():
        if any(size > 1 and stride == 0 for size, stride in zip(c.shape, c.stride(), strict=True)):
            raise ValueError("gemm: c must not be a broadcast (stride 0) view: its elements would be written twice")
        c_first, c_last = _span(c)
        for name in ("a", "b", "bias"):
            t = named[name]
            if t is not None and t.numel():
                first, last = _span(t)
                if first <= c_last and c_first <= last:
                    raise ValueError(f"gemm: c overlaps {name} in memory; the output must be a separate buffer")
    return batch, int(m), int(n), int(k), slope


@functools.cache
def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 132  # an H100's count: the interpreter only needs a plausible value


def choose_split_k(batch: int, m: int, n: int, k: int, device: torch.device) -> int:
    """How many K slices to run: more than 1 only when the output's 64x64 tiles cannot fill half the
    GPU and K is long (at least 2048); then enough slices for about two programs per SM, each slice
    still at least 1024 long, at most 128 slices."""
    tiles = batch * triton.cdiv(m, 64) * triton.cdiv(n, 64)
    sms = _sm_count(device)
    if k < 2048 or 2 * tiles >= sms:
        return 1
    return max(1, min(k // 1024, triton.cdiv(2 * sms, tiles), 128))


def _batch_stride(t: torch.Tensor) -> int:
    return t.stride(0) if t.dim() == 3 else 0


def _needs_wide_offsets(*strides: int) -> bool:
    """Whether some stride times a block size passes 2**31 (then in-tile offsets must be int64)."""
    return max(strides) * MAX_BLOCK >= 2**31


def gemm(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, bias: torch.Tensor | None = None,
         bias_along: str = "n", neuron: str = "identity", negative_slope: float = 0.01, *,
         split_k: int | None = None) -> None:
    """c = neuron(a @ b + bias), written into c.

    Shapes: a (M, K) or (B, M, K); b (K, N) or (B, K, N); c (M, N) or (B, M, N). A 2-D operand
    is shared by every batch of a 3-D c. Any strides are accepted (transposed, permuted and expanded
    views); c must not overlap a, b or bias. ``bias`` is (N,) added to every row
    (``bias_along="n"``) or (M,) added to every column (``"m"``). ``neuron`` is a contract neuron
    name. ``split_k`` forces the number of K slices (None: :func:`choose_split_k` decides).
    All tensors float32 on one device; fp32 accumulation, ``tl.dot`` precision from
    :func:`mocha_triton.kernels.get_precision`.
    """
    batch, m, n, k, slope = _check(a, b, c, bias, bias_along, neuron, negative_slope)
    if c.numel() == 0:
        return
    if split_k is None:
        split_k = choose_split_k(batch, m, n, k, c.device)
    if isinstance(split_k, bool) or not isinstance(split_k, int) or split_k < 1:
        raise ValueError(f"gemm: split_k must be a positive int or None, got {split_k!r}")
    k_per_split = max(triton.cdiv(triton.cdiv(k, split_k), SPLIT_K_ALIGN) * SPLIT_K_ALIGN, SPLIT_K_ALIGN)
    split = max(triton.cdiv(k, k_per_split), 1)  # no empty slice
    if split == 1:
        k_per_split = max(k, 1)

    epilogue = {"HAS_BIAS": bias is not None, "BIAS_ALONG_M": bias_along == "m", "NEURON": neuron_code(neuron)}
    bias_arg = bias if bias is not None else c  # never read without HAS_BIAS
    stride_bias = bias.stride(0) if bias is not None else 0
    a_strides = (_batch_stride(a), a.stride(-2), a.stride(-1))
    b_strides = (_batch_stride(b), b.stride(-2), b.stride(-1))
    c_strides = (_batch_stride(c), c.stride(-2), c.stride(-1))
    wide = _needs_wide_offsets(*a_strides[1:], *b_strides[1:], *c_strides[1:], stride_bias, n)

    def grid(meta: dict[str, Any]) -> tuple[int, int, int]:
        return triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]), batch, split

    if split == 1:
        gemm_kernel[grid](a, b, c, bias_arg, m, n, k, k_per_split, *a_strides, *b_strides, 0, *c_strides,
                          stride_bias, slope, PRECISION=get_precision(), WIDE=wide, **epilogue)
        return
    ws = torch.empty((split, batch, m, n), dtype=torch.float32, device=c.device)
    gemm_kernel[grid](a, b, ws, ws, m, n, k, k_per_split, *a_strides, *b_strides, *ws.stride(), 0, 0.0,
                      PRECISION=get_precision(), WIDE=wide, HAS_BIAS=False, BIAS_ALONG_M=False,
                      NEURON=neuron_code("identity"))
    reduce_grid = (triton.cdiv(m, REDUCE_BLOCK_M) * triton.cdiv(n, REDUCE_BLOCK_N), batch)
    splitk_reduce_kernel[reduce_grid](ws, c, bias_arg, m, n, split, *ws.stride()[:3], *c_strides, stride_bias,
                                      slope, WIDE=wide, BLOCK_M=REDUCE_BLOCK_M, BLOCK_N=REDUCE_BLOCK_N,
                                      num_warps=REDUCE_WARPS, num_stages=REDUCE_STAGES, **epilogue)


def compile_cases() -> list[CompileCase]:
    """gemm_kernel with 32- and 64-bit sizes and strides in every precision, and with 64-bit in-tile
    offsets (WIDE), all with the heaviest epilogue (a bias and the sigmoid neuron); the split-K
    reduction likewise."""
    ptrs = {"a_ptr": "*fp32", "b_ptr": "*fp32", "c_ptr": "*fp32", "bias_ptr": "*fp32"}
    ints = ["M", "N", "K", "K_PER_SPLIT", "stride_ab", "stride_am", "stride_ak", "stride_bb", "stride_bk",
            "stride_bn", "stride_cs", "stride_cb", "stride_cm", "stride_cn", "stride_bias"]
    epilogue = {"HAS_BIAS": True, "BIAS_ALONG_M": False, "NEURON": neuron_code("sigmoid")}
    variants = [(precision, int_type, False) for precision in ("ieee", "tf32", "tf32x3") for int_type in ("i32", "i64")]
    variants += [("ieee", "i32", True), ("tf32", "i32", True)]
    cases = []
    for precision, int_type, wide in variants:
        signature = {**ptrs, **dict.fromkeys(ints, int_type), "negative_slope": "fp32"}
        cases.append(CompileCase(gemm_kernel, signature, {**epilogue, "PRECISION": precision, "WIDE": wide},
                                 label=f"{precision},{int_type}{',wide' if wide else ''}"))
    reduce_ints = ["M", "N", "SPLIT", "stride_ws", "stride_wb", "stride_wm", "stride_cb", "stride_cm",
                   "stride_cn", "stride_bias"]
    for int_type, wide in (("i32", False), ("i64", False), ("i32", True)):
        signature = {"ws_ptr": "*fp32", "c_ptr": "*fp32", "bias_ptr": "*fp32",
                     **dict.fromkeys(reduce_ints, int_type), "negative_slope": "fp32"}
        cases.append(CompileCase(splitk_reduce_kernel, signature,
                                 {**epilogue, "WIDE": wide, "BLOCK_M": REDUCE_BLOCK_M, "BLOCK_N": REDUCE_BLOCK_N},
                                 REDUCE_WARPS, REDUCE_STAGES, label=f"{int_type}{',wide' if wide else ''}"))
    return cases
