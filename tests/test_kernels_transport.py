"""kernels.transport equals cpu_ref.transport (float32; the kernels have no tl.dot, so precision does not apply).

Every forward test runs both Sinkhorn variants: K resident in registers where it fits, and the host-driven
loop (one launch per half-iteration), which the last cases of cases_transport.CASES take by their size and
every case takes when RESIDENT_MAX_TILE is forced to 0. Degenerate samples (zero mass, NaN) must give the
reference's NaN/inf pattern; outputs aliasing inputs are rejected with the shared message.
"""

import numpy as np
import pytest

from cases_transport import (
    CASES,
    DEGENERATE_SAMPLES,
    Case,
    assert_same_nonfinite,
    case_id,
    degenerate_inputs,
    make_case,
    outputs_like,
)
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts

PATHS = ["by-size", "host-loop"]


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """"by-size": the variant the sizes choose; "host-loop": the host-driven variant for every size."""
    from mocha_triton.kernels import transport

    if request.param == "host-loop":
        monkeypatch.setattr(transport, "RESIDENT_MAX_TILE", 0)
        assert transport.resident_blocks(1, 1) is None
    return request.param


def test_cases_cover_both_variants():
    from mocha_triton.kernels import transport

    host_loop = [case for case in CASES if transport.resident_blocks(case.p, case.q) is None]
    assert host_loop and len(host_loop) < len(CASES)
    assert all(transport.resident_blocks(case.p, case.q) is None for case in CASES[-2:])


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_matches_reference(case, path):
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
            assert_close(got[name], want[name], "float32", reduction, what=f"{path} {label} {name}")


@pytest.mark.parametrize("sizes", [(5, 7), (70, 90)], ids=["5x7", "70x90"])
def test_degenerate_samples_match_the_reference(sizes, path):
    """Zero-mass and NaN samples: NaN losses (never a finite one), the reference's NaN/inf in u and v, and the
    sound samples unaffected; the mean loss is NaN."""
    case = Case(len(DEGENERATE_SAMPLES), *sizes, 2.0, 12, 13)
    pred, target, cost = degenerate_inputs(case, "float32")
    kwargs = dict(pred=pred, target=target, cost=cost, **outputs_like(case, "float32"), lambda_=case.lambda_,
                  n_iter=case.n_iter)
    with np.errstate(divide="ignore", invalid="ignore"):  # NumPy's, and the interpreter's (which runs on NumPy)
        want = call_op(CPU, "sinkhorn_forward", **kwargs)
        got = call_op(TRITON, "sinkhorn_forward", **kwargs)
    sound = np.array([kind == "sound" for kind in DEGENERATE_SAMPLES])
    assert np.all(np.isnan(got["sample_loss"][~sound])) and np.isnan(got["loss"][0])
    for name, reduction in (("u", case.p + case.q), ("v", case.p + case.q), ("sample_loss", case.p * case.q),
                            ("loss", case.p * case.q * case.n)):
        assert_same_nonfinite(got[name], want[name], "float32", reduction, what=f"{path} {name}")


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 1500)])
def test_backward_matches_reference(shape, center):
    rng = np.random.default_rng(shape[1])
    u = np.exp(rng.uniform(-8, 3, shape)).astype(np.float32)
    u[0, 0] = 0.0  # clamped before the log
    kwargs = dict(u=u, dpred=np.empty_like(u), lambda_=0.8, scale=1.5, center=center)
    assert_close(call_op(TRITON, "sinkhorn_backward", **kwargs)["dpred"],
                 call_op(CPU, "sinkhorn_backward", **kwargs)["dpred"], "float32", reduction=shape[1])


@pytest.mark.parametrize("center", [True, False])
def test_backward_keeps_nan_like_the_reference(center):
    """The clamp max(u, 1e-20) keeps NaN (tl.maximum's default would give log(1e-20) = -46.05 there); inf and 0
    behave as in NumPy. The last row is long enough for two blocks of the row loops."""
    u = np.full((4, 1500), 0.5, np.float32)
    u[0, :3] = [0.5, np.nan, 0.2]
    u[1, :3] = [0.1, 0.0, 3.0]
    u[2, :3] = [np.inf, 1.0, 2.0]
    u[3, 1400] = np.nan
    kwargs = dict(u=u, dpred=np.empty_like(u), lambda_=2.0, center=center)
    with np.errstate(invalid="ignore"):  # inf - inf when centring row 2
        want = call_op(CPU, "sinkhorn_backward", **kwargs)["dpred"]
        got = call_op(TRITON, "sinkhorn_backward", **kwargs)["dpred"]
    assert np.isnan(got[0, 1]) and np.isnan(got[3, 1400])
    assert_same_nonfinite(got, want, "float32", reduction=u.shape[1])


def test_backward_in_place_and_forward_is_deterministic(path):
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


def test_rejects_outputs_that_share_memory_with_other_arguments(path):
    """u over pred or v over target would be read after being overwritten (the host loop starts by writing
    u = 1/P): rejected with cpu_ref's message. sinkhorn_backward may still write over u itself."""
    from mocha_triton.kernels import transport

    case = Case(2, 3, 3, 1.0, 4, 0)
    pred, target, cost, *out = [TRITON.to_backend(x) for x in (*make_case(case, "float32"),
                                                               *outputs_like(case, "float32").values())]
    u, v, sample_loss, loss = out
    for args, message in (((pred, target, cost, pred, v, sample_loss, loss), "u must not share memory with pred"),
                          ((pred, target, cost, u, target, sample_loss, loss), "v must not share memory with target"),
                          ((pred, target, cost, u, v, sample_loss, sample_loss[1:2]),
                           "loss must not share memory with sample_loss")):
        with pytest.raises(ValueError, match=rf"sinkhorn_forward: {message} \(the outputs are written while"):
            transport.sinkhorn_forward(*args, 1.0, 4)
    buffer = TRITON.to_backend(np.ones(8, np.float32))
    with pytest.raises(ValueError, match=r"sinkhorn_backward: dpred must not share memory with u"):
        transport.sinkhorn_backward(buffer[:6].view(2, 3), buffer[2:8].view(2, 3), 1.0)
