"""Neurons (activations) as standalone ops (NumPy reference).

Mirrors :mod:`mocha_triton.kernels.neurons`. The math lives in :mod:`mocha_triton.cpu_ref._activations`,
which the layers that fuse a neuron (convolution, inner product) share. The forward maps the
pre-activation x to y; the backward multiplies dy by the derivative **computed from the stored
output y**, as Mocha and Caffe do (the pre-activation is not kept).
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import neurons as checks
from mocha_triton.cpu_ref._activations import apply_neuron, neuron_grad_from_output


def neuron_forward(x: np.ndarray, y: np.ndarray, neuron: str, negative_slope: float = 0.01) -> None:
    """y = neuron(x) elementwise; ``y`` may be ``x`` itself (in place).

    ``neuron`` is one of ``contract.NEURONS``; ``negative_slope`` is the slope of leaky_relu for x <= 0.
    """
    slope = checks.check_neuron_forward(x, y, neuron, negative_slope)
    apply_neuron(x, neuron, slope, out=y)


def neuron_backward(y: np.ndarray, dy: np.ndarray, dx: np.ndarray, neuron: str,
                    negative_slope: float = 0.01) -> None:
    """dx = dy * neuron'(x), the derivative written in terms of the stored output y.

    relu: dy * (y > 0) (the gradient at 0 is 0); leaky_relu: dy where y > 0, else dy * negative_slope;
    sigmoid: dy * y * (1 - y); tanh: dy * (1 - y**2); exp: dy * y. ``dx`` may be ``dy`` itself.
    """
    slope = checks.check_neuron_backward(y, dy, dx, neuron, negative_slope)
    neuron_grad_from_output(y, dy, neuron, slope, out=dx)
