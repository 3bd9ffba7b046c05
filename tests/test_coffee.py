"""Coffee lounge and breaks: scheduling (every_n_iter including iteration 0, every_n_epoch), custom
breaks, TrainingSummary output and statistics, the statistics file (save, merge, overwrite, panic),
ValidationPerformance with listeners, Snapshot files and LRPolicy.DecayOnValidation's roll-back (which
ends the round of breaks, drops the abandoned statistics and records later ones at the restored iteration)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np
import pytest
from test_solvers import (
    ArraySourceLayer,
    MeanSquareErrorStatLayer,
    tiny_data,
    tiny_layers,
    tiny_net,
)

from mocha_triton.backends import NumpyBackend
from mocha_triton.blob import Blob
from mocha_triton.coffee import Coffee, CoffeeBreak, CoffeeLounge, Snapshot, TrainingSummary, ValidationPerformance
from mocha_triton.layers.base import Layer, LayerState
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.net import Net
from mocha_triton.policies import LRPolicy, MomPolicy
from mocha_triton.snapshots import load_snapshot
from mocha_triton.solvers import SGD, Solver, SolverParameters


class CallLog(Coffee):
    """Records every call with the iteration and the training data's epoch."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def init(self, lounge, net):
        self.calls.append(("init",))

    def enjoy(self, lounge, net, state):
        self.calls.append(("enjoy", state.iteration, getattr(net.get_state("data"), "epoch", None)))
        lounge.update_statistics("custom", state.iteration * 10.0)

    def destroy(self, lounge, net):
        self.calls.append(("destroy",))

    def iterations(self):
        return [c[1] for c in self.calls if c[0] == "enjoy"]


def solver_for(max_iter, **kwargs):
    return Solver(SGD(), SolverParameters(max_iter=max_iter, lr_policy=LRPolicy.Fixed(0.05), **kwargs))


def test_every_n_iter_breaks_run_at_multiples_including_iteration_0():
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64"), x, y)
    solver = solver_for(7)
    every3, every1 = CallLog(), CallLog()
    solver.add_coffee_break(every3, every_n_iter=3)
    solver.add_coffee_break(every1, every_n_iter=1)
    solver.solve(net)
    assert every3.calls[0] == ("init",) and every3.calls[-1] == ("destroy",)
    assert every3.iterations() == [0, 3, 6]
    assert every1.iterations() == list(range(8))
    assert solver.lounge.get_statistics("custom") == {i: i * 10.0 for i in range(8)}


def test_every_n_epoch_breaks_run_when_the_training_data_starts_a_new_epoch():
    # 8 samples, batch 4: forward k reads batch k; the epoch counter becomes e during forward 2e - 1,
    # i.e. at the end of iteration 2e - 1 (the first forward is iteration 0's).
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64"), x, y)
    solver = solver_for(8)
    every_epoch, every_2_epochs, both = CallLog(), CallLog(), CallLog()
    solver.add_coffee_break(every_epoch, every_n_epoch=1)
    solver.add_coffee_break(every_2_epochs, every_n_epoch=2)
    solver.add_coffee_break(both, every_n_iter=4, every_n_epoch=3)
    solver.solve(net)
    assert [c[1:] for c in every_epoch.calls if c[0] == "enjoy"] == [(1, 1), (3, 2), (5, 3), (7, 4)]
    assert every_2_epochs.iterations() == [3, 7]
    assert both.iterations() == [0, 4, 5, 8]


def test_coffee_break_schedule_is_validated():
    with pytest.raises(ValueError, match="never run"):
        CoffeeBreak(CallLog())
    with pytest.raises(ValueError, match="every_n_iter"):
        CoffeeBreak(CallLog(), every_n_iter=-1)
    with pytest.raises(TypeError, match="Coffee"):
        CoffeeBreak(print, every_n_iter=1)
    with pytest.raises(ValueError, match="file_exists"):
        CoffeeLounge(file_exists="ignore")
    with pytest.raises(NotImplementedError):
        Coffee().enjoy(None, None, None)


def test_epoch_breaks_need_a_data_layer_with_an_epoch():
    @dataclass(frozen=True, kw_only=True)
    class WholeArraySource(Layer):  # serves the same arrays at every forward, no epoch counter
        arrays: Any = field(compare=False, repr=False)
        is_source = True

        def setup(self, backend, inputs, diffs, phase="train"):
            state = WholeArrayState(self, backend, [Blob.from_numpy(backend, a) for a in self.arrays])
            return state

    class WholeArrayState(LayerState):
        def forward(self, inputs):
            pass

    x, y = tiny_data()
    layers = tiny_layers(x, y)
    layers[0] = WholeArraySource(name="data", tops=("x", "y"), arrays=(x, y))
    net = Net("no-epoch", NumpyBackend("float64"), layers)
    solver = solver_for(1)
    solver.add_coffee_break(CallLog(), every_n_iter=1)
    assert solver.solve(net).iteration == 1  # fine without epoch breaks
    solver = solver_for(1)
    solver.add_coffee_break(CallLog(), every_n_epoch=1)
    with pytest.raises(ValueError, match="epoch counter"):
        solver.solve(net)


def test_training_summary_prints_mocha_lines_and_records_statistics(capsys):
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64"), x, y)
    solver = Solver(SGD(), SolverParameters(max_iter=4, lr_policy=LRPolicy.Step(0.1, 0.5, 2),
                                            mom_policy=MomPolicy.Fixed(0.9)))
    solver.add_coffee_break(TrainingSummary(), every_n_iter=2)
    solver.add_coffee_break(TrainingSummary("iter", "obj_val", "learning_rate", "momentum", "loss"), every_n_iter=4)
    state = solver.solve(net)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5
    assert re.fullmatch(r"TRAIN iter=000000 obj_val=\d+\.\d{8}", lines[0])
    assert re.fullmatch(r"TRAIN iter=000002 obj_val=\d+\.\d{8} \(\d+\.\d\d it/s, ETA \d+:\d\d:\d\d\)", lines[2])
    last = lines[-1]
    assert last.startswith(f"TRAIN iter=000004 obj_val={state.obj_val:.8f} learning_rate=0.02500000 "
                           f"momentum=0.90000000 loss={state.obj_val:.8f} (")
    stats = solver.lounge.statistics
    assert set(stats) == {"obj_val", "learning_rate", "momentum", "loss"}
    assert sorted(stats["obj_val"]) == [0, 2, 4] and stats["obj_val"][4] == state.obj_val
    assert stats["learning_rate"] == {0: 0.1, 4: 0.025}
    assert stats["loss"] == {0: stats["obj_val"][0], 4: state.obj_val}


def test_training_summary_rejects_unknown_fields():
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64"), x, y)
    solver = solver_for(1)
    solver.add_coffee_break(TrainingSummary("iter", "accuracy"), every_n_iter=1)
    with pytest.raises(ValueError, match="'accuracy'.*'loss'"):
        solver.solve(net)


def read_statistics_file(path):
    with h5py.File(path, "r") as f:
        return {key: dict(zip(group["iterations"][()].tolist(), group["values"][()].tolist()))
                for key, group in f.items()}


def test_statistics_file_is_plain_hdf5_and_saved_every_n_iter(tmp_path):
    path = tmp_path / "out" / "stats.h5"
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64"), x, y)
    solver = solver_for(5)
    solver.setup_coffee_lounge(save_into=str(path), every_n_iter=2)
    solver.add_coffee_break(TrainingSummary("iter", "obj_val"), every_n_iter=1)
    state = solver.init(net)
    assert read_statistics_file(path).keys() == {"obj_val"}  # iteration 0 is a multiple of 2
    solver.step(net, state)
    assert sorted(read_statistics_file(path)["obj_val"]) == [0]  # not saved at iteration 1
    solver.step(net, state)
    assert sorted(read_statistics_file(path)["obj_val"]) == [0, 1, 2]
    solver.step(net, state)
    solver.finalize(net, state)  # saved at the end whatever the iteration
    stats = read_statistics_file(path)
    assert stats == {"obj_val": solver.lounge.get_statistics("obj_val")} and sorted(stats["obj_val"]) == [0, 1, 2, 3]
    assert CoffeeLounge.load_statistics(path) == solver.lounge.statistics
    assert [p for p in os.listdir(path.parent)] == ["stats.h5"]  # no temporary files left


def write_statistics(path, stats):
    lounge = CoffeeLounge()
    lounge.statistics = stats
    lounge.save(path)


@pytest.mark.parametrize("mode", ["merge", "overwrite", "panic"])
def test_existing_statistics_file(tmp_path, mode):
    path = tmp_path / "stats.h5"
    write_statistics(path, {"old/key": {0: 1.5, 7: 2.5}, "obj_val": {100: 9.0}})
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64"), x, y)
    solver = solver_for(2)
    solver.setup_coffee_lounge(save_into=str(path), file_exists=mode)
    solver.add_coffee_break(TrainingSummary(), every_n_iter=1)
    if mode == "panic":
        with pytest.raises(FileExistsError, match=re.escape(str(path))):
            solver.solve(net)
        assert read_statistics_file(path) == {"old%2Fkey": {0: 1.5, 7: 2.5}, "obj_val": {100: 9.0}}
        return
    solver.solve(net)
    stats = CoffeeLounge.load_statistics(path)
    if mode == "merge":
        assert stats["old/key"] == {0: 1.5, 7: 2.5}
        assert sorted(stats["obj_val"]) == [0, 1, 2, 100]
    else:
        assert set(stats) == {"obj_val"} and sorted(stats["obj_val"]) == [0, 1, 2]


def test_corrupt_statistics_file_is_named(tmp_path):
    path = tmp_path / "stats.h5"
    path.write_bytes(b"not hdf5 at all")
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64"), x, y)
    solver = solver_for(1)
    solver.setup_coffee_lounge(save_into=str(path))
    with pytest.raises(ValueError, match=re.escape(str(path))):
        solver.solve(net)


def make_test_net(backend, x, y):
    """A test net sharing ip1 with the training net (same layer name), with a statistics layer."""
    return Net("test", backend, [
        ArraySourceLayer(name="test-data", tops=("x", "y"), arrays=(x, y), batch_size=3),
        InnerProductLayer(name="ip1", output_dim=2, bottoms=("x",), tops=("pred",)),
        MeanSquareErrorStatLayer(name="test", bottoms=("pred", "y")),
    ], phase="test")


def test_validation_performance_records_statistics_and_notifies_listeners(capsys):
    x, y = tiny_data()
    xt, yt = tiny_data(n=6, seed=1)
    backend = NumpyBackend("float64", seed=2)
    net = tiny_net(backend, x, y)
    test_net = make_test_net(backend, xt, yt)
    validation = ValidationPerformance(test_net)
    heard = []
    validation.register(lambda lounge, n, state: heard.append((n is net, state.iteration,
                                                                dict(lounge.get_statistics("test-mse")))))
    expected = {}

    class Expect(Coffee):  # computes the expected statistic directly, before the validation break
        def enjoy(self, lounge, n, state):
            w, b = (p.blob.to_numpy() for p in n.params["ip1"])
            expected[state.iteration] = float((((xt @ w.T + b) - yt) ** 2).mean())

    solver = solver_for(4)
    solver.add_coffee_break(Expect(), every_n_iter=2)
    solver.add_coffee_break(validation, every_n_iter=2)
    solver.solve(net)
    recorded = solver.lounge.get_statistics("test-mse")
    assert sorted(recorded) == [0, 2, 4]
    for it in (0, 2, 4):
        assert recorded[it] == pytest.approx(expected[it], rel=1e-12)
    assert [h[:2] for h in heard] == [(True, 0), (True, 2), (True, 4)]
    assert heard[-1][2] == recorded
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"VALIDATION iter=000000 test-mse={recorded[0]:.8f}"
    assert test_net.get_state("test-data").epoch == 3  # exactly one epoch per validation


def test_validation_refuses_the_training_net():
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64"), x, y)
    solver = solver_for(1)
    solver.add_coffee_break(ValidationPerformance(net), every_n_iter=1)
    with pytest.raises(ValueError, match="training net"):
        solver.solve(net)


def test_snapshot_break_writes_numbered_files(tmp_path):
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64"), x, y)
    solver = solver_for(5)
    solver.add_coffee_break(Snapshot(tmp_path / "snaps"), every_n_iter=2)
    state = solver.solve(net)
    assert sorted(os.listdir(tmp_path / "snaps")) == ["snapshot-000000.h5", "snapshot-000002.h5",
                                                     "snapshot-000004.h5"]
    with h5py.File(tmp_path / "snaps" / "snapshot-000004.h5", "r") as f:
        assert f["solver"].attrs["iteration"] == 4
    assert state.iteration == 5


class ScriptedValidation(ValidationPerformance):
    """Records the next scripted 'accuracy' instead of evaluating a net, then notifies the listeners."""

    def __init__(self, script):
        super().__init__(test_net=None)
        self.script = list(script)

    def enjoy(self, lounge, net, state):
        lounge.update_statistics("acc", self.script.pop(0))
        for listener in self.listeners:
            listener(lounge, net, state)


def test_decay_on_validation_decays_and_rolls_back_to_the_latest_snapshot(tmp_path):
    snapshots = tmp_path / "snaps"
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64", seed=1), x, y)
    policy = LRPolicy.DecayOnValidation(0.1, "acc", gamma=0.5)
    params = SolverParameters(max_iter=6, lr_policy=policy, mom_policy=MomPolicy.Fixed(0.5),
                              load_from=str(snapshots))
    solver = Solver(SGD(), params)
    # accuracy improves at 2, drops at 4 (-> decay, roll back to snapshot 2), then improves at 4 and 6
    validation = ScriptedValidation([0.5, 0.6, 0.55, 0.65, 0.7])
    policy.setup(validation, solver)
    log = CallLog()
    solver.add_coffee_break(validation, every_n_iter=2)  # before the snapshot, so it rolls back to 2
    solver.add_coffee_break(Snapshot(snapshots), every_n_iter=2)
    solver.add_coffee_break(log, every_n_iter=1)
    state = solver.init(net)
    for _ in range(4):
        solver.step(net, state)
    # iteration 4 was worse than 2: the rate halves and training is back at iteration 2
    assert policy.curr_lr == 0.05 and policy.n_decays == 1
    assert state.iteration == 2 and state.learning_rate == 0.05
    saved = tiny_net(NumpyBackend("float64", seed=99), x, y)
    load_snapshot(snapshots / "snapshot-000002.h5", saved)
    for p, q in zip(net.params["ip1"], saved.params["ip1"]):
        np.testing.assert_array_equal(p.blob.to_numpy(), q.blob.to_numpy())
    while state.iteration < params.max_iter:
        solver.step(net, state)
    solver.finalize(net, state)
    # the roll-back ended the round at iteration 4: the later breaks ran when training got back to 4
    assert log.iterations() == [0, 1, 2, 3, 3, 4, 5, 6]
    assert solver.lounge.get_statistics("custom") == {i: i * 10.0 for i in range(7)}
    assert policy.n_decays == 1 and state.learning_rate == 0.05
    assert solver.lounge.get_statistics("acc") == {0: 0.5, 2: 0.6, 4: 0.65, 6: 0.7}


class Probe(Coffee):
    """Records (iteration, obj_val, learning_rate) of the training state each time it runs."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float, float]] = []

    def enjoy(self, lounge, net, state):
        self.seen.append((state.iteration, state.obj_val, state.learning_rate))


def test_a_roll_back_ends_the_round_and_later_statistics_use_the_restored_iteration(tmp_path, capsys, caplog):
    snapshots = tmp_path / "snaps"
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64", seed=1), x, y)
    policy = LRPolicy.DecayOnValidation(0.1, "acc", gamma=0.5)
    params = SolverParameters(max_iter=6, lr_policy=policy, mom_policy=MomPolicy.Fixed(0.5),
                              load_from=str(snapshots))
    solver = Solver(SGD(), params)
    # worse at 4 than at 2: decay and roll back to the latest snapshot, 0 (the one at 4 is not written yet);
    # then 2 and 4 again (improving), and 6
    validation = ScriptedValidation([0.5, 0.6, 0.55, 0.6, 0.65, 0.7])
    policy.setup(validation, solver)
    probe, every_epoch = Probe(), CallLog()
    solver.add_coffee_break(probe, every_n_iter=1)
    solver.add_coffee_break(validation, every_n_iter=2)
    solver.add_coffee_break(Snapshot(snapshots), every_n_iter=4)
    solver.add_coffee_break(TrainingSummary("iter", "obj_val", "learning_rate"), every_n_iter=1)
    solver.add_coffee_break(every_epoch, every_n_epoch=1)  # epochs start at iterations 1, 3, 5 (8 samples, batch 4)
    state = solver.init(net)
    for _ in range(4):
        solver.step(net, state)
    # the validation at 4 rolled training back to 0; Snapshot and TrainingSummary were still due at 4
    stats = solver.lounge.statistics
    assert state.iteration == 0 and solver.lounge.iteration == 0
    assert stats["obj_val"] == {0: state.obj_val}  # the abandoned 1..4 are gone, nothing recorded at 4 for 0
    assert stats["learning_rate"] == {0: 0.1} and stats["acc"] == {0: 0.5}
    assert os.listdir(snapshots) == ["snapshot-000000.h5"]
    with h5py.File(snapshots / "snapshot-000000.h5", "r") as f:  # not re-written for the rolled-back state
        assert f["solver"].attrs["learning_rate"] == 0.1
    assert [r.getMessage() for r in caplog.records] == [
        "coffee lounge: ScriptedValidation moved training from iteration 4 to 0; the breaks still due at "
        "iteration 4 (Snapshot, TrainingSummary) run when training reaches it again"]
    while state.iteration < params.max_iter:
        solver.step(net, state)
    solver.finalize(net, state)
    # training ran 1..4 again (at the decayed rate); each break ran once per pass
    assert [s[0] for s in probe.seen] == [0, 1, 2, 3, 4, 1, 2, 3, 4, 5, 6]
    lines = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert lines == [f"iter={i:06d}" for i in (0, 1, 2, 3, 1, 2, 3, 4, 5, 6)]
    assert every_epoch.iterations() == [1, 3, 1, 3, 5]
    final = {it: (obj, lr) for it, obj, lr in probe.seen}  # the latest pass through each iteration
    assert stats["obj_val"] == {it: obj for it, (obj, _) in final.items()}
    assert stats["learning_rate"] == {it: lr for it, (_, lr) in final.items()}
    assert [stats["learning_rate"][i] for i in range(7)] == [0.1] + [0.05] * 6
    # 0.6 at 2 is compared with 0.5 at 0, not with the abandoned 0.55 at 4: one decay only
    assert stats["acc"] == {0: 0.5, 2: 0.6, 4: 0.65, 6: 0.7} and policy.n_decays == 1
    assert sorted(os.listdir(snapshots)) == ["snapshot-000000.h5", "snapshot-000004.h5"]


def test_listeners_after_a_roll_back_are_not_notified_and_cannot_record(tmp_path, caplog):
    x, y = tiny_data()
    xt, yt = tiny_data(n=6, seed=1)
    backend = NumpyBackend("float64", seed=2)
    net = tiny_net(backend, x, y)
    solver = solver_for(4)
    snapshot = str(tmp_path / "snapshot-000000.h5")
    validation = ValidationPerformance(make_test_net(backend, xt, yt))
    rolled_back, heard = [], []

    def roll_back_once(lounge, n, state):
        if state.iteration == 2 and not rolled_back:
            rolled_back.append(state.iteration)
            solver.restore_snapshot(n, state, snapshot)

    validation.register(roll_back_once)
    validation.register(lambda lounge, n, state: heard.append(state.iteration))
    solver.add_coffee_break(validation, every_n_iter=2)
    solver.add_coffee_break(Snapshot(tmp_path), every_n_iter=2)
    solver.solve(net)
    assert rolled_back == [2] and heard == [0, 2, 4]  # not told about the validation at 2 that rolled back
    assert "the listeners after it (1) are not notified of the validation at iteration 2" in caplog.text

    class RollBackThenRecord(Coffee):
        def enjoy(self, lounge, n, state):
            if state.iteration == 1:
                solver.restore_snapshot(n, state, snapshot)
                lounge.update_statistics("late", 1.0)

    solver = solver_for(2)
    solver.add_coffee_break(RollBackThenRecord(), every_n_iter=1)
    with pytest.raises(RuntimeError, match=r"cannot record 'late' at iteration 1: training was moved to "
                                           r"iteration 0 .*roll-back"):
        solver.solve(tiny_net(NumpyBackend("float64"), x, y))


def test_snapshots_need_distinct_test_net_names(tmp_path):
    x, y = tiny_data()
    xt, yt = tiny_data(n=6, seed=1)
    backend = NumpyBackend("float64")
    test_net = make_test_net(backend, xt, yt)
    solver = solver_for(1)
    solver.add_coffee_break(ValidationPerformance(test_net), every_n_iter=1)
    solver.add_coffee_break(ValidationPerformance(test_net), every_n_epoch=1)  # one net twice is fine
    solver.add_coffee_break(Snapshot(tmp_path), every_n_iter=100)
    assert list(solver.lounge.validation_nets()) == ["test"]
    solver.add_coffee_break(ValidationPerformance(make_test_net(backend, xt, yt)), every_n_iter=1)
    with pytest.raises(ValueError, match="different test nets named 'test'"):
        solver.solve(tiny_net(backend, x, y))
