"""cpu_ref.transport (Sinkhorn's iteration) against an independent torch float64 Sinkhorn, and its gradient
against torch autograd of the entropy-regularised OT distance; degenerate samples (zero mass, NaN) give the
oracle's NaN/inf pattern; outputs that share memory with another argument are rejected."""

import numpy as np
import pytest
import torch

from cases_transport import (
    CASES,
    DEGENERATE_SAMPLES,
    Case,
    assert_same_nonfinite,
    case_id,
    degenerate_inputs,
    make_case,
    oracle_sinkhorn,
    outputs_like,
)
from support import CPU, assert_close, call_op


def forward(impl, case: Case, dtype: str) -> tuple[dict, dict]:
    """(op outputs, oracle outputs) of one case."""
    pred, target, cost = make_case(case, dtype)
    got = call_op(impl, "sinkhorn_forward", pred=pred, target=target, cost=cost, **outputs_like(case, dtype),
                  lambda_=case.lambda_, n_iter=case.n_iter)
    return got, oracle_sinkhorn(pred, target, cost, case.lambda_, case.n_iter)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_matches_oracle(case, dtype):
    got, want = forward(CPU, case, dtype)
    # One element of u or v is a ratio of sums over P or Q bins; a loss sums P * Q terms.
    assert_close(got["u"], want["u"], dtype, reduction=case.p + case.q, what="u")
    assert_close(got["v"], want["v"], dtype, reduction=case.p + case.q, what="v")
    assert_close(got["sample_loss"], want["sample_loss"], dtype, reduction=case.p * case.q, what="sample_loss")
    assert_close(got["loss"], want["loss"], dtype, reduction=case.p * case.q * case.n, what="loss")


def test_plan_has_the_target_marginal_and_converges_to_the_prediction_marginal():
    """T = diag(u) K diag(v) has column sums b after any number of iterations, row sums a once converged, and
    its cost is then the loss."""
    case = Case(3, 6, 9, 3.0, 300, 11, zero_bins=True)
    pred, target, cost = make_case(case, "float64")
    got = call_op(CPU, "sinkhorn_forward", pred=pred, target=target, cost=cost, **outputs_like(case, "float64"),
                  lambda_=case.lambda_, n_iter=case.n_iter)
    plan = got["u"][:, :, None] * np.exp(-case.lambda_ * cost)[None] * got["v"][:, None, :]
    assert_close(plan.sum(axis=1), target, "float64", reduction=case.p, what="column sums")
    assert_close(plan.sum(axis=2), pred, "float64", reduction=case.q, what="row sums")
    assert_close(got["sample_loss"], (plan * cost).sum(axis=(1, 2)), "float64", reduction=case.p * case.q)


def oracle_gradient(u: np.ndarray, lambda_: float, scale: float, center: bool) -> np.ndarray:
    logs = torch.log(torch.clamp(torch.from_numpy(np.asarray(u, np.float64)), min=1e-20))
    if center:
        logs = logs - logs.mean(dim=1, keepdim=True)
    return (scale * logs / (lambda_ * u.shape[0])).numpy()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 33)])
def test_backward_formula(shape, center, dtype):
    rng = np.random.default_rng(shape[1])
    u = np.exp(rng.uniform(-8, 3, shape)).astype(dtype)
    u[0, 0] = 0.0  # an empty bin: log is clamped at log(1e-20), so the gradient stays finite
    got = call_op(CPU, "sinkhorn_backward", u=u, dpred=np.empty_like(u), lambda_=1.7, scale=0.6, center=center)
    assert_close(got["dpred"], oracle_gradient(u, 1.7, 0.6, center), dtype, reduction=shape[1], what="dpred")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_degenerate_samples_give_the_oracles_nan_and_inf(dtype):
    """A zero-mass histogram or a NaN makes its sample's transport cost NaN (so the mean loss is NaN, never a
    silently finite number); u and v get the oracle's NaN/inf pattern and the sound samples are unaffected."""
    case = Case(len(DEGENERATE_SAMPLES), 5, 7, 2.0, 30, 12)
    pred, target, cost = degenerate_inputs(case, dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        got = call_op(CPU, "sinkhorn_forward", pred=pred, target=target, cost=cost, **outputs_like(case, dtype),
                      lambda_=case.lambda_, n_iter=case.n_iter)
        want = oracle_sinkhorn(pred, target, cost, case.lambda_, case.n_iter)
    sound = np.array([kind == "sound" for kind in DEGENERATE_SAMPLES])
    assert np.all(np.isnan(got["sample_loss"][~sound])) and np.all(np.isfinite(got["sample_loss"][sound]))
    assert np.isnan(got["loss"][0])
    for name, reduction in (("u", case.p + case.q), ("v", case.p + case.q), ("sample_loss", case.p * case.q),
                            ("loss", case.p * case.q * case.n)):
        assert_same_nonfinite(got[name], want[name], dtype, reduction, what=name)


@pytest.mark.parametrize("center", [True, False])
def test_backward_keeps_nan(center):
    """NaN in u stays NaN (the clamp before the log must not turn it into log(1e-20)); centring spreads it
    over its row through the row mean; inf stays inf without centring."""
    u = np.array([[0.5, np.nan, 0.2], [0.1, 0.0, 3.0], [np.inf, 1.0, 2.0]])
    with np.errstate(invalid="ignore"):  # inf - inf when centring the last row
        got = call_op(CPU, "sinkhorn_backward", u=u, dpred=np.empty_like(u), lambda_=2.0, center=center)["dpred"]
    assert_same_nonfinite(got, oracle_gradient(u, 2.0, 1.0, center), "float64", reduction=3)
    assert np.isnan(got[0, 1]) and np.all(np.isfinite(got[1]))
    assert np.all(np.isnan(got[0])) == center


def test_backward_in_place():
    u = np.random.default_rng(0).uniform(0.1, 2.0, (3, 5))
    want = oracle_gradient(u, 2.0, 1.0, True)
    from mocha_triton.cpu_ref import transport

    transport.sinkhorn_backward(u, u, 2.0)
    assert_close(u, want, "float64", reduction=5)


def entropic_ot(a: torch.Tensor, b: torch.Tensor, cost: torch.Tensor, lambda_: float, n_iter: int) -> torch.Tensor:
    """W_lambda(a, b) = <T, M> + sum(T log T) / lambda_ with T from an unrolled Sinkhorn (differentiable)."""
    gibbs = torch.exp(-lambda_ * cost)
    u = torch.full_like(a, 1.0 / a.numel())
    for _ in range(n_iter):
        u = a / (gibbs @ (b / (gibbs.T @ u)))
    plan = u[:, None] * gibbs * (b / (gibbs.T @ u))[None, :]
    return (plan * cost).sum() + (plan * torch.log(plan)).sum() / lambda_


@pytest.mark.parametrize("case", [Case(3, 5, 7, 2.0, 300, 21), Case(2, 8, 4, 6.0, 400, 22)], ids=case_id)
def test_backward_is_the_gradient_of_the_regularised_distance(case):
    """Once converged, sinkhorn_backward(u) is the gradient of mean_n W_lambda(a_n, b_n) w.r.t. a, and
    sinkhorn_backward(v) the one w.r.t. b, up to a constant per sample: equal after centring both (the
    histograms live on the simplex, whose directions sum to zero)."""
    pred, target, cost = make_case(case, "float64")
    got = call_op(CPU, "sinkhorn_forward", pred=pred, target=target, cost=cost, **outputs_like(case, "float64"),
                  lambda_=case.lambda_, n_iter=case.n_iter)
    a, b = torch.tensor(pred, requires_grad=True), torch.tensor(target, requires_grad=True)
    total = sum(entropic_ot(a[n], b[n], torch.from_numpy(cost), case.lambda_, case.n_iter) for n in range(case.n))
    (total / case.n).backward()
    for name, scaling, grad in (("pred", got["u"], a.grad), ("target", got["v"], b.grad)):
        for center in (True, False):
            mine = call_op(CPU, "sinkhorn_backward", u=scaling, dpred=np.empty_like(scaling), lambda_=case.lambda_,
                           center=center)["dpred"]
            mine = mine - mine.mean(axis=1, keepdims=True)  # Mocha's uncentred values differ by a constant only
            want = (grad - grad.mean(dim=1, keepdim=True)).numpy()
            assert_close(mine, want, "float64", reduction=100, what=f"{name} gradient (center={center})")


def test_backward_is_not_the_gradient_of_the_reported_transport_cost():
    """The docstring's caveat, checked: the reported loss <T, M> has another gradient (the entropy term's)."""
    case = Case(1, 4, 5, 1.0, 300, 23)
    pred, target, cost = make_case(case, "float64")
    got = call_op(CPU, "sinkhorn_forward", pred=pred, target=target, cost=cost, **outputs_like(case, "float64"),
                  lambda_=case.lambda_, n_iter=case.n_iter)
    a = torch.tensor(pred[0], requires_grad=True)
    gibbs = torch.exp(-case.lambda_ * torch.from_numpy(cost))
    u = torch.full_like(a, 0.25)
    for _ in range(case.n_iter):
        u = a / (gibbs @ (torch.from_numpy(target[0]) / (gibbs.T @ u)))
    plan = u[:, None] * gibbs * (torch.from_numpy(target[0]) / (gibbs.T @ u))[None, :]
    (plan * torch.from_numpy(cost)).sum().backward()
    mine = call_op(CPU, "sinkhorn_backward", u=got["u"], dpred=np.empty_like(got["u"]), lambda_=case.lambda_)["dpred"]
    transport_cost_grad = (a.grad - a.grad.mean()).numpy()
    assert np.max(np.abs(mine[0] - transport_cost_grad)) > 1e-3 * np.max(np.abs(mine))


def test_bad_inputs():
    from mocha_triton.cpu_ref import transport

    case = Case(2, 3, 4, 1.0, 5, 0)
    pred, target, cost = make_case(case, "float64")
    out = outputs_like(case, "float64")

    def call(**changes):
        args = dict(pred=pred, target=target, cost=cost, **out, lambda_=1.0, n_iter=5)
        args.update(changes)
        transport.sinkhorn_forward(**args)

    with pytest.raises(ValueError, match=r"sinkhorn_forward: cost has shape \(4, 3\), expected \(3, 4\)"):
        call(cost=cost.T.copy())
    with pytest.raises(ValueError, match=r"sinkhorn_forward: target holds 1 samples but pred holds 2"):
        call(target=target[:1])
    with pytest.raises(ValueError, match=r"sinkhorn_forward: pred must be 2-D"):
        call(pred=pred.reshape(2, 3, 1))
    with pytest.raises(ValueError, match=r"sinkhorn_forward: u has shape \(2, 4\), expected \(2, 3\)"):
        call(u=np.empty((2, 4)))
    with pytest.raises(ValueError, match=r"sinkhorn_forward: loss has shape \(2,\), expected \(1,\)"):
        call(loss=np.empty(2))
    with pytest.raises(ValueError, match=r"sinkhorn_forward: lambda_ must be > 0, got -1.0"):
        call(lambda_=-1.0)
    with pytest.raises(ValueError, match=r"sinkhorn_forward: lambda_ must be finite"):
        call(lambda_=float("inf"))
    with pytest.raises(ValueError, match=r"sinkhorn_forward: n_iter must be a positive int, got 0"):
        call(n_iter=0)
    with pytest.raises(TypeError, match=r"sinkhorn_forward: all float arguments must share one dtype"):
        call(target=target.astype(np.float32))
    with pytest.raises(ValueError, match=r"sinkhorn_forward: pred must be \(N, P\) with N >= 1"):
        call(pred=pred[:0], target=target[:0], u=out["u"][:0], v=out["v"][:0], sample_loss=out["sample_loss"][:0])
    u = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"sinkhorn_backward: arguments must have the same shape"):
        transport.sinkhorn_backward(u, np.empty((2, 4)), 1.0)
    with pytest.raises(ValueError, match=r"sinkhorn_backward: lambda_ must be > 0, got 0"):
        transport.sinkhorn_backward(u, np.empty_like(u), 0)
    with pytest.raises(TypeError, match=r"sinkhorn_backward: center must be a bool, got 1"):
        transport.sinkhorn_backward(u, np.empty_like(u), 1.0, center=1)
    with pytest.raises(TypeError, match=r"sinkhorn_backward: u has dtype int64"):
        transport.sinkhorn_backward(np.ones((2, 3), np.int64), np.empty((2, 3)), 1.0)


def test_outputs_must_not_share_memory_with_other_arguments():
    """Writing u over pred (or v over target, ...) while the iteration still reads it is rejected up front,
    on both backends alike (test_kernels_transport checks the Triton side); sinkhorn_backward may write its
    result over u itself, but not over a shifted view of it."""
    from mocha_triton.cpu_ref import transport

    case = Case(2, 3, 3, 1.0, 5, 0)  # P == Q, so that u, v, pred and target all have one shape
    pred, target, cost = make_case(case, "float64")
    out = outputs_like(case, "float64")
    buffer = np.ones(8)
    aliases = [
        (dict(u=pred), "u must not share memory with pred"),
        (dict(v=target), "v must not share memory with target"),
        (dict(v=pred), "v must not share memory with pred"),
        (dict(u=cost[:2]), "u must not share memory with cost"),
        (dict(v=out["u"]), "v must not share memory with u"),
        (dict(u=buffer[:6].reshape(2, 3), v=buffer[2:8].reshape(2, 3)), "v must not share memory with u"),
        (dict(loss=out["sample_loss"][1:]), "loss must not share memory with sample_loss"),
        (dict(sample_loss=pred[:, 0]), "sample_loss must not share memory with pred"),
    ]
    for changes, message in aliases:
        args = dict(pred=pred, target=target, cost=cost, **out, lambda_=1.0, n_iter=5)
        args.update(changes)
        with pytest.raises(ValueError, match=rf"sinkhorn_forward: {message} \(the outputs are written while"):
            transport.sinkhorn_forward(**args)
    # Interleaved views of one buffer share no element: allowed (NumPy decides exactly), and correct.
    interleaved = np.empty((2, 6))
    transport.sinkhorn_forward(pred, target, cost, interleaved[:, ::2], interleaved[:, 1::2], out["sample_loss"],
                               out["loss"], 1.0, 5)
    want = oracle_sinkhorn(pred, target, cost, 1.0, 5)
    assert_close(interleaved[:, ::2], want["u"], "float64", reduction=6, what="u")
    assert_close(interleaved[:, 1::2], want["v"], "float64", reduction=6, what="v")
    u = buffer[:6].reshape(2, 3)
    with pytest.raises(ValueError, match=r"sinkhorn_backward: dpred must not share memory with u \(it may be u "
                                         r"itself, but not overlap it otherwise\)"):
        transport.sinkhorn_backward(u, buffer[2:8].reshape(2, 3), 1.0)
    square = np.ones((3, 3))
    for view in (u[::-1], square.T):  # the same elements in another order: not u itself either
        with pytest.raises(ValueError, match=r"sinkhorn_backward: dpred must not share memory with u"):
            transport.sinkhorn_backward(u if view.shape == u.shape else square, view, 1.0)
