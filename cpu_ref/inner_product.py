"""The inner-product (fully connected) layer in NumPy: forward with a fused neuron, and its gradients.

Mirrors :mod:`mocha_triton.kernels.inner_product`. Sizes: ``N`` samples, ``K`` input features, ``O``
outputs; weights are ``(O, K)`` like Caffe and Mocha. Every product goes through ``np.matmul`` (BLAS)
straight into the caller's preallocated output, in the dtype of the inputs (float32 or float64).
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import inner_product as checks
from mocha_triton.cpu_ref._activations import apply_neuron


def inner_product_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, y: np.ndarray,
                          neuron: str = "identity", negative_slope: float = 0.01) -> None:
    """y = neuron(x @ w.T + b) for x (N, K), w (O, K), b (O,) or None, y (N, O)."""
    checks.check_inner_product_forward(x, w, b, y, neuron, negative_slope)
    np.matmul(x, w.T, out=y)
    if b is not None:
        y += b
    apply_neuron(y, neuron, negative_slope)


def inner_product_backward_data(dy: np.ndarray, w: np.ndarray, dx: np.ndarray) -> None:
    """dx = dy @ w for dy (N, O), w (O, K), dx (N, K): the gradient before any neuron."""
    checks.check_inner_product_backward_data(dy, w, dx)
    np.matmul(dy, w, out=dx)


def inner_product_backward_weight(x: np.ndarray, dy: np.ndarray, dw: np.ndarray) -> None:
    """dw = dy.T @ x for x (N, K), dy (N, O), dw (O, K)."""
    checks.check_inner_product_backward_weight(x, dy, dw)
    np.matmul(dy.T, x, out=dw)


def inner_product_backward_bias(dy: np.ndarray, db: np.ndarray) -> None:
    """db = dy summed over the N samples, for dy (N, O), db (O,)."""
    checks.check_inner_product_backward_bias(dy, db)
    np.sum(dy, axis=0, out=db)
