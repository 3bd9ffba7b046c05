"""2-D convolution (cross-correlation, NCHW, groups, fused neuron) in NumPy: the reference backend.

Mirrors :mod:`mocha_triton.kernels.conv` op for op. Every op checks its arguments with
:mod:`mocha_triton.checks.conv`, writes its preallocated output in place and returns None.

How it computes, with G groups, K = C/G * KH * KW and P = OH * OW:

* **Two column orders, chosen per shape** by :func:`_sample_major`:

  - *batch-last*, columns ordered (oh, ow, n): the input is first copied, zero padded, to
    (C, Hp, Wp, N). With the batch innermost, a row of output pixels times the batch is one
    contiguous run (at stride 1), so the im2col and col2im copies move long runs instead of rows of
    OW elements; but y, dy and dx must be transposed between NCHW and batch-last, element by element.
  - *sample-major*, columns ordered (n, oh, ow): the windows are taken from a plain (padded) NCHW
    input, the copies move runs of OW elements only, but the GEMM operands and results are NCHW
    up to a swap of whole (OH * OW) planes, which is cheap.

  Sample-major wins when the column matrix is small next to the output (few input channels, like
  LeNet's first layer: C * KH * KW = 25 rows for 20 filters) and the output rows are long; batch-last
  wins when C * KH * KW is large (LeNet's second layer: 500 rows for 50 filters, 8-pixel rows).
* **im2col as a strided view.** ``sliding_window_view`` of the padded batch-last input, subsampled by
  the stride, is a (C, OH, OW, N, KH, KW) view of every receptive field, made without copying. One
  copy lays it out as the column matrix ``cols`` of shape (G, K, P * N): row (c, kh, kw) of group g
  holds that input tap at every output pixel of the whole batch. (Sample-major: the same from a
  (N, C, OH, OW, KH, KW) view of the padded NCHW input.)
* **One BLAS GEMM per group** (``np.matmul`` over the group axis) does the arithmetic:
  forward ``y_g = w_g @ cols_g``, filter gradient ``dw_g = dy_g @ cols_g.T``, data gradient columns
  ``dcols_g = w_g.T @ dy_g``, where ``w_g`` is (F/G, K) and ``dy_g`` is dy laid out as (F/G, P * N).
  Sample-major, the filter gradient is instead a batch of per-sample GEMMs ``dy_n @ cols_n.T`` summed
  over n: dy needs no relayout at all, and BLAS does better on N products of (F/G, P) x (P, K) than on
  one product with a reduction of length N * P and a tiny (F/G, K) result.
* **col2im** (data gradient) loops over the KH * KW taps only: each tap adds a whole (C, OH, OW, N)
  block of ``dcols`` (sample-major: (C, N, OH, OW)) into a strided slice of the padded input gradient.
* The 1x1, stride-1, unpadded convolution needs no im2col: its forward and data gradient are a plain
  GEMM per sample on the (C, H * W) planes.

Everything is computed in the input dtype (float32 or float64).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mocha_triton.checks import conv as checks
from mocha_triton.checks.conv import Conv2dGeometry
from mocha_triton.cpu_ref._activations import apply_neuron

Pair = int | tuple[int, int]  # stride or pad: one int for both dimensions, or (h, w)


def _is_pointwise(g: Conv2dGeometry) -> bool:
    """The 1x1 / stride-1 / unpadded case: the convolution is a GEMM on the (C, H * W) planes."""
    return (g.kh, g.kw, g.sh, g.sw, g.ph, g.pw) == (1, 1, 1, 1, 0, 0)


def _writable(out: np.ndarray) -> np.ndarray:
    """``out`` itself when it is C-contiguous (so reshapes of it are views), else a scratch array."""
    return out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)


def _finish(out: np.ndarray, buf: np.ndarray) -> None:
    """Copy the scratch array made by :func:`_writable` back into ``out``."""
    if buf is not out:
        np.copyto(out, buf)


def _batch_last(x: np.ndarray, g: Conv2dGeometry) -> np.ndarray:
    """x (N, C, H, W) copied to the batch-last layout (C, H + 2 ph, W + 2 pw, N), zero padded."""
    xt = np.zeros((g.c, g.h + 2 * g.ph, g.w + 2 * g.pw, g.n), x.dtype)
    xt[:, g.ph : g.ph + g.h, g.pw : g.pw + g.w, :] = x.transpose(1, 2, 3, 0)
    return xt


def _im2col(x: np.ndarray, g: Conv2dGeometry) -> np.ndarray:
    """The column matrix of x: (G, K, OH * OW * N), rows ordered (c, kh, kw), columns (oh, ow, n).

    cols[gr, (c, i, j), (oh, ow, n)] = x_padded[n, gr * C/G + c, oh * sh + i, ow * sw + j].
    With the batch innermost, a row of taps (ow, n) is one contiguous run of the batch-last input
    when sw = 1, so the copy moves long runs.
    """
    windows = sliding_window_view(_batch_last(x, g), (g.kh, g.kw), axis=(1, 2))[:, :: g.sh, :: g.sw]
    windows = windows.reshape(g.groups, g.c_per_group, g.oh, g.ow, g.n, g.kh, g.kw)
    cols = np.empty((g.groups, g.c_per_group, g.kh, g.kw, g.oh, g.ow, g.n), x.dtype)
    np.copyto(cols, windows.transpose(0, 1, 5, 6, 2, 3, 4))
    return cols.reshape(g.groups, g.c_per_group * g.kh * g.kw, g.oh * g.ow * g.n)


def _sample_major(g: Conv2dGeometry) -> bool:
    """Whether to order the columns (n, oh, ow) rather than batch-last (oh, ow, n).

    A rough cost model from timings on LeNet's shapes: sample-major makes the im2col / col2im copies
    move runs of OW elements (single elements at sw > 1) instead of long batch-last runs, costing
    about (3 / run) ns more per column-matrix element (K * P * N of them); batch-last costs a transpose
    of y or dy (F * P * N elements) at about 0.8 ns each. Hence sample-major when 4 K <= F * run.
    """
    run = g.ow if g.sw == 1 else 1
    return 4 * g.c_per_group * g.kh * g.kw <= g.f_per_group * run


def _padded(x: np.ndarray, g: Conv2dGeometry) -> np.ndarray:
    """x (N, C, H, W) zero padded to (N, C, H + 2 ph, W + 2 pw); x itself when there is no padding."""
    if g.ph == 0 and g.pw == 0:
        return x
    xp = np.zeros((g.n, g.c, g.h + 2 * g.ph, g.w + 2 * g.pw), x.dtype)
    xp[:, :, g.ph : g.ph + g.h, g.pw : g.pw + g.w] = x
    return xp


def _im2col_sample_major(x: np.ndarray, g: Conv2dGeometry) -> np.ndarray:
    """The column matrix of x: (G, K, N * OH * OW), rows ordered (c, kh, kw), columns (n, oh, ow).

    cols[gr, (c, i, j), (n, oh, ow)] = x_padded[n, gr * C/G + c, oh * sh + i, ow * sw + j].
    """
    windows = sliding_window_view(_padded(x, g), (g.kh, g.kw), axis=(2, 3))[:, :, :: g.sh, :: g.sw]
    windows = windows.reshape(g.n, g.groups, g.c_per_group, g.oh, g.ow, g.kh, g.kw)
    cols = np.empty((g.groups, g.c_per_group, g.kh, g.kw, g.n, g.oh, g.ow), x.dtype)
    np.copyto(cols, windows.transpose(1, 2, 5, 6, 0, 3, 4))
    return cols.reshape(g.groups, g.c_per_group * g.kh * g.kw, g.n * g.oh * g.ow)


def _group_major(dy: np.ndarray, g: Conv2dGeometry) -> np.ndarray:
    """dy (N, F, OH, OW) laid out as (G, F/G, OH * OW * N), the GEMM operand matching the columns."""
    dy_t = np.empty((g.f, g.oh, g.ow, g.n), dy.dtype)
    np.copyto(dy_t, dy.transpose(1, 2, 3, 0))
    return dy_t.reshape(g.groups, g.f_per_group, g.oh * g.ow * g.n)


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, y: np.ndarray, stride: Pair, pad: Pair,
                   groups: int, neuron: str = "identity", negative_slope: float = 0.01) -> None:
    """y = neuron(conv(x, w) + b): cross-correlation per group, like Caffe and Mocha.

    x: (N, C, H, W); w: (F, C/G, KH, KW); b: (F,) or None; y: (N, F, OH, OW) with
    OH = (H + 2 ph - KH) // sh + 1 and OW likewise. Output channel f of group gr = f // (F/G) sees
    input channels [gr * C/G, (gr + 1) * C/G):

        y[n, f, oh, ow] = neuron(b[f] + sum_{c, i, j} w[f, c, i, j] * x_pad[n, gr * C/G + c, oh * sh + i, ow * sw + j])

    stride (sh, sw) >= 1 and pad (ph, pw) >= 0 are ints or pairs; ``negative_slope`` is for leaky_relu.
    """
    g = checks.check_conv2d_forward(x, w, b, y, stride, pad, groups, neuron, negative_slope)
    p = g.oh * g.ow
    w_g = w.reshape(g.groups, g.f_per_group, g.c_per_group * g.kh * g.kw)
    out = _writable(y)
    out_g = out.reshape(g.n, g.groups, g.f_per_group, p)
    if _is_pointwise(g):
        np.matmul(w_g, x.reshape(g.n, g.groups, g.c_per_group, p), out=out_g)
        if b is not None:
            out_g += b.reshape(g.groups, g.f_per_group, 1)
    else:
        # One GEMM per group over the whole batch; the result, (G, F/G, N, P) sample-major or
        # (G, F/G, P, N) batch-last, is transposed to NCHW while the bias is added, in one pass.
        if _sample_major(g):
            prod = np.matmul(w_g, _im2col_sample_major(x, g)).reshape(g.groups, g.f_per_group, g.n, p)
            prod = prod.transpose(2, 0, 1, 3)
        else:
            prod = np.matmul(w_g, _im2col(x, g)).reshape(g.groups, g.f_per_group, p, g.n).transpose(3, 0, 1, 2)
        if b is None:
            np.copyto(out_g, prod)
        else:
            np.add(prod, b.reshape(g.groups, g.f_per_group, 1), out=out_g)
    apply_neuron(out, neuron, negative_slope)
    _finish(y, out)


def conv2d_backward_data(dy: np.ndarray, w: np.ndarray, dx: np.ndarray, stride: Pair, pad: Pair,
                         groups: int) -> None:
    """dx = the gradient of sum(conv(x, w) * dy) with respect to x (the transposed convolution of dy).

    dy: (N, F, OH, OW); w: (F, C/G, KH, KW); dx: (N, C, H, W), overwritten. Input pixels that no
    window covers (past the last stride step) get 0. Any neuron's gradient must already be in dy.
    """
    g = checks.check_conv2d_backward_data(dy, w, dx, stride, pad, groups)
    w_g = w.reshape(g.groups, g.f_per_group, g.c_per_group * g.kh * g.kw)
    if _is_pointwise(g):
        out, p = _writable(dx), g.h * g.w
        np.matmul(w_g.transpose(0, 2, 1), dy.reshape(g.n, g.groups, g.f_per_group, p),
                  out=out.reshape(g.n, g.groups, g.c_per_group, p))
        _finish(dx, out)
        return
    h_end, w_end = g.sh * (g.oh - 1) + 1, g.sw * (g.ow - 1) + 1
    if _sample_major(g):
        # dcols[n, c, i, j, oh, ow] is the gradient of tap (i, j) of channel c at output pixel (n, oh, ow):
        # one (K, F/G) x (F/G, P) product per sample and group, read straight from NCHW dy.
        dcols = np.matmul(w_g.transpose(0, 2, 1), dy.reshape(g.n, g.groups, g.f_per_group, g.oh * g.ow))
        dcols = dcols.reshape(g.n, g.c, g.kh, g.kw, g.oh, g.ow)
        # Accumulate in the padded NCHW layout, then copy the interior out.
        grad = np.zeros((g.n, g.c, g.h + 2 * g.ph, g.w + 2 * g.pw), dx.dtype)
        for i in range(g.kh):
            for j in range(g.kw):
                grad[:, :, i : i + h_end : g.sh, j : j + w_end : g.sw] += dcols[:, :, i, j]
        np.copyto(dx, grad[:, :, g.ph : g.ph + g.h, g.pw : g.pw + g.w])
        return
    # dcols[c, i, j, oh, ow, n] is the gradient of tap (i, j) of channel c at output pixel (n, oh, ow).
    dcols = np.matmul(w_g.transpose(0, 2, 1), _group_major(dy, g))
    dcols = dcols.reshape(g.c, g.kh, g.kw, g.oh, g.ow, g.n)
    # Accumulate in the padded batch-last layout (C, Hp, Wp, N): for sw = 1 each tap adds runs of
    # OW * N contiguous elements.
    grad = np.zeros((g.c, g.h + 2 * g.ph, g.w + 2 * g.pw, g.n), dx.dtype)
    for i in range(g.kh):
        for j in range(g.kw):
            grad[:, i : i + h_end : g.sh, j : j + w_end : g.sw] += dcols[:, i, j]
    np.copyto(dx, grad[:, g.ph : g.ph + g.h, g.pw : g.pw + g.w].transpose(3, 0, 1, 2))


def conv2d_backward_weight(x: np.ndarray, dy: np.ndarray, dw: np.ndarray, stride: Pair, pad: Pair,
                           groups: int) -> None:
    """dw = the gradient of sum(conv(x, w) * dy) with respect to w, summed over the batch.

    x: (N, C, H, W) forward input; dy: (N, F, OH, OW); dw: (F, C/G, KH, KW), overwritten:

        dw[f, c, i, j] = sum_{n, oh, ow} dy[n, f, oh, ow] * x_pad[n, gr * C/G + c, oh * sh + i, ow * sw + j]
    """
    g = checks.check_conv2d_backward_weight(x, dy, dw, stride, pad, groups)
    out = _writable(dw)
    out_g = out.reshape(g.groups, g.f_per_group, g.c_per_group * g.kh * g.kw)
    if _sample_major(g):
        # One (F/G, P) x (P, K) product per sample and group, read straight from NCHW dy and the
        # (G, K, N, P) columns, then summed over the batch.
        p = g.oh * g.ow
        cols = _im2col_sample_major(x, g).reshape(g.groups, -1, g.n, p).transpose(2, 0, 3, 1)
        per_sample = np.matmul(dy.reshape(g.n, g.groups, g.f_per_group, p), cols)
        np.sum(per_sample, axis=0, out=out_g)
    else:
        np.matmul(_group_major(dy, g), _im2col(x, g).transpose(0, 2, 1), out=out_g)
    _finish(dw, out)


def conv2d_backward_bias(dy: np.ndarray, db: np.ndarray) -> None:
    """db[f] = sum of dy[:, f, :, :]. dy: (N, F, OH, OW); db: (F,), overwritten."""
    n, f, p = checks.check_conv2d_backward_bias(dy, db)
    # Sum the contiguous pixel axis first (NumPy sums it pairwise), then the batch.
    np.sum(dy.reshape(n, f, p).sum(axis=2), axis=0, out=db)
