"""The coffee lounge and coffee breaks: what happens between training iterations (Mocha's vocabulary).

* :class:`CoffeeLounge` — the solver's statistics store, ``key -> {iteration: value}``, optionally saved
  to an HDF5 file; it also holds the coffee breaks and decides when each is due.
* :class:`Coffee` — the base class of a break. Subclass it and implement ``enjoy(lounge, net, state)``
  (and optionally ``init``/``destroy``) to run your own code during training.
* Built-in breaks: :class:`TrainingSummary` (a log line and training statistics), :class:`Snapshot`
  (``snapshot-%06d.h5`` files to resume from) and :class:`ValidationPerformance` (one pass over a test
  net and its statistics).

A break added with ``every_n_iter=n`` runs when ``iteration % n == 0`` — including iteration 0, before
any training, and again at the iteration a run resumes from. One added with ``every_n_epoch=n`` runs
when the training net's first data layer has started a new epoch and ``epoch % n == 0``.

**Roll-backs.** A break may move training back to an earlier iteration (``LRPolicy.DecayOnValidation``
restores the latest snapshot with ``solver.restore_snapshot``). The round of breaks ends right there:
the breaks still due at the abandoned iteration do not run (a warning names them); they run when
training reaches that iteration again, like every break due on the way. The lounge's iteration follows
the training state, so statistics are always recorded under the iteration training is at, and the
values recorded after the restored iteration (the abandoned stretch, which training runs again) are
dropped: the statistics describe the path training is on, and "the latest value" of a key (what
DecayOnValidation compares) is never one from the abandoned stretch.

**Resume and validation.** Breaks due at the resume iteration run again when training resumes, so a
:class:`Snapshot` saves each :class:`ValidationPerformance` test net's data position as it was *before*
the round of breaks (:meth:`CoffeeLounge.validation_positions`), and the lounge restores those positions
when the solver resumed from a snapshot: validations after a resume see exactly the samples they would
have seen without the interruption, even when the test batch size does not divide the test set.

Statistics file layout (plain HDF5): one group per key (``/`` and ``%`` percent-encoded) holding two
datasets of equal length, ``iterations`` (int64, increasing) and ``values`` (float64).
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mocha_triton.snapshots import (
    SnapshotError,
    atomic_h5_file,
    capture_data_positions,
    from_h5_name,
    h5_name,
    load_validation_positions,
    open_h5,
    restore_data_positions,
    save_snapshot,
    snapshot_path,
)

__all__ = ["Coffee", "CoffeeBreak", "CoffeeLounge", "Snapshot", "TrainingSummary", "ValidationPerformance"]

logger = logging.getLogger(__name__)

FILE_EXISTS_MODES = ("merge", "overwrite", "panic")
STATISTICS_FORMAT = "mocha-triton-statistics"


def data_epoch(net: Any) -> int | None:
    """The epoch counter of ``net``'s first data layer, or None if it has none."""
    for state in net.states:
        if state.layer.is_source and hasattr(state, "epoch"):
            return int(state.epoch)
    return None


class Coffee:
    """A coffee break: code that runs every few iterations or epochs during training.

    Subclasses implement :meth:`enjoy`; :meth:`init` runs once when training starts and :meth:`destroy`
    once when it ends. ``lounge.update_statistics(key, value)`` records a value at the current iteration.
    """

    def init(self, lounge: CoffeeLounge, net: Any) -> None:
        """Prepare (e.g. create a folder). ``net`` is the training net."""

    def enjoy(self, lounge: CoffeeLounge, net: Any, state: Any) -> None:
        """Do the work; ``state`` is the :class:`~mocha_triton.solvers.SolverState` (iteration, obj_val...)."""
        raise NotImplementedError

    def destroy(self, lounge: CoffeeLounge, net: Any) -> None:
        """Release what :meth:`init` acquired."""


@dataclass
class CoffeeBreak:
    """A coffee and its schedule (``every_n_iter`` and/or ``every_n_epoch``; 0 means "not by this")."""

    coffee: Coffee
    every_n_iter: int = 0
    every_n_epoch: int = 0

    def __post_init__(self) -> None:
        for name in ("every_n_iter", "every_n_epoch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"coffee break {type(self.coffee).__name__}: {name} must be an int >= 0, "
                                 f"got {value!r}")
        if not self.every_n_iter and not self.every_n_epoch:
            raise ValueError(f"coffee break {type(self.coffee).__name__}: set every_n_iter or every_n_epoch "
                             "(both are 0, so it would never run)")
        if not isinstance(self.coffee, Coffee):
            raise TypeError(f"add_coffee_break: expected a Coffee, got {type(self.coffee).__name__}")

    def is_due(self, iteration: int, epoch: int | None, epoch_changed: bool) -> bool:
        if self.every_n_iter and iteration % self.every_n_iter == 0:
            return True
        return bool(self.every_n_epoch and epoch_changed and epoch is not None and epoch % self.every_n_epoch == 0)


class CoffeeLounge:
    """Statistics recorded during training, and the coffee breaks that record them.

    ``statistics[key][iteration] = value``, recorded at ``iteration`` (the training state's iteration as
    of the latest round of breaks; see the roll-back rule in :meth:`check_coffee_breaks`). With
    ``save_into`` set, the statistics are written to that HDF5 file (atomically) after every round of
    breaks at an iteration with ``iteration % every_n_iter == 0`` that changed something, and when
    training ends. If the file already exists when training starts, ``file_exists`` decides: ``"merge"``
    (load it and continue, the default), ``"overwrite"`` or ``"panic"`` (raise FileExistsError).
    """

    def __init__(self, save_into: str | os.PathLike = "", every_n_iter: int = 1, file_exists: str = "merge") -> None:
        self.statistics: dict[str, dict[int, float]] = {}
        self.coffee_breaks: list[CoffeeBreak] = []
        self.iteration = 0
        self.solver: Any = None
        self.last_epoch: int | None = None
        self.start_iteration = 0
        self.modified = False
        self._round_state: Any = None  # the solver state while a round of breaks runs, else None
        self._round_start_positions: dict[str, dict[str, Any]] = {}  # see validation_positions
        self.configure(save_into, every_n_iter, file_exists)

    def configure(self, save_into: str | os.PathLike = "", every_n_iter: int = 1, file_exists: str = "merge") -> None:
        if isinstance(every_n_iter, bool) or not isinstance(every_n_iter, int) or every_n_iter < 1:
            raise ValueError(f"coffee lounge: every_n_iter must be a positive int, got {every_n_iter!r}")
        if file_exists not in FILE_EXISTS_MODES:
            raise ValueError(f"coffee lounge: file_exists must be one of {FILE_EXISTS_MODES}, got {file_exists!r}")
        self.save_into = os.fspath(save_into)
        self.every_n_iter = every_n_iter
        self.file_exists = file_exists

    def add_coffee_break(self, coffee: Coffee, every_n_iter: int = 0, every_n_epoch: int = 0) -> None:
        self.coffee_breaks.append(CoffeeBreak(coffee, every_n_iter, every_n_epoch))

    # --- statistics ---------------------------------------------------------------------------------
    def update_statistics(self, key: str, value: float) -> None:
        """Record ``value`` under ``key`` at the current iteration.

        Raises RuntimeError when called by a break after it (or something it called) rolled training
        back during the current round: the value belongs to an iteration training is no longer at.
        """
        if self._round_state is not None and int(self._round_state.iteration) != self.iteration:
            raise RuntimeError(f"coffee lounge: cannot record {key!r} at iteration {self.iteration}: training was "
                               f"moved to iteration {int(self._round_state.iteration)} during this round of "
                               "coffee breaks (a roll-back); record statistics before rolling back")
        self.statistics.setdefault(str(key), {})[self.iteration] = float(value)
        self.modified = True

    def get_statistics(self, key: str) -> dict[int, float]:
        """``{iteration: value}`` recorded under ``key`` (empty if none)."""
        return self.statistics.get(key, {})

    def save(self, path: str | os.PathLike | None = None) -> None:
        """Write the statistics to ``path`` (default ``save_into``) atomically."""
        import numpy as np

        path = os.fspath(path or self.save_into)
        with atomic_h5_file(path) as f:
            f.attrs["format"] = STATISTICS_FORMAT
            for key in sorted(self.statistics):
                records = self.statistics[key]
                iterations = sorted(records)
                group = f.create_group(h5_name(key))
                group.attrs["key"] = key
                group.create_dataset("iterations", data=np.asarray(iterations, dtype=np.int64))
                group.create_dataset("values", data=np.asarray([records[i] for i in iterations], dtype=np.float64))
        self.modified = False

    @staticmethod
    def load_statistics(path: str | os.PathLike) -> dict[str, dict[int, float]]:
        """Read a statistics file written by :meth:`save`."""
        path = os.fspath(path)
        statistics: dict[str, dict[int, float]] = {}
        with open_h5(path, "statistics") as f:
            for name, group in f.items():
                if "iterations" not in group or "values" not in group:
                    raise SnapshotError(f"statistics file {path!r}: group {name!r} lacks 'iterations'/'values'")
                iterations, values = group["iterations"][()], group["values"][()]
                if iterations.shape != values.shape:
                    raise SnapshotError(f"statistics file {path!r}: {name!r} has {iterations.shape} iterations "
                                        f"but {values.shape} values")
                statistics[from_h5_name(name)] = {int(i): float(v) for i, v in zip(iterations, values)}
        return statistics

    # --- validation test nets: their data positions in snapshots -------------------------------------
    def _test_nets(self) -> list[Any]:
        """The distinct test nets of this lounge's :class:`ValidationPerformance` breaks (and subclasses)."""
        nets: list[Any] = []
        for cb in self.coffee_breaks:
            test_net = cb.coffee.test_net if isinstance(cb.coffee, ValidationPerformance) else None
            if test_net is not None and all(test_net is not n for n in nets):
                nets.append(test_net)
        return nets

    def validation_nets(self) -> dict[str, Any]:
        """The test nets of this lounge's :class:`ValidationPerformance` breaks, by net name.

        Snapshots key the nets' data positions by name, so two different test nets with one name are an
        error (one test net shared by several breaks is fine).
        """
        nets: dict[str, Any] = {}
        for test_net in self._test_nets():
            if test_net.name in nets:
                raise ValueError(f"coffee lounge: two ValidationPerformance breaks use different test nets named "
                                 f"{test_net.name!r}; snapshots save test-data positions by net name, so give the "
                                 "test nets distinct names")
            nets[test_net.name] = test_net
        return nets

    def validation_positions(self) -> dict[str, dict[str, Any]]:
        """``{test net name: {data layer name: position}}`` of every validation test net, as at the start
        of the latest round of breaks (before any validation of that round read data).

        That is what a snapshot saves: resuming runs the breaks due at the resume iteration again, so each
        test net must start that round where it started it in the uninterrupted run.
        """
        return {name: self._round_start_positions[name] if name in self._round_start_positions
                else capture_data_positions(test_net) for name, test_net in self.validation_nets().items()}

    def _restore_validation_positions(self, snapshot: str) -> None:
        """Put the validation test nets' data where the snapshot training resumed from says."""
        nets = self.validation_nets()
        saved = load_validation_positions(snapshot) if nets else {}
        for name, test_net in nets.items():
            if name in saved:
                restore_data_positions(test_net, saved[name], source=f"snapshot {snapshot!r}")
            else:
                warnings.warn(f"coffee lounge: snapshot {snapshot!r} has no data position for test net {name!r} (an "
                              "older snapshot, or saved without validation positions); its validation data "
                              "continues from where it is, so validation statistics may differ from an "
                              "uninterrupted run", stacklevel=3)

    # --- the solver's hooks -------------------------------------------------------------------------
    def setup(self, solver: Any, net: Any, state: Any, resumed_from: str | None = None) -> None:
        """Start of training: handle an existing statistics file, initialise every coffee and, when the
        solver resumed from the snapshot ``resumed_from``, restore the validation test nets' data
        positions saved in it."""
        self.solver = solver
        self.iteration = self.start_iteration = int(state.iteration)
        if self.save_into and os.path.exists(self.save_into):
            if self.file_exists == "panic":
                raise FileExistsError(f"coffee lounge: statistics file {self.save_into!r} already exists "
                                      "(file_exists='panic')")
            if self.file_exists == "merge":
                for key, records in self.load_statistics(self.save_into).items():
                    self.statistics[key] = {**records, **self.statistics.get(key, {})}
        self.last_epoch = data_epoch(net)
        if self.last_epoch is None and any(cb.every_n_epoch for cb in self.coffee_breaks):
            raise ValueError(f"coffee lounge: a break runs every_n_epoch but net {net.name!r} has no data layer "
                             "with an epoch counter")
        for cb in self.coffee_breaks:
            cb.coffee.init(self, net)
        self._round_start_positions = {}
        if resumed_from is not None:
            self._restore_validation_positions(resumed_from)

    def check_coffee_breaks(self, net: Any, state: Any) -> None:
        """Run every break due at ``state.iteration``, in the order added; then save the statistics if due.

        Roll-back rule: when a break changes ``state.iteration`` (``LRPolicy.DecayOnValidation`` restoring
        a snapshot), the round ends after that break. The breaks still due at the abandoned iteration are
        not run now (a warning names them): they run when training reaches that iteration again. The
        breaks due at the restored iteration are not run again either (they ran when training was there).
        The values recorded at iterations after the restored one are dropped (training runs them again).
        The lounge's ``iteration`` and epoch bookkeeping then follow the restored state, so later
        statistics are recorded at the iterations training is really at, and an every_n_epoch break runs
        again when the restored data position crosses the epoch boundary again. The statistics file is
        saved if the round's (abandoned) iteration is a multiple of ``every_n_iter``.
        """
        iteration = self.iteration = int(state.iteration)
        epoch = data_epoch(net)
        epoch_changed = epoch is not None and epoch != self.last_epoch
        due = [cb for cb in self.coffee_breaks if cb.is_due(iteration, epoch, epoch_changed)]
        self._round_state = state
        # a few ints per test net (and the shuffle order), like the training net's resume point
        self._round_start_positions = {n.name: capture_data_positions(n) for n in self._test_nets()} if due else {}
        try:
            for i, cb in enumerate(due):
                cb.coffee.enjoy(self, net, state)
                if int(state.iteration) != iteration:
                    self._report_roll_back(cb, due[i + 1:], iteration, int(state.iteration))
                    self._drop_statistics_after(int(state.iteration))
                    break
        finally:
            self._round_state = None
        self.iteration = int(state.iteration)
        self.last_epoch = data_epoch(net)
        if self.save_into and self.modified and iteration % self.every_n_iter == 0:
            self.save()

    def _drop_statistics_after(self, iteration: int) -> None:
        for key in list(self.statistics):
            records = self.statistics[key]
            kept = {i: v for i, v in records.items() if i <= iteration}
            if len(kept) != len(records):
                self.modified = True
                if kept:
                    self.statistics[key] = kept
                else:
                    del self.statistics[key]

    @staticmethod
    def _report_roll_back(cb: CoffeeBreak, skipped: list[CoffeeBreak], old: int, new: int) -> None:
        message = f"coffee lounge: {type(cb.coffee).__name__} moved training from iteration {old} to {new}"
        if skipped:
            names = ", ".join(type(s.coffee).__name__ for s in skipped)
            message += (f"; the breaks still due at iteration {old} ({names}) run when training reaches it "
                        "again")
        logger.warning(message)

    def shutdown(self, net: Any) -> None:
        """End of training: destroy every coffee and save the statistics."""
        for cb in self.coffee_breaks:
            cb.coffee.destroy(self, net)
        if self.save_into and (self.modified or not os.path.exists(self.save_into)):
            self.save()


# --- built-in coffee breaks -------------------------------------------------------------------------------


def _format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class TrainingSummary(Coffee):
    """Print one line of training progress, like Mocha: ``TRAIN iter=000100 obj_val=0.12345678 ...``.

    ``fields`` (default ``"iter", "obj_val"``) may be ``"iter"``, ``"obj_val"``, ``"learning_rate"``,
    ``"momentum"`` or the name of a loss layer (its latest loss). Every field but ``"iter"`` is also
    recorded as a statistic under its own name. The line ends with the throughput since the previous
    summary and, when ``max_iter`` is finite, an estimate of the time left.
    """

    STATE_FIELDS = ("obj_val", "learning_rate", "momentum")

    def __init__(self, *fields: str) -> None:
        self.fields = tuple(fields) or ("iter", "obj_val")
        for name in self.fields:
            if not isinstance(name, str) or not name:
                raise ValueError(f"TrainingSummary: fields must be non-empty strings, got {name!r}")
        self._last: tuple[int, float] | None = None

    def init(self, lounge: CoffeeLounge, net: Any) -> None:
        loss_layers = [layer.name for layer in net.layers if layer.has_loss]
        for name in self.fields:
            if name not in ("iter", *self.STATE_FIELDS) and name not in loss_layers:
                raise ValueError(f"TrainingSummary: unknown field {name!r}; use 'iter', "
                                 f"{', '.join(repr(f) for f in self.STATE_FIELDS)} or a loss layer of net "
                                 f"{net.name!r}: {loss_layers}")
        self._last = None

    def value(self, name: str, state: Any) -> float:
        if name in self.STATE_FIELDS:
            return float(getattr(state, name))
        return float(state.losses[name])

    def enjoy(self, lounge: CoffeeLounge, net: Any, state: Any) -> None:
        iteration = int(state.iteration)
        parts = ["TRAIN"]
        for name in self.fields:
            if name == "iter":
                parts.append(f"iter={iteration:06d}")
                continue
            value = self.value(name, state)
            lounge.update_statistics(name, value)
            parts.append(f"{name}={value:.8f}")
        now = time.perf_counter()
        if self._last is not None and iteration > self._last[0] and now > self._last[1]:
            rate = (iteration - self._last[0]) / (now - self._last[1])
            max_iter = getattr(getattr(lounge.solver, "params", None), "max_iter", math.inf)
            eta = f", ETA {_format_duration((max_iter - iteration) / rate)}" if math.isfinite(max_iter) else ""
            parts.append(f"({rate:.2f} it/s{eta})")
        self._last = (iteration, now)
        print(" ".join(parts), flush=True)


class Snapshot(Coffee):
    """Save a snapshot ``<directory>/snapshot-%06d.h5`` (parameters and full solver state) each time.

    The snapshot also holds the data positions of the lounge's validation test nets as at the start of
    this round of breaks (:meth:`CoffeeLounge.validation_positions`), so a resume reproduces the later
    validations exactly whether the Snapshot break was added before or after the validation.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = os.fspath(directory)
        if not self.directory:
            raise ValueError("Snapshot: directory must be a non-empty path")

    def init(self, lounge: CoffeeLounge, net: Any) -> None:
        os.makedirs(self.directory, exist_ok=True)
        lounge.validation_nets()  # fails now, not at the first snapshot, if two test nets share a name

    def enjoy(self, lounge: CoffeeLounge, net: Any, state: Any) -> None:
        path = snapshot_path(self.directory, state.iteration)
        if os.path.exists(path) and state.iteration != lounge.start_iteration:
            logger.warning("Snapshot: overwriting %s", path)
        save_snapshot(path, net, state, net.backend, validation_positions=lounge.validation_positions())


class ValidationPerformance(Coffee):
    """Evaluate ``test_net`` for one epoch and record its statistics (e.g. ``test-accuracy-accuracy``).

    Each time: reset the test net's statistics, run ``forward_epoch``, record and print every statistic,
    then call each listener registered with :meth:`register` as ``fn(lounge, training_net, state)``. The
    test net should share parameters with the training net (same layer names or ``param_key``); never
    pass the training net itself (it would advance the training data).

    ``forward_epoch`` reads whole batches, so when the batch size does not divide the test set the test
    data ends each validation part-way into its next pass, and what a validation sees depends on the
    earlier ones; snapshots save that position (see :class:`Snapshot`). If a listener rolls training back
    (``LRPolicy.DecayOnValidation``), the listeners after it are not notified: the result they would hear
    about belongs to an iteration training is no longer at (a warning says so).
    """

    def __init__(self, test_net: Any) -> None:
        self.test_net = test_net
        self.listeners: list[Callable[[CoffeeLounge, Any, Any], None]] = []

    def register(self, listener: Callable[[CoffeeLounge, Any, Any], None]) -> None:
        self.listeners.append(listener)

    def init(self, lounge: CoffeeLounge, net: Any) -> None:
        if self.test_net is net:
            raise ValueError(f"ValidationPerformance: the test net must not be the training net {net.name!r}")

    def enjoy(self, lounge: CoffeeLounge, net: Any, state: Any) -> None:
        iteration = int(state.iteration)
        self.test_net.reset_statistics()
        self.test_net.forward_epoch()
        stats = self.test_net.statistics()
        for key, value in stats.items():
            lounge.update_statistics(key, value)
        shown = " ".join(f"{key}={value:.8f}" for key, value in stats.items())
        print(f"VALIDATION iter={iteration:06d} {shown}".rstrip(), flush=True)
        self.notify_listeners(lounge, net, state)

    def notify_listeners(self, lounge: CoffeeLounge, net: Any, state: Any) -> None:
        """Call the listeners in order, stopping after one that rolls training back."""
        iteration = int(state.iteration)
        for i, listener in enumerate(self.listeners):
            listener(lounge, net, state)
            if int(state.iteration) != iteration and i + 1 < len(self.listeners):
                logger.warning("%s: a listener moved training from iteration %d to %d; the listeners after it "
                               "(%d) are not notified of the validation at iteration %d", type(self).__name__,
                               iteration, int(state.iteration), len(self.listeners) - i - 1, iteration)
                break
