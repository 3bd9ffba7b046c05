"""Deterministic configurations of the combine ops, shared by the cpu_ref and the kernel tests.

* :data:`BLOCK_CASES` are named :class:`BlockCase` objects: the copies the Concat and Crop layers make
  (a bottom into its channel slice, a slice back, a spatial window, a window back, mirrored or not)
  and the corners of the block rule (1-D, an empty block, size-1 axes, a mirrored size-1 last axis, a
  whole-tensor copy, six dimensions that stay six axes after merging).
* :func:`random_block_cases` draws further blocks (1 to 6 dimensions, random starts and sizes).
* :func:`eltwise_arrays` draws ``a``, ``b`` and ``dy`` for an operation: no ties for max (so the
  gradient is smooth), ``b`` bounded away from 0 for divide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mocha_triton.checks.combine import ELTWISE_OPERATIONS


@dataclass(frozen=True)
class BlockCase:
    """y[y_start : y_start + size] = x[x_start : x_start + size] (last axis reversed with mirror)."""

    x_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    x_start: tuple[int, ...]
    y_start: tuple[int, ...]
    size: tuple[int, ...]
    mirror: bool = False

    def arrays(self, dtype: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        return (rng.standard_normal(self.x_shape).astype(dtype), rng.standard_normal(self.y_shape).astype(dtype))


BLOCK_CASES = {
    "concat-forward": BlockCase((2, 3, 4, 5), (2, 7, 4, 5), (0, 0, 0, 0), (0, 2, 0, 0), (2, 3, 4, 5)),
    "concat-backward": BlockCase((2, 7, 4, 5), (2, 3, 4, 5), (0, 4, 0, 0), (0, 0, 0, 0), (2, 3, 4, 5)),
    "concat-batch-1-last-axis": BlockCase((1, 3, 2), (1, 3, 7), (0, 0, 0), (0, 0, 4), (1, 3, 2)),
    "crop-forward": BlockCase((2, 3, 7, 6), (2, 3, 4, 3), (0, 0, 2, 1), (0, 0, 0, 0), (2, 3, 4, 3)),
    "crop-forward-mirror": BlockCase((2, 3, 7, 6), (2, 3, 4, 3), (0, 0, 2, 1), (0, 0, 0, 0), (2, 3, 4, 3), True),
    "crop-backward-mirror": BlockCase((2, 3, 4, 3), (2, 3, 7, 6), (0, 0, 0, 0), (0, 0, 3, 2), (2, 3, 4, 3), True),
    "both-offsets": BlockCase((3, 5, 6), (4, 6, 9), (1, 2, 1), (0, 3, 4), (2, 3, 5)),
    "one-d": BlockCase((9,), (7,), (3,), (1,), (5,)),
    "one-d-mirror": BlockCase((9,), (7,), (3,), (1,), (5,), True),
    "empty-block": BlockCase((2, 3), (3, 3), (0, 1), (1, 0), (2, 0)),
    "size-one-axes": BlockCase((3, 1, 4, 5), (2, 2, 4, 7), (2, 0, 1, 1), (1, 1, 0, 3), (1, 1, 3, 4)),
    "mirror-last-size-one": BlockCase((2, 3, 4), (2, 3, 5), (0, 1, 2), (1, 0, 4), (1, 2, 1), True),
    "whole": BlockCase((2, 3, 4), (2, 3, 4), (0, 0, 0), (0, 0, 0), (2, 3, 4), True),
    "six-axes": BlockCase((3, 3, 3, 3, 3, 4), (3, 4, 3, 4, 3, 5), (1, 0, 1, 0, 1, 1), (0, 1, 0, 2, 0, 2),
                          (2, 2, 2, 2, 2, 3), True),
}


def random_block_cases(seed: int, count: int, max_dim: int = 5) -> list[BlockCase]:
    """``count`` random blocks of 1 to 6 dimensions, sizes up to ``max_dim``, mirror or not."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        ndim = int(rng.integers(1, 7))
        size = tuple(int(n) for n in rng.integers(1, max_dim + 1, ndim))
        x_pad = tuple(int(p) for p in rng.integers(0, 3, ndim))
        y_pad = tuple(int(p) for p in rng.integers(0, 3, ndim))
        x_start = tuple(int(rng.integers(0, p + 1)) for p in x_pad)
        y_start = tuple(int(rng.integers(0, p + 1)) for p in y_pad)
        cases.append(BlockCase(tuple(n + p for n, p in zip(size, x_pad)), tuple(n + p for n, p in zip(size, y_pad)),
                               x_start, y_start, size, bool(rng.integers(0, 2))))
    return cases


ELTWISE_SHAPES = [(1,), (7,), (3, 5), (2, 3, 4, 5), (0, 3)]


def eltwise_arrays(operation: str, shape: tuple[int, ...], dtype: str, seed: int, alpha: float = 1.0,
                   beta: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """a, b and dy of ``shape``: for max, |alpha a - beta b| >= 0.1 (no ties, even after rounding to
    float32); for divide, |b| >= 0.5."""
    assert operation in ELTWISE_OPERATIONS
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    b = rng.standard_normal(shape)
    if operation == "max":
        b = np.where(np.abs(alpha * a - beta * b) < 0.1, (alpha * a + 0.25) / beta, b)
    if operation == "divide":
        b = np.sign(b + 1e-3) * (0.5 + np.abs(b))
    dy = rng.standard_normal(shape)
    return a.astype(dtype), b.astype(dtype), dy.astype(dtype)


#: (alpha, beta) pairs: plain, Caffe SUM coefficients, a negative coefficient.
COEFFICIENTS = [(1.0, 1.0), (0.5, -2.0), (-1.5, 0.75)]
