"""cpu_ref.inner_product against torch float64, finite differences, and the shared argument checks.

Also home of the inner-product case generators (:data:`REFERENCE_CASES`, :data:`TINY_CASES`,
:func:`ip_arrays`, :func:`torch_forward`) that tests/test_kernels_inner_product.py reuses.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from mocha_triton.contract import NEURONS
from support import CPU, assert_close, call_op

SLOPE = 0.07  # a negative slope different from the default, so a forgotten argument shows


@dataclass(frozen=True)
class IPCase:
    """One inner product: x (n, k), w (o, k), b (o,) when has_bias, y (n, o)."""

    n: int
    k: int
    o: int
    has_bias: bool = True
    neuron: str = "identity"

    @property
    def id(self) -> str:
        return f"n{self.n}k{self.k}o{self.o}-{'b' if self.has_bias else 'nob'}-{self.neuron}"


def _cycle(sizes: list[tuple[int, int, int]]) -> list[IPCase]:
    """Pair each size with the next neuron and alternate the bias, so every combination shows up."""
    return [IPCase(n, k, o, has_bias=i % 3 != 1, neuron=NEURONS[i % len(NEURONS)])
            for i, (n, k, o) in enumerate(sizes)]


# Odd sizes, N = 1, K = 1, O = 1, empty batch and empty K, a K longer than several blocks,
# and M/N past one 64-wide tile.
REFERENCE_CASES = _cycle([
    (1, 1, 1), (1, 7, 3), (5, 1, 4), (3, 6, 1), (17, 33, 9), (64, 100, 10), (2, 300, 5), (70, 20, 67),
    (0, 5, 3), (4, 0, 3), (9, 13, 130), (128, 31, 7),
]) + [IPCase(6, 11, 5, has_bias, neuron) for neuron in NEURONS for has_bias in (False, True)]

# Small enough for Triton's interpreter, still covering every neuron, both bias settings and the edges.
TINY_CASES = _cycle([
    (1, 1, 1), (1, 7, 3), (5, 1, 4), (3, 6, 1), (17, 33, 9), (2, 100, 5), (70, 20, 67), (0, 5, 3),
    (4, 0, 3), (9, 13, 70), (33, 40, 2), (3, 65, 3),
])


def ip_arrays(case: IPCase, dtype: str) -> dict[str, np.ndarray | None]:
    """Seeded x, w, b (or None), dy for a case. w is scaled by 1/sqrt(K): pre-activations are O(1)."""
    rng = np.random.default_rng(zlib.crc32(f"{case.id}-{dtype}".encode()))
    x = rng.standard_normal((case.n, case.k))
    w = rng.standard_normal((case.o, case.k)) / np.sqrt(max(case.k, 1))
    b = rng.standard_normal(case.o) * 0.5 if case.has_bias else None
    dy = rng.standard_normal((case.n, case.o))
    cast = lambda a: None if a is None else a.astype(dtype)
    return {"x": cast(x), "w": cast(w), "b": cast(b), "dy": cast(dy)}


def torch_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, neuron: str, slope: float) -> np.ndarray:
    """neuron(x @ w.T + b) in torch float64."""
    z = F.linear(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                 None if b is None else torch.from_numpy(b).double())
    act = {
        "identity": lambda t: t,
        "relu": torch.relu,
        "leaky_relu": lambda t: F.leaky_relu(t, slope),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "exp": torch.exp,
    }[neuron]
    return act(z).numpy()


def torch_backward(x: np.ndarray, w: np.ndarray, dy: np.ndarray) -> dict[str, np.ndarray]:
    """dx = dy @ w, dw = dy.T @ x, db = sum_n dy, in torch float64."""
    tx, tw, tdy = (torch.from_numpy(a).double() for a in (x, w, dy))
    return {"dx": (tdy @ tw).numpy(), "dw": (tdy.T @ tx).numpy(), "db": tdy.sum(0).numpy()}


def run_ops(impl, case: IPCase, arrays: dict, dtype: str) -> dict[str, np.ndarray]:
    """Every op of the family on ``impl``: y, dx, dw, db as NumPy."""
    x, w, b, dy = arrays["x"], arrays["w"], arrays["b"], arrays["dy"]
    n, k, o = case.n, case.k, case.o
    return {
        "y": call_op(impl, "inner_product_forward", x=x, w=w, b=b, y=np.empty((n, o), dtype),
                     neuron=case.neuron, negative_slope=SLOPE)["y"],
        "dx": call_op(impl, "inner_product_backward_data", dy=dy, w=w, dx=np.empty((n, k), dtype))["dx"],
        "dw": call_op(impl, "inner_product_backward_weight", x=x, dy=dy, dw=np.empty((o, k), dtype))["dw"],
        "db": call_op(impl, "inner_product_backward_bias", dy=dy, db=np.empty(o, dtype))["db"],
    }


def reductions(case: IPCase) -> dict[str, int]:
    """The reduction length behind each output (for the tolerance)."""
    return {"y": case.k, "dx": case.o, "dw": case.n, "db": case.n}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", REFERENCE_CASES, ids=lambda c: c.id)
def test_matches_torch(case, dtype):
    arrays = ip_arrays(case, dtype)
    got = run_ops(CPU, case, arrays, dtype)
    want = {"y": torch_forward(arrays["x"], arrays["w"], arrays["b"], case.neuron, SLOPE),
            **torch_backward(arrays["x"], arrays["w"], arrays["dy"])}
    for name, red in reductions(case).items():
        assert got[name].dtype == np.dtype(dtype), name
        assert_close(got[name], want[name], dtype, reduction=red, what=f"{case.id}.{name}")


@given(n=st.integers(1, 12), k=st.integers(1, 40), o=st.integers(1, 12), neuron=st.sampled_from(NEURONS),
       has_bias=st.booleans())
def test_random_shapes_match_torch(n, k, o, neuron, has_bias):
    case = IPCase(n, k, o, has_bias, neuron)
    arrays = ip_arrays(case, "float32")
    y = call_op(CPU, "inner_product_forward", x=arrays["x"], w=arrays["w"], b=arrays["b"],
                y=np.empty((n, o), np.float32), neuron=neuron, negative_slope=SLOPE)["y"]
    assert_close(y, torch_forward(arrays["x"], arrays["w"], arrays["b"], neuron, SLOPE), "float32", reduction=k)


def _loss(x: np.ndarray, w: np.ndarray, b: np.ndarray, g: np.ndarray) -> float:
    """L = sum(g * (x @ w.T + b)), through the reference forward."""
    y = np.empty((x.shape[0], w.shape[0]))
    call = CPU.module("inner_product").inner_product_forward
    call(x, w, b, y)
    return float(np.sum(g * y))


@pytest.mark.parametrize("shape", [(3, 4, 2), (1, 5, 3), (4, 1, 1)])
def test_gradients_match_finite_differences(shape):
    """Central differences of L = sum(g * y) against backward_data/weight/bias, every element (float64)."""
    n, k, o = shape
    rng = np.random.default_rng(n * 100 + k * 10 + o)
    x, w, b, g = (rng.standard_normal(s) for s in ((n, k), (o, k), (o,), (n, o)))
    got = {name: call_op(CPU, op, **kwargs)[name] for name, op, kwargs in (
        ("dx", "inner_product_backward_data", dict(dy=g, w=w, dx=np.empty((n, k)))),
        ("dw", "inner_product_backward_weight", dict(x=x, dy=g, dw=np.empty((o, k)))),
        ("db", "inner_product_backward_bias", dict(dy=g, db=np.empty(o))),
    )}
    eps = 1e-6
    for name, param in (("dx", x), ("dw", w), ("db", b)):
        numeric = np.empty_like(param)
        for idx in np.ndindex(param.shape):
            saved = param[idx]
            param[idx] = saved + eps
            plus = _loss(x, w, b, g)
            param[idx] = saved - eps
            minus = _loss(x, w, b, g)
            param[idx] = saved
            numeric[idx] = (plus - minus) / (2 * eps)
        # L is linear in each parameter: central differences are exact up to rounding (~1e-16 / eps).
        np.testing.assert_allclose(got[name], numeric, rtol=1e-7, atol=1e-8, err_msg=name)


def test_forward_writes_in_place_and_returns_none():
    from mocha_triton.cpu_ref import inner_product as ip

    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)
    y = np.full((4, 2), np.nan)
    assert ip.inner_product_forward(x, w, b, y, "relu") is None
    np.testing.assert_allclose(y, np.maximum(x @ w.T + b, 0), rtol=1e-14)


def _bad_calls():
    from mocha_triton.cpu_ref import inner_product as ip

    f64, f32 = np.float64, np.float32
    z = lambda *shape, dt=f64: np.zeros(shape, dt)
    return [
        (lambda: ip.inner_product_forward(z(2, 3), z(4, 5), None, z(2, 4)), ValueError,
         r"inner_product_forward: x has 3 features but w expects 5 \(w has shape \(4, 5\)\)"),
        (lambda: ip.inner_product_forward(z(2, 3), z(4, 3), z(3), z(2, 4)), ValueError,
         r"inner_product_forward: b has shape \(3,\), expected \(4,\)"),
        (lambda: ip.inner_product_forward(z(2, 3), z(4, 3), z(4, 1), z(2, 4)), ValueError,
         r"inner_product_forward: b has shape \(4, 1\), expected \(4,\)"),
        (lambda: ip.inner_product_forward(z(2, 3), z(4, 3), None, z(4, 2)), ValueError,
         r"inner_product_forward: y has shape \(4, 2\), expected \(2, 4\)"),
        (lambda: ip.inner_product_forward(z(2, 3, 1), z(4, 3), None, z(2, 4)), ValueError,
         r"inner_product_forward: x must be 2-D, got shape \(2, 3, 1\)"),
        (lambda: ip.inner_product_forward(z(2, 3), z(12), None, z(2, 4)), ValueError,
         r"inner_product_forward: w must be 2-D, got shape \(12,\)"),
        (lambda: ip.inner_product_forward(z(2, 3, dt=np.int64), z(4, 3), None, z(2, 4)), TypeError,
         r"inner_product_forward: x has dtype int64; expected one of \('float32', 'float64'\)"),
        (lambda: ip.inner_product_forward(z(2, 3, dt=f32), z(4, 3), None, z(2, 4)), TypeError,
         r"inner_product_forward: all float arguments must share one dtype, got x=float32, w=float64"),
        (lambda: ip.inner_product_forward(z(2, 3), z(4, 3), z(4, dt=f32), z(2, 4)), TypeError,
         r"inner_product_forward: all float arguments must share one dtype"),
        (lambda: ip.inner_product_forward(z(2, 3), z(4, 3), None, z(2, 4), neuron="softplus"), ValueError,
         r"inner_product_forward: neuron must be one of \('identity', 'relu'"),
        (lambda: ip.inner_product_forward(z(2, 3), z(4, 3), None, z(2, 4), "leaky_relu", float("inf")),
         ValueError, r"inner_product_forward: negative_slope must be finite"),
        (lambda: ip.inner_product_forward([[1.0]], z(1, 1), None, z(1, 1)), TypeError,
         r"inner_product_forward: x must be an array/tensor, got list"),
        (lambda: ip.inner_product_backward_data(z(2, 4), z(5, 3), z(2, 3)), ValueError,
         r"inner_product_backward_data: dy has 4 outputs but w has 5 rows \(w has shape \(5, 3\)\)"),
        (lambda: ip.inner_product_backward_data(z(2, 4), z(4, 3), z(3, 2)), ValueError,
         r"inner_product_backward_data: dx has shape \(3, 2\), expected \(2, 3\)"),
        (lambda: ip.inner_product_backward_data(z(2, 4), z(4, 3), z(2, 3, dt=f32)), TypeError,
         r"inner_product_backward_data: all float arguments must share one dtype"),
        (lambda: ip.inner_product_backward_weight(z(2, 3), z(5, 4), z(4, 3)), ValueError,
         r"inner_product_backward_weight: x has 2 samples but dy has 5"),
        (lambda: ip.inner_product_backward_weight(z(2, 3), z(2, 4), z(3, 4)), ValueError,
         r"inner_product_backward_weight: dw has shape \(3, 4\), expected \(4, 3\)"),
        (lambda: ip.inner_product_backward_weight(z(2, 3, 1), z(2, 4), z(4, 3)), ValueError,
         r"inner_product_backward_weight: x must be 2-D"),
        (lambda: ip.inner_product_backward_bias(z(2, 4), z(2)), ValueError,
         r"inner_product_backward_bias: db has shape \(2,\), expected \(4,\)"),
        (lambda: ip.inner_product_backward_bias(z(8), z(8)), ValueError,
         r"inner_product_backward_bias: dy must be 2-D, got shape \(8,\)"),
        (lambda: ip.inner_product_backward_bias(z(2, 4, dt=np.int32), z(4)), TypeError,
         r"inner_product_backward_bias: dy has dtype int32"),
    ]


@pytest.mark.parametrize("index", range(len(_bad_calls())))
def test_bad_inputs(index):
    call, exc, match = _bad_calls()[index]
    with pytest.raises(exc, match=match):
        call()
