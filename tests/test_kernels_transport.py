"""kernels.transport equals cpu_ref.transport (float32; the kernels have no tl.dot, so precision does not apply).

The cases cover both Sinkhorn variants: K resident in registers, and K streamed in tiles (the last cases of
cases_transport.CASES, whose padded K exceeds RESIDENT_MAX_TILE).
"""

import numpy as np
import pytest

from cases_transport import CASES, Case, case_id, make_case, outputs_like
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts


def test_cases_cover_both_variants():
    from mocha_triton.kernels import transport

    streamed = [case for case in CASES if transport.resident_blocks(case.p, case.q) is None]
    assert streamed and len(streamed) < len(CASES)
    assert all(transport.resident_blocks(case.p, case.q) is None for case in CASES[-2:])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_matches_reference(case):
    from mocha_triton.kernels import transport

    pred, target, cost = make_case(case, "float32")
    kwargs = dict(pred=pred, target=target, cost=cost, **outputs_like(case, "float32"), lambda_=case.lambda_,
                  n_iter=case.n_iter)
    want = call_op(CPU, "sinkhorn_forward", **kwargs)
    for label, context in triton_config_contexts(transport):
        with context:
            got = call_op(TRITON, "sinkhorn_forward", **kwargs)
        for name, reduction in (("u", case.p + case.q), ("v", case.p + case.q), ("sample_loss", case.p * case.q),
                                ("loss", case.p * case.q * case.n)):
            assert_close(got[name], want[name], "float32", reduction, what=f"{label} {name}")


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 1500)])
def test_backward_matches_reference(shape, center):
    rng = np.random.default_rng(shape[1])
    u = np.exp(rng.uniform(-8, 3, shape)).astype(np.float32)
    u[0, 0] = 0.0  # clamped before the log
    kwargs = dict(u=u, dpred=np.empty_like(u), lambda_=0.8, scale=1.5, center=center)
    assert_close(call_op(TRITON, "sinkhorn_backward", **kwargs)["dpred"],
                 call_op(CPU, "sinkhorn_backward", **kwargs)["dpred"], "float32", reduction=shape[1])


def test_backward_in_place_and_forward_is_deterministic():
    from mocha_triton.kernels import transport

    case = Case(3, 9, 6, 2.5, 10, 31)
    pred, target, cost = make_case(case, "float32")
    args = [TRITON.to_backend(x) for x in (pred, target, cost, *outputs_like(case, "float32").values())]
    transport.sinkhorn_forward(*args, case.lambda_, case.n_iter)
    first = [TRITON.to_numpy(t).copy() for t in args[3:]]
    transport.sinkhorn_forward(*args, case.lambda_, case.n_iter)
    assert all(np.array_equal(a, TRITON.to_numpy(t)) for a, t in zip(first, args[3:]))
    u = args[3]
    want = call_op(CPU, "sinkhorn_backward", u=first[0], dpred=np.empty_like(first[0]), lambda_=case.lambda_)
    transport.sinkhorn_backward(u, u, case.lambda_)
    assert_close(TRITON.to_numpy(u), want["dpred"], "float32", reduction=case.p)


def test_rejects_float64_and_bad_shapes():
    from mocha_triton.kernels import transport

    case = Case(2, 3, 4, 1.0, 2, 0)
    f32 = [TRITON.to_backend(x) for x in (*make_case(case, "float32"), *outputs_like(case, "float32").values())]
    f64 = [TRITON.to_backend(x) for x in (*make_case(case, "float64"), *outputs_like(case, "float64").values())]
    with pytest.raises(TypeError, match=r"sinkhorn_forward: pred has dtype float64; expected one of \('float32',\)"):
        transport.sinkhorn_forward(*f64, 1.0, 2)
    bad_cost = TRITON.to_backend(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"sinkhorn_forward: cost has shape \(4, 3\), expected \(3, 4\)"):
        transport.sinkhorn_forward(f32[0], f32[1], bad_cost, *f32[3:], 1.0, 2)
    with pytest.raises(ValueError, match=r"sinkhorn_forward: lambda_ must be > 0"):
        transport.sinkhorn_forward(*f32, -0.5, 2)
    with pytest.raises(TypeError, match=r"sinkhorn_backward: u has dtype float64"):
        transport.sinkhorn_backward(f64[3], f64[3], 1.0)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        transport.sinkhorn_backward(np.ones((2, 3), np.float32), f32[3], 1.0)
