"""Solver parameter updates in Triton: SGD with momentum, Nesterov momentum, Adam, Adagrad, RMSProp and
Adadelta, each one fused pass.

Mirrors :mod:`mocha_triton.cpu_ref.solvers`. Each kernel reads the parameter, its gradient and the
method's state once and writes the parameter and the state once, over a 1-D grid of
``cdiv(numel, BLOCK)`` programs on the flat contiguous tensors (64-bit offsets). Square roots and
divisions are correctly rounded (``sqrt_rn``/``div_rn``, as NumPy); ``1 - beta`` style constants are
rounded on the host exactly as the reference rounds them. On a GPU the multiply-adds may be contracted
to FMAs, so results can differ from the NumPy reference in the last bit.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import solvers as checks
from mocha_triton.kernels._runtime import STREAM_LAUNCH, CompileCase, same_device, stream_compile_case, stream_grid

FLOAT32 = ("float32",)


@triton.jit
def sgd_momentum_kernel(w_ptr, dw_ptr, v_ptr, lr, momentum, numel, BLOCK: tl.constexpr):
    """v = momentum * v - lr * dw; w += v."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    dw = tl.load(dw_ptr + offs, mask=mask, other=0.0)
    v = tl.load(v_ptr + offs, mask=mask, other=0.0)
    v = momentum * v - lr * dw
    tl.store(v_ptr + offs, v, mask=mask)
    tl.store(w_ptr + offs, w + v, mask=mask)


@triton.jit
def nesterov_kernel(w_ptr, dw_ptr, v_ptr, lr, momentum, one_plus_next_momentum, numel, BLOCK: tl.constexpr):
    """w -= momentum * v_old; v = momentum * v_old - lr * dw; w += (1 + next_momentum) * v, in that order."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    dw = tl.load(dw_ptr + offs, mask=mask, other=0.0)
    v_old = tl.load(v_ptr + offs, mask=mask, other=0.0)
    w = w - momentum * v_old
    v = momentum * v_old - lr * dw
    w = w + one_plus_next_momentum * v
    tl.store(v_ptr + offs, v, mask=mask)
    tl.store(w_ptr + offs, w, mask=mask)


@triton.jit
def adam_kernel(w_ptr, dw_ptr, m_ptr, v_ptr, step_size, beta1, one_minus_beta1, beta2, one_minus_beta2, epsilon,
                numel, BLOCK: tl.constexpr):
    """m = beta1 * m + (1 - beta1) * dw; v = beta2 * v + (1 - beta2) * dw**2; w -= step_size * m / (sqrt(v) + eps)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    dw = tl.load(dw_ptr + offs, mask=mask, other=0.0)
    m = tl.load(m_ptr + offs, mask=mask, other=0.0)
    v = tl.load(v_ptr + offs, mask=mask, other=0.0)
    m = beta1 * m + one_minus_beta1 * dw
    v = beta2 * v + one_minus_beta2 * (dw * dw)
    w = w - tl.div_rn(step_size * m, tl.sqrt_rn(v) + epsilon)
    tl.store(m_ptr + offs, m, mask=mask)
    tl.store(v_ptr + offs, v, mask=mask)
    tl.store(w_ptr + offs, w, mask=mask)


@triton.jit
def adagrad_kernel(w_ptr, dw_ptr, h_ptr, lr, epsilon, numel, BLOCK: tl.constexpr):
    """h += dw**2; w -= lr * dw / (sqrt(h) + epsilon)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    dw = tl.load(dw_ptr + offs, mask=mask, other=0.0)
    h = tl.load(h_ptr + offs, mask=mask, other=0.0)
    h = h + dw * dw
    w = w - tl.div_rn(lr * dw, tl.sqrt_rn(h) + epsilon)
    tl.store(h_ptr + offs, h, mask=mask)
    tl.store(w_ptr + offs, w, mask=mask)


@triton.jit
def rmsprop_kernel(w_ptr, dw_ptr, h_ptr, lr, decay, one_minus_decay, epsilon, numel, BLOCK: tl.constexpr):
    """h = decay * h + (1 - decay) * dw**2; w -= lr * dw / (sqrt(h) + epsilon)."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    dw = tl.load(dw_ptr + offs, mask=mask, other=0.0)
    h = tl.load(h_ptr + offs, mask=mask, other=0.0)
    h = decay * h + one_minus_decay * (dw * dw)
    w = w - tl.div_rn(lr * dw, tl.sqrt_rn(h) + epsilon)
    tl.store(h_ptr + offs, h, mask=mask)
    tl.store(w_ptr + offs, w, mask=mask)


@triton.jit
def adadelta_kernel(w_ptr, dw_ptr, h_ptr, u_ptr, lr, rho, one_minus_rho, epsilon, numel, BLOCK: tl.constexpr):
    """h = rho * h + (1 - rho) * dw**2; d = sqrt(u + eps) / sqrt(h + eps) * dw; u = rho * u + (1 - rho) * d**2;
    w -= lr * d."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    w = tl.load(w_ptr + offs, mask=mask, other=0.0)
    dw = tl.load(dw_ptr + offs, mask=mask, other=0.0)
    h = tl.load(h_ptr + offs, mask=mask, other=0.0)
    u = tl.load(u_ptr + offs, mask=mask, other=0.0)
    h = rho * h + one_minus_rho * (dw * dw)
    d = tl.div_rn(tl.sqrt_rn(u + epsilon), tl.sqrt_rn(h + epsilon)) * dw
    u = rho * u + one_minus_rho * (d * d)
    tl.store(h_ptr + offs, h, mask=mask)
    tl.store(u_ptr + offs, u, mask=mask)
    tl.store(w_ptr + offs, w - lr * d, mask=mask)


def sgd_momentum_update(w: torch.Tensor, dw: torch.Tensor, v: torch.Tensor, lr: float, momentum: float) -> None:
    """v = momentum * v - lr * dw; w += v (float32 tensors of one shape)."""
    lr, momentum = checks.check_sgd_momentum_update(w, dw, v, lr, momentum, FLOAT32)
    same_device("sgd_momentum_update", {"w": w, "dw": dw, "v": v})
    if w.numel():
        sgd_momentum_kernel[stream_grid(w.numel())](w, dw, v, lr, momentum, w.numel(), **STREAM_LAUNCH)


def nesterov_update(w: torch.Tensor, dw: torch.Tensor, v: torch.Tensor, lr: float, momentum: float,
                    next_momentum: float) -> None:
    """w -= momentum * v; v = momentum * v - lr * dw; w += (1 + next_momentum) * v, fused in one pass."""
    lr, momentum, next_momentum = checks.check_nesterov_update(w, dw, v, lr, momentum, next_momentum, FLOAT32)
    same_device("nesterov_update", {"w": w, "dw": dw, "v": v})
    if w.numel():
        nesterov_kernel[stream_grid(w.numel())](w, dw, v, lr, momentum, 1.0 + next_momentum, w.numel(),
                                                **STREAM_LAUNCH)


def adam_update(w: torch.Tensor, dw: torch.Tensor, m: torch.Tensor, v: torch.Tensor, step_size: float, beta1: float,
                beta2: float, epsilon: float) -> None:
    """m = beta1 * m + (1 - beta1) * dw; v = beta2 * v + (1 - beta2) * dw**2;
    w -= step_size * m / (sqrt(v) + epsilon)."""
    step_size, beta1, beta2, epsilon = checks.check_adam_update(w, dw, m, v, step_size, beta1, beta2, epsilon, FLOAT32)
    same_device("adam_update", {"w": w, "dw": dw, "m": m, "v": v})
    if w.numel():
        adam_kernel[stream_grid(w.numel())](w, dw, m, v, step_size, beta1, 1.0 - beta1, beta2, 1.0 - beta2, epsilon,
                                            w.numel(), **STREAM_LAUNCH)


def adagrad_update(w: torch.Tensor, dw: torch.Tensor, h: torch.Tensor, lr: float, epsilon: float) -> None:
    """h += dw**2; w -= lr * dw / (sqrt(h) + epsilon)."""
    lr, epsilon = checks.check_adagrad_update(w, dw, h, lr, epsilon, FLOAT32)
    same_device("adagrad_update", {"w": w, "dw": dw, "h": h})
    if w.numel():
        adagrad_kernel[stream_grid(w.numel())](w, dw, h, lr, epsilon, w.numel(), **STREAM_LAUNCH)


def rmsprop_update(w: torch.Tensor, dw: torch.Tensor, h: torch.Tensor, lr: float, decay: float, epsilon: float) -> None:
    """h = decay * h + (1 - decay) * dw**2; w -= lr * dw / (sqrt(h) + epsilon)."""
    lr, decay, epsilon = checks.check_rmsprop_update(w, dw, h, lr, decay, epsilon, FLOAT32)
    same_device("rmsprop_update", {"w": w, "dw": dw, "h": h})
    if w.numel():
        rmsprop_kernel[stream_grid(w.numel())](w, dw, h, lr, decay, 1.0 - decay, epsilon, w.numel(), **STREAM_LAUNCH)


def adadelta_update(w: torch.Tensor, dw: torch.Tensor, h: torch.Tensor, u: torch.Tensor, lr: float, rho: float,
                    epsilon: float) -> None:
    """h = rho * h + (1 - rho) * dw**2; d = sqrt(u + epsilon) / sqrt(h + epsilon) * dw;
    u = rho * u + (1 - rho) * d**2; w -= lr * d."""
    lr, rho, epsilon = checks.check_adadelta_update(w, dw, h, u, lr, rho, epsilon, FLOAT32)
    same_device("adadelta_update", {"w": w, "dw": dw, "h": h, "u": u})
    if w.numel():
        adadelta_kernel[stream_grid(w.numel())](w, dw, h, u, lr, rho, 1.0 - rho, epsilon, w.numel(), **STREAM_LAUNCH)


def compile_cases() -> list[CompileCase]:
    grad_ptrs = {"w_ptr": "*fp32", "dw_ptr": "*fp32"}
    ptrs = {**grad_ptrs, "v_ptr": "*fp32"}
    return [
        stream_compile_case(sgd_momentum_kernel, {**ptrs, "lr": "fp32", "momentum": "fp32", "numel": "i64"}),
        stream_compile_case(nesterov_kernel, {**ptrs, "lr": "fp32", "momentum": "fp32",
                                              "one_plus_next_momentum": "fp32", "numel": "i64"}),
        stream_compile_case(adam_kernel, {**grad_ptrs, "m_ptr": "*fp32", "v_ptr": "*fp32", "step_size": "fp32",
                                          "beta1": "fp32", "one_minus_beta1": "fp32", "beta2": "fp32",
                                          "one_minus_beta2": "fp32", "epsilon": "fp32", "numel": "i64"}),
        stream_compile_case(adagrad_kernel, {**grad_ptrs, "h_ptr": "*fp32", "lr": "fp32", "epsilon": "fp32",
                                             "numel": "i64"}),
        stream_compile_case(rmsprop_kernel, {**grad_ptrs, "h_ptr": "*fp32", "lr": "fp32", "decay": "fp32",
                                             "one_minus_decay": "fp32", "epsilon": "fp32", "numel": "i64"}),
        stream_compile_case(adadelta_kernel, {**grad_ptrs, "h_ptr": "*fp32", "u_ptr": "*fp32", "lr": "fp32",
                                              "rho": "fp32", "one_minus_rho": "fp32", "epsilon": "fp32",
                                              "numel": "i64"}),
    ]
