"""Channel-pooling configurations, their seeded arrays, a plain-loop oracle of the rules, and a runner.

* :class:`ChannelCase` is one pooling of an ``(M, C, S)`` view: kernel, stride, ``(front, back)`` pad.
* :func:`channel_cases` lists cases by kind: ``"reference"`` for cpu_ref against torch (Mocha's own
  test configuration, asymmetric padding, stride above the kernel, a dropped last window, a window as
  long as the padded axis, kernel 1, one channel, ``S == 1``, an LRN-style window, the divisor example
  of the layer's docstring), ``"tiny"`` for Triton's interpreter (the same features, plus a tile
  boundary: rows of more than one tile).
* :func:`random_cases` draws further valid configurations from a seed.
* :func:`loop_output_size`, :func:`loop_forward`, :func:`loop_backward` restate the rules of
  :mod:`mocha_triton.checks.pooling` with plain Python loops over single elements: slow, obviously
  correct, for tiny inputs only.
* :func:`run_all` runs the four ops of a case on one backend (``support.CPU`` or ``support.TRITON``).
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass

import numpy as np

from support import call_op


def loop_output_size(c: int, k: int, s: int, front: int, back: int) -> int:
    """ceil((C + front + back - k) / s) + 1 windows, one fewer when the last starts at or past C + front."""
    out = math.ceil((c + front + back - k) / s) + 1
    if (out - 1) * s >= c + front:
        out -= 1
    return out


@dataclass(frozen=True)
class ChannelCase:
    """x (m, c, s) pooled along c with ``kernel``, ``stride`` and ``pad`` = (front, back)."""

    m: int
    c: int
    s: int
    kernel: int
    stride: int = 1
    pad: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        assert all(0 <= p < self.kernel for p in self.pad) and self.kernel <= self.c + sum(self.pad), self

    @property
    def id(self) -> str:
        return f"m{self.m}c{self.c}s{self.s}-k{self.kernel}-st{self.stride}-p{self.pad[0]}x{self.pad[1]}"

    @property
    def oc(self) -> int:
        return loop_output_size(self.c, self.kernel, self.stride, *self.pad)

    @property
    def x_shape(self) -> tuple[int, int, int]:
        return (self.m, self.c, self.s)

    @property
    def y_shape(self) -> tuple[int, int, int]:
        return (self.m, self.oc, self.s)

    @property
    def overlap(self) -> int:
        """The most windows that hold one channel (the length of a backward sum)."""
        return -(-self.kernel // self.stride)

    def window(self, oc: int) -> range:
        """The channels of window oc."""
        start = oc * self.stride - self.pad[0]
        return range(max(start, 0), min(start + self.kernel, self.c))


def channel_cases(kind: str) -> list[ChannelCase]:
    if kind == "reference":
        return [
            ChannelCase(2, 9, 5, 3, 2, (2, 2)),  # Mocha's test: kernel 3, stride 2, pad (2, 2)
            ChannelCase(3, 8, 4, 4, 1, (1, 2)),  # asymmetric, as LRN centres an even window
            ChannelCase(1, 7, 3, 3, 2, (0, 2)),
            ChannelCase(2, 6, 1, 2, 3, (1, 0)),  # stride > kernel, S == 1 (the last axis pooled)
            ChannelCase(2, 4, 3, 2, 2, (0, 1)),  # the last window would start in the padding: dropped
            ChannelCase(2, 5, 2, 3, 3),  # a ceil-mode last window past the axis: mean still divides by 3
            ChannelCase(1, 6, 4, 8, 1, (1, 1)),  # the window spans the whole padded axis
            ChannelCase(4, 5, 3, 1),  # kernel 1: the identity
            ChannelCase(3, 1, 4, 1),  # one channel
            ChannelCase(2, 1, 3, 2, 1, (1, 1)),  # one channel, two windows
            ChannelCase(2, 10, 6, 5, 1, (2, 2)),  # LRN's across-channel window
        ]
    if kind == "tiny":
        return [
            ChannelCase(2, 9, 5, 3, 2, (2, 2)),
            ChannelCase(2, 8, 3, 4, 1, (1, 2)),
            ChannelCase(2, 6, 1, 2, 3, (1, 0)),
            ChannelCase(2, 4, 3, 2, 2, (0, 1)),
            ChannelCase(2, 5, 2, 3, 3),
            ChannelCase(1, 6, 4, 8, 1, (1, 1)),
            ChannelCase(3, 1, 4, 1),
            ChannelCase(2100, 7, 1, 3, 2, (1, 1)),  # S == 1 with more rows than one tile holds
            ChannelCase(2, 3, 9000, 2, 1, (1, 0)),  # rows longer than one tile
        ]
    raise ValueError(kind)


def random_cases(seed: int, count: int) -> list[ChannelCase]:
    """``count`` valid cases drawn from ``seed``: small sizes, any kernel, stride and padding."""
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        c, k = rng.randint(1, 9), rng.randint(1, 6)
        pad = (rng.randint(0, k - 1), rng.randint(0, k - 1))
        if k > c + sum(pad):
            continue
        cases.append(ChannelCase(rng.randint(1, 3), c, rng.randint(1, 5), k, rng.randint(1, 4), pad))
    return cases


def channel_arrays(case: ChannelCase, dtype: str, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Seeded x (normal, or small integers with many ties when ``ties``) and dy for a case."""
    rng = np.random.default_rng(zlib.crc32(f"{case.id}-{dtype}-{ties}".encode()))
    x = rng.integers(-2, 3, case.x_shape) if ties else rng.standard_normal(case.x_shape)
    return x.astype(dtype), rng.standard_normal(case.y_shape).astype(dtype)


def loop_forward(case: ChannelCase, x: np.ndarray) -> dict[str, np.ndarray]:
    """Max (first strict maximum from -inf, starting at the window's first channel), its argmax, and the
    mean (window sum / kernel), one element at a time, in float64."""
    y_max = np.empty(case.y_shape)
    argmax = np.empty(case.y_shape, np.int32)
    y_mean = np.empty(case.y_shape)
    for m in range(case.m):
        for oc in range(case.oc):
            channels = case.window(oc)
            for s in range(case.s):
                best, index = -np.inf, channels[0]
                for c in channels:
                    if x[m, c, s] > best:
                        best, index = x[m, c, s], c
                y_max[m, oc, s], argmax[m, oc, s] = best, index
                y_mean[m, oc, s] = sum(float(x[m, c, s]) for c in channels) / case.kernel
    return {"max": y_max, "argmax": argmax, "mean": y_mean}


def loop_backward(case: ChannelCase, dy: np.ndarray, argmax: np.ndarray) -> dict[str, np.ndarray]:
    """The max gradient (dy to the argmax) and the mean gradient (dy / kernel to every window channel)."""
    max_dx = np.zeros(case.x_shape)
    mean_dx = np.zeros(case.x_shape)
    for m in range(case.m):
        for oc in range(case.oc):
            for s in range(case.s):
                max_dx[m, argmax[m, oc, s], s] += dy[m, oc, s]
                for c in case.window(oc):
                    mean_dx[m, c, s] += dy[m, oc, s] / case.kernel
    return {"max_dx": max_dx, "mean_dx": mean_dx}


def run_all(impl, case: ChannelCase, x: np.ndarray, dy: np.ndarray) -> dict[str, np.ndarray]:
    """The four channel-pooling ops of ``case`` on ``impl``: max, argmax, max_dx, mean, mean_dx."""
    window = {"kernel": case.kernel, "stride": case.stride, "pad": case.pad}
    y = np.empty(case.y_shape, x.dtype)
    fwd = call_op(impl, "max_channel_pool_forward", x=x, y=y, argmax=np.empty(case.y_shape, np.int32), **window)
    max_dx = call_op(impl, "max_channel_pool_backward", dy=dy, argmax=fwd["argmax"], dx=np.empty_like(x),
                     **window)["dx"]
    mean = call_op(impl, "mean_channel_pool_forward", x=x, y=y, **window)["y"]
    mean_dx = call_op(impl, "mean_channel_pool_backward", dy=dy, dx=np.empty_like(x), **window)["dx"]
    return {"max": fwd["y"], "argmax": fwd["argmax"], "max_dx": max_dx, "mean": mean, "mean_dx": mean_dx}
