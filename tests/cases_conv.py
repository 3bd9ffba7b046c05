"""Deterministic convolution configurations and their random arrays, shared by the conv tests.

* :func:`conv_cases` lists :class:`ConvCase` objects by kind:

  - ``"reference"``: for cpu_ref against torch. Odd sizes, batch 1, a stride larger than the kernel,
    input rows the last window never reaches, padding (also wider than half the kernel), groups and
    depthwise (with and without a channel multiplier), non-square kernels and strides, 1x1 at stride 1
    and 2 (and with padding), a kernel as large as the padded input, C = 1, F = 1, every neuron of
    :data:`mocha_triton.contract.NEURONS`, with and without bias.
  - ``"tiny"``: the same features at shapes small enough for Triton's interpreter (about a dozen cases).
  - ``"lenet"``: the two convolutions of Mocha's LeNet example at batch 64 (for benchmarks).

* :func:`conv_arrays` draws seeded x, w, b, dy for a case and a dtype. Filters are scaled by
  1/sqrt(fan-in), so pre-activations are O(1) and the ``exp`` neuron stays tame.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from mocha_triton.contract import NEURONS


@dataclass(frozen=True)
class ConvCase:
    """One convolution: x (n, c, h, w), w (f, c // groups, kh, kw), stride (sh, sw), pad (ph, pw)."""

    n: int
    c: int
    h: int
    w: int
    f: int
    kh: int
    kw: int
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    groups: int = 1
    has_bias: bool = True
    neuron: str = "identity"

    def __post_init__(self) -> None:
        assert self.neuron in NEURONS, self.neuron
        assert self.c % self.groups == 0 and self.f % self.groups == 0, self
        assert self.oh >= 1 and self.ow >= 1, self

    @property
    def id(self) -> str:
        """A readable pytest id, e.g. ``n2c3x11x13-f5k3x3-s1x1-p1x1-g1-b-relu``."""
        bias = "b" if self.has_bias else "nob"
        return (f"n{self.n}c{self.c}x{self.h}x{self.w}-f{self.f}k{self.kh}x{self.kw}"
                f"-s{self.stride[0]}x{self.stride[1]}-p{self.pad[0]}x{self.pad[1]}-g{self.groups}-{bias}-{self.neuron}")

    @property
    def oh(self) -> int:
        return (self.h + 2 * self.pad[0] - self.kh) // self.stride[0] + 1

    @property
    def ow(self) -> int:
        return (self.w + 2 * self.pad[1] - self.kw) // self.stride[1] + 1

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.f, self.c // self.groups, self.kh, self.kw)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.f, self.oh, self.ow)

    @property
    def forward_reduction(self) -> int:
        """Length of the sum behind one output element of the forward pass: C/g * KH * KW."""
        return self.c // self.groups * self.kh * self.kw

    @property
    def data_reduction(self) -> int:
        """Longest sum behind one element of the data gradient: F/g * KH * KW."""
        return self.f // self.groups * self.kh * self.kw

    @property
    def weight_reduction(self) -> int:
        """Length of the sum behind one element of the filter (and bias) gradient: N * OH * OW."""
        return self.n * self.oh * self.ow

    @property
    def macs(self) -> int:
        """Multiply-adds of the forward pass (the cost of the case)."""
        return self.n * self.f * self.oh * self.ow * self.forward_reduction

    def params(self) -> dict:
        """The geometry keyword arguments of the backward ops: stride, pad, groups."""
        return dict(stride=self.stride, pad=self.pad, groups=self.groups)


def _case(n, c, h, w, f, k, stride=1, pad=0, groups=1, has_bias=True, neuron="identity") -> ConvCase:
    """Shorthand: ints for square kernel/stride/pad, or (h, w) pairs."""
    kh, kw = (k, k) if isinstance(k, int) else k
    stride = (stride, stride) if isinstance(stride, int) else tuple(stride)
    pad = (pad, pad) if isinstance(pad, int) else tuple(pad)
    return ConvCase(n, c, h, w, f, kh, kw, stride, pad, groups, has_bias, neuron)


_REFERENCE = [
    _case(3, 3, 11, 13, 5, 3, 1, 1, neuron="relu"),                          # odd sizes, "same" padding
    _case(1, 4, 9, 9, 6, 3, 2, 0, has_bias=False),                           # batch 1, stride 2, no bias
    _case(2, 3, 13, 12, 4, 2, 3, 1, neuron="leaky_relu"),                    # stride 3 > kernel 2
    _case(2, 2, 12, 12, 3, 2, 3, 0, has_bias=False),                         # stride > kernel, last row unused
    _case(2, 6, 10, 9, 9, 3, 1, 1, groups=3, neuron="sigmoid"),              # groups
    _case(2, 5, 8, 11, 5, 3, 1, 1, groups=5, neuron="tanh"),                 # depthwise
    _case(2, 4, 7, 6, 8, 3, 2, 1, groups=4, has_bias=False, neuron="exp"),   # depthwise, multiplier 2
    _case(2, 3, 12, 15, 4, (3, 5), (2, 1), (1, 2)),                          # non-square kernel/stride/pad
    _case(1, 4, 10, 7, 6, (1, 3), (1, 2), (0, 1), groups=2, neuron="relu"),  # non-square, groups
    _case(3, 7, 6, 5, 5, 1, 1, 0, neuron="relu"),                            # 1x1 stride 1 (plain GEMM)
    _case(2, 4, 9, 8, 3, 1, 2, 0, has_bias=False, neuron="tanh"),            # 1x1 stride 2
    _case(2, 3, 4, 5, 2, 1, 1, 1, neuron="sigmoid"),                         # 1x1 with padding
    _case(2, 3, 5, 4, 4, (7, 6), 1, 1),                                      # kernel == padded input
    _case(2, 1, 14, 14, 6, 5, 1, 0, neuron="leaky_relu"),                    # C = 1
    _case(2, 5, 7, 8, 1, 3, 1, 2, neuron="exp"),                             # F = 1, wide padding
    _case(1, 2, 3, 3, 2, 3, 2, 3, has_bias=False),                           # padding > kernel / 2
    _case(2, 20, 12, 12, 50, 5),                                             # LeNet conv2 shape, batch 2
    # few input channels, many filters, long rows: the reference takes its sample-major column order
    _case(4, 1, 16, 16, 20, 3, 1, 1, neuron="relu"),                         # LeNet conv1-like, padded
    _case(2, 2, 12, 12, 16, 3, 1, 0, groups=2),                              # sample-major with groups
    _case(2, 1, 9, 9, 8, 1, 2, 0, has_bias=False),                           # sample-major at stride 2
]

_TINY = [
    _case(2, 3, 5, 6, 4, 3, 1, 1, neuron="relu"),                            # odd sizes, "same" padding
    _case(1, 2, 5, 5, 3, 3, 2, 0, has_bias=False),                           # batch 1, stride 2, no bias
    _case(2, 2, 7, 6, 3, 2, 3, (1, 0), neuron="leaky_relu"),                 # stride 3 > kernel 2, last col unused
    _case(1, 4, 5, 5, 4, 3, 1, 1, groups=2, neuron="sigmoid"),               # groups
    _case(2, 3, 5, 4, 3, 3, 1, 1, groups=3, neuron="tanh"),                  # depthwise
    _case(1, 2, 4, 5, 4, 3, 2, 1, groups=2, has_bias=False, neuron="exp"),   # depthwise, multiplier 2
    _case(1, 2, 6, 7, 3, (3, 2), (2, 1), (1, 0)),                            # non-square kernel/stride/pad
    _case(2, 5, 4, 3, 3, 1, 1, 0, neuron="relu"),                            # 1x1 stride 1
    _case(1, 3, 5, 6, 2, 1, 2, 0, has_bias=False),                           # 1x1 stride 2
    _case(1, 2, 3, 4, 2, (5, 6), 1, 1),                                      # kernel == padded input
    _case(2, 1, 6, 6, 3, 3, 1, 0, neuron="leaky_relu"),                      # C = 1
    _case(1, 3, 4, 4, 1, 3, 1, 2, neuron="tanh"),                            # F = 1, wide padding
]

_LENET = [
    _case(64, 1, 28, 28, 20, 5),   # conv1
    _case(64, 20, 12, 12, 50, 5),  # conv2
]

_KINDS = {"reference": _REFERENCE, "tiny": _TINY, "lenet": _LENET}


def conv_cases(kind: str) -> list[ConvCase]:
    """The cases of one kind: "reference", "tiny" or "lenet" (see the module docstring)."""
    if kind not in _KINDS:
        raise ValueError(f"unknown case kind {kind!r}; known: {tuple(_KINDS)}")
    return list(_KINDS[kind])


@dataclass(frozen=True)
class ConvArrays:
    """Random inputs of one case: x, w, b (None without bias), dy (the upstream gradient of y)."""

    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    dy: np.ndarray


def conv_arrays(case: ConvCase, dtype: str | np.dtype, seed: int = 0) -> ConvArrays:
    """Seeded standard-normal x and dy, w ~ N(0, 1/fan_in), b ~ N(0, 0.1^2), all in ``dtype``.

    The draw depends only on the case, the dtype and ``seed`` (not on Python's hash seed).
    """
    dtype = np.dtype(dtype)
    rng = np.random.default_rng([zlib.crc32(case.id.encode()), zlib.crc32(dtype.name.encode()), seed])
    x = rng.standard_normal(case.x_shape).astype(dtype)
    w = (rng.standard_normal(case.w_shape) / math.sqrt(case.forward_reduction)).astype(dtype)
    b = (0.1 * rng.standard_normal(case.f)).astype(dtype) if case.has_bias else None
    dy = rng.standard_normal(case.y_shape).astype(dtype)
    return ConvArrays(x, w, b, dy)
