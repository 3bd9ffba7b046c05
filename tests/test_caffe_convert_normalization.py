"""Caffe LRN and Power layers as mocha-triton LRNLayer and PowerLayer (mocha_triton/caffe/convert.py).

* A small net (convolution + ReLU, LRN across channels, LRN within a channel, an in-place Power, an
  inner product, softmax) converts, and its forward equals a torch float64 re-computation written
  from Caffe's formulas (torch's local_response_norm, avg_pool2d of the squares); in the train phase
  the loss and the parameter gradients equal torch autograd's.
* The parameters map as documented (local_size/alpha/beta/k/norm_region, power/scale/shift; Caffe's
  defaults; k ignored within a channel, with a warning), also from the legacy V1 format.
* Errors: an even local_size, and layers with several bottoms.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

import mocha_triton as mt
from mocha_triton.caffe import CaffeConversionError, feed, load_net
from mocha_triton.layers.normalization import LRNLayer, PowerLayer
from support import assert_close

NET = """
name: "norm-net"
layer { name: "data" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 5 dim: 5 } shape { dim: 2 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.2 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "norm1" type: "LRN" bottom: "conv1" top: "norm1"
        lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }
layer { name: "norm2" type: "LRN" bottom: "norm1" top: "norm2"
        lrn_param { local_size: 3 alpha: 4 beta: 0.6 norm_region: WITHIN_CHANNEL } }
layer { name: "pow" type: "Power" bottom: "norm2" top: "norm2" power_param { power: 2 scale: 0.5 shift: 1 } }
layer { name: "ip" type: "InnerProduct" bottom: "norm2" top: "ip"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" include { phase: TRAIN } }
"""


def torch_forward(x: torch.Tensor, params: dict[str, list[torch.Tensor]]) -> torch.Tensor:
    """The net's logits written from Caffe's formulas in float64."""
    w, b = params["conv1"]
    h = torch.relu(F.conv2d(x, w, b, padding=1))
    h = F.local_response_norm(h, 3, alpha=0.5, beta=0.75, k=2.0)  # k + alpha / 3 * sum over 3 channels
    mean = F.avg_pool2d(h * h, 3, stride=1, padding=1, count_include_pad=True)  # Caffe's WITHIN_CHANNEL
    h = h * (1.0 + 4.0 * mean) ** -0.6
    h = (1.0 + 0.5 * h) ** 2
    w, b = params["ip"]
    return h.flatten(1) @ w.T + b


def net_params(net: mt.Net, requires_grad: bool = False) -> dict[str, list[torch.Tensor]]:
    return {name: [torch.tensor(p.blob.to_numpy(), dtype=torch.float64, requires_grad=requires_grad)
                   for p in params] for name, params in net.params.items()}


def test_net_with_lrn_and_power_converts_and_matches_torch():
    net = load_net(NET, backend=mt.NumpyBackend("float64", seed=3))
    assert [type(layer).__name__ for layer in net.layers][:5] == ["InputLayer", "ConvolutionLayer", "LRNLayer",
                                                                 "LRNLayer", "PowerLayer"]
    power = net.get_layer("pow")
    assert power.bottoms == ("norm2",) and power.tops == ("norm2/pow",)  # out of place, read by ip
    assert net.get_layer("ip").bottoms == ("norm2/pow",)
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 5))
    feed(net, data=x)
    net.forward()
    logits = torch_forward(torch.tensor(x), net_params(net))
    assert_close(net.output_blobs["ip"].to_numpy(), logits.numpy(), "float64", 150)
    assert_close(net.output_blobs["prob"].to_numpy(), torch.softmax(logits, 1).numpy(), "float64", 150)
    assert net.output_blobs["norm2/pow"].shape == (2, 6, 5, 5)


def test_train_phase_gradients_match_torch_autograd():
    net = load_net(NET, backend=mt.NumpyBackend("float64", seed=4), phase="train")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 5))
    label = np.array([1.0, 3.0])
    feed(net, data=x, label=label)
    loss = net.forward()
    net.backward()
    params = net_params(net, requires_grad=True)
    want = F.cross_entropy(torch_forward(torch.tensor(x), params), torch.tensor(label, dtype=torch.long))
    want.backward()
    want = float(want.detach())
    assert abs(loss - want) <= 1e-12 * abs(want)
    for name, tensors in params.items():
        for param, tensor in zip(net.params[name], tensors):
            assert_close(param.gradient.to_numpy(), tensor.grad.numpy(), "float64", 150, what=f"{name}.{param.name}")


def test_parameters_map_like_caffe():
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 4 dim: 3 dim: 3 } } }
    layer { name: "default" type: "LRN" bottom: "x" top: "a" }
    layer { name: "across" type: "LRN" bottom: "a" top: "b"
            lrn_param { local_size: 7 alpha: 0.0001 beta: 0.5 k: 3 norm_region: ACROSS_CHANNELS } }
    layer { name: "within" type: "LRN" bottom: "b" top: "c" lrn_param { local_size: 3 alpha: 5e-05 beta: 0.75
                                                                        norm_region: WITHIN_CHANNEL } }
    layer { name: "plain" type: "Power" bottom: "c" top: "d" }
    layer { name: "pow" type: "Power" bottom: "d" top: "e" power_param { power: -0.5 scale: 2 shift: 0.25 } }
    """
    net = load_net(text, backend=mt.NumpyBackend())
    default, across, within = (net.get_layer(name) for name in ("default", "across", "within"))
    assert isinstance(default, LRNLayer)
    assert (default.kernel, default.scale, default.power, default.shift, default.mode) == (5, 1.0, 0.75, 1.0,
                                                                                          "across_channel")
    assert (across.kernel, across.scale, across.power, across.shift, across.mode) == (7, 0.0001, 0.5, 3.0,
                                                                                     "across_channel")
    assert (within.kernel, within.scale, within.power, within.shift, within.mode) == (3, 5e-05, 0.75, 1.0,
                                                                                     "within_channel")
    plain, pow_ = net.get_layer("plain"), net.get_layer("pow")
    assert isinstance(plain, PowerLayer) and (plain.power, plain.scale, plain.shift) == (1.0, 1.0, 0.0)
    assert (pow_.power, pow_.scale, pow_.shift) == (-0.5, 2.0, 0.25)
    for name in ("LRN", "Power"):
        assert name in mt.caffe.SUPPORTED_TYPES


def test_within_channel_ignores_k_like_caffe_and_says_so():
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
    layer { name: "norm" type: "LRN" bottom: "x" top: "y" lrn_param { k: 2 norm_region: WITHIN_CHANNEL } }
    """
    with pytest.warns(UserWarning, match=r"layer 'norm' \(type 'LRN'\): lrn_param.k = 2.0 is ignored for "
                                         r"WITHIN_CHANNEL"):
        net = load_net(text, backend=mt.NumpyBackend("float64"))
    assert net.get_layer("norm").shift == 1.0
    x = np.random.default_rng(2).standard_normal((1, 2, 3, 3))
    feed(net, x=x)
    net.forward()
    tx = torch.tensor(x)
    mean = F.avg_pool2d(tx * tx, 5, stride=1, padding=2, count_include_pad=True)  # default local_size 5
    assert_close(net.output_blobs["y"].to_numpy(), (tx * (1.0 + mean) ** -0.75).numpy(), "float64", 25)


def test_v1_lrn_and_power_layers():
    text = """
    input: "x" input_dim: 2 input_dim: 5 input_dim: 2 input_dim: 2
    layers { name: "norm" type: LRN bottom: "x" top: "n" lrn_param { local_size: 3 alpha: 0.3 beta: 0.9 k: 1.5 } }
    layers { name: "sq" type: POWER bottom: "n" top: "n" power_param { power: 2 shift: 1 } }
    """
    net = load_net(text, backend=mt.NumpyBackend("float64"))
    norm, square = net.get_layer("norm"), net.get_layer("sq")
    assert (norm.kernel, norm.scale, norm.power, norm.shift) == (3, 0.3, 0.9, 1.5)
    assert (square.power, square.scale, square.shift) == (2.0, 1.0, 1.0) and square.tops == ("n/sq",)
    x = np.random.default_rng(3).standard_normal((2, 5, 2, 2))
    feed(net, x=x)
    net.forward()
    want = (1.0 + F.local_response_norm(torch.tensor(x), 3, alpha=0.3, beta=0.9, k=1.5)) ** 2
    assert_close(net.output_blobs["n/sq"].to_numpy(), want.numpy(), "float64", 3)


@pytest.mark.parametrize("layer, match", [
    ('layer { name: "n" type: "LRN" bottom: "x" top: "y" lrn_param { local_size: 4 } }',
     r"layer 'n' \(type 'LRN'\): local_size must be odd \(Caffe's rule\), got 4"),
    ('layer { name: "n" type: "LRN" bottom: "x" bottom: "x" top: "y" }', r"layer 'n' \(type 'LRN'\): needs one bottom"),
    ('layer { name: "p" type: "Power" bottom: "x" top: "y" top: "z" }',
     r"layer 'p' \(type 'Power'\): needs one bottom"),
    ('layer { name: "n" type: "LRN" bottom: "x" top: "y" lrn_param { alpha: -1 } }',
     r"layer 'n' \(type 'LRN'\): LRNLayer 'n': scale must be >= 0"),
])
def test_errors_name_the_layer(layer, match):
    text = 'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }\n' + layer
    with pytest.raises(CaffeConversionError, match=match):
        load_net(text, backend=mt.NumpyBackend())
