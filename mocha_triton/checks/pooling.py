"""Argument checks and output sizes for the pooling family; shared by cpu_ref.pooling and kernels.pooling.

The rules are Caffe's, written down once here for both backends (input ``(N, C, H, W)``, kernel
``(kh, kw)``, stride ``(sh, sw)``, symmetric padding ``(ph, pw)``; shown for the height, the width is
alike):

* **Output size** (:func:`pool2d_output_size`). Ceil mode (Caffe's default):
  ``OH = ceil((H + 2 ph - kh) / sh) + 1``, then ``OH -= 1`` if ``(OH - 1) * sh >= H + ph``, i.e. a
  last window that would start in the bottom padding (or past it) is dropped. Floor mode:
  ``OH = (H + 2 ph - kh) // sh + 1``. Caffe applies the drop only when ``pad > 0``; with ``pad == 0``
  and ``kernel < stride`` it can then keep a last window that starts at or past the end of the image:
  a window without pixels, for which Caffe's max outputs ``-FLT_MAX`` and its mean divides by a
  window size <= 0. We apply the drop always (as PyTorch does), so every window holds at least one
  pixel of the image.
* **Arguments**: ``kernel >= 1``, ``stride >= 1``, ``0 <= pad < kernel`` (Caffe's CHECK) and
  ``kernel <= H + 2 pad``; the image is not empty and one ``(n, c)`` plane has fewer than 2**31
  pixels (the argmax is an int32 offset ``h * W + w`` inside the plane).
* **Window** of output ``(oh, ow)``: ``hstart = oh * sh - ph``, ``hend = min(hstart + kh, H + ph)``
  (the window clipped to the padded image); the mean divides by ``(hend - hstart) * (wend - wstart)``
  computed *before* clipping to the image, so zero padding counts but the part of a ceil-mode window
  past the padding does not. Then ``hstart = max(hstart, 0)``, ``hend = min(hend, H)`` delimit the
  pixels that are summed (mean) or compared (max).
* **Max**: the first strict maximum in row-major window order (Caffe's ``>``); the running maximum
  starts at ``-inf``, pointing at the window's first pixel. NaN never compares greater, so it is skipped (and an
  all-NaN or all-``-inf`` window gives ``-inf`` at its first pixel). ``argmax`` is the int32 flat
  index ``h * W + w`` of the chosen pixel inside its plane. The backward adds ``dy`` of every window
  into the pixel its argmax names.
* **Global pooling** is ``kernel = (H, W)``, ``stride = 1``, ``pad = 0``: no special op.

``max_pool2d_backward`` takes no ``ceil_mode``: its output size is read from ``dy``, which must have
the ceil-mode or the floor-mode size of ``dx``.

**Channel pooling** (Mocha's ChannelPoolingLayer: 1-D pooling along one axis) works on a 3-D view
``(M, C, S)`` of the blob, the pooled axis in the middle (``M`` the product of the axes before it, ``S``
of those after it), with an int ``kernel`` and ``stride`` and a ``(front, back)`` padding pair:

* **Output size** (:func:`channel_pool_output_size`): ``OC = ceil((C + front + back - kernel) /
  stride) + 1``, then ``OC -= 1`` if ``(OC - 1) * stride >= C + front`` (Mocha's rule, always applied).
* **Window** of output ``oc``: ``start = oc * stride - front``, channels ``[max(start, 0),
  min(start + kernel, C))``. Max: the first strict maximum, as for 2-D pooling (a running maximum
  from ``-inf`` pointing at the window's first channel; NaN is skipped); ``argmax`` is the int32
  channel index ``c``. Mean: the sum over the window's channels divided by ``kernel``, always (Mocha:
  padding and the part of a last window past the padding count as zeros).
* **Arguments**: ``kernel >= 1``, ``stride >= 1``, ``0 <= front, back < kernel`` and ``kernel <= C +
  front + back``, so that every window holds at least one channel (Mocha accepts any padding, and
  with ``front >= kernel`` or ``back >= kernel`` reads outside the blob for windows of padding only);
  ``C >= 1`` and below 2**31 (int32 argmax).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    as_int,
    dtype_name,
    pair,
    require_array,
    require_float,
    require_ndim,
    require_positive_int,
    require_same_dtype,
    require_shape,
    shape_of,
)

MAX_PLANE = 2**31  # pixels of one (n, c) plane must be below this: argmax offsets are int32


@dataclass(frozen=True)
class Pool2dGeometry:
    """Every size of one 2-D pooling: input (n, c, h, w), kernel (kh, kw), stride (sh, sw), padding
    (ph, pw), output (n, c, oh, ow)."""

    n: int
    c: int
    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    oh: int
    ow: int

    @property
    def planes(self) -> int:
        """Number of (n, c) planes, pooled independently."""
        return self.n * self.c

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.oh, self.ow)


def _extent(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """Number of windows along one dimension (see the module docstring)."""
    if not ceil_mode:
        return (size + 2 * p - k) // s + 1
    out = -(-(size + 2 * p - k) // s) + 1  # ceil division of a non-negative numerator
    if (out - 1) * s >= size + p:  # the last window would start in the padding: drop it
        out -= 1
    return out


def _window(op: str, kernel: Any, stride: Any, pad: Any) -> tuple[tuple[int, int], tuple[int, int],
                                                                  tuple[int, int]]:
    """Normalise kernel, stride and pad to (h, w) pairs and check ``pad < kernel``."""
    k = pair(op, "kernel", kernel, 1)
    s = pair(op, "stride", stride, 1)
    p = pair(op, "pad", pad, 0)
    if p[0] >= k[0] or p[1] >= k[1]:
        raise ValueError(f"{op}: pad {p} must be smaller than kernel {k} in both dimensions")
    return k, s, p


def _require_bool(op: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a bool, got {value!r}")
    return value


def _require_image(op: str, name: str, h: int, w: int, k: tuple[int, int], p: tuple[int, int]) -> None:
    """The image is non-empty, its planes fit int32 offsets, and the kernel fits the padded image."""
    if h < 1 or w < 1:
        raise ValueError(f"{op}: {name} has an empty image {(h, w)}")
    if h * w >= MAX_PLANE:
        raise ValueError(f"{op}: {name} planes of {h}x{w} pixels are too large for int32 argmax offsets")
    if k[0] > h + 2 * p[0] or k[1] > w + 2 * p[1]:
        raise ValueError(f"{op}: kernel {k} is larger than the padded input {(h + 2 * p[0], w + 2 * p[1])}")


def pool2d_output_size(h: int, w: int, kernel: Any, stride: Any, pad: Any,
                       ceil_mode: bool = True) -> tuple[int, int]:
    """(OH, OW) of pooling an ``h x w`` image (Caffe's rule, see the module docstring).

    ``kernel``, ``stride`` and ``pad`` are ints or (h, w) pairs. Raises like the ops on bad values.
    """
    op = "pool2d_output_size"
    k, s, p = _window(op, kernel, stride, pad)
    ceil_mode = _require_bool(op, "ceil_mode", ceil_mode)
    _require_image(op, "the input", int(h), int(w), k, p)
    return _extent(int(h), k[0], s[0], p[0], ceil_mode), _extent(int(w), k[1], s[1], p[1], ceil_mode)


def _require_int32(op: str, name: str, a: Any) -> None:
    require_array(op, name, a)
    dt = dtype_name(a)
    if dt != "int32":
        raise TypeError(f"{op}: {name} has dtype {dt}; expected int32")


def _geometry(op: str, x_name: str, x_shape: tuple[int, ...], kernel: Any, stride: Any, pad: Any,
              ceil_mode: bool) -> Pool2dGeometry:
    k, s, p = _window(op, kernel, stride, pad)
    ceil_mode = _require_bool(op, "ceil_mode", ceil_mode)
    n, c, h, w = x_shape
    _require_image(op, x_name, h, w, k, p)
    oh = _extent(h, k[0], s[0], p[0], ceil_mode)
    ow = _extent(w, k[1], s[1], p[1], ceil_mode)
    return Pool2dGeometry(n, c, h, w, k[0], k[1], s[0], s[1], p[0], p[1], oh, ow)


def check_max_pool2d_forward(x: Any, y: Any, argmax: Any, kernel: Any, stride: Any, pad: Any,
                             ceil_mode: bool = True, allowed: tuple[str, ...] = FLOAT_DTYPES) -> Pool2dGeometry:
    op = "max_pool2d_forward"
    require_float(op, "x", x, allowed)
    require_float(op, "y", y, allowed)
    require_same_dtype(op, {"x": x, "y": y})
    _require_int32(op, "argmax", argmax)
    require_ndim(op, "x", x, 4)
    g = _geometry(op, "x", shape_of(x), kernel, stride, pad, ceil_mode)
    require_shape(op, "y", y, g.y_shape)
    require_shape(op, "argmax", argmax, g.y_shape)
    return g


def check_max_pool2d_backward(dy: Any, argmax: Any, dx: Any, kernel: Any, stride: Any, pad: Any,
                              allowed: tuple[str, ...] = FLOAT_DTYPES) -> Pool2dGeometry:
    """The output size is that of ``dy``: the ceil-mode or the floor-mode size of ``dx``."""
    op = "max_pool2d_backward"
    require_float(op, "dy", dy, allowed)
    require_float(op, "dx", dx, allowed)
    require_same_dtype(op, {"dy": dy, "dx": dx})
    _require_int32(op, "argmax", argmax)
    require_ndim(op, "dx", dx, 4)
    ceil = _geometry(op, "dx", shape_of(dx), kernel, stride, pad, True)
    floor = _geometry(op, "dx", shape_of(dx), kernel, stride, pad, False)
    if shape_of(dy) not in (ceil.y_shape, floor.y_shape):
        raise ValueError(f"{op}: dy has shape {shape_of(dy)}, expected {ceil.y_shape} (ceil mode) or "
                         f"{floor.y_shape} (floor mode)")
    require_shape(op, "argmax", argmax, shape_of(dy))
    return ceil if shape_of(dy) == ceil.y_shape else floor


def check_mean_pool2d_forward(x: Any, y: Any, kernel: Any, stride: Any, pad: Any, ceil_mode: bool = True,
                              allowed: tuple[str, ...] = FLOAT_DTYPES) -> Pool2dGeometry:
    op = "mean_pool2d_forward"
    require_float(op, "x", x, allowed)
    require_float(op, "y", y, allowed)
    require_same_dtype(op, {"x": x, "y": y})
    require_ndim(op, "x", x, 4)
    g = _geometry(op, "x", shape_of(x), kernel, stride, pad, ceil_mode)
    require_shape(op, "y", y, g.y_shape)
    return g


def check_mean_pool2d_backward(dy: Any, dx: Any, kernel: Any, stride: Any, pad: Any, ceil_mode: bool = True,
                               allowed: tuple[str, ...] = FLOAT_DTYPES) -> Pool2dGeometry:
    op = "mean_pool2d_backward"
    require_float(op, "dy", dy, allowed)
    require_float(op, "dx", dx, allowed)
    require_same_dtype(op, {"dy": dy, "dx": dx})
    require_ndim(op, "dx", dx, 4)
    g = _geometry(op, "dx", shape_of(dx), kernel, stride, pad, ceil_mode)
    require_shape(op, "dy", dy, g.y_shape)
    return g



# --- channel pooling: 1-D pooling along the middle axis of an (M, C, S) view --------------------------


@dataclass(frozen=True)
class ChannelPoolGeometry:
    """Every size of one channel pooling: input (m, c, s), kernel, stride, padding (front, back),
    output (m, oc, s)."""

    m: int
    c: int
    s: int
    kernel: int
    stride: int
    front: int
    back: int
    oc: int

    @property
    def x_shape(self) -> tuple[int, int, int]:
        return (self.m, self.c, self.s)

    @property
    def y_shape(self) -> tuple[int, int, int]:
        return (self.m, self.oc, self.s)


def _channel_window(op: str, c: int, kernel: Any, stride: Any, pad: Any) -> tuple[int, int, int, int, int]:
    """(kernel, stride, front, back, OC) for C channels; raises on bad values (module docstring)."""
    k = require_positive_int(op, "kernel", kernel)
    s = require_positive_int(op, "stride", stride)
    ends = (pad, pad) if as_int(pad) is not None else pad
    try:
        front, back = (as_int(v) for v in ends)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: pad must be an int or a pair (front, back) of ints, got {pad!r}") from None
    if front is None or back is None:
        raise TypeError(f"{op}: pad must hold ints, got {pad!r}")
    if not (0 <= front < k and 0 <= back < k):
        raise ValueError(f"{op}: pad {(front, back)} must be >= 0 and smaller than kernel {k} at both ends")
    if c < 1:
        raise ValueError(f"{op}: the pooled axis is empty")
    if c >= MAX_PLANE:
        raise ValueError(f"{op}: {c} channels are too many for int32 argmax indices")
    if k > c + front + back:
        raise ValueError(f"{op}: kernel {k} is larger than the padded axis {c + front + back}")
    out = -(-(c + front + back - k) // s) + 1
    if (out - 1) * s >= c + front:  # the last window would start in the back padding: drop it
        out -= 1
    return k, s, front, back, out


def channel_pool_output_size(c: int, kernel: Any, stride: Any, pad: Any) -> int:
    """OC, the pooled length of an axis of ``c`` channels (Mocha's rule, see the module docstring).

    ``kernel`` and ``stride`` are ints, ``pad`` an int or a ``(front, back)`` pair. Raises like the ops
    on bad values.
    """
    return _channel_window("channel_pool_output_size", int(c), kernel, stride, pad)[4]


def _channel_geometry(op: str, x_name: str, x: Any, kernel: Any, stride: Any, pad: Any) -> ChannelPoolGeometry:
    require_ndim(op, x_name, x, 3)
    m, c, s = shape_of(x)
    k, st, front, back, oc = _channel_window(op, c, kernel, stride, pad)
    return ChannelPoolGeometry(m, c, s, k, st, front, back, oc)


def check_max_channel_pool_forward(x: Any, y: Any, argmax: Any, kernel: Any, stride: Any, pad: Any,
                                   allowed: tuple[str, ...] = FLOAT_DTYPES) -> ChannelPoolGeometry:
    op = "max_channel_pool_forward"
    require_float(op, "x", x, allowed)
    require_float(op, "y", y, allowed)
    require_same_dtype(op, {"x": x, "y": y})
    _require_int32(op, "argmax", argmax)
    g = _channel_geometry(op, "x", x, kernel, stride, pad)
    require_shape(op, "y", y, g.y_shape)
    require_shape(op, "argmax", argmax, g.y_shape)
    return g


def check_max_channel_pool_backward(dy: Any, argmax: Any, dx: Any, kernel: Any, stride: Any, pad: Any,
                                    allowed: tuple[str, ...] = FLOAT_DTYPES) -> ChannelPoolGeometry:
    op = "max_channel_pool_backward"
    require_float(op, "dy", dy, allowed)
    require_float(op, "dx", dx, allowed)
    require_same_dtype(op, {"dy": dy, "dx": dx})
    _require_int32(op, "argmax", argmax)
    g = _channel_geometry(op, "dx", dx, kernel, stride, pad)
    require_shape(op, "dy", dy, g.y_shape)
    require_shape(op, "argmax", argmax, g.y_shape)
    return g


def check_mean_channel_pool_forward(x: Any, y: Any, kernel: Any, stride: Any, pad: Any,
                                    allowed: tuple[str, ...] = FLOAT_DTYPES) -> ChannelPoolGeometry:
    op = "mean_channel_pool_forward"
    require_float(op, "x", x, allowed)
    require_float(op, "y", y, allowed)
    require_same_dtype(op, {"x": x, "y": y})
    g = _channel_geometry(op, "x", x, kernel, stride, pad)
    require_shape(op, "y", y, g.y_shape)
    return g


def check_mean_channel_pool_backward(dy: Any, dx: Any, kernel: Any, stride: Any, pad: Any,
                                     allowed: tuple[str, ...] = FLOAT_DTYPES) -> ChannelPoolGeometry:
    op = "mean_channel_pool_backward"
    require_float(op, "dy", dy, allowed)
    require_float(op, "dx", dx, allowed)
    require_same_dtype(op, {"dy": dy, "dx": dx})
    g = _channel_geometry(op, "dx", dx, kernel, stride, pad)
    require_shape(op, "dy", dy, g.y_shape)
    return g
