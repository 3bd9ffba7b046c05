"""Solvers: train a net with SGD, Nesterov, Adam, Adagrad, RMSProp or Adadelta, with coffee breaks in
between (Mocha's solve loop).

::

    params = SolverParameters(max_iter=10000, regu_coef=0.0005, lr_policy=LRPolicy.Inv(0.01, 0.0001, 0.75),
                              mom_policy=MomPolicy.Fixed(0.9), load_from="snapshots/")
    solver = Solver(SGD(), params)
    solver.setup_coffee_lounge(save_into="snapshots/statistics.h5", every_n_iter=1000)
    solver.add_coffee_break(TrainingSummary(), every_n_iter=100)
    solver.add_coffee_break(Snapshot("snapshots/"), every_n_iter=5000)
    solver.solve(net)

``solve(net)`` is ``init`` + ``step`` until ``max_iter`` + ``finalize``; the three are public so a
program can drive training itself. What they do, in order (Mocha's semantics):

``init(net)``
  1. ``net.check_bp_topology()``;
  2. a fresh :class:`SolverState`: iteration 0, the policies' values at iteration 0, the method's
     state blobs (momentum history, moment estimates, ...) at zero for every trainable parameter
     (frozen layers are left out, so freeze before solving);
  3. ``load_from``: ``""`` starts fresh; a directory resumes from its newest ``snapshot-*.h5`` (fresh if
     none); a snapshot file resumes from it; another HDF5 file loads Mocha's flat ``<layer>___<param>``
     weights only, at iteration 0;
  4. one forward pass for ``obj_val``;
  5. the coffee lounge starts (after a resume it puts the validation test nets' data where the
     snapshot says) and the breaks due at the current iteration run (iteration 0 on a fresh start).

``step(net, state)``
  1. ``iteration += 1``; 2. ``net.backward(regu_coef)`` (with a ``data_parallel``, the gradients are
  then averaged over the processes); 3. every trainable parameter (of a layer not
  frozen now; freezing between steps pauses a layer, unfreezing one that was frozen at ``init`` is an
  error) is updated with
  ``lr = lr_policy(iteration) * param.learning_rate`` by the method: SGD ``v = mu_prev * v - lr * g;
  w += v``, where ``mu_prev`` is the previous iteration's momentum (Mocha), Nesterov with ``mu_prev``
  and this iteration's momentum, the adaptive methods as their classes say (they use no momentum
  policy); 4. norm constraints due at this iteration; 5. a forward pass gives ``obj_val``
  (the objective after the update, on the next batch) and the per-loss-layer ``losses``; 6. the due
  coffee breaks.

Parameters shared by several layers get one update per sharer (each has its own gradient and
solver state), as in Mocha. Custom methods subclass :class:`SolverMethod`.

==================  ====================================================================================
method              update of one parameter ``w`` with gradient ``g`` at iteration ``t`` (t = 1, 2, ...)
==================  ====================================================================================
``SGD()``           ``v = mu_prev * v - lr * g; w += v``
``Nesterov()``      ``w -= mu_prev * v; v = mu_prev * v - lr * g; w += (1 + mu) * v``
``Adam()``          ``m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g**2;
                    w -= lr * sqrt(1-b2**t) / (1-b1**t) * m / (sqrt(v) + eps)``
``Adagrad()``       ``h += g**2; w -= lr * g / (sqrt(h) + eps)``
``RMSProp()``       ``h = decay*h + (1-decay)*g**2; w -= lr * g / (sqrt(h) + eps)``
``Adadelta()``      ``h = rho*h + (1-rho)*g**2; d = sqrt(u + eps) / sqrt(h + eps) * g;
                    u = rho*u + (1-rho)*d**2; w -= lr * d``  (``lr = 1`` is Zeiler's method)
==================  ====================================================================================

These are Caffe's formulas (and PyTorch's, except that PyTorch's Adam adds ``eps`` after the bias
correction). Mocha's bugs are not reproduced: Adam's second moment decays, Adagrad is per element, and
every method applies the parameters' local learning-rate multipliers. The methods' ``epsilon`` must be
> 0: with 0, an element whose gradients have all been 0 would become 0/0 = NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mocha_triton.blob import Blob
from mocha_triton.checks.solvers import require_decay, require_positive
from mocha_triton.coffee import Coffee, CoffeeLounge
from mocha_triton.policies import LRPolicy, MomPolicy, Policy
from mocha_triton.snapshots import capture_resume_point, load_flat_weights, load_snapshot, resolve_load_from

__all__ = ["SGD", "Adadelta", "Adagrad", "Adam", "Nesterov", "RMSProp", "Solver", "SolverMethod", "SolverParameters",
           "SolverState"]


@dataclass
class SolverParameters:
    """What to train for and how: ``max_iter`` (may be ``math.inf``), ``regu_coef`` (the global
    regularization coefficient, lambda), the learning-rate and momentum policies, and ``load_from``."""

    max_iter: int | float
    regu_coef: float = 0.0005
    lr_policy: Policy = field(default_factory=lambda: LRPolicy.Fixed(0.01))
    mom_policy: Policy = field(default_factory=lambda: MomPolicy.Fixed(0.0))
    load_from: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, float)) or not (
                self.max_iter >= 0 and (isinstance(self.max_iter, int) or self.max_iter == math.inf
                                        or float(self.max_iter).is_integer())):
            raise ValueError(f"SolverParameters: max_iter must be an int >= 0 or math.inf, got {self.max_iter!r}")
        if isinstance(self.regu_coef, bool) or not isinstance(self.regu_coef, (int, float)) or not (
                math.isfinite(self.regu_coef) and self.regu_coef >= 0):
            raise ValueError(f"SolverParameters: regu_coef must be a finite number >= 0, got {self.regu_coef!r}")
        for name in ("lr_policy", "mom_policy"):
            if not isinstance(getattr(self, name), Policy):
                raise ValueError(f"SolverParameters: {name} must be a policy (LRPolicy.*/MomPolicy.*), "
                                 f"got {getattr(self, name)!r}")
        if not isinstance(self.load_from, str):
            self.load_from = str(self.load_from)


class SolverState:
    """Where training is: iteration, objective, current learning rate and momentum, the method's state.

    * ``parameters`` — ``[(key, Parameter)]`` of the trainable parameters, fixed when the state is made;
      ``key`` is ``"<layer name>/<index in the layer>"`` (e.g. ``"ip1/0"`` for ip1's weight);
    * ``blobs[name][key]`` — the solver method's per-parameter state (``SolverMethod.state_names``:
      ``"momentum_history"`` for SGD and Nesterov, the moment estimates for Adam, ...), blobs shaped
      like the parameter on the net's backend, zero at the start; ``momentum_history`` is
      ``blobs["momentum_history"]``;
    * ``losses[layer name]`` — each loss layer's loss from the latest forward pass;
    * ``resume_point`` — data positions and RNG state captured just before the latest forward pass
      (what a snapshot saves, see :mod:`mocha_triton.snapshots`).
    """

    def __init__(self, parameters: list[tuple[str, Any]], blobs: dict[str, dict[str, Blob]]) -> None:
        self.iteration = 0
        self.obj_val = math.nan
        self.learning_rate = 0.0
        self.momentum = 0.0
        self.parameters = list(parameters)
        self.blobs = {name: dict(group) for name, group in blobs.items()}
        self.losses: dict[str, float] = {}
        self.resume_point: dict[str, Any] | None = None

    @classmethod
    def for_net(cls, net: Any, state_names: tuple[str, ...] = ("momentum_history",)) -> SolverState:
        """A fresh state for the trainable (non-frozen) parameters of ``net``, with one zero blob per
        parameter for each name in ``state_names``."""
        parameters = [(f"{state.layer.name}/{i}", param) for state in net.states if not state.frozen
                      for i, param in enumerate(state.parameters)]
        blobs = {name: {key: Blob.zeros(net.backend, param.shape, f"{key}-{name}", dtype=param.blob.dtype)
                        for key, param in parameters}
                 for name in state_names}
        return cls(parameters, blobs)

    @property
    def momentum_history(self) -> dict[str, Blob]:
        """SGD's and Nesterov's momentum histories by parameter key (empty for other methods)."""
        return self.blobs.get("momentum_history", {})

    def blobs_of(self, key: str) -> dict[str, Blob]:
        """The method's state blobs of one parameter, by state name."""
        return {name: group[key] for name, group in self.blobs.items()}

    # --- what snapshots save ------------------------------------------------------------------------
    def scalars(self) -> dict[str, float | int]:
        return {"iteration": int(self.iteration), "obj_val": float(self.obj_val),
                "learning_rate": float(self.learning_rate), "momentum": float(self.momentum)}

    def load_scalars(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            setattr(self, key, int(value) if key == "iteration" else float(value))

    def __repr__(self) -> str:
        return (f"SolverState(iteration={self.iteration}, obj_val={self.obj_val:.8g}, "
                f"learning_rate={self.learning_rate:.8g}, momentum={self.momentum:.8g})")


class SolverMethod:
    """How one parameter is updated from its gradient. Subclasses implement :meth:`update`.

    ``state_names`` names the per-parameter state blobs the method keeps (each shaped like the
    parameter, zero at the start, saved in snapshots); ``uses_momentum`` says whether the momentum
    policy means anything to it (the solver refuses a non-zero momentum otherwise).
    """

    state_names: tuple[str, ...] = ("momentum_history",)
    uses_momentum: bool = True

    def update(self, ops: Any, param: Any, blobs: dict[str, Blob], lr: float, momentum: float,
               next_momentum: float, iteration: int) -> None:
        """Update ``param.blob`` (and ``blobs``) in place from ``param.gradient``.

        ``blobs`` maps each of ``state_names`` to this parameter's state blob; ``lr`` already includes
        the parameter's local multiplier; ``momentum`` is the previous iteration's momentum,
        ``next_momentum`` this iteration's; ``iteration`` is the iteration being made (1 for the first
        update).
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SGD(SolverMethod):
    """Stochastic gradient descent with momentum: ``v = mu_prev * v - lr * g; w += v``."""

    def update(self, ops: Any, param: Any, blobs: dict[str, Blob], lr: float, momentum: float,
               next_momentum: float, iteration: int) -> None:
        ops.sgd_momentum_update(param.blob.data, param.gradient.data, blobs["momentum_history"].data, lr, momentum)


class Nesterov(SolverMethod):
    """Nesterov momentum (Bengio et al.): ``w -= mu_prev * v; v = mu_prev * v - lr * g; w += (1 + mu) * v``."""

    def update(self, ops: Any, param: Any, blobs: dict[str, Blob], lr: float, momentum: float,
               next_momentum: float, iteration: int) -> None:
        ops.nesterov_update(param.blob.data, param.gradient.data, blobs["momentum_history"].data, lr, momentum,
                            next_momentum)


@dataclass(frozen=True)
class Adam(SolverMethod):
    """Adam (Kingma & Ba) as Caffe computes it, with ``t`` the iteration:
    ``m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g**2; w -= lr * sqrt(1-b2**t) / (1-b1**t) * m / (sqrt(v) + eps)``.

    ``beta1`` plays the role of momentum, so the momentum policy must stay zero. Mocha's default
    learning rate policy for Adam was ``LRPolicy.Inv(0.003, 0.0001, 0.5)``; PyTorch's is a fixed 0.001.
    """

    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    state_names = ("first_moment", "second_moment")
    uses_momentum = False

    def __post_init__(self) -> None:
        require_decay("Adam", "beta1", self.beta1)
        require_decay("Adam", "beta2", self.beta2)
        require_positive("Adam", "epsilon", self.epsilon)

    def update(self, ops: Any, param: Any, blobs: dict[str, Blob], lr: float, momentum: float,
               next_momentum: float, iteration: int) -> None:
        step_size = lr * math.sqrt(1.0 - self.beta2 ** iteration) / (1.0 - self.beta1 ** iteration)
        ops.adam_update(param.blob.data, param.gradient.data, blobs["first_moment"].data, blobs["second_moment"].data,
                        step_size, self.beta1, self.beta2, self.epsilon)


@dataclass(frozen=True)
class Adagrad(SolverMethod):
    """Adagrad (Duchi et al.), per element: ``h += g**2; w -= lr * g / (sqrt(h) + eps)``."""

    epsilon: float = 1e-8
    state_names = ("squared_gradient_sum",)
    uses_momentum = False

    def __post_init__(self) -> None:
        require_positive("Adagrad", "epsilon", self.epsilon)

    def update(self, ops: Any, param: Any, blobs: dict[str, Blob], lr: float, momentum: float,
               next_momentum: float, iteration: int) -> None:
        ops.adagrad_update(param.blob.data, param.gradient.data, blobs["squared_gradient_sum"].data, lr,
                           self.epsilon)


@dataclass(frozen=True)
class RMSProp(SolverMethod):
    """RMSProp (Tieleman & Hinton): ``h = decay*h + (1-decay)*g**2; w -= lr * g / (sqrt(h) + eps)``."""

    decay: float = 0.99
    epsilon: float = 1e-8
    state_names = ("squared_gradient_average",)
    uses_momentum = False

    def __post_init__(self) -> None:
        require_decay("RMSProp", "decay", self.decay)
        require_positive("RMSProp", "epsilon", self.epsilon)

    def update(self, ops: Any, param: Any, blobs: dict[str, Blob], lr: float, momentum: float,
               next_momentum: float, iteration: int) -> None:
        ops.rmsprop_update(param.blob.data, param.gradient.data, blobs["squared_gradient_average"].data, lr,
                           self.decay, self.epsilon)


@dataclass(frozen=True)
class Adadelta(SolverMethod):
    """Adadelta (Zeiler): ``h = rho*h + (1-rho)*g**2; d = sqrt(u + eps) / sqrt(h + eps) * g;
    u = rho*u + (1-rho)*d**2; w -= lr * d``. Zeiler's method has no learning rate: use
    ``LRPolicy.Fixed(1.0)`` (Caffe and PyTorch multiply by it, as here)."""

    rho: float = 0.95
    epsilon: float = 1e-6
    state_names = ("squared_gradient_average", "squared_update_average")
    uses_momentum = False

    def __post_init__(self) -> None:
        require_decay("Adadelta", "rho", self.rho)
        require_positive("Adadelta", "epsilon", self.epsilon)

    def update(self, ops: Any, param: Any, blobs: dict[str, Blob], lr: float, momentum: float,
               next_momentum: float, iteration: int) -> None:
        ops.adadelta_update(param.blob.data, param.gradient.data, blobs["squared_gradient_average"].data,
                            blobs["squared_update_average"].data, lr, self.rho, self.epsilon)


class Solver:
    """Trains a net: ``Solver(SGD(), SolverParameters(...)).solve(net)``."""

    def __init__(self, method: SolverMethod, params: SolverParameters, data_parallel: Any = None) -> None:
        """``data_parallel``: a :class:`~mocha_triton.parallel.DataParallel` to train on several processes
        (parameters broadcast from rank 0 at ``init``, gradients and objectives averaged every step)."""
        if not isinstance(method, SolverMethod):
            raise TypeError(f"Solver: method must be a SolverMethod such as SGD() or Nesterov(), got {method!r}")
        if not isinstance(params, SolverParameters):
            raise TypeError(f"Solver: params must be SolverParameters, got {type(params).__name__}")
        if data_parallel is not None and not all(hasattr(data_parallel, name) for name in (
                "broadcast_parameters", "average_gradients", "average_scalars")):
            raise TypeError(f"Solver: data_parallel must be a mocha_triton.DataParallel, got {data_parallel!r}")
        self.method = method
        self.params = params
        self.data_parallel = data_parallel
        self.lounge = CoffeeLounge()

    # --- configuration ----------------------------------------------------------------------------
    def setup_coffee_lounge(self, save_into: str = "", every_n_iter: int = 1, file_exists: str = "merge") -> None:
        """Save the statistics into ``save_into`` (HDF5) every ``every_n_iter`` iterations and at the end;
        ``file_exists`` is "merge" (default), "overwrite" or "panic"."""
        self.lounge.configure(save_into, every_n_iter, file_exists)

    def add_coffee_break(self, coffee: Coffee, every_n_iter: int = 0, every_n_epoch: int = 0) -> None:
        """Run ``coffee`` every ``every_n_iter`` iterations (including iteration 0) and/or every
        ``every_n_epoch`` epochs of the training data. Breaks run in the order they were added."""
        self.lounge.add_coffee_break(coffee, every_n_iter, every_n_epoch)

    # --- the step API -----------------------------------------------------------------------------
    def init(self, net: Any) -> SolverState:
        """Prepare training: check the net, build or load the state, first forward, first coffee breaks."""
        net.check_bp_topology()
        state = SolverState.for_net(net, tuple(self.method.state_names))
        state.learning_rate = self.params.lr_policy.get(state)
        state.momentum = self._momentum(state)
        resolved = resolve_load_from(self.params.load_from)
        resumed_from = None
        if resolved is not None:
            path, kind = resolved
            if kind == "snapshot":
                load_snapshot(path, net, state)
                self.params.lr_policy.resumed(state)
                self.params.mom_policy.resumed(state)
                resumed_from = path
            else:
                load_flat_weights(net, path)
        if self.data_parallel is not None:
            if net.params:
                self.data_parallel.require_same(state.iteration, "the iteration to start from",
                                                next(iter(net.params.values()))[0].blob)
            self.data_parallel.broadcast_parameters(net)
        self.forward(net, state)
        self.lounge.setup(self, net, state, resumed_from)
        self.lounge.check_coffee_breaks(net, state)
        return state

    def step(self, net: Any, state: SolverState) -> None:
        """One training iteration (see the module docstring)."""
        state.iteration += 1
        net.backward(self.params.regu_coef)
        trainable = self._trainable(net, state)
        if self.data_parallel is not None:
            self.data_parallel.average_gradients([param for _, param in trainable])
        learning_rate = self.params.lr_policy.get(state)
        momentum = self._momentum(state)
        ops = net.backend.ops
        for key, param in trainable:
            self.method.update(ops, param, state.blobs_of(key), learning_rate * param.learning_rate,
                               state.momentum, momentum, state.iteration)
        state.learning_rate, state.momentum = learning_rate, momentum
        for _, param in trainable:
            every = getattr(param.constraint, "every_n_iter", 1)
            if every and state.iteration % every == 0:
                param.constraint.constrain(param)
        self.forward(net, state)
        self.lounge.check_coffee_breaks(net, state)

    def finalize(self, net: Any, state: SolverState) -> None:
        """End of training: destroy the coffee breaks and save the statistics."""
        self.lounge.shutdown(net)

    def solve(self, net: Any) -> SolverState:
        """Train ``net`` until ``max_iter``; returns the final state."""
        state = self.init(net)
        while state.iteration < self.params.max_iter:
            self.step(net, state)
        self.finalize(net, state)
        return state

    # --- helpers ------------------------------------------------------------------------------------
    @staticmethod
    def _trainable(net: Any, state: SolverState) -> list[tuple[str, Any]]:
        """The state's parameters whose layers are not frozen now. A layer frozen after ``init`` is left
        alone (its solver state is kept); one unfrozen after ``init`` has no solver state: an error."""
        frozen = {s.layer.name for s in net.states if s.frozen}
        known = {key.rsplit("/", 1)[0] for key, _ in state.parameters}
        thawed = [s.layer.name for s in net.states if s.parameters and not s.frozen and s.layer.name not in known]
        if thawed:
            raise ValueError(f"Solver: layer(s) {thawed} of net {net.name!r} were frozen when training started and "
                             "have no solver state; unfreeze before Solver.init (or start a new solver)")
        return [(key, param) for key, param in state.parameters if key.rsplit("/", 1)[0] not in frozen]

    def _momentum(self, state: SolverState) -> float:
        """The momentum policy's value now; a method without momentum refuses a non-zero one."""
        momentum = self.params.mom_policy.get(state)
        if momentum != 0 and not self.method.uses_momentum:
            raise ValueError(f"Solver: {self.method!r} uses no momentum, but mom_policy gives {momentum!r} at "
                             f"iteration {state.iteration}; leave mom_policy at MomPolicy.Fixed(0.0)")
        return momentum

    def forward(self, net: Any, state: SolverState) -> float:
        """Forward pass recording ``obj_val`` and ``losses``, after noting the resume point."""
        state.resume_point = capture_resume_point(net)
        state.obj_val = net.forward()
        state.losses = {s.layer.name: float(s.loss) for s in net.states if s.layer.has_loss}
        if self.data_parallel is not None and net.params:  # every process reports the mean objective
            like = next(iter(net.params.values()))[0].blob
            values = self.data_parallel.average_scalars([state.obj_val, *state.losses.values()], like)
            state.obj_val, state.losses = values[0], dict(zip(state.losses, values[1:]))
        return state.obj_val

    def restore_snapshot(self, net: Any, state: SolverState, path: str) -> None:
        """Roll ``net`` and ``state`` back to the snapshot at ``path`` (used by DecayOnValidation)."""
        load_snapshot(path, net, state)
        self.forward(net, state)
