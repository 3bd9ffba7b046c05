"""Caffe's ArgMax layer through the converter (mocha_triton/caffe/convert.py).

* With ``axis``: an :class:`ArgmaxLayer` along that axis (negative counts from the end, as in Caffe);
  the indices equal torch's argmax with keepdim, in the V2 and the legacy V1 (``ARGMAX``) formats.
* Without an axis (Caffe's default): the index over all of a sample's values, top ``(N, 1, 1)``, on
  2-D scores (a classifier's output after an InnerProduct and a Softmax) and 4-D blobs.
* Ties give the first index (Mocha's rule; documented difference from Caffe).
* Refused with errors naming the file and the layer: ``top_k`` other than 1, ``out_max_val: true``, the
  batch axis (given as 0 or negative), several bottoms.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mocha_triton as mt
from mocha_triton.caffe import CaffeConversionError, feed, load_net
from mocha_triton.caffe.convert import SUPPORTED_TYPES, CaffeArgMaxLayer
from mocha_triton.layers.output import ArgmaxLayer


def numpy64(seed: int = 0) -> mt.NumpyBackend:
    return mt.NumpyBackend("float64", seed=seed)


def input_net(shape: tuple[int, ...], argmax_param: str = "", layer_type: str = "ArgMax") -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return f"""
    layer {{ name: "in" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }}
    layer {{ name: "am" type: "{layer_type}" bottom: "x" top: "idx" {argmax_param} }}
    """


@pytest.mark.parametrize("axis", [1, 2, 3, -1, -3])
def test_argmax_with_an_axis_matches_torch(axis):
    net = load_net(input_net((2, 3, 4, 5), f"argmax_param {{ axis: {axis} }}"), backend=numpy64())
    layer = net.get_layer("am")
    assert isinstance(layer, ArgmaxLayer) and layer.dim == axis
    x = np.random.default_rng(axis + 5).integers(-2, 3, (2, 3, 4, 5)).astype(np.float64)  # ties too
    feed(net, x=x)
    net.forward()
    expected = torch.argmax(torch.from_numpy(x), dim=axis, keepdim=True).double().numpy()
    np.testing.assert_array_equal(net.output_blobs["idx"].to_numpy(), expected)


def test_argmax_without_an_axis_of_a_classifier_is_per_sample():
    text = """
    layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 4 dim: 6 } } }
    layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc"
            inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 1 } } }
    layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
    layer { name: "am" type: "ArgMax" bottom: "prob" top: "label" }
    """
    net = load_net(text, backend=numpy64(seed=3))
    assert isinstance(net.get_layer("am"), CaffeArgMaxLayer)
    x = np.random.default_rng(1).standard_normal((4, 6))
    feed(net, x=x)
    net.forward()
    w = net.params["fc"][0].blob.to_numpy()
    prob = torch.softmax(torch.from_numpy(x @ w.T), dim=1)
    predicted = net.output_blobs["label"].to_numpy()
    assert predicted.shape == (4, 1, 1)  # Caffe's (N, 1, top_k)
    np.testing.assert_array_equal(predicted[:, 0, 0], torch.argmax(prob, dim=1).double().numpy())


def test_argmax_without_an_axis_of_a_4d_blob_flattens_each_sample():
    net = load_net(input_net((2, 3, 2, 2)), backend=numpy64())
    x = np.zeros((2, 3, 2, 2))
    x[0, 2, 1, 0] = 5.0  # flat index 2 * 4 + 1 * 2 + 0 = 10
    x[1, 0, 0, 1] = x[1, 1, 1, 1] = 7.0  # a tie: flat indices 1 and 7, the first wins
    feed(net, x=x)
    net.forward()
    np.testing.assert_array_equal(net.output_blobs["idx"].to_numpy(), [[[[10.0]]], [[[1.0]]]])  # Caffe: (N, 1, 1, 1)
    assert not net.get_layer("am").can_backprop


def test_legacy_v1_argmax():
    text = """
    input: "x" input_dim: 3 input_dim: 4 input_dim: 1 input_dim: 2
    layers { name: "am" type: ARGMAX bottom: "x" top: "idx" argmax_param { axis: 1 } }
    """
    net = load_net(text, backend=numpy64())
    x = np.random.default_rng(2).standard_normal((3, 4, 1, 2))
    feed(net, x=x)
    net.forward()
    expected = torch.argmax(torch.from_numpy(x), dim=1, keepdim=True).double().numpy()
    np.testing.assert_array_equal(net.output_blobs["idx"].to_numpy(), expected)
    assert "ArgMax" in SUPPORTED_TYPES and "ArgMax" in mt.caffe.SUPPORTED_TYPES


@pytest.mark.parametrize("argmax_param, match", [
    ("argmax_param { top_k: 2 }", r"layer 'am' \(type 'ArgMax'\): argmax_param.top_k 2 is not supported \(only 1\)"),
    ("argmax_param { out_max_val: true }", r"layer 'am' \(type 'ArgMax'\): argmax_param.out_max_val: true is not "
                                           r"supported"),
    ("argmax_param { axis: 0 }", r"layer 'am' \(type 'ArgMax'\): argmax_param.axis 0 \(the batch axis\) is not "
                                 r"supported"),
    ("argmax_param { axis: -4 }", r"ArgmaxLayer 'am': dim -4 is the batch axis of bottom 'x'"),
    ("argmax_param { axis: 4 }", r"ArgmaxLayer 'am': dim 4 is out of range for bottom 'x'"),
])
def test_unsupported_argmax_settings_name_the_layer(argmax_param, match):
    with pytest.raises(CaffeConversionError, match=match) as info:
        load_net(input_net((2, 3, 4, 5), argmax_param), backend=numpy64())
    assert "<text>" in str(info.value)


def test_argmax_with_two_bottoms_is_refused():
    text = """
    layer { name: "in" type: "Input" top: "x" top: "y"
            input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }
    layer { name: "am" type: "ArgMax" bottom: "x" bottom: "y" top: "i" top: "j" }
    """
    with pytest.raises(CaffeConversionError, match=r"layer 'am' \(type 'ArgMax'\): needs one bottom and one top"):
        load_net(text, backend=numpy64())
