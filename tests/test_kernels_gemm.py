"""kernels.gemm on strided, transposed, broadcast and batched views, against NumPy float64.

Covers every layout the layers feed it (``w.t()``, ``dy.t()``, a permuted NCHW activation as a batch
of (HW, C) matrices, an expanded operand with batch stride 0, a sliced output), the fused bias along
either axis with each neuron, split-K (forced, and the heuristic that picks it), the 64-bit in-tile
offset path, and gemm's own argument checks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from mocha_triton.contract import NEURONS
from mocha_triton.cpu_ref._activations import apply_neuron
from support import TRITON, assert_close, triton_config_contexts

SLOPE = 0.2


def _gemm_module():
    from mocha_triton.kernels import gemm

    return gemm


def _tensor(rng: np.random.Generator, *shape: int) -> torch.Tensor:
    return TRITON.to_backend(rng.standard_normal(shape).astype(np.float32))


def _expected(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None, bias_along: str, neuron: str) -> np.ndarray:
    """neuron(a @ b + bias) in float64 NumPy, from the views themselves (strides and all)."""
    z = np.matmul(TRITON.to_numpy(a).astype(np.float64), TRITON.to_numpy(b).astype(np.float64))
    if bias is not None:
        bias64 = TRITON.to_numpy(bias).astype(np.float64)
        z = z + (bias64 if bias_along == "n" else bias64[:, None])
    apply_neuron(z, neuron, SLOPE)
    return z


def _poisoned(shape: tuple[int, ...]) -> torch.Tensor:
    return TRITON.to_backend(np.full(shape, np.nan, np.float32))


# Each layout builds (a, b, c) views for M=37, K=45, N=29 (B=3 where batched): odd sizes, no multiples
# of any block, so every tile edge is masked.
M, K, N, B = 37, 45, 29, 3


def _layouts() -> dict[str, Callable[[np.random.Generator], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    return {
        "contiguous": lambda r: (_tensor(r, M, K), _tensor(r, K, N), _poisoned((M, N))),
        "a_transposed": lambda r: (_tensor(r, K, M).t(), _tensor(r, K, N), _poisoned((M, N))),
        "b_transposed_like_w_t": lambda r: (_tensor(r, M, K), _tensor(r, N, K).t(), _poisoned((M, N))),
        "all_transposed": lambda r: (_tensor(r, K, M).t(), _tensor(r, N, K).t(), _poisoned((N, M)).t()),
        "sliced_rows_and_columns": lambda r: (_tensor(r, M, K + 7)[:, 3:K + 3], _tensor(r, 2 * K, N)[::2],
                                              _poisoned((2 * M, N + 1))[::2, 1:]),
        "batched": lambda r: (_tensor(r, B, M, K), _tensor(r, B, K, N), _poisoned((B, M, N))),
        "batched_shared_b": lambda r: (_tensor(r, B, M, K), _tensor(r, K, N), _poisoned((B, M, N))),
        "expanded_a": lambda r: (_tensor(r, M, K).expand(B, M, K), _tensor(r, B, K, N), _poisoned((B, M, N))),
        # a 1x1 convolution on NCHW: x (B, C=K, HW=M) seen as (B, HW, C), w.t() (C, F=N), y seen as (B, HW, F)
        "nchw_1x1_conv": lambda r: (_tensor(r, B, K, M).permute(0, 2, 1), _tensor(r, N, K).t(),
                                    _poisoned((B, N, M)).permute(0, 2, 1)),
    }


@pytest.mark.parametrize("layout", list(_layouts()))
def test_layouts_match_numpy(layout):
    gemm = _gemm_module()
    rng = np.random.default_rng(len(layout))
    a, b, c = _layouts()[layout](rng)
    want = _expected(a, b, None, "n", "identity")
    for label, context in triton_config_contexts(gemm):
        with context:
            gemm.gemm(a, b, c)
        assert_close(TRITON.to_numpy(c), want, "float32", reduction=K, what=f"{layout} {label}")


@pytest.mark.parametrize("bias_along", ["n", "m"])
@pytest.mark.parametrize("neuron", NEURONS)
def test_fused_bias_and_neuron(neuron, bias_along):
    gemm = _gemm_module()
    rng = np.random.default_rng(NEURONS.index(neuron))
    a, b = _tensor(rng, 2, 19, 33), _tensor(rng, 33, 70) * (1 / 33**0.5)
    bias = _tensor(rng, 70 if bias_along == "n" else 19)
    c = _poisoned((2, 19, 70))
    gemm.gemm(a, b, c, bias=bias, bias_along=bias_along, neuron=neuron, negative_slope=SLOPE)
    assert_close(TRITON.to_numpy(c), _expected(a, b, bias, bias_along, neuron), "float32", reduction=33)


@pytest.mark.parametrize("bias_along", ["n", "m"])
def test_split_k_matches_and_is_deterministic(bias_along):
    gemm = _gemm_module()
    rng = np.random.default_rng(3)
    a, b = _tensor(rng, 2, 300, 21).permute(0, 2, 1), _tensor(rng, 300, 13)  # a: column-major batches
    bias = _tensor(rng, 13 if bias_along == "n" else 21)
    want = _expected(a, b, bias, bias_along, "tanh")
    results = []
    for split_k in (4, 4, 1):  # 300 = 128 + 128 + 44: three slices of 128 (a multiple of every BLOCK_K)
        c = _poisoned((2, 21, 13))
        gemm.gemm(a, b, c, bias=bias, bias_along=bias_along, neuron="tanh", split_k=split_k)
        assert_close(TRITON.to_numpy(c), want, "float32", reduction=300, what=f"split_k={split_k}")
        results.append(TRITON.to_numpy(c))
    assert results[0].tobytes() == results[1].tobytes()


def test_split_k_heuristic():
    gemm = _gemm_module()
    cpu = torch.device("cpu")  # counts as an H100's 132 SMs
    assert gemm.choose_split_k(1, 64, 64, 400_000, cpu) == 128  # a 1x1-conv weight gradient: capped
    assert gemm.choose_split_k(1, 64, 64, 10_000, cpu) == 9  # slices of at least 1024
    assert gemm.choose_split_k(2, 128, 64, 100_000, cpu) == 66  # about two programs per SM
    assert gemm.choose_split_k(1, 64, 64, 1000, cpu) == 1  # short K
    assert gemm.choose_split_k(1, 1024, 1024, 100_000, cpu) == 1  # enough tiles already
    assert gemm.choose_split_k(64, 256, 256, 100_000, cpu) == 1  # a big batch fills the GPU


def test_wide_offsets_path(monkeypatch):
    """With 64-bit in-tile offsets forced (as for strides near 2**31 / block), results are unchanged."""
    gemm = _gemm_module()
    monkeypatch.setattr(gemm, "MAX_BLOCK", 2**31)
    rng = np.random.default_rng(9)
    a, b, bias = _tensor(rng, 70, 2, 40)[:, 1], _tensor(rng, 29, 40).t(), _tensor(rng, 70)
    for split_k in (1, 2):
        c = _poisoned((70, 29))
        gemm.gemm(a, b, c, bias=bias, bias_along="m", neuron="relu", split_k=split_k)
        assert_close(TRITON.to_numpy(c), _expected(a, b, bias, "m", "relu"), "float32", reduction=40)


def test_empty_reduction_and_empty_output():
    gemm = _gemm_module()
    rng = np.random.default_rng(1)
    bias = _tensor(rng, 6)
    c = _poisoned((4, 6))
    gemm.gemm(_tensor(rng, 4, 0), _tensor(rng, 0, 6), c, bias=bias, neuron="exp")  # K = 0: c = exp(bias)
    np.testing.assert_allclose(TRITON.to_numpy(c), np.exp(np.broadcast_to(TRITON.to_numpy(bias), (4, 6))),
                               rtol=1e-6)
    gemm.gemm(_tensor(rng, 0, 5), _tensor(rng, 5, 6), _poisoned((0, 6)))  # M = 0: nothing to do


def _bad_calls():
    gemm = _gemm_module().gemm
    z = lambda *shape, dtype=torch.float32: torch.zeros(shape, dtype=dtype, device=TRITON.device)
    buf = z(6, 6)
    return [
        (lambda: gemm(z(3, 4), z(5, 2), z(3, 2)), ValueError, r"gemm: a has 4 columns but b has 5 rows"),
        (lambda: gemm(z(3, 4), z(4, 2), z(2, 3)), ValueError, r"gemm: c has shape \(2, 3\), expected \(\.\.\., 3, 2\)"),
        (lambda: gemm(z(3, 4, dtype=torch.float64), z(4, 2), z(3, 2)), TypeError,
         r"gemm: a has dtype float64; expected one of \('float32',\)"),
        (lambda: gemm(z(1, 3, 4, 1), z(4, 2), z(3, 2)), ValueError, r"gemm: a must be 2-D or 3-D"),
        (lambda: gemm(z(2, 3, 4), z(4, 2), z(3, 2)), ValueError, r"gemm: a has batch 2 but c has shape \(3, 2\)"),
        (lambda: gemm(z(2, 3, 4), z(3, 4, 2), z(2, 3, 2)), ValueError, r"gemm: b has batch 3"),
        (lambda: gemm(z(3, 4), z(4, 2), z(3, 2), bias=z(3)), ValueError,
         r"gemm: bias has shape \(3,\), expected \(2,\) along n"),
        (lambda: gemm(z(3, 4), z(4, 2), z(3, 2), bias=z(2), bias_along="m"), ValueError,
         r"gemm: bias has shape \(2,\), expected \(3,\) along m"),
        (lambda: gemm(z(3, 4), z(4, 2), z(3, 2), bias_along="k"), ValueError, r"gemm: bias_along must be one of"),
        (lambda: gemm(z(3, 4), z(4, 2), z(3, 2), neuron="gelu"), ValueError, r"gemm: neuron must be one of"),
        (lambda: gemm(z(3, 4), z(4, 2), z(3, 2), negative_slope=float("nan")), ValueError,
         r"gemm: negative_slope must be finite"),
        (lambda: gemm(z(3, 4), z(4, 2), z(3, 2), split_k=0), ValueError, r"gemm: split_k must be a positive int"),
        (lambda: gemm(z(3, 4), z(4, 2), z(1, 2).expand(3, 2)), ValueError, r"gemm: c must not be a broadcast"),
        (lambda: gemm(buf[:3, :4], z(4, 2), buf[2:5, 2:4]), ValueError, r"gemm: c overlaps a in memory"),
        (lambda: gemm(z(3, 4), buf[:4, :2], buf[3:6, 1:3]), ValueError, r"gemm: c overlaps b in memory"),
        (lambda: gemm(np.zeros((3, 4), np.float32), z(4, 2), z(3, 2)), TypeError, r"gemm: a must be a torch.Tensor"),
    ]


@pytest.mark.parametrize("index", range(16))
def test_rejects_bad_arguments(index):
    calls = _bad_calls()
    assert len(calls) == 16
    call, exc, match = calls[index]
    with pytest.raises(exc, match=match):
        call()


def test_disjoint_views_of_one_buffer_are_fine():
    """Reading one part of a buffer and writing another is not an overlap."""
    gemm = _gemm_module()
    rng = np.random.default_rng(4)
    buf = _tensor(rng, 10, 8)
    a, c = buf[:5, :3], buf[5:, :]
    b = _tensor(rng, 3, 8)
    want = _expected(a, b, None, "n", "identity")
    gemm.gemm(a, b, c)
    assert_close(TRITON.to_numpy(c), want, "float32", reduction=3)
