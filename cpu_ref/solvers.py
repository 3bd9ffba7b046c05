"""Solver parameter updates (NumPy reference): SGD with momentum, Nesterov momentum, Adam, Adagrad,
RMSProp and Adadelta.

Mirrors :mod:`mocha_triton.kernels.solvers`. ``lr`` is the effective learning rate (the policy's
rate times the parameter's local multiplier). Each op updates the parameter ``w`` and the method's
state arrays (momentum history, moment estimates, running averages) in place, all of one shape and
dtype; every scalar is rounded to that dtype before use, as the kernels receive it. The updates work
in place with few temporaries, one rounding per operation in the order of the docstring's formula.

* SGD: ``v`` is the momentum history with lr folded in (Mocha/Caffe); PyTorch's SGD keeps a running
  sum of gradients instead and multiplies by lr afterwards.
* Adam adds epsilon to ``sqrt(v)`` of the *uncorrected* second moment and folds both bias corrections
  into ``step_size`` (Kingma & Ba's "efficient version", as Caffe and Mocha); PyTorch adds epsilon after
  the correction, so the two agree exactly when epsilon is 0.
* Adagrad, RMSProp and Adadelta are the per-element methods of Caffe and PyTorch (Mocha's Adagrad used
  one scalar step per parameter blob; that is not reproduced).
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import solvers as checks


def sgd_momentum_update(w: np.ndarray, dw: np.ndarray, v: np.ndarray, lr: float, momentum: float) -> None:
    """v = momentum * v - lr * dw; w += v (all three arrays of one shape and dtype)."""
    lr, momentum = checks.check_sgd_momentum_update(w, dw, v, lr, momentum)
    t = w.dtype.type
    v *= t(momentum)
    v -= t(lr) * dw
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


def adam_update(w: np.ndarray, dw: np.ndarray, m: np.ndarray, v: np.ndarray, step_size: float, beta1: float,
                beta2: float, epsilon: float) -> None:
    """m = beta1 * m + (1 - beta1) * dw; v = beta2 * v + (1 - beta2) * dw**2; w -= step_size * m / (sqrt(v) + epsilon).

    ``step_size`` is ``lr * sqrt(1 - beta2**t) / (1 - beta1**t)`` for the t-th update (t = 1, 2, ...).
    """
    step_size, beta1, beta2, epsilon = checks.check_adam_update(w, dw, m, v, step_size, beta1, beta2, epsilon)
    t = w.dtype.type
    m *= t(beta1)
    m += t(1.0 - beta1) * dw
    _decay_squares(v, dw, t(beta2), t(1.0 - beta2))
    step = t(step_size) * m
    step /= _sqrt_plus(v, t(epsilon))
    w -= step


def adagrad_update(w: np.ndarray, dw: np.ndarray, h: np.ndarray, lr: float, epsilon: float) -> None:
    """h += dw**2; w -= lr * dw / (sqrt(h) + epsilon)."""
    lr, epsilon = checks.check_adagrad_update(w, dw, h, lr, epsilon)
    t = w.dtype.type
    h += np.square(dw)
    step = t(lr) * dw
    step /= _sqrt_plus(h, t(epsilon))
    w -= step


def rmsprop_update(w: np.ndarray, dw: np.ndarray, h: np.ndarray, lr: float, decay: float, epsilon: float) -> None:
    """h = decay * h + (1 - decay) * dw**2; w -= lr * dw / (sqrt(h) + epsilon)."""
    lr, decay, epsilon = checks.check_rmsprop_update(w, dw, h, lr, decay, epsilon)
    t = w.dtype.type
    _decay_squares(h, dw, t(decay), t(1.0 - decay))
    step = t(lr) * dw
    step /= _sqrt_plus(h, t(epsilon))
    w -= step


def adadelta_update(w: np.ndarray, dw: np.ndarray, h: np.ndarray, u: np.ndarray, lr: float, rho: float,
                    epsilon: float) -> None:
    """Zeiler's Adadelta: h = rho * h + (1 - rho) * dw**2; d = sqrt(u + epsilon) / sqrt(h + epsilon) * dw;
    u = rho * u + (1 - rho) * d**2; w -= lr * d.

    ``h`` averages squared gradients, ``u`` squared updates (without lr, as Caffe and PyTorch).
    """
    lr, rho, epsilon = checks.check_adadelta_update(w, dw, h, u, lr, rho, epsilon)
    t = w.dtype.type
    _decay_squares(h, dw, t(rho), t(1.0 - rho))
    d = u + t(epsilon)
    np.sqrt(d, out=d)
    d /= _sqrt_of_sum(h, t(epsilon))
    d *= dw
    _decay_squares(u, d, t(rho), t(1.0 - rho))
    d *= t(lr)
    w -= d


# --- in-place building blocks: each rounds exactly like the expression it names ------------------------


def _decay_squares(avg: np.ndarray, x: np.ndarray, decay: np.generic, one_minus_decay: np.generic) -> None:
    """avg = decay * avg + (1 - decay) * x**2, in place."""
    square = np.square(x)
    square *= one_minus_decay
    avg *= decay
    avg += square


def _sqrt_plus(a: np.ndarray, epsilon: np.generic) -> np.ndarray:
    """sqrt(a) + epsilon, as a new array."""
    out = np.sqrt(a)
    out += epsilon
    return out


def _sqrt_of_sum(a: np.ndarray, epsilon: np.generic) -> np.ndarray:
    """sqrt(a + epsilon), as a new array."""
    out = a + epsilon
    np.sqrt(out, out=out)
    return out
