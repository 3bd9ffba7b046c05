"""Index ops along the class axis in Triton: argmax and one-hot encoding.

Mirrors :mod:`mocha_triton.cpu_ref.index`, whose docstring gives the semantics. Both ops see their
tensors as ``(N, C, *S)``. A *position* is one flat index ``p = n * S + s`` over ``N * prod(S)``; its C
values sit at ``base_p + c * S`` with ``base_p = n * C * S + s`` (all offsets int64), and its index
(argmax output, label) at ``p``.

* :func:`argmax_kernel` — a 1-D grid, one program per ``BLOCK_P`` positions. It walks C in
  ``BLOCK_C`` steps over ``[BLOCK_C, BLOCK_P]`` tiles (masked lanes read -inf, which never beats a
  value) and keeps, per position, the best value, its index and whether a NaN was seen. Inside a tile
  the first index holding the tile's maximum (or its first NaN) is found with a min-reduction over the
  class indices; a later tile replaces the running best only when strictly larger, so ties keep the
  first index. No float atomics, no second pass: the result is deterministic.
* :func:`index_to_onehot_kernel` — a 2-D grid of (position tile, class tile) programs: each loads the
  labels of its ``BLOCK_P`` positions once and writes the ``[BLOCK_C, BLOCK_P]`` tile of ones and zeros.
  Labels (float32, int32 or int64) are validated on the host by the shared checks (a copy of the label,
  see :mod:`mocha_triton.checks.index`), so the kernel trusts them.

Block sizes follow from C (no autotuning: both kernels are memory-bound): ``BLOCK_C =
next_power_of_2(C)`` clipped to [16, 128], and ``BLOCK_P`` fills a tile of ``TILE`` elements.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import index as checks
from mocha_triton.kernels._runtime import INTERPRET, CompileCase, same_device

FLOAT32 = ("float32",)
MIN_BLOCK_C, MAX_BLOCK_C = 16, 128  # classes per step of the walk over C
GPU_TILE = 4096  # elements one program holds per step on a GPU (4 warps: 32 per thread)
TILE = 16384 if INTERPRET else GPU_TILE  # the interpreter prefers few, large programs
NUM_WARPS = 4
NUM_STAGES = 1  # streaming kernels: nothing worth pipelining


def class_blocks(c: int, tile: int = TILE) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_P) for C classes: BLOCK_C = next_power_of_2(C) in [16, 128], BLOCK_P = tile // BLOCK_C."""
    block_c = min(max(triton.next_power_of_2(c), MIN_BLOCK_C), MAX_BLOCK_C)
    return block_c, tile // block_c


@triton.jit
def _positions(P, C, S, BLOCK_P: tl.constexpr):
    """This program's BLOCK_P positions p = n * S + s (int64), their mask p < P, and base_p, the offset
    of element (n, 0, s)."""
    pos = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    n = pos // S
    return pos, pos < P, n * C * S + (pos - n * S)


@triton.jit
def argmax_kernel(x_ptr, y_ptr, P, C, S, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """y[p] = float(first index of the maximum of x[n, :, s]) for BLOCK_P positions; a NaN beats any
    number (the first NaN wins)."""
    pos, pos_mask, base = _positions(P, C, S, BLOCK_P)
    best_val = tl.full((BLOCK_P,), float("-inf"), tl.float32)
    best_idx = tl.zeros((BLOCK_P,), tl.int32)
    seen_nan = tl.zeros((BLOCK_P,), tl.int32)  # 1 once a NaN was found: nothing replaces it
    for c0 in range(0, C, BLOCK_C):
        classes = c0 + tl.arange(0, BLOCK_C)
        mask = (classes < C)[:, None] & pos_mask[None, :]
        x = tl.load(x_ptr + base[None, :] + classes.to(tl.int64)[:, None] * S, mask=mask, other=float("-inf"))
        is_nan = x != x
        tile_max = tl.max(tl.where(is_nan, float("-inf"), x), axis=0)
        # Masked lanes hold -inf with indices >= C: when every real value is -inf too, a real index still wins.
        first_max = tl.min(tl.where(x == tile_max[None, :], classes[:, None], C), axis=0)
        first_nan = tl.min(tl.where(is_nan, classes[:, None], C), axis=0)
        tile_nan = first_nan < C
        take = (seen_nan == 0) & (tile_nan | (tile_max > best_val))
        best_idx = tl.where(take, tl.where(tile_nan, first_nan, first_max), best_idx)
        best_val = tl.where(take, tile_max, best_val)
        seen_nan = tl.where(tile_nan, 1, seen_nan)
    tl.store(y_ptr + pos, best_idx.to(tl.float32), mask=pos_mask)


@triton.jit
def index_to_onehot_kernel(label_ptr, y_ptr, P, C, S, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """y[n, c, s] = (label[p] == c) on the [BLOCK_C, BLOCK_P] tile of program (position tile, class tile)."""
    pos, pos_mask, base = _positions(P, C, S, BLOCK_P)
    labels = tl.load(label_ptr + pos, mask=pos_mask, other=0).to(tl.int64)
    classes = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    onehot = (classes.to(tl.int64)[:, None] == labels[None, :]).to(tl.float32)
    mask = (classes < C)[:, None] & pos_mask[None, :]
    tl.store(y_ptr + base[None, :] + classes.to(tl.int64)[:, None] * S, onehot, mask=mask)


def _launch(**constexprs: int) -> dict[str, int]:
    return {**constexprs, "num_warps": NUM_WARPS, "num_stages": NUM_STAGES}


def argmax_forward(x: torch.Tensor, y: torch.Tensor) -> None:
    """y (N, 1, *S) = the index (as float32) of the maximum of x (N, C, *S) along axis 1.

    Ties go to the first index; a NaN counts as the maximum (the first NaN wins).
    """
    g = checks.check_argmax_forward(x, y, FLOAT32)
    same_device("argmax_forward", {"x": x, "y": y})
    if not g.positions:
        return
    block_c, block_p = class_blocks(g.c)
    argmax_kernel[(triton.cdiv(g.positions, block_p),)](
        x, y, g.positions, g.c, g.s, **_launch(BLOCK_C=block_c, BLOCK_P=block_p))


def index_to_onehot(label: torch.Tensor, y: torch.Tensor) -> None:
    """y (N, C, *S) = one-hot encoding of label ((N, *S) or (N, 1, *S) class indices in [0, C)) along axis 1.

    The label may be float32, int32 or int64; its values are checked on the host (a copy of the label).
    """
    g = checks.check_index_to_onehot(label, y, FLOAT32)
    same_device("index_to_onehot", {"label": label, "y": y})
    if not g.positions:
        return
    block_c, block_p = class_blocks(g.c)
    grid = (triton.cdiv(g.positions, block_p), triton.cdiv(g.c, block_c))
    index_to_onehot_kernel[grid](label, y, g.positions, g.c, g.s, **_launch(BLOCK_C=block_c, BLOCK_P=block_p))


def compile_cases() -> list[CompileCase]:
    """Both kernels at the block sizes a GPU launches: few and many classes, float and int labels."""
    sizes = {"P": "i64", "C": "i32", "S": "i64"}
    cases = []
    for c, label_type in ((10, "*fp32"), (1000, "*i64"), (3, "*i32")):
        block_c, block_p = class_blocks(c, GPU_TILE)
        blocks = {"BLOCK_C": block_c, "BLOCK_P": block_p}
        cases += [
            CompileCase(argmax_kernel, {"x_ptr": "*fp32", "y_ptr": "*fp32", **sizes}, blocks, NUM_WARPS, NUM_STAGES,
                        f"C={c}"),
            CompileCase(index_to_onehot_kernel, {"label_ptr": label_type, "y_ptr": "*fp32", **sizes}, blocks,
                        NUM_WARPS, NUM_STAGES, f"C={c},label={label_type}"),
        ]
    return cases
