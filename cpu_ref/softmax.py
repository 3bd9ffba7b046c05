"""Softmax along the channel axis of (N, C, *S) arrays (NumPy reference).

Mirrors :mod:`mocha_triton.kernels.softmax`. Both ops view the arrays as (N, C, S), S the product of
the spatial sizes (1 for a 2-D (N, C) input), and reduce over axis 1 at every (n, s) position.
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import softmax as checks


def softmax_forward(x: np.ndarray, y: np.ndarray) -> None:
    """y = exp(x - max_c x) / sum_c exp(x - max_c x) along axis 1; stable for any finite logits."""
    n, c, s = checks.check_softmax_forward(x, y)
    if x.size == 0:
        return
    x3 = x.reshape(n, c, s)
    e = np.exp(x3 - x3.max(axis=1, keepdims=True))
    y[...] = (e / e.sum(axis=1, keepdims=True)).reshape(y.shape)


def softmax_backward(y: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> None:
    """dx = y * (dy - sum_c(dy * y)), the gradient of softmax_forward given its stored output y."""
    n, c, s = checks.check_softmax_backward(y, dy, dx)
    if y.size == 0:
        return
    y3, dy3 = y.reshape(n, c, s), dy.reshape(n, c, s)
    dot = (dy3 * y3).sum(axis=1, keepdims=True)
    dx[...] = (y3 * (dy3 - dot)).reshape(dx.shape)
