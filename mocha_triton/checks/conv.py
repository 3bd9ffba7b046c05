"""Argument checks for the convolution family; shared by cpu_ref.conv and kernels.conv."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mocha_triton.checks.common import (
    FLOAT_DTYPES,
    pair,
    require_choice,
    require_finite_scalar,
    require_float,
    require_ndim,
    require_positive_int,
    require_same_dtype,
    require_shape,
    shape_of,
)
from mocha_triton.contract import NEURONS


@dataclass(frozen=True)
class Conv2dGeometry:
    """Every size of one 2-D convolution: input (n, c, h, w), filters (f, c/groups, kh, kw), output
    (n, f, oh, ow), stride (sh, sw), symmetric padding (ph, pw), groups."""

    n: int
    c: int
    h: int
    w: int
    f: int
    kh: int
    kw: int
    oh: int
    ow: int
    sh: int
    sw: int
    ph: int
    pw: int
    groups: int

    @property
    def c_per_group(self) -> int:
        return self.c // self.groups

    @property
    def f_per_group(self) -> int:
        return self.f // self.groups

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.f, self.c_per_group, self.kh, self.kw)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.f, self.oh, self.ow)

    @property
    def flops(self) -> int:
        """Multiply-adds times two of the forward pass (the same for each backward pass)."""
        return 2 * self.n * self.f * self.oh * self.ow * self.c_per_group * self.kh * self.kw


def conv2d_output_size(h: int, w: int, kh: int, kw: int, stride: tuple[int, int],
                       pad: tuple[int, int]) -> tuple[int, int]:
    """(OH, OW) = ((H + 2 ph - KH) // sh + 1, (W + 2 pw - KW) // sw + 1), like Caffe and Mocha."""
    return (h + 2 * pad[0] - kh) // stride[0] + 1, (w + 2 * pad[1] - kw) // stride[1] + 1


def _geometry(op: str, x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: Any, pad: Any,
              groups: Any, x_name: str = "x", w_name: str = "w") -> Conv2dGeometry:
    sh, sw = pair(op, "stride", stride, 1)
    ph, pw = pair(op, "pad", pad, 0)
    groups = require_positive_int(op, "groups", groups)
    n, c, h, w = x_shape
    f, cg, kh, kw = w_shape
    if c % groups:
        raise ValueError(f"{op}: groups={groups} does not divide the {c} input channels of {x_name}")
    if f % groups:
        raise ValueError(f"{op}: groups={groups} does not divide the {f} filters of {w_name}")
    if cg * groups != c:
        raise ValueError(f"{op}: {x_name} has {c} channels but {w_name} expects {cg} per group x {groups} groups "
                         f"= {cg * groups}")
    if kh < 1 or kw < 1:
        raise ValueError(f"{op}: {w_name} has an empty kernel {(kh, kw)}")
    if kh > h + 2 * ph or kw > w + 2 * pw:
        raise ValueError(f"{op}: kernel {(kh, kw)} is larger than the padded input {(h + 2 * ph, w + 2 * pw)}")
    oh, ow = conv2d_output_size(h, w, kh, kw, (sh, sw), (ph, pw))
    return Conv2dGeometry(n, c, h, w, f, kh, kw, oh, ow, sh, sw, ph, pw, groups)


def check_conv2d_forward(x: Any, w: Any, b: Any, y: Any, stride: Any, pad: Any, groups: Any,
                         neuron: str = "identity", negative_slope: float = 0.01,
                         allowed: tuple[str, ...] = FLOAT_DTYPES) -> Conv2dGeometry:
    op = "conv2d_forward"
    for name, a in (("x", x), ("w", w), ("y", y)) + ((("b", b),) if b is not None else ()):
        require_float(op, name, a, allowed)
    require_same_dtype(op, {"x": x, "w": w, "b": b, "y": y})
    require_ndim(op, "x", x, 4)
    require_ndim(op, "w", w, 4)
    require_choice(op, "neuron", neuron, NEURONS)
    require_finite_scalar(op, "negative_slope", negative_slope)
    g = _geometry(op, shape_of(x), shape_of(w), stride, pad, groups)
    if b is not None:
        require_shape(op, "b", b, (g.f,))
    require_shape(op, "y", y, g.y_shape)
    return g


def check_conv2d_backward_data(dy: Any, w: Any, dx: Any, stride: Any, pad: Any, groups: Any,
                               allowed: tuple[str, ...] = FLOAT_DTYPES) -> Conv2dGeometry:
    op = "conv2d_backward_data"
    for name, a in (("dy", dy), ("w", w), ("dx", dx)):
        require_float(op, name, a, allowed)
    require_same_dtype(op, {"dy": dy, "w": w, "dx": dx})
    for name, a in (("dy", dy), ("w", w), ("dx", dx)):
        require_ndim(op, name, a, 4)
    g = _geometry(op, shape_of(dx), shape_of(w), stride, pad, groups, x_name="dx")
    require_shape(op, "dy", dy, g.y_shape)
    return g


def check_conv2d_backward_weight(x: Any, dy: Any, dw: Any, stride: Any, pad: Any, groups: Any,
                                 allowed: tuple[str, ...] = FLOAT_DTYPES) -> Conv2dGeometry:
    op = "conv2d_backward_weight"
    for name, a in (("x", x), ("dy", dy), ("dw", dw)):
        require_float(op, name, a, allowed)
    require_same_dtype(op, {"x": x, "dy": dy, "dw": dw})
    for name, a in (("x", x), ("dy", dy), ("dw", dw)):
        require_ndim(op, name, a, 4)
    g = _geometry(op, shape_of(x), shape_of(dw), stride, pad, groups, w_name="dw")
    require_shape(op, "dy", dy, g.y_shape)
    return g


def check_conv2d_backward_bias(dy: Any, db: Any, allowed: tuple[str, ...] = FLOAT_DTYPES) -> tuple[int, int, int]:
    """Return (N, F, OH * OW)."""
    op = "conv2d_backward_bias"
    require_float(op, "dy", dy, allowed)
    require_float(op, "db", db, allowed)
    require_same_dtype(op, {"dy": dy, "db": db})
    require_ndim(op, "dy", dy, 4)
    n, f, oh, ow = shape_of(dy)
    require_shape(op, "db", db, (f,))
    return n, f, oh * ow
