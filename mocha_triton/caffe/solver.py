"""Caffe solvers as mocha-triton solvers: :func:`load_solver` reads a ``solver.prototxt`` and returns a
configured :class:`~mocha_triton.Solver` with its training net and test net.

::

    from mocha_triton.caffe import load_solver
    solver, train_net, test_net = load_solver("lenet_solver.prototxt")
    solver.solve(train_net)

How the settings map
--------------------
====================================  ================================================================
Caffe ``SolverParameter``             mocha-triton
====================================  ================================================================
``net`` / ``net_param``,              the training net (phase train, ``train_state``) and the test net
``train_net(_param)``,                (phase test, ``test_state``), built by
``test_net(_param)``                  :func:`~mocha_triton.caffe.load_net` on one backend, so they share
                                      their parameters by layer name; one test net at most
``type`` (``solver_type``)            ``SGD`` -> :class:`~mocha_triton.SGD`, ``Nesterov`` ->
                                      :class:`~mocha_triton.Nesterov`, ``Adam`` -> :class:`~mocha_triton.Adam`
                                      (``momentum`` is beta1, ``momentum2`` beta2, ``delta`` epsilon),
                                      ``AdaGrad`` -> :class:`~mocha_triton.Adagrad` (``delta``),
                                      ``RMSProp`` -> :class:`~mocha_triton.RMSProp` (``rms_decay``,
                                      ``delta``), ``AdaDelta`` -> :class:`~mocha_triton.Adadelta`
                                      (``momentum`` is rho, ``delta`` epsilon); AdaGrad and RMSProp
                                      refuse a non-zero ``momentum``, as Caffe does
``base_lr``, ``lr_policy``,           ``fixed``/``step``/``exp``/``inv``/``poly`` -> ``LRPolicy.Fixed``/
``gamma``, ``power``, ``stepsize``,   ``Step``/``Exp``/``Inv``/``Poly``; ``multistep`` -> :class:`MultiStepLR`;
``stepvalue``                         ``sigmoid`` -> :class:`SigmoidLR` (both in this module)
``momentum``                          ``MomPolicy.Fixed(momentum)`` for SGD and Nesterov
``weight_decay``                      ``regu_coef`` (same convention: gradient ``decay_mult *
                                      weight_decay * W``); ``regularization_type`` L1/L2 picks the nets'
                                      regularizers
``max_iter``                          ``max_iter``
``display``                           :class:`~mocha_triton.TrainingSummary` (iter, obj_val, learning
                                      rate) every ``display`` iterations
``test_interval``, ``test_iter``,     :class:`CaffeTestPerformance` every ``test_interval`` iterations:
``test_initialization``               exactly ``test_iter`` forward passes of the test net
``snapshot``, ``snapshot_prefix``     :class:`~mocha_triton.Snapshot` every ``snapshot`` iterations into
                                      the *directory* ``snapshot_prefix`` (``snapshot-%06d.h5`` files,
                                      mocha-triton's format)
``random_seed``                       ``backend.seed(random_seed)`` before the nets are built
====================================  ================================================================

Paths: the net files are looked up in the current directory (Caffe), then next to the solver file,
then by their file name next to the solver file (for example files moved out of a Caffe checkout).
``snapshot_prefix`` is relative to the current directory, like Caffe.

Differences from Caffe (documented, deliberate): the learning rate of the update at iteration ``k``
is the policy's value at ``k`` (mocha-triton counts iterations from 1; Caffe's ``iter_`` is ``k - 1``,
so step boundaries happen one update later); breaks also run at iteration 0 (except the test when
``test_initialization: false``); ``snapshot_after_train``, ``average_loss`` and ``solver_mode`` are
ignored. Not supported (an error names the field): ``iter_size > 1``, ``clip_gradients``, several test
nets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mocha_triton.caffe import proto
from mocha_triton.caffe.convert import CaffeConversionError, caffe_float, load_net
from mocha_triton.caffe.reader import read_solver, upgrade_solver
from mocha_triton.coffee import Snapshot, TrainingSummary, ValidationPerformance
from mocha_triton.net import Net
from mocha_triton.policies import LRPolicy, MomPolicy, Policy
from mocha_triton.solvers import SGD, Adadelta, Adagrad, Adam, Nesterov, RMSProp, Solver, SolverMethod, SolverParameters

__all__ = ["CaffeTestPerformance", "MultiStepLR", "SigmoidLR", "caffe_lr_policy", "caffe_solver_method", "load_solver"]

SOLVER_TYPES = ("SGD", "Nesterov", "Adam", "AdaGrad", "RMSProp", "AdaDelta")
LR_POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")


@dataclass(frozen=True)
class MultiStepLR(Policy):
    """Caffe's ``multistep``: ``base_lr * gamma ** (number of stepvalues <= iteration)``."""

    base_lr: float
    gamma: float
    stepvalues: tuple[int, ...]

    def __post_init__(self) -> None:
        values = tuple(int(v) for v in self.stepvalues)
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(f"MultiStepLR: stepvalues must increase, got {values}")
        object.__setattr__(self, "stepvalues", values)

    def get(self, state: Any) -> float:
        steps = sum(1 for v in self.stepvalues if int(state.iteration) >= v)
        return float(self.base_lr) * float(self.gamma) ** steps


@dataclass(frozen=True)
class SigmoidLR(Policy):
    """Caffe's ``sigmoid``: ``base_lr / (1 + exp(-gamma * (iteration - stepsize)))``."""

    base_lr: float
    gamma: float
    stepsize: int

    def get(self, state: Any) -> float:
        return float(self.base_lr) / (1.0 + math.exp(-float(self.gamma) * (int(state.iteration) - self.stepsize)))


class CaffeTestPerformance(ValidationPerformance):
    """Caffe's test: reset the test net's statistics, run exactly ``test_iter`` forward passes, record
    every statistic (e.g. ``accuracy-accuracy``) and the mean of each loss layer's loss
    (``<loss layer>-loss``), print them, then call the listeners (see
    :class:`~mocha_triton.ValidationPerformance`). With ``test_initialization=False`` the test at
    iteration 0 is skipped."""

    def __init__(self, test_net: Net, test_iter: int, test_initialization: bool = True) -> None:
        super().__init__(test_net)
        if isinstance(test_iter, bool) or not isinstance(test_iter, int) or test_iter < 1:
            raise ValueError(f"CaffeTestPerformance: test_iter must be a positive int, got {test_iter!r}")
        self.test_iter = test_iter
        self.test_initialization = bool(test_initialization)

    def enjoy(self, lounge: Any, net: Any, state: Any) -> None:
        if int(state.iteration) == 0 and not self.test_initialization:
            return
        test_net = self.test_net
        test_net.reset_statistics()
        losses = {s.layer.name: 0.0 for s in test_net.states if s.layer.has_loss}
        for _ in range(self.test_iter):
            test_net.forward()
            for s in test_net.states:
                if s.layer.has_loss:
                    losses[s.layer.name] += float(s.loss)
        stats = dict(test_net.statistics())
        stats.update({f"{name}-loss": total / self.test_iter for name, total in losses.items()})
        for key, value in stats.items():
            lounge.update_statistics(key, value)
        shown = " ".join(f"{key}={value:.8f}" for key, value in stats.items())
        print(f"TEST iter={int(state.iteration):06d} {shown}".rstrip(), flush=True)
        self.notify_listeners(lounge, net, state)


def _error(source: str, problem: str) -> CaffeConversionError:
    return CaffeConversionError(source, problem)


def caffe_solver_method(sp: Any, source: str = "<solver>") -> tuple[SolverMethod, float]:
    """The update method of a ``SolverParameter`` and the momentum for ``MomPolicy.Fixed`` (0 for the
    adaptive methods, which take ``momentum`` as a hyperparameter or refuse it)."""
    solver_type = sp.type or "SGD"
    momentum, delta = caffe_float(sp.momentum), caffe_float(sp.delta)
    if solver_type not in SOLVER_TYPES:
        raise _error(source, f"solver type {solver_type!r} is not supported; use one of {list(SOLVER_TYPES)}")
    if solver_type in ("AdaGrad", "RMSProp") and momentum != 0:
        raise _error(source, f"momentum {momentum} cannot be used with {solver_type} (Caffe refuses it too)")
    try:
        if solver_type == "SGD":
            return SGD(), momentum
        if solver_type == "Nesterov":
            return Nesterov(), momentum
        if solver_type == "Adam":
            return Adam(beta1=momentum, beta2=caffe_float(sp.momentum2), epsilon=delta), 0.0
        if solver_type == "AdaGrad":
            return Adagrad(epsilon=delta), 0.0
        if solver_type == "RMSProp":
            return RMSProp(decay=caffe_float(sp.rms_decay), epsilon=delta), 0.0
        return Adadelta(rho=momentum, epsilon=delta), 0.0
    except ValueError as exc:  # e.g. momentum 1.0 as Adam's beta1
        raise _error(source, f"{solver_type} settings (momentum, momentum2, rms_decay, delta): {exc}") from None


def caffe_lr_policy(sp: Any, source: str = "<solver>") -> Policy:
    """The learning-rate policy of a ``SolverParameter`` (see the module docstring for the mapping)."""
    if not sp.HasField("base_lr"):
        raise _error(source, "needs base_lr")
    base_lr = caffe_float(sp.base_lr)
    name = sp.lr_policy or ""

    def need(*fields: str) -> None:
        missing = [f for f in fields if not sp.HasField(f)]
        if missing:
            raise _error(source, f"lr_policy {name!r} needs {', '.join(missing)}")

    try:
        if name == "fixed":
            return LRPolicy.Fixed(base_lr)
        if name == "step":
            need("gamma", "stepsize")
            return LRPolicy.Step(base_lr, caffe_float(sp.gamma), int(sp.stepsize))
        if name == "exp":
            need("gamma")
            return LRPolicy.Exp(base_lr, caffe_float(sp.gamma))
        if name == "inv":
            need("gamma", "power")
            return LRPolicy.Inv(base_lr, caffe_float(sp.gamma), caffe_float(sp.power))
        if name == "multistep":
            need("gamma")
            if not sp.stepvalue:
                raise _error(source, "lr_policy 'multistep' needs stepvalue entries")
            return MultiStepLR(base_lr, caffe_float(sp.gamma), tuple(sp.stepvalue))
        if name == "poly":
            need("power", "max_iter")
            return LRPolicy.Poly(base_lr, caffe_float(sp.power), int(sp.max_iter))
        if name == "sigmoid":
            need("gamma", "stepsize")
            return SigmoidLR(base_lr, caffe_float(sp.gamma), int(sp.stepsize))
    except ValueError as err:
        if isinstance(err, CaffeConversionError):
            raise
        raise _error(source, f"lr_policy {name!r}: {err}") from err
    raise _error(source, f"lr_policy {name!r} is not supported; use one of {', '.join(LR_POLICIES)}")


def _find_net_file(path: str, solver_dir: str, source: str) -> str:
    """A net path from the solver: cwd (Caffe), next to the solver, or its file name next to the solver."""
    candidates = [path] if os.path.isabs(path) else [path, os.path.join(solver_dir, path),
                                                     os.path.join(solver_dir, os.path.basename(path))]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise _error(source, f"net file {path!r} not found (looked for {', '.join(repr(c) for c in candidates)})")


def _state(sp: Any, field: str, default_phase: str) -> tuple[str, int, tuple[str, ...]]:
    """(phase, level, stages) of ``train_state``/``test_state`` (field), or the defaults."""
    if field == "test_state":
        state = sp.test_state[0] if sp.test_state else None
    else:
        state = sp.train_state if sp.HasField("train_state") else None
    if state is None:
        return default_phase, 0, ()
    phase = default_phase if not state.HasField("phase") else ("train" if state.phase == proto.TRAIN else "test")
    return phase, int(state.level), tuple(state.stage)


def load_solver(solver_prototxt: Any, backend: Any = None, *, input_shapes: Mapping[str, Sequence[int]] | None = None,
                memory_data: Mapping[str, Sequence[Any]] | None = None,
                load_from: str = "") -> tuple[Solver, Net, Net | None]:
    """Read a Caffe solver (path, text or ``SolverParameter``) and build ``(solver, train_net, test_net)``.

    The test net is None when the solver has none. ``input_shapes`` and ``memory_data`` are passed to
    :func:`~mocha_triton.caffe.load_net` for both nets; ``load_from`` is the solver's ``load_from``
    (a snapshot directory or file to resume from). ``backend`` defaults to
    :func:`~mocha_triton.default_backend`. Raises :class:`~mocha_triton.caffe.CaffeConversionError` (a
    ValueError naming the solver file and the field) for settings it cannot map.
    """
    if isinstance(solver_prototxt, proto.SolverParameter):
        sp = proto.SolverParameter()
        sp.CopyFrom(solver_prototxt)  # upgraded like a file (legacy solver_type), leaving the caller's copy alone
        sp, source, solver_dir = upgrade_solver(sp), "<SolverParameter>", os.getcwd()
    else:
        is_file = isinstance(solver_prototxt, os.PathLike) or (
            isinstance(solver_prototxt, str) and "\n" not in solver_prototxt and os.path.isfile(solver_prototxt))
        sp = read_solver(solver_prototxt)
        source = os.fspath(solver_prototxt) if is_file else "<text>"
        solver_dir = os.path.dirname(os.path.abspath(source)) if is_file else os.getcwd()

    method, momentum = caffe_solver_method(sp, source)
    if sp.iter_size != 1:
        raise _error(source, f"iter_size {sp.iter_size} is not supported (gradient accumulation); use 1")
    if sp.clip_gradients >= 0:
        raise _error(source, "clip_gradients is not supported")
    if sp.regularization_type not in ("L1", "L2"):
        raise _error(source, f"regularization_type {sp.regularization_type!r} is not supported (L1, L2)")
    if not sp.HasField("max_iter"):
        raise _error(source, "needs max_iter")
    lr_policy = caffe_lr_policy(sp, source)

    if backend is None:
        from mocha_triton.backends import default_backend

        backend = default_backend(seed=max(int(sp.random_seed), 0))
    elif sp.random_seed >= 0:
        backend.seed(int(sp.random_seed))

    generic = [f for f, present in (("net_param", sp.HasField("net_param")), ("net", bool(sp.net))) if present]
    train_fields = [f for f, present in (("train_net_param", sp.HasField("train_net_param")),
                                         ("train_net", bool(sp.train_net))) if present] + generic
    if len(train_fields) != 1:
        raise _error(source, f"needs exactly one of net, net_param, train_net, train_net_param; got {train_fields}")
    field = train_fields[0]
    train_def = getattr(sp, field) if field.endswith("_param") else _find_net_file(getattr(sp, field), solver_dir,
                                                                                   source)
    common = {"backend": backend, "input_shapes": input_shapes, "memory_data": memory_data,
              "regularization": sp.regularization_type, "base_dir": solver_dir}
    phase, level, stages = _state(sp, "train_state", "train")
    train_net = load_net(train_def, phase=phase, level=level, stages=stages, **common)

    test_defs = list(sp.test_net_param) + [_find_net_file(p, solver_dir, source) for p in sp.test_net]
    if not test_defs and generic and sp.test_iter:
        test_defs = [train_def]
    if len(test_defs) > 1:
        raise _error(source, f"has {len(test_defs)} test nets; only one is supported")
    test_net = None
    if test_defs:
        if len(sp.test_iter) != 1:
            raise _error(source, f"needs one test_iter for its test net, got {list(sp.test_iter)}")
        phase, level, stages = _state(sp, "test_state", "test")
        test_net = load_net(test_defs[0], phase=phase, level=level, stages=stages, **common)

    params = SolverParameters(max_iter=int(sp.max_iter), regu_coef=caffe_float(sp.weight_decay), lr_policy=lr_policy,
                              mom_policy=MomPolicy.Fixed(momentum), load_from=load_from)
    solver = Solver(method, params)
    if sp.display > 0:
        solver.add_coffee_break(TrainingSummary("iter", "obj_val", "learning_rate"), every_n_iter=int(sp.display))
    if test_net is not None and sp.test_interval > 0:
        solver.add_coffee_break(CaffeTestPerformance(test_net, int(sp.test_iter[0]), bool(sp.test_initialization)),
                                every_n_iter=int(sp.test_interval))
    if sp.snapshot > 0:
        if not sp.snapshot_prefix:
            raise _error(source, "snapshot needs a snapshot_prefix (the snapshot directory)")
        solver.add_coffee_break(Snapshot(sp.snapshot_prefix), every_n_iter=int(sp.snapshot))
    return solver, train_net, test_net
