"""Snapshots and model files: layout (plain h5py), round trips, bitwise resume in a new Python process,
exact validation statistics after a resume (the test nets' data positions), crash safety of the atomic
write, load_from semantics, corrupt/incompatible files, Mocha's flat format."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import h5py
import numpy as np
import pytest
from test_solvers import (
    ArraySourceLayer,
    ArraySourceState,
    MeanSquareErrorStatLayer,
    TinySquareLossLayer,
    tiny_data,
    tiny_layers,
    tiny_net,
)

from mocha_triton.backends import NumpyBackend
from mocha_triton.coffee import CoffeeLounge, Snapshot, TrainingSummary, ValidationPerformance
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.net import Net
from mocha_triton.neurons import ReLU
from mocha_triton.policies import LRPolicy, MomPolicy
from mocha_triton.snapshots import (
    SnapshotError,
    export_flat_weights,
    latest_snapshot,
    load_flat_weights,
    load_snapshot,
    load_validation_positions,
    save_snapshot,
)
from mocha_triton.solvers import SGD, Nesterov, Solver, SolverParameters, SolverState

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def params_of(net: Net) -> dict[str, list[np.ndarray]]:
    return {name: [p.blob.to_numpy() for p in params] for name, params in net.params.items()}


def assert_params_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        for x, y in zip(a[name], b[name]):
            np.testing.assert_array_equal(x, y, err_msg=name)


def trained(backend_seed=0, max_iter=3, **net_kwargs):
    """A tiny net trained a few iterations (with momentum), and its solver state."""
    x, y = tiny_data()
    net = tiny_net(NumpyBackend("float64", seed=backend_seed), x, y, **net_kwargs)
    solver = Solver(SGD(), SolverParameters(max_iter=max_iter, lr_policy=LRPolicy.Fixed(0.1),
                                            mom_policy=MomPolicy.Fixed(0.9)))
    state = solver.solve(net)
    return net, state


# --- layout and round trip ----------------------------------------------------------------------------


def test_snapshot_layout_is_plain_hdf5(tmp_path):
    net, state = trained(shuffle=True, noise=0.1)
    path = save_snapshot(tmp_path / "snapshot-000003.h5", net, state)
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "mocha-triton-snapshot"
        assert sorted(f["params/ip1"]) == ["0_weight", "1_bias"]
        np.testing.assert_array_equal(f["params/ip1/0_weight"][()], net.params["ip1"][0].blob.to_numpy())
        solver = f["solver"]
        assert solver.attrs["iteration"] == 3 and solver.attrs["momentum"] == 0.9
        assert solver.attrs["learning_rate"] == 0.1 and solver.attrs["obj_val"] == state.obj_val
        np.testing.assert_array_equal(solver["momentum_history/ip1/0"][()],
                                      state.momentum_history["ip1/0"].to_numpy())
        assert set(f["rng"].attrs) == {"bit_generator", "random_seed", "random_offset"}
        assert "order" in f["data/data"]


def test_save_and_load_restore_parameters_and_solver_state(tmp_path):
    net, state = trained(shuffle=True, noise=0.1)
    path = save_snapshot(tmp_path / "s.h5", net, state)
    x, y = tiny_data()
    other = tiny_net(NumpyBackend("float64", seed=42), x, y, shuffle=True, noise=0.1)
    fresh = SolverState.for_net(other)
    assert load_snapshot(path, other, fresh) == 3
    assert_params_equal(params_of(other), params_of(net))
    assert fresh.scalars() == state.scalars() and fresh.losses == state.losses
    for key, blob in state.momentum_history.items():
        np.testing.assert_array_equal(fresh.momentum_history[key].to_numpy(), blob.to_numpy())
    # the data position and RNG are those from just before the latest forward pass
    point = state.resume_point
    src = other.get_state("data")
    assert (src.epoch, src.pos) == (point["data"]["data"]["epoch"], point["data"]["data"]["pos"])
    np.testing.assert_array_equal(src.order, point["data"]["data"]["order"])
    assert other.backend.rng.bit_generator.state == point["rng"]["bit_generator"]
    assert other.backend.random_offset == point["rng"]["random_offset"]
    # without a solver state only the parameters are loaded
    third = tiny_net(NumpyBackend("float64", seed=43), x, y, shuffle=True, noise=0.1)
    assert load_snapshot(path, third) == 3
    assert_params_equal(params_of(third), params_of(net))
    assert third.get_state("data").pos == 0


class RichSourceState(ArraySourceState):
    """A source whose position state uses every supported value type."""

    def position_state(self) -> dict[str, Any]:
        return {"epoch": np.int64(self.epoch), "ratio": 0.25, "name": "a/b%c", "none": None, "flag": True,
                "ints": [1, 2, 3], "pair": (4, 5), "mixed": ["x", 1], "array": np.arange(6.0).reshape(2, 3),
                "nested": {"seed": 2 ** 70, "state": {"pos": self.pos}}, "empty": np.zeros(0, np.int32)}

    def restore_position(self, saved: dict[str, Any]) -> None:
        self.restored = saved


class RichSourceLayer(ArraySourceLayer):
    def setup(self, backend, inputs, diffs, phase="train"):
        base = super().setup(backend, inputs, diffs, phase)
        return RichSourceState(self, backend, base.blobs)


def test_data_position_values_round_trip_with_their_types(tmp_path):
    x, y = tiny_data()
    layers = tiny_layers(x, y)
    layers[0] = RichSourceLayer(name="my/data", tops=("x", "y"), arrays=(x, y), batch_size=4)
    net = Net("rich", NumpyBackend("float64"), layers)
    state = SolverState.for_net(net)
    path = save_snapshot(tmp_path / "s.h5", net, state)
    load_snapshot(path, net, state)
    restored = net.get_state("my/data").restored
    expected = RichSourceState.position_state(net.get_state("my/data"))
    assert restored.keys() == expected.keys()
    for key in ("epoch", "ratio", "name", "none", "flag", "ints", "pair", "mixed", "nested"):
        assert restored[key] == expected[key] and type(restored[key]) is type(expected[key]) or key == "epoch", key
    assert type(restored["epoch"]) is int and restored["epoch"] == 0
    np.testing.assert_array_equal(restored["array"], expected["array"])
    assert restored["empty"].dtype == np.int32 and restored["empty"].shape == (0,)


# --- bitwise resume in a new process ------------------------------------------------------------------

try:  # the real layers, when the checkout has them
    from mocha_triton.layers.accuracy import AccuracyLayer
    from mocha_triton.layers.data import MemoryDataLayer
    from mocha_triton.layers.loss import SoftmaxLossLayer

    VARIANTS = ["tiny", "real"]
except ImportError:  # pragma: no cover
    VARIANTS = ["tiny"]


def build_nets(variant: str) -> tuple[Net, Net | None]:
    """The training net (and a test net sharing its weights) of one resume variant."""
    if variant == "tiny":  # in-test layers: shuffling from backend.rng, noise from the device stream
        x, y = tiny_data(n=10)
        backend = NumpyBackend("float64", seed=5)
        return tiny_net(backend, x, y, batch_size=4, shuffle=True, noise=0.05), None
    rng = np.random.default_rng(0)
    x = rng.normal(size=(14, 5)).astype(np.float32)
    label = rng.integers(0, 3, size=(14, 1)).astype(np.float32)
    backend = NumpyBackend("float32", seed=6)
    hidden = [InnerProductLayer(name="ip1", output_dim=6, neuron=ReLU(), bottoms=("data",), tops=("h",)),
              InnerProductLayer(name="ip2", output_dim=3, bottoms=("h",), tops=("out",))]
    train = Net("train", backend, [MemoryDataLayer(name="data", data=(x, label), batch_size=4, shuffle=True),
                                   *hidden, SoftmaxLossLayer(name="loss", bottoms=("out", "label"))])
    test = Net("test", backend, [MemoryDataLayer(name="test-data", data=(x[:8], label[:8]), batch_size=4),
                                 *hidden, AccuracyLayer(name="test-accuracy", bottoms=("out", "label"))],
               phase="test")
    return train, test


def train_run(workdir: str, max_iter: int, variant: str, method: str = "sgd") -> None:
    """Train (resuming from ``workdir/snapshots`` if there is a snapshot) and export the final weights."""
    net, test_net = build_nets(variant)
    snapshots = os.path.join(workdir, "snapshots")
    params = SolverParameters(max_iter=max_iter, regu_coef=0.001, lr_policy=LRPolicy.Step(0.1, 0.7, 3),
                              mom_policy=MomPolicy.Linear(0.5, 0.1, 2, 0.9), load_from=snapshots)
    solver = Solver(SGD() if method == "sgd" else Nesterov(), params)
    solver.setup_coffee_lounge(save_into=os.path.join(workdir, "statistics.h5"), every_n_iter=2)
    solver.add_coffee_break(TrainingSummary("iter", "obj_val", "learning_rate", "momentum", "loss"), every_n_iter=1)
    if test_net is not None:
        solver.add_coffee_break(ValidationPerformance(test_net), every_n_iter=2)
    solver.add_coffee_break(Snapshot(snapshots), every_n_iter=4)
    solver.solve(net)
    export_flat_weights(net, os.path.join(workdir, "final.h5"))


def read_h5(path: str) -> dict[str, Any]:
    """Every dataset and attribute of a file, by path (for exact comparisons)."""
    out: dict[str, Any] = {}

    def visit(name, obj):
        for key, value in obj.attrs.items():
            out[f"{name}@{key}"] = value
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[()]

    with h5py.File(path, "r") as f:
        for key, value in f.attrs.items():
            out[f"@{key}"] = value
        f.visititems(visit)
    return out


def assert_files_equal(a: str, b: str) -> None:
    da, db = read_h5(a), read_h5(b)
    assert da.keys() == db.keys()
    for key in da:
        if isinstance(da[key], np.ndarray):
            assert da[key].dtype == db[key].dtype, key
            np.testing.assert_array_equal(da[key], db[key], err_msg=key)
        else:
            assert da[key] == db[key], key


@pytest.mark.parametrize("variant,method", [(v, "sgd") for v in VARIANTS] + [("tiny", "nesterov")])
def test_resume_in_a_new_process_is_bitwise_identical(tmp_path, variant, method):
    whole, split = str(tmp_path / "whole"), str(tmp_path / "split")
    train_run(whole, 8, variant, method)
    train_run(split, 4, variant, method)
    assert latest_snapshot(os.path.join(split, "snapshots")).endswith("snapshot-000004.h5")
    script = tmp_path / "resume.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {TESTS_DIR!r})
        from test_snapshots import train_run
        train_run({split!r}, 8, {variant!r}, {method!r})
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0].startswith("TRAIN iter=000004")  # resumed at 4, breaks run again
    assert_files_equal(os.path.join(whole, "final.h5"), os.path.join(split, "final.h5"))
    assert_files_equal(os.path.join(whole, "snapshots", "snapshot-000008.h5"),
                       os.path.join(split, "snapshots", "snapshot-000008.h5"))
    stats_whole = CoffeeLounge.load_statistics(os.path.join(whole, "statistics.h5"))
    stats_split = CoffeeLounge.load_statistics(os.path.join(split, "statistics.h5"))
    assert stats_whole == stats_split
    assert sorted(stats_whole["obj_val"]) == list(range(9))
    if variant == "real":
        assert sorted(stats_whole["test-accuracy-accuracy"]) == [0, 2, 4, 6, 8]


# --- the validation net's data position --------------------------------------------------------------


def validation_run(workdir: str, max_iter: int, validation_first: bool = True) -> tuple[Solver, Net]:
    """Train a tiny regression net (resuming from ``workdir/snapshots`` when it holds a snapshot) with a
    validation every 2 iterations and a snapshot every 3. The test batch (4) does not divide the test set
    (11): a validation reads batches until the pass ends, so the k-th validation starts at offset k % 4
    (0, 1, 2, 3, 0, ...) and what it sees depends on the earlier ones. Returns the solver and the test net."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 3)), rng.normal(size=(12, 2))
    xt, yt = rng.normal(size=(11, 3)), rng.normal(size=(11, 2))
    backend = NumpyBackend("float64", seed=4)
    ip1 = InnerProductLayer(name="ip1", output_dim=2, bottoms=("x",), tops=("pred",))
    net = Net("train", backend, [
        MemoryDataLayer(name="data", tops=("x", "y"), data=(x, y), batch_size=4, shuffle=True), ip1,
        TinySquareLossLayer(name="loss", bottoms=("pred", "y"))])
    test_net = Net("test", backend, [
        MemoryDataLayer(name="test-data", tops=("x", "y"), data=(xt, yt), batch_size=4, shuffle=True), ip1,
        MeanSquareErrorStatLayer(name="test", bottoms=("pred", "y"))], phase="test")
    snapshots = os.path.join(workdir, "snapshots")
    solver = Solver(SGD(), SolverParameters(max_iter=max_iter, lr_policy=LRPolicy.Fixed(0.05),
                                            mom_policy=MomPolicy.Fixed(0.5), load_from=snapshots))
    breaks = [(ValidationPerformance(test_net), 2), (Snapshot(snapshots), 3)]
    for coffee, every in breaks if validation_first else reversed(breaks):
        solver.add_coffee_break(coffee, every_n_iter=every)
    solver.solve(net)
    return solver, test_net


@pytest.mark.skipif("real" not in VARIANTS, reason="needs MemoryDataLayer")
@pytest.mark.parametrize("stop,validation_first", [(5, True), (7, True), (7, False)])
def test_resume_reproduces_the_validation_statistics(tmp_path, stop, validation_first):
    # stop=5 resumes from snapshot 3 (no validation at 3); stop=7 from snapshot 6, taken after (or
    # before) the validation at 6, which runs again at the resume iteration
    whole, _ = validation_run(str(tmp_path / "whole"), 12, validation_first)
    validation_run(str(tmp_path / "split"), stop, validation_first)
    resume_at = 3 * (stop // 3)
    snapshot = os.path.join(tmp_path, "split", "snapshots", f"snapshot-{resume_at:06d}.h5")
    offset = load_validation_positions(snapshot)["test"]["test-data"]["offset"]  # the premise: mid-epoch
    assert offset == {3: 2, 6: 3}[resume_at]  # after the validations at 0, 2 (and 4)
    resumed, test_net = validation_run(str(tmp_path / "split"), 12, validation_first)
    recorded = resumed.lounge.get_statistics("test-mse")
    expected = {i: v for i, v in whole.lounge.get_statistics("test-mse").items() if i >= resume_at}
    assert sorted(expected) == list(range(2 * ((resume_at + 1) // 2), 13, 2))
    assert recorded == expected  # exactly: the same samples in the same order
    assert test_net.get_state("test-data").offset == 3  # after 7 validations


@pytest.mark.skipif("real" not in VARIANTS, reason="needs MemoryDataLayer")
def test_a_snapshot_without_validation_positions_still_resumes(tmp_path):
    validation_run(str(tmp_path), 5)
    path = tmp_path / "snapshots" / "snapshot-000003.h5"
    with h5py.File(path, "a") as f:  # make it a version-1 snapshot
        del f["validation_data"]
        f.attrs["version"] = 1
    assert load_validation_positions(path) == {}
    with pytest.warns(UserWarning, match=r"no data position for test net 'test'.*continues from where it is"):
        solver, test_net = validation_run(str(tmp_path), 12)
    assert sorted(solver.lounge.get_statistics("test-mse")) == [4, 6, 8, 10, 12]
    assert test_net.get_state("test-data").offset == 5 % 4  # 5 validations from a fresh test net


# --- crash safety ----------------------------------------------------------------------------------------


def test_a_crash_mid_write_keeps_the_previous_snapshot(tmp_path, monkeypatch):
    directory = tmp_path / "snaps"
    net, state = trained()
    first = save_snapshot(directory / "snapshot-000003.h5", net, state)
    good = params_of(net)
    x, y = tiny_data()
    Solver(SGD(), SolverParameters(max_iter=2)).solve(net)  # change the parameters
    state.iteration = 5

    original = h5py.Group.create_dataset
    calls = {"n": 0}

    def failing_create_dataset(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", failing_create_dataset)
    with pytest.raises(OSError, match="simulated"):
        save_snapshot(directory / "snapshot-000005.h5", net, state)
    monkeypatch.undo()
    assert calls["n"] == 2
    assert os.listdir(directory) == ["snapshot-000003.h5"]  # no partial file, no temporary file
    assert latest_snapshot(directory) == first
    restored = tiny_net(NumpyBackend("float64", seed=9), x, y)
    assert load_snapshot(first, restored) == 3
    assert_params_equal(params_of(restored), good)
    # a temporary file left by a killed process is never taken for a snapshot
    (directory / ".snapshot-000009.h5.abc.tmp").write_bytes(b"partial")
    assert latest_snapshot(directory) == first


# --- load_from -----------------------------------------------------------------------------------------


def solver_init(load_from, net=None, **kwargs):
    x, y = tiny_data()
    net = net or tiny_net(NumpyBackend("float64", seed=21), x, y, **kwargs)
    solver = Solver(SGD(), SolverParameters(max_iter=20, load_from=os.fspath(load_from)))
    return net, solver.init(net)


def test_load_from_a_directory_takes_the_highest_iteration(tmp_path):
    net, state = trained()
    state.iteration = 10
    save_snapshot(tmp_path / "snapshot-000010.h5", net, state)
    newest_by_mtime = params_of(net)
    other, other_state = trained(backend_seed=1)
    other_state.iteration = 2
    save_snapshot(tmp_path / "snapshot-000002.h5", other, other_state)  # written later
    os.utime(tmp_path / "snapshot-000002.h5", (2e9, 2e9))
    (tmp_path / "snapshot-notanumber.h5").write_bytes(b"")
    assert latest_snapshot(tmp_path) == str(tmp_path / "snapshot-000010.h5")
    loaded, loaded_state = solver_init(tmp_path)
    assert loaded_state.iteration == 10 and loaded_state.momentum == 0.9
    assert_params_equal(params_of(loaded), newest_by_mtime)
    np.testing.assert_array_equal(loaded_state.momentum_history["ip1/0"].to_numpy(),
                                  state.momentum_history["ip1/0"].to_numpy())


def test_load_from_an_empty_or_missing_directory_starts_fresh(tmp_path):
    for load_from in (tmp_path, str(tmp_path / "not-yet") + os.sep, tmp_path / "no-extension", ""):
        net, state = solver_init(load_from)
        assert state.iteration == 0, load_from
    assert latest_snapshot(tmp_path / "missing") is None
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "missing.h5"))):
        solver_init(tmp_path / "missing.h5")


def test_load_from_a_snapshot_file_resumes(tmp_path):
    net, state = trained(max_iter=3)
    path = save_snapshot(tmp_path / "any-name.h5", net, state)
    loaded, loaded_state = solver_init(path)
    assert loaded_state.iteration == 3 and loaded_state.learning_rate == 0.1
    assert_params_equal(params_of(loaded), params_of(net))


def test_load_from_flat_weights_loads_weights_only(tmp_path):
    net, state = trained(max_iter=3)
    path = export_flat_weights(net, tmp_path / "model.hdf5")
    loaded, loaded_state = solver_init(path)
    assert loaded_state.iteration == 0
    assert_params_equal(params_of(loaded), params_of(net))
    assert not np.abs(loaded_state.momentum_history["ip1/0"].to_numpy()).any()


# --- bad files -------------------------------------------------------------------------------------------


def test_corrupt_or_truncated_snapshots_raise_errors_naming_the_file(tmp_path):
    net, state = trained()
    good = save_snapshot(tmp_path / "good.h5", net, state)
    garbage = tmp_path / "snapshot-000007.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(open(good, "rb").read()[:1500])
    for path in (garbage, truncated):
        with pytest.raises(SnapshotError, match=re.escape(str(path))):
            load_snapshot(path, net, SolverState.for_net(net))
    with pytest.raises(SnapshotError, match=re.escape(str(garbage))):
        solver_init(tmp_path)  # the directory's latest snapshot is the corrupt one
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "nope.h5"))):
        load_snapshot(tmp_path / "nope.h5", net)
    with h5py.File(tmp_path / "nosolver.h5", "w") as f:
        f.create_group("params/ip1")
    with pytest.raises(SnapshotError, match="nosolver.h5"):
        load_snapshot(tmp_path / "nosolver.h5", net)


def test_incompatible_snapshots_name_the_layer_parameter_and_file(tmp_path):
    net, state = trained()
    path = save_snapshot(tmp_path / "s.h5", net, state)
    x, _ = tiny_data()
    y3 = np.zeros((len(x), 3))
    wider = tiny_net(NumpyBackend("float64"), x, y3)
    with pytest.raises(SnapshotError, match=r"s\.h5.*'ip1'.*'weight'.*\(2, 3\).*\(3, 3\)"):
        load_snapshot(path, wider)
    layers = tiny_layers(*tiny_data())
    layers.insert(1, InnerProductLayer(name="ip0", output_dim=3, bottoms=("x",), tops=("h",)))
    layers[2] = InnerProductLayer(name="ip1", output_dim=2, bottoms=("h",), tops=("pred",))
    deeper = Net("deeper", NumpyBackend("float64"), layers)
    with pytest.raises(SnapshotError, match=r"s\.h5.*'ip0'"):
        load_snapshot(path, deeper)
    with pytest.warns(UserWarning, match="'ip0'"):
        load_snapshot(path, deeper, strict=False)
    assert_params_equal({"ip1": params_of(deeper)["ip1"]}, {"ip1": params_of(net)["ip1"]})
    # a rejected file leaves everything as it was, even the layers that did match
    deep_path = save_snapshot(tmp_path / "deep.h5", deeper, SolverState.for_net(deeper))
    layers[2] = InnerProductLayer(name="ip1", output_dim=3, bottoms=("h",), tops=("pred",))
    layers[-1] = type(layers[-1])(name="loss", bottoms=("pred", "h"))
    mismatch = Net("mismatch", NumpyBackend("float64", seed=3), layers)
    before = params_of(mismatch)
    with pytest.raises(SnapshotError, match=r"deep\.h5.*'ip1'"):
        load_snapshot(deep_path, mismatch, SolverState.for_net(mismatch))
    assert_params_equal(params_of(mismatch), before)


# --- flat model files ------------------------------------------------------------------------------------


def test_flat_weights_round_trip_in_mochas_format(tmp_path):
    net, _ = trained()
    path = export_flat_weights(net, tmp_path / "model.h5")
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["ip1___bias", "ip1___weight"]
        np.testing.assert_array_equal(f["ip1___weight"][()], net.params["ip1"][0].blob.to_numpy())
    other = tiny_net(NumpyBackend("float64", seed=77), *tiny_data())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_flat_weights(other, path)
    assert_params_equal(params_of(other), params_of(net))


def test_flat_weights_tolerate_singleton_dims_and_convert_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(2,)).astype(np.float32)
    with h5py.File(tmp_path / "caffe.h5", "w") as f:
        f["ip1___weight"] = w.reshape(1, 1, 2, 3)  # Caffe's 4-D inner-product blob
        f["ip1___bias"] = b.reshape(1, 1, 1, 2)
        f["other___weight"] = np.zeros((5, 5))  # layers the net does not have are ignored
    net = tiny_net(NumpyBackend("float64"), *tiny_data())
    with pytest.warns(UserWarning, match="float32 to float64"):
        load_flat_weights(net, tmp_path / "caffe.h5")
    np.testing.assert_array_equal(net.params["ip1"][0].blob.to_numpy(), w.astype(np.float64))
    np.testing.assert_array_equal(net.params["ip1"][1].blob.to_numpy(), b.astype(np.float64))


def test_flat_weights_missing_parameters(tmp_path):
    net = tiny_net(NumpyBackend("float64"), *tiny_data())
    bias_before = net.params["ip1"][1].blob.to_numpy()
    with h5py.File(tmp_path / "nobias.h5", "w") as f:
        f["ip1___weight"] = np.ones((2, 3))
    with pytest.warns(UserWarning, match="'ip1___bias'"):
        load_flat_weights(net, tmp_path / "nobias.h5")
    np.testing.assert_array_equal(net.params["ip1"][0].blob.to_numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(net.params["ip1"][1].blob.to_numpy(), bias_before)
    with h5py.File(tmp_path / "noweight.h5", "w") as f:
        f["ip1___bias"] = np.ones(2)
    with pytest.raises(SnapshotError, match=r"noweight\.h5.*'ip1___weight'"):
        load_flat_weights(net, tmp_path / "noweight.h5")
    with pytest.warns(UserWarning, match="'ip1___weight'"):
        load_flat_weights(net, tmp_path / "noweight.h5", strict=False)
    with h5py.File(tmp_path / "wrong.h5", "w") as f:
        f["ip1___weight"] = np.ones((3, 2))
        f["ip1___bias"] = np.ones(2)
    before = params_of(net)
    with pytest.raises(SnapshotError, match=r"wrong\.h5.*'ip1___weight'.*\(3, 2\).*'ip1'.*\(2, 3\)"):
        load_flat_weights(net, tmp_path / "wrong.h5")
    assert_params_equal(params_of(net), before)
    (tmp_path / "bad.h5").write_bytes(b"nope")
    with pytest.raises(SnapshotError, match=r"bad\.h5"):
        load_flat_weights(net, tmp_path / "bad.h5")
