"""Data layers: the sources of a net (no bottoms), serving one mini-batch per forward.

* :class:`MemoryDataLayer` — batches cut from in-memory NumPy arrays.
* :class:`HDF5DataLayer` — batches read from HDF5 files listed in a text file (Caffe/Mocha format).
* :class:`AsyncHDF5DataLayer` — the same files, read ahead by a background thread.

Every layer has ``tops`` (blob names; for the HDF5 layers also the dataset names), a ``batch_size``,
``shuffle`` and ``transformers=[(top_name, transformer), ...]`` (:mod:`mocha_triton.transformers`).
Arrays and datasets hold samples along their **first** axis (h5py's view of Mocha/Caffe files: MNIST
``data`` is ``(60000, 1, 28, 28)``, ``label`` is ``(60000, 1)`` float). A top's blob is
``(batch_size, *sample_shape)`` in the backend's dtype.

How reading works
-----------------
The samples form one stream, epoch after epoch. An epoch is a list of *segments* (a file, a row range
and, when shuffling, the key of a row permutation) made by a *plan*, a pure function of the layer's
shuffle seed and the epoch number:

* MemoryData and HDF5Data: each file (the memory layer has one) is one segment; the file order is
  permuted once (from the seed), the rows of a file get a fresh permutation at every visit.
* AsyncHDF5Data ("chunked" shuffle, for files too large to permute whole): every epoch permutes the
  file order, the order of the ``chunk_size``-sample chunks inside each file, and the samples inside
  each chunk.

A batch takes the next ``batch_size`` samples of the stream, so batches wrap across file boundaries and
around the end of the data, and every batch is full. ``state.epoch`` counts the completed passes: it
increments during the forward that reads the last sample of a pass (Mocha's rule; ``Net.forward_epoch``
relies on it).

Because the stream is a function of the seed, the read position is just ``(epoch, offset in the
epoch)``: ``state.position_state()`` returns it with the seed, and ``state.restore_position(d)`` makes
the layer continue with exactly the batches it would have served (bitwise resume from a snapshot).
The seed is drawn from ``backend.rng`` at setup when ``shuffle`` is on (the layer then owns its
draws; nothing else touching ``backend.rng``, such as the asynchronous reader thread, can change
them).

Differences from Mocha (deliberate)
-----------------------------------
* The HDF5 layers check every listed file at setup (datasets present, float, consistent shapes and
  sample counts) and name the layer and the file in every error, instead of failing mid-training.
* The asynchronous layer counts epochs as the consumer **takes** batches, not in the reading thread,
  so ``epoch`` does not run ahead of training by the prefetch depth. Errors in the thread are re-raised
  by ``forward``; ``shutdown()`` stops the thread without hanging.
* A relative path in the source list is looked up in the current directory (Mocha) and then next to
  the source file.
* Shuffled HDF5 rows are read with sorted index lists (no mmap), so chunked or compressed datasets
  work too.
"""

from __future__ import annotations

import numbers
import os
import queue
import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerError, LayerState
from mocha_triton.transformers import DataTransformer, TransformerState

# Keys that separate the random streams drawn from one layer seed.
_FILE_ORDER, _CHUNK_ORDER, _ROW_ORDER = 1, 2, 3

STOP_JOIN_TIMEOUT_S = 10.0  # how long shutdown() waits for the reading thread
_POLL_S = 0.05  # queue wait granularity of the reading thread and of forward()


def _stream(seed: int, *key: int) -> np.random.Generator:
    """The random generator of one (seed, key) pair: independent of every other key."""
    return np.random.default_rng([int(seed), *(int(k) for k in key)])


# --- layer configurations ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _DataLayer(Layer):
    """Fields and checks shared by the data layers."""

    tops: tuple[str, ...] = ("data", "label")
    batch_size: int
    shuffle: bool = False
    transformers: Any = ()  # ((top_name, DataTransformer), ...)

    is_source = True

    def validate(self) -> None:
        if self.bottoms:
            raise self.fail(f"a data layer has no bottoms, got {self.bottoms}")
        if not self.tops or not all(isinstance(t, str) and t for t in self.tops):
            raise self.fail(f"tops must be a non-empty list of names, got {self.tops!r}")
        if len(set(self.tops)) != len(self.tops):
            raise self.fail(f"tops must be distinct, got {self.tops}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, numbers.Integral) \
                or self.batch_size < 1:
            raise self.fail(f"batch_size must be a positive int, got {self.batch_size!r}")
        if not isinstance(self.shuffle, bool):
            raise self.fail(f"shuffle must be a bool, got {self.shuffle!r}")
        pairs = []
        for pair in self.transformers or ():
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise self.fail(f"transformers must be (top_name, transformer) pairs, got {pair!r}")
            top, transformer = pair
            if top not in self.tops:
                raise self.fail(f"transformer {transformer!r} is for top {top!r}, which is not one of {self.tops}")
            if not isinstance(transformer, DataTransformer):
                raise self.fail(f"{transformer!r} (for top {top!r}) is not a DataTransformer")
            pairs.append((top, transformer))
        object.__setattr__(self, "transformers", tuple(pairs))


@dataclass(frozen=True, kw_only=True)
class MemoryDataLayer(_DataLayer):
    """Batches from in-memory arrays: ``data`` holds one array per top, samples along the first axis.

    The arrays are read at every forward (not copied at setup), so assigning into them, e.g.
    ``layer.data[0][...] = new_inputs``, changes what the next batches contain (the idiom for
    predicting on new inputs with a trained net). With ``shuffle`` every epoch has a fresh permutation.
    """

    name: str = "memory-data"
    data: Any = field(compare=False, repr=False)

    def validate(self) -> None:
        super().validate()
        arrays = self.data if isinstance(self.data, (tuple, list)) else (self.data,)
        if len(arrays) != len(self.tops):
            raise self.fail(f"data must hold one array per top {self.tops}, got {len(arrays)}")
        converted = []
        for top, array in zip(self.tops, arrays):
            a = array if isinstance(array, np.ndarray) else np.asarray(array)
            if a.dtype.kind not in "fiu":
                raise self.fail(f"data for top {top!r} has dtype {a.dtype}; expected real numbers")
            if a.ndim < 1 or a.shape[0] == 0:
                raise self.fail(f"data for top {top!r} must hold at least one sample along axis 0, "
                                f"got shape {a.shape}")
            converted.append(a)
        counts = {top: a.shape[0] for top, a in zip(self.tops, converted)}
        if len(set(counts.values())) != 1:
            raise self.fail(f"the arrays hold different numbers of samples: {counts}")
        object.__setattr__(self, "data", tuple(converted))

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> DataLayerState:
        _no_inputs(self, inputs)
        source = _MemorySource(self)
        return DataLayerState(self, backend, source, _whole_file_plan(source, self.shuffle))


@dataclass(frozen=True, kw_only=True)
class HDF5DataLayer(_DataLayer):
    """Batches from HDF5 files: ``source`` is a text file listing one HDF5 path per line (blank lines
    are ignored, whitespace is stripped); each file holds one dataset per top, named like the top.

    Relative paths are looked up in the current directory, then in the source file's folder.
    With ``shuffle`` the file order is permuted once at setup, and the rows of a file get a fresh
    permutation each time the file is read.
    """

    name: str = "hdf5-data"
    source: str

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.source, (str, os.PathLike)) or not os.fspath(self.source):
            raise self.fail(f"source must be the path of a text file listing HDF5 files, got {self.source!r}")
        object.__setattr__(self, "source", os.fspath(self.source))

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> DataLayerState:
        _no_inputs(self, inputs)
        source = _HDF5Source(self)
        return DataLayerState(self, backend, source, _whole_file_plan(source, self.shuffle))


@dataclass(frozen=True, kw_only=True)
class AsyncHDF5DataLayer(HDF5DataLayer):
    """:class:`HDF5DataLayer` read ahead by a background thread.

    The thread reads ``chunk_size`` samples at a time and keeps up to ``prefetch`` finished batches in
    a queue. With ``shuffle`` every epoch permutes the file order, the chunk order inside each file and
    the samples inside each chunk. ``state.shutdown()`` (called by ``Net.destroy``) stops the thread.
    """

    chunk_size: int = 2**20
    prefetch: int = 2

    def validate(self) -> None:
        super().validate()
        for key in ("chunk_size", "prefetch"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise self.fail(f"{key} must be a positive int, got {value!r}")

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> AsyncDataLayerState:
        _no_inputs(self, inputs)
        source = _HDF5Source(self)
        return AsyncDataLayerState(self, backend, source, _chunked_plan(source, self.shuffle, self.chunk_size))


def _no_inputs(layer: Layer, inputs: list[Blob]) -> None:
    if inputs:
        raise layer.fail(f"a data layer takes no input blobs, got {len(inputs)}")


# --- sources: where the samples are --------------------------------------------------------------


class _Opened:
    """One source file opened for reading: ``arrays[k]`` is top k's dataset (indexable on axis 0)."""

    def __init__(self, arrays: Sequence[Any], handle: Any = None) -> None:
        self.arrays = arrays
        self.handle = handle

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class _MemorySource:
    """The arrays of a MemoryDataLayer, as one 'file'."""

    def __init__(self, layer: MemoryDataLayer) -> None:
        self.layer = layer
        self.rows = [int(layer.data[0].shape[0])]
        self.sample_shapes = [tuple(a.shape[1:]) for a in layer.data]
        self.total = self.rows[0]

    def describe(self, f: int) -> str:
        return "the in-memory data"

    def open(self, f: int) -> _Opened:
        return _Opened(self.layer.data)  # live: whatever the arrays hold now


def read_source_list(source: str | os.PathLike, fail: Callable[[str], Exception] = ValueError) -> list[str]:
    """The HDF5 paths listed in the text file ``source``, one per line (blank lines and surrounding
    spaces ignored, ``~`` expanded), as absolute paths: a relative entry is looked up in the current
    directory (Mocha), then next to the list. Problems raise ``fail(message)`` (the data layers pass
    their ``fail``, so the message names the layer)."""
    source = os.fspath(source)
    if not os.path.isfile(source):
        raise fail(f"source file {source!r} does not exist")
    try:
        with open(source, encoding="utf-8") as f:
            entries = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as err:
        raise fail(f"cannot read the source file {source!r}: {err}") from err
    entries = [e for e in entries if e]
    if not entries:
        raise fail(f"source file {source!r} lists no HDF5 files")
    folder = os.path.dirname(os.path.abspath(source))
    paths = []
    for entry in entries:
        entry = os.path.expanduser(entry)
        candidates = [entry] if os.path.isabs(entry) else [os.path.abspath(entry), os.path.join(folder, entry)]
        found = next((c for c in candidates if os.path.isfile(c)), None)
        if found is None:
            raise fail(f"HDF5 file {entry!r} listed in {source!r} does not exist "
                       f"(looked for {' and '.join(repr(c) for c in candidates)})")
        paths.append(os.path.abspath(found))
    return paths


def _open_hdf5(layer: Layer, path: str) -> Any:
    import h5py

    if not os.path.isfile(path):
        raise layer.fail(f"HDF5 file {path!r} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise layer.fail(f"cannot read HDF5 file {path!r}: it is truncated, corrupt or not HDF5 ({err})") from err


class _HDF5Source:
    """The files of an HDF5 data layer, checked at setup: every file has a float dataset per top,
    the datasets of a file hold the same number of samples, and a top's sample shape is the same in
    every file."""

    def __init__(self, layer: HDF5DataLayer) -> None:
        import h5py

        self.layer = layer
        self.paths = read_source_list(layer.source, layer.fail)
        self.rows: list[int] = []
        self.sample_shapes: list[tuple[int, ...]] = []
        for path in self.paths:
            with _open_hdf5(layer, path) as f:
                counts: dict[str, int] = {}
                for k, top in enumerate(layer.tops):
                    try:
                        dset = f.get(top)
                    except (OSError, KeyError) as err:  # a damaged object header
                        raise layer.fail(f"cannot read dataset {top!r} in HDF5 file {path!r}: {err}") from err
                    if not isinstance(dset, h5py.Dataset):
                        raise layer.fail(f"HDF5 file {path!r} has no dataset {top!r} (a top of the layer); "
                                         f"it has {sorted(f.keys())}")
                    if dset.dtype.kind != "f":
                        raise layer.fail(f"dataset {top!r} in HDF5 file {path!r} has dtype {dset.dtype}; only "
                                         f"float data is supported (store class labels as floats)")
                    if dset.ndim < 1:
                        raise layer.fail(f"dataset {top!r} in HDF5 file {path!r} is a scalar; samples must lie "
                                         f"along its first axis")
                    shape = tuple(int(d) for d in dset.shape[1:])
                    if len(self.sample_shapes) <= k:
                        self.sample_shapes.append(shape)
                    elif shape != self.sample_shapes[k]:
                        raise layer.fail(f"dataset {top!r} in HDF5 file {path!r} has samples of shape {shape}, but "
                                         f"in {self.paths[0]!r} they have shape {self.sample_shapes[k]}")
                    counts[top] = int(dset.shape[0])
                if len(set(counts.values())) != 1:
                    raise layer.fail(f"the datasets of HDF5 file {path!r} hold different numbers of samples: {counts}")
                if not counts[layer.tops[0]]:
                    raise layer.fail(f"HDF5 file {path!r} holds no samples")
                self.rows.append(counts[layer.tops[0]])
        self.total = sum(self.rows)

    def describe(self, f: int) -> str:
        return f"HDF5 file {self.paths[f]!r}"

    def open(self, f: int) -> _Opened:
        handle = _open_hdf5(self.layer, self.paths[f])
        try:
            return _Opened([handle[top] for top in self.layer.tops], handle)
        except (KeyError, OSError) as err:
            handle.close()
            raise self.layer.fail(f"cannot read the datasets {list(self.layer.tops)} of {self.describe(f)}: "
                                  f"{err}") from err


# --- plans: the order of the samples in an epoch --------------------------------------------------


@dataclass(frozen=True)
class _Segment:
    """Rows ``[start, stop)`` of source file ``file``, read in order or permuted by ``shuffle_key``."""

    file: int
    start: int
    stop: int
    shuffle_key: tuple[int, ...] | None = None

    @property
    def size(self) -> int:
        return self.stop - self.start

    def permutation(self, seed: int) -> np.ndarray | None:
        """The order of the rows inside the segment (None: natural order)."""
        if self.shuffle_key is None:
            return None
        return _stream(seed, *self.shuffle_key).permutation(self.size)


Plan = Callable[[int, int], list[_Segment]]  # (seed, epoch) -> segments of that epoch


def _whole_file_plan(source: Any, shuffle: bool) -> Plan:
    """Each file is one segment; with shuffle the file order is fixed by the seed and the rows of each
    file are permuted afresh at every epoch."""

    def plan(seed: int, epoch: int) -> list[_Segment]:
        n = len(source.rows)
        order = _stream(seed, _FILE_ORDER).permutation(n) if shuffle else range(n)
        return [_Segment(int(f), 0, source.rows[f], (_ROW_ORDER, epoch, pos) if shuffle else None)
                for pos, f in enumerate(order)]

    return plan


def _chunked_plan(source: Any, shuffle: bool, chunk_size: int) -> Plan:
    """Files cut into chunks of ``chunk_size`` samples; with shuffle every epoch permutes the file order,
    the chunk order inside each file and the samples inside each chunk."""

    def plan(seed: int, epoch: int) -> list[_Segment]:
        n = len(source.rows)
        files = _stream(seed, _FILE_ORDER, epoch).permutation(n) if shuffle else range(n)
        segments = []
        for pos, f in enumerate(files):
            rows = source.rows[f]
            starts = range(0, rows, chunk_size)
            chunks = _stream(seed, _CHUNK_ORDER, epoch, pos).permutation(len(starts)) if shuffle else range(len(starts))
            for c_pos, c in enumerate(chunks):
                start = starts[c]
                segments.append(_Segment(int(f), start, min(start + chunk_size, rows),
                                         (_ROW_ORDER, epoch, pos, c_pos) if shuffle else None))
        return segments

    return plan


# --- the reader: cuts batches from the stream ------------------------------------------------------


class _BatchReader:
    """Reads the sample stream of ``source`` from position ``(epoch, offset)`` batch after batch.

    ``preload`` reads a whole segment at once (the chunked asynchronous layer); otherwise each batch
    reads just its rows (a slice, or a sorted index list when shuffled).
    """

    def __init__(self, layer: Layer, source: Any, plan: Plan, seed: int, batch_size: int,
                 epoch: int = 0, offset: int = 0, preload: bool = False) -> None:
        self.layer = layer
        self.source = source
        self.plan = plan
        self.seed = seed
        self.batch_size = batch_size
        self.epoch = epoch
        self.offset = offset  # samples of the current epoch already read
        self.preload = preload
        self._plan_epoch: int | None = None
        self._segments: list[_Segment] = []
        self._ends = np.zeros(0, np.int64)
        self._opened: _Opened | None = None
        self._opened_file: int | None = None
        self._rows_key: tuple[int, int] | None = None  # (epoch, segment) of the cached rows / permutation
        self._rows_cache: Any = None

    def read_batch(self, out: list[np.ndarray]) -> None:
        """Fill ``out[k][:batch_size]`` (one array per top) with the next batch; advance the position."""
        filled = 0
        while filled < self.batch_size:
            index, segment, inner = self._locate()
            take = min(self.batch_size - filled, segment.size - inner)
            for buffer, rows in zip(out, self._rows(index, segment, inner, take)):
                buffer[filled:filled + take] = rows
            filled += take
            self.offset += take
            if self.offset == self.source.total:  # read the last sample of the pass
                self.epoch += 1
                self.offset = 0

    def _locate(self) -> tuple[int, _Segment, int]:
        """The segment holding the current position and the position inside it."""
        if self._plan_epoch != self.epoch:
            self._segments = self.plan(self.seed, self.epoch)
            self._ends = np.cumsum([s.size for s in self._segments])
            self._plan_epoch = self.epoch
        index = int(np.searchsorted(self._ends, self.offset, side="right"))
        start = int(self._ends[index - 1]) if index else 0
        return index, self._segments[index], self.offset - start

    def _arrays(self, f: int) -> Sequence[Any]:
        if self._opened_file != f:
            self.close()
            self._opened = self.source.open(f)
            self._opened_file = f
        return self._opened.arrays

    def _read(self, f: int, array: Any, selection: Any) -> np.ndarray:
        try:
            return np.asarray(array[selection])
        except OSError as err:
            raise self.layer.fail(f"cannot read {self.source.describe(f)}: it is truncated or corrupt ({err})") \
                from err

    def _rows(self, index: int, segment: _Segment, inner: int, take: int) -> list[np.ndarray]:
        """Rows ``inner .. inner + take`` of the segment (in its shuffled order), one array per top."""
        key = (self.epoch, index)
        if self.preload:
            if self._rows_key != key:
                arrays = self._arrays(segment.file)
                chunk = [self._read(segment.file, a, slice(segment.start, segment.stop)) for a in arrays]
                permutation = segment.permutation(self.seed)
                self._rows_cache = chunk if permutation is None else [c[permutation] for c in chunk]
                self._rows_key = key
            return [c[inner:inner + take] for c in self._rows_cache]
        if self._rows_key != key:
            self._rows_cache = segment.permutation(self.seed)
            self._rows_key = key
        permutation = self._rows_cache
        arrays = self._arrays(segment.file)
        if permutation is None:
            selection = slice(segment.start + inner, segment.start + inner + take)
            return [self._read(segment.file, a, selection) for a in arrays]
        wanted = segment.start + permutation[inner:inner + take]
        order = np.argsort(wanted)  # HDF5 point selections must be increasing
        result = []
        for a in arrays:
            block = self._read(segment.file, a, wanted[order])
            rows = np.empty_like(block)
            rows[order] = block
            result.append(rows)
        return result

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
        self._opened = None
        self._opened_file = None


# --- layer states ----------------------------------------------------------------------------------


class DataLayerState(LayerState):
    """A data layer set up on a backend: one blob per top, refilled by every forward.

    ``epoch`` counts completed passes over the data; ``position_state()`` / ``restore_position(d)``
    save and restore the exact read position and shuffle state.
    """

    def __init__(self, layer: _DataLayer, backend: Any, source: Any, plan: Plan) -> None:
        shapes = [(layer.batch_size, *shape) for shape in source.sample_shapes]
        blobs = [Blob.empty(backend, shape, top) for shape, top in zip(shapes, layer.tops)]
        super().__init__(layer, backend, blobs)
        self.source = source
        self.plan = plan
        self.seed = int(backend.rng.integers(2**63)) if layer.shuffle else 0
        self.transformer_states = self._setup_transformers(layer, backend, source.sample_shapes)
        self.buffers = [np.empty(shape, backend.dtype) for shape in shapes]  # host batches
        self._start(0, 0)

    @staticmethod
    def _setup_transformers(layer: _DataLayer, backend: Any,
                            sample_shapes: list[tuple[int, ...]]) -> list[list[TransformerState]]:
        states = []
        for top, shape in zip(layer.tops, sample_shapes):
            per_top = []
            for name, transformer in layer.transformers:
                if name != top:
                    continue
                try:
                    per_top.append(transformer.setup(backend, shape, backend.dtype))
                except (ValueError, OSError) as err:
                    raise layer.fail(f"transformer {type(transformer).__name__} for top {top!r}: {err}") from err
            states.append(per_top)
        return states

    def _transform(self, batches: list[np.ndarray]) -> None:
        for batch, states in zip(batches, self.transformer_states):
            for state in states:
                state.forward(batch)

    # --- reading (overridden by the asynchronous layer) -------------------------------------------
    def _start(self, epoch: int, offset: int) -> None:
        self.reader = _BatchReader(self.layer, self.source, self.plan, self.seed, self.layer.batch_size,
                                   epoch, offset)

    def _stop(self) -> None:
        self.reader.close()

    @property
    def epoch(self) -> int:
        """Completed passes over the data."""
        return self.reader.epoch

    @property
    def offset(self) -> int:
        """Samples of the current pass already served."""
        return self.reader.offset

    def forward(self, inputs: list[Blob]) -> None:
        self.reader.read_batch(self.buffers)
        self._transform(self.buffers)
        for blob, buffer in zip(self.blobs, self.buffers):
            blob.copy_from(buffer)

    # --- position ----------------------------------------------------------------------------------
    def position_state(self) -> dict[str, int]:
        """The read position and shuffle state: plain ints ``epoch``, ``offset``, ``seed``, ``n_samples``."""
        return {"epoch": int(self.epoch), "offset": int(self.offset), "seed": int(self.seed),
                "n_samples": int(self.source.total)}

    def restore_position(self, position: dict[str, Any]) -> None:
        """Continue from a :meth:`position_state` of this layer (same data): the next batches are the
        ones the saved layer would have served."""
        try:
            epoch, offset, seed, n_samples = (int(np.asarray(position[k]).item())
                                              for k in ("epoch", "offset", "seed", "n_samples"))
        except (KeyError, TypeError, ValueError) as err:
            raise self.layer.fail(f"invalid position state {position!r}: needs integer epoch, offset, seed "
                                  f"and n_samples") from err
        if n_samples != self.source.total:
            raise self.layer.fail(f"the position state is for {n_samples} samples, but the data has "
                                  f"{self.source.total}")
        if epoch < 0 or not 0 <= offset < n_samples or seed < 0:
            raise self.layer.fail(f"invalid position state {position!r}")
        self._stop()
        self.seed = seed
        self._start(epoch, offset)

    def shutdown(self) -> None:
        self._stop()
        for states in self.transformer_states:
            for state in states:
                state.shutdown()


class _Producer:
    """The reading thread of the asynchronous layer: fills a bounded queue with finished batches
    (lists of host arrays, transformed) or, on failure, the exception, then stops.

    It holds no reference to the layer state, so an abandoned state can be garbage-collected (a
    finalizer then stops the thread).
    """

    def __init__(self, reader: _BatchReader, shapes: list[tuple[int, ...]], dtype: str,
                 transform: Callable[[list[np.ndarray]], None], depth: int, name: str) -> None:
        self.reader = reader
        self.shapes = shapes
        self.dtype = dtype
        self.transform = transform
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"mocha-triton-data-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                batch = [np.empty(shape, self.dtype) for shape in self.shapes]
                self.reader.read_batch(batch)
                self.transform(batch)
                self._put(batch)
        except BaseException as err:  # noqa: B036 - handed to the consumer, which re-raises it
            self._put(err)
        finally:
            self.reader.close()

    def _put(self, item: Any) -> None:
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def get(self) -> Any:
        """The next batch or exception; raises RuntimeError if the thread ended without one."""
        while True:
            try:
                return self.queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not self.thread.is_alive() and self.queue.empty():
                    raise RuntimeError("the reading thread has stopped") from None

    def stop(self, timeout: float = STOP_JOIN_TIMEOUT_S) -> None:
        """Ask the thread to stop and wait for it (at most ``timeout`` seconds)."""
        self.stopping.set()
        if self.thread is threading.current_thread():
            return
        self.thread.join(timeout)
        if self.thread.is_alive():  # pragma: no cover - a read that takes longer than the timeout
            warnings.warn(f"{self.thread.name}: the reading thread did not stop within {timeout} s; it will "
                          f"exit after its current read", RuntimeWarning, stacklevel=2)
        while not self.queue.empty():  # drop prefetched batches
            try:
                self.queue.get_nowait()
            except queue.Empty:  # pragma: no cover
                break


class AsyncDataLayerState(DataLayerState):
    """State of :class:`AsyncHDF5DataLayer`: batches come from a :class:`_Producer` thread.

    The position (``epoch``, ``offset``) is the consumer's: it advances by one batch per forward, so
    ``epoch`` does not run ahead of training (Mocha counted it in the reading task). Restoring a
    position restarts the thread there.
    """

    _producer: _Producer | None = None

    def _start(self, epoch: int, offset: int) -> None:
        self._epoch, self._offset = epoch, offset
        self._error: BaseException | None = None
        reader = _BatchReader(self.layer, self.source, self.plan, self.seed, self.layer.batch_size,
                              epoch, offset, preload=True)
        self._producer = _Producer(reader, [b.shape for b in self.buffers], self.backend.dtype, self._transform_fn(),
                                   self.layer.prefetch, self.layer.name)
        self._finalizer = weakref.finalize(self, self._producer.stop)

    def _transform_fn(self) -> Callable[[list[np.ndarray]], None]:
        """The transform step for the thread, bound to the transformer states, not to ``self``."""
        states = self.transformer_states

        def transform(batches: list[np.ndarray]) -> None:
            for batch, per_top in zip(batches, states):
                for state in per_top:
                    state.forward(batch)

        return transform

    def _stop(self) -> None:
        if self._producer is not None:
            self._finalizer.detach()
            self._producer.stop()
            self._producer = None

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def offset(self) -> int:
        return self._offset

    def forward(self, inputs: list[Blob]) -> None:
        if self._error is not None:
            raise self._error
        if self._producer is None:
            raise self.layer.fail("the layer has been shut down")
        try:
            item = self._producer.get()
        except RuntimeError as err:
            self._error = self.layer.fail(f"the reading thread stopped unexpectedly: {err}")
            raise self._error from err
        if isinstance(item, BaseException):
            self._error = item if isinstance(item, LayerError) else self.layer.fail(
                f"the reading thread failed: {type(item).__name__}: {item}")
            if self._error is item:
                raise item
            raise self._error from item
        for blob, batch in zip(self.blobs, item):
            blob.copy_from(batch)
        self._offset += self.layer.batch_size
        self._epoch += self._offset // self.source.total
        self._offset %= self.source.total


__all__ = ["AsyncDataLayerState", "AsyncHDF5DataLayer", "DataLayerState", "HDF5DataLayer", "MemoryDataLayer",
           "read_source_list"]
