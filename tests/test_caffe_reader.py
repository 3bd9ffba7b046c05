"""Reading Caffe files: the schema, prototxt/caffemodel/solver readers, legacy upgrades, blobs, errors.

Real files come from /work/shared/external (Caffe's own example nets and a trained LeNet); those tests
skip cleanly elsewhere. The caffemodel's bytes are also decoded by an independent minimal protobuf
wire reader written here, and its weights run a plain NumPy LeNet forward pass on MNIST t10k.
Legacy (V1) inputs are built from our schema and checked field by field after the upgrade.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from mocha_triton.caffe import (
    CaffeFormatError,
    blob_shape,
    blob_to_numpy,
    filter_net,
    numpy_to_blob,
    parse_caffemodel,
    parse_net,
    parse_solver,
    proto,
    read_blob,
    read_caffemodel,
    read_net,
    read_solver,
)

EXTERNAL = Path("/work/shared/external")
BVLC = EXTERNAL / "caffe" / "bvlc_prototxt"
ETHEREON = EXTERNAL / "caffe" / "lenet_ethereon"
CAFFEMODEL = ETHEREON / "lenet_iter_10000.caffemodel"
MNIST = EXTERNAL / "mnist"

needs_external = pytest.mark.skipif(not (EXTERNAL / "caffe").is_dir(), reason="/work/shared/external is absent")

LENET_LAYERS = [
    ("data", "Input"), ("conv1", "Convolution"), ("pool1", "Pooling"), ("conv2", "Convolution"),
    ("pool2", "Pooling"), ("ip1", "InnerProduct"), ("relu1", "ReLU"), ("ip2", "InnerProduct"), ("prob", "Softmax"),
]


def layers_by_name(net: proto.NetParameter) -> dict[str, proto.LayerParameter]:
    return {layer.name: layer for layer in net.layer}


# --- the schema ------------------------------------------------------------------------------------


def test_schema_field_numbers_and_defaults():
    """Spot checks of wire facts: field numbers, packing, defaults and enum values."""
    fields = proto.NetParameter.DESCRIPTOR.fields_by_name
    assert (fields["layer"].number, fields["layers"].number, fields["input_dim"].number) == (100, 2, 4)
    layer = proto.LayerParameter.DESCRIPTOR.fields_by_name
    assert layer["convolution_param"].number == 106 and layer["inner_product_param"].number == 117
    assert layer["transform_param"].number == 100 and layer["input_param"].number == 143
    v1 = proto.V1LayerParameter.DESCRIPTOR.fields_by_name
    assert (v1["blobs_lr"].number, v1["weight_decay"].number, v1["convolution_param"].number) == (7, 8, 10)
    assert proto.BlobProto.DESCRIPTOR.fields_by_name["data"].number == 5
    # packed float data: tag (5 << 3 | 2), length 8, two little-endian floats
    blob = proto.BlobProto(data=[1.0, 2.0])
    assert blob.SerializeToString() == bytes([0x2A, 8]) + struct.pack("<2f", 1.0, 2.0)
    assert proto.PoolingParameter().pool == proto.PoolingParameter.MAX == 0
    assert proto.PoolingParameter.AVE == 1 and proto.EltwiseParameter().operation == proto.EltwiseParameter.SUM
    assert proto.LRNParameter().local_size == 5 and proto.LRNParameter().beta == pytest.approx(0.75)
    assert proto.FillerParameter().type == "constant" and proto.FillerParameter().std == 1.0
    assert proto.ParamSpec().lr_mult == 1.0 and proto.ParamSpec().decay_mult == 1.0
    assert proto.ConvolutionParameter().bias_term and proto.ConvolutionParameter().group == 1
    assert proto.DropoutParameter().dropout_ratio == pytest.approx(0.5)
    assert proto.LossParameter().normalization == proto.LossParameter.VALID
    solver = proto.SolverParameter()
    assert (solver.type, solver.solver_mode, solver.random_seed, solver.iter_size) == ("SGD", 1, -1, 1)
    assert solver.momentum2 == pytest.approx(0.999) and solver.regularization_type == "L2"
    assert proto.V1LayerParameter.CONVOLUTION == 4 and proto.V1_LAYER_TYPE_NAMES[21] == "SoftmaxWithLoss"
    assert proto.NetParameter.DESCRIPTOR.full_name == "caffe.NetParameter"
    assert (proto.TRAIN, proto.TEST) == (0, 1)


def test_v1_type_table_covers_the_enum():
    enum = proto.V1LayerParameter.DESCRIPTOR.enum_types_by_name["LayerType"]
    assert {v.number for v in enum.values} == set(proto.V1_LAYER_TYPE_NAMES)


# --- Caffe's example prototxts -----------------------------------------------------------------------


@needs_external
@pytest.mark.parametrize("path", [BVLC / "lenet.prototxt", ETHEREON / "lenet.prototxt"])
def test_lenet_deploy_prototxt(path):
    net = read_net(path)
    assert net.name == "LeNet"
    assert [(layer.name, layer.type) for layer in net.layer] == LENET_LAYERS
    layers = layers_by_name(net)
    assert list(layers["data"].input_param.shape[0].dim) == [64, 1, 28, 28]
    conv1 = layers["conv1"]
    assert (list(conv1.bottom), list(conv1.top)) == (["data"], ["conv1"])
    assert [p.lr_mult for p in conv1.param] == [1.0, 2.0]
    c = conv1.convolution_param
    assert (c.num_output, list(c.kernel_size), list(c.stride), c.weight_filler.type) == (20, [5], [1], "xavier")
    assert layers["conv2"].convolution_param.num_output == 50
    pool = layers["pool1"].pooling_param
    assert (pool.pool, pool.kernel_size, pool.stride) == (proto.PoolingParameter.MAX, 2, 2)
    assert layers["ip1"].inner_product_param.num_output == 500
    assert layers["ip2"].inner_product_param.num_output == 10
    assert list(layers["relu1"].bottom) == list(layers["relu1"].top) == ["ip1"]  # in place


@needs_external
def test_lenet_train_test_prototxt_and_phase_filter():
    net = read_net(str(BVLC / "lenet_train_test.prototxt"))
    names = [layer.name for layer in net.layer]
    assert names[:2] == ["mnist", "mnist"] and names[-2:] == ["accuracy", "loss"]
    train_data, test_data = net.layer[0], net.layer[1]
    assert [r.phase for r in train_data.include] == [proto.TRAIN]
    assert [r.phase for r in test_data.include] == [proto.TEST]
    assert train_data.transform_param.scale == pytest.approx(0.00390625)
    assert (train_data.data_param.batch_size, test_data.data_param.batch_size) == (64, 100)
    assert train_data.data_param.backend == proto.DataParameter.LMDB
    assert train_data.data_param.source == "examples/mnist/mnist_train_lmdb"

    train = filter_net(net, "train")
    test = filter_net(net, "test")
    assert [layer.name for layer in train.layer] == [n for n in names[1:] if n != "accuracy"]
    assert train.layer[0].data_param.batch_size == 64 and train.state.phase == proto.TRAIN
    assert test.layer[0].data_param.batch_size == 100 and "accuracy" in [layer.name for layer in test.layer]
    assert len(test.layer) == len(net.layer) - 1
    assert len(net.layer) == 11  # filter_net copies, the original is untouched


@needs_external
def test_cifar10_quick_prototxts():
    net = read_net(BVLC / "cifar10_quick.prototxt")
    assert net.name == "CIFAR10_quick_test"
    layers = layers_by_name(net)
    assert list(layers["data"].input_param.shape[0].dim) == [1, 3, 32, 32]
    assert list(layers["conv1"].convolution_param.pad) == [2]
    assert layers["conv3"].convolution_param.num_output == 64
    pools = [layers[n].pooling_param.pool for n in ("pool1", "pool2", "pool3")]
    assert pools == [proto.PoolingParameter.MAX, proto.PoolingParameter.AVE, proto.PoolingParameter.AVE]
    assert (layers["pool1"].pooling_param.kernel_size, layers["pool1"].pooling_param.stride) == (3, 2)
    assert layers["ip1"].inner_product_param.num_output == 64
    assert layers["prob"].type == "Softmax"
    train_test = read_net(BVLC / "cifar10_quick_train_test.prototxt")
    assert len(filter_net(train_test, "train").layer) == len(train_test.layer) - 2  # no test data, no accuracy
    assert len(filter_net(train_test, "test").layer) == len(train_test.layer) - 1  # no train data


@needs_external
def test_lenet_solver():
    solver = read_solver(BVLC / "lenet_solver.prototxt")
    assert solver.net == "examples/mnist/lenet_train_test.prototxt"
    assert list(solver.test_iter) == [100] and solver.test_interval == 500
    assert solver.base_lr == pytest.approx(0.01) and solver.momentum == pytest.approx(0.9)
    assert solver.weight_decay == pytest.approx(0.0005)
    assert (solver.lr_policy, solver.gamma, solver.power) == ("inv", pytest.approx(1e-4), pytest.approx(0.75))
    assert (solver.display, solver.max_iter, solver.snapshot) == (100, 10000, 5000)
    assert solver.snapshot_prefix == "examples/mnist/lenet"
    assert solver.solver_mode == proto.SolverParameter.GPU
    assert solver.type == "SGD" and not solver.HasField("type")  # the default


# --- the trained LeNet caffemodel --------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def _fields(data: bytes):
    """An independent minimal protobuf wire reader: yields (field number, wire type, value)."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        yield number, wire, value


def _wire_blobs(model: bytes) -> dict[str, list[tuple[tuple[int, ...], np.ndarray]]]:
    """layer name -> [(BlobShape dims, float32 data)] straight from the bytes (NetParameter.layer = 100)."""
    out = {}
    for number, _, layer in _fields(model):
        if number != 100:
            continue
        name, blobs = None, []
        for f, _, value in _fields(layer):
            if f == 1:
                name = value.decode()
            elif f == 7:  # BlobProto
                dims, data = (), None
                for bf, _, bvalue in _fields(value):
                    if bf == 7:  # BlobShape, packed dims
                        packed = next(v for n, _, v in _fields(bvalue) if n == 1)
                        pos, dims = 0, []
                        while pos < len(packed):
                            d, pos = _varint(packed, pos)
                            dims.append(d)
                        dims = tuple(dims)
                    elif bf == 5:
                        data = np.frombuffer(bvalue, "<f4")
                blobs.append((dims, data))
        out[name] = blobs
    return out


@needs_external
def test_lenet_caffemodel_layers_and_blobs():
    net = read_caffemodel(CAFFEMODEL)
    assert net.name == "LeNet"
    layers = layers_by_name(net)
    assert [layer.type for layer in net.layer] == [
        "Data", "Convolution", "Pooling", "Convolution", "Pooling", "InnerProduct", "ReLU", "InnerProduct",
        "SoftmaxWithLoss"]
    assert layers["mnist"].transform_param.scale == pytest.approx(0.00390625)
    expected = {"conv1": [(20, 1, 5, 5), (20,)], "conv2": [(50, 20, 5, 5), (50,)],
                "ip1": [(500, 800), (500,)], "ip2": [(10, 500), (10,)]}
    for name, shapes in expected.items():
        assert [blob_shape(b) for b in layers[name].blobs] == shapes
        assert [p.lr_mult for p in layers[name].param] == [1.0, 2.0]
    assert all(not layer.blobs for layer in net.layer if layer.name not in expected)

    wire = _wire_blobs(CAFFEMODEL.read_bytes())
    for name, shapes in expected.items():
        for blob, shape, (wire_dims, wire_data) in zip(layers[name].blobs, shapes, wire[name]):
            array = blob_to_numpy(blob)
            assert array.shape == shape == wire_dims and array.dtype == np.float32
            np.testing.assert_array_equal(array.ravel(), wire_data)
            assert np.isfinite(array).all() and array.std() > 0


def _conv_valid(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))  # N C H' W' kh kw
    return np.einsum("nchwij,fcij->nfhw", windows, w, optimize=True) + b[None, :, None, None]


def _max_pool_2x2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


@needs_external
@pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").exists(), reason="MNIST t10k is absent")
def test_lenet_caffemodel_classifies_mnist():
    """The weights in their read shapes run a float64 NumPy LeNet: Caffe reports 99.14 % on all of t10k."""
    count = 300
    images = np.frombuffer(gzip.decompress((MNIST / "t10k-images-idx3-ubyte.gz").read_bytes()), np.uint8, offset=16)
    labels = np.frombuffer(gzip.decompress((MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8)
    x = images[:count * 784].reshape(count, 1, 28, 28).astype(np.float64) * 0.00390625
    layers = layers_by_name(read_caffemodel(CAFFEMODEL))
    w = {name: [blob_to_numpy(b).astype(np.float64) for b in layers[name].blobs] for name in layers}
    h = _max_pool_2x2(_conv_valid(x, *w["conv1"]))
    h = _max_pool_2x2(_conv_valid(h, *w["conv2"]))
    h = np.maximum(h.reshape(count, -1) @ w["ip1"][0].T + w["ip1"][1], 0)
    scores = h @ w["ip2"][0].T + w["ip2"][1]
    accuracy = (scores.argmax(axis=1) == labels[:count]).mean()
    assert accuracy >= 0.97


# --- V1 (legacy) nets ----------------------------------------------------------------------------------


def _v1_model(rng: np.random.Generator) -> tuple[proto.NetParameter, dict[str, np.ndarray]]:
    """A V1-format LeNet-like caffemodel: enum types, blobs_lr/weight_decay, legacy 4-D blob dims."""
    arrays = {
        "conv1_w": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
        "conv1_b": rng.standard_normal(4).astype(np.float32),
        "ip_w": rng.standard_normal((10, 36)).astype(np.float32),
        "ip_b": rng.standard_normal(10).astype(np.float32),
    }
    net = proto.NetParameter(name="v1net")
    V1 = proto.V1LayerParameter
    data = net.layers.add(name="mnist", type=V1.DATA, top=["data", "label"])
    data.data_param.source = "train_lmdb"
    data.data_param.batch_size = 8
    data.data_param.scale = 0.00390625
    data.data_param.mirror = True
    data.include.add(phase=proto.TRAIN)
    conv = net.layers.add(name="conv1", type=V1.CONVOLUTION, bottom=["data"], top=["conv1"],
                          blobs_lr=[1.0, 2.0], weight_decay=[1.0, 0.0])
    conv.convolution_param.num_output = 4
    conv.convolution_param.kernel_size.append(3)
    conv.convolution_param.weight_filler.type = "xavier"
    conv.blobs.append(numpy_to_blob(arrays["conv1_w"], legacy_4d=True))
    conv.blobs.append(numpy_to_blob(arrays["conv1_b"], legacy_4d=True))  # (1, 1, 1, 4)
    pool = net.layers.add(name="pool1", type=V1.POOLING, bottom=["conv1"], top=["pool1"])
    pool.pooling_param.pool = proto.PoolingParameter.AVE
    pool.pooling_param.kernel_size = 2
    pool.pooling_param.stride = 2
    net.layers.add(name="relu1", type=V1.RELU, bottom=["pool1"], top=["pool1"]).relu_param.negative_slope = 0.1
    ip = net.layers.add(name="ip", type=V1.INNER_PRODUCT, bottom=["pool1"], top=["ip"], blobs_lr=[1.0, 2.0],
                        param=["shared_w"])
    ip.inner_product_param.num_output = 10
    ip.blobs.append(numpy_to_blob(arrays["ip_w"], legacy_4d=True))  # (1, 1, 10, 36)
    ip.blobs.append(numpy_to_blob(arrays["ip_b"], legacy_4d=True))  # (1, 1, 1, 10)
    net.layers.add(name="drop", type=V1.DROPOUT, bottom=["ip"], top=["ip"]).dropout_param.dropout_ratio = 0.25
    loss = net.layers.add(name="loss", type=V1.SOFTMAX_LOSS, bottom=["ip", "label"], top=["loss"], loss_weight=[2.0])
    loss.exclude.add(phase=proto.TEST)
    net.layers.add(name="acc", type=V1.ACCURACY, bottom=["ip", "label"], top=["acc"]).include.add(phase=proto.TEST)
    return net, arrays


def test_v1_caffemodel_upgrade(tmp_path):
    v1, arrays = _v1_model(np.random.default_rng(0))
    assert blob_shape(v1.layers[4].blobs[0]) == (1, 1, 10, 36)  # legacy 4-D before the upgrade
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(v1.SerializeToString())
    net = read_caffemodel(path)

    assert not net.layers
    assert [(layer.name, layer.type) for layer in net.layer] == [
        ("mnist", "Data"), ("conv1", "Convolution"), ("pool1", "Pooling"), ("relu1", "ReLU"),
        ("ip", "InnerProduct"), ("drop", "Dropout"), ("loss", "SoftmaxWithLoss"), ("acc", "Accuracy")]
    layers = layers_by_name(net)
    data = layers["mnist"]
    assert list(data.top) == ["data", "label"] and [r.phase for r in data.include] == [proto.TRAIN]
    assert data.transform_param.scale == pytest.approx(0.00390625) and data.transform_param.mirror
    assert not data.data_param.HasField("scale") and not data.data_param.HasField("mirror")
    assert (data.data_param.source, data.data_param.batch_size) == ("train_lmdb", 8)
    conv = layers["conv1"]
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1.0, 1.0), (2.0, 0.0)]
    assert conv.convolution_param.num_output == 4 and conv.convolution_param.weight_filler.type == "xavier"
    assert [blob_shape(b) for b in conv.blobs] == [(4, 1, 3, 3), (4,)]
    np.testing.assert_array_equal(blob_to_numpy(conv.blobs[0]), arrays["conv1_w"])
    np.testing.assert_array_equal(blob_to_numpy(conv.blobs[1]), arrays["conv1_b"])
    assert not any(b.HasField("num") for b in conv.blobs)
    assert layers["pool1"].pooling_param.pool == proto.PoolingParameter.AVE
    assert layers["relu1"].relu_param.negative_slope == pytest.approx(0.1)
    ip = layers["ip"]
    assert [(p.name, p.lr_mult, p.decay_mult) for p in ip.param] == [("shared_w", 1.0, 1.0), ("", 2.0, 1.0)]
    assert [blob_shape(b) for b in ip.blobs] == [(10, 36), (10,)]
    np.testing.assert_array_equal(blob_to_numpy(ip.blobs[0]), arrays["ip_w"])
    np.testing.assert_array_equal(blob_to_numpy(ip.blobs[1]), arrays["ip_b"])
    assert layers["drop"].dropout_param.dropout_ratio == pytest.approx(0.25)
    assert list(layers["loss"].loss_weight) == [2.0] and [r.phase for r in layers["loss"].exclude] == [proto.TEST]
    assert [layer.name for layer in filter_net(net, "test").layer] == ["conv1", "pool1", "relu1", "ip", "drop", "acc"]

    raw = read_caffemodel(path, upgrade=False)  # the legacy structure is still readable as is
    assert len(raw.layers) == 8 and not raw.layer and blob_shape(raw.layers[4].blobs[0]) == (1, 1, 10, 36)


def test_v1_prototxt_text_with_enum_types():
    net = parse_net("""
        name: "old"
        input: "data"
        input_dim: 2 input_dim: 3 input_dim: 8 input_dim: 8
        layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
                 blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
                 convolution_param { num_output: 5 kernel_size: 3 pad: 1 } }
        layers { name: "lrn" type: LRN bottom: "conv" top: "lrn"
                 lrn_param { local_size: 3 alpha: 0.5 norm_region: WITHIN_CHANNEL } }
        layers { name: "prob" type: SOFTMAX bottom: "lrn" top: "prob" }
    """)
    assert [(layer.name, layer.type) for layer in net.layer] == [
        ("input", "Input"), ("conv", "Convolution"), ("lrn", "LRN"), ("prob", "Softmax")]
    assert list(net.layer[0].top) == ["data"] and list(net.layer[0].input_param.shape[0].dim) == [2, 3, 8, 8]
    assert not net.input and not net.input_dim
    assert [(p.lr_mult, p.decay_mult) for p in net.layer[1].param] == [(1.0, 1.0), (2.0, 0.0)]
    assert list(net.layer[1].convolution_param.pad) == [1]
    lrn = net.layer[2].lrn_param
    assert (lrn.local_size, lrn.norm_region) == (3, proto.LRNParameter.WITHIN_CHANNEL)


def test_legacy_net_inputs_become_an_input_layer():
    net = parse_net("""
        input: "a" input_shape { dim: 1 dim: 2 }
        input: "b" input_shape { dim: 3 }
        layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "c" }
    """)
    assert [layer.type for layer in net.layer] == ["Input", "Concat"]
    first = net.layer[0]
    assert (first.name, list(first.top)) == ("input", ["a", "b"])
    assert [list(s.dim) for s in first.input_param.shape] == [[1, 2], [3]]
    bare = parse_net('input: "data" layer { name: "r" type: "ReLU" bottom: "data" top: "data" }')
    assert [layer.type for layer in bare.layer] == ["ReLU"] and not bare.input  # legacy caffemodel style
    with pytest.raises(CaffeFormatError, match="4 per input"):
        parse_net('input: "a" input: "b" input_dim: 1 input_dim: 2 input_dim: 3 input_dim: 4')
    with pytest.raises(CaffeFormatError, match="input_shape"):
        parse_net('input: "a" input: "b" input_shape { dim: 1 }')
    with pytest.raises(CaffeFormatError, match="no 'input' names"):
        parse_net("input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1")


def test_batchnorm_params_are_dropped():
    net = parse_net("""
        layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x"
                param { lr_mult: 0 } param { lr_mult: 0 } param { lr_mult: 0 }
                batch_norm_param { use_global_stats: true eps: 0.001 } }
        layer { name: "sc" type: "Scale" bottom: "x" top: "x" scale_param { bias_term: true } }
    """)
    assert len(net.layer[0].param) == 0 and net.layer[0].batch_norm_param.eps == pytest.approx(1e-3)
    assert net.layer[1].scale_param.bias_term


def test_v1_errors():
    with pytest.raises(CaffeFormatError, match="both 'layer'"):
        parse_net('layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }')
    with pytest.raises(CaffeFormatError, match=r"V1 layer 0 \('b'\) has no known layer type"):
        parse_net('layers { name: "b" }')


# --- filter_net rules ---------------------------------------------------------------------------------


def test_filter_net_levels_and_stages():
    net = parse_net("""
        layer { name: "always" type: "ReLU" }
        layer { name: "lvl" type: "ReLU" include { min_level: 1 max_level: 2 } }
        layer { name: "deploy" type: "ReLU" include { stage: "deploy" } }
        layer { name: "not_deploy" type: "ReLU" include { not_stage: "deploy" } }
        layer { name: "ex_train" type: "ReLU" exclude { phase: TRAIN } }
        layer { name: "either" type: "ReLU" include { phase: TRAIN stage: "a" } include { phase: TEST } }
    """)

    def kept(*args, **kwargs):
        return [layer.name for layer in filter_net(net, *args, **kwargs).layer]

    assert kept("train") == ["always", "not_deploy"]
    assert kept("train", stages=["a"]) == ["always", "not_deploy", "either"]
    assert kept(proto.TEST, level=1, stages=["deploy"]) == ["always", "lvl", "deploy", "ex_train", "either"]
    assert kept("test", level=3) == ["always", "not_deploy", "ex_train", "either"]
    with pytest.raises(CaffeFormatError, match="phase"):
        filter_net(net, "validate")
    both = parse_net('layer { name: "x" include { phase: TRAIN } exclude { phase: TEST } }')
    with pytest.raises(CaffeFormatError, match="both include and exclude"):
        filter_net(both, "train")


# --- blobs ----------------------------------------------------------------------------------------------


def test_blob_to_numpy_shapes_and_dtypes():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    blob = numpy_to_blob(array)
    assert list(blob.shape.dim) == [2, 3, 4] and not blob.double_data
    out = blob_to_numpy(blob)
    np.testing.assert_array_equal(out, array)
    assert out.dtype == np.float32 and out.flags.c_contiguous

    double = numpy_to_blob(array.astype(np.float64) / 7)
    assert len(double.double_data) == 24 and not double.data
    out = blob_to_numpy(double)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, array.astype(np.float64) / 7)

    legacy = proto.BlobProto(num=1, channels=1, height=2, width=3, data=range(6))
    assert blob_shape(legacy) == (1, 1, 2, 3)
    np.testing.assert_array_equal(blob_to_numpy(legacy, expected_shape=(2, 3)), np.arange(6.0).reshape(2, 3))
    assert blob_to_numpy(legacy, expected_shape=(1, 2, 3)).shape == (1, 2, 3)
    with pytest.raises(CaffeFormatError, match=r"expected \(3, 2\)"):
        blob_to_numpy(legacy, expected_shape=(3, 2))
    modern = proto.BlobProto(data=range(6))
    modern.shape.dim.extend([2, 3])
    with pytest.raises(CaffeFormatError, match="expected"):  # no legacy padding rule for BlobShape blobs
        blob_to_numpy(modern, expected_shape=(1, 1, 2, 3))
    # only some legacy dims set: Caffe reads the others as 0 -> an empty blob
    assert blob_shape(proto.BlobProto(num=5)) == (5, 0, 0, 0)
    assert blob_to_numpy(proto.BlobProto(num=5)).shape == (5, 0, 0, 0)
    scalar = proto.BlobProto(data=[3.5])
    scalar.shape.SetInParent()
    assert blob_to_numpy(scalar).shape == () and float(blob_to_numpy(scalar)) == 3.5


def test_blob_count_mismatch_is_a_clear_error():
    blob = proto.BlobProto(data=[1.0, 2.0, 3.0])
    blob.shape.dim.extend([2, 2])
    with pytest.raises(CaffeFormatError, match=r"shape \(2, 2\) needs 4 values but its data has 3") as info:
        blob_to_numpy(blob, source="model.caffemodel: layer conv1 blob 0")
    assert info.value.source.startswith("model.caffemodel") and isinstance(info.value, ValueError)
    huge = proto.BlobProto(data=[1.0])
    huge.shape.dim.extend([2**40, 2**40])  # no allocation attempted
    with pytest.raises(CaffeFormatError, match="needs"):
        blob_to_numpy(huge)
    negative = proto.BlobProto(data=[1.0])
    negative.shape.dim.extend([-1])
    with pytest.raises(CaffeFormatError, match="negative"):
        blob_to_numpy(negative)
    legacy_double = proto.BlobProto(num=2, channels=1, height=1, width=1, double_data=[1.0])
    with pytest.raises(CaffeFormatError, match="double_data has 1"):
        blob_to_numpy(legacy_double)


def test_read_blob_mean_file(tmp_path):
    mean = np.random.default_rng(1).random((1, 3, 4, 4)).astype(np.float32)
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(numpy_to_blob(mean, legacy_4d=True).SerializeToString())
    np.testing.assert_array_equal(blob_to_numpy(read_blob(path)), mean)
    empty = tmp_path / "empty.binaryproto"
    empty.write_bytes(b"")
    with pytest.raises(CaffeFormatError, match="no blob data"):
        read_blob(empty)


# --- solvers --------------------------------------------------------------------------------------------


def test_solver_text_upgrades_and_embedded_nets():
    solver = parse_solver("""
        solver_type: ADAM base_lr: 0.001 momentum: 0.9 momentum2: 0.99 delta: 1e-6
        lr_policy: "multistep" stepvalue: 100 stepvalue: 200 gamma: 0.5
        random_seed: 7 iter_size: 2 average_loss: 10 test_initialization: false
        regularization_type: "L1" solver_mode: CPU
        train_net_param { name: "inline" layers { name: "r" type: RELU } }
    """)
    assert solver.type == "Adam" and not solver.HasField("solver_type")
    assert list(solver.stepvalue) == [100, 200] and solver.random_seed == 7 and solver.iter_size == 2
    assert not solver.test_initialization and solver.solver_mode == proto.SolverParameter.CPU
    assert solver.delta == pytest.approx(1e-6) and solver.momentum2 == pytest.approx(0.99)
    assert [(layer.name, layer.type) for layer in solver.train_net_param.layer] == [("r", "ReLU")]
    for enum_name, type_name in [("SGD", "SGD"), ("NESTEROV", "Nesterov"), ("ADAGRAD", "AdaGrad"),
                                 ("RMSPROP", "RMSProp"), ("ADADELTA", "AdaDelta")]:
        assert parse_solver(f"solver_type: {enum_name}").type == type_name
    with pytest.raises(CaffeFormatError, match="both the legacy 'solver_type' and 'type'"):
        parse_solver('solver_type: SGD type: "Adam"')


# --- sources and errors -----------------------------------------------------------------------------


def test_path_or_text(tmp_path):
    text = 'name: "tiny"\nlayer { name: "r" type: "ReLU" bottom: "x" top: "x" }\n'
    path = tmp_path / "tiny.prototxt"
    path.write_text(text)
    for source in (path, str(path), text, text.encode(), 'name: "tiny" layer { name: "r" type: "ReLU" }'):
        net = read_net(source) if not isinstance(source, bytes) else parse_net(source)
        assert net.name == "tiny" and net.layer[0].type == "ReLU"
    with pytest.raises(CaffeFormatError, match="file not found") as info:
        read_net(str(tmp_path / "missing.prototxt"))
    assert info.value.source.endswith("missing.prototxt")
    with pytest.raises(CaffeFormatError, match="file not found"):
        read_net(tmp_path / "missing.prototxt")
    with pytest.raises(CaffeFormatError, match="not a regular file"):
        read_net(tmp_path)
    with pytest.raises(CaffeFormatError, match="expected a path"):
        read_net(42)


def test_text_errors_name_file_and_problem(tmp_path):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "x"\nlayer { name: "a" type: "ReLU"\n')  # unbalanced brace
    with pytest.raises(CaffeFormatError) as info:
        read_net(bad)
    assert str(bad) in str(info.value) and "NetParameter" in str(info.value)
    for text, match in [('layer { nmae: "a" }', "no field named"),
                        ("layer { convolution_param { num_output: -3 } }", "NetParameter"),
                        ("layer { pooling_param { pool: MEDIAN } }", "MEDIAN"),
                        ("force_backward: maybe", "force_backward|true")]:
        with pytest.raises(CaffeFormatError, match=match):
            parse_net(text)
    binary = tmp_path / "weights.caffemodel"
    binary.write_bytes(bytes([0x80, 0xFF, 0x00, 0xC3]) * 10)
    with pytest.raises(CaffeFormatError, match="read_caffemodel"):
        read_net(binary)
    with pytest.raises(CaffeFormatError, match="UTF-8"):
        parse_net(b"name: \"\xff\"")
    with pytest.raises(CaffeFormatError, match='no field named "base_lr"'):
        parse_net("base_lr: 0.1")  # a solver is not a net
    with pytest.raises(CaffeFormatError, match="SolverParameter"):
        parse_solver('layer { name: "a" }')  # a net is not a solver


def test_binary_errors(tmp_path):
    net = proto.NetParameter(name="n")
    layer = net.layer.add(name="ip", type="InnerProduct")
    layer.blobs.append(numpy_to_blob(np.ones((2, 3), np.float32)))
    good = net.SerializeToString()
    assert parse_caffemodel(good).layer[0].name == "ip"

    with pytest.raises(CaffeFormatError, match="corrupt or truncated") as info:
        parse_caffemodel(good[:-3], source="cut.caffemodel")
    assert info.value.source == "cut.caffemodel"
    with pytest.raises(CaffeFormatError, match="not valid UTF-8"):
        parse_caffemodel(good.replace(b"ip", b"\xff\xfe"))
    with pytest.raises(CaffeFormatError, match="holds no layers"):
        parse_caffemodel(b"")
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text('name: "x"\nlayer { name: "a" type: "ReLU" }\n')
    with pytest.raises(CaffeFormatError, match=r"use read_net|corrupt") as info:
        read_caffemodel(prototxt)
    assert str(prototxt) in str(info.value)
    with pytest.raises(CaffeFormatError, match="holds no layers.*schema does not know"):
        parse_caffemodel(numpy_to_blob(np.ones((2, 2), np.float32), legacy_4d=True).SerializeToString())
    with pytest.raises(CaffeFormatError, match="HDF5"):
        parse_caffemodel(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(CaffeFormatError, match="file not found"):
        read_caffemodel(tmp_path / "nope.caffemodel")
    with pytest.raises(CaffeFormatError, match="expected a path"):
        read_caffemodel(good)
    with pytest.raises(CaffeFormatError, match="expected the bytes"):
        parse_caffemodel("name: 'x'")


def test_messages_round_trip_through_text_and_binary():
    v1, _ = _v1_model(np.random.default_rng(3))
    net = parse_caffemodel(v1.SerializeToString())
    again = parse_net(text_format.MessageToString(net))
    assert again == net
    assert parse_caffemodel(net.SerializeToString()) == net
