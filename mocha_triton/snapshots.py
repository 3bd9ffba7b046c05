"""Snapshots and model files: plain HDF5 that h5py reads, written atomically.

**Snapshot** (``snapshot-%06d.h5``, written by the :class:`~mocha_triton.coffee.Snapshot` break) holds
everything needed to continue training bit for bit::

    /                     attrs: format="mocha-triton-snapshot", version, net
    params/<layer>/<i>_<param name>      every parameter of every layer (e.g. params/ip1/0_weight)
    solver/               attrs: iteration, obj_val, learning_rate, momentum, losses (JSON)
    solver/<state name>/<layer>/<i>  the solver method's state of each trainable parameter
                          (SolverMethod.state_names: momentum_history for SGD and Nesterov,
                          first_moment and second_moment for Adam, ...)
    rng/                  attrs: bit_generator (JSON of backend.rng's state), random_seed, random_offset
    data/<layer>/...      each data layer's position_state() (read position, epoch, shuffle state)
    validation_data/<test net>/<layer>/...   the same for the data layers of the validation test nets
                          (version 2; a version-1 file has no such group and still loads)

The solver's iteration ends with a forward pass whose activations the next backward pass needs. So the
data positions and RNG state saved are those from *just before* that forward (the solver records them
in ``state.resume_point``); resuming restores them and runs the same forward again, which reproduces
the activations, the objective and the data position exactly.

The validation test nets follow the same rule one level up: a resume runs the coffee breaks due at the
resume iteration again, so the positions saved for a test net are those from *before* that iteration's
round of coffee breaks (see :meth:`~mocha_triton.coffee.CoffeeLounge.validation_positions`); the coffee
lounge restores them when training resumes, and every later validation sees the same samples as in an
uninterrupted run (which matters when the test batch size does not divide the test set).

Layer and parameter names are used as HDF5 names with ``%`` and ``/`` percent-encoded.

**Flat model files** (Mocha's ``load_network`` format, also what Caffe's ``dump_network_hdf5`` writes):
one dataset per parameter named ``<layer>___<param>`` (three underscores), e.g. ``conv1___filter``,
``ip1___weight``, ``ip1___bias``. :func:`export_flat_weights` writes them, :func:`load_flat_weights`
reads them (shapes may differ by singleton dimensions, like Caffe's 4-D inner-product weights).

Every write goes to a temporary file in the target folder first, then ``os.replace`` renames it: a
crash mid-write never leaves a partial ``snapshot-*.h5`` (or model file) behind.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np

__all__ = [
    "SNAPSHOT_FORMAT", "SnapshotError", "atomic_h5_file", "capture_data_positions", "capture_resume_point",
    "export_flat_weights", "from_h5_name", "h5_name", "is_snapshot_file", "latest_snapshot", "load_flat_weights",
    "load_snapshot", "load_validation_positions", "open_h5", "resolve_load_from", "restore_data_positions",
    "restore_resume_point", "save_snapshot", "snapshot_path",
]

SNAPSHOT_FORMAT = "mocha-triton-snapshot"
SNAPSHOT_VERSION = 2  # 2 added validation_data/
SNAPSHOT_PATTERN = re.compile(r"^snapshot-(\d+)\.h5$")
FLAT_SEPARATOR = "___"


class SnapshotError(ValueError):
    """A snapshot or model file cannot be used; the message names the file and the problem."""


# --- small helpers --------------------------------------------------------------------------------


def h5_name(name: str) -> str:
    """A layer/parameter name as one HDF5 path component ('/' and '%' percent-encoded)."""
    return name.replace("%", "%25").replace("/", "%2F")


def from_h5_name(name: str) -> str:
    return name.replace("%2F", "/").replace("%25", "%")


@contextlib.contextmanager
def atomic_h5_file(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing that appears at ``path`` only once completely written.

    Writes go to a hidden temporary file in the same folder (created if needed); on success it is
    flushed to disk and renamed over ``path`` with ``os.replace`` (atomic on POSIX and Windows). On any
    error the temporary file is removed and ``path`` is untouched.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def open_h5(path: str | os.PathLike, what: str) -> Iterator[h5py.File]:
    """Open an HDF5 file; a missing file or a corrupt one raises an error naming it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file {path!r} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise SnapshotError(f"{what} file {path!r} is not a readable HDF5 file (corrupt or truncated?): {exc}") \
            from exc
    try:
        yield f
    except (KeyError, OSError, TypeError) as exc:  # damaged content (missing objects, bad data)
        raise SnapshotError(f"{what} file {path!r} is damaged or incomplete: {exc}") from exc
    finally:
        f.close()


def _similar_shape(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """Equal shapes, or equal once singleton dimensions are dropped (Mocha/Caffe tolerate padding)."""
    return tuple(a) == tuple(b) or tuple(s for s in a if s != 1) == tuple(s for s in b if s != 1)


def _parameter_layers(net: Any) -> list[Any]:
    """Layer states that hold parameters, in net order."""
    return [state for state in net.states if state.parameters]


def _data_states(net: Any) -> list[Any]:
    """Data-layer states whose read position can be saved and restored."""
    return [state for state in net.states if state.layer.is_source and hasattr(state, "position_state")]


# --- plain-value trees (data-layer positions) ---------------------------------------------------------


def _write_tree(group: h5py.Group, tree: dict[str, Any]) -> None:
    """Store a dict of ints/floats/strings/lists/arrays/nested dicts: scalars as one JSON attribute,
    arrays and numeric lists as datasets, nested dicts as sub-groups."""
    scalars: dict[str, Any] = {}
    for key, value in tree.items():
        if not isinstance(key, str):
            raise TypeError(f"position_state keys must be strings, got {key!r}")
        name = h5_name(key)
        if isinstance(value, dict):
            _write_tree(group.create_group(name), value)
        elif isinstance(value, np.ndarray):
            group.create_dataset(name, data=value).attrs["kind"] = "array"
        elif isinstance(value, (list, tuple)):
            array = np.asarray(value)
            if array.dtype.kind in "biuf" and array.ndim >= 1:
                group.create_dataset(name, data=array).attrs["kind"] = type(value).__name__
            else:
                scalars[key] = {"__json__": type(value).__name__, "value": json.dumps(value)}
        elif isinstance(value, np.generic):
            scalars[key] = value.item()
        elif value is None or isinstance(value, (bool, int, float, str)):
            scalars[key] = value
        else:
            raise TypeError(f"position_state value for {key!r} has unsupported type {type(value).__name__}")
    group.attrs["scalars"] = json.dumps(scalars)


def _read_tree(group: h5py.Group) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in json.loads(group.attrs.get("scalars", "{}")).items():
        if isinstance(value, dict) and "__json__" in value:
            decoded = json.loads(value["value"])
            value = tuple(decoded) if value["__json__"] == "tuple" else decoded
        tree[key] = value
    for name, item in group.items():
        key = from_h5_name(name)
        if isinstance(item, h5py.Group):
            tree[key] = _read_tree(item)
        else:
            kind = item.attrs.get("kind", "array")
            array = item[()]
            tree[key] = array.tolist() if kind == "list" else tuple(array.tolist()) if kind == "tuple" else array
    return tree


# --- resume points: data positions and RNG state --------------------------------------------------


def capture_data_positions(net: Any) -> dict[str, Any]:
    """``{data layer name: position_state()}`` for every data layer of ``net``, copied."""
    return {state.layer.name: copy.deepcopy(state.position_state()) for state in _data_states(net)}


def restore_data_positions(net: Any, positions: dict[str, Any], source: str = "snapshot") -> None:
    """Put ``net``'s data layers back where ``positions`` (from :func:`capture_data_positions`) says; a
    layer missing from ``positions`` warns and continues from where it is."""
    for state in _data_states(net):
        if state.layer.name in positions:
            state.restore_position(positions[state.layer.name])
        else:
            warnings.warn(f"{source}: no saved read position for data layer {state.layer.name!r} of net "
                          f"{net.name!r}; it continues from where it is", stacklevel=3)


def capture_resume_point(net: Any, backend: Any = None) -> dict[str, Any]:
    """The data positions of ``net`` and its backend's RNG state, copied (cheap; taken before each forward)."""
    backend = backend if backend is not None else net.backend
    return {
        "rng": {"bit_generator": backend.rng.bit_generator.state, "random_seed": int(backend.random_seed),
                "random_offset": int(backend.random_offset)},
        "data": capture_data_positions(net),
    }


def restore_resume_point(net: Any, point: dict[str, Any], source: str = "snapshot") -> None:
    """Put the data layers and the backend RNG back where ``point`` (from capture_resume_point) says."""
    backend = net.backend
    rng = point.get("rng")
    if rng:
        backend.rng.bit_generator.state = rng["bit_generator"]
        backend.random_seed = int(rng["random_seed"])
        backend.random_offset = int(rng["random_offset"])
    restore_data_positions(net, point.get("data", {}), source)


# --- snapshots -----------------------------------------------------------------------------------------


def snapshot_path(directory: str | os.PathLike, iteration: int) -> str:
    """``directory/snapshot-%06d.h5``."""
    return os.path.join(os.fspath(directory), f"snapshot-{int(iteration):06d}.h5")


def latest_snapshot(directory: str | os.PathLike) -> str | None:
    """The ``snapshot-NNNNNN.h5`` in ``directory`` with the highest iteration number, or None."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return None
    found = [(int(m.group(1)), name) for name in os.listdir(directory) if (m := SNAPSHOT_PATTERN.match(name))]
    return os.path.join(directory, max(found)[1]) if found else None


def is_snapshot_file(path: str | os.PathLike) -> bool:
    """True for a mocha-triton snapshot, False for another HDF5 file (e.g. a flat model file)."""
    with open_h5(path, "model") as f:
        return f.attrs.get("format", "") == SNAPSHOT_FORMAT or ("params" in f and "solver" in f)


def resolve_load_from(load_from: str | os.PathLike) -> tuple[str, str] | None:
    """Interpret a solver's ``load_from``: None (train from scratch) or (path, "snapshot" | "flat").

    * ``""`` -> None;
    * a directory -> its newest ``snapshot-*.h5`` by iteration number, or None if it has none (also for
      a directory path that does not exist yet, written with a trailing slash or without extension);
    * a snapshot file -> (path, "snapshot"): parameters and solver state, training continues;
    * another HDF5 file -> (path, "flat"): Mocha's ``<layer>___<param>`` weights only, iteration 0.
    """
    load_from = os.fspath(load_from)
    if not load_from:
        return None
    if os.path.isdir(load_from):
        latest = latest_snapshot(load_from)
        return (latest, "snapshot") if latest else None
    if not os.path.exists(load_from):
        if load_from.endswith(("/", os.sep)) or not os.path.splitext(load_from)[1]:
            return None  # a snapshot directory that does not exist yet: fresh start
        raise FileNotFoundError(f"load_from: file {load_from!r} does not exist")
    return (load_from, "snapshot" if is_snapshot_file(load_from) else "flat")


def save_snapshot(path: str | os.PathLike, net: Any, solver_state: Any, backend: Any = None,
                  validation_positions: dict[str, dict[str, Any]] | None = None) -> str:
    """Write ``net``'s parameters and the full solver state to ``path`` (atomically); returns the path.

    ``solver_state`` is a :class:`~mocha_triton.solvers.SolverState` (or None to save parameters only).
    ``backend`` defaults to ``net.backend``; its RNG state is saved. ``validation_positions`` is
    ``{test net name: capture_data_positions(test net)}`` (the Snapshot coffee break passes
    ``lounge.validation_positions()``); it goes to ``validation_data/``.
    """
    path = os.fspath(path)
    backend = backend if backend is not None else net.backend
    point = getattr(solver_state, "resume_point", None) or capture_resume_point(net, backend)
    with atomic_h5_file(path) as f:
        f.attrs["format"] = SNAPSHOT_FORMAT
        f.attrs["version"] = SNAPSHOT_VERSION
        f.attrs["net"] = net.name
        params = f.create_group("params")
        for state in _parameter_layers(net):
            group = params.create_group(h5_name(state.layer.name))
            for i, param in enumerate(state.parameters):
                group.create_dataset(f"{i}_{h5_name(param.name)}", data=param.blob.to_numpy())
        solver = f.create_group("solver")
        if solver_state is not None:
            for key, value in solver_state.scalars().items():
                solver.attrs[key] = value
            solver.attrs["losses"] = json.dumps(solver_state.losses)
            for group_name, blobs in solver_state.blobs.items():
                group = solver.create_group(group_name)
                for key, blob in blobs.items():
                    layer, index = key.rsplit("/", 1)
                    sub = group.require_group(h5_name(layer))
                    sub.create_dataset(index, data=blob.to_numpy())
        rng = f.create_group("rng")
        rng.attrs["bit_generator"] = json.dumps(point["rng"]["bit_generator"])
        rng.attrs["random_seed"] = point["rng"]["random_seed"]
        rng.attrs["random_offset"] = point["rng"]["random_offset"]
        data = f.create_group("data")
        for name, position in point["data"].items():
            _write_tree(data.create_group(h5_name(name)), position)
        validation = f.create_group("validation_data")
        for net_name, positions in (validation_positions or {}).items():
            group = validation.create_group(h5_name(net_name))
            for name, position in positions.items():
                _write_tree(group.create_group(h5_name(name)), position)
    return path


def _read_params(f: h5py.File, path: str, net: Any, strict: bool) -> list[tuple[Any, np.ndarray]]:
    """Check the file's parameters against ``net``; return (parameter blob, array) pairs to copy."""
    if "params" not in f:
        raise SnapshotError(f"snapshot {path!r} has no 'params' group")
    params = f["params"]
    copies = []
    for state in _parameter_layers(net):
        layer = state.layer.name
        if h5_name(layer) not in params:
            message = f"snapshot {path!r} has no parameters for layer {layer!r} (file has {sorted(params)})"
            if strict:
                raise SnapshotError(message)
            warnings.warn(message + "; keeping its current values", stacklevel=3)
            continue
        group = params[h5_name(layer)]
        stored = {}
        for name in group:
            index, _, pname = name.partition("_")
            stored[int(index)] = (from_h5_name(pname), group[name])
        if len(stored) != len(state.parameters):
            raise SnapshotError(f"snapshot {path!r}: layer {layer!r} has {len(stored)} parameters in the file, "
                                f"the net has {len(state.parameters)} ({[p.name for p in state.parameters]})")
        for i, param in enumerate(state.parameters):
            if i not in stored or stored[i][0] != param.name:
                raise SnapshotError(f"snapshot {path!r}: layer {layer!r} parameter {i} is "
                                    f"{stored.get(i, ('missing',))[0]!r} in the file, the net has {param.name!r}")
            dataset = stored[i][1]
            if not _similar_shape(dataset.shape, param.shape):
                raise SnapshotError(f"snapshot {path!r}: layer {layer!r} parameter {param.name!r} has shape "
                                    f"{dataset.shape} in the file, the net expects {param.shape}")
            copies.append((param.blob, dataset[()].reshape(param.shape)))
    return copies


def _read_solver_blobs(solver: h5py.Group, path: str, solver_state: Any) -> list[tuple[Any, np.ndarray | None]]:
    """(state blob, array or None for "start at zero") pairs for every per-parameter solver blob."""
    copies: list[tuple[Any, np.ndarray | None]] = []
    for group_name, blobs in solver_state.blobs.items():
        group = solver.get(group_name)
        for key, blob in blobs.items():
            layer, index = key.rsplit("/", 1)
            location = f"{h5_name(layer)}/{index}"
            if group is None or location not in group:
                warnings.warn(f"snapshot {path!r} has no {group_name} for {key!r}; starting it at zero", stacklevel=3)
                copies.append((blob, None))
                continue
            dataset = group[location]
            if dataset.shape != blob.shape:
                raise SnapshotError(f"snapshot {path!r}: {group_name} of {key!r} has shape {dataset.shape}, "
                                    f"the net expects {blob.shape}")
            copies.append((blob, dataset[()]))
    return copies


def load_snapshot(path: str | os.PathLike, net: Any, solver_state: Any = None, strict: bool = True) -> int:
    """Load a snapshot's parameters into ``net``; with ``solver_state``, resume everything.

    Parameters are matched by layer name and position; shapes must agree (up to singleton dims). A layer
    of the net missing from the file is an error (a warning with ``strict=False``). With a
    ``solver_state``: the iteration, objective, learning rate, momentum and momentum histories are
    restored into it, and the data layers' read positions and the backend RNG are put back. Returns the
    snapshot's iteration. A missing, corrupt or incompatible file raises an error naming it, before
    anything is modified.
    """
    path = os.fspath(path)
    with open_h5(path, "snapshot") as f:
        copies: list[tuple[Any, np.ndarray | None]] = list(_read_params(f, path, net, strict))
        if "solver" not in f:
            raise SnapshotError(f"snapshot {path!r} has no 'solver' group")
        solver = f["solver"]
        iteration = int(solver.attrs.get("iteration", 0))
        if solver_state is not None:
            if "iteration" not in solver.attrs:
                raise SnapshotError(f"snapshot {path!r} holds no solver state (no iteration)")
            scalars = {key: solver.attrs[key] for key in solver_state.scalars() if key in solver.attrs}
            losses = {k: float(v) for k, v in json.loads(solver.attrs.get("losses", "{}")).items()}
            copies += _read_solver_blobs(solver, path, solver_state)
            point: dict[str, Any] = {"data": {}}
            if "rng" in f:
                rng = f["rng"]
                point["rng"] = {"bit_generator": json.loads(rng.attrs["bit_generator"]),
                                "random_seed": int(rng.attrs["random_seed"]),
                                "random_offset": int(rng.attrs["random_offset"])}
            if "data" in f:
                point["data"] = {from_h5_name(name): _read_tree(group) for name, group in f["data"].items()}
    # everything was read and checked: now modify the net and the state
    for blob, array in copies:
        if array is None:
            blob.fill(0.0)
        else:
            blob.copy_from(array)
    if solver_state is not None:
        solver_state.load_scalars(scalars)
        solver_state.losses = losses
        restore_resume_point(net, point, source=f"snapshot {path!r}")
        solver_state.resume_point = None
    return iteration


def load_validation_positions(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """``{test net name: {data layer name: position}}`` saved in a snapshot's ``validation_data/`` group;
    empty for a snapshot without one (version 1, or saved without ``validation_positions``)."""
    path = os.fspath(path)
    with open_h5(path, "snapshot") as f:
        if "validation_data" not in f:
            return {}
        return {from_h5_name(net_name): {from_h5_name(name): _read_tree(group) for name, group in net_group.items()}
                for net_name, net_group in f["validation_data"].items()}


# --- flat model files (Mocha / Caffe interop) ----------------------------------------------------------


def export_flat_weights(net: Any, path: str | os.PathLike) -> str:
    """Write every parameter of ``net`` as a dataset ``<layer>___<param>`` (Mocha's flat format)."""
    path = os.fspath(path)
    with atomic_h5_file(path) as f:
        for state in _parameter_layers(net):
            for param in state.parameters:
                name = f"{state.layer.name}{FLAT_SEPARATOR}{param.name}"
                if name in f:
                    raise ValueError(f"export_flat_weights: duplicate dataset {name!r} (layer {state.layer.name!r} "
                                     "has two parameters with one name)")
                f.create_dataset(name, data=param.blob.to_numpy())
    return path


def load_flat_weights(net: Any, path: str | os.PathLike, strict: bool = True) -> None:
    """Load ``<layer>___<param>`` datasets into ``net``'s parameters (fine-tuning, Caffe import).

    The file may hold more layers than the net. A missing ``bias`` only warns (the layer keeps its
    initial bias); a parameter sharing the blob of one loaded before (a tied weight, a ``param_key``
    sharer) needs no dataset of its own; any other missing parameter raises unless ``strict=False``
    (then it warns). Shapes
    must agree up to singleton dimensions; another dtype is converted with a warning. Nothing is
    modified when the file is rejected.
    """
    path = os.fspath(path)
    copies = []
    with open_h5(path, "model") as f:
        for state in _parameter_layers(net):
            for param in state.parameters:
                name = f"{state.layer.name}{FLAT_SEPARATOR}{param.name}"
                if name not in f and any(blob is param.blob for blob, _ in copies):
                    continue  # a shared blob (e.g. a tied weight) already loaded through its owner's dataset
                if name not in f:
                    message = f"model file {path!r} has no dataset {name!r} (layer {state.layer.name!r})"
                    if strict and param.name != "bias":
                        raise SnapshotError(message)
                    warnings.warn(message + "; keeping its initial values", stacklevel=2)
                    continue
                dataset = f[name]
                if not isinstance(dataset, h5py.Dataset):
                    raise SnapshotError(f"model file {path!r}: {name!r} is not a dataset")
                if not _similar_shape(dataset.shape, param.shape):
                    raise SnapshotError(f"model file {path!r}: dataset {name!r} has shape {dataset.shape}, layer "
                                        f"{state.layer.name!r} parameter {param.name!r} expects {param.shape}")
                array = dataset[()]
                if str(array.dtype) != param.blob.dtype:
                    warnings.warn(f"model file {path!r}: converting {name!r} from {array.dtype} to "
                                  f"{param.blob.dtype}", stacklevel=2)
                copies.append((param.blob, array.reshape(param.shape)))
    for blob, array in copies:  # only once every dataset was found and checked
        blob.copy_from(array)
