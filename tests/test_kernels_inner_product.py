"""kernels.inner_product equals cpu_ref.inner_product (precision "ieee"), and rejects what cpu_ref rejects.

The products run through kernels.gemm, so every case runs under each gemm autotune config on a GPU
(``MOCHA_TRITON_ALL_CONFIGS=1``); gemm's own strided/batched/split-K behaviour is tested in
tests/test_kernels_gemm.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_cpu_ref_inner_product import SLOPE, TINY_CASES, IPCase, ip_arrays, reductions, run_ops

from support import CPU, TRITON, assert_close, call_op, triton_config_contexts


def _contexts():
    """The gemm autotune configs (the column-sum kernel of the bias gradient is not autotuned)."""
    from mocha_triton.kernels import gemm

    return triton_config_contexts(gemm)


@pytest.mark.parametrize("case", TINY_CASES, ids=lambda c: c.id)
def test_matches_reference(case):
    arrays = ip_arrays(case, "float32")
    want = run_ops(CPU, case, arrays, "float32")
    for label, context in _contexts():
        with context:
            got = run_ops(TRITON, case, arrays, "float32")
        for name, red in reductions(case).items():
            assert_close(got[name], want[name], "float32", reduction=red, what=f"{label}: {case.id}.{name}")


def test_results_are_deterministic():
    case = IPCase(37, 90, 21, True, "tanh")
    arrays = ip_arrays(case, "float32")
    first = run_ops(TRITON, case, arrays, "float32")
    second = run_ops(TRITON, case, arrays, "float32")
    for name in first:
        assert first[name].tobytes() == second[name].tobytes(), name


def test_bias_gradient_over_many_rows():
    """N spans several row chunks of the column-sum kernel and O several column blocks."""
    rng = np.random.default_rng(21)
    dy = rng.standard_normal((150, 260)).astype(np.float32)
    got = call_op(TRITON, "inner_product_backward_bias", dy=dy, db=np.empty(260, np.float32))["db"]
    want = call_op(CPU, "inner_product_backward_bias", dy=dy, db=np.empty(260, np.float32))["db"]
    assert_close(got, want, "float32", reduction=150)


@pytest.mark.parametrize("mode", ["tf32", "tf32x3"])
def test_other_precisions_run_and_stay_close(mode):
    """The tl.dot precision reaches the kernel; tf32 is looser than IEEE fp32 on a GPU."""
    from mocha_triton.kernels import precision

    case = IPCase(20, 70, 30, True, "identity")
    arrays = ip_arrays(case, "float32")
    want = run_ops(CPU, case, arrays, "float32")
    with precision(mode):
        got = run_ops(TRITON, case, arrays, "float32")
    tol = {"tf32": 1e-2, "tf32x3": 1e-4}[mode]
    for name in ("y", "dx", "dw"):
        err = np.max(np.abs(got[name] - want[name])) / np.max(np.abs(want[name]))
        assert err < tol, f"{mode} {name}: relative error {err:.2e}"


def _t(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype, device=TRITON.device)


def test_rejects_float64_and_bad_shapes():
    from mocha_triton.kernels import inner_product as ip

    with pytest.raises(TypeError, match=r"inner_product_forward: x has dtype float64; expected one of \('float32',\)"):
        ip.inner_product_forward(_t(2, 3, dtype=torch.float64), _t(4, 3), None, _t(2, 4))
    with pytest.raises(TypeError, match=r"inner_product_backward_bias: dy has dtype float64"):
        ip.inner_product_backward_bias(_t(2, 3, dtype=torch.float64), _t(3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"inner_product_forward: x has 3 features but w expects 5"):
        ip.inner_product_forward(_t(2, 3), _t(4, 5), None, _t(2, 4))
    with pytest.raises(ValueError, match=r"inner_product_forward: b has shape \(3,\), expected \(4,\)"):
        ip.inner_product_forward(_t(2, 3), _t(4, 3), _t(3), _t(2, 4))
    with pytest.raises(ValueError, match=r"inner_product_backward_data: dy has 4 outputs but w has 5 rows"):
        ip.inner_product_backward_data(_t(2, 4), _t(5, 3), _t(2, 3))
    with pytest.raises(ValueError, match=r"inner_product_backward_weight: x has 2 samples but dy has 5"):
        ip.inner_product_backward_weight(_t(2, 3), _t(5, 4), _t(4, 3))
    with pytest.raises(ValueError, match=r"inner_product_backward_bias: db has shape \(2,\), expected \(4,\)"):
        ip.inner_product_backward_bias(_t(2, 4), _t(2))
    with pytest.raises(ValueError, match=r"inner_product_forward: neuron must be one of"):
        ip.inner_product_forward(_t(2, 3), _t(4, 3), None, _t(2, 4), neuron="gelu")
    with pytest.raises(ValueError, match=r"inner_product_forward: x must be contiguous"):
        ip.inner_product_forward(_t(3, 2).t(), _t(4, 3), None, _t(2, 4))
    with pytest.raises(TypeError, match=r"inner_product_backward_data: dy must be a torch.Tensor"):
        ip.inner_product_backward_data(np.zeros((2, 4), np.float32), _t(4, 3), _t(2, 3))


def test_forward_keeps_slope_and_neuron():
    """negative_slope reaches the fused epilogue (a default slope would not match)."""
    case = IPCase(6, 9, 5, True, "leaky_relu")
    arrays = ip_arrays(case, "float32")
    kwargs = dict(x=arrays["x"], w=arrays["w"], b=arrays["b"], y=np.empty((6, 5), np.float32),
                  neuron="leaky_relu", negative_slope=SLOPE)
    got = call_op(TRITON, "inner_product_forward", **kwargs)["y"]
    assert (got < 0).any()
    assert_close(got, call_op(CPU, "inner_product_forward", **kwargs)["y"], "float32", reduction=9)
