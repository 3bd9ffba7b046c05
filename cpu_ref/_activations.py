"""The neurons (activations) in NumPy, shared by every reference op that fuses one.

Mirrors :mod:`mocha_triton.kernels._activations`: forward from the pre-activation, backward from the
stored output y.
"""

from __future__ import annotations

import numpy as np


def apply_neuron(x: np.ndarray, neuron: str, negative_slope: float = 0.01, out: np.ndarray | None = None) -> None:
    """out = neuron(x) elementwise (out defaults to x: in place). ``neuron`` is a contract name."""
    out = x if out is None else out
    slope = x.dtype.type(negative_slope)
    if neuron == "identity":
        if out is not x:
            np.copyto(out, x)
    elif neuron == "relu":
        np.maximum(x, 0, out=out)
    elif neuron == "leaky_relu":
        np.copyto(out, np.where(x > 0, x, x * slope))
    elif neuron == "sigmoid":  # stable for large |x|: exp of a non-positive argument only
        z = np.exp(-np.abs(x))
        np.copyto(out, np.where(x >= 0, 1 / (1 + z), z / (1 + z)))
    elif neuron == "tanh":
        np.tanh(x, out=out)
    elif neuron == "exp":
        np.exp(x, out=out)
    else:
        raise ValueError(f"unknown neuron {neuron!r}")


def neuron_grad_from_output(y: np.ndarray, dy: np.ndarray, neuron: str, negative_slope: float = 0.01,
                            out: np.ndarray | None = None) -> None:
    """out = dy * neuron'(x), the derivative written in terms of the output y (out defaults to dy)."""
    out = dy if out is None else out
    slope = y.dtype.type(negative_slope)
    if neuron == "identity":
        grad = dy
    elif neuron == "relu":
        grad = np.where(y > 0, dy, 0)
    elif neuron == "leaky_relu":
        grad = np.where(y > 0, dy, dy * slope)
    elif neuron == "sigmoid":
        grad = dy * y * (1 - y)
    elif neuron == "tanh":
        grad = dy * (1 - y * y)
    elif neuron == "exp":
        grad = dy * y
    else:
        raise ValueError(f"unknown neuron {neuron!r}")
    if grad is not out:
        np.copyto(out, grad)
