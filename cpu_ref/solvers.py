"""Solver parameter updates (NumPy reference): SGD with momentum and Nesterov momentum, as in Mocha.

Mirrors :mod:`mocha_triton.kernels.solvers`. ``lr`` is the effective learning rate (the policy's
rate times the parameter's local multiplier); ``v`` is the momentum history, updated in place
together with the parameter ``w``. (PyTorch's SGD keeps ``v`` as a running sum of gradients and
multiplies by lr afterwards; Mocha/Caffe fold lr into ``v``, as here.)
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import solvers as checks


def sgd_momentum_update(w: np.ndarray, dw: np.ndarray, v: np.ndarray, lr: float, momentum: float) -> None:
    """v = momentum * v - lr * dw; w += v (all three arrays of one shape and dtype)."""
    lr, momentum = checks.check_sgd_momentum_update(w, dw, v, lr, momentum)
    t = w.dtype.type
    v[...] = t(momentum) * v - t(lr) * dw
    w += v


def nesterov_update(w: np.ndarray, dw: np.ndarray, v: np.ndarray, lr: float, momentum: float,
                    next_momentum: float) -> None:
    """Bengio et al.'s Nesterov step: w -= momentum * v; v = momentum * v - lr * dw; w += (1 + next_momentum) * v.

    ``momentum`` is the previous iteration's mu (the one ``v`` was built with), ``next_momentum`` this
    iteration's.
    """
    lr, momentum, next_momentum = checks.check_nesterov_update(w, dw, v, lr, momentum, next_momentum)
    t = w.dtype.type
    w -= t(momentum) * v
    v[...] = t(momentum) * v - t(lr) * dw
    w += t(1.0 + next_momentum) * v
