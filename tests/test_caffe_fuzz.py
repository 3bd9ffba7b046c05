"""Fuzzing the Caffe readers: damaged input raises CaffeFormatError (or still parses), nothing else.

Hypothesis (derandomized by conftest's profile) mutates small valid caffemodel bytes and prototxt texts:
byte flips, insertions, deletions, truncations, token shuffles, invalid UTF-8. Each result must either
parse - and then survive the follow-up steps a converter would take (blob arrays, phase filtering) - or
raise :class:`CaffeFormatError`. Any other exception fails the test. Inputs stay small so every example
is fast (protobuf parsing is linear; nothing here can loop).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mocha_triton.caffe import (
    CaffeFormatError,
    blob_to_numpy,
    filter_net,
    numpy_to_blob,
    parse_caffemodel,
    parse_net,
    parse_solver,
    proto,
)

CAFFEMODEL = Path("/work/shared/external/caffe/lenet_ethereon/lenet_iter_10000.caffemodel")


def _small_models() -> list[bytes]:
    """Two tiny caffemodels: current format (BlobShape) and legacy V1 (enum types, 4-D dims, blobs_lr)."""
    rng = np.random.default_rng(0)
    net = proto.NetParameter(name="tiny")
    net.layer.add(name="data", type="Input", top=["x"]).input_param.shape.add(dim=[2, 1, 4, 4])
    conv = net.layer.add(name="conv", type="Convolution", bottom=["x"], top=["c"])
    conv.convolution_param.num_output = 2
    conv.convolution_param.kernel_size.append(3)
    conv.param.add(lr_mult=1)
    conv.param.add(lr_mult=2)
    conv.blobs.append(numpy_to_blob(rng.standard_normal((2, 1, 3, 3)).astype(np.float32)))
    conv.blobs.append(numpy_to_blob(rng.standard_normal(2).astype(np.float32)))
    ip = net.layer.add(name="ip", type="InnerProduct", bottom=["c"], top=["y"])
    ip.include.add(phase=proto.TEST, stage=["s"])
    ip.blobs.append(numpy_to_blob(rng.standard_normal((3, 8)), double=True))

    v1 = proto.NetParameter(name="old", input=["x"], input_dim=[1, 1, 2, 2])
    layer = v1.layers.add(name="ip", type=proto.V1LayerParameter.INNER_PRODUCT, bottom=["x"], top=["y"],
                          blobs_lr=[1, 2], weight_decay=[1, 0])
    layer.blobs.append(numpy_to_blob(rng.standard_normal((2, 4)).astype(np.float32), legacy_4d=True))
    layer.blobs.append(numpy_to_blob(rng.standard_normal(2).astype(np.float32), legacy_4d=True))
    data = v1.layers.add(name="d", type=proto.V1LayerParameter.DATA, top=["x"])
    data.data_param.scale = 0.5
    data.exclude.add(phase=proto.TRAIN)
    return [net.SerializeToString(), v1.SerializeToString()]


MODELS = _small_models()

NET_TEXTS = [
    """name: "t"
input: "data" input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  param { lr_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "acc" type: "Accuracy" bottom: "pool" bottom: "label" top: "acc" include { phase: TEST } }
""",
    """name: "v1"
layers { name: "ip" type: INNER_PRODUCT bottom: "x" top: "y" blobs_lr: 1 blobs_lr: 2
  inner_product_param { num_output: 10 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "y" bottom: "l" top: "loss" exclude { phase: TEST } }
""",
]
SOLVER_TEXT = """net: "n.prototxt" test_iter: 100 test_interval: 500 base_lr: 0.01 momentum: 0.9
lr_policy: "inv" gamma: 0.0001 power: 0.75 max_iter: 10 solver_mode: CPU solver_type: NESTEROV
stepvalue: 3 stepvalue: 5 # comment
"""


def exercise_net(net: proto.NetParameter) -> None:
    """What a converter does with a parsed net: blob arrays and phase filtering."""
    for phase in ("train", "test"):
        filter_net(net, phase, stages=["s"])
    for layer in net.layer:
        for blob in layer.blobs:
            blob_to_numpy(blob, source=f"layer {layer.name}")


def parse_model_or_format_error(data: bytes) -> None:
    try:
        exercise_net(parse_caffemodel(data, source="fuzz.caffemodel"))
    except CaffeFormatError as exc:
        assert exc.source.startswith("fuzz.caffemodel") or exc.source.startswith("layer ")


def parse_text_or_format_error(text: str | bytes) -> None:
    try:
        exercise_net(parse_net(text, source="fuzz.prototxt"))
    except CaffeFormatError:
        pass
    try:
        parse_solver(text, source="fuzz_solver.prototxt")
    except CaffeFormatError:
        pass


@st.composite
def mutated_bytes(draw, base: bytes, max_edits: int = 2) -> bytes:
    """``base`` with a few random edits: flip/set a byte, insert bytes, delete a range, truncate."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(["flip", "flip", "set", "set", "insert", "delete", "truncate"]))
        if not data:
            kind = "insert"
        position = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[position] = draw(st.sampled_from([0x00, 0x08, 0x0A, 0x12, 0x2A, 0x7F, 0x80, 0xFF]))
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[position:position + draw(st.integers(1, 16))]
        else:
            del data[position:]
    return bytes(data)


@settings(max_examples=200)
@given(st.sampled_from(MODELS).flatmap(mutated_bytes))
def test_mutated_caffemodel_bytes(data):
    parse_model_or_format_error(data)


@settings(max_examples=100)
@given(st.binary(max_size=64))
def test_random_bytes_as_caffemodel(data):
    parse_model_or_format_error(data)


@settings(max_examples=100)
@given(st.sampled_from(MODELS), st.data())
def test_every_truncation_is_handled(model, data):
    cut = data.draw(st.integers(0, len(model)))
    parse_model_or_format_error(model[:cut])


_TOKENS = ["{", "}", ":", '"', "#", "\n", " ", "-", ".", "e", "0", "7", "99999999999", "layer", "layers", "name",
           "type", "TRAIN", "MAX", "true", "nan", "inf", "\\", "\\x", "'", "é", "[", "]", "<", ">", ";", ","]


@st.composite
def mutated_text(draw, base: str, max_edits: int = 3) -> str:
    """``base`` with a few edits: delete a span, insert a token, duplicate or swap spans, truncate."""
    text = base
    for _ in range(draw(st.integers(1, max_edits))):
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "truncate"]))
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(1, 12)))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + draw(st.sampled_from(_TOKENS)) + text[i:]
        elif kind == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        elif kind == "swap":
            k = draw(st.integers(0, len(text)))
            a, b = sorted((i, k))
            text = text[:a] + text[b:j] + text[a:b] + text[j:] if b < j else text
        else:
            text = text[:i]
    return text


@settings(max_examples=200)
@given(st.sampled_from([*NET_TEXTS, SOLVER_TEXT]).flatmap(mutated_text))
def test_mutated_prototxt_text(text):
    parse_text_or_format_error(text)


@settings(max_examples=100)
@given(st.sampled_from([*NET_TEXTS, SOLVER_TEXT]).flatmap(lambda t: mutated_bytes(t.encode(), max_edits=3)))
def test_mutated_prototxt_bytes(data):
    parse_text_or_format_error(data)  # may be invalid UTF-8


@settings(max_examples=100)
@given(st.text(max_size=40))
def test_random_text(text):
    parse_text_or_format_error(text)


def test_unmutated_inputs_parse():
    """The fuzz bases themselves are valid (so the mutations start from real structure)."""
    for model in MODELS:
        exercise_net(parse_caffemodel(model))
    for text in NET_TEXTS:
        exercise_net(parse_net(text))
    assert parse_solver(SOLVER_TEXT).type == "Nesterov"


@settings(max_examples=25)
@given(st.data())
def test_real_caffemodel_truncated_or_flipped(data):
    """A few damaged copies of the trained LeNet (1.7 MB): truncations and bit flips."""
    if not CAFFEMODEL.exists():
        return  # /work/shared/external absent: nothing to damage
    model = CAFFEMODEL.read_bytes()
    position = data.draw(st.integers(0, len(model) - 1))
    if data.draw(st.booleans()):
        damaged = model[:position]
    else:
        damaged = bytearray(model)
        damaged[position] ^= 1 << data.draw(st.integers(0, 7))
        damaged = bytes(damaged)
    parse_model_or_format_error(damaged)


@settings(max_examples=150)
@given(st.sampled_from(NET_TEXTS).flatmap(mutated_text))
def test_mutated_prototxt_builds_a_net_or_raises_the_format_error(text):
    """Through the whole conversion: a mutated net either becomes a Net or raises CaffeFormatError
    (CaffeConversionError is one) — never another exception and never a half-built net."""
    import mocha_triton as mt

    backend = mt.NumpyBackend()
    try:
        net = mt.caffe.load_net(text, backend=backend)
    except CaffeFormatError:
        return
    assert isinstance(net, mt.Net) and len(net.states) == len(net.layers)
