"""Losses and accuracy for classification in Triton: softmax loss (forward and backward), soft-label
softmax loss (forward and backward), multinomial logistic loss, accuracy.

Mirrors :mod:`mocha_triton.cpu_ref.loss`, whose docstring gives the semantics (Mocha's). Shapes:
scores ``x`` (or ``prob``) ``(N, C, *S)``, labels ``(N, *S)`` or ``(N, 1, *S)`` holding class indices
(float32, int32 or int64; the kernels load them in their own dtype and convert to int64), or a float32
soft ``target`` of the shape of ``x``.

How the kernels are organised. A *position* is one flat index ``p = n * S + s`` over ``N * prod(S)``;
its C scores sit at ``x[n, c, s] = base_p + c * S`` with ``base_p = n * C * S + s`` (all offsets
int64).

* Per-position kernels (loss forward, multinomial loss, accuracy) run a 1-D grid, one program per
  ``BLOCK_P`` positions. The softmax-loss forward walks C in ``BLOCK_C`` steps with an **online**
  max/sum-exp (masked lanes load -inf, :func:`_logsumexp_walk`), writes ``lse`` and one partial loss
  per program; the soft-label forward does the same walk, then a second one over C for
  ``sum_c q * max(x - lse, log 1e-20)`` (the clamp needs ``lse`` first). The accuracy kernel counts,
  in a walk of its own, the classes that rank above the label.
* **Deterministic reductions, no float atomics**: per-program partials go to a ``torch.empty``
  buffer, then a single program adds them in a fixed order (:func:`loss_total_kernel` also divides by
  ``N * prod(S)``; :func:`count_total_kernel` adds int64 counts). Results are bit-identical run to run.
* The backwards are elementwise: a 2-D grid of (position tile, class tile) programs reads ``lse``.
  The soft-label backward writes the logits' and the target's gradients, each behind a constexpr flag.
* Class weights are normalised (``w / mean(w) = w * C / sum(w)``) by one small program into a
  scratch buffer that the other kernels gather from; without weights a constexpr flag drops the gather.
* Labels are validated on the host by the shared checks (a copy of the label to the host), so the
  kernels trust them — except that the softmax-loss backward skips that copy for the label its forward
  just validated (see ``_LAST_VALIDATED``) and guards itself: an out-of-range label gives NaN there.

Block sizes follow from C (no autotuning: these kernels are memory-bound, and the partial buffer's
length must be known before the launch): ``BLOCK_C = next_power_of_2(C)`` clipped to [16, 128], and
``BLOCK_P`` fills a tile of ``TILE`` elements (``BACKWARD_TILE`` for the backward).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from mocha_triton.checks import loss as checks
from mocha_triton.contract import LOG_CLAMP
from mocha_triton.kernels._runtime import INTERPRET, CompileCase, same_device

FLOAT32 = ("float32",)
MIN_BLOCK_C, MAX_BLOCK_C = 16, 128  # classes per step of the walk over C
GPU_TILE = 4096  # elements of x one program holds per step on a GPU (walks over C)
GPU_BACKWARD_TILE = 2048  # elements of dx per backward program (8 warps: 8 per thread, ~48 registers)
TILE = 16384 if INTERPRET else GPU_TILE  # the interpreter prefers few, large programs
BACKWARD_TILE = 16384 if INTERPRET else GPU_BACKWARD_TILE
GPU_BLOCK_POSITIONS = 1024  # positions per program of the multinomial loss (one gather each)
BLOCK_POSITIONS = 8192 if INTERPRET else GPU_BLOCK_POSITIONS
REDUCE_BLOCK = 1024  # partials added per step by the final reductions
NUM_WARPS = 4
BACKWARD_WARPS = 8
NUM_STAGES = 1  # streaming kernels: nothing worth pipelining

LOG_MIN_P = tl.constexpr(math.log(LOG_CLAMP))  # log(1e-20): Mocha's clamp of log p from below


def class_blocks(c: int, tile: int = TILE) -> tuple[int, int]:
    """(BLOCK_C, BLOCK_P) for C classes: BLOCK_C = next_power_of_2(C) in [16, 128], BLOCK_P = tile // BLOCK_C."""
    block_c = min(max(triton.next_power_of_2(c), MIN_BLOCK_C), MAX_BLOCK_C)
    return block_c, tile // block_c


# --- device helpers -----------------------------------------------------------------------------------


@triton.jit
def _floor(x, floor):
    """max(x, floor) that keeps NaN, as NumPy's np.maximum (tl.maximum alone would return floor)."""
    return tl.maximum(x, floor, propagate_nan=tl.PropagateNan.ALL)


@triton.jit
def _positions(P, C, S, BLOCK_P: tl.constexpr):
    """This program's BLOCK_P positions p = n * S + s (int64), their mask p < P, and base_p, the offset
    of x[n, 0, s]."""
    pos = tl.program_id(0).to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P)
    n = pos // S
    return pos, pos < P, n * C * S + (pos - n * S)


@triton.jit
def _load_labels(label_ptr, pos, pos_mask):
    """Class indices at the positions, as int64 (label may be float32, int32 or int64)."""
    return tl.load(label_ptr + pos, mask=pos_mask, other=0).to(tl.int64)


@triton.jit
def _label_weights(weight_ptr, labels, pos_mask, HAS_WEIGHTS: tl.constexpr):
    """w[label] per position, or 1.0 without class weights."""
    if HAS_WEIGHTS:
        w = tl.load(weight_ptr + labels, mask=pos_mask, other=0.0)
    else:
        w = tl.full(labels.shape, 1.0, tl.float32)
    return w


@triton.jit
def _class_tile(x_ptr, base, pos_mask, classes, C, S, other):
    """The [BLOCK_C, BLOCK_P] tile x[n, classes, s] of the positions; masked lanes read ``other``."""
    mask = (classes < C)[:, None] & pos_mask[None, :]
    offs = base[None, :] + classes.to(tl.int64)[:, None] * S
    return tl.load(x_ptr + offs, mask=mask, other=other)


# --- kernels ------------------------------------------------------------------------------------------


@triton.jit
def normalize_class_weights_kernel(w_ptr, out_ptr, C, BLOCK: tl.constexpr):
    """out[c] = w[c] / mean(w) = w[c] * C / sum(w), one program: the sum in a fixed order, then the rescale."""
    acc = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, C, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(w_ptr + offs, mask=offs < C, other=0.0)
    mean = tl.sum(acc, axis=0) / C  # not C / sum: C == 1 arrives as a constexpr, which cannot divide a tensor
    for start in range(0, C, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        w = tl.load(w_ptr + offs, mask=offs < C, other=0.0)
        tl.store(out_ptr + offs, w / mean, mask=offs < C)


@triton.jit
def _logsumexp_walk(x_ptr, base, pos_mask, C, S, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """(BLOCK_P,) logsumexp_c x[n, c, s] of the positions, walking C in BLOCK_C steps with an online max
    and sum of exp (masked lanes load -inf); positions past P get a finite value, never to be stored."""
    row_max = tl.full((BLOCK_P,), float("-inf"), tl.float32)
    sum_exp = tl.zeros((BLOCK_P,), tl.float32)
    for c0 in range(0, C, BLOCK_C):
        x = _class_tile(x_ptr, base, pos_mask, c0 + tl.arange(0, BLOCK_C), C, S, float("-inf"))
        new_max = tl.maximum(row_max, tl.max(x, axis=0))
        # Lanes that saw only -inf so far (masked positions) shift by 0, not -inf: no inf - inf = NaN.
        shift = tl.where(new_max == float("-inf"), 0.0, new_max)
        sum_exp = sum_exp * tl.exp(row_max - shift) + tl.sum(tl.exp(x - shift[None, :]), axis=0)
        row_max = new_max
    # Positions past P saw only -inf: give them a finite lse instead of log(0).
    return tl.where(pos_mask, row_max, 0.0) + tl.log(tl.where(pos_mask, sum_exp, 1.0))


@triton.jit
def softmax_loss_forward_kernel(x_ptr, label_ptr, weight_ptr, lse_ptr, partial_ptr, P, C, S,
                                HAS_WEIGHTS: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """For BLOCK_P positions: lse[p] = logsumexp_c x[n, c, s] (an online walk over C);
    partial[pid] = sum_p -w[l_p] * max(x[n, l_p, s] - lse[p], log(1e-20))."""
    pos, pos_mask, base = _positions(P, C, S, BLOCK_P)
    lse = _logsumexp_walk(x_ptr, base, pos_mask, C, S, BLOCK_C, BLOCK_P)
    tl.store(lse_ptr + pos, lse, mask=pos_mask)

    labels = _load_labels(label_ptr, pos, pos_mask)
    picked = tl.load(x_ptr + base + labels * S, mask=pos_mask, other=0.0)
    terms = -_label_weights(weight_ptr, labels, pos_mask, HAS_WEIGHTS) * _floor(picked - lse, LOG_MIN_P)
    tl.store(partial_ptr + tl.program_id(0), tl.sum(tl.where(pos_mask, terms, 0.0), axis=0))


@triton.jit
def softmax_loss_backward_kernel(x_ptr, label_ptr, weight_ptr, lse_ptr, dx_ptr, P, C, S, coef,
                                 HAS_WEIGHTS: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """dx[n, c, s] = coef * w[l_p] * (exp(x[n, c, s] - lse[p]) - (c == l_p)) on the tile of
    program (position tile, class tile); coef = scale / (N * prod(S))."""
    pos, pos_mask, base = _positions(P, C, S, BLOCK_P)
    classes = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    labels = _load_labels(label_ptr, pos, pos_mask)
    # The host may skip re-reading labels the forward validated (see softmax_loss_backward); a label out of
    # [0, C) that got here anyway must neither gather out of bounds nor give a plausible gradient: NaN.
    valid = (labels >= 0) & (labels < C)
    labels = tl.where(valid, labels, 0)
    lse = tl.load(lse_ptr + pos, mask=pos_mask, other=0.0)
    factor = tl.where(valid, coef * _label_weights(weight_ptr, labels, pos_mask, HAS_WEIGHTS), float("nan"))

    x = _class_tile(x_ptr, base, pos_mask, classes, C, S, 0.0)
    onehot = (classes[:, None] == labels[None, :]).to(tl.float32)
    dx = factor[None, :] * (tl.exp(x - lse[None, :]) - onehot)
    mask = (classes < C)[:, None] & pos_mask[None, :]
    tl.store(dx_ptr + base[None, :] + classes.to(tl.int64)[:, None] * S, dx, mask=mask)


@triton.jit
def softlabel_softmax_loss_forward_kernel(x_ptr, target_ptr, lse_ptr, partial_ptr, P, C, S,
                                          BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """For BLOCK_P positions: lse[p] = logsumexp_c x[n, c, s] (a first walk over C), then
    partial[pid] = -sum over the positions and classes of q * max(x - lse[p], log(1e-20)) (a second walk:
    the clamp needs lse)."""
    pos, pos_mask, base = _positions(P, C, S, BLOCK_P)
    lse = _logsumexp_walk(x_ptr, base, pos_mask, C, S, BLOCK_C, BLOCK_P)
    tl.store(lse_ptr + pos, lse, mask=pos_mask)
    total = tl.zeros((BLOCK_P,), tl.float32)
    for c0 in range(0, C, BLOCK_C):
        classes = c0 + tl.arange(0, BLOCK_C)
        x = _class_tile(x_ptr, base, pos_mask, classes, C, S, 0.0)
        q = _class_tile(target_ptr, base, pos_mask, classes, C, S, 0.0)  # masked lanes: q = 0 adds nothing
        total += tl.sum(q * _floor(x - lse[None, :], LOG_MIN_P), axis=0)
    tl.store(partial_ptr + tl.program_id(0), -tl.sum(total, axis=0))


@triton.jit
def softlabel_softmax_loss_backward_kernel(x_ptr, target_ptr, lse_ptr, dx_ptr, dtarget_ptr, P, C, S, coef,
                                           HAS_DX: tl.constexpr, HAS_DTARGET: tl.constexpr,
                                           BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """On the tile of program (position tile, class tile), coef = scale / (N * prod(S)):
    dx = coef * (exp(x - lse[p]) - q) and dtarget = -coef * max(x - lse[p], log(1e-20)); a constexpr
    flag skips a gradient that is not wanted (its pointer is then never written)."""
    pos, pos_mask, base = _positions(P, C, S, BLOCK_P)
    classes = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    lse = tl.load(lse_ptr + pos, mask=pos_mask, other=0.0)
    x = _class_tile(x_ptr, base, pos_mask, classes, C, S, 0.0)
    mask = (classes < C)[:, None] & pos_mask[None, :]
    offs = base[None, :] + classes.to(tl.int64)[:, None] * S
    if HAS_DX:
        q = _class_tile(target_ptr, base, pos_mask, classes, C, S, 0.0)
        tl.store(dx_ptr + offs, coef * (tl.exp(x - lse[None, :]) - q), mask=mask)
    if HAS_DTARGET:
        tl.store(dtarget_ptr + offs, -coef * _floor(x - lse[None, :], LOG_MIN_P), mask=mask)


@triton.jit
def multinomial_logistic_loss_kernel(prob_ptr, label_ptr, weight_ptr, partial_ptr, P, C, S,
                                     HAS_WEIGHTS: tl.constexpr, BLOCK_P: tl.constexpr):
    """partial[pid] = sum over this program's BLOCK_P positions of -w[l_p] * log(max(prob[n, l_p, s], 1e-20))."""
    pos, pos_mask, base = _positions(P, C, S, BLOCK_P)
    labels = _load_labels(label_ptr, pos, pos_mask)
    picked = tl.load(prob_ptr + base + labels * S, mask=pos_mask, other=1.0)
    terms = -_label_weights(weight_ptr, labels, pos_mask, HAS_WEIGHTS) * tl.log(_floor(picked, 1e-20))
    tl.store(partial_ptr + tl.program_id(0), tl.sum(tl.where(pos_mask, terms, 0.0), axis=0))


@triton.jit
def accuracy_kernel(x_ptr, label_ptr, partial_ptr, P, C, S, top_k,
                    BLOCK_C: tl.constexpr, BLOCK_P: tl.constexpr):
    """partial[pid] (int64) = number of this program's positions where fewer than top_k classes rank above
    the label (a higher score, or an equal one at a lower class index); C is walked in BLOCK_C steps
    (masked lanes read -inf and sit at indices >= C, never above)."""
    pos, pos_mask, base = _positions(P, C, S, BLOCK_P)
    labels = _load_labels(label_ptr, pos, pos_mask)
    picked = tl.load(x_ptr + base + labels * S, mask=pos_mask, other=0.0)
    ahead = tl.zeros((BLOCK_P,), tl.int32)
    for c0 in range(0, C, BLOCK_C):
        classes = c0 + tl.arange(0, BLOCK_C)
        x = _class_tile(x_ptr, base, pos_mask, classes, C, S, float("-inf"))
        above = (x > picked[None, :]) | ((x == picked[None, :]) & (classes[:, None] < labels[None, :]))
        ahead += tl.sum(above.to(tl.int32), axis=0)
    hits = (ahead < top_k) & pos_mask
    tl.store(partial_ptr + tl.program_id(0), tl.sum(hits.to(tl.int64), axis=0))


@triton.jit
def loss_total_kernel(partial_ptr, loss_ptr, n_partial, count, BLOCK: tl.constexpr):
    """loss[0] = sum(partial[:n_partial]) / count, one program, in a fixed order."""
    acc = tl.zeros((BLOCK,), tl.float32)
    for start in range(0, n_partial, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(partial_ptr + offs, mask=offs < n_partial, other=0.0)
    tl.store(loss_ptr, tl.sum(acc, axis=0) / count)


@triton.jit
def count_total_kernel(partial_ptr, out_ptr, n_partial, BLOCK: tl.constexpr):
    """out[0] = sum(partial[:n_partial]) in int64 (exact), one program."""
    acc = tl.zeros((BLOCK,), tl.int64)
    for start in range(0, n_partial, BLOCK):
        offs = start + tl.arange(0, BLOCK)
        acc += tl.load(partial_ptr + offs, mask=offs < n_partial, other=0)
    tl.store(out_ptr, tl.sum(acc, axis=0))


# --- host wrappers ------------------------------------------------------------------------------------


# The label (and class weights) the latest softmax_loss_forward validated on the host, identified by
# storage, version counter, shape and dtype. Its backward on the same, unmodified tensors skips reading
# their values again: on a GPU each read is a copy to the host and a synchronisation, and a training step
# would pay it twice. A tensor written in place through torch bumps its version; one rewritten by a kernel
# does not, which is why the backward kernel also turns any out-of-range label into a NaN gradient.
_LAST_VALIDATED: list[tuple | None] = [None]


def _validated_key(label: torch.Tensor, class_weights: torch.Tensor | None, c: int) -> tuple:
    def ident(t: torch.Tensor | None) -> tuple | None:
        return None if t is None else (t.data_ptr(), t._version, tuple(t.shape), t.dtype, t.device)

    return ident(label), ident(class_weights), c


def _launch(num_warps: int = NUM_WARPS, **constexprs: int) -> dict[str, int]:
    return {**constexprs, "num_warps": num_warps, "num_stages": NUM_STAGES}


def _normalized_weights(class_weights: torch.Tensor | None, normalize: str) -> torch.Tensor | None:
    """The class weights the kernels gather from: as given for normalize="no", else w * (C / sum(w))."""
    if class_weights is None or normalize == "no":
        return class_weights
    out = torch.empty_like(class_weights)
    normalize_class_weights_kernel[(1,)](class_weights, out, class_weights.numel(), **_launch(BLOCK=REDUCE_BLOCK))
    return out


def _finish_loss(partial: torch.Tensor, loss: torch.Tensor, positions: int) -> None:
    loss_total_kernel[(1,)](partial, loss, partial.numel(), float(positions), **_launch(BLOCK=REDUCE_BLOCK))


def softmax_loss_forward(x: torch.Tensor, label: torch.Tensor, class_weights: torch.Tensor | None,
                         lse: torch.Tensor, loss: torch.Tensor, normalize: str = "local") -> None:
    """Fused softmax + multinomial logistic loss (Mocha's SoftmaxLossLayer), along axis 1.

    x: (N, C, *S) logits; label: (N, *S) or (N, 1, *S) class indices; class_weights: (C,) or None.
    Writes lse (N, *S) = logsumexp of x over C, and loss (1,) =
    sum_p -w[l_p] * max(x[l_p] - lse_p, log(1e-20)) / (N * prod(S)), w normalised by ``normalize``.
    """
    _LAST_VALIDATED[0] = None
    g = checks.check_softmax_loss_forward(x, label, class_weights, lse, loss, normalize, FLOAT32)
    same_device("softmax_loss_forward",
                {"x": x, "label": label, "class_weights": class_weights, "lse": lse, "loss": loss})
    _LAST_VALIDATED[0] = _validated_key(label, class_weights, g.c)
    weights = _normalized_weights(class_weights, normalize)
    block_c, block_p = class_blocks(g.c)
    n_programs = triton.cdiv(g.positions, block_p)
    partial = torch.empty(n_programs, dtype=torch.float32, device=x.device)
    softmax_loss_forward_kernel[(n_programs,)](
        x, label, x if weights is None else weights, lse, partial, g.positions, g.c, g.s,
        **_launch(HAS_WEIGHTS=weights is not None, BLOCK_C=block_c, BLOCK_P=block_p))
    _finish_loss(partial, loss, g.positions)


def softmax_loss_backward(x: torch.Tensor, label: torch.Tensor, class_weights: torch.Tensor | None,
                          lse: torch.Tensor, dx: torch.Tensor, normalize: str = "local", scale: float = 1.0) -> None:
    """Gradient of softmax_loss_forward w.r.t. the logits, from the stored lse (N, *S).

    dx (N, C, *S) = scale * w[l_p] * (exp(x - lse_p) - onehot(l_p)) / (N * prod(S)) at every position
    p; like Mocha it ignores the 1e-20 clamp of the forward.
    """
    key = _validated_key(label, class_weights, x.shape[1])
    g, scale = checks.check_softmax_loss_backward(x, label, class_weights, lse, dx, normalize, scale, FLOAT32,
                                                  values_checked=key == _LAST_VALIDATED[0])
    same_device("softmax_loss_backward",
                {"x": x, "label": label, "class_weights": class_weights, "lse": lse, "dx": dx})
    weights = _normalized_weights(class_weights, normalize)
    block_c, block_p = class_blocks(g.c, BACKWARD_TILE)
    grid = (triton.cdiv(g.positions, block_p), triton.cdiv(g.c, block_c))
    softmax_loss_backward_kernel[grid](
        x, label, x if weights is None else weights, lse, dx, g.positions, g.c, g.s, scale / g.positions,
        **_launch(BACKWARD_WARPS, HAS_WEIGHTS=weights is not None, BLOCK_C=block_c, BLOCK_P=block_p))


def softlabel_softmax_loss_forward(x: torch.Tensor, target: torch.Tensor, lse: torch.Tensor,
                                   loss: torch.Tensor) -> None:
    """Fused softmax + cross-entropy with a target distribution (Mocha's SoftlabelSoftmaxLossLayer), along axis 1.

    x, target: (N, C, *S). Writes lse (N, *S) = logsumexp of x over C, and loss (1,) =
    sum over all elements of -target * max(x - lse, log(1e-20)) / (N * prod(S)).
    """
    g = checks.check_softlabel_softmax_loss_forward(x, target, lse, loss, FLOAT32)
    same_device("softlabel_softmax_loss_forward", {"x": x, "target": target, "lse": lse, "loss": loss})
    block_c, block_p = class_blocks(g.c)
    n_programs = triton.cdiv(g.positions, block_p)
    partial = torch.empty(n_programs, dtype=torch.float32, device=x.device)
    softlabel_softmax_loss_forward_kernel[(n_programs,)](x, target, lse, partial, g.positions, g.c, g.s,
                                                         **_launch(BLOCK_C=block_c, BLOCK_P=block_p))
    _finish_loss(partial, loss, g.positions)


def softlabel_softmax_loss_backward(x: torch.Tensor, target: torch.Tensor, lse: torch.Tensor,
                                    dx: torch.Tensor | None, dtarget: torch.Tensor | None,
                                    scale: float = 1.0) -> None:
    """Gradients of softlabel_softmax_loss_forward from the stored lse (N, *S); either output may be None.

    dx (N, C, *S) = scale * (exp(x - lse) - target) / (N * prod(S)) (exact when the target sums to 1
    over C); dtarget = -scale * max(x - lse, log(1e-20)) / (N * prod(S)).
    """
    g, scale = checks.check_softlabel_softmax_loss_backward(x, target, lse, dx, dtarget, scale, FLOAT32)
    same_device("softlabel_softmax_loss_backward",
                {"x": x, "target": target, "lse": lse, "dx": dx, "dtarget": dtarget})
    if dx is None and dtarget is None:
        return
    block_c, block_p = class_blocks(g.c, BACKWARD_TILE)
    grid = (triton.cdiv(g.positions, block_p), triton.cdiv(g.c, block_c))
    softlabel_softmax_loss_backward_kernel[grid](
        x, target, lse, x if dx is None else dx, x if dtarget is None else dtarget, g.positions, g.c, g.s,
        scale / g.positions,
        **_launch(BACKWARD_WARPS, HAS_DX=dx is not None, HAS_DTARGET=dtarget is not None, BLOCK_C=block_c,
                  BLOCK_P=block_p))


def multinomial_logistic_loss_forward(prob: torch.Tensor, label: torch.Tensor, class_weights: torch.Tensor | None,
                                      loss: torch.Tensor, normalize: str = "local") -> None:
    """Multinomial logistic loss on probabilities (Mocha's MultinomialLogisticLossLayer; no backward).

    prob: (N, C, *S); loss (1,) = sum_p -w[l_p] * log(max(prob[l_p], 1e-20)) / (N * prod(S)).
    """
    g = checks.check_multinomial_logistic_loss_forward(prob, label, class_weights, loss, normalize, FLOAT32)
    same_device("multinomial_logistic_loss_forward",
                {"prob": prob, "label": label, "class_weights": class_weights, "loss": loss})
    weights = _normalized_weights(class_weights, normalize)
    n_programs = triton.cdiv(g.positions, BLOCK_POSITIONS)
    partial = torch.empty(n_programs, dtype=torch.float32, device=prob.device)
    multinomial_logistic_loss_kernel[(n_programs,)](
        prob, label, prob if weights is None else weights, partial, g.positions, g.c, g.s,
        **_launch(HAS_WEIGHTS=weights is not None, BLOCK_P=BLOCK_POSITIONS))
    _finish_loss(partial, loss, g.positions)


def accuracy_forward(x: torch.Tensor, label: torch.Tensor, correct: torch.Tensor, top_k: int = 1) -> None:
    """correct (1,) int64 = number of positions where fewer than top_k classes rank above the label (a
    higher score, or an equal one at a lower class index: top_k=1 counts argmax == label, first index on
    ties). Divide by N * prod(S) for the accuracy.
    """
    g, top_k = checks.check_accuracy_forward(x, label, correct, top_k, FLOAT32)
    same_device("accuracy_forward", {"x": x, "label": label, "correct": correct})
    block_c, block_p = class_blocks(g.c)
    n_programs = triton.cdiv(g.positions, block_p)
    partial = torch.empty(n_programs, dtype=torch.int64, device=x.device)
    accuracy_kernel[(n_programs,)](x, label, partial, g.positions, g.c, g.s, top_k,
                                   **_launch(BLOCK_C=block_c, BLOCK_P=block_p))
    count_total_kernel[(1,)](partial, correct, n_programs, **_launch(BLOCK=REDUCE_BLOCK))


def compile_cases() -> list[CompileCase]:
    """Every kernel at the block sizes a GPU launches: few and many classes, float and int labels."""
    f32, i64 = "*fp32", "i64"
    sizes = {"P": i64, "C": "i32", "S": i64}
    cases = [
        CompileCase(normalize_class_weights_kernel, {"w_ptr": f32, "out_ptr": f32, "C": "i32"},
                    {"BLOCK": REDUCE_BLOCK}, NUM_WARPS, NUM_STAGES),
        CompileCase(loss_total_kernel, {"partial_ptr": f32, "loss_ptr": f32, "n_partial": "i32", "count": "fp32"},
                    {"BLOCK": REDUCE_BLOCK}, NUM_WARPS, NUM_STAGES),
        CompileCase(count_total_kernel, {"partial_ptr": "*i64", "out_ptr": "*i64", "n_partial": "i32"},
                    {"BLOCK": REDUCE_BLOCK}, NUM_WARPS, NUM_STAGES),
    ]
    for c, label_type, has_weights in ((10, "*fp32", True), (1000, "*i64", False), (1000, "*i32", True)):
        block_c, block_p = class_blocks(c, GPU_TILE)
        blocks = {"BLOCK_C": block_c, "BLOCK_P": block_p}
        tag = f"C={c},label={label_type},weights={has_weights}"
        weighted = {**blocks, "HAS_WEIGHTS": has_weights}
        block_c, block_p = class_blocks(c, GPU_BACKWARD_TILE)
        backward = {"BLOCK_C": block_c, "BLOCK_P": block_p, "HAS_WEIGHTS": has_weights}
        cases += [
            CompileCase(softmax_loss_forward_kernel,
                        {"x_ptr": f32, "label_ptr": label_type, "weight_ptr": f32, "lse_ptr": f32,
                         "partial_ptr": f32, **sizes}, weighted, NUM_WARPS, NUM_STAGES, tag),
            CompileCase(softmax_loss_backward_kernel,
                        {"x_ptr": f32, "label_ptr": label_type, "weight_ptr": f32, "lse_ptr": f32, "dx_ptr": f32,
                         **sizes, "coef": "fp32"}, backward, BACKWARD_WARPS, NUM_STAGES, tag),
            CompileCase(accuracy_kernel,
                        {"x_ptr": f32, "label_ptr": label_type, "partial_ptr": "*i64", **sizes, "top_k": "i32"},
                        blocks, NUM_WARPS, NUM_STAGES, tag),
            CompileCase(multinomial_logistic_loss_kernel,
                        {"prob_ptr": f32, "label_ptr": label_type, "weight_ptr": f32, "partial_ptr": f32, **sizes},
                        {"HAS_WEIGHTS": has_weights, "BLOCK_P": GPU_BLOCK_POSITIONS}, NUM_WARPS, NUM_STAGES, tag),
        ]
    for c in (10, 1000):
        block_c, block_p = class_blocks(c, GPU_TILE)
        cases.append(CompileCase(softlabel_softmax_loss_forward_kernel,
                                 {"x_ptr": f32, "target_ptr": f32, "lse_ptr": f32, "partial_ptr": f32, **sizes},
                                 {"BLOCK_C": block_c, "BLOCK_P": block_p}, NUM_WARPS, NUM_STAGES, f"C={c}"))
        block_c, block_p = class_blocks(c, GPU_BACKWARD_TILE)
        for has_dx, has_dtarget in ((True, True), (True, False), (False, True)):
            cases.append(CompileCase(
                softlabel_softmax_loss_backward_kernel,
                {"x_ptr": f32, "target_ptr": f32, "lse_ptr": f32, "dx_ptr": f32, "dtarget_ptr": f32, **sizes,
                 "coef": "fp32"},
                {"HAS_DX": has_dx, "HAS_DTARGET": has_dtarget, "BLOCK_C": block_c, "BLOCK_P": block_p},
                BACKWARD_WARPS, NUM_STAGES, f"C={c},dx={has_dx},dtarget={has_dtarget}"))
    return cases
