"""Solvers and policies: every LR/momentum policy against its closed form, SGD and Nesterov trajectories
of a tiny net against a NumPy float64 re-computation of the update rules (with regularization, local
learning rates, constraints, shared and frozen parameters), the adaptive methods (Adam, Adagrad,
RMSProp, Adadelta) against torch.optim, and tiny runs on the Triton backend.

The tiny in-test layers below (an array source and a squared loss, built on layers/base.py with
backend ops only) are also used by tests/test_coffee.py and tests/test_snapshots.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from mocha_triton.backends import NumpyBackend
from mocha_triton.blob import Blob
from mocha_triton.coffee import Coffee
from mocha_triton.layers.base import Layer, LayerState, TopologyError
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.net import Net
from mocha_triton.parameter import ConstantInitializer, L2Cons, L2Regu, NoRegu
from mocha_triton.policies import LRPolicy, MomPolicy
from mocha_triton.solvers import SGD, Adadelta, Adagrad, Adam, Nesterov, RMSProp, Solver, SolverParameters, SolverState

# --- tiny in-test layers ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ArraySourceLayer(Layer):
    """Serves ``arrays`` (samples along axis 0) in batches, wrapping around; ``epoch`` counts passes.

    With ``shuffle`` the sample order is redrawn from ``backend.rng`` at every wrap; with ``noise`` > 0
    the first top gets uniform noise from the backend's device random stream. Both make the backend
    RNG state part of what a bitwise resume must restore.
    """

    arrays: Any = field(compare=False, repr=False)
    batch_size: int
    shuffle: bool = False
    noise: float = 0.0

    is_source = True

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> ArraySourceState:
        blobs = [Blob.empty(backend, (self.batch_size, *a.shape[1:]), top) for a, top in zip(self.arrays, self.tops)]
        return ArraySourceState(self, backend, blobs)


class ArraySourceState(LayerState):
    def __init__(self, layer: ArraySourceLayer, backend: Any, blobs: list[Blob]) -> None:
        super().__init__(layer, backend, blobs)
        self.n = len(layer.arrays[0])
        self.epoch, self.pos, self.order = 0, 0, np.arange(self.n)
        self.noise = Blob.empty(backend, blobs[0].shape) if layer.noise else None

    def forward(self, inputs: list[Blob]) -> None:
        rows = []
        for _ in range(self.layer.batch_size):
            rows.append(self.order[self.pos])
            self.pos += 1
            if self.pos == self.n:
                self.pos, self.epoch = 0, self.epoch + 1
                if self.layer.shuffle:
                    self.order = self.backend.rng.permutation(self.n)
        for blob, array in zip(self.blobs, self.layer.arrays):
            blob.copy_from(array[rows])
        if self.noise is not None:
            offset = self.backend.next_random_offset(self.noise.size)
            noise, seed = self.layer.noise, self.backend.random_seed
            self.ops.uniform_fill(self.noise.data, -noise, noise, seed, offset)
            self.ops.axpy(1.0, self.noise.data, self.blobs[0].data)

    def position_state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos, "order": self.order.copy()}

    def restore_position(self, saved: dict[str, Any]) -> None:
        self.epoch, self.pos, self.order = int(saved["epoch"]), int(saved["pos"]), np.array(saved["order"])


@dataclass(frozen=True, kw_only=True)
class TinySquareLossLayer(Layer):
    """loss = weight * 0.5 * ||pred - target||^2 / N; gradient weight * (pred - target) / N to pred."""

    weight: float = 1.0

    has_loss = True
    can_backprop = True
    is_sink = True

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> TinySquareLossState:
        state = TinySquareLossState(self, backend)
        state.residual = Blob.empty(backend, inputs[0].shape)
        state.out = Blob.empty(backend, (1,))
        return state


class TinySquareLossState(LayerState):
    def forward(self, inputs: list[Blob]) -> None:
        pred, target = inputs
        self.ops.copy(pred.data, self.residual.data)
        self.ops.axpy(-1.0, target.reshape(pred.shape).data, self.residual.data)
        self.ops.sum_of_squares(self.residual.data, self.out.data)
        self.loss = self.layer.weight * 0.5 * float(self.out.to_numpy()[0]) / pred.shape[0]

    def backward(self, inputs: list[Blob], diffs: list[Blob | None]) -> None:
        if diffs[0] is not None:
            self.ops.copy(self.residual.data, diffs[0].data)
            self.ops.scale(diffs[0].data, self.layer.weight / inputs[0].shape[0])


@dataclass(frozen=True, kw_only=True)
class MeanSquareErrorStatLayer(Layer):
    """A statistics layer: running mean of (pred - target)^2 over every forward since the last reset."""

    has_stats = True
    is_sink = True

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> Any:
        return MeanSquareErrorStatState(self, backend)


class MeanSquareErrorStatState(LayerState):
    def __init__(self, layer: Layer, backend: Any) -> None:
        super().__init__(layer, backend)
        self.reset_statistics()

    def forward(self, inputs: list[Blob]) -> None:
        pred, target = (b.to_numpy().astype(np.float64) for b in inputs)
        self.total += float(((pred - target.reshape(pred.shape)) ** 2).sum())
        self.count += pred.size

    def reset_statistics(self) -> None:
        self.total, self.count = 0.0, 0

    def statistics(self) -> dict[str, float]:
        return {f"{self.layer.name}-mse": self.total / max(self.count, 1)}


def tiny_data(n: int = 8, d_in: int = 3, d_out: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d_in)), rng.normal(size=(n, d_out))


def tiny_layers(x: np.ndarray, y: np.ndarray, batch_size: int = 4, shuffle: bool = False, noise: float = 0.0,
                **ip_kwargs: Any) -> list[Layer]:
    """data -> ip1 (output y.shape[1]) -> square loss, like Mocha's solver tests."""
    return [ArraySourceLayer(name="data", tops=("x", "y"), arrays=(x, y), batch_size=batch_size, shuffle=shuffle,
                             noise=noise),
            InnerProductLayer(name="ip1", output_dim=y.shape[1], bottoms=("x",), tops=("pred",), **ip_kwargs),
            TinySquareLossLayer(name="loss", bottoms=("pred", "y"))]


def tiny_net(backend: Any, x: np.ndarray, y: np.ndarray, **kwargs: Any) -> Net:
    return Net("tiny", backend, tiny_layers(x, y, **kwargs))


class Recorder(Coffee):
    """Records (iteration, obj_val, parameters) at every break."""

    def __init__(self) -> None:
        self.records: list[tuple[int, float, list[np.ndarray]]] = []

    def enjoy(self, lounge: Any, net: Any, state: Any) -> None:
        params = [p.blob.to_numpy() for _, p in state.parameters]
        self.records.append((state.iteration, state.obj_val, params))


# --- policies -------------------------------------------------------------------------------------


@dataclass
class At:
    iteration: int
    learning_rate: float = 0.0


ITERATIONS = (0, 1, 2, 9, 10, 11, 99, 100, 101, 1234)

LR_CASES = [
    (LRPolicy.Fixed(0.01), lambda it: 0.01),
    (LRPolicy.Step(0.1, 0.5, 10), lambda it: 0.1 * 0.5 ** (it // 10)),
    (LRPolicy.Exp(0.1, 0.99), lambda it: 0.1 * 0.99 ** it),
    (LRPolicy.Inv(0.01, 0.0001, 0.75), lambda it: 0.01 * (1 + 0.0001 * it) ** -0.75),
    (LRPolicy.Poly(0.1, 2.0, 100), lambda it: 0.1 * max(0.0, 1 - it / 100) ** 2),
    (LRPolicy.Poly(0.1, 1.0, 2000), lambda it: 0.1 * (1 - it / 2000)),
]


@pytest.mark.parametrize("policy,closed_form", LR_CASES, ids=[repr(p) for p, _ in LR_CASES])
def test_lr_policy_closed_forms(policy, closed_form):
    for it in ITERATIONS:
        assert policy.get(At(it)) == pytest.approx(closed_form(it), rel=1e-15, abs=0.0), it


def test_poly_reaches_zero_at_max_iter():
    policy = LRPolicy.Poly(0.5, 0.9, 50)
    assert policy.get(At(0)) == 0.5
    assert policy.get(At(50)) == 0.0 and policy.get(At(80)) == 0.0
    assert policy.get(At(25)) == pytest.approx(0.5 * 0.5 ** 0.9, rel=1e-15)


MOM_CASES = [
    (MomPolicy.Fixed(0.9), lambda it: 0.9),
    (MomPolicy.Step(0.5, 1.1, 10, 0.9), lambda it: min(0.5 * 1.1 ** (it // 10), 0.9)),
    (MomPolicy.Linear(0.5, 0.1, 10, 0.95), lambda it: min(0.5 + (it // 10) * 0.1, 0.95)),
]


@pytest.mark.parametrize("policy,closed_form", MOM_CASES, ids=[repr(p) for p, _ in MOM_CASES])
def test_momentum_policy_closed_forms(policy, closed_form):
    for it in ITERATIONS:
        assert policy.get(At(it)) == pytest.approx(closed_form(it), rel=1e-15, abs=0.0), it
    assert MomPolicy.Step(0.5, 1.1, 10, 0.9).get(At(10 ** 4)) == 0.9  # capped at max_mom


def test_staged_lr_policy_boundaries_are_cumulative_and_inner_policies_see_the_global_iteration():
    policy = LRPolicy.Staged((10, LRPolicy.Fixed(0.1)), (5, LRPolicy.Exp(1.0, 0.5)), (1, LRPolicy.Fixed(0.001)))
    expected = {0: 0.1, 9: 0.1, 10: 0.5 ** 10, 14: 0.5 ** 14, 15: 0.001, 16: 0.001, 10 ** 6: 0.001}
    for it, value in expected.items():
        assert policy.get(At(it)) == pytest.approx(value, rel=1e-15), it
    assert [policy.stage_at(it) for it in (0, 9, 10, 14, 15, 99)] == [0, 0, 1, 1, 2, 2]


def test_staged_momentum_policy():
    policy = MomPolicy.Staged((3, MomPolicy.Fixed(0.5)), (3, MomPolicy.Linear(0.5, 0.1, 1, 0.95)))
    values = [policy.get(At(it)) for it in range(8)]
    assert values[:3] == [0.5, 0.5, 0.5]
    np.testing.assert_allclose(values[3:], [0.8, 0.9, 0.95, 0.95, 0.95], rtol=1e-15)


@pytest.mark.parametrize("make", [
    lambda: LRPolicy.Step(0.1, 0.5, 0), lambda: LRPolicy.Fixed(-1.0), lambda: LRPolicy.Fixed(math.nan),
    lambda: LRPolicy.Poly(0.1, 1.0, 0), lambda: LRPolicy.Staged(), lambda: LRPolicy.Staged((0, LRPolicy.Fixed(1))),
    lambda: LRPolicy.Staged((5, 0.1)), lambda: MomPolicy.Step(0.9, 1.0, 1.5, 0.9),
    lambda: LRPolicy.DecayOnValidation(0.1, ""), lambda: LRPolicy.DecayOnValidation(0.1, "k", gamma=2.0),
])
def test_bad_policy_arguments_raise(make):
    with pytest.raises(ValueError):
        make()


def test_decay_on_validation_compares_the_current_result_with_the_one_before():
    class Lounge:
        statistics = {"acc": {}}

        def get_statistics(self, key):
            return self.statistics.get(key, {})

    lounge, state = Lounge(), At(0, learning_rate=0.0)
    policy = LRPolicy.DecayOnValidation(0.1, "acc", gamma=0.5, min_lr=0.03)
    assert policy.get(state) == 0.1
    for it, acc, expected in [(0, 0.5, 0.1), (10, 0.6, 0.1), (20, 0.6, 0.1), (30, 0.55, 0.05), (40, 0.5, 0.03),
                              (50, 0.4, 0.03)]:
        lounge.statistics["acc"][it] = acc
        state.iteration = it
        policy.on_validation(lounge, None, state)
        assert policy.get(state) == pytest.approx(expected), it
    lower = LRPolicy.DecayOnValidation(1.0, "acc", higher_better=False)
    lounge.statistics["acc"] = {0: 1.0, 1: 2.0}
    state.iteration = 1
    lower.on_validation(lounge, None, state)
    assert lower.get(state) == 0.5
    # records beyond the current iteration (an interrupted run's, merged from its statistics file) are ignored
    stale = LRPolicy.DecayOnValidation(1.0, "acc")
    lounge.statistics["acc"] = {0: 0.5, 2: 0.6, 4: 0.9}
    state.iteration = 2
    stale.on_validation(lounge, None, state)
    assert stale.get(state) == 1.0
    with pytest.raises(ValueError, match="no statistic 'acc' was recorded at iteration 3"):
        stale.on_validation(lounge, None, At(3))
    with pytest.raises(ValueError, match="no statistic 'loss' was recorded at iteration 2"):
        LRPolicy.DecayOnValidation(1.0, "loss").on_validation(lounge, None, state)
    resumed = LRPolicy.DecayOnValidation(1.0, "acc")
    resumed.resumed(At(5, learning_rate=0.25))  # adopts the rate saved in a snapshot
    assert resumed.get(At(5)) == 0.25


# --- NumPy float64 reference of the tiny net ---------------------------------------------------------


def reference_trajectory(x, y, w, b, n_iter, batch_size, lr_policy, mom_policy, regu_coef, nesterov=False,
                         weight_regu=1.0, bias_lr=2.0, threshold=None, cons_every=1):
    """(obj_val, W, b) after each iteration 0..n_iter of the tiny net, from the update rules alone."""
    n = len(x)
    w, b = w.astype(np.float64).copy(), b.astype(np.float64).copy()
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    batch = 0

    def forward():
        nonlocal batch
        rows = [(batch * batch_size + k) % n for k in range(batch_size)]
        batch += 1
        xb, yb = x[rows], y[rows]
        residual = xb @ w.T + b - yb
        return 0.5 * (residual ** 2).sum() / batch_size, xb, residual

    obj, xb, residual = forward()
    out = [(obj, w.copy(), b.copy())]
    mom_prev = mom_policy.get(At(0))
    for it in range(1, n_iter + 1):
        gw = residual.T @ xb / batch_size + weight_regu * regu_coef * w
        gb = residual.sum(axis=0) / batch_size
        lr, mom = lr_policy.get(At(it)), mom_policy.get(At(it))
        for p, g, v, local in ((w, gw, vw, 1.0), (b, gb, vb, bias_lr)):
            if nesterov:
                p -= mom_prev * v
                v[...] = mom_prev * v - lr * local * g
                p += (1 + mom) * v
            else:
                v[...] = mom_prev * v - lr * local * g
                p += v
        mom_prev = mom
        if threshold is not None and it % cons_every == 0:
            norms = np.sqrt((w ** 2).sum(axis=1, keepdims=True))
            w *= np.where(norms > threshold, threshold / norms, 1.0)
        obj, xb, residual = forward()
        out.append((obj, w.copy(), b.copy()))
    return out


def run_and_record(net, method, params, n_iter):
    recorder = Recorder()
    solver = Solver(method, params)
    solver.add_coffee_break(recorder, every_n_iter=1)
    state = solver.solve(net)
    assert state.iteration == n_iter
    assert [r[0] for r in recorder.records] == list(range(n_iter + 1))
    return recorder.records


@pytest.mark.parametrize("method", [SGD(), Nesterov()], ids=repr)
def test_trajectory_matches_the_numpy_update_rule(method):
    x, y = tiny_data()
    backend = NumpyBackend("float64", seed=3)
    net = tiny_net(backend, x, y, bias_init=ConstantInitializer(0.1))
    w0, b0 = (p.blob.to_numpy() for p in net.params["ip1"])
    lr_policy, mom_policy = LRPolicy.Step(0.1, 0.5, 3), MomPolicy.Linear(0.5, 0.1, 2, 0.8)
    params = SolverParameters(max_iter=7, regu_coef=0.01, lr_policy=lr_policy, mom_policy=mom_policy)
    records = run_and_record(net, method, params, 7)
    expected = reference_trajectory(x, y, w0, b0, 7, 4, lr_policy, mom_policy, 0.01,
                                    nesterov=isinstance(method, Nesterov))
    for (it, obj, (w, b)), (obj_ref, w_ref, b_ref) in zip(records, expected):
        np.testing.assert_allclose(w, w_ref, rtol=1e-12, atol=1e-14, err_msg=f"W at iteration {it}")
        np.testing.assert_allclose(b, b_ref, rtol=1e-12, atol=1e-14, err_msg=f"b at iteration {it}")
        assert obj == pytest.approx(obj_ref, rel=1e-12), it
    assert not np.allclose(records[-1][2][0], w0)


def test_momentum_used_is_the_previous_iterations():
    """Mocha updates with the previous iteration's momentum: with mu = 0.9 at iterations 0-1 and 0 from
    iteration 2 on, step 2 still applies 0.9 to the history (and step 3 applies 0)."""
    x, y = tiny_data()
    backend = NumpyBackend("float64", seed=4)
    net = tiny_net(backend, x, y)
    w0, b0 = (p.blob.to_numpy() for p in net.params["ip1"])
    mom = MomPolicy.Staged((2, MomPolicy.Fixed(0.9)), (1, MomPolicy.Fixed(0.0)))
    params = SolverParameters(max_iter=3, regu_coef=0.0, lr_policy=LRPolicy.Fixed(0.05), mom_policy=mom)
    records = run_and_record(net, SGD(), params, 3)
    expected = reference_trajectory(x, y, w0, b0, 3, 4, LRPolicy.Fixed(0.05), mom, 0.0)
    for (_, _, (w, _)), (_, w_ref, _) in zip(records, expected):
        np.testing.assert_allclose(w, w_ref, rtol=1e-12)
    # using the current iteration's momentum instead would differ from step 2 on
    shifted = MomPolicy.Staged((1, MomPolicy.Fixed(0.9)), (1, MomPolicy.Fixed(0.0)))
    wrong = reference_trajectory(x, y, w0, b0, 3, 4, LRPolicy.Fixed(0.05), shifted, 0.0)
    np.testing.assert_allclose(records[1][2][0], wrong[1][1], rtol=1e-12)
    assert not np.allclose(records[2][2][0], wrong[2][1], rtol=1e-6)


def test_regu_coef_adds_weight_decay_to_weights_only():
    x, y = tiny_data()
    results = {}
    for regu in (0.0, 0.1):
        backend = NumpyBackend("float64", seed=5)
        net = tiny_net(backend, x, y)
        w0 = net.params["ip1"][0].blob.to_numpy()
        params = SolverParameters(max_iter=1, regu_coef=regu, lr_policy=LRPolicy.Fixed(0.2))
        records = run_and_record(net, SGD(), params, 1)
        results[regu] = records[-1][2]
    # one plain SGD step: the L2 term adds -lr * regu_coef * W0 to W and nothing to the bias
    np.testing.assert_allclose(results[0.1][0] - results[0.0][0], -0.2 * 0.1 * w0, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(results[0.1][1], results[0.0][1])
    # a layer with NoRegu on the weight ignores regu_coef
    backend = NumpyBackend("float64", seed=5)
    net = tiny_net(backend, x, y, weight_regu=NoRegu())
    records = run_and_record(net, SGD(), SolverParameters(max_iter=1, regu_coef=0.1, lr_policy=LRPolicy.Fixed(0.2)),
                             1)
    np.testing.assert_allclose(records[-1][2][0], results[0.0][0], rtol=1e-14)
    # and L2Regu(2) doubles it
    backend = NumpyBackend("float64", seed=5)
    net = tiny_net(backend, x, y, weight_regu=L2Regu(2.0))
    records = run_and_record(net, SGD(), SolverParameters(max_iter=1, regu_coef=0.1, lr_policy=LRPolicy.Fixed(0.2)),
                             1)
    np.testing.assert_allclose(records[-1][2][0] - results[0.0][0], -0.2 * 0.2 * w0, rtol=1e-12, atol=1e-15)


def test_constraints_apply_every_n_iter():
    x, y = tiny_data()
    backend = NumpyBackend("float64", seed=6)
    threshold = 0.3
    net = tiny_net(backend, x, y, weight_cons=L2Cons(threshold, every_n_iter=2))
    w0, b0 = (p.blob.to_numpy() for p in net.params["ip1"])
    assert (np.linalg.norm(w0, axis=1) > threshold).any()
    params = SolverParameters(max_iter=4, regu_coef=0.0, lr_policy=LRPolicy.Fixed(0.1),
                              mom_policy=MomPolicy.Fixed(0.5))
    records = run_and_record(net, SGD(), params, 4)
    expected = reference_trajectory(x, y, w0, b0, 4, 4, LRPolicy.Fixed(0.1), MomPolicy.Fixed(0.5), 0.0,
                                    threshold=threshold, cons_every=2)
    for (it, _, (w, b)), (_, w_ref, b_ref) in zip(records, expected):
        np.testing.assert_allclose(w, w_ref, rtol=1e-12, err_msg=f"iteration {it}")
        np.testing.assert_allclose(b, b_ref, rtol=1e-12, err_msg=f"iteration {it}")
    norms = {it: np.linalg.norm(w, axis=1) for it, _, (w, _) in records}
    assert (norms[1] > threshold + 1e-9).any()  # not constrained at odd iterations
    assert (norms[2] <= threshold + 1e-12).all() and (norms[4] <= threshold + 1e-12).all()


def test_shared_parameters_get_one_update_per_sharer():
    x, y = tiny_data()
    backend = NumpyBackend("float64", seed=7)
    layers = [ArraySourceLayer(name="data", tops=("x", "y"), arrays=(x, y), batch_size=4),
              InnerProductLayer(name="ip_a", param_key="shared", output_dim=2, bottoms=("x",), tops=("a",)),
              InnerProductLayer(name="ip_b", param_key="shared", output_dim=2, bottoms=("x",), tops=("b",)),
              TinySquareLossLayer(name="loss_a", bottoms=("a", "y")),
              TinySquareLossLayer(name="loss_b", bottoms=("b", "y"))]
    net = Net("shared", backend, layers)
    w0, b0 = (p.blob.to_numpy() for p in net.params["ip_a"])
    assert net.params["ip_a"][0].blob is net.params["ip_b"][0].blob
    solver = Solver(SGD(), SolverParameters(max_iter=1, regu_coef=0.0, lr_policy=LRPolicy.Fixed(0.1)))
    state = solver.solve(net)
    assert sorted(state.momentum_history) == ["ip_a/0", "ip_a/1", "ip_b/0", "ip_b/1"]
    assert state.losses.keys() == {"loss_a", "loss_b"}
    # both sharers see the same batch, so the shared weight moves twice the single-layer step
    single = reference_trajectory(x, y, w0, b0, 1, 4, LRPolicy.Fixed(0.1), MomPolicy.Fixed(0.0), 0.0)
    w1 = net.params["ip_a"][0].blob.to_numpy()
    np.testing.assert_allclose(w1 - w0, 2 * (single[1][1] - w0), rtol=1e-12)


def test_frozen_layers_are_not_updated():
    x, y = tiny_data()
    backend = NumpyBackend("float64", seed=8)
    layers = tiny_layers(x, y)
    layers.insert(1, InnerProductLayer(name="ip0", output_dim=3, bottoms=("x",), tops=("h",)))
    layers[2] = InnerProductLayer(name="ip1", output_dim=2, bottoms=("h",), tops=("pred",))
    net = Net("frozen", backend, layers)
    net.freeze("ip0")
    before = [p.blob.to_numpy() for p in net.params["ip0"]]
    state = Solver(SGD(), SolverParameters(max_iter=2, lr_policy=LRPolicy.Fixed(0.1))).solve(net)
    assert sorted(state.momentum_history) == ["ip1/0", "ip1/1"]
    for p, b in zip(net.params["ip0"], before):
        np.testing.assert_array_equal(p.blob.to_numpy(), b)


def test_freezing_between_steps_pauses_a_layer_and_unfreezing_a_new_one_is_refused():
    x, y = tiny_data()
    layers = tiny_layers(x, y)
    layers.insert(1, InnerProductLayer(name="ip0", output_dim=3, bottoms=("x",), tops=("h",)))
    layers[2] = InnerProductLayer(name="ip1", output_dim=2, bottoms=("h",), tops=("pred",))
    net = Net("freeze-later", NumpyBackend("float64", seed=8), layers)
    solver = Solver(SGD(), SolverParameters(max_iter=10, lr_policy=LRPolicy.Fixed(0.1)))
    state = solver.init(net)
    solver.step(net, state)
    net.freeze("ip1")
    paused = [p.blob.to_numpy() for p in net.params["ip1"]]
    moving = [p.blob.to_numpy() for p in net.params["ip0"]]
    solver.step(net, state)
    for p, b in zip(net.params["ip1"], paused):
        np.testing.assert_array_equal(p.blob.to_numpy(), b)
    assert not np.array_equal(net.params["ip0"][0].blob.to_numpy(), moving[0])
    net.unfreeze("ip1")  # it has solver state: training it again is fine
    solver.step(net, state)
    assert not np.array_equal(net.params["ip1"][0].blob.to_numpy(), paused[0])

    net.freeze("ip0")
    state = solver.init(net)  # ip0 has no solver state in this one
    net.unfreeze("ip0")
    with pytest.raises(ValueError, match=r"layer\(s\) \['ip0'\] of net 'freeze-later' were frozen when training "
                                         r"started and have no solver state"):
        solver.step(net, state)


def test_step_api_matches_solve_and_state_fields():
    x, y = tiny_data()
    finals = []
    for use_steps in (False, True):
        backend = NumpyBackend("float64", seed=9)
        net = tiny_net(backend, x, y)
        solver = Solver(SGD(), SolverParameters(max_iter=3, lr_policy=LRPolicy.Exp(0.1, 0.9),
                                                mom_policy=MomPolicy.Fixed(0.7)))
        if use_steps:
            state = solver.init(net)
            assert isinstance(state, SolverState) and state.iteration == 0
            assert state.learning_rate == 0.1 and state.momentum == 0.7 and math.isfinite(state.obj_val)
            for _ in range(3):
                solver.step(net, state)
            solver.finalize(net, state)
        else:
            state = solver.solve(net)
        assert state.iteration == 3
        assert state.learning_rate == pytest.approx(0.1 * 0.9 ** 3)
        assert state.losses == {"loss": state.obj_val}
        finals.append([p.blob.to_numpy() for p in net.params["ip1"]])
        history = state.momentum_history["ip1/0"]
        assert history.shape == (2, 3) and history.dtype == "float64" and np.abs(history.to_numpy()).sum() > 0
    for a, b in zip(*finals):
        np.testing.assert_array_equal(a, b)


def test_solve_checks_bp_topology():
    x, y = tiny_data()
    backend = NumpyBackend("float64")
    layers = [ArraySourceLayer(name="data", tops=("x", "y"), arrays=(x, y), batch_size=4),
              InnerProductLayer(name="ip1", output_dim=2, bottoms=("x",), tops=("pred",))]  # no loss: dangling
    net = Net("dangling", backend, layers)
    with pytest.raises(TopologyError, match="dangling"):
        Solver(SGD(), SolverParameters(max_iter=1)).solve(net)


def test_zero_iterations_only_runs_the_first_forward():
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64"), x, y)
    w0 = net.params["ip1"][0].blob.to_numpy()
    state = Solver(SGD(), SolverParameters(max_iter=0)).solve(net)
    assert state.iteration == 0 and math.isfinite(state.obj_val)
    np.testing.assert_array_equal(net.params["ip1"][0].blob.to_numpy(), w0)


@pytest.mark.parametrize("kwargs", [dict(max_iter=-1), dict(max_iter=1.5), dict(max_iter=True),
                                    dict(max_iter=1, regu_coef=-0.1), dict(max_iter=1, lr_policy=0.1),
                                    dict(max_iter=1, mom_policy=None)])
def test_bad_solver_parameters_raise(kwargs):
    with pytest.raises(ValueError):
        SolverParameters(**kwargs)


def test_solver_parameters_defaults_and_bad_method():
    params = SolverParameters(max_iter=math.inf)
    assert params.regu_coef == 0.0005 and params.lr_policy == LRPolicy.Fixed(0.01)
    assert params.mom_policy == MomPolicy.Fixed(0.0) and params.load_from == ""
    with pytest.raises(TypeError, match="SolverMethod"):
        Solver("sgd", params)


def test_tiny_run_on_the_triton_backend_matches_numpy(tmp_path):
    from mocha_triton.backends import TritonBackend
    from mocha_triton.coffee import Snapshot
    from mocha_triton.snapshots import load_snapshot

    x, y = tiny_data()
    finals = {}
    for name in ("numpy", "triton"):
        backend = NumpyBackend("float32", seed=11) if name == "numpy" else TritonBackend(seed=11)
        net = tiny_net(backend, x, y, weight_cons=L2Cons(0.5))
        params = SolverParameters(max_iter=2, regu_coef=0.01, lr_policy=LRPolicy.Fixed(0.1),
                                  mom_policy=MomPolicy.Fixed(0.9))
        solver = Solver(SGD(), params)
        solver.add_coffee_break(Snapshot(tmp_path / name), every_n_iter=2)
        state = solver.solve(net)
        finals[name] = ([p.blob.to_numpy() for p in net.params["ip1"]], state.obj_val,
                        state.momentum_history["ip1/0"].to_numpy())
    for a, b in zip(finals["numpy"][0], finals["triton"][0]):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert finals["triton"][1] == pytest.approx(finals["numpy"][1], rel=1e-5)
    np.testing.assert_allclose(finals["triton"][2], finals["numpy"][2], rtol=1e-5, atol=1e-6)
    # the Triton run's snapshot resumes on the NumPy backend
    host = tiny_net(NumpyBackend("float32", seed=12), x, y)
    state = SolverState.for_net(host)
    assert load_snapshot(tmp_path / "triton" / "snapshot-000002.h5", host, state) == 2
    for p, expected in zip(host.params["ip1"], finals["triton"][0]):
        np.testing.assert_array_equal(p.blob.to_numpy(), expected)
    np.testing.assert_array_equal(state.momentum_history["ip1/0"].to_numpy(), finals["triton"][2])


# --- adaptive methods ----------------------------------------------------------------------------------

ADAPTIVE_METHODS = [Adam(beta1=0.8, beta2=0.95, epsilon=1e-3), Adagrad(epsilon=1e-3), RMSProp(decay=0.9, epsilon=1e-3),
                    Adadelta(rho=0.8, epsilon=1e-4)]


class CaffeAdam:
    """Caffe's Adam on torch tensors (epsilon added to sqrt(v) before the bias correction, which torch.optim.Adam
    adds after): ``m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; w -= lr sqrt(1 - b2^t) / (1 - b1^t) m /
    (sqrt(v) + eps)``, with torch.optim's param-group interface (lr, weight_decay) for the test below."""

    def __init__(self, groups, betas, eps):
        import torch

        self.param_groups, self.betas, self.eps, self.t = groups, betas, eps, 0
        self.state = {id(p): (torch.zeros_like(p), torch.zeros_like(p)) for g in groups for p in g["params"]}

    def zero_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self):
        import torch

        self.t += 1
        b1, b2 = self.betas
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    g = p.grad + group["weight_decay"] * p
                    m, v = self.state[id(p)]
                    m.mul_(b1).add_((1 - b1) * g)
                    v.mul_(b2).add_((1 - b2) * g * g)
                    p -= group["lr"] * math.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t) * m / (v.sqrt() + self.eps)


def torch_optimizer(method, groups):
    """The torch.optim optimizer computing the same update as ``method`` (see cpu_ref/solvers.py); for Adam,
    Caffe's form written out above (torch.optim.Adam places epsilon differently)."""
    import torch

    if isinstance(method, Adam):
        return CaffeAdam(groups, betas=(method.beta1, method.beta2), eps=method.epsilon)
    if isinstance(method, Adagrad):
        return torch.optim.Adagrad(groups, eps=method.epsilon)
    if isinstance(method, RMSProp):
        return torch.optim.RMSprop(groups, alpha=method.decay, eps=method.epsilon)
    return torch.optim.Adadelta(groups, rho=method.rho, eps=method.epsilon)


@pytest.mark.parametrize("method", ADAPTIVE_METHODS, ids=repr)
def test_adaptive_trajectories_match_torch_optim(method):
    """The tiny net trained with an adaptive method follows torch.optim on the same model in float64: a
    step learning-rate policy, the bias's local multiplier 2 and weight decay on the weight only."""
    import torch

    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64", seed=3), x, y, bias_init=ConstantInitializer(0.1))
    w0, b0 = (p.blob.to_numpy() for p in net.params["ip1"])
    lr_policy, regu, n_iter = LRPolicy.Step(0.1, 0.5, 3), 0.01, 7
    records = run_and_record(net, method, SolverParameters(max_iter=n_iter, regu_coef=regu, lr_policy=lr_policy),
                             n_iter)

    w, b = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    groups = [{"params": [w], "weight_decay": regu, "lr": 0.0}, {"params": [b], "weight_decay": 0.0, "lr": 0.0}]
    optimizer = torch_optimizer(method, groups)
    for it in range(n_iter + 1):
        rows = [(it * 4 + k) % len(x) for k in range(4)]
        loss = 0.5 * ((torch.from_numpy(x[rows]) @ w.T + b - torch.from_numpy(y[rows])) ** 2).sum() / 4
        got_it, got_obj, (got_w, got_b) = records[it]
        assert got_it == it and got_obj == pytest.approx(loss.item(), rel=1e-12), it
        np.testing.assert_allclose(got_w, w.detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=f"W at {it}")
        np.testing.assert_allclose(got_b, b.detach().numpy(), rtol=1e-12, atol=1e-14, err_msg=f"b at {it}")
        optimizer.zero_grad()
        loss.backward()
        for group, local in zip(optimizer.param_groups, (1.0, 2.0)):
            group["lr"] = lr_policy.get(At(it + 1)) * local
        optimizer.step()
    assert not np.allclose(records[-1][2][0], w0)


@pytest.mark.parametrize("method", ADAPTIVE_METHODS, ids=repr)
def test_adaptive_state_is_kept_per_parameter_and_snapshots_resume_exactly(method, tmp_path):
    """The method's state blobs exist per trainable parameter, are saved in snapshots under their names,
    and a run resumed from a snapshot ends bitwise where an uninterrupted run ends."""
    import h5py

    from mocha_triton.coffee import Snapshot

    x, y = tiny_data()

    def run(max_iter, load_from="", snapshot_every=0):
        net = tiny_net(NumpyBackend("float32", seed=5), x, y)
        params = SolverParameters(max_iter=max_iter, regu_coef=0.01, lr_policy=LRPolicy.Fixed(0.05),
                                  load_from=load_from)
        solver = Solver(method, params)
        if snapshot_every:
            solver.add_coffee_break(Snapshot(tmp_path), every_n_iter=snapshot_every)
        state = solver.solve(net)
        return [p.blob.to_numpy() for p in net.params["ip1"]], state

    straight, state = run(6)
    assert sorted(state.blobs) == sorted(method.state_names)
    assert state.momentum_history == {}
    for group in state.blobs.values():
        assert sorted(group) == ["ip1/0", "ip1/1"]
        assert np.abs(group["ip1/0"].to_numpy()).sum() > 0, "the state must have moved away from zero"
    run(3, snapshot_every=3)
    with h5py.File(tmp_path / "snapshot-000003.h5", "r") as f:
        assert set(f["solver"]) >= set(method.state_names)
    resumed, resumed_state = run(6, load_from=str(tmp_path))
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
    for name, group in state.blobs.items():
        np.testing.assert_array_equal(resumed_state.blobs[name]["ip1/0"].to_numpy(), group["ip1/0"].to_numpy())


def test_adaptive_methods_refuse_momentum_and_bad_hyperparameters():
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64"), x, y)
    solver = Solver(Adam(), SolverParameters(max_iter=2, mom_policy=MomPolicy.Fixed(0.9)))
    with pytest.raises(ValueError, match=r"Solver: Adam\(beta1=0.9, beta2=0.999, epsilon=1e-08\) uses no momentum"):
        solver.solve(net)
    solver = Solver(RMSProp(), SolverParameters(max_iter=5, mom_policy=MomPolicy.Linear(0.0, 0.2, 2, 0.9)))
    with pytest.raises(ValueError, match=r"mom_policy gives 0.2 at iteration 2"):
        solver.solve(net)
    for make, message in [(lambda: Adam(beta2=1.0), r"Adam: beta2 must be in \[0, 1\), got 1.0"),
                          (lambda: Adam(epsilon=-1.0), r"Adam: epsilon must be > 0"),
                          (lambda: Adagrad(epsilon=0.0), r"Adagrad: epsilon must be > 0, got 0.0"),
                          (lambda: RMSProp(epsilon=0), r"RMSProp: epsilon must be > 0"),
                          (lambda: Adagrad(epsilon=float("nan")), r"Adagrad: epsilon must be finite"),
                          (lambda: RMSProp(decay=-0.1), r"RMSProp: decay must be in \[0, 1\)"),
                          (lambda: Adadelta(epsilon=0.0), r"Adadelta: epsilon must be > 0"),
                          (lambda: Adadelta(rho="high"), r"Adadelta: rho must be a real scalar")]:
        with pytest.raises((ValueError, TypeError), match=message):
            make()


@pytest.mark.parametrize("method", [Adam(), Adadelta()], ids=repr)
def test_adaptive_run_on_the_triton_backend_matches_numpy(method):
    from mocha_triton.backends import TritonBackend

    x, y = tiny_data()
    finals = {}
    for name in ("numpy", "triton"):
        backend = NumpyBackend("float32", seed=11) if name == "numpy" else TritonBackend(seed=11)
        net = tiny_net(backend, x, y)
        state = Solver(method, SolverParameters(max_iter=3, lr_policy=LRPolicy.Fixed(0.05))).solve(net)
        finals[name] = [p.blob.to_numpy() for p in net.params["ip1"]] + [
            blob.to_numpy() for group in state.blobs.values() for blob in group.values()]
    for a, b in zip(finals["numpy"], finals["triton"], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
