"""Caffe nets as mocha-triton nets (mocha_triton/caffe/convert.py and cli.py).

* The BVLC example prototxts build nets of the right shapes (LMDB Data layers replaced through
  ``input_shapes``, or the clear error without them), with Caffe's fused ReLUs, learning rates and
  regularizers.
* A legacy V1 net and caffemodel written here load and compute what a hand-built Net with the same
  weights computes, and what a torch float64 forward pass computes.
* Weight loading errors, unsupported types, phase/level/stage rules, activation fusion (and why it
  refuses), automatic splits (gradients checked against torch), reshapes, data layers, parameter specs,
  and the command line (convert, classify).
"""

from __future__ import annotations

import math
import os
import warnings

import h5py
import numpy as np
import pytest
import torch

import mocha_triton as mt
from mocha_triton.caffe import (
    CaffeConversionError,
    CaffeReshapeLayer,
    InputLayer,
    feed,
    load_net,
    load_weights,
    numpy_to_blob,
    proto,
)
from mocha_triton.caffe.cli import main as cli_main

BVLC = "/work/shared/external/caffe/bvlc_prototxt"
needs_bvlc = pytest.mark.skipif(not os.path.isdir(BVLC), reason="BVLC example prototxts not available")


def numpy64() -> mt.NumpyBackend:
    return mt.NumpyBackend("float64", seed=0)


def layer_of(net: mt.Net, name: str) -> mt.Layer:
    return net.get_layer(name)


# --- BVLC example nets ---------------------------------------------------------------------------------

LENET_SHAPES = {"conv1": (64, 20, 24, 24), "pool1": (64, 20, 12, 12), "conv2": (64, 50, 8, 8),
                "pool2": (64, 50, 4, 4), "ip1": (64, 500), "ip2": (64, 10)}
CIFAR_SHAPES = {"conv1": (100, 32, 32, 32), "pool1": (100, 32, 16, 16), "conv2": (100, 32, 16, 16),
                "pool2": (100, 32, 8, 8), "conv3": (100, 64, 8, 8), "pool3": (100, 64, 4, 4), "ip1": (100, 64),
                "ip2": (100, 10)}


@needs_bvlc
@pytest.mark.parametrize("phase", ["train", "test"])
@pytest.mark.parametrize("name, shapes, data_shape", [
    ("lenet.prototxt", LENET_SHAPES, None),
    ("lenet_train_test.prototxt", LENET_SHAPES, (64, 1, 28, 28)),
    ("cifar10_quick.prototxt", {k: (1, *v[1:]) for k, v in CIFAR_SHAPES.items()}, None),
    ("cifar10_quick_train_test.prototxt", CIFAR_SHAPES, (100, 3, 32, 32)),
])
def test_bvlc_nets_build_with_caffe_shapes(name, shapes, data_shape, phase):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cifar10's mean_file is not here
        net = load_net(os.path.join(BVLC, name), backend=mt.NumpyBackend(), phase=phase,
                       input_shapes={"data": data_shape} if data_shape else None)
    for blob, shape in shapes.items():
        assert net.output_blobs[blob].shape == shape, blob
    net.forward()
    kinds = {type(layer).__name__ for layer in net.layers}
    assert not kinds & {"ReLULayer"}  # ReLUs are fused
    if data_shape:  # train_test nets: the loss in both phases, the accuracy in test only
        assert "SoftmaxLossLayer" in kinds
        assert ("AccuracyLayer" in kinds) == (phase == "test")
        assert net.output_blobs["label"].shape == (data_shape[0],)
    conv1 = layer_of(net, "conv1")
    assert (conv1.filter_lr, conv1.bias_lr) == (1.0, 2.0)  # param { lr_mult }
    assert conv1.filter_regu == mt.L2Regu(1.0) and conv1.bias_regu == mt.L2Regu(1.0)  # Caffe: decay_mult 1
    if name.startswith("lenet"):
        assert layer_of(net, "ip1").neuron == mt.neurons.ReLU()
        assert layer_of(net, "conv1").neuron.is_identity
    else:  # cifar10: relu1 follows pool1 (fused into the pooling), relu2/3 follow the convolutions
        assert layer_of(net, "pool1").neuron == mt.neurons.ReLU()
        assert layer_of(net, "conv2").neuron == mt.neurons.ReLU()
        assert layer_of(net, "pool2").pooling == mt.Pooling.Mean()
        weights = net.params["conv1"][0].blob.to_numpy()
        if data_shape:  # the train_test file has fillers
            assert conv1.filter_init == mt.GaussianInitializer(0.0, 1e-4)
            assert 0.5e-4 < weights.std() < 2e-4
        else:  # the deploy file has none: Caffe's default filler is constant 0
            assert conv1.filter_init == mt.ConstantInitializer(0.0) and not weights.any()


@needs_bvlc
def test_lmdb_data_layer_needs_input_shapes():
    with pytest.raises(CaffeConversionError, match=r"layer 'mnist' \(type 'Data'\).*mnist_test_lmdb.*input_shapes"):
        load_net(os.path.join(BVLC, "lenet_train_test.prototxt"), backend=mt.NumpyBackend())
    with pytest.raises(CaffeConversionError, match=r"input_shapes names \['pixels'\]"):
        load_net(os.path.join(BVLC, "lenet_train_test.prototxt"), backend=mt.NumpyBackend(),
                 input_shapes={"pixels": (1, 1, 28, 28)})


@needs_bvlc
def test_replaced_data_layer_keeps_the_transform_for_feed():
    net = load_net(os.path.join(BVLC, "lenet_train_test.prototxt"), backend=mt.NumpyBackend(), phase="test",
                   input_shapes={"data": (2, 1, 28, 28)}, batch_size=3)
    assert net.output_blobs["data"].shape == (3, 1, 28, 28)  # batch_size wins
    raw = np.arange(3 * 28 * 28, dtype=np.float32).reshape(3, 1, 28, 28) % 256
    feed(net, data=raw, label=np.array([1, 2, 3]))
    np.testing.assert_array_equal(net.output_blobs["data"].to_numpy(), raw * np.float32(0.00390625))
    feed(net, data=raw, transform=False)
    np.testing.assert_array_equal(net.output_blobs["data"].to_numpy(), raw)
    with pytest.raises(KeyError, match="no input blob 'pixels'"):
        feed(net, pixels=raw)
    with pytest.raises(mt.LayerError, match="cannot feed an array of shape"):
        feed(net, data=raw[:2])


# --- a legacy V1 net and caffemodel -------------------------------------------------------------------

V1_NET = """
name: "v1net"
input: "data"
input_dim: 2 input_dim: 3 input_dim: 6 input_dim: 6
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
         blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
         convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layers { name: "fc" type: INNER_PRODUCT bottom: "pool" top: "fc" inner_product_param { num_output: 5 } }
layers { name: "sig" type: SIGMOID bottom: "fc" top: "fc" }
layers { name: "fc2" type: INNER_PRODUCT bottom: "fc" top: "fc2" inner_product_param { num_output: 3 } }
layers { name: "prob" type: SOFTMAX bottom: "fc2" top: "prob" }
"""


def v1_weights(seed: int = 0) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {"conv": [rng.normal(0, 0.5, (4, 3, 3, 3)), rng.normal(0, 0.5, (4,))],
            "fc": [rng.normal(0, 0.5, (5, 36)), rng.normal(0, 0.5, (5,))],
            "fc2": [rng.normal(0, 0.5, (3, 5)), rng.normal(0, 0.5, (3,))]}


def write_v1_model(folder, weights: dict[str, list[np.ndarray]]) -> tuple[str, str]:
    """The V1 prototxt and a V1 caffemodel (legacy 4-D num/channels/height/width blobs)."""
    types = {"conv": proto.V1LayerParameter.CONVOLUTION, "fc": proto.V1LayerParameter.INNER_PRODUCT,
             "fc2": proto.V1LayerParameter.INNER_PRODUCT}
    model = proto.NetParameter(name="v1net")
    for name, arrays in weights.items():
        layer = model.layers.add(name=name, type=types[name])
        for array in arrays:
            layer.blobs.add().CopyFrom(numpy_to_blob(array.astype(np.float32), legacy_4d=True))
    prototxt, caffemodel = os.path.join(folder, "v1.prototxt"), os.path.join(folder, "v1.caffemodel")
    with open(prototxt, "w") as f:
        f.write(V1_NET)
    with open(caffemodel, "wb") as f:
        f.write(model.SerializeToString())
    return prototxt, caffemodel


def torch_v1_forward(x: np.ndarray, w: dict[str, list[np.ndarray]]) -> np.ndarray:
    t = {k: [torch.tensor(a.astype(np.float32).astype(np.float64)) for a in v] for k, v in w.items()}
    y = torch.relu(torch.nn.functional.conv2d(torch.tensor(x), *t["conv"], padding=1))
    y = torch.nn.functional.max_pool2d(y, 3, 2, ceil_mode=True).flatten(1)
    y = torch.sigmoid(torch.nn.functional.linear(y, *t["fc"]))
    return torch.softmax(torch.nn.functional.linear(y, *t["fc2"]), dim=1).numpy()


def test_v1_net_and_weights_match_a_hand_built_net(tmp_path):
    weights = v1_weights()
    prototxt, caffemodel = write_v1_model(tmp_path, weights)
    net = load_net(prototxt, caffemodel, numpy64())
    assert [type(layer).__name__ for layer in net.layers] == [
        "InputLayer", "ConvolutionLayer", "PoolingLayer", "InnerProductLayer", "InnerProductLayer", "SoftmaxLayer"]
    conv = layer_of(net, "conv")
    assert (conv.filter_lr, conv.bias_lr, conv.filter_regu, conv.bias_regu) == (1.0, 2.0, mt.L2Regu(1.0), mt.NoRegu())
    assert conv.neuron == mt.neurons.ReLU() and layer_of(net, "fc").neuron == mt.neurons.Sigmoid()

    backend = numpy64()
    hand = mt.Net("hand", backend, [
        InputLayer(name="input", tops=["data"], shapes=[(2, 3, 6, 6)]),
        mt.ConvolutionLayer(name="conv", bottoms=["data"], tops=["conv"], n_filter=4, kernel=3, pad=1,
                            neuron=mt.neurons.ReLU()),
        mt.PoolingLayer(name="pool", bottoms=["conv"], tops=["pool"], kernel=3, stride=2),
        mt.InnerProductLayer(name="fc", bottoms=["pool"], tops=["fc"], output_dim=5, neuron=mt.neurons.Sigmoid()),
        mt.InnerProductLayer(name="fc2", bottoms=["fc"], tops=["fc2"], output_dim=3),
        mt.SoftmaxLayer(name="prob", bottoms=["fc2"], tops=["prob"]),
    ], phase="test")
    for name, arrays in weights.items():
        for param, array in zip(hand.params[name], arrays):
            param.blob.copy_from(array.astype(np.float32))  # the caffemodel stores float32
    x = np.random.default_rng(1).normal(size=(2, 3, 6, 6))
    for n in (net, hand):
        feed(n, data=x)
        n.forward()
    ours = net.output_blobs["prob"].to_numpy()
    np.testing.assert_array_equal(ours, hand.output_blobs["prob"].to_numpy())
    np.testing.assert_allclose(ours, torch_v1_forward(x, weights), rtol=1e-12, atol=1e-13)


def test_legacy_4d_blobs_in_a_current_format_caffemodel(tmp_path):
    weights = v1_weights(3)
    prototxt, _ = write_v1_model(tmp_path, weights)
    model = proto.NetParameter(name="v2")
    for name, arrays in weights.items():
        layer = model.layer.add(name=name, type="InnerProduct" if name.startswith("fc") else "Convolution")
        for array in arrays:  # BlobShape dims padded with leading 1s, as some converters write them
            padded = array.reshape((1,) * (4 - array.ndim) + array.shape)
            layer.blobs.add().CopyFrom(numpy_to_blob(padded.astype(np.float32)))
    net = load_net(prototxt, model, numpy64())
    np.testing.assert_array_equal(net.params["fc"][0].blob.to_numpy(), weights["fc"][0].astype(np.float32))
    np.testing.assert_array_equal(net.params["conv"][1].blob.to_numpy(), weights["conv"][1].astype(np.float32))


# --- weight loading errors -----------------------------------------------------------------------------


def test_weight_loading_errors(tmp_path):
    weights = v1_weights()
    prototxt, caffemodel = write_v1_model(tmp_path, weights)
    wider = V1_NET.replace("num_output: 5", "num_output: 6")
    net = load_net(wider, backend=numpy64())
    before = net.params["conv"][0].blob.to_numpy()
    with pytest.raises(CaffeConversionError, match=r"layer 'fc' parameter 'weight' has shape \(5, 36\) in the "
                                                   r"caffemodel, but the net expects \(6, 36\)"):
        load_weights(net, caffemodel)
    np.testing.assert_array_equal(net.params["conv"][0].blob.to_numpy(), before)  # nothing was loaded

    renamed = V1_NET.replace('name: "fc2"', 'name: "head"')
    with pytest.raises(CaffeConversionError, match=r"no weights for layer 'head'"):
        load_net(renamed, caffemodel, numpy64())
    net = load_net(renamed, backend=numpy64())
    with pytest.warns(UserWarning) as record:
        load_weights(net, caffemodel, strict=False)
    messages = " | ".join(str(w.message) for w in record)
    assert "no weights for layer 'head'" in messages
    assert "weights for layers ['fc2'] that net 'v1net' does not have" in messages
    np.testing.assert_array_equal(net.params["fc"][0].blob.to_numpy(), weights["fc"][0].astype(np.float32))

    no_bias = V1_NET.replace("num_output: 3", "num_output: 3 bias_term: false")
    with pytest.raises(CaffeConversionError, match=r"layer 'fc2' has 2 blobs .*expects 1.*bias_term is False"):
        load_net(no_bias, caffemodel, numpy64())
    with pytest.raises(mt.caffe.CaffeFormatError, match="caffemodel file not found"):
        load_net(prototxt, os.path.join(tmp_path, "missing.caffemodel"), numpy64())


def test_no_bias_layers_keep_a_frozen_zero_bias(tmp_path):
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 } } }
    layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y"
            inner_product_param { num_output: 3 bias_term: false weight_filler { type: "xavier" } } }
    """
    w = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    model = proto.NetParameter()
    model.layer.add(name="fc", type="InnerProduct").blobs.add().CopyFrom(numpy_to_blob(w))
    net = load_net(text, model, numpy64())
    weight, bias = net.params["fc"]
    assert bias.learning_rate == 0 and isinstance(bias.regularizer, mt.NoRegu)
    np.testing.assert_array_equal(bias.blob.to_numpy(), 0)
    x = np.random.default_rng(1).normal(size=(2, 4))
    feed(net, x=x)
    net.forward()
    np.testing.assert_allclose(net.output_blobs["y"].to_numpy(), x @ w.T.astype(np.float64), rtol=1e-12)
    model2 = proto.NetParameter()
    model2.layer.add(name="fc", type="InnerProduct").blobs.add().CopyFrom(numpy_to_blob(w))
    with_bias = load_net(text.replace("bias_term: false", ""), backend=numpy64())
    with pytest.raises(CaffeConversionError, match=r"layer 'fc' has 1 blobs .*expects 2.*bias_term is True"):
        load_weights(with_bias, model2)


# --- conversion errors and rules -----------------------------------------------------------------------


def test_unsupported_types_are_named_in_one_error():
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
    layer { name: "py" type: "Python" bottom: "x" top: "n" }
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "c" }
    """
    with pytest.raises(CaffeConversionError) as info:
        load_net(text, backend=numpy64())
    message = str(info.value)
    assert "layer 'py' of type 'Python'" in message and "layer 'bn' of type 'BatchNorm'" in message
    assert "Supported types: Accuracy, Convolution" in message and "<text>" in message


@pytest.mark.parametrize("snippet, match", [
    ('convolution_param { num_output: 2 kernel_size: 3 dilation: 2 }', "dilation"),
    ('convolution_param { num_output: 2 }', "needs kernel_size"),
    ('convolution_param { num_output: 2 kernel_size: 3 kernel_h: 2 kernel_w: 2 }', "either kernel_size"),
    ('convolution_param { kernel_size: 3 }', "num_output"),
    ('convolution_param { num_output: 3 kernel_size: 1 group: 2 }', "n_group=2 does not divide n_filter=3"),
    ('convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "bilinear" } }', "filler type"),
])
def test_convolution_errors_name_the_layer(snippet, match):
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 8 dim: 8 } } }\n'
            f'layer {{ name: "c1" type: "Convolution" bottom: "x" top: "y" {snippet} }}')
    with pytest.raises(CaffeConversionError, match=rf"layer 'c1' \(type 'Convolution'\).*{match}"):
        load_net(text, backend=numpy64())


def test_convolution_and_pooling_geometry():
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 4 dim: 9 dim: 12 } } }
    layer { name: "c" type: "Convolution" bottom: "x" top: "c"
            convolution_param { num_output: 6 group: 2 kernel_h: 3 kernel_w: 5 pad_h: 1 pad_w: 2
                                stride_h: 2 stride_w: 1 } }
    layer { name: "c2" type: "Convolution" bottom: "c" top: "c2"
            convolution_param { num_output: 2 kernel_size: 3 kernel_size: 1 pad: 1 pad: 0 stride: 1 stride: 2 } }
    layer { name: "p" type: "Pooling" bottom: "c2" top: "p"
            pooling_param { pool: AVE kernel_size: 2 stride: 2 pad: 1 } }
    layer { name: "g" type: "Pooling" bottom: "c2" top: "g" pooling_param { pool: MAX global_pooling: true } }
    layer { name: "f" type: "Pooling" bottom: "c2" top: "f"
            pooling_param { kernel_size: 2 stride: 2 round_mode: FLOOR } }
    """
    net = load_net(text, backend=numpy64())
    c = layer_of(net, "c")
    assert (c.kernel, c.pad, c.stride, c.n_group) == ((3, 5), (1, 2), (2, 1), 2)
    assert net.params["c"][0].shape == (6, 2, 3, 5)
    c2 = layer_of(net, "c2")
    assert (c2.kernel, c2.pad, c2.stride) == ((3, 1), (1, 0), (1, 2))
    assert net.output_blobs["c2"].shape == (1, 2, 5, 6)
    assert net.output_blobs["p"].shape == (1, 2, 3, 4)  # Caffe's ceil rounding; a last window in the padding goes
    assert net.output_blobs["g"].shape == (1, 2, 1, 1)
    assert net.output_blobs["f"].shape == (1, 2, 2, 3)  # floor
    net.forward()


def test_phase_level_and_stage_rules():
    text = """
    layer { name: "in" type: "Input" top: "data" top: "label" input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
    layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 2 } }
    layer { name: "drop" type: "Dropout" bottom: "fc" top: "fc" dropout_param { dropout_ratio: 0.3 } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" loss_weight: 0.5
            exclude { phase: TEST } }
    layer { name: "acc" type: "Accuracy" bottom: "fc" bottom: "label" top: "acc" include { phase: TEST }
            accuracy_param { top_k: 2 } }
    layer { name: "deploy" type: "Softmax" bottom: "fc" top: "prob" include { phase: TEST stage: "deploy" } }
    layer { name: "deep" type: "Softmax" bottom: "fc" top: "prob2" include { min_level: 1 } }
    """

    def names(**kwargs) -> list[str]:
        return sorted(layer.name for layer in load_net(text, backend=numpy64(), **kwargs).layers)

    assert names(phase="train") == ["drop", "fc", "in", "loss"]
    assert names(phase="test") == ["acc", "fc", "in"]  # Dropout is the identity in test: left out
    assert names(phase="test", stages=["deploy"]) == ["acc", "deploy", "fc", "in"]
    assert names(phase="train", level=1) == ["deep", "drop", "fc", "fc_split", "in", "loss"]  # fc feeds two
    net = load_net(text, backend=numpy64(), phase="train")
    assert layer_of(net, "drop").ratio == pytest.approx(0.3) and layer_of(net, "loss").weight == 0.5
    assert layer_of(load_net(text, backend=numpy64()), "acc").top_k == 2
    with pytest.raises(ValueError, match="phase must be 'train' or 'test'"):
        load_net(text, backend=numpy64(), phase="deploy")


FUSION_NET = """
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 dim: 5 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 }
                            bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" relu_param { negative_slope: 0.1 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 1 } }
layer { name: "tanh" type: "TanH" bottom: "pool" top: "pool_t" }
layer { name: "fc" type: "InnerProduct" bottom: "pool_t" top: "fc"
        inner_product_param { num_output: 3 weight_filler { type: "uniform" min: -0.5 max: 0.5 } } }
"""
FUSION_NET_SIG = FUSION_NET + 'layer { name: "sig" type: "Sigmoid" bottom: "fc" top: "fc" }'


def test_activations_fuse_into_their_producers():
    net = load_net(FUSION_NET_SIG, backend=numpy64())
    assert [layer.name for layer in net.layers] == ["in", "conv", "pool", "fc"]
    assert layer_of(net, "conv").neuron == mt.neurons.LReLU(0.1)
    assert layer_of(net, "pool").neuron == mt.neurons.Tanh() and layer_of(net, "pool").tops == ("pool_t",)
    assert layer_of(net, "fc").neuron == mt.neurons.Sigmoid()
    assert "pool" not in net.output_blobs  # the non-in-place TanH's producer writes pool_t directly
    np.testing.assert_array_equal(net.params["conv"][1].blob.to_numpy(), 0.1)
    fc_w = net.params["fc"][0].blob.to_numpy()
    assert np.all(np.abs(fc_w) <= 0.5) and fc_w.std() > 0.1  # the uniform filler
    x = np.random.default_rng(0).normal(size=(2, 3, 5, 5))
    feed(net, data=x)
    net.forward()
    p = {k: [torch.tensor(q.blob.to_numpy()) for q in v] for k, v in net.params.items()}
    y = torch.nn.functional.leaky_relu(torch.nn.functional.conv2d(torch.tensor(x), *p["conv"]), 0.1)
    y = torch.tanh(torch.nn.functional.max_pool2d(y, 2, 1, ceil_mode=True)).flatten(1)
    y = torch.sigmoid(torch.nn.functional.linear(y, *p["fc"]))
    np.testing.assert_allclose(net.output_blobs["fc"].to_numpy(), y.numpy(), rtol=1e-12)


STANDALONE = [  # (extra layers, the blob the ReLU writes, how it is computed from the other outputs)
    ('layer { name: "sm" type: "Softmax" bottom: "fc" top: "sm" }\n'
     'layer { name: "r" type: "ReLU" bottom: "sm" top: "sm" }', "sm/r", lambda out: np.maximum(out["sm"], 0)),
    ('layer { name: "fc2" type: "InnerProduct" bottom: "fc" top: "fc2" inner_product_param { num_output: 2 } }\n'
     'layer { name: "r" type: "ReLU" bottom: "fc" top: "fc" }', "fc/r", lambda out: np.maximum(out["fc"], 0)),
    ('layer { name: "r" type: "ReLU" bottom: "fc" top: "fr" }\n'
     'layer { name: "fc2" type: "InnerProduct" bottom: "fc" top: "fc2" inner_product_param { num_output: 2 } }',
     "fr", lambda out: np.maximum(out["fc"], 0)),
    ('layer { name: "s" type: "Sigmoid" bottom: "fc" top: "fc" }\n'
     'layer { name: "r" type: "ReLU" bottom: "fc" top: "fc" relu_param { negative_slope: 0.5 } }', "fc/r",
     lambda out: np.where(out["fc"] > 0, out["fc"], 0.5 * out["fc"])),
]


@pytest.mark.parametrize("extra, written, expected", STANDALONE, ids=["after-softmax", "read-before", "read-after",
                                                                     "second-activation"])
def test_activations_that_cannot_fuse_become_neuron_layers(extra, written, expected):
    """A ReLU that cannot fuse into its producer is a NeuronLayer of its own; an in-place one writes
    '<blob>/<layer>', so layers reading the blob before it still see the pre-activation values."""
    net = load_net(FUSION_NET + extra, backend=numpy64())
    assert isinstance(net.get_state("r").layer, mt.NeuronLayer)
    feed(net, data=np.random.default_rng(1).normal(size=(2, 3, 5, 5)))
    net.forward()
    out = {name: blob.to_numpy() for name, blob in net.output_blobs.items()}
    np.testing.assert_array_equal(out[written], expected(out))
    if "fc2" in out:  # fc2 reads the pre-activation fc
        w, b = (q.blob.to_numpy() for q in net.params["fc2"])
        np.testing.assert_allclose(out["fc2"], out["fc"] @ w.T + b, rtol=1e-12)
        assert (out["fc"] < 0).any()


def test_negative_slopes_are_refused():
    extra = 'layer { name: "r" type: "ReLU" bottom: "fc" top: "fc" relu_param { negative_slope: -1 } }'
    with pytest.raises(CaffeConversionError, match=r"layer 'r' \(type 'ReLU'\).*negative_slope"):
        load_net(FUSION_NET + extra, backend=numpy64())


def test_fan_out_gets_a_split_and_correct_gradients():
    text = """
    layer { name: "in" type: "Input" top: "data" top: "label" input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
    layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 5
            weight_filler { type: "gaussian" std: 0.5 } } }
    layer { name: "fa" type: "InnerProduct" bottom: "fc" top: "a" inner_product_param { num_output: 3
            weight_filler { type: "gaussian" std: 0.5 } } }
    layer { name: "fb" type: "InnerProduct" bottom: "fc" top: "b" inner_product_param { num_output: 3
            weight_filler { type: "gaussian" std: 0.5 } } }
    layer { name: "la" type: "SoftmaxWithLoss" bottom: "a" bottom: "label" top: "la" }
    layer { name: "lb" type: "SoftmaxWithLoss" bottom: "b" bottom: "label" top: "lb" loss_weight: 0.25 }
    layer { name: "acc" type: "Accuracy" bottom: "a" bottom: "label" top: "acc" }
    """
    net = load_net(text, backend=numpy64(), phase="train")
    assert isinstance(layer_of(net, "fc_split"), mt.SplitLayer)
    assert "a_split" not in [layer.name for layer in net.layers]  # the accuracy does not back-propagate
    net.check_bp_topology()
    rng = np.random.default_rng(0)
    x, label = rng.normal(size=(4, 3)), np.array([0, 2, 1, 2])
    feed(net, data=x, label=label)
    objective = net.forward()
    net.backward()
    p = {k: [torch.tensor(q.blob.to_numpy(), requires_grad=True) for q in v] for k, v in net.params.items()}
    h = torch.nn.functional.linear(torch.tensor(x), *p["fc"])
    target = torch.tensor(label)
    loss = torch.nn.functional.cross_entropy(torch.nn.functional.linear(h, *p["fa"]), target) + \
        0.25 * torch.nn.functional.cross_entropy(torch.nn.functional.linear(h, *p["fb"]), target)
    loss.backward()
    assert objective == pytest.approx(loss.item(), rel=1e-12)
    for name in ("fc", "fa", "fb"):
        for ours, ref in zip(net.params[name], p[name]):
            np.testing.assert_allclose(ours.gradient.to_numpy(), ref.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_dropout_in_and_out_of_place():
    text = """
    layer { name: "in" type: "Input" top: "data" top: "label" input_param { shape { dim: 4 dim: 3 } shape { dim: 4 } } }
    layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" inner_product_param { num_output: 2 } }
    layer { name: "drop" type: "Dropout" bottom: "fc" top: "fd" dropout_param { dropout_ratio: 0.4 } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fd" bottom: "label" }
    """
    train = load_net(text, backend=numpy64(), phase="train")
    drop = layer_of(train, "drop")
    assert isinstance(drop, mt.DropoutLayer) and drop.bottoms == ("fc",) and drop.tops == ()
    assert drop.ratio == pytest.approx(0.4) and layer_of(train, "loss").bottoms == ("fc", "label")
    test = load_net(text, backend=numpy64())
    assert [layer.name for layer in test.layers] == ["in", "fc", "loss"]
    assert layer_of(test, "loss").bottoms == ("fc", "label")
    shared = text + 'layer { name: "acc" type: "Accuracy" bottom: "fc" bottom: "label" }'
    with pytest.raises(CaffeConversionError, match=r"layer 'drop'.*bottom 'fc' is also read by \['acc'\]"):
        load_net(shared, backend=numpy64(), phase="train")


def test_replaced_data_layer_with_a_mean_file(tmp_path):
    mean = np.arange(12.0).reshape(1, 3, 2, 2)  # Caffe's mean.binaryproto is (1, C, H, W)
    (tmp_path / "mean.binaryproto").write_bytes(numpy_to_blob(mean.astype(np.float32)).SerializeToString())
    (tmp_path / "net.prototxt").write_text("""
    layer { name: "d" type: "Data" top: "data" top: "label" data_param { source: "db" batch_size: 4 }
            transform_param { mean_file: "mean.binaryproto" scale: 2 crop_size: 2 } }
    """)
    with pytest.warns(UserWarning, match="crop_size/mirror are not applied"):
        net = load_net(str(tmp_path / "net.prototxt"), backend=numpy64(), input_shapes={"data": (4, 3, 2, 2)})
    x = np.random.default_rng(0).normal(size=(4, 3, 2, 2))
    feed(net, data=x)
    np.testing.assert_allclose(net.output_blobs["data"].to_numpy(), (x - mean) * 2, rtol=1e-12)


def test_sink_tops_cannot_be_read_and_loss_weight_only_on_losses():
    base = ('layer { name: "in" type: "Input" top: "data" top: "label" input_param { shape { dim: 4 dim: 3 } '
            'shape { dim: 4 } } }\n')
    read_loss = base + """
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" top: "loss" }
    layer { name: "use" type: "Softmax" bottom: "loss" top: "y" }
    """
    with pytest.raises(CaffeConversionError, match=r"layer 'use'.*reads \['loss'\], the output of \['loss'\]"):
        load_net(read_loss, backend=numpy64())
    weighted = base + 'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" loss_weight: 1 ' \
                      'inner_product_param { num_output: 2 } }'
    with pytest.raises(CaffeConversionError, match="only SoftmaxWithLoss, MultinomialLogisticLoss, EuclideanLoss "
                                                   "layers can be losses"):
        load_net(weighted, backend=numpy64())
    ignore = base + 'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" ' \
                    'loss_param { ignore_label: 1 } }'
    with pytest.raises(CaffeConversionError, match="ignore_label is not supported"):
        load_net(ignore, backend=numpy64())


def test_flatten_and_reshape():
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
    layer { name: "flat" type: "Flatten" bottom: "x" top: "flat" }
    layer { name: "re" type: "Reshape" bottom: "x" top: "re" reshape_param { shape { dim: 0 dim: -1 dim: 4 } } }
    layer { name: "re2" type: "Reshape" bottom: "x" top: "re2" reshape_param { shape { dim: 2 dim: 48 } } }
    """
    net = load_net(text, backend=numpy64())
    assert isinstance(layer_of(net, "flat"), CaffeReshapeLayer)
    assert net.output_blobs["flat"].shape == (2, 48)
    assert net.output_blobs["re"].shape == (2, 12, 4) and net.output_blobs["re2"].shape == (2, 48)
    x = np.arange(96.0).reshape(2, 3, 4, 4)
    feed(net, x=x)
    net.forward()
    np.testing.assert_array_equal(net.output_blobs["re"].to_numpy(), x.reshape(2, 12, 4))
    bad = text + 'layer { name: "re3" type: "Reshape" bottom: "x" top: "re3" ' \
                 'reshape_param { shape { dim: 4 dim: 24 } } }'
    with pytest.raises(CaffeConversionError, match="changes the batch dimension"):
        load_net(bad, backend=numpy64())


def test_param_specs_map_to_learning_rates_regularizers_and_sharing():
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" lr_mult: 0.5 decay_mult: 3 }
            param { name: "b" lr_mult: 0 decay_mult: 0 } inner_product_param { num_output: 3
            weight_filler { type: "xavier" variance_norm: AVERAGE } } }
    layer { name: "b" type: "InnerProduct" bottom: "x" top: "b" param { name: "w" } param { name: "b" }
            inner_product_param { num_output: 3 } }
    layer { name: "c" type: "InnerProduct" bottom: "x" top: "c" inner_product_param { num_output: 3 } }
    """
    net = load_net(text, backend=numpy64(), regularization="L1")
    a, c = layer_of(net, "a"), layer_of(net, "c")
    assert (a.weight_lr, a.bias_lr, a.weight_regu, a.bias_regu) == (0.5, 0.0, mt.L1Regu(3.0), mt.NoRegu())
    assert (c.weight_lr, c.bias_lr, c.weight_regu, c.bias_regu) == (1.0, 1.0, mt.L1Regu(1.0), mt.L1Regu(1.0))
    assert a.param_key == layer_of(net, "b").param_key == "caffe-params:w,b"
    assert net.params["a"][0].blob is net.params["b"][0].blob
    b = layer_of(net, "b")  # a sharer takes the owner's lr_mults and leaves the weight decay to it
    assert (b.weight_lr, b.bias_lr, b.weight_regu, b.bias_regu) == (0.5, 0.0, mt.NoRegu(), mt.NoRegu())
    np.testing.assert_array_equal(net.params["c"][0].blob.to_numpy(), 0)  # Caffe's default filler: constant 0
    limit = math.sqrt(3 / 3)  # xavier AVERAGE: (fan_in 3 + fan_out 3) / 2
    assert np.all(np.abs(net.params["a"][0].blob.to_numpy()) <= limit)
    partial = text.replace('param { name: "w" } param { name: "b" }', 'param { name: "w" }')
    with pytest.raises(CaffeConversionError, match=r"layer 'b'.*names only some of its params"):
        load_net(partial, backend=numpy64())
    disagreeing = text.replace('param { name: "w" } param { name: "b" }',
                               'param { name: "w" lr_mult: 2 } param { name: "b" }')
    with pytest.raises(CaffeConversionError, match=r"layer 'b'.*param 'w' has lr_mult 2.0, but the first layer "
                                                   r"sharing it has 0.5"):
        load_net(disagreeing, backend=numpy64())


def test_shared_params_decay_once_and_step_like_caffe():
    """Caffe's SGD step of a blob shared by two layers: w -= lr * (g_a + g_b + decay * w), one decay."""
    text = """
    layer { name: "in" type: "Input" top: "x" top: "y" input_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } } }
    layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" } param { name: "wb" }
            inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 0.5 } } }
    layer { name: "b" type: "InnerProduct" bottom: "a" top: "b" param { name: "w2" } param { name: "wb2" }
            inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.5 } } }
    layer { name: "c" type: "InnerProduct" bottom: "b" top: "c" param { name: "w" } param { name: "wb" }
            inner_product_param { num_output: 2 } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "c" bottom: "y" }
    """
    net = load_net(text, backend=numpy64(), phase="train")
    rng = np.random.default_rng(3)
    feed(net, x=rng.normal(size=(4, 3)), y=rng.normal(size=(4, 2)))
    w0 = net.params["a"][0].blob.to_numpy()
    lr, decay = 0.1, 0.01
    solver = mt.Solver(mt.SGD(), mt.SolverParameters(max_iter=1, regu_coef=decay, lr_policy=mt.LRPolicy.Fixed(lr)))
    state = solver.init(net)
    net.backward(0.0)  # the raw gradients of both sharers
    g = net.params["a"][0].gradient.to_numpy() + net.params["c"][0].gradient.to_numpy()
    solver.step(net, state)
    np.testing.assert_allclose(net.params["a"][0].blob.to_numpy(), w0 - lr * (g + decay * w0), rtol=1e-12)


def test_memory_and_hdf5_data_layers(tmp_path, monkeypatch):
    text = """
    layer { name: "mem" type: "MemoryData" top: "data" top: "label"
            memory_data_param { batch_size: 2 channels: 2 height: 1 width: 3 }
            transform_param { scale: 0.5 mean_value: 1 mean_value: 3 } }
    """
    data = np.arange(24.0).reshape(4, 2, 1, 3)
    net = load_net(text, backend=numpy64(), memory_data={"mem": (data, np.arange(4.0))})
    net.forward()
    mean = np.array([1.0, 3.0]).reshape(2, 1, 1)
    np.testing.assert_array_equal(net.output_blobs["data"].to_numpy(), (data[:2] - mean) * 0.5)
    placeholder = load_net(text, backend=numpy64())
    assert placeholder.output_blobs["data"].shape == (2, 2, 1, 3) and placeholder.output_blobs["label"].shape == (2,)

    folder = tmp_path / "nets"
    folder.mkdir()
    with h5py.File(folder / "train.h5", "w") as f:
        f["data"] = np.arange(30.0).reshape(10, 3)
        f["label"] = np.arange(10.0)
    (folder / "list.txt").write_text("train.h5\n")
    (folder / "net.prototxt").write_text("""
    layer { name: "h5" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { source: "list.txt" batch_size: 4 } }
    """)
    monkeypatch.chdir(tmp_path)  # the source list is found next to the prototxt
    net = load_net(str(folder / "net.prototxt"), backend=numpy64(), phase="train")
    net.forward()
    np.testing.assert_array_equal(net.output_blobs["label"].to_numpy(), [0, 1, 2, 3])
    assert load_net(str(folder / "net.prototxt"), backend=numpy64(), batch_size=5).output_blobs["data"].shape == (5, 3)


# --- the command line ------------------------------------------------------------------------------------


def test_cli_convert_writes_flat_weights(tmp_path, capsys):
    weights = v1_weights()
    prototxt, caffemodel = write_v1_model(tmp_path, weights)
    out = str(tmp_path / "v1.h5")
    assert cli_main(["convert", prototxt, caffemodel, out]) == 0
    assert "wrote 6 parameters of 3 layers" in capsys.readouterr().out
    with h5py.File(out, "r") as f:
        assert sorted(f) == ["conv___bias", "conv___filter", "fc2___bias", "fc2___weight", "fc___bias", "fc___weight"]
        np.testing.assert_array_equal(f["fc___weight"][()], weights["fc"][0].astype(np.float32))
    net = load_net(prototxt, backend=mt.NumpyBackend("float32"))
    mt.load_flat_weights(net, out)
    np.testing.assert_array_equal(net.params["conv"][0].blob.to_numpy(), weights["conv"][0].astype(np.float32))
    assert cli_main(["convert", prototxt, str(tmp_path / "nope.caffemodel"), out]) == 2
    assert "caffemodel file not found" in capsys.readouterr().err


def test_cli_classify_prints_top_classes(tmp_path, capsys):
    weights = v1_weights()
    prototxt, caffemodel = write_v1_model(tmp_path, weights)
    x = np.random.default_rng(2).normal(size=(5, 3, 6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x * 4)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["images"] = x * 4
    expected = torch_v1_forward((x * 4 * 0.25).astype(np.float64), weights)
    for path, extra in ((tmp_path / "x.npy", []), (tmp_path / "x.h5", ["--dataset", "images"])):
        args = ["classify", prototxt, caffemodel, str(path), "--scale", "0.25", "--top", "2", "--batch-size", "2",
                "--backend", "numpy", *extra]
        assert cli_main(args) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 5
        for i, line in enumerate(lines):
            index, rest = line.split(": ")
            fields = rest.split()
            classes, scores = [int(c) for c in fields[::2]], [float(s.strip("()")) for s in fields[1::2]]
            assert int(index) == i and classes == list(np.argsort(-expected[i])[:2])
            np.testing.assert_allclose(scores, expected[i][classes], atol=2e-6)
    assert cli_main(["classify", prototxt, caffemodel, str(tmp_path / "x.h5")]) == 2
    assert "has no dataset 'data'" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((2, 7)))
    assert cli_main(["classify", prototxt, caffemodel, str(tmp_path / "bad.npy")]) == 2
    assert "do not fit the net's input (3, 6, 6)" in capsys.readouterr().err
