"""Pointwise losses in Triton: square loss, binary cross-entropy, hinge loss, Gaussian KL loss (forward and
backward) and binary accuracy.

Mirrors :mod:`mocha_triton.cpu_ref.pointwise_loss`, whose docstring gives the formulas. Prediction and
target are flat contiguous float32 tensors of one shape ``(N, ...)``.

How the kernels are organised: every kernel streams the flat tensors over a 1-D grid, one program per
``BLOCK`` elements (64-bit offsets; :data:`~mocha_triton.kernels._runtime.STREAM_LAUNCH`).

* A forward kernel writes one partial sum (or int64 count) per program into a ``torch.empty`` buffer;
  one program of :func:`~mocha_triton.kernels.loss.loss_total_kernel` (or ``count_total_kernel``) then
  adds the partials in a fixed order and divides by N (2N for the square loss). No float atomics, so
  results are bit-identical run to run. Masked lanes are zeroed *after* the per-element term, since a
  neutral load (e.g. ``prob = 0``) would give ``log(0)``.
* A backward kernel is elementwise; the coefficient ``scale / N`` is rounded once on the host (as the
  reference rounds it), and a constexpr flag per output skips a gradient that is not wanted (its
  pointer argument is then a placeholder that is never written).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import pointwise_loss as checks
from mocha_triton.kernels._runtime import STREAM_LAUNCH, CompileCase, same_device, stream_compile_case, stream_grid
from mocha_triton.kernels.loss import REDUCE_BLOCK, count_total_kernel, loss_total_kernel

FLOAT32 = ("float32",)
REDUCE_LAUNCH = {"BLOCK": REDUCE_BLOCK, "num_warps": 4, "num_stages": 1}


# --- forward: one partial per program -------------------------------------------------------------------


@triton.jit
def square_loss_partial_kernel(pred_ptr, target_ptr, partial_ptr, numel, BLOCK: tl.constexpr):
    """partial[p] = sum over this program's elements of (pred - target)**2."""
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    diff = tl.load(pred_ptr + offs, mask=mask, other=0.0) - tl.load(target_ptr + offs, mask=mask, other=0.0)
    tl.store(partial_ptr + pid, tl.sum(diff * diff, axis=0))


@triton.jit
def binary_cross_entropy_partial_kernel(prob_ptr, label_ptr, partial_ptr, numel, BLOCK: tl.constexpr):
    """partial[p] = sum over this program's elements of label * log(prob) + (1 - label) * log(1 - prob)."""
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    prob = tl.load(prob_ptr + offs, mask=mask, other=0.5)
    label = tl.load(label_ptr + offs, mask=mask, other=0.0)
    term = label * tl.log(prob) + (1.0 - label) * tl.log(1.0 - prob)
    tl.store(partial_ptr + pid, tl.sum(tl.where(mask, term, 0.0), axis=0))


@triton.jit
def hinge_loss_partial_kernel(pred_ptr, label_ptr, partial_ptr, numel, BLOCK: tl.constexpr):
    """partial[p] = sum over this program's elements of max(0, 1 - label * pred)."""
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    pred = tl.load(pred_ptr + offs, mask=mask, other=0.0)
    label = tl.load(label_ptr + offs, mask=mask, other=0.0)
    term = tl.maximum(1.0 - label * pred, 0.0, propagate_nan=tl.PropagateNan.ALL)  # NaN stays NaN
    tl.store(partial_ptr + pid, tl.sum(tl.where(mask, term, 0.0), axis=0))


@triton.jit
def gaussian_kl_loss_partial_kernel(mu_ptr, sigma_ptr, partial_ptr, numel, BLOCK: tl.constexpr):
    """partial[p] = sum over this program's elements of mu**2 + sigma**2 - 2 log(sigma) - 1."""
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    mu = tl.load(mu_ptr + offs, mask=mask, other=0.0)
    sigma = tl.load(sigma_ptr + offs, mask=mask, other=1.0)
    term = mu * mu + sigma * sigma - 2.0 * tl.log(sigma) - 1.0
    tl.store(partial_ptr + pid, tl.sum(tl.where(mask, term, 0.0), axis=0))


@triton.jit
def binary_accuracy_partial_kernel(pred_ptr, label_ptr, partial_ptr, threshold, numel, BLOCK: tl.constexpr):
    """partial[p] = this program's count of elements with (pred > threshold) == (label > threshold), int64."""
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    pred = tl.load(pred_ptr + offs, mask=mask, other=0.0)
    label = tl.load(label_ptr + offs, mask=mask, other=0.0)
    agree = mask & ((pred > threshold) == (label > threshold))
    tl.store(partial_ptr + pid, tl.sum(agree.to(tl.int64), axis=0))


# --- backward: elementwise ------------------------------------------------------------------------------


@triton.jit
def square_loss_backward_kernel(pred_ptr, target_ptr, dpred_ptr, coef, numel, BLOCK: tl.constexpr):
    """dpred = coef * (pred - target), coef = scale / N."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    diff = tl.load(pred_ptr + offs, mask=mask, other=0.0) - tl.load(target_ptr + offs, mask=mask, other=0.0)
    tl.store(dpred_ptr + offs, diff * coef, mask=mask)


@triton.jit
def binary_cross_entropy_backward_kernel(prob_ptr, label_ptr, dprob_ptr, dlabel_ptr, coef, numel,
                                         HAS_DPROB: tl.constexpr, HAS_DLABEL: tl.constexpr, BLOCK: tl.constexpr):
    """dprob = coef * (label / prob - (1 - label) / (1 - prob)); dlabel = coef * log(prob / (1 - prob));
    coef = -scale / N."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    prob = tl.load(prob_ptr + offs, mask=mask, other=0.5)
    if HAS_DPROB:
        label = tl.load(label_ptr + offs, mask=mask, other=0.0)
        grad = tl.div_rn(label, prob) - tl.div_rn(1.0 - label, 1.0 - prob)
        tl.store(dprob_ptr + offs, coef * grad, mask=mask)
    if HAS_DLABEL:
        tl.store(dlabel_ptr + offs, coef * tl.log(tl.div_rn(prob, 1.0 - prob)), mask=mask)


@triton.jit
def hinge_loss_backward_kernel(pred_ptr, label_ptr, dpred_ptr, dlabel_ptr, coef, numel,
                               HAS_DPRED: tl.constexpr, HAS_DLABEL: tl.constexpr, BLOCK: tl.constexpr):
    """Where label * pred < 1: dpred = coef * label, dlabel = coef * pred (coef = -scale / N); else 0."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    pred = tl.load(pred_ptr + offs, mask=mask, other=0.0)
    label = tl.load(label_ptr + offs, mask=mask, other=0.0)
    violated = label * pred < 1.0
    if HAS_DPRED:
        tl.store(dpred_ptr + offs, tl.where(violated, coef * label, 0.0), mask=mask)
    if HAS_DLABEL:
        tl.store(dlabel_ptr + offs, tl.where(violated, coef * pred, 0.0), mask=mask)


@triton.jit
def gaussian_kl_loss_backward_kernel(mu_ptr, sigma_ptr, dmu_ptr, dsigma_ptr, coef, numel,
                                     HAS_DMU: tl.constexpr, HAS_DSIGMA: tl.constexpr, BLOCK: tl.constexpr):
    """dmu = coef * mu; dsigma = coef * (sigma - 1 / sigma); coef = scale / N."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    if HAS_DMU:
        tl.store(dmu_ptr + offs, coef * tl.load(mu_ptr + offs, mask=mask, other=0.0), mask=mask)
    if HAS_DSIGMA:
        sigma = tl.load(sigma_ptr + offs, mask=mask, other=1.0)
        tl.store(dsigma_ptr + offs, coef * (sigma - tl.div_rn(1.0, sigma)), mask=mask)


# --- host wrappers ------------------------------------------------------------------------------------


def _partials(like: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(stream_grid(like.numel())[0], dtype=dtype, device=like.device)


def _forward(op: str, kernel, tensors: dict[str, torch.Tensor], divisor: int) -> None:
    """Launch a forward kernel on ``tensors`` = {input a, input b, loss} (by name, in that order): one
    partial sum per program, then their total divided by ``divisor``."""
    same_device(op, tensors)
    a, b, loss = tensors.values()
    partial = _partials(a)
    kernel[stream_grid(a.numel())](a, b, partial, a.numel(), **STREAM_LAUNCH)
    loss_total_kernel[(1,)](partial, loss, partial.numel(), float(divisor), **REDUCE_LAUNCH)


def _backward(op: str, kernel, tensors: dict[str, torch.Tensor | None], coef: float, flags: tuple[str, str]) -> None:
    """Launch a two-gradient backward kernel on ``tensors`` = {input a, input b, gradient a, gradient b} (by
    name, in that order); a gradient that is None is skipped (its flag is False and input a stands in for
    its pointer, never written)."""
    same_device(op, tensors)
    a, b, da, db = tensors.values()
    if da is None and db is None:
        return
    kernel[stream_grid(a.numel())](a, b, a if da is None else da, a if db is None else db, coef, a.numel(),
                                   **{flags[0]: da is not None, flags[1]: db is not None}, **STREAM_LAUNCH)


def square_loss_forward(pred: torch.Tensor, target: torch.Tensor, loss: torch.Tensor) -> None:
    """loss[0] = sum((pred - target)**2) / (2 * N)."""
    n = checks.check_square_loss_forward(pred, target, loss, FLOAT32)
    _forward("square_loss_forward", square_loss_partial_kernel, {"pred": pred, "target": target, "loss": loss}, 2 * n)


def square_loss_backward(pred: torch.Tensor, target: torch.Tensor, dpred: torch.Tensor, scale: float = 1.0) -> None:
    """dpred = scale * (pred - target) / N."""
    n, scale = checks.check_square_loss_backward(pred, target, dpred, scale, FLOAT32)
    same_device("square_loss_backward", {"pred": pred, "target": target, "dpred": dpred})
    square_loss_backward_kernel[stream_grid(pred.numel())](pred, target, dpred, scale / n, pred.numel(),
                                                            **STREAM_LAUNCH)


def binary_cross_entropy_forward(prob: torch.Tensor, label: torch.Tensor, loss: torch.Tensor) -> None:
    """loss[0] = -sum(label * log(prob) + (1 - label) * log(1 - prob)) / N."""
    n = checks.check_binary_cross_entropy_forward(prob, label, loss, FLOAT32)
    # the partials hold the negated terms' sum; the total divides by -N
    _forward("binary_cross_entropy_forward", binary_cross_entropy_partial_kernel,
             {"prob": prob, "label": label, "loss": loss}, -n)


def binary_cross_entropy_backward(prob: torch.Tensor, label: torch.Tensor, dprob: torch.Tensor | None,
                                  dlabel: torch.Tensor | None, scale: float = 1.0) -> None:
    """dprob = -scale * (label / prob - (1 - label) / (1 - prob)) / N; dlabel = -scale * log(prob / (1 - prob)) / N."""
    n, scale = checks.check_binary_cross_entropy_backward(prob, label, dprob, dlabel, scale, FLOAT32)
    _backward("binary_cross_entropy_backward", binary_cross_entropy_backward_kernel,
              {"prob": prob, "label": label, "dprob": dprob, "dlabel": dlabel}, -scale / n, ("HAS_DPROB", "HAS_DLABEL"))


def hinge_loss_forward(pred: torch.Tensor, label: torch.Tensor, loss: torch.Tensor) -> None:
    """loss[0] = sum(max(0, 1 - label * pred)) / N."""
    n = checks.check_hinge_loss_forward(pred, label, loss, FLOAT32)
    _forward("hinge_loss_forward", hinge_loss_partial_kernel, {"pred": pred, "label": label, "loss": loss}, n)


def hinge_loss_backward(pred: torch.Tensor, label: torch.Tensor, dpred: torch.Tensor | None,
                        dlabel: torch.Tensor | None, scale: float = 1.0) -> None:
    """Where label * pred < 1: dpred = -scale * label / N and dlabel = -scale * pred / N; 0 elsewhere."""
    n, scale = checks.check_hinge_loss_backward(pred, label, dpred, dlabel, scale, FLOAT32)
    _backward("hinge_loss_backward", hinge_loss_backward_kernel,
              {"pred": pred, "label": label, "dpred": dpred, "dlabel": dlabel}, -scale / n, ("HAS_DPRED", "HAS_DLABEL"))


def gaussian_kl_loss_forward(mu: torch.Tensor, sigma: torch.Tensor, loss: torch.Tensor) -> None:
    """loss[0] = sum(mu**2 + sigma**2 - 2 * log(sigma) - 1) / (2 * N)."""
    n = checks.check_gaussian_kl_loss_forward(mu, sigma, loss, FLOAT32)
    _forward("gaussian_kl_loss_forward", gaussian_kl_loss_partial_kernel, {"mu": mu, "sigma": sigma, "loss": loss},
             2 * n)


def gaussian_kl_loss_backward(mu: torch.Tensor, sigma: torch.Tensor, dmu: torch.Tensor | None,
                              dsigma: torch.Tensor | None, scale: float = 1.0) -> None:
    """dmu = scale * mu / N; dsigma = scale * (sigma - 1 / sigma) / N. Either output may be None (not computed)."""
    n, scale = checks.check_gaussian_kl_loss_backward(mu, sigma, dmu, dsigma, scale, FLOAT32)
    _backward("gaussian_kl_loss_backward", gaussian_kl_loss_backward_kernel,
              {"mu": mu, "sigma": sigma, "dmu": dmu, "dsigma": dsigma}, scale / n, ("HAS_DMU", "HAS_DSIGMA"))


def binary_accuracy_forward(pred: torch.Tensor, label: torch.Tensor, correct: torch.Tensor,
                            threshold: float = 0.0) -> None:
    """correct[0] = the number of elements where (pred > threshold) == (label > threshold)."""
    threshold = checks.check_binary_accuracy_forward(pred, label, correct, threshold, FLOAT32)
    same_device("binary_accuracy_forward", {"pred": pred, "label": label, "correct": correct})
    partial = _partials(pred, torch.int64)
    binary_accuracy_partial_kernel[stream_grid(pred.numel())](pred, label, partial, threshold, pred.numel(),
                                                               **STREAM_LAUNCH)
    count_total_kernel[(1,)](partial, correct, partial.numel(), **REDUCE_LAUNCH)


def compile_cases() -> list[CompileCase]:
    forward = {"partial_ptr": "*fp32", "numel": "i64"}
    cases = [
        stream_compile_case(square_loss_partial_kernel, {"pred_ptr": "*fp32", "target_ptr": "*fp32", **forward}),
        stream_compile_case(binary_cross_entropy_partial_kernel, {"prob_ptr": "*fp32", "label_ptr": "*fp32",
                                                                  **forward}),
        stream_compile_case(hinge_loss_partial_kernel, {"pred_ptr": "*fp32", "label_ptr": "*fp32", **forward}),
        stream_compile_case(gaussian_kl_loss_partial_kernel, {"mu_ptr": "*fp32", "sigma_ptr": "*fp32", **forward}),
        stream_compile_case(binary_accuracy_partial_kernel, {"pred_ptr": "*fp32", "label_ptr": "*fp32",
                                                             "partial_ptr": "*i64", "threshold": "fp32",
                                                             "numel": "i64"}),
        stream_compile_case(square_loss_backward_kernel, {"pred_ptr": "*fp32", "target_ptr": "*fp32",
                                                          "dpred_ptr": "*fp32", "coef": "fp32", "numel": "i64"}),
    ]
    for has_a in (True, False):
        for has_b in (True, False):
            if not (has_a or has_b):
                continue
            cases.append(stream_compile_case(
                binary_cross_entropy_backward_kernel,
                {"prob_ptr": "*fp32", "label_ptr": "*fp32", "dprob_ptr": "*fp32", "dlabel_ptr": "*fp32",
                 "coef": "fp32", "numel": "i64"},
                {"HAS_DPROB": has_a, "HAS_DLABEL": has_b}, label=f"dprob={has_a},dlabel={has_b}"))
            cases.append(stream_compile_case(
                gaussian_kl_loss_backward_kernel,
                {"mu_ptr": "*fp32", "sigma_ptr": "*fp32", "dmu_ptr": "*fp32", "dsigma_ptr": "*fp32",
                 "coef": "fp32", "numel": "i64"},
                {"HAS_DMU": has_a, "HAS_DSIGMA": has_b}, label=f"dmu={has_a},dsigma={has_b}"))
            cases.append(stream_compile_case(
                hinge_loss_backward_kernel,
                {"pred_ptr": "*fp32", "label_ptr": "*fp32", "dpred_ptr": "*fp32", "dlabel_ptr": "*fp32",
                 "coef": "fp32", "numel": "i64"},
                {"HAS_DPRED": has_a, "HAS_DLABEL": has_b}, label=f"dpred={has_a},dlabel={has_b}"))
    return cases
