"""Data layers (MemoryData, HDF5Data, AsyncHDF5Data) and data transformers (SubMean, Scale).

Batches are compared exactly with the expected sample stream: batches wrap across file boundaries and
around the end of the data, ``epoch`` increments on the forward that reads the last sample of a pass,
and shuffling serves every sample exactly once per epoch. ``position_state`` / ``restore_position``
must reproduce the following batches bit for bit. Bad files raise errors naming the layer and the
file. Every HDF5 file is written under pytest's ``tmp_path``.
"""

from __future__ import annotations

import os
import re
import time

import h5py
import numpy as np
import pytest

from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.blob import Blob
from mocha_triton.layers.base import LayerError
from mocha_triton.layers.data import AsyncHDF5DataLayer, HDF5DataLayer, MemoryDataLayer
from mocha_triton.net import Net
from mocha_triton.transformers import DataTransformer, Scale, SubMean, TransformerState

SIZES = (5, 1, 2)  # samples per file, as in Mocha's test
SAMPLE = (2, 3, 4)  # per-sample shape of "data"


def write_h5(path, **datasets) -> str:
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f[name] = value
    return str(path)


def write_source(path, entries) -> str:
    path.write_text("".join(f"{e}\n" for e in entries))
    return str(path)


def make_files(tmp_path, sizes=SIZES, dtype=np.float32, seed=0):
    """HDF5 files of the given sizes; returns (source path, all data, all labels) in file order.

    Each sample's data is random, its label is its global index (a float), so batches identify samples.
    """
    rng = np.random.default_rng(seed)
    paths, data, labels, start = [], [], [], 0
    for i, n in enumerate(sizes):
        d = rng.random((n, *SAMPLE)).astype(dtype)
        lab = np.arange(start, start + n, dtype=dtype).reshape(n, 1)
        paths.append(write_h5(tmp_path / f"part{i}.h5", data=d, label=lab))
        data.append(d)
        labels.append(lab)
        start += n
    source = write_source(tmp_path / "source.txt", ["", *(f"  {p}  " for p in paths), "   "])  # blanks ignored
    return source, np.concatenate(data), np.concatenate(labels)


def run(state, n: int) -> list[list[np.ndarray]]:
    """``n`` forwards; the host copy of every top after each."""
    batches = []
    for _ in range(n):
        state.forward([])
        batches.append([b.to_numpy() for b in state.blobs])
    return batches


def stream(batches, top: int = 0) -> np.ndarray:
    return np.concatenate([b[top] for b in batches])


@pytest.fixture
def backend() -> NumpyBackend:
    return NumpyBackend("float64", seed=3)


# --- MemoryDataLayer -------------------------------------------------------------------------------


def test_memory_data_wraps_and_counts_epochs(backend):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 2, 3)), np.arange(8.0).reshape(8, 1)
    state = MemoryDataLayer(batch_size=3, data=[x, y]).setup(backend, [], [])
    assert [b.shape for b in state.blobs] == [(3, 2, 3), (3, 1)]
    assert state.epoch == 0
    batches, epochs = [], []
    for _ in range(8):  # 24 samples = 3 passes
        batches += run(state, 1)
        epochs.append(state.epoch)
    assert epochs == [3 * (i + 1) // 8 for i in range(8)]  # increments on the forward reading sample 7
    np.testing.assert_array_equal(stream(batches, 0), np.concatenate([x] * 3))
    np.testing.assert_array_equal(stream(batches, 1), np.concatenate([y] * 3))


@pytest.mark.parametrize("async_", [None, False, True], ids=["memory", "sync", "async"])
def test_batch_larger_than_the_data(tmp_path, backend, async_):
    """A batch of 5 over 2 samples wraps twice in one forward; epoch counts both passes."""
    ids = np.array([[0.0], [1.0]], np.float32)
    if async_ is None:
        layer = MemoryDataLayer(tops=["data"], batch_size=5, data=[ids])
    else:
        source = write_source(tmp_path / "s.txt", [write_h5(tmp_path / "ids.h5", data=ids)])
        layer = hdf5_layer(async_, source=source, tops=["data"], batch_size=5)
    state = layer.setup(backend, [], [])
    try:
        batches = run(state, 2)
    finally:
        state.shutdown()
    np.testing.assert_array_equal(stream(batches)[:, 0], [0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    assert state.epoch == 5


def test_memory_data_shuffle_serves_each_sample_once_per_epoch(backend):
    ids = np.arange(8.0)
    state = MemoryDataLayer(batch_size=3, data=[ids.reshape(8, 1), -ids], shuffle=True).setup(backend, [], [])
    batches = run(state, 8)
    served = stream(batches, 0)[:, 0]
    np.testing.assert_array_equal(stream(batches, 1), -served)  # tops stay aligned
    epochs = served.reshape(3, 8)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), ids)
    assert len({tuple(e) for e in epochs}) == 3  # a fresh permutation each epoch
    assert not np.array_equal(epochs[0], ids)
    assert state.epoch == 3


def test_memory_data_reads_arrays_live_and_casts(backend):
    x = np.arange(12, dtype=np.int32).reshape(4, 3)  # integers are cast to the backend dtype
    layer = MemoryDataLayer(tops=["data"], batch_size=4, data=[x])
    state = layer.setup(backend, [], [])
    state.forward([])
    assert state.blobs[0].dtype == "float64"
    np.testing.assert_array_equal(state.blobs[0].to_numpy(), np.arange(12).reshape(4, 3))
    assert layer.data[0] is x  # not copied
    layer.data[0][...] *= -1  # the prediction idiom: write new inputs into the layer's array
    state.forward([])
    np.testing.assert_array_equal(state.blobs[0].to_numpy(), -np.arange(12).reshape(4, 3))


def test_memory_data_on_triton_backend():
    x = np.random.default_rng(1).random((5, 2)).astype(np.float32)
    state = MemoryDataLayer(tops=["data"], batch_size=2, data=[x]).setup(TritonBackend(), [], [])
    batches = run(state, 5)
    np.testing.assert_array_equal(stream(batches), np.concatenate([x, x]))
    assert state.epoch == 2


def test_memory_data_transformers_sub_mean_then_scale(backend):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 2, 3))
    mean = rng.normal(size=(2, 3))
    transformers = [("data", SubMean(mean_blob=mean[None])), ("data", Scale(0.5))]  # leading singleton ok
    state = MemoryDataLayer(tops=["data", "label"], batch_size=4, data=[x, np.zeros(4)],
                            transformers=transformers).setup(backend, [], [])
    state.forward([])
    np.testing.assert_allclose(state.blobs[0].to_numpy(), (x - mean) * 0.5, rtol=1e-15)
    np.testing.assert_array_equal(state.blobs[1].to_numpy(), np.zeros(4))  # other tops untouched


def test_sub_mean_from_blob_object(backend):
    x = np.arange(6.0).reshape(3, 2)
    mean = Blob.from_numpy(backend, np.array([[1.0], [2.0]]))  # trailing singleton
    state = MemoryDataLayer(tops=["data"], batch_size=3, data=[x],
                            transformers=[("data", SubMean(mean_blob=mean))]).setup(backend, [], [])
    state.forward([])
    np.testing.assert_array_equal(state.blobs[0].to_numpy(), x - [1.0, 2.0])


def test_memory_data_position_round_trip(backend):
    x = np.arange(7.0).reshape(7, 1)
    layer = MemoryDataLayer(tops=["data"], batch_size=3, data=[x], shuffle=True)
    state = layer.setup(backend, [], [])
    run(state, 5)
    position = state.position_state()
    assert set(position) == {"epoch", "offset", "seed", "n_samples"}
    expected = run(state, 6)
    other = layer.setup(NumpyBackend("float64", seed=99), [], [])  # another seed: other permutations
    assert not np.array_equal(stream(run(other, 6)), stream(expected))
    other.restore_position(position)
    assert other.epoch == position["epoch"]
    np.testing.assert_array_equal(stream(run(other, 6)), stream(expected))
    with pytest.raises(LayerError, match=r"'memory-data'.*for 8 samples, but the data has 7"):
        other.restore_position({**position, "n_samples": 8})
    with pytest.raises(LayerError, match=r"'memory-data'.*invalid position state"):
        other.restore_position({"epoch": 0})


@pytest.mark.parametrize("kwargs,message", [
    (dict(batch_size=0, data=[np.zeros(3), np.zeros(3)]), "batch_size must be a positive int"),
    (dict(batch_size=2, data=[np.zeros(3)]), "one array per top"),
    (dict(batch_size=2, data=[np.zeros(3), np.zeros(4)]), "different numbers of samples"),
    (dict(batch_size=2, data=[np.zeros(0), np.zeros(0)]), "at least one sample"),
    (dict(batch_size=2, data=[np.array(["a"]), np.zeros(1)]), "expected real numbers"),
    (dict(batch_size=2, data=[np.zeros(3), np.zeros(3)], bottoms=["x"]), "no bottoms"),
    (dict(batch_size=2, data=[np.zeros(3), np.zeros(3)], transformers=[("image", Scale(2.0))]), "top 'image'"),
    (dict(batch_size=2, data=[np.zeros(3), np.zeros(3)], transformers=[("data", 2.0)]), "not a DataTransformer"),
])
def test_bad_memory_data_configuration(kwargs, message):
    with pytest.raises(LayerError, match=rf"MemoryDataLayer 'md'.*{message}"):
        MemoryDataLayer(name="md", **kwargs)


def test_bad_transformers():
    with pytest.raises(ValueError, match="exactly one of mean_file or mean_blob"):
        SubMean()
    with pytest.raises(ValueError, match="finite number"):
        Scale(float("inf"))
    layer = MemoryDataLayer(name="md", tops=["data"], batch_size=1, data=[np.zeros((2, 3))],
                            transformers=[("data", SubMean(mean_blob=np.zeros(4)))])
    with pytest.raises(LayerError, match=r"'md'.*SubMean for top 'data'.*shape \(4,\).*\(3,\)"):
        layer.setup(NumpyBackend(), [], [])


# --- HDF5DataLayer and AsyncHDF5DataLayer ----------------------------------------------------------


def hdf5_layer(async_: bool, **kwargs):
    if async_:
        kwargs.setdefault("chunk_size", 2)
        return AsyncHDF5DataLayer(**kwargs)
    return HDF5DataLayer(**kwargs)


@pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
def test_hdf5_batches_cross_file_boundaries(tmp_path, backend, async_):
    source, data, labels = make_files(tmp_path)
    scale = 0.37
    layer = hdf5_layer(async_, source=source, batch_size=3, transformers=[("data", Scale(scale))])
    state = layer.setup(backend, [], [])
    try:
        assert [b.shape for b in state.blobs] == [(3, *SAMPLE), (3, 1)]
        assert state.epoch == 0
        batches, epochs = [], []
        for _ in range(8):  # 24 samples = 3 passes over 8
            batches += run(state, 1)
            epochs.append(state.epoch)
        assert epochs == [3 * (i + 1) // 8 for i in range(8)]
        assert state.epoch == 3
        expected = np.concatenate([data] * 3).astype(np.float64) * scale
        np.testing.assert_array_equal(stream(batches, 0), expected)
        np.testing.assert_array_equal(stream(batches, 1), np.concatenate([labels] * 3))
    finally:
        state.shutdown()


@pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
def test_hdf5_shuffle_serves_each_sample_once_per_epoch(tmp_path, backend, async_):
    source, data, labels = make_files(tmp_path)
    state = hdf5_layer(async_, source=source, batch_size=3, shuffle=True).setup(backend, [], [])
    try:
        batches = run(state, 8)
    finally:
        state.shutdown()
    served = stream(batches, 1)[:, 0].astype(int)  # the labels are the sample ids
    np.testing.assert_array_equal(stream(batches, 0), data[served])  # data and labels stay aligned
    counts = np.bincount(served, minlength=8)
    np.testing.assert_array_equal(counts, np.full(8, 3))  # n forwards: each sample batch_size times
    epochs = served.reshape(3, 8)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(8))
    assert len({tuple(e) for e in epochs}) > 1
    if not async_:  # the file order is fixed at setup: each file is one contiguous run, same order each epoch
        files = np.repeat(np.arange(3), SIZES)
        orders = set()
        for epoch in epochs:
            f = files[epoch]
            runs = tuple(int(v) for v in f[np.r_[0, np.flatnonzero(np.diff(f)) + 1]])
            assert sorted(runs) == [0, 1, 2]
            orders.add(runs)
        assert len(orders) == 1


def test_async_chunked_shuffle_keeps_chunks_together(tmp_path, backend):
    """With one file of 6 samples and chunk_size 3, an epoch is chunk {0,1,2} and chunk {3,4,5} in
    some order, each permuted inside."""
    ids = np.arange(6, dtype=np.float32).reshape(6, 1)
    path = write_h5(tmp_path / "one.h5", data=ids)
    source = write_source(tmp_path / "one.txt", [path])
    state = AsyncHDF5DataLayer(source=source, tops=["data"], batch_size=2, shuffle=True, chunk_size=3).setup(
        backend, [], [])
    try:
        epochs = stream(run(state, 12))[:, 0].reshape(4, 6)
    finally:
        state.shutdown()
    for epoch in epochs:
        assert {frozenset(epoch[:3]), frozenset(epoch[3:])} == {frozenset({0, 1, 2}), frozenset({3, 4, 5})}
    assert len({tuple(e) for e in epochs}) > 1


def test_forward_epoch_with_hdf5_data(tmp_path, backend):
    source, _, _ = make_files(tmp_path)
    net = Net("data-net", backend, [HDF5DataLayer(name="data", source=source, batch_size=3)])
    net.forward_epoch()  # 3 forwards read samples 0..8: the pass ends in the third
    state = net.get_state("data")
    assert state.epoch == 1 and state.position_state()["offset"] == 1
    net.destroy()


@pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
def test_hdf5_position_round_trip(tmp_path, backend, async_):
    source, _, _ = make_files(tmp_path)
    layer = hdf5_layer(async_, source=source, batch_size=3, shuffle=True)
    state = layer.setup(backend, [], [])
    other = layer.setup(NumpyBackend("float64", seed=123), [], [])
    try:
        run(state, 4)
        position = state.position_state()
        expected = run(state, 7)
        other.restore_position(position)
        assert (other.epoch, other.position_state()) == (position["epoch"], position)
        got = run(other, 7)
        for top in (0, 1):
            np.testing.assert_array_equal(stream(got, top), stream(expected, top))
        assert other.epoch == state.epoch
    finally:
        state.shutdown()
        other.shutdown()


def test_hdf5_sub_mean_from_mean_file(tmp_path, backend):
    source, data, _ = make_files(tmp_path)
    mean = np.random.default_rng(5).random(SAMPLE)
    mean_file = write_h5(tmp_path / "mean.h5", mean=mean[None])  # Mocha's layout: (1, *sample)
    layer = HDF5DataLayer(source=source, batch_size=4, transformers=[("data", SubMean(mean_file=mean_file))])
    state = layer.setup(backend, [], [])
    state.forward([])
    np.testing.assert_allclose(state.blobs[0].to_numpy(), data[:4].astype(np.float64) - mean, rtol=0, atol=1e-15)
    state.shutdown()


def test_sub_mean_file_errors(tmp_path, backend):
    source, _, _ = make_files(tmp_path)
    missing = str(tmp_path / "nope.h5")
    layer = HDF5DataLayer(name="d", source=source, batch_size=2, transformers=[("data", SubMean(mean_file=missing))])
    with pytest.raises(LayerError, match=rf"HDF5DataLayer 'd'.*mean file '{re.escape(missing)}' does not exist"):
        layer.setup(backend, [], [])
    no_mean = write_h5(tmp_path / "nomean.h5", average=np.zeros(SAMPLE))
    layer = HDF5DataLayer(name="d", source=source, batch_size=2, transformers=[("data", SubMean(mean_file=no_mean))])
    with pytest.raises(LayerError, match=rf"'d'.*'{re.escape(no_mean)}' has no dataset 'mean'"):
        layer.setup(backend, [], [])


def test_relative_paths_resolve_from_cwd_then_source_folder(tmp_path, backend, monkeypatch):
    lists, elsewhere = tmp_path / "lists", tmp_path / "elsewhere"
    lists.mkdir()
    elsewhere.mkdir()
    write_h5(lists / "a.h5", data=np.full((2, 1), 1.0))
    write_h5(elsewhere / "a.h5", data=np.full((2, 1), 2.0))
    source = write_source(lists / "train.txt", ["a.h5"])
    layer = HDF5DataLayer(source=source, tops=["data"], batch_size=2)
    monkeypatch.chdir(tmp_path)  # no a.h5 here: found next to the source list
    state = layer.setup(backend, [], [])
    state.forward([])
    assert state.blobs[0].to_numpy().tolist() == [[1.0], [1.0]]
    state.shutdown()
    monkeypatch.chdir(elsewhere)  # the current directory wins, like Mocha
    state = layer.setup(backend, [], [])
    state.forward([])
    assert state.blobs[0].to_numpy().tolist() == [[2.0], [2.0]]
    state.shutdown()


# --- the asynchronous reader's thread ------------------------------------------------------------


def test_async_shutdown_stops_the_thread(tmp_path, backend):
    source, _, _ = make_files(tmp_path)
    state = AsyncHDF5DataLayer(name="async", source=source, batch_size=3, prefetch=1).setup(backend, [], [])
    thread = state._producer.thread
    time.sleep(0.05)  # let the thread fill the queue and block on it
    started = time.monotonic()
    state.shutdown()
    assert time.monotonic() - started < 2.0
    assert not thread.is_alive()
    state.shutdown()  # idempotent
    with pytest.raises(LayerError, match=r"'async'.*shut down"):
        state.forward([])


def test_async_destroy_through_net(tmp_path, backend):
    source, _, _ = make_files(tmp_path)
    net = Net("async-net", backend, [AsyncHDF5DataLayer(name="data", source=source, batch_size=3)])
    net.forward()
    thread = net.get_state("data")._producer.thread
    net.destroy()
    assert not thread.is_alive()


def test_async_read_errors_name_the_file(tmp_path, backend):
    """A file damaged after setup: the thread's read error reaches forward, naming the file."""
    source, _, _ = make_files(tmp_path, sizes=(30, 1, 2))
    state = AsyncHDF5DataLayer(name="async", source=source, batch_size=3, chunk_size=8, prefetch=1).setup(
        backend, [], [])
    broken = str(tmp_path / "part1.h5")  # sample 30: the thread is at most a few batches ahead of forward 1
    try:
        state.forward([])
        truncate(broken)
        with pytest.raises(LayerError, match=rf"AsyncHDF5DataLayer 'async'.*'{re.escape(broken)}'"):
            for _ in range(12):
                state.forward([])
        with pytest.raises(LayerError, match=rf"'{re.escape(broken)}'"):  # and keeps reporting it
            state.forward([])
    finally:
        state.shutdown()


class _FailingTransformer(DataTransformer):
    """Raises in the reading thread on its second batch."""

    def setup(self, backend, sample_shape, dtype):
        return _FailingState()


class _FailingState(TransformerState):
    calls = 0

    def forward(self, batch):
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("boom")


def test_async_thread_errors_are_raised_in_forward(tmp_path, backend):
    source, data, _ = make_files(tmp_path)
    state = AsyncHDF5DataLayer(name="async", source=source, batch_size=3,
                               transformers=[("data", _FailingTransformer())]).setup(backend, [], [])
    try:
        state.forward([])
        np.testing.assert_array_equal(state.blobs[0].to_numpy(), data[:3])
        with pytest.raises(LayerError, match=r"AsyncHDF5DataLayer 'async'.*reading thread failed: RuntimeError: boom") \
                as info:
            state.forward([])
        assert isinstance(info.value.__cause__, RuntimeError)
        with pytest.raises(LayerError, match="boom"):
            state.forward([])
        assert state.epoch == 0 and state.position_state()["offset"] == 3  # the failed forwards served nothing
    finally:
        state.shutdown()


# --- bad HDF5 inputs -----------------------------------------------------------------------------


def truncate(path: str) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


@pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
def test_truncated_hdf5_file(tmp_path, backend, async_):
    source, _, _ = make_files(tmp_path)
    broken = str(tmp_path / "part2.h5")
    truncate(broken)
    layer = hdf5_layer(async_, name="train-data", source=source, batch_size=3)
    pattern = rf"'train-data'.*'{re.escape(broken)}'.*truncated, corrupt or not HDF5"
    with pytest.raises(LayerError, match=pattern) as info:
        layer.setup(backend, [], [])
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize("async_", [False, True], ids=["sync", "async"])
def test_missing_dataset(tmp_path, backend, async_):
    source, _, _ = make_files(tmp_path)
    layer = hdf5_layer(async_, name="train-data", source=source, tops=["data", "labels"], batch_size=3)
    path = str(tmp_path / "part0.h5")
    pattern = rf"'train-data'.*'{re.escape(path)}' has no dataset 'labels'.*\['data', 'label'\]"
    with pytest.raises(LayerError, match=pattern):
        layer.setup(backend, [], [])


def test_missing_hdf5_file_and_source(tmp_path, backend):
    source = write_source(tmp_path / "list.txt", ["does-not-exist.h5"])
    with pytest.raises(LayerError, match=r"HDF5DataLayer 'd'.*'does-not-exist.h5' listed in .*list.txt.* does not"):
        HDF5DataLayer(name="d", source=source, batch_size=1).setup(backend, [], [])
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(LayerError, match=rf"HDF5DataLayer 'd'.*source file '{re.escape(missing)}' does not exist"):
        HDF5DataLayer(name="d", source=missing, batch_size=1).setup(backend, [], [])
    empty = write_source(tmp_path / "empty.txt", ["", "  "])
    with pytest.raises(LayerError, match=r"'d'.*lists no HDF5 files"):
        HDF5DataLayer(name="d", source=empty, batch_size=1).setup(backend, [], [])


@pytest.mark.parametrize("datasets,message", [
    (dict(data=np.zeros((3, *SAMPLE), np.float32), label=np.zeros((2, 1), np.float32)),
     r"datasets of HDF5 file '{path}' hold different numbers of samples: \{'data': 3, 'label': 2\}"),
    (dict(data=np.zeros((3, 4, 3, 2), np.float32), label=np.zeros((3, 1), np.float32)),
     r"dataset 'data' in HDF5 file '{path}' has samples of shape \(4, 3, 2\), but in .* \(2, 3, 4\)"),
    (dict(data=np.zeros((3, *SAMPLE), np.float32), label=np.zeros((3, 1), np.int64)),
     r"dataset 'label' in HDF5 file '{path}' has dtype int64; only float data"),
    (dict(data=np.zeros((0, *SAMPLE), np.float32), label=np.zeros((0, 1), np.float32)),
     r"HDF5 file '{path}' holds no samples"),
])
def test_inconsistent_hdf5_files(tmp_path, backend, datasets, message):
    source, _, _ = make_files(tmp_path)
    path = write_h5(tmp_path / "part1.h5", **datasets)  # replace the second file
    with pytest.raises(LayerError, match=r"HDF5DataLayer 'hdf5-data'.*" + message.replace("{path}", re.escape(path))):
        HDF5DataLayer(source=source, batch_size=3).setup(backend, [], [])


def test_bad_hdf5_configuration():
    with pytest.raises(LayerError, match=r"AsyncHDF5DataLayer 'hdf5-data'.*chunk_size must be a positive int"):
        AsyncHDF5DataLayer(source="x.txt", batch_size=1, chunk_size=0)
    with pytest.raises(LayerError, match=r"HDF5DataLayer 'hdf5-data'.*source must be"):
        HDF5DataLayer(source="", batch_size=1)
