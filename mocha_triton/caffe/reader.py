"""Reading Caffe's files: net definitions, trained weights, solver settings, mean files.

=====================  ==========================  =====================================
Caffe file             reader                      result
=====================  ==========================  =====================================
``net.prototxt``       :func:`read_net`            ``proto.NetParameter`` (upgraded)
``*.caffemodel``       :func:`read_caffemodel`     ``proto.NetParameter`` with blobs (upgraded)
``solver.prototxt``    :func:`read_solver`         ``proto.SolverParameter`` (upgraded)
``mean.binaryproto``   :func:`read_blob`           ``proto.BlobProto``
=====================  ==========================  =====================================

``read_net`` and ``read_solver`` take a file path *or* the text itself (see :func:`read_net`); the
``parse_*`` functions take text or bytes already in memory.

**Upgrades.** Like Caffe on load, nets are brought to the current ("V2") format:

* V1 nets (``layers { type: CONVOLUTION ... }``, field 2) become ``layer`` entries (field 100) with
  Caffe's type strings (``"Convolution"``); ``blobs_lr`` / ``weight_decay`` / ``param`` names /
  ``blob_share_mode`` become ``param { lr_mult decay_mult name share_mode }``; the deprecated data
  settings of V1 Data/ImageData/WindowData layers (scale, mean_file, crop_size, mirror) move to
  ``transform_param``.
* Net-level ``input`` + ``input_shape`` / ``input_dim`` become one ``Input`` layer named ``"input"``
  at the front of the net (a bare ``input`` without shapes, as in old caffemodels, is dropped).
* ``BatchNorm`` layers lose their three obsolete ``param`` entries.
* Blobs stored with the legacy 4-D ``num/channels/height/width`` get a ``BlobShape`` instead. Legacy
  parameter blobs padded their shapes with leading 1s, so inner-product weights ``(1,1,M,K)`` become
  ``(M,K)`` and the bias of InnerProduct/Convolution/Deconvolution ``(1,1,1,N)`` becomes ``(N,)``;
  every other legacy blob keeps its four dimensions.
* Solvers: the old ``solver_type`` enum becomes the ``type`` string; nets embedded in the solver are
  upgraded too.

**Errors.** Every failure (missing or unreadable file, text that does not parse, a truncated or corrupt
binary, a file holding some other message, inconsistent legacy fields, a blob whose data does not fill
its shape) raises :class:`CaffeFormatError` - a ``ValueError`` whose message names the file and the
problem. Raw protobuf exceptions never escape.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
from google.protobuf import descriptor, text_format, unknown_fields
from google.protobuf.message import Message

from mocha_triton.caffe import proto

__all__ = [
    "CaffeFormatError",
    "read_net",
    "read_caffemodel",
    "read_solver",
    "read_blob",
    "parse_net",
    "parse_caffemodel",
    "parse_solver",
    "upgrade_net",
    "upgrade_solver",
    "filter_net",
    "blob_shape",
    "blob_to_numpy",
    "numpy_to_blob",
]

PathOrText = str | os.PathLike


class CaffeFormatError(ValueError):
    """A Caffe file (or text) could not be read; the message names the source and the problem.

    Attributes: ``source`` (the file path, or ``"<text>"``/``"<bytes>"`` for in-memory input) and
    ``problem`` (what is wrong, without the source).
    """

    def __init__(self, source: str, problem: str):
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


# ------------------------------------------------------------------------------------------------
# Public readers
# ------------------------------------------------------------------------------------------------


def read_net(source: PathOrText, *, upgrade: bool = True) -> proto.NetParameter:
    """Read a net definition in protobuf text format (``.prototxt``).

    ``source`` is a path (``str`` or ``os.PathLike``) or the prototxt text itself. A ``str`` is taken
    as a path when it names an existing file, or when it is a single line without ``{`` and ``:``
    (so a mistyped path reports "file not found" rather than a parse error); otherwise it is text.
    With ``upgrade`` (the default) legacy formats are converted as described in the module docstring.
    """
    text, where = _read_text_source(source, what="net prototxt")
    return parse_net(text, source=where, upgrade=upgrade)


def read_caffemodel(path: str | os.PathLike, *, upgrade: bool = True) -> proto.NetParameter:
    """Read trained weights: a binary ``NetParameter`` (``.caffemodel``), layers with ``blobs``.

    The result is upgraded like :func:`read_net` (V1 layers, legacy blob dimensions). Use
    :func:`blob_to_numpy` on ``layer.blobs[i]`` for the arrays.
    """
    data, where = _read_binary_file(path, what="caffemodel")
    return parse_caffemodel(data, source=where, upgrade=upgrade)


def read_solver(source: PathOrText, *, upgrade: bool = True) -> proto.SolverParameter:
    """Read solver settings in protobuf text format (``solver.prototxt``); path or text like :func:`read_net`.

    Paths inside (``net``, ``train_net``, ``snapshot_prefix``) are returned as written; Caffe resolves
    them relative to the working directory of the ``caffe`` process.
    """
    text, where = _read_text_source(source, what="solver prototxt")
    return parse_solver(text, source=where, upgrade=upgrade)


def read_blob(path: str | os.PathLike) -> proto.BlobProto:
    """Read a binary ``BlobProto`` file, e.g. a mean image (``mean.binaryproto``)."""
    data, where = _read_binary_file(path, what="binaryproto blob")
    blob = _parse_binary(proto.BlobProto, data, where)
    if not (blob.data or blob.double_data):
        raise CaffeFormatError(where, "holds no blob data (is it a binaryproto BlobProto file?)" + _unknown_hint(blob))
    blob_to_numpy(blob, source=where)  # validates shape against data
    return blob


def parse_net(text: str | bytes, *, source: str = "<text>", upgrade: bool = True) -> proto.NetParameter:
    """Parse prototxt text (``str`` or UTF-8 ``bytes``) into a ``NetParameter``; see :func:`read_net`."""
    net = _parse_text(proto.NetParameter, text, source)
    return upgrade_net(net, source=source) if upgrade else net


def parse_caffemodel(data: bytes, *, source: str = "<bytes>", upgrade: bool = True) -> proto.NetParameter:
    """Parse the bytes of a ``.caffemodel``; see :func:`read_caffemodel`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CaffeFormatError(source, f"expected the bytes of a caffemodel, got {type(data).__name__}")
    data = bytes(data)
    if data.startswith(b"\x89HDF\r\n\x1a\n"):
        raise CaffeFormatError(source, "is an HDF5 file, not a binary protobuf caffemodel "
                                       "(Caffe's HDF5 weight format is not supported here)")
    net = _parse_binary(proto.NetParameter, data, source)
    if not net.layer and not net.layers:
        hint = _unknown_hint(net)
        if _looks_like_text(data):
            hint += " (it looks like text: use read_net for .prototxt files)"
        raise CaffeFormatError(source, "holds no layers (is it a caffemodel?)" + hint)
    return upgrade_net(net, source=source) if upgrade else net


def parse_solver(text: str | bytes, *, source: str = "<text>", upgrade: bool = True) -> proto.SolverParameter:
    """Parse solver prototxt text into a ``SolverParameter``; see :func:`read_solver`."""
    solver = _parse_text(proto.SolverParameter, text, source)
    return upgrade_solver(solver, source=source) if upgrade else solver


# ------------------------------------------------------------------------------------------------
# Upgrades (in place; each returns its argument)
# ------------------------------------------------------------------------------------------------

_V1_DATA_PARAMS = {5: "data_param", 12: "image_data_param", 24: "window_data_param"}  # V1 type -> field
_LEGACY_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
_SOLVER_TYPE_NAMES = {0: "SGD", 1: "Nesterov", 2: "AdaGrad", 3: "RMSProp", 4: "AdaDelta", 5: "Adam"}


def upgrade_net(net: proto.NetParameter, *, source: str = "<net>") -> proto.NetParameter:
    """Bring ``net`` to the current format in place (see the module docstring) and return it."""
    if net.layer and net.layers:
        raise CaffeFormatError(source, "has both 'layer' (current) and 'layers' (legacy V1) entries")
    if net.layers:
        _upgrade_v1_layers(net, source)
    _upgrade_net_input(net, source)
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            del layer.param[:]  # Caffe's upgrade: BatchNorm's statistics are not learnable parameters
        for index, blob in enumerate(layer.blobs):
            _upgrade_blob_dims(blob, layer.type, index)
    return net


def upgrade_solver(solver: proto.SolverParameter, *, source: str = "<solver>") -> proto.SolverParameter:
    """Upgrade ``solver`` in place: ``solver_type`` enum -> ``type`` string, embedded nets; return it."""
    if solver.HasField("solver_type"):
        if solver.HasField("type"):
            raise CaffeFormatError(source, "sets both the legacy 'solver_type' and 'type'; keep only 'type'")
        solver.type = _SOLVER_TYPE_NAMES[solver.solver_type]
        solver.ClearField("solver_type")
    if solver.HasField("net_param"):
        upgrade_net(solver.net_param, source=f"{source} (net_param)")
    if solver.HasField("train_net_param"):
        upgrade_net(solver.train_net_param, source=f"{source} (train_net_param)")
    for i, net in enumerate(solver.test_net_param):
        upgrade_net(net, source=f"{source} (test_net_param[{i}])")
    return solver


def _upgrade_v1_layers(net: proto.NetParameter, source: str) -> None:
    """Replace ``net.layers`` (V1) by equivalent ``net.layer`` entries, like Caffe's V1->V2 upgrade."""
    for i, old in enumerate(net.layers):
        label = f"V1 layer {i} ({old.name!r})" if old.name else f"V1 layer {i}"
        type_name = proto.V1_LAYER_TYPE_NAMES.get(old.type, "")
        if not type_name:
            raise CaffeFormatError(source, f"{label} has no known layer type")
        new = net.layer.add(name=old.name, type=type_name)
        new.bottom.extend(old.bottom)
        new.top.extend(old.top)
        new.include.extend(old.include)
        new.exclude.extend(old.exclude)
        new.blobs.extend(old.blobs)
        new.loss_weight.extend(old.loss_weight)
        # Per-blob training settings -> ParamSpec i (created as needed, in blob order).
        for attribute, values in (("name", old.param), ("share_mode", old.blob_share_mode),
                                  ("lr_mult", old.blobs_lr), ("decay_mult", old.weight_decay)):
            for j, value in enumerate(values):
                while len(new.param) <= j:
                    new.param.add()
                setattr(new.param[j], attribute, value)
        # Every *_param message has the same name in both layer formats.
        for field, value in old.ListFields():
            if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE and field.name.endswith("_param"):
                getattr(new, field.name).CopyFrom(value)
        # Deprecated data settings of V1 data layers -> transform_param (Caffe's data upgrade).
        data_field = _V1_DATA_PARAMS.get(old.type)
        if data_field and new.HasField(data_field):
            params = getattr(new, data_field)
            for name in _LEGACY_TRANSFORM_FIELDS:
                if params.HasField(name):
                    setattr(new.transform_param, name, getattr(params, name))
                    params.ClearField(name)
    net.ClearField("layers")


def _upgrade_net_input(net: proto.NetParameter, source: str) -> None:
    """Turn net-level ``input`` + ``input_shape``/``input_dim`` into one ``Input`` layer at the front."""
    names, shapes, dims = list(net.input), list(net.input_shape), list(net.input_dim)
    if not (names or shapes or dims):
        return
    if (shapes or dims) and not names:
        raise CaffeFormatError(source, "gives 'input_shape'/'input_dim' but no 'input' names")
    if shapes and len(shapes) != len(names):
        raise CaffeFormatError(source, f"has {len(names)} 'input' names but {len(shapes)} 'input_shape' entries")
    if not shapes and dims and len(dims) != 4 * len(names):
        raise CaffeFormatError(source, f"has {len(names)} 'input' names but {len(dims)} 'input_dim' values "
                                       f"(expected 4 per input: num, channels, height, width)")
    if shapes or dims:
        layer = proto.LayerParameter(name="input", type="Input", top=names)
        for i in range(len(names)):
            shape = layer.input_param.shape.add()
            if shapes:
                shape.CopyFrom(shapes[i])
            else:
                shape.dim.extend(dims[4 * i:4 * i + 4])
        layers = [layer, *net.layer]
        del net.layer[:]
        net.layer.extend(layers)
    for field in ("input", "input_shape", "input_dim"):
        net.ClearField(field)


def _upgrade_blob_dims(blob: proto.BlobProto, layer_type: str, index: int) -> None:
    """Replace legacy ``num/channels/height/width`` by a ``BlobShape`` (see the module docstring)."""
    if not _has_legacy_dims(blob):
        return
    legacy = [blob.num, blob.channels, blob.height, blob.width]
    dims = legacy
    if layer_type == "InnerProduct" and index == 0 and legacy[:2] == [1, 1]:
        dims = legacy[2:]
    elif layer_type in ("InnerProduct", "Convolution", "Deconvolution") and index == 1 and legacy[:3] == [1, 1, 1]:
        dims = legacy[3:]
    for field in ("num", "channels", "height", "width"):
        blob.ClearField(field)
    blob.shape.Clear()
    blob.shape.dim.extend(dims)


# ------------------------------------------------------------------------------------------------
# Net filtering by state (Caffe's NetState rules)
# ------------------------------------------------------------------------------------------------


def filter_net(net: proto.NetParameter, phase: str | int, *, level: int = 0, stages: Iterable[str] = (),
               source: str = "<net>") -> proto.NetParameter:
    """A copy of ``net`` keeping only the layers whose include/exclude rules admit the given state.

    ``phase`` is ``"train"``/``"test"`` (or ``proto.TRAIN``/``proto.TEST``). Caffe's rules: a layer
    with no rules is kept; an ``exclude`` rule that the state meets drops it; with ``include`` rules
    it is kept only if the state meets one of them. A rule is met when its ``phase`` (if set)
    equals the state's, the state's level lies within ``min_level``/``max_level`` (if set), the
    state has all of its ``stage`` entries and none of its ``not_stage`` entries. A layer with both kinds of rules
    is an error, as in Caffe.
    """
    state_phase = _phase_number(phase, source)
    state_stages = set(stages)
    kept = proto.NetParameter()
    kept.CopyFrom(net)
    del kept.layer[:]
    for layer in net.layer:
        if layer.include and layer.exclude:
            raise CaffeFormatError(source, f"layer {layer.name!r} has both include and exclude rules")
        included = not layer.include
        if any(_meets(rule, state_phase, level, state_stages) for rule in layer.exclude):
            included = False
        if any(_meets(rule, state_phase, level, state_stages) for rule in layer.include):
            included = True
        if included:
            kept.layer.add().CopyFrom(layer)
    kept.state.phase = state_phase
    kept.state.level = level
    del kept.state.stage[:]
    kept.state.stage.extend(sorted(state_stages))
    return kept


def _phase_number(phase: str | int, source: str) -> int:
    if isinstance(phase, str):
        names = {"train": proto.TRAIN, "test": proto.TEST}
        if phase.lower() not in names:
            raise CaffeFormatError(source, f"unknown phase {phase!r} (expected 'train' or 'test')")
        return names[phase.lower()]
    if phase not in (proto.TRAIN, proto.TEST):
        raise CaffeFormatError(source, f"unknown phase {phase!r} (expected proto.TRAIN or proto.TEST)")
    return int(phase)


def _meets(rule: proto.NetStateRule, phase: int, level: int, stages: set[str]) -> bool:
    if rule.HasField("phase") and rule.phase != phase:
        return False
    if rule.HasField("min_level") and level < rule.min_level:
        return False
    if rule.HasField("max_level") and level > rule.max_level:
        return False
    return all(s in stages for s in rule.stage) and not any(s in stages for s in rule.not_stage)


# ------------------------------------------------------------------------------------------------
# Blobs <-> NumPy
# ------------------------------------------------------------------------------------------------


def _has_legacy_dims(blob: proto.BlobProto) -> bool:
    return any(blob.HasField(f) for f in ("num", "channels", "height", "width"))


def blob_shape(blob: proto.BlobProto, *, source: str = "<blob>") -> tuple[int, ...]:
    """The shape of a Caffe blob: legacy ``(num, channels, height, width)`` if any of them is set
    (Caffe gives them precedence), else ``shape.dim`` (an empty shape is a scalar)."""
    dims = [blob.num, blob.channels, blob.height, blob.width] if _has_legacy_dims(blob) else list(blob.shape.dim)
    if any(d < 0 for d in dims):
        raise CaffeFormatError(source, f"blob has a negative dimension in shape {tuple(dims)}")
    return tuple(int(d) for d in dims)


def blob_to_numpy(blob: proto.BlobProto, *, expected_shape: Sequence[int] | None = None,
                  source: str = "<blob>") -> np.ndarray:
    """The blob's values as a new C-contiguous array: float64 when it stores ``double_data``, else float32.

    Its shape is :func:`blob_shape`. With ``expected_shape``, a blob that still has legacy 4-D
    dimensions is accepted when it equals ``expected_shape`` padded with leading 1s to four
    dimensions (Caffe's rule: an inner-product weight ``(M, K)`` was stored as ``(1, 1, M, K)``) and is
    returned in ``expected_shape``; any other shape difference is an error. Raises
    :class:`CaffeFormatError` (naming ``source``) when the number of values does not match the shape.
    """
    shape = blob_shape(blob, source=source)
    count = 1
    for d in shape:
        count *= d
    if blob.double_data:
        values, n = blob.double_data, len(blob.double_data)
        dtype = np.float64
    else:
        values, n = blob.data, len(blob.data)
        dtype = np.float32
    if n != count:
        kind = "double_data" if dtype == np.float64 else "data"
        raise CaffeFormatError(source, f"blob of shape {shape} needs {count} values but its {kind} has {n}")
    array = np.array(values, dtype=dtype).reshape(shape)
    if expected_shape is None:
        return array
    expected = tuple(int(d) for d in expected_shape)
    if shape == expected:
        return array
    if _has_legacy_dims(blob) and len(expected) <= 4 and (1,) * (4 - len(expected)) + expected == shape:
        return array.reshape(expected)
    raise CaffeFormatError(source, f"blob has shape {shape}, expected {expected}")


def numpy_to_blob(array: np.ndarray, *, legacy_4d: bool = False, double: bool | None = None) -> proto.BlobProto:
    """A ``BlobProto`` holding ``array`` (the inverse of :func:`blob_to_numpy`).

    ``double`` (default: whether ``array`` is float64) picks ``double_data`` over ``data``.
    ``legacy_4d`` writes the old ``num/channels/height/width`` instead of ``shape``, padding the
    shape with leading 1s to four dimensions like old Caffe did (at most 4-D arrays).
    """
    array = np.asarray(array)
    if double is None:
        double = array.dtype == np.float64
    blob = proto.BlobProto()
    if legacy_4d:
        if array.ndim > 4:
            raise ValueError(f"legacy 4-D blob dimensions cannot hold a {array.ndim}-D array")
        blob.num, blob.channels, blob.height, blob.width = (1,) * (4 - array.ndim) + array.shape
    else:
        blob.shape.dim.extend(array.shape)
    flat = array.ravel()
    if double:
        blob.double_data.extend(flat.astype(np.float64).tolist())
    else:
        blob.data.extend(flat.astype(np.float32).tolist())
    return blob


# ------------------------------------------------------------------------------------------------
# Plumbing: file access and parsing with errors translated
# ------------------------------------------------------------------------------------------------


def _read_text_source(source: PathOrText, *, what: str) -> tuple[str, str]:
    """(text, where) for a path or literal text (see :func:`read_net` for how a ``str`` is classified)."""
    if isinstance(source, str) and not _names_a_file(source):
        single_line = "\n" not in source and "{" not in source and ":" not in source
        if not single_line:
            return source, "<text>"
    if not isinstance(source, (str, os.PathLike)):
        raise CaffeFormatError("<input>", f"expected a path or {what} text, got {type(source).__name__}")
    data, where = _read_binary_file(source, what=what)
    try:
        return data.decode("utf-8"), where
    except UnicodeDecodeError as exc:
        raise CaffeFormatError(where, f"is not UTF-8 text ({exc.reason} at byte {exc.start}); a {what} is text "
                                      f"(binary .caffemodel files are read with read_caffemodel)") from None


def _names_a_file(text: str) -> bool:
    try:
        return "\n" not in text and os.path.isfile(text)
    except (OSError, ValueError):
        return False


def _read_binary_file(path: str | os.PathLike, *, what: str) -> tuple[bytes, str]:
    if not isinstance(path, (str, os.PathLike)):
        raise CaffeFormatError("<input>", f"expected a path to a {what}, got {type(path).__name__}")
    where = os.fspath(path)
    if isinstance(where, bytes):
        where = where.decode("utf-8", "replace")
    if "\0" in where:
        raise CaffeFormatError(repr(where), "invalid path (it contains a NUL character)")
    if not os.path.exists(where):
        raise CaffeFormatError(where, f"{what} file not found")
    if not os.path.isfile(where):  # a folder, a FIFO, /dev/zero ...: reading it could fail or never end
        raise CaffeFormatError(where, f"is not a regular file (expected a {what})")
    try:
        with open(where, "rb") as handle:
            return handle.read(), where
    except OSError as exc:
        raise CaffeFormatError(where, f"cannot read {what}: {exc.strerror or exc}") from None


def _parse_text(message_class, text: str | bytes, source: str) -> Message:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CaffeFormatError(source, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not isinstance(text, str):
        raise CaffeFormatError(source, f"expected text, got {type(text).__name__}")
    message = message_class()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise CaffeFormatError(source, f"not a valid {message_class.DESCRIPTOR.name} prototxt: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - whatever the text parser raises, report it as a format error
        raise CaffeFormatError(source, f"not a valid {message_class.DESCRIPTOR.name} prototxt: "
                                       f"{type(exc).__name__}: {exc}") from None
    return message


def _parse_binary(message_class, data: bytes, source: str) -> Message:
    message = message_class()
    try:
        message.ParseFromString(bytes(data))
    except Exception as exc:  # noqa: BLE001 - DecodeError and friends: corrupt or truncated
        detail = str(exc) or type(exc).__name__
        raise CaffeFormatError(source, f"corrupt or truncated binary {message_class.DESCRIPTOR.name} "
                                       f"({len(data)} bytes): {detail}") from None
    _check_strings(message, source, message_class.DESCRIPTOR.name)
    return message


def _check_strings(message: Message, source: str, path: str) -> None:
    """Binary protobuf does not validate UTF-8 in proto2 strings (they come back as ``bytes``): do it here."""
    for field, value in message.ListFields():
        if field.type == descriptor.FieldDescriptor.TYPE_STRING:
            items = value if _is_repeated(field) else [value]
            for item in items:
                if not isinstance(item, str):
                    raise CaffeFormatError(source, f"corrupt binary: field {path}.{field.name} is not valid UTF-8 text")
        elif field.type == descriptor.FieldDescriptor.TYPE_MESSAGE:
            if _is_repeated(field):
                for i, item in enumerate(value):
                    _check_strings(item, source, f"{path}.{field.name}[{i}]")
            else:
                _check_strings(value, source, f"{path}.{field.name}")


def _is_repeated(field: descriptor.FieldDescriptor) -> bool:
    return field.is_repeated


def _unknown_hint(message: Message) -> str:
    try:
        numbers = sorted({f.field_number for f in unknown_fields.UnknownFieldSet(message)})
    except Exception:  # noqa: BLE001 - a hint only
        return ""
    if not numbers:
        return ""
    return f"; it has fields the {message.DESCRIPTOR.name} schema does not know (numbers {numbers[:10]})"


def _looks_like_text(data: bytes) -> bool:
    head = data[:256]
    return bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)
