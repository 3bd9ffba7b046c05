"""Max and mean 2-D pooling with Caffe's rules (NumPy reference).

Mirrors :mod:`mocha_triton.kernels.pooling`. The rules (output size, windows clipped to the padded
image and then to the image, the mean divisor, the first strict maximum, ``-inf``/NaN handling) are
written down in :mod:`mocha_triton.checks.pooling`, which both backends call to validate arguments.

How it is computed: the input is copied into a padded canvas (``-inf`` around it for max, 0 for mean)
large enough to hold every window, ceil-mode windows that run past the padding included. Window tap
``(r, s)`` of every output is then one strided slice of the canvas, ``canvas[..., r::sh, s::sw]``
cut to ``(OH, OW)``, so the ops loop over the ``kh * kw`` taps only, each tap a whole-array step:

* max forward keeps a running maximum and its flat index, replaced where a tap is strictly greater;
* mean forward sums the taps and divides by the window sizes;
* mean backward adds ``dy / divisor`` into the taps of a zero canvas and crops it;
* max backward adds ``dy`` at its argmax with one ``np.bincount`` over flat indices (deterministic).
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import pooling as checks
from mocha_triton.checks.pooling import Pool2dGeometry


def _canvas(g: Pool2dGeometry, dtype: np.dtype, fill: float) -> np.ndarray:
    """A (N, C, HP, WP) array filled with ``fill``; the image goes at offset (ph, pw).

    It holds the image and every window: ceil mode can add a last window that reaches past the
    bottom/right padding, so HP = max(ph + H, (OH - 1) * sh + kh) (and alike for WP).
    """
    hp = max(g.ph + g.h, (g.oh - 1) * g.sh + g.kh)
    wp = max(g.pw + g.w, (g.ow - 1) * g.sw + g.kw)
    return np.full((g.n, g.c, hp, wp), fill, dtype=dtype)


def _image(canvas: np.ndarray, g: Pool2dGeometry) -> np.ndarray:
    """The view of a canvas that holds the image."""
    return canvas[:, :, g.ph:g.ph + g.h, g.pw:g.pw + g.w]


def _tap(canvas: np.ndarray, g: Pool2dGeometry, r: int, s: int) -> np.ndarray:
    """(N, C, OH, OW) view of the canvas: element (oh, ow) is tap (r, s) of window (oh, ow)."""
    return canvas[:, :, r:r + (g.oh - 1) * g.sh + 1:g.sh, s:s + (g.ow - 1) * g.sw + 1:g.sw]


def _window_starts(g: Pool2dGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(OH, 1) first rows and (1, OW) first columns of the windows, in image coordinates (may be < 0)."""
    return (np.arange(g.oh) * g.sh - g.ph)[:, None], (np.arange(g.ow) * g.sw - g.pw)[None, :]


def _divisors(g: Pool2dGeometry) -> np.ndarray:
    """(OH, OW) mean divisors: window sizes clipped to the padded image, not to the image."""
    hstart, wstart = _window_starts(g)
    hend = np.minimum(hstart + g.kh, g.h + g.ph)
    wend = np.minimum(wstart + g.kw, g.w + g.pw)
    return (hend - hstart) * (wend - wstart)


def max_pool2d_forward(x: np.ndarray, y: np.ndarray, argmax: np.ndarray, kernel: tuple[int, int],
                       stride: tuple[int, int], pad: tuple[int, int], ceil_mode: bool = True) -> None:
    """y[n, c, oh, ow] = max of x over window (oh, ow); argmax = its int32 offset h * W + w.

    x (N, C, H, W); y and argmax (N, C, OH, OW) with (OH, OW) from ``pool2d_output_size``. The first
    strict maximum in row-major window order wins; NaN is never taken (see checks.pooling).
    """
    g = checks.check_max_pool2d_forward(x, y, argmax, kernel, stride, pad, ceil_mode)
    canvas = _canvas(g, x.dtype, -np.inf)
    _image(canvas, g)[...] = x
    hstart, wstart = _window_starts(g)
    best = np.full(g.y_shape, -np.inf, dtype=x.dtype)
    # Start at the window's first image pixel, so a window of -inf (or NaN) still names a pixel.
    first = np.maximum(hstart, 0) * g.w + np.maximum(wstart, 0)
    index = np.broadcast_to(first, g.y_shape).astype(np.int32)
    for r in range(g.kh):
        for s in range(g.kw):
            value = _tap(canvas, g, r, s)
            greater = value > best  # padding is -inf: never greater
            np.copyto(best, value, where=greater)
            np.copyto(index, ((hstart + r) * g.w + (wstart + s)).astype(np.int32), where=greater)
    y[...] = best
    argmax[...] = index


def max_pool2d_backward(dy: np.ndarray, argmax: np.ndarray, dx: np.ndarray, kernel: tuple[int, int],
                        stride: tuple[int, int], pad: tuple[int, int]) -> None:
    """dx[n, c, h, w] = sum of dy[n, c, oh, ow] over the windows whose argmax is h * W + w.

    dy and argmax (N, C, OH, OW), argmax as written by :func:`max_pool2d_forward` with the same
    geometry (its values are not checked); dx (N, C, H, W). The sums run in float64 (``np.bincount``)
    and are rounded once to the dtype of dx.
    """
    g = checks.check_max_pool2d_backward(dy, argmax, dx, kernel, stride, pad)
    plane_size = g.h * g.w
    plane_start = np.arange(g.planes, dtype=np.int64)[:, None] * plane_size
    flat = argmax.reshape(g.planes, g.oh * g.ow).astype(np.int64) + plane_start
    sums = np.bincount(flat.reshape(-1), weights=dy.reshape(-1), minlength=g.planes * plane_size)
    dx[...] = sums.reshape(dx.shape)


def mean_pool2d_forward(x: np.ndarray, y: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                        pad: tuple[int, int], ceil_mode: bool = True) -> None:
    """y[n, c, oh, ow] = (sum of x over window (oh, ow) clipped to the image) / divisor(oh, ow).

    x (N, C, H, W); y (N, C, OH, OW). The divisor is the window size clipped to the padded image
    (Caffe: zero padding counts, the part of a ceil-mode window past the padding does not). The sum
    runs in the dtype of x, taps in row-major order.
    """
    g = checks.check_mean_pool2d_forward(x, y, kernel, stride, pad, ceil_mode)
    canvas = _canvas(g, x.dtype, 0.0)
    _image(canvas, g)[...] = x
    total = np.zeros(g.y_shape, dtype=x.dtype)
    for r in range(g.kh):
        for s in range(g.kw):
            total += _tap(canvas, g, r, s)
    y[...] = total / _divisors(g).astype(x.dtype)


def mean_pool2d_backward(dy: np.ndarray, dx: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                         pad: tuple[int, int], ceil_mode: bool = True) -> None:
    """dx[n, c, h, w] = sum of dy[n, c, oh, ow] / divisor(oh, ow) over the windows holding (h, w).

    dy (N, C, OH, OW), dx (N, C, H, W), the geometry of :func:`mean_pool2d_forward`.
    """
    g = checks.check_mean_pool2d_backward(dy, dx, kernel, stride, pad, ceil_mode)
    share = dy / _divisors(g).astype(dy.dtype)
    canvas = _canvas(g, dy.dtype, 0.0)
    for r in range(g.kh):
        for s in range(g.kw):
            _tap(canvas, g, r, s)[...] += share  # the outputs of one tap touch distinct pixels
    dx[...] = _image(canvas, g)
