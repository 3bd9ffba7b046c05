"""Regularizer gradients (NumPy reference): L2 weight decay and L1, added to a parameter's gradient.

Mirrors :mod:`mocha_triton.kernels.regularizers`. The coefficient is the effective lambda (Mocha
multiplies the regularizer's coefficient by the solver's ``regu_coef`` before calling these).
Note the L2 convention: ``dw += coef * w`` (Caffe/PyTorch weight decay, the gradient of
``coef/2 * ||w||^2``); ``L2Regu(c)`` passes ``coef = c * regu_coef`` (Mocha's own L2Regu added twice that).
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import regularizers as checks


def l2_regularizer_gradient(w: np.ndarray, dw: np.ndarray, coef: float) -> None:
    """dw += coef * w (w and dw of the same shape and dtype; coef >= 0)."""
    coef = checks.check_l2_regularizer_gradient(w, dw, coef)
    dw += dw.dtype.type(coef) * w


def l1_regularizer_gradient(w: np.ndarray, dw: np.ndarray, coef: float) -> None:
    """dw += coef * sign(w), with sign(0) = 0 (w and dw of the same shape and dtype; coef >= 0)."""
    coef = checks.check_l1_regularizer_gradient(w, dw, coef)
    dw += dw.dtype.type(coef) * np.sign(w)
