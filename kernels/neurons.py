"""Neurons (activations) as standalone ops in Triton.

Mirrors :mod:`mocha_triton.cpu_ref.neurons`. Both kernels are elementwise over a flat view of
contiguous tensors: a 1-D grid of ``cdiv(numel, BLOCK)`` programs, each handling ``BLOCK``
consecutive elements at 64-bit offsets. The math is the device helpers of
:mod:`mocha_triton.kernels._activations` (also fused into the convolution and inner-product
epilogues); the neuron is a constexpr, so each kernel compiles to the one branch it needs.

In-place calls (``y is x`` forward, ``dx is dy`` backward) are safe: every element is read and then
written by the same thread. That is also why these kernels are not autotuned: the autotuner's
benchmark runs would apply the neuron to an in-place tensor several times. One fixed launch already
streams at memory bandwidth (see ``BLOCK``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mocha_triton.checks import neurons as checks
from mocha_triton.contract import NEURONS
from mocha_triton.kernels._activations import IDENTITY, apply_neuron, neuron_code, neuron_grad_from_output
from mocha_triton.kernels._runtime import (
    INTERPRET,
    STREAM_GPU_BLOCK,
    STREAM_NUM_STAGES,
    STREAM_NUM_WARPS,
    CompileCase,
    same_device,
    stream_compile_case,
    stream_grid,
)

FLOAT32 = ("float32",)
# Elements per program: the shared streaming launch (_runtime.STREAM_LAUNCH) on a GPU, which streamed
# at 99-102% of a torch device-to-device copy on an H200 (blocks of 2048-16384 gave 95-97%); the
# interpreter gets an even bigger block than the shared one, since neurons run inside every layer test.
BLOCK = 16384 if INTERPRET else STREAM_GPU_BLOCK
LAUNCH = {"BLOCK": BLOCK, "num_warps": STREAM_NUM_WARPS, "num_stages": STREAM_NUM_STAGES}


@triton.jit
def neuron_forward_kernel(x_ptr, y_ptr, numel, negative_slope, NEURON: tl.constexpr, BLOCK: tl.constexpr):
    """y[i] = neuron(x[i]) for i < numel."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    tl.store(y_ptr + offs, apply_neuron(x, NEURON, negative_slope), mask=mask)


@triton.jit
def neuron_backward_kernel(y_ptr, dy_ptr, dx_ptr, numel, negative_slope, NEURON: tl.constexpr,
                           BLOCK: tl.constexpr):
    """dx[i] = dy[i] * neuron'(x[i]), the derivative read from the stored output y[i]."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    y = tl.load(y_ptr + offs, mask=mask, other=0.0)
    dy = tl.load(dy_ptr + offs, mask=mask, other=0.0)
    tl.store(dx_ptr + offs, neuron_grad_from_output(y, dy, NEURON, negative_slope), mask=mask)


def neuron_forward(x: torch.Tensor, y: torch.Tensor, neuron: str, negative_slope: float = 0.01) -> None:
    """y = neuron(x) elementwise; ``y`` may be ``x`` itself (in place).

    ``neuron`` is one of ``contract.NEURONS``; ``negative_slope`` is the slope of leaky_relu for x <= 0.
    """
    slope = checks.check_neuron_forward(x, y, neuron, negative_slope, FLOAT32)
    same_device("neuron_forward", {"x": x, "y": y})
    code = neuron_code(neuron)
    if x.numel() == 0 or (code == IDENTITY and y.data_ptr() == x.data_ptr()):
        return  # nothing to compute, or the identity in place
    neuron_forward_kernel[stream_grid(x.numel(), BLOCK)](x, y, x.numel(), slope, NEURON=code, **LAUNCH)


def neuron_backward(y: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, neuron: str,
                    negative_slope: float = 0.01) -> None:
    """dx = dy * neuron'(x), the derivative written in terms of the stored output y.

    relu: dy * (y > 0) (the gradient at 0 is 0); leaky_relu: dy where y > 0, else dy * negative_slope;
    sigmoid: dy * y * (1 - y); tanh: dy * (1 - y**2); exp: dy * y. ``dx`` may be ``dy`` itself.
    """
    slope = checks.check_neuron_backward(y, dy, dx, neuron, negative_slope, FLOAT32)
    same_device("neuron_backward", {"y": y, "dy": dy, "dx": dx})
    code = neuron_code(neuron)
    if dy.numel() == 0 or (code == IDENTITY and dx.data_ptr() == dy.data_ptr()):
        return  # nothing to compute, or the identity in place
    neuron_backward_kernel[stream_grid(dy.numel(), BLOCK)](y, dy, dx, dy.numel(), slope, NEURON=code, **LAUNCH)


def compile_cases() -> list[CompileCase]:
    """Both kernels for every neuron, at the GPU block size."""
    ptr = "*fp32"
    cases = []
    for name in NEURONS:
        constexprs = {"NEURON": neuron_code(name)}
        cases.append(stream_compile_case(neuron_forward_kernel,
                                         {"x_ptr": ptr, "y_ptr": ptr, "numel": "i64", "negative_slope": "fp32"},
                                         constexprs, label=name))
        cases.append(stream_compile_case(neuron_backward_kernel,
                                         {"y_ptr": ptr, "dy_ptr": ptr, "dx_ptr": ptr, "numel": "i64",
                                          "negative_slope": "fp32"},
                                         constexprs, label=name))
    return cases
