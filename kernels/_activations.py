"""Device helpers for the neurons (activations), shared by every kernel that fuses one.

``NEURON`` is a constexpr code from :func:`neuron_code`, so the unused branches vanish at compile
time. The forward maps the pre-activation x to y; the backward multiplies an incoming gradient by the
derivative computed **from the stored output y** (Mocha/Caffe style: the pre-activation is not kept).
"""

from __future__ import annotations

import triton
import triton.language as tl

from mocha_triton.contract import NEURONS

IDENTITY, RELU, LEAKY_RELU, SIGMOID, TANH, EXP = range(6)


def neuron_code(name: str) -> int:
    """The constexpr code of a neuron name of the contract (``NEURONS``)."""
    return NEURONS.index(name)


@triton.jit
def apply_neuron(x, NEURON: tl.constexpr, negative_slope):
    """y = neuron(x), elementwise, in fp32."""
    if NEURON == 1:  # relu
        x = tl.maximum(x, 0.0, propagate_nan=tl.PropagateNan.ALL)  # NaN stays NaN, as np.maximum
    elif NEURON == 2:  # leaky_relu
        x = tl.where(x > 0.0, x, x * negative_slope)
    elif NEURON == 3:  # sigmoid, written to stay finite for large |x|
        z = tl.exp(-tl.abs(x))
        x = tl.where(x >= 0.0, 1.0 / (1.0 + z), z / (1.0 + z))
    elif NEURON == 4:  # tanh via exp of a non-positive argument (no overflow)
        z = tl.exp(-2.0 * tl.abs(x))
        t = (1.0 - z) / (1.0 + z)
        # 1 - z cancels for small |x|: there the Taylor series is accurate to ~3e-9 relative
        x2 = x * x
        small = x * (1.0 - x2 * (1.0 / 3.0) + x2 * x2 * (2.0 / 15.0))
        x = tl.where(tl.abs(x) < 0.0625, small, tl.where(x >= 0.0, t, -t))
    elif NEURON == 5:  # exp
        x = tl.exp(x)
    return x


@triton.jit
def neuron_grad_from_output(y, dy, NEURON: tl.constexpr, negative_slope):
    """dx = dy * neuron'(x), with the derivative written in terms of the output y."""
    if NEURON == 1:  # relu: the gradient at 0 is 0
        dy = tl.where(y > 0.0, dy, 0.0)
    elif NEURON == 2:  # leaky_relu (negative_slope > 0 keeps the sign of x in y)
        dy = tl.where(y > 0.0, dy, dy * negative_slope)
    elif NEURON == 3:  # sigmoid
        dy = dy * y * (1.0 - y)
    elif NEURON == 4:  # tanh
        dy = dy * (1.0 - y * y)
    elif NEURON == 5:  # exp
        dy = dy * y
    return dy
