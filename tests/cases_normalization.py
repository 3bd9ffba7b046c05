"""Deterministic LRN and power configurations, their random arrays, and torch float64 oracles.

* :func:`lrn_cases` lists :class:`LRNCase` objects by kind: ``"reference"`` (for cpu_ref against torch:
  both regions, odd and even sizes, windows wider than the channels or the image, batch 1, 1x1 maps,
  strong and weak normalisation, negative beta) and ``"tiny"`` (the same features at shapes small
  enough for Triton's interpreter, plus one image wider than an interpreter program of the
  across-channel kernels and more planes and pixels than one program of the within-channel kernels).
  :func:`random_lrn_cases` draws more from a seed.
* :func:`torch_lrn` is the oracle: the forward written directly in torch float64 (zero-padded window
  sums of ``x**2``) and its gradient by autograd. For odd sizes it is checked against torch's own
  ``local_response_norm`` (across channels) and ``avg_pool2d`` (within a channel).
* :data:`POWER_CASES` lists (power, scale, shift) triples; :func:`torch_power` is their oracle.
* :data:`NONFINITE_LRN` plants one NaN or infinity in x or dy (:func:`planted_lrn_arrays`);
  :func:`window_holds` tells which outputs' window sums hold it (the only ones it may reach).
* :func:`assert_close_nan` compares arrays that may hold NaN and inf (same positions, finite parts close);
  :func:`ulp_distance` counts the float32 values between two arrays, element by element.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

from support import assert_close, call_op


@dataclass(frozen=True)
class LRNCase:
    """One LRN call: x (n, c, h, w) and the op's parameters."""

    n: int
    c: int
    h: int
    w: int
    size: int
    alpha: float = 0.8
    beta: float = 0.75
    k: float = 1.0
    region: str = "across_channels"

    @property
    def id(self) -> str:
        where = "across" if self.region == "across_channels" else "within"
        return (f"{where}-n{self.n}c{self.c}x{self.h}x{self.w}-size{self.size}-a{self.alpha:g}-b{self.beta:g}"
                f"-k{self.k:g}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def window(self) -> int:
        """Elements per window: the longest sum behind one output."""
        return self.size if self.region == "across_channels" else self.size * self.size

    def params(self, with_k: bool = True) -> dict:
        params = dict(size=self.size, alpha=self.alpha, beta=self.beta, region=self.region)
        if with_k:
            params["k"] = self.k
        return params


_A, _W = "across_channels", "within_channel"

_REFERENCE = [
    LRNCase(2, 7, 3, 5, 5),                                   # Caffe's default size, odd sizes
    LRNCase(1, 3, 4, 4, 3, alpha=1.5, beta=0.5, k=2.0),       # batch 1
    LRNCase(2, 5, 1, 1, 5, alpha=1e-4),                       # 1x1 maps (after an inner product), AlexNet's alpha
    LRNCase(2, 3, 2, 3, 7),                                   # window wider than the channels
    LRNCase(1, 2, 3, 3, 1),                                   # size 1: x / (k + alpha x**2)**beta
    LRNCase(2, 6, 3, 2, 4),                                   # even size: pre 1, post 2
    LRNCase(3, 4, 2, 2, 5, alpha=5.0, beta=2.5, k=0.5),      # strong normalisation
    LRNCase(1, 4, 2, 3, 3, beta=-0.5),                        # negative beta
    LRNCase(2, 3, 5, 6, 3, region=_W),                        # CIFAR-style within-channel
    LRNCase(1, 2, 4, 4, 5, alpha=2.0, k=1.5, region=_W),      # window covering most of the image
    LRNCase(2, 2, 3, 3, 7, region=_W),                        # window wider than the image
    LRNCase(1, 2, 5, 4, 2, region=_W),                        # even size
    LRNCase(1, 1, 1, 1, 3, region=_W),                        # one pixel
    LRNCase(2, 3, 1, 7, 3, beta=1.5, region=_W),              # one row
]

_TINY = [
    LRNCase(2, 7, 3, 5, 5),
    LRNCase(1, 3, 4, 4, 3, alpha=1.5, beta=0.5, k=2.0),
    LRNCase(2, 3, 2, 3, 7),
    LRNCase(2, 6, 3, 2, 4),
    LRNCase(1, 5, 1, 1, 1),
    LRNCase(1, 3, 70, 65, 3, alpha=2.0),                      # 4550 pixels: two across-channel programs
    LRNCase(2, 3, 5, 6, 3, region=_W),
    LRNCase(2, 2, 3, 3, 7, alpha=2.0, region=_W),
    LRNCase(1, 2, 5, 4, 2, region=_W),
    LRNCase(3, 7, 17, 17, 3, region=_W),                      # 21 planes of 289 pixels: several programs
]

_KINDS = {"reference": _REFERENCE, "tiny": _TINY}


def lrn_cases(kind: str) -> list[LRNCase]:
    """The cases of one kind: "reference" or "tiny" (see the module docstring)."""
    if kind not in _KINDS:
        raise ValueError(f"unknown case kind {kind!r}; known: {tuple(_KINDS)}")
    return list(_KINDS[kind])


def random_lrn_cases(seed: int, count: int, max_size: int = 6) -> list[LRNCase]:
    """``count`` valid random cases with maps up to ``max_size`` pixels a side."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        n, c = int(rng.integers(1, 4)), int(rng.integers(1, 8))
        h, w = (int(v) for v in rng.integers(1, max_size + 1, size=2))
        region = _A if rng.integers(0, 2) else _W
        size = int(rng.integers(1, 8 if region == _A else 5))
        alpha = float(np.round(rng.uniform(0.0, 3.0), 3))
        beta = float(np.round(rng.uniform(-1.0, 2.0), 3))
        k = float(np.round(rng.uniform(0.5, 2.5), 3))
        cases.append(LRNCase(n, c, h, w, size, alpha, beta, k, region))
    return cases


def lrn_arrays(case: LRNCase, dtype: str | np.dtype, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded x and dy (standard normal); the draw depends only on the case, the dtype and ``seed``."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng([zlib.crc32(case.id.encode()), zlib.crc32(dtype.name.encode()), seed])
    return rng.standard_normal(case.shape).astype(dtype), rng.standard_normal(case.shape).astype(dtype)


def run_lrn(impl, case: LRNCase, x: np.ndarray, dy: np.ndarray) -> dict[str, np.ndarray]:
    """y and scale of lrn_forward and dx of lrn_backward (from that forward) on ``impl``."""
    fwd = call_op(impl, "lrn_forward", x=x, y=np.empty_like(x), scale=np.empty_like(x), **case.params())
    bwd = call_op(impl, "lrn_backward", x=x, y=fwd["y"], scale=fwd["scale"], dy=dy, dx=np.empty_like(x),
                  **case.params(with_k=False))
    return {"y": fwd["y"], "scale": fwd["scale"], "dx": bwd["dx"]}


def torch_window_sum(a: torch.Tensor, case: LRNCase, transposed: bool = False) -> torch.Tensor:
    """Sum of ``a`` over each element's window, by explicit zero padding (pre before, post after), or
    over its transposed window (post before, pre after: the elements whose window holds it)."""
    pre = (case.size - 1) // 2
    post = case.size - 1 - pre
    if transposed:
        pre, post = post, pre
    if case.region == _A:
        padded = F.pad(a, (0, 0, 0, 0, pre, post))
        return sum(padded[:, t:t + case.c] for t in range(case.size))
    padded = F.pad(a, (pre, post, pre, post))
    return sum(padded[:, :, r:r + case.h, s:s + case.w] for r in range(case.size) for s in range(case.size))


def torch_lrn_forward(x: torch.Tensor, case: LRNCase) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, scale) written directly: scale = k + alpha / n * window sum of x**2, y = x * scale**-beta."""
    scale = case.k + case.alpha / case.window * torch_window_sum(x * x, case)
    return x * scale ** -case.beta, scale


def torch_lrn(case: LRNCase, x: np.ndarray, dy: np.ndarray) -> dict[str, np.ndarray]:
    """The float64 oracle: y, scale, and dx by autograd for the upstream gradient dy."""
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y, scale = torch_lrn_forward(tx, case)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return {"y": y.detach().numpy(), "scale": scale.detach().numpy(), "dx": tx.grad.numpy()}


# One NaN or infinity planted in x or dy: (case, "x" or "dy", index, value). Across channels the first
# is the review's repro (a NaN in channel 0 of 8 reaches channels 0 and 1 only); the others move the
# value to the middle and the last channel, use even sizes (pre != post), beta = 0 (scale ** -0 is 1
# even for an infinite scale) and negative beta, and every kind of value in both regions.
NONFINITE_LRN = [
    (LRNCase(1, 8, 1, 2, 3), "x", (0, 0, 0, 0), np.nan),
    (LRNCase(1, 8, 1, 2, 3), "x", (0, 0, 0, 0), np.inf),
    (LRNCase(1, 8, 1, 2, 3), "dy", (0, 0, 0, 0), np.inf),
    (LRNCase(2, 9, 2, 3, 4), "x", (1, 4, 1, 2), -np.inf),
    (LRNCase(2, 9, 2, 3, 4), "dy", (0, 8, 0, 1), np.nan),
    (LRNCase(1, 7, 2, 2, 5, beta=0.0), "x", (0, 3, 1, 1), np.inf),
    (LRNCase(1, 7, 2, 2, 3, beta=-0.5), "x", (0, 6, 0, 1), np.nan),
    (LRNCase(1, 6, 1, 3, 2, alpha=2.0), "dy", (0, 2, 0, 2), -np.inf),
    (LRNCase(1, 2, 5, 4, 3, region=_W), "x", (0, 1, 2, 1), np.nan),
    (LRNCase(2, 2, 6, 5, 2, region=_W), "x", (1, 0, 0, 4), np.inf),
    (LRNCase(1, 2, 5, 5, 3, beta=0.0, region=_W), "x", (0, 0, 4, 0), -np.inf),
    (LRNCase(1, 3, 5, 6, 3, region=_W), "dy", (0, 2, 3, 3), np.inf),
    (LRNCase(1, 1, 4, 4, 2, region=_W), "dy", (0, 0, 1, 2), np.nan),
]


def nonfinite_id(item: tuple) -> str:
    case, target, index, value = item
    return f"{case.id}-{target}{list(index)}={value}"


def planted_lrn_arrays(case: LRNCase, target: str, index: tuple[int, ...], value: float,
                       dtype: str | np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """x and dy of :func:`lrn_arrays` with ``value`` written at ``index`` of ``target`` ("x" or "dy")."""
    x, dy = lrn_arrays(case, dtype)
    (x if target == "x" else dy)[index] = value
    return x, dy


def window_holds(case: LRNCase, index: tuple[int, ...], transposed: bool = False) -> np.ndarray:
    """Boolean map of the elements whose window (or transposed window) holds the element ``index``."""
    indicator = torch.zeros(case.shape, dtype=torch.float64)
    indicator[index] = 1.0
    return (torch_window_sum(indicator, case, transposed) > 0).numpy()


def torch_builtin_lrn(case: LRNCase, x: np.ndarray) -> np.ndarray:
    """y from torch's own functions, for odd sizes: local_response_norm across channels, avg_pool2d of
    x**2 (counting the padding) within a channel."""
    assert case.size % 2 == 1, "torch pads even windows the other way round"
    tx = torch.tensor(x, dtype=torch.float64)
    if case.region == _A:
        return F.local_response_norm(tx, case.size, alpha=case.alpha, beta=case.beta, k=case.k).numpy()
    mean = F.avg_pool2d(tx * tx, case.size, stride=1, padding=(case.size - 1) // 2, count_include_pad=True)
    return (tx * (case.k + case.alpha * mean) ** -case.beta).numpy()


# --- power -----------------------------------------------------------------------------------------------

# (power, scale, shift): the fast paths 0, 1, 2, integers of both parities and signs, non-integers
# (NaN for the negative bases), negative and zero scale, zero and non-zero shift. A negative power has a
# shift only where the base stays far from 0 (near its pole the rounding of shift + scale * x dominates).
POWER_CASES = [
    (0.0, 1.0, 0.0), (1.0, -0.5, 0.25), (2.0, 1.5, -0.5), (2.0, 1.0, 0.0), (3.0, 0.7, 0.1),
    (-1.0, 1.0, 0.0), (-2.0, -1.2, 0.0), (4.0, 0.5, 0.0), (0.5, 1.0, 0.0), (0.75, 2.0, 1.0),
    (2.5, -1.0, 0.2), (-0.75, 1.0, 3.0), (1.5, 0.0, 2.0), (0.0, 0.0, 0.0),
]


def power_id(case: tuple[float, float, float]) -> str:
    return "p{:g}-s{:g}-t{:g}".format(*case)


def power_arrays(shape: tuple[int, ...], dtype: str | np.dtype, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded x (standard normal) and dy (standard normal)."""
    rng = np.random.default_rng([seed, len(shape), *shape])
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


def torch_power(x: np.ndarray, dy: np.ndarray, power: float, scale: float, shift: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """(y, dx) in float64: torch.pow and its autograd gradient (0 when the output does not depend on x)."""
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = torch.pow(shift + scale * tx, power)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    dx = tx.grad.numpy() if power != 0 and scale != 0 else np.zeros_like(x, dtype=np.float64)
    return y.detach().numpy(), dx


def assert_close_nan(actual: np.ndarray, expected: np.ndarray, dtype: str, what: str = "",
                     reduction: int = 1) -> None:
    """NaN and inf at the same positions (inf with the same sign); the finite values close (``reduction``
    as in :func:`support.assert_close`)."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    nan_a, nan_e = np.isnan(actual), np.isnan(expected)
    assert np.array_equal(nan_a, nan_e), \
        f"{what}: NaN positions differ: {np.argwhere(nan_a != nan_e)[:5].tolist()}"
    finite = np.isfinite(expected)
    infinite = ~finite & ~nan_e
    assert np.array_equal(actual[infinite], expected[infinite]), f"{what}: infinities differ"
    assert_close(actual[finite], expected[finite], dtype, reduction, what=what)


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per element, how many float32 values lie between a and b (0: the same value; +0 and -0 are
    equal); 0 where both are NaN, a huge count where only one is."""
    def ordinal(v: np.ndarray) -> np.ndarray:
        bits = np.asarray(v, np.float32).view(np.int32).astype(np.int64)
        return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)  # monotone in the float's value

    nan_a, nan_b = np.isnan(a), np.isnan(b)
    distance = np.abs(ordinal(a) - ordinal(b))
    distance = np.where(nan_a & nan_b, 0, distance)
    return np.where(nan_a != nan_b, np.iinfo(np.int64).max, distance)
