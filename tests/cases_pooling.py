"""Deterministic pooling configurations, their random arrays, and a plain-loop oracle of the rules.

* :func:`pool_cases` lists :class:`PoolCase` objects by kind:

  - ``"torch"``: configurations torch's ``max_pool2d``/``avg_pool2d`` accept (``pad <= kernel / 2``),
    for cpu_ref against torch. Odd sizes, batch 1, stride > kernel, padding, non-square kernel,
    stride and pad, ceil mode with and without a partial last window, a ceil-mode window dropped
    because it would start in the padding, floor mode, global pooling, 1x1.
  - ``"edge"``: the rules torch cannot check, for cpu_ref against :func:`loop_pool`: pad above half
    the kernel, and ``pad == 0, kernel < stride`` in ceil mode where Caffe would keep an empty last
    window and we drop it.
  - ``"tiny"``: the features of both lists at shapes small enough for Triton's interpreter.

* :func:`random_cases` draws further valid configurations from a seed (``torch_ok`` ones or any).
* :func:`pool_arrays` draws seeded x and dy for a case and a dtype.
* :func:`run_all` runs the four ops of a case on one backend (``support.CPU`` or ``support.TRITON``).
* :func:`loop_output_size`, :func:`loop_pool`, :func:`loop_max_backward`,
  :func:`loop_mean_backward` restate the rules of :mod:`mocha_triton.checks.pooling` with plain
  Python loops over single pixels: slow, obviously correct, for tiny inputs only.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from support import call_op


def loop_output_size(size: int, k: int, s: int, p: int, ceil_mode: bool) -> int:
    """Windows along one dimension: ceil or floor of (size + 2p - k) / s, plus one; in ceil mode the
    last window is dropped when it would start at or past size + p (inside the padding or beyond)."""
    span = size + 2 * p - k
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


@dataclass(frozen=True)
class PoolCase:
    """One pooling: x (n, c, h, w), kernel (kh, kw), stride (sh, sw), pad (ph, pw), ceil or floor."""

    n: int
    c: int
    h: int
    w: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    ceil_mode: bool = True

    def __post_init__(self) -> None:
        for k, p, size in zip(self.kernel, self.pad, (self.h, self.w), strict=True):
            assert 0 <= p < k <= size + 2 * p, self

    @property
    def id(self) -> str:
        """A readable pytest id, e.g. ``n2c3x7x9-k3x3-s2x2-p1x1-ceil``."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.pad
        mode = "ceil" if self.ceil_mode else "floor"
        return f"n{self.n}c{self.c}x{self.h}x{self.w}-k{kh}x{kw}-s{sh}x{sw}-p{ph}x{pw}-{mode}"

    @property
    def oh(self) -> int:
        return loop_output_size(self.h, self.kernel[0], self.stride[0], self.pad[0], self.ceil_mode)

    @property
    def ow(self) -> int:
        return loop_output_size(self.w, self.kernel[1], self.stride[1], self.pad[1], self.ceil_mode)

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.oh, self.ow)

    @property
    def torch_ok(self) -> bool:
        """torch's pooling accepts the case (it requires pad <= kernel / 2)."""
        return all(2 * p <= k for k, p in zip(self.kernel, self.pad, strict=True))

    @property
    def window(self) -> int:
        """Taps per window: the longest sum of the mean forward."""
        return self.kernel[0] * self.kernel[1]

    @property
    def overlap(self) -> int:
        """Most windows holding one pixel: the longest sum of either backward."""
        return math.prod(-(-k // s) for k, s in zip(self.kernel, self.stride, strict=True))

    def params(self, with_mode: bool = True) -> dict:
        """kernel, stride, pad (and ceil_mode) as keyword arguments of the ops."""
        params = dict(kernel=self.kernel, stride=self.stride, pad=self.pad)
        if with_mode:
            params["ceil_mode"] = self.ceil_mode
        return params


def _case(n, c, h, w, k, stride=1, pad=0, ceil_mode=True) -> PoolCase:
    """Shorthand: ints for square kernel/stride/pad, or (h, w) pairs."""
    two = lambda v: (v, v) if isinstance(v, int) else tuple(v)
    return PoolCase(n, c, h, w, two(k), two(stride), two(pad), ceil_mode)


_TORCH = [
    _case(2, 3, 7, 9, 3, 2, 1),                        # odd sizes, padding, ceil
    _case(1, 2, 5, 5, 2, 2),                           # batch 1, partial last window (ceil)
    _case(2, 2, 6, 6, 2, 2),                           # exact tiling (LeNet-style 2x2/2)
    _case(1, 2, 5, 5, 2, 2, 1),                        # ceil window dropped: it would start in the padding
    _case(2, 2, 8, 7, 3, 3, 0, ceil_mode=False),       # floor mode
    _case(2, 1, 10, 11, 3, 2, 1, ceil_mode=False),     # floor mode with padding
    _case(1, 3, 9, 5, (3, 2), (2, 1), (1, 0)),         # non-square kernel, stride and pad
    _case(2, 1, 4, 6, (4, 2), (1, 3), (2, 1)),         # pad == kernel / 2, stride > kernel in w
    _case(3, 2, 7, 7, 2, 3),                           # stride > kernel
    _case(1, 2, 9, 11, 2, 3, 1),                       # stride > kernel with padding
    _case(2, 3, 5, 7, (5, 7)),                         # global pooling
    _case(1, 2, 16, 16, 3, 2),                         # CIFAR pool1 (3x3/2, ceil)
    _case(2, 2, 1, 1, 1),                              # 1x1 image
    _case(1, 1, 6, 1, (3, 1), (2, 1)),                 # one column
]

_EDGE = [
    _case(1, 2, 5, 6, 3, 2, 2),                        # pad > kernel / 2
    _case(2, 1, 4, 4, (2, 3), (3, 2), (1, 2)),         # pad > kernel / 2, non-square
    _case(1, 2, 6, 6, 2, 3),                           # pad 0, kernel < stride: empty last window dropped
    _case(1, 1, 7, 5, 3, 2, 2, ceil_mode=False),       # pad > kernel / 2, floor mode
    _case(1, 1, 2, 3, (3, 4), 1, (2, 3)),              # kernel larger than the image, most of it padding
]

_TINY = [
    _case(2, 3, 7, 9, 3, 2, 1),                        # odd sizes, padding, ceil
    _case(1, 2, 5, 5, 2, 2),                           # batch 1, partial last window
    _case(1, 2, 5, 5, 2, 2, 1),                        # dropped ceil window
    _case(2, 2, 8, 7, 3, 3, 0, ceil_mode=False),       # floor mode
    _case(1, 3, 9, 5, (3, 2), (2, 1), (1, 0)),         # non-square
    _case(3, 2, 7, 7, 2, 3),                           # stride > kernel
    _case(2, 3, 5, 7, (5, 7)),                         # global pooling
    _case(1, 2, 5, 6, 3, 2, 2),                        # pad > kernel / 2
    _case(1, 2, 6, 6, 2, 3),                           # pad 0, kernel < stride, ceil
    _case(1, 2, 3, 3, 3, 1, 1),                        # "same" 3x3 stride 1: many overlaps
    _case(1, 2, 33, 35, 2, 1),                         # larger than one 32x32 interpreter tile
]

_KINDS = {"torch": _TORCH, "edge": _EDGE, "tiny": _TINY}


def pool_cases(kind: str) -> list[PoolCase]:
    """The cases of one kind: "torch", "edge" or "tiny" (see the module docstring)."""
    if kind not in _KINDS:
        raise ValueError(f"unknown case kind {kind!r}; known: {tuple(_KINDS)}")
    return list(_KINDS[kind])


def random_cases(seed: int, count: int, max_size: int = 12, torch_ok: bool = False) -> list[PoolCase]:
    """``count`` valid random cases with images up to ``max_size``; torch-compatible pads if asked."""
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        h, w = (int(v) for v in rng.integers(1, max_size + 1, size=2))
        kernel, pad = [], []
        for size in (h, w):
            k = int(rng.integers(1, min(size + 2, 6) + 1))
            top = k // 2 if torch_ok else k - 1
            lowest = max(0, -(-(k - size) // 2))  # the kernel must fit the padded image
            if lowest > top:
                k, lowest = 1, 0
                top = 0
            kernel.append(k)
            pad.append(int(rng.integers(lowest, top + 1)))
        stride = tuple(int(v) for v in rng.integers(1, 5, size=2))
        n, c = (int(v) for v in rng.integers(1, 4, size=2))
        cases.append(PoolCase(n, c, h, w, tuple(kernel), stride, tuple(pad), bool(rng.integers(0, 2))))
    return cases


def pool_arrays(case: PoolCase, dtype: str | np.dtype, seed: int = 0, ties: bool = False
                ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded x (standard normal, or small integers full of ties) and dy (standard normal).

    The draw depends only on the case, the dtype, ``seed`` and ``ties`` (not on Python's hash seed).
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng([zlib.crc32(case.id.encode()), zlib.crc32(dtype.name.encode()), seed, ties])
    x = rng.integers(-1, 2, size=case.x_shape) if ties else rng.standard_normal(case.x_shape)
    dy = rng.standard_normal(case.y_shape)
    return x.astype(dtype), dy.astype(dtype)


def run_all(impl, case: PoolCase, x: np.ndarray, dy: np.ndarray) -> dict[str, np.ndarray]:
    """The four ops of one case on ``impl``; max backward uses the argmax of max forward."""
    y = np.empty(case.y_shape, x.dtype)
    fwd = call_op(impl, "max_pool2d_forward", x=x, y=y, argmax=np.empty(case.y_shape, np.int32), **case.params())
    out = {"max": fwd["y"], "argmax": fwd["argmax"]}
    out["max_dx"] = call_op(impl, "max_pool2d_backward", dy=dy, argmax=fwd["argmax"], dx=np.empty_like(x),
                            **case.params(with_mode=False))["dx"]
    out["mean"] = call_op(impl, "mean_pool2d_forward", x=x, y=y, **case.params())["y"]
    out["mean_dx"] = call_op(impl, "mean_pool2d_backward", dy=dy, dx=np.empty_like(x), **case.params())["dx"]
    return out


def _windows(case: PoolCase):
    """(oh, ow, divisor, pixels of the window inside the image in row-major order) for every output."""
    (kh, kw), (sh, sw), (ph, pw) = case.kernel, case.stride, case.pad
    for oh in range(case.oh):
        for ow in range(case.ow):
            hstart, wstart = oh * sh - ph, ow * sw - pw
            hend, wend = min(hstart + kh, case.h + ph), min(wstart + kw, case.w + pw)
            divisor = (hend - hstart) * (wend - wstart)
            pixels = [(h, w) for h in range(max(hstart, 0), min(hend, case.h))
                      for w in range(max(wstart, 0), min(wend, case.w))]
            yield oh, ow, divisor, pixels


def loop_pool(case: PoolCase, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(max y, argmax, mean y) of ``x`` by the rules, one pixel at a time, in float64."""
    y_max = np.empty(case.y_shape)
    argmax = np.empty(case.y_shape, np.int32)
    y_mean = np.empty(case.y_shape)
    for n in range(case.n):
        for c in range(case.c):
            for oh, ow, divisor, pixels in _windows(case):
                best, where = -np.inf, pixels[0]
                total = 0.0
                for h, w in pixels:
                    value = float(x[n, c, h, w])
                    if value > best:
                        best, where = value, (h, w)
                    total += value
                y_max[n, c, oh, ow] = best
                argmax[n, c, oh, ow] = where[0] * case.w + where[1]
                y_mean[n, c, oh, ow] = total / divisor
    return y_max, argmax, y_mean


def loop_max_backward(case: PoolCase, dy: np.ndarray, argmax: np.ndarray) -> np.ndarray:
    """dx: every dy added to the pixel its argmax names, in float64."""
    dx = np.zeros(case.x_shape)
    for n, c, oh, ow in np.ndindex(*case.y_shape):
        h, w = divmod(int(argmax[n, c, oh, ow]), case.w)
        dx[n, c, h, w] += dy[n, c, oh, ow]
    return dx


def loop_mean_backward(case: PoolCase, dy: np.ndarray) -> np.ndarray:
    """dx: every dy / divisor added to each pixel of its window, in float64."""
    dx = np.zeros(case.x_shape)
    for n in range(case.n):
        for c in range(case.c):
            for oh, ow, divisor, pixels in _windows(case):
                for h, w in pixels:
                    dx[n, c, h, w] += dy[n, c, oh, ow] / divisor
    return dx
