"""Local response normalization and the power function (NumPy reference).

Mirrors :mod:`mocha_triton.kernels.normalization`; the formulas and argument rules are written down in
:mod:`mocha_triton.checks.normalization`.

Every window sum of LRN is a short loop over the window's taps, each adding one shifted slice of a
zero-padded copy (``size`` slices along the channel axis, or ``size`` along the rows then ``size``
along the columns for the separable ``size x size`` square). The backward sums ``dy * y / scale`` over
the *transposed* window (the elements whose window holds a given element): the same loop with the
padding swapped, ``post`` zeros before and ``pre`` after. Each window is summed from its own taps (no
running sum), so a NaN or an infinity reaches only the outputs whose window holds it, and IEEE
arithmetic decides what it becomes there (no warnings: those results are documented).

Powers use ``np.power`` with the exponent in the array's dtype, then enforce the documented rule that a
negative base with a non-integer exponent gives NaN also for ``-inf`` (NumPy's float32 ``power`` gives
``(-inf) ** -0.75 = 0`` on some platforms and NaN on others for positive exponents; the Triton kernels
give NaN).
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import normalization as checks
from mocha_triton.checks.normalization import LRNSetting


def _window_sum(a: np.ndarray, axis: int, size: int, before: int) -> np.ndarray:
    """out[..., i, ...] = sum of a[..., i - before + t, ...] over t in [0, size), zero outside ``a``."""
    length = a.shape[axis]
    pad = [(0, 0)] * a.ndim
    pad[axis] = (before, size - 1 - before)
    padded = np.pad(a, pad)
    out = np.zeros_like(a)
    index = [slice(None)] * a.ndim
    for t in range(size):
        index[axis] = slice(t, t + length)
        out += padded[tuple(index)]
    return out


def _lrn_window_sum(a: np.ndarray, s: LRNSetting, before: int) -> np.ndarray:
    """Sum of ``a`` over every element's LRN window (``before = pre``) or transposed window (``post``)."""
    if s.across:
        return _window_sum(a, 1, s.size, before)
    return _window_sum(_window_sum(a, 2, s.size, before), 3, s.size, before)


def lrn_forward(x: np.ndarray, y: np.ndarray, scale: np.ndarray, size: int, alpha: float, beta: float,
                k: float, region: str = "across_channels") -> None:
    """scale = k + alpha / n * (window sum of x**2); y = x * scale**-beta (Caffe's LRN).

    x, y, scale (N, C, H, W). ``region`` "across_channels": windows of ``size`` channels, n = size;
    "within_channel": ``size x size`` squares, n = size * size; zero padded, ``pre = (size - 1) // 2``
    before the centre. ``scale`` is kept for :func:`lrn_backward`.
    """
    s = checks.check_lrn_forward(x, y, scale, size, alpha, beta, k, region)
    dt = x.dtype.type
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf in x propagate (module docstring)
        squares = _lrn_window_sum(x * x, s, s.pre)
        np.multiply(squares, dt(s.alpha / s.divisor), out=scale)
        scale += dt(s.k)
        np.power(scale, dt(-s.beta), out=y)
        y *= x


def lrn_backward(x: np.ndarray, y: np.ndarray, scale: np.ndarray, dy: np.ndarray, dx: np.ndarray, size: int,
                 alpha: float, beta: float, region: str = "across_channels") -> None:
    """dx = dy * scale**-beta - 2 alpha beta / n * x * (sum of dy * y / scale over the windows holding x).

    x, y and scale from :func:`lrn_forward` with the same ``size``, ``alpha``, ``beta`` and ``region``
    (``k`` is inside the stored scale); dy, dx (N, C, H, W).
    """
    s = checks.check_lrn_backward(x, y, scale, dy, dx, size, alpha, beta, region)
    dt = x.dtype.type
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf in x or dy propagate
        ratios = _lrn_window_sum(dy * y / scale, s, s.post)
        ratios *= x
        ratios *= dt(2.0 * s.alpha * s.beta / s.divisor)
        np.power(scale, dt(-s.beta), out=dx)
        dx *= dy
        dx -= ratios


def _shifted(x: np.ndarray, scale: float, shift: float) -> np.ndarray:
    """A new array ``shift + scale * x`` (the base of the power)."""
    base = x * x.dtype.type(scale)
    base += x.dtype.type(shift)
    return base


def _power(base: np.ndarray, exponent: float, out: np.ndarray) -> None:
    """out = base ** exponent (exponent in the arrays' dtype; ``out`` may be ``base``), NaN wherever a
    negative base (``-inf`` included) meets a non-integer exponent."""
    p = base.dtype.type(exponent)
    negative = base < 0 if not float(p).is_integer() else None
    np.power(base, p, out=out)
    if negative is not None:
        out[negative] = np.nan


def power_forward(x: np.ndarray, y: np.ndarray, power: float, scale: float, shift: float) -> None:
    """y = (shift + scale * x) ** power elementwise; ``y`` may be ``x`` itself.

    NumPy's rules: a negative base with a non-integer power gives NaN, 0 ** negative gives inf,
    anything ** 0 gives 1. Any shape.
    """
    power, scale, shift = checks.check_power_forward(x, y, power, scale, shift)
    if power == 0:
        y[...] = 1
        return
    base = _shifted(x, scale, shift)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # NaN and inf are documented results
        if power == 1:
            np.copyto(y, base)
        elif power == 2:
            np.square(base, out=y)
        else:
            _power(base, power, out=y)


def power_backward(x: np.ndarray, dy: np.ndarray, dx: np.ndarray, power: float, scale: float,
                   shift: float) -> None:
    """dx = dy * power * scale * (shift + scale * x) ** (power - 1); ``dx`` may be ``dy`` itself.

    The derivative is computed from the forward input x (not from y / base, which is 0 / 0 where the
    base is 0). ``dx = 0`` exactly when ``power == 0`` or ``scale == 0``. Any shape.
    """
    power, scale, shift = checks.check_power_backward(x, dy, dx, power, scale, shift)
    dt = dx.dtype.type
    if checks.power_has_zero_gradient(power, scale):
        dx[...] = 0
        return
    if power == 1:
        np.multiply(dy, dt(scale), out=dx)
        return
    base = _shifted(x, scale, shift)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if power != 2:
            _power(base, power - 1, out=base)
        base *= dt(power * scale)
        np.multiply(dy, base, out=dx)
