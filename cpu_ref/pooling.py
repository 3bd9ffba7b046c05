"""Max and mean 2-D pooling with Caffe's rules, and max and mean channel pooling (1-D pooling along the
middle axis of an ``(M, C, S)`` view, Mocha's ChannelPoolingLayer) (NumPy reference).

Mirrors :mod:`mocha_triton.kernels.pooling`. The rules (output size, windows clipped to the padded
image and then to the image, the mean divisor, the first strict maximum, ``-inf``/NaN handling) are
written down in :mod:`mocha_triton.checks.pooling`, which both backends call to validate arguments.

How it is computed: the ops loop over the ``kh * kw`` window taps only, each tap one whole-array
step over every window of the batch at once.

* max forward and mean backward use the stride-phase layout of :class:`_Phases`, in which a tap of
  all windows is one contiguous run per plane (NumPy runs several times faster on those than on
  strided ``(OH, OW)`` views). Max forward keeps a running maximum and the tap number of its first
  strict maximum, branch free (see the comments there), and turns tap numbers into int32 pixel
  offsets at the end; mean backward adds ``dy / divisor`` into the taps of a zero layout and reads
  the image back out of it.
* mean forward sums strided ``(OH, OW)`` views of a zero-padded canvas (cheaper to build than the
  phase layout; the sum is the only work per tap), taps in row-major order, then divides by the
  window sizes.
* max backward adds ``dy`` at its argmax with one ``np.add.at`` over flat indices (deterministic).

Channel pooling loops over the ``kernel`` taps too, on an ``(M, L, S)`` canvas of the padded axis (the
input at offset ``front``, ``-inf`` or zeros elsewhere, long enough for every window): tap ``t`` of all
windows is the strided slice ``canvas[:, t::stride][:, :OC]``. The windows of one tap touch distinct
channels, so the backwards add ``dy`` (mean: ``dy / kernel``; max: where the argmax names the channel)
tap by tap into a zero canvas and read the axis back out of it.
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import pooling as checks
from mocha_triton.checks.pooling import ChannelPoolGeometry, Pool2dGeometry


class _Phases:
    """The stride-phase layout of a padded image, in which every window tap is a contiguous slice.

    The padded canvas (image at offset (ph, pw), ``fill`` elsewhere) is split by stride phase:
    ``data[p, q, n, c, a * WQ + b] = canvas[n, c, a * sh + p, b * sw + q]``, each phase plane an
    ``HQ x WQ`` block. Tap ``(r, s)`` of window ``(oh, ow)`` is then element ``(oh + r // sh) * WQ +
    ow + s // sw`` of phase ``(r % sh, s % sw)``: for all windows at once, one contiguous run of
    ``OH * WQ`` elements per plane, read as a *wide grid* ``(OH, WQ)`` whose columns past OW are junk
    (they hold windows that do not exist and are cut off at the end). Long contiguous runs matter:
    NumPy steps through a strided ``(OH, OW)`` view a row of OW elements at a time, several times
    slower. The planes get one spare row so that the last run of a tap with ``s // sw > 0`` ends
    inside its plane; they also cover the whole image, so the backward can read every pixel back.
    """

    def __init__(self, g: Pool2dGeometry, dtype: np.dtype, fill: float, x: np.ndarray | None = None) -> None:
        """The layout filled with ``fill``, with the image x (N, C, H, W) in its place if given."""
        self.g = g
        self.hq = max(g.oh + (g.kh - 1) // g.sh + 1, -(-(g.ph + g.h) // g.sh))
        self.wq = max(g.ow + (g.kw - 1) // g.sw, -(-(g.pw + g.w) // g.sw))
        shape = (g.sh, g.sw, g.n, g.c, self.hq * self.wq)
        if x is None:
            self.data = np.full(shape, fill, dtype=dtype)
            return
        self.data = np.empty(shape, dtype=dtype)
        for plane, (a, b), (rows, cols) in self._image_parts():
            plane[..., :a.start, :] = fill
            plane[..., a.stop:, :] = fill
            plane[..., a, :b.start] = fill
            plane[..., a, b.stop:] = fill
            plane[..., a, b] = x[:, :, rows, cols]

    def _image_parts(self):
        """For each phase (p, q): its (N, C, HQ, WQ) plane, the (row, column) slices of the plane that
        hold image pixels and the matching (row, column) slices of the image."""
        g = self.g
        planes = self.data.reshape(g.sh, g.sw, g.n, g.c, self.hq, self.wq)
        for p in range(g.sh):
            h0 = (p - g.ph) % g.sh  # first image row of phase p
            a0, rows = (h0 + g.ph) // g.sh, len(range(h0, g.h, g.sh))
            for q in range(g.sw):
                w0 = (q - g.pw) % g.sw
                b0, cols = (w0 + g.pw) // g.sw, len(range(w0, g.w, g.sw))
                yield (planes[p, q], (slice(a0, a0 + rows), slice(b0, b0 + cols)),
                       (slice(h0, None, g.sh), slice(w0, None, g.sw)))

    def store(self, out: np.ndarray) -> None:
        """Copy the image part into out (N, C, H, W)."""
        for plane, (a, b), (rows, cols) in self._image_parts():
            out[:, :, rows, cols] = plane[..., a, b]

    def tap(self, r: int, s: int) -> np.ndarray:
        """(N, C, OH * WQ) contiguous-row view: tap (r, s) of every window of the wide grid."""
        g = self.g
        start = (r // g.sh) * self.wq + s // g.sw
        return self.data[r % g.sh, s % g.sw, :, :, start:start + g.oh * self.wq]

    def grid(self, dtype: np.dtype) -> np.ndarray:
        """A new (N, C, OH * WQ) wide-grid array."""
        return np.empty((self.g.n, self.g.c, self.g.oh * self.wq), dtype=dtype)

    def windows(self, grid: np.ndarray) -> np.ndarray:
        """The (N, C, OH, OW) view of a wide grid that holds the real windows."""
        return grid.reshape(self.g.n, self.g.c, self.g.oh, self.wq)[..., :self.g.ow]


def _window_starts(g: Pool2dGeometry) -> tuple[np.ndarray, np.ndarray]:
    """(OH, 1) first rows and (1, OW) first columns of the windows, in image coordinates (may be < 0)."""
    return (np.arange(g.oh) * g.sh - g.ph)[:, None], (np.arange(g.ow) * g.sw - g.pw)[None, :]


def _divisors(g: Pool2dGeometry) -> np.ndarray:
    """(OH, OW) mean divisors: window sizes clipped to the padded image, not to the image."""
    hstart, wstart = _window_starts(g)
    hend = np.minimum(hstart + g.kh, g.h + g.ph)
    wend = np.minimum(wstart + g.kw, g.w + g.pw)
    return (hend - hstart) * (wend - wstart)


def _tap_ids(g: Pool2dGeometry, wq: int) -> tuple[np.dtype, np.ndarray, np.ndarray]:
    """What max pooling needs to name its argmax by tap number t = r * kw + s rather than by pixel.

    Returns the smallest unsigned dtype that holds every tap number, the (OH * WQ,) wide-grid tap
    number of each window's first image pixel (where the running maximum starts; 0 in the junk
    columns) and the (kh * kw,) int32 table of pixel offsets r * W + s, so that argmax = hstart * W +
    wstart + table[t].
    """
    hstart, wstart = _window_starts(g)
    dtype = np.min_scalar_type(g.kh * g.kw - 1)
    first = np.zeros((g.oh, wq), dtype=dtype)
    first[:, :g.ow] = np.maximum(-hstart, 0) * g.kw + np.maximum(-wstart, 0)
    table = (np.arange(g.kh)[:, None] * g.w + np.arange(g.kw)[None, :]).reshape(-1).astype(np.int32)
    return dtype, first.reshape(-1), table


def max_pool2d_forward(x: np.ndarray, y: np.ndarray, argmax: np.ndarray, kernel: tuple[int, int],
                       stride: tuple[int, int], pad: tuple[int, int], ceil_mode: bool = True) -> None:
    """y[n, c, oh, ow] = max of x over window (oh, ow); argmax = its int32 offset h * W + w.

    x (N, C, H, W); y and argmax (N, C, OH, OW) with (OH, OW) from ``pool2d_output_size``. The first
    strict maximum in row-major window order wins; NaN is never taken (see checks.pooling).
    """
    g = checks.check_max_pool2d_forward(x, y, argmax, kernel, stride, pad, ceil_mode)
    phases = _Phases(g, x.dtype, -np.inf, x)
    tap_dtype, first, table = _tap_ids(g, phases.wq)
    best = phases.grid(x.dtype)
    tap = phases.grid(tap_dtype)  # tap number of the running maximum
    greater = phases.grid(bool)
    candidate = phases.grid(tap_dtype)
    if g.ph == 0 and g.pw == 0:
        # Tap 0 is every window's first pixel: it starts the running maximum, with NaN turned to -inf.
        np.fmax(phases.tap(0, 0), -np.inf, out=best)
        tap.fill(0)
        taps = range(1, g.kh * g.kw)
    else:
        best.fill(-np.inf)
        np.copyto(tap, first)
        taps = range(g.kh * g.kw)
    # Masked copies (np.copyto with where=) branch on every element and are slow on random data, so
    # the update is branch free: fmax never takes NaN and the running maximum is never NaN, so it
    # equals "replace where strictly greater" up to the sign of a zero maximum (fixed below). The taps
    # come in increasing order, and a strictly greater tap t (an image pixel, as padding is -inf) comes
    # after the window's first pixel, so "tap = t where greater" is max(tap, greater * t).
    for t in taps:
        value = phases.tap(*divmod(t, g.kw))
        np.greater(value, best, out=greater)
        np.fmax(best, value, out=best)
        np.multiply(greater, tap_dtype.type(t), out=candidate)
        np.maximum(tap, candidate, out=tap)
    hstart, wstart = _window_starts(g)
    np.add(phases.windows(np.take(table, tap)), (hstart * g.w + wstart).astype(np.int32), out=argmax)
    y[...] = phases.windows(best)
    # fmax may give +0 for a window whose first maximum is -0 (or the reverse): read zeros from x.
    if np.equal(best, 0, out=greater).any():
        n, c, oh, ow = np.nonzero(y == 0)
        h, w = np.divmod(argmax[n, c, oh, ow], g.w)
        y[n, c, oh, ow] = x[n, c, h, w]


def max_pool2d_backward(dy: np.ndarray, argmax: np.ndarray, dx: np.ndarray, kernel: tuple[int, int],
                        stride: tuple[int, int], pad: tuple[int, int]) -> None:
    """dx[n, c, h, w] = sum of dy[n, c, oh, ow] over the windows whose argmax is h * W + w.

    dy and argmax (N, C, OH, OW), argmax as written by :func:`max_pool2d_forward` with the same
    geometry (its values are not checked); dx (N, C, H, W). The sums run in float64 and are rounded
    once to the dtype of dx (the order of the addends does not matter then, short of huge sums).
    """
    g = checks.check_max_pool2d_backward(dy, argmax, dx, kernel, stride, pad)
    plane_start = np.arange(g.planes, dtype=np.int64)[:, None] * (g.h * g.w)
    flat = np.add(argmax.reshape(g.planes, g.oh * g.ow), plane_start).reshape(-1)
    # Windows that do not overlap give every pixel one addend at most (argmax as the forward writes
    # it): then the dtype of dx loses nothing and saves a float64 pass.
    overlap = g.kh > g.sh or g.kw > g.sw
    acc_dtype = np.float64 if overlap else dx.dtype
    sums = np.zeros(g.planes * g.h * g.w, dtype=acc_dtype)
    # Unbuffered: repeated indices all add. Same dtypes on both sides keep np.add.at on its fast path.
    np.add.at(sums, flat, dy.reshape(-1).astype(acc_dtype, copy=False))
    dx[...] = sums.reshape(dx.shape)


def mean_pool2d_forward(x: np.ndarray, y: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                        pad: tuple[int, int], ceil_mode: bool = True) -> None:
    """y[n, c, oh, ow] = (sum of x over window (oh, ow) clipped to the image) / divisor(oh, ow).

    x (N, C, H, W); y (N, C, OH, OW). The divisor is the window size clipped to the padded image
    (Caffe: zero padding counts, the part of a ceil-mode window past the padding does not). The sum
    runs in the dtype of x, taps in row-major order.
    """
    g = checks.check_mean_pool2d_forward(x, y, kernel, stride, pad, ceil_mode)
    # Here strided (OH, OW) views of a plain zero-padded canvas beat the phase layout, whose strided
    # load costs more than the short rows of the sums.
    hp = max(g.ph + g.h, (g.oh - 1) * g.sh + g.kh)
    wp = max(g.pw + g.w, (g.ow - 1) * g.sw + g.kw)
    canvas = np.zeros((g.n, g.c, hp, wp), dtype=x.dtype)
    canvas[:, :, g.ph:g.ph + g.h, g.pw:g.pw + g.w] = x
    rows, cols = (g.oh - 1) * g.sh + 1, (g.ow - 1) * g.sw + 1
    total = canvas[:, :, 0:rows:g.sh, 0:cols:g.sw].copy()
    for t in range(1, g.kh * g.kw):
        r, s = divmod(t, g.kw)
        total += canvas[:, :, r:r + rows:g.sh, s:s + cols:g.sw]
    np.divide(total, _divisors(g).astype(x.dtype), out=y)


def mean_pool2d_backward(dy: np.ndarray, dx: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                         pad: tuple[int, int], ceil_mode: bool = True) -> None:
    """dx[n, c, h, w] = sum of dy[n, c, oh, ow] / divisor(oh, ow) over the windows holding (h, w).

    dy (N, C, OH, OW), dx (N, C, H, W), the geometry of :func:`mean_pool2d_forward`.
    """
    g = checks.check_mean_pool2d_backward(dy, dx, kernel, stride, pad, ceil_mode)
    phases = _Phases(g, dy.dtype, 0.0)
    share = phases.grid(dy.dtype)
    share.reshape(g.n, g.c, g.oh, phases.wq)[..., g.ow:] = 0  # junk columns must add nothing
    np.divide(dy, _divisors(g).astype(dy.dtype), out=phases.windows(share))
    for t in range(g.kh * g.kw):
        phases.tap(*divmod(t, g.kw))[...] += share  # the windows of one tap touch distinct pixels
    phases.store(dx)


# --- channel pooling ----------------------------------------------------------------------------------


def _channel_starts(g: ChannelPoolGeometry) -> np.ndarray:
    """(1, OC, 1) first channel of each window on the unpadded axis (negative in the front padding)."""
    return (np.arange(g.oc) * g.stride - g.front)[None, :, None]


def _channel_canvas(g: ChannelPoolGeometry, dtype: np.dtype, fill: float, x: np.ndarray | None = None) -> np.ndarray:
    """(M, L, S) padded axis: x (or ``fill``) at channels [front, front + C), ``fill`` elsewhere; L covers
    the padded axis and every window."""
    length = max(g.front + g.c, (g.oc - 1) * g.stride + g.kernel)
    canvas = np.full((g.m, length, g.s), fill, dtype=dtype)
    if x is not None:
        canvas[:, g.front:g.front + g.c] = x
    return canvas


def _channel_tap(canvas: np.ndarray, g: ChannelPoolGeometry, t: int) -> np.ndarray:
    """(M, OC, S) view of tap t of every window (canvas channel oc * stride + t)."""
    return canvas[:, t:t + (g.oc - 1) * g.stride + 1:g.stride]


def _channel_axis(canvas: np.ndarray, g: ChannelPoolGeometry) -> np.ndarray:
    return canvas[:, g.front:g.front + g.c]


def max_channel_pool_forward(x: np.ndarray, y: np.ndarray, argmax: np.ndarray, kernel: int, stride: int,
                             pad: tuple[int, int]) -> None:
    """y[m, oc, s] = max of x[m, c, s] over window oc; argmax = its int32 channel index c.

    x (M, C, S); y and argmax (M, OC, S) with OC from ``channel_pool_output_size``; pad = (front,
    back). The first strict maximum along the axis wins; NaN is never taken (see checks.pooling).
    """
    g = checks.check_max_channel_pool_forward(x, y, argmax, kernel, stride, pad)
    canvas = _channel_canvas(g, x.dtype, -np.inf, x)
    starts = _channel_starts(g)
    best = np.full(g.y_shape, -np.inf, dtype=x.dtype)
    tap = np.broadcast_to(np.maximum(-starts, 0), g.y_shape).copy()  # the window's first channel
    greater = np.empty(g.y_shape, dtype=bool)
    for t in range(g.kernel):
        value = _channel_tap(canvas, g, t)
        np.greater(value, best, out=greater)  # NaN and padding (-inf) are never greater
        np.copyto(best, value, where=greater)
        np.copyto(tap, t, where=greater)
    y[...] = best
    np.add(tap, starts, out=argmax, casting="unsafe")


def max_channel_pool_backward(dy: np.ndarray, argmax: np.ndarray, dx: np.ndarray, kernel: int, stride: int,
                              pad: tuple[int, int]) -> None:
    """dx[m, c, s] = sum of dy[m, oc, s] over the windows oc that hold channel c and whose argmax is c.

    dy and argmax (M, OC, S), argmax as written by :func:`max_channel_pool_forward`; dx (M, C, S).
    """
    g = checks.check_max_channel_pool_backward(dy, argmax, dx, kernel, stride, pad)
    canvas = _channel_canvas(g, dx.dtype, 0.0)
    starts = _channel_starts(g)
    zero = dx.dtype.type(0)
    for t in range(g.kernel):
        _channel_tap(canvas, g, t)[...] += np.where(argmax == starts + t, dy, zero)
    dx[...] = _channel_axis(canvas, g)


def mean_channel_pool_forward(x: np.ndarray, y: np.ndarray, kernel: int, stride: int, pad: tuple[int, int]) -> None:
    """y[m, oc, s] = (sum of x[m, c, s] over the channels of window oc) / kernel (Mocha's divisor).

    x (M, C, S); y (M, OC, S). The sum runs in the dtype of x, channels in increasing order.
    """
    g = checks.check_mean_channel_pool_forward(x, y, kernel, stride, pad)
    canvas = _channel_canvas(g, x.dtype, 0.0, x)
    total = _channel_tap(canvas, g, 0).copy()
    for t in range(1, g.kernel):
        total += _channel_tap(canvas, g, t)
    np.divide(total, x.dtype.type(g.kernel), out=y)


def mean_channel_pool_backward(dy: np.ndarray, dx: np.ndarray, kernel: int, stride: int,
                               pad: tuple[int, int]) -> None:
    """dx[m, c, s] = sum of dy[m, oc, s] / kernel over the windows oc holding channel c.

    dy (M, OC, S), dx (M, C, S), the geometry of :func:`mean_channel_pool_forward`.
    """
    g = checks.check_mean_channel_pool_backward(dy, dx, kernel, stride, pad)
    canvas = _channel_canvas(g, dx.dtype, 0.0)
    share = dy / dy.dtype.type(g.kernel)
    for t in range(g.kernel):
        _channel_tap(canvas, g, t)[...] += share
    dx[...] = _channel_axis(canvas, g)
