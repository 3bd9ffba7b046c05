"""Index and output layers: ArgmaxLayer, Index2OnehotLayer, MemoryOutputLayer and HDF5OutputLayer.

* :class:`ArgmaxLayer` — each bottom gives a top holding the 0-based index of the maximum along the axis
  ``dim``, as a float of the bottom's dtype, with size 1 along that axis. Ties go to the first index (as
  Mocha's loop; Caffe's ArgMax picks the last); a NaN counts as the maximum. No backward.
* :class:`Index2OnehotLayer` — each bottom holds class indices (size 1 along ``dim``); its top holds their
  one-hot encoding, ``n_class`` long along ``dim``. A label outside ``[0, n_class)`` or not integral is
  an error naming the layer. No backward.
* :class:`MemoryOutputLayer` — a sink: every forward appends a host NumPy copy of each bottom to
  ``state.outputs[i]``; ``state.reset()`` empties the lists (Mocha's ``reset``).
* :class:`HDF5OutputLayer` — a sink: every forward appends each bottom's batch along axis 0 to an
  extendible, chunked dataset of an HDF5 file (named like the bottom, or by ``datasets``). The file is
  created at setup (an existing file is refused unless ``force_overwrite``) and closed by
  ``state.shutdown()``, which ``Net.destroy()`` calls.

The axis ``dim``
----------------
``dim`` is a Python axis of the bottom (negative counts from the end), and must not be the batch axis 0.
Mocha counts Julia's reversed axes: its default ``dim=-2`` ("the penultimate Julia axis") is the channel
axis, Python axis **1**, our default. In general Mocha's ``dim=-k`` is Python axis ``k - 1``, and Mocha's
positive ``dim=j`` is Python axis ``ndim - j``. The layers view each bottom as ``(pre, C, post)`` around
that axis (a reshape of contiguous memory, no copy), which is the ``(N, C, *S)`` layout the ``index`` ops
of the contract work on.
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from mocha_triton.blob import Blob
from mocha_triton.layers.base import Layer, LayerError, LayerState, as_int

__all__ = [
    "ArgmaxLayer", "ArgmaxState", "HDF5OutputLayer", "HDF5OutputState", "Index2OnehotLayer", "Index2OnehotState",
    "MemoryOutputLayer", "MemoryOutputState",
]


# --- shared helpers ------------------------------------------------------------------------------------


def _one_top_per_bottom(layer: Layer) -> None:
    if not layer.bottoms or len(layer.bottoms) != len(layer.tops):
        raise layer.fail(f"needs one top per bottom, got bottoms {layer.bottoms} and tops {layer.tops}")


def _check_inputs(layer: Layer, inputs: list[Blob]) -> None:
    if len(inputs) != len(layer.bottoms):
        raise layer.fail(f"got {len(inputs)} input blobs for bottoms {layer.bottoms}")


def _split_around(layer: Layer, bottom: str, shape: tuple[int, ...], dim: int) -> tuple[int, int, int, int]:
    """(axis, pre, size along the axis, post) of a bottom of ``shape``, for the Python axis ``dim``."""
    ndim = len(shape)
    if not -ndim <= dim < ndim:
        raise layer.fail(f"dim {dim} is out of range for bottom {bottom!r} of shape {shape}")
    axis = dim % ndim
    if axis == 0:
        raise layer.fail(f"dim {dim} is the batch axis of bottom {bottom!r} (shape {shape}); it must be another axis")
    return axis, math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def _run_op(state: LayerState, bottom: str, op: str, *args: Any) -> None:
    """``state.ops.<op>(*args)`` on ``bottom``; the op's bad-input errors become errors naming the layer
    and the bottom."""
    try:
        getattr(state.ops, op)(*args)
    except (ValueError, TypeError) as err:
        if isinstance(err, LayerError):
            raise
        raise state.layer.fail(f"bottom {bottom!r}: {err}") from err


# --- Argmax ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ArgmaxLayer(Layer):
    """The index of the maximum along the Python axis ``dim`` (default 1, Mocha's ``dim=-2``), as a float."""

    name: str = "argmax"
    dim: int = 1

    def validate(self) -> None:
        object.__setattr__(self, "dim", as_int(self, "dim", self.dim))
        _one_top_per_bottom(self)

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None], phase: str = "train") -> ArgmaxState:
        _check_inputs(self, inputs)
        views, blobs = [], []
        for bottom, top, x in zip(self.bottoms, self.tops, inputs):
            axis, pre, c, post = _split_around(self, bottom, x.shape, self.dim)
            if c == 0:
                raise self.fail(f"bottom {bottom!r} of shape {x.shape} has no values along dim {self.dim}")
            y = Blob.empty(backend, (*x.shape[:axis], 1, *x.shape[axis + 1:]), top, dtype=x.dtype)
            blobs.append(y)
            views.append(((pre, c, post), y.reshape(pre, 1, post)))
        return ArgmaxState(self, backend, blobs, views)


class _AxisViewState(LayerState):
    """A state whose ops see bottom i with the 3-D shape ``views[i][0]`` and top i as the view ``views[i][1]``."""

    def __init__(self, layer: Layer, backend: Any, blobs: list[Blob],
                 views: list[tuple[tuple[int, ...], Blob]]) -> None:
        super().__init__(layer, backend, blobs)
        self.views = views


class ArgmaxState(_AxisViewState):
    """Tops: the indices. ``views[i]``: the ``(pre, C, post)`` shape bottom i is seen with and the
    ``(pre, 1, post)`` view of top i."""

    def forward(self, inputs: list[Blob]) -> None:
        for bottom, x, (shape, y) in zip(self.layer.bottoms, inputs, self.views):
            _run_op(self, bottom, "argmax_forward", x.reshape(shape).data, y.data)


# --- Index2Onehot ----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Index2OnehotLayer(Layer):
    """Class indices (size 1 along the Python axis ``dim``) to one-hot vectors of ``n_class`` along ``dim``."""

    name: str = "index2onehot"
    dim: int = 1
    n_class: int

    def validate(self) -> None:
        object.__setattr__(self, "dim", as_int(self, "dim", self.dim))
        n_class = self.n_class
        if isinstance(n_class, bool) or not isinstance(n_class, numbers.Integral) or n_class < 1:
            raise self.fail(f"n_class must be a positive int, got {n_class!r}")
        object.__setattr__(self, "n_class", int(n_class))
        _one_top_per_bottom(self)

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> Index2OnehotState:
        _check_inputs(self, inputs)
        views, blobs = [], []
        for bottom, top, label in zip(self.bottoms, self.tops, inputs):
            axis, pre, size, post = _split_around(self, bottom, label.shape, self.dim)
            if size != 1:
                raise self.fail(f"bottom {bottom!r} of shape {label.shape} must have size 1 along dim {self.dim} "
                                f"(one class index per position), got {size}")
            # Float labels give tops of their dtype; integer labels (int32/int64) the backend's float dtype.
            dtype = label.dtype if label.dtype in ("float32", "float64") else backend.dtype
            y = Blob.empty(backend, (*label.shape[:axis], self.n_class, *label.shape[axis + 1:]), top, dtype=dtype)
            blobs.append(y)
            views.append(((pre, 1, post), y.reshape(pre, self.n_class, post)))
        return Index2OnehotState(self, backend, blobs, views)


class Index2OnehotState(_AxisViewState):
    """Tops: the one-hot encodings. ``views[i]``: the ``(pre, 1, post)`` shape of label i and the
    ``(pre, n_class, post)`` view of top i."""

    def forward(self, inputs: list[Blob]) -> None:
        for bottom, label, (shape, y) in zip(self.layer.bottoms, inputs, self.views):
            _run_op(self, bottom, "index_to_onehot", label.reshape(shape).data, y.data)


# --- MemoryOutput ----------------------------------------------------------------------------------------


def _check_sink(layer: Layer) -> None:
    if not layer.bottoms:
        raise layer.fail("needs at least one bottom")
    if layer.tops:
        raise layer.fail(f"is a sink and takes no tops, got {layer.tops}")


@dataclass(frozen=True, kw_only=True)
class MemoryOutputLayer(Layer):
    """Keeps a host copy of every bottom at every forward: ``state.outputs[i]`` lists bottom i's batches."""

    name: str = "memory-output"

    is_sink = True

    def validate(self) -> None:
        _check_sink(self)

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> MemoryOutputState:
        _check_inputs(self, inputs)
        return MemoryOutputState(self, backend)


class MemoryOutputState(LayerState):
    """``outputs[i]`` is a list of NumPy arrays, one per forward since the last :meth:`reset`, each a copy
    of bottom i."""

    def __init__(self, layer: MemoryOutputLayer, backend: Any) -> None:
        super().__init__(layer, backend)
        self.outputs: list[list[np.ndarray]] = [[] for _ in layer.bottoms]

    def forward(self, inputs: list[Blob]) -> None:
        for kept, x in zip(self.outputs, inputs):
            kept.append(x.to_numpy())

    def reset(self) -> None:
        """Forget every kept batch (Mocha's ``reset(state)``)."""
        for kept in self.outputs:
            kept.clear()


# --- HDF5Output ------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class HDF5OutputLayer(Layer):
    """Appends every forward's bottoms to the datasets of the HDF5 file ``filename``, along axis 0.

    ``datasets`` names the dataset of each bottom (default: the bottom names; a ``/`` in a name makes
    groups, as in h5py). An existing ``filename`` is an error unless ``force_overwrite``, which replaces it.
    Each dataset has the bottom's dtype, shape ``(forwards * N, *sample_shape)``, no size limit along
    axis 0 and one chunk per batch (Mocha's layout), so h5py reads the whole history as one array.
    """

    name: str = "hdf5-output"
    filename: str
    datasets: tuple[str, ...] = ()
    force_overwrite: bool = False

    is_sink = True

    def validate(self) -> None:
        _check_sink(self)
        if not isinstance(self.filename, (str, os.PathLike)) or not os.fspath(self.filename):
            raise self.fail(f"filename must be a non-empty path, got {self.filename!r}")
        object.__setattr__(self, "filename", os.fspath(self.filename))
        if not isinstance(self.force_overwrite, bool):
            raise self.fail(f"force_overwrite must be a bool, got {self.force_overwrite!r}")
        if isinstance(self.datasets, str):
            raise self.fail(f"datasets must be a list of names (one per bottom), got the string {self.datasets!r}")
        datasets = tuple(self.datasets or ())
        if datasets and len(datasets) != len(self.bottoms):
            raise self.fail(f"datasets must name one dataset per bottom {self.bottoms}, got {datasets}")
        if not all(isinstance(d, str) and d.strip("/") for d in datasets):
            raise self.fail(f"datasets must be non-empty names, got {datasets}")
        object.__setattr__(self, "datasets", datasets)
        names = self.dataset_names
        if len(set(names)) != len(names):
            raise self.fail(f"two bottoms would write the same dataset: {names}")

    @property
    def dataset_names(self) -> tuple[str, ...]:
        """The dataset written for each bottom."""
        return self.datasets or self.bottoms

    def setup(self, backend: Any, inputs: list[Blob], diffs: list[Blob | None],
              phase: str = "train") -> HDF5OutputState:
        _check_inputs(self, inputs)
        for bottom, x in zip(self.bottoms, inputs):
            if x.ndim < 1 or 0 in x.shape:
                raise self.fail(f"bottom {bottom!r} has shape {x.shape}; it needs a batch axis and no empty axes")
        if os.path.exists(self.filename) and not self.force_overwrite:
            raise self.fail(f"output file {self.filename!r} already exists; pass force_overwrite=True to replace it")
        try:
            file = h5py.File(self.filename, "w")
        except OSError as err:
            raise self.fail(f"cannot create output file {self.filename!r}: {err}") from err
        try:
            datasets = [file.create_dataset(name, shape=(0, *x.shape[1:]), maxshape=(None, *x.shape[1:]),
                                            chunks=x.shape, dtype=x.dtype)
                        for name, x in zip(self.dataset_names, inputs)]
        except (ValueError, TypeError) as err:
            file.close()
            raise self.fail(f"cannot create the datasets {self.dataset_names} in {self.filename!r}: {err}") from err
        return HDF5OutputState(self, backend, file, datasets)


class HDF5OutputState(LayerState):
    """The open file (``file``, None once shut down) and one dataset per bottom (``datasets``)."""

    def __init__(self, layer: HDF5OutputLayer, backend: Any, file: h5py.File, datasets: list[h5py.Dataset]) -> None:
        super().__init__(layer, backend)
        self.file: h5py.File | None = file
        self.datasets = datasets

    def forward(self, inputs: list[Blob]) -> None:
        if self.file is None:
            raise self.layer.fail(f"output file {self.layer.filename!r} is closed (the state was shut down)")
        for dataset, x in zip(self.datasets, inputs):
            batch = x.to_numpy()
            start = dataset.shape[0]
            dataset.resize(start + batch.shape[0], axis=0)
            dataset[start:] = batch
        self.file.flush()  # what is written is readable even if the process dies before shutdown

    def shutdown(self) -> None:
        """Close the file (idempotent)."""
        if self.file is not None:
            self.file.close()
            self.file = None
