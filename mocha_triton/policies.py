"""Learning-rate and momentum policies: how a solver's step size and momentum change with the iteration.

Two namespaces, named like Mocha's modules:

* :class:`LRPolicy` — ``Fixed``, ``Step``, ``Exp``, ``Inv``, ``Poly``, ``Staged``, ``DecayOnValidation``.
* :class:`MomPolicy` — ``Fixed``, ``Step``, ``Linear``, ``Staged``.

Every policy answers ``get(state)``: its value at ``state.iteration`` (any object with an ``iteration``
attribute works, the solver passes its :class:`~mocha_triton.solvers.SolverState`). The closed forms
(``it`` = the solver iteration) are

=====================  =====================================================================
``LRPolicy.Fixed``     ``base_lr``
``LRPolicy.Step``      ``base_lr * gamma ** floor(it / stepsize)``
``LRPolicy.Exp``       ``base_lr * gamma ** it``
``LRPolicy.Inv``       ``base_lr * (1 + gamma * it) ** (-power)``
``LRPolicy.Poly``      ``base_lr * (1 - it / max_iter) ** power`` (Caffe; 0 from ``max_iter`` on)
``MomPolicy.Fixed``    ``base``
``MomPolicy.Step``     ``min(base * gamma ** floor(it / stepsize), max_mom)``
``MomPolicy.Linear``   ``min(base + floor(it / stepsize) * gamma, max_mom)``
=====================  =====================================================================

``Staged((n1, p1), (n2, p2), ...)`` runs ``p1`` for iterations ``[0, n1)``, ``p2`` for ``[n1, n1 + n2)``
and so on; the last stage lasts forever. Each inner policy sees the *global* iteration (Mocha).

``LRPolicy.DecayOnValidation`` is driven by validation results instead of the iteration: connect it with
``policy.setup(validation_coffee, solver)`` (see its docstring). Custom policies subclass
:class:`Policy` and implement ``get``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

from mocha_triton.snapshots import resolve_load_from

__all__ = ["LRPolicy", "MomPolicy", "Policy"]


def _positive_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def _finite(owner: str, name: str, value: Any, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value!r}")
    return float(value)


class Policy:
    """Base of every policy: ``get(state)`` returns the value at ``state.iteration``.

    ``resumed(state)`` is called by the solver after it loaded a snapshot into ``state`` (a policy
    holding its own state, like DecayOnValidation, adopts the saved values there); the default does
    nothing.
    """

    def get(self, state: Any) -> float:
        raise NotImplementedError

    def resumed(self, state: Any) -> None:
        """Hook: the solver state was just restored from a snapshot."""


def _staged_stages(owner: str, stages: tuple[Any, ...]) -> tuple[tuple[int, Policy], ...]:
    if not stages:
        raise ValueError(f"{owner}: needs at least one (n_iter, policy) stage")
    checked = []
    for i, stage in enumerate(stages):
        if not (isinstance(stage, tuple) and len(stage) == 2):
            raise ValueError(f"{owner}: stage {i} must be a (n_iter, policy) pair, got {stage!r}")
        n, policy = stage
        _positive_int(owner, f"stage {i} n_iter", n)
        if not isinstance(policy, Policy):
            raise ValueError(f"{owner}: stage {i} policy must be a Policy, got {policy!r}")
        checked.append((n, policy))
    return tuple(checked)


class _Staged(Policy):
    """Shared mechanics of LRPolicy.Staged and MomPolicy.Staged (cumulative stage boundaries)."""

    def __init__(self, *stages: tuple[int, Policy]) -> None:
        self.stages = _staged_stages(f"{type(self).__qualname__}", stages)
        self.boundaries: list[int] = []  # iteration at which stage i ends (cumulative); last stage never ends
        total = 0
        for n, _ in self.stages:
            total += n
            self.boundaries.append(total)

    def stage_at(self, iteration: int) -> int:
        """Index of the stage active at ``iteration``: it advances once ``iteration >= boundary``."""
        stage = 0
        while stage < len(self.stages) - 1 and iteration >= self.boundaries[stage]:
            stage += 1
        return stage

    def get(self, state: Any) -> float:
        return self.stages[self.stage_at(int(state.iteration))][1].get(state)

    def resumed(self, state: Any) -> None:
        for _, policy in self.stages:
            policy.resumed(state)

    def __repr__(self) -> str:
        inner = ", ".join(f"({n}, {p!r})" for n, p in self.stages)
        return f"{type(self).__qualname__}({inner})"


class LRPolicy:
    """Learning-rate policies (a namespace, like Mocha's ``LRPolicy`` module)."""

    @dataclass(frozen=True)
    class Fixed(Policy):
        base_lr: float

        def __post_init__(self) -> None:
            _finite("LRPolicy.Fixed", "base_lr", self.base_lr, 0.0)

        def get(self, state: Any) -> float:
            return float(self.base_lr)

    @dataclass(frozen=True)
    class Step(Policy):
        base_lr: float
        gamma: float
        stepsize: int

        def __post_init__(self) -> None:
            _finite("LRPolicy.Step", "base_lr", self.base_lr, 0.0)
            _finite("LRPolicy.Step", "gamma", self.gamma, 0.0)
            _positive_int("LRPolicy.Step", "stepsize", self.stepsize)

        def get(self, state: Any) -> float:
            return float(self.base_lr) * float(self.gamma) ** (int(state.iteration) // self.stepsize)

    @dataclass(frozen=True)
    class Exp(Policy):
        base_lr: float
        gamma: float

        def __post_init__(self) -> None:
            _finite("LRPolicy.Exp", "base_lr", self.base_lr, 0.0)
            _finite("LRPolicy.Exp", "gamma", self.gamma, 0.0)

        def get(self, state: Any) -> float:
            return float(self.base_lr) * float(self.gamma) ** int(state.iteration)

    @dataclass(frozen=True)
    class Inv(Policy):
        base_lr: float
        gamma: float
        power: float

        def __post_init__(self) -> None:
            _finite("LRPolicy.Inv", "base_lr", self.base_lr, 0.0)
            _finite("LRPolicy.Inv", "gamma", self.gamma, 0.0)
            _finite("LRPolicy.Inv", "power", self.power)

        def get(self, state: Any) -> float:
            return float(self.base_lr) * (1.0 + float(self.gamma) * int(state.iteration)) ** (-float(self.power))

    @dataclass(frozen=True)
    class Poly(Policy):
        """Caffe's polynomial decay to 0 at ``max_iter``: ``base_lr * (1 - it / max_iter) ** power``."""

        base_lr: float
        power: float
        max_iter: int

        def __post_init__(self) -> None:
            _finite("LRPolicy.Poly", "base_lr", self.base_lr, 0.0)
            _finite("LRPolicy.Poly", "power", self.power, 0.0)
            _positive_int("LRPolicy.Poly", "max_iter", self.max_iter)

        def get(self, state: Any) -> float:
            remaining = max(0.0, 1.0 - int(state.iteration) / self.max_iter)
            return float(self.base_lr) * remaining ** float(self.power)

    class Staged(_Staged):
        """``Staged((n1, policy1), (n2, policy2), ...)``: policy1 for n1 iterations, then policy2, ..."""

    class DecayOnValidation(Policy):
        """Multiply the learning rate by ``gamma`` whenever a validation result gets worse (Mocha).

        Wire it with ``policy.setup(validation, solver)`` where ``validation`` is the
        :class:`~mocha_triton.coffee.ValidationPerformance` break whose statistic ``stat_key`` (e.g.
        ``"test-accuracy-accuracy"``) is watched. After each validation, its value is compared with the
        latest one recorded at an earlier iteration; when it is worse (lower if ``higher_better``, else
        higher):

        * the learning rate becomes ``max(lr * gamma, min_lr)`` (once at ``min_lr`` it stops decaying);
        * if the solver's ``load_from`` names a snapshot directory (or file), training is rolled back
          to the latest snapshot there (parameters, solver state, data position), keeping the decayed
          rate. Add the validation break *before* the Snapshot break so the latest snapshot is the one
          from before the worse result.

        When the solver resumes from a snapshot, the policy adopts the learning rate saved in it.
        """

        def __init__(self, base_lr: float, stat_key: str, gamma: float = 0.5, min_lr: float = 1e-8,
                     higher_better: bool = True) -> None:
            owner = "LRPolicy.DecayOnValidation"
            self.base_lr = _finite(owner, "base_lr", base_lr, 0.0)
            if not isinstance(stat_key, str) or not stat_key:
                raise ValueError(f"{owner}: stat_key must be a non-empty string, got {stat_key!r}")
            self.stat_key = stat_key
            self.gamma = _finite(owner, "gamma", gamma, 0.0)
            if not self.gamma < 1.0:
                raise ValueError(f"{owner}: gamma must be < 1 (it is a decay factor), got {gamma!r}")
            self.min_lr = _finite(owner, "min_lr", min_lr, 0.0)
            self.higher_better = bool(higher_better)
            self.curr_lr = self.base_lr
            self.solver: Any = None
            self.n_decays = 0

        def get(self, state: Any) -> float:
            return self.curr_lr

        def resumed(self, state: Any) -> None:
            if state.learning_rate > 0:
                self.curr_lr = float(state.learning_rate)

        def setup(self, validation: Any, solver: Any) -> None:
            """Listen to ``validation`` (a ValidationPerformance break) and roll back ``solver``'s runs."""
            validation.register(self.on_validation)
            self.solver = solver

        def is_worse(self, new: float, old: float) -> bool:
            return new < old if self.higher_better else new > old

        def on_validation(self, lounge: Any, net: Any, state: Any) -> None:
            """The listener: compare this validation's result with the latest one before it (records
            beyond the current iteration, e.g. merged from an interrupted run's statistics file, are
            ignored); decay and roll back when it got worse."""
            stats = lounge.get_statistics(self.stat_key)
            current = int(state.iteration)
            if current not in stats:
                raise ValueError(f"LRPolicy.DecayOnValidation: no statistic {self.stat_key!r} was recorded at "
                                 f"iteration {current}; keys recorded: {sorted(lounge.statistics)}")
            earlier = [i for i in stats if i < current]
            if not earlier or not self.is_worse(stats[current], stats[max(earlier)]):
                return
            new_lr = max(self.curr_lr * self.gamma, self.min_lr)
            if new_lr >= self.curr_lr:
                return  # already at min_lr: no more decay
            self.curr_lr = new_lr
            self.n_decays += 1
            solver = self.solver
            if solver is not None and solver.params.load_from:
                path = resolve_load_from(solver.params.load_from)
                if path is not None and path[1] == "snapshot":
                    solver.restore_snapshot(net, state, path[0])
                else:
                    warnings.warn(f"LRPolicy.DecayOnValidation: no snapshot in {solver.params.load_from!r} "
                                  "to roll back to; only decaying the learning rate", stacklevel=2)
            state.learning_rate = self.curr_lr

        def __repr__(self) -> str:
            return (f"LRPolicy.DecayOnValidation(curr_lr={self.curr_lr}, stat_key={self.stat_key!r}, "
                    f"gamma={self.gamma}, min_lr={self.min_lr}, higher_better={self.higher_better})")


class MomPolicy:
    """Momentum policies (a namespace, like Mocha's ``MomPolicy`` module)."""

    @dataclass(frozen=True)
    class Fixed(Policy):
        base_mom: float

        def __post_init__(self) -> None:
            _finite("MomPolicy.Fixed", "base_mom", self.base_mom, 0.0)

        def get(self, state: Any) -> float:
            return float(self.base_mom)

    @dataclass(frozen=True)
    class Step(Policy):
        base_mom: float
        gamma: float
        stepsize: int
        max_mom: float

        def __post_init__(self) -> None:
            _finite("MomPolicy.Step", "base_mom", self.base_mom, 0.0)
            _finite("MomPolicy.Step", "gamma", self.gamma, 0.0)
            _positive_int("MomPolicy.Step", "stepsize", self.stepsize)
            _finite("MomPolicy.Step", "max_mom", self.max_mom, 0.0)

        def get(self, state: Any) -> float:
            value = float(self.base_mom) * float(self.gamma) ** (int(state.iteration) // self.stepsize)
            return min(value, float(self.max_mom))

    @dataclass(frozen=True)
    class Linear(Policy):
        base_mom: float
        gamma: float
        stepsize: int
        max_mom: float

        def __post_init__(self) -> None:
            _finite("MomPolicy.Linear", "base_mom", self.base_mom, 0.0)
            _finite("MomPolicy.Linear", "gamma", self.gamma)
            _positive_int("MomPolicy.Linear", "stepsize", self.stepsize)
            _finite("MomPolicy.Linear", "max_mom", self.max_mom, 0.0)

        def get(self, state: Any) -> float:
            value = float(self.base_mom) + (int(state.iteration) // self.stepsize) * float(self.gamma)
            return min(value, float(self.max_mom))

    class Staged(_Staged):
        """``Staged((n1, policy1), (n2, policy2), ...)``: policy1 for n1 iterations, then policy2, ..."""

