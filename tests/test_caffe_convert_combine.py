"""Caffe's Concat, Eltwise and Crop layers through the converter (mocha_triton/caffe/convert.py).

* An inception-like block (three branches joined by a Concat, one branch not needing a gradient), a
  residual Eltwise SUM with coefficients and ResNet's in-place ReLU after it (fused into the
  ElementWiseLayer), a two-bottom Crop and a softmax loss: the objective and every parameter
  gradient equal a torch float64 re-computation with the same weights; the splits Caffe would insert
  are there.
* A legacy V1 net (CONCAT with concat_dim, ELTWISE MAX and PROD of three bottoms, a ReLU fused into
  the concat), likewise against torch; ``stable_prod_grad: false`` and MAX coefficients give warnings.
* Errors name the file, the layer and the problem: coefficients that do not fit, both axis and
  concat_dim, a crop window that does not fit, an activation after a Crop.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

import mocha_triton as mt
from mocha_triton.caffe import CaffeConversionError, feed, load_net
from mocha_triton.layers.combine import ConcatLayer, CropLayer, ElementWiseLayer
from support import assert_close

GAUSS = 'weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "gaussian" std: 0.5 }'

INCEPTION_RESIDUAL = f"""
name: "mini-inception-residual"
layer {{ name: "in" type: "Input" top: "data" top: "label"
        input_param {{ shape {{ dim: 2 dim: 3 dim: 6 dim: 6 }} shape {{ dim: 2 }} }} }}
layer {{ name: "b1" type: "Convolution" bottom: "data" top: "b1"
        convolution_param {{ num_output: 2 kernel_size: 1 {GAUSS} }} }}
layer {{ name: "b1_relu" type: "ReLU" bottom: "b1" top: "b1" }}
layer {{ name: "b3" type: "Convolution" bottom: "data" top: "b3"
        convolution_param {{ num_output: 3 kernel_size: 3 pad: 1 {GAUSS} }} }}
layer {{ name: "b3_relu" type: "ReLU" bottom: "b3" top: "b3" }}
layer {{ name: "pool" type: "Pooling" bottom: "data" top: "pool"
        pooling_param {{ pool: MAX kernel_size: 3 stride: 1 pad: 1 }} }}
layer {{ name: "mix" type: "Concat" bottom: "b1" bottom: "b3" bottom: "pool" top: "mix" }}
layer {{ name: "res" type: "Convolution" bottom: "mix" top: "res"
        convolution_param {{ num_output: 8 kernel_size: 3 pad: 1 {GAUSS} }} }}
layer {{ name: "sum" type: "Eltwise" bottom: "mix" bottom: "res" top: "sum"
        eltwise_param {{ operation: SUM coeff: 1 coeff: 0.5 }} }}
layer {{ name: "sum_relu" type: "ReLU" bottom: "sum" top: "sum" }}
layer {{ name: "small" type: "Pooling" bottom: "data" top: "small"
        pooling_param {{ pool: AVE kernel_size: 2 stride: 2 }} }}
layer {{ name: "crop" type: "Crop" bottom: "sum" bottom: "small" top: "crop" crop_param {{ axis: 2 offset: 1 }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "crop" top: "fc" inner_product_param {{ num_output: 4 {GAUSS} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }}
"""


def numpy64(seed: int = 0) -> mt.NumpyBackend:
    return mt.NumpyBackend("float64", seed=seed)


def torch_params(net: mt.Net) -> dict[str, list[torch.Tensor]]:
    return {name: [torch.tensor(p.blob.to_numpy(), requires_grad=True) for p in ps] for name, ps in net.params.items()}


def check_gradients(net: mt.Net, params: dict[str, list[torch.Tensor]], reduction: int) -> None:
    for name, ps in net.params.items():
        for p, t in zip(ps, params[name]):
            assert_close(p.gradient.to_numpy(), t.grad.numpy(), "float64", reduction, what=f"{name}.{p.name}")


def test_inception_and_residual_blocks_match_torch():
    net = load_net(INCEPTION_RESIDUAL, backend=numpy64(seed=1), phase="train")
    assert isinstance(net.get_layer("mix"), ConcatLayer) and net.get_layer("mix").dim == 1
    summed = net.get_layer("sum")
    assert isinstance(summed, ElementWiseLayer) and summed.operation == "add" and summed.coeffs == (1.0, 0.5)
    assert summed.neuron == mt.neurons.ReLU()  # ResNet's in-place ReLU is fused into the sum
    assert "sum_relu" not in [layer.name for layer in net.layers]
    crop = net.get_layer("crop")
    assert isinstance(crop, CropLayer) and (crop.axis, crop.offset) == (2, (1,))
    assert "mix_split" in [layer.name for layer in net.layers]  # mix feeds res and sum: Caffe's split
    net.check_bp_topology()
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 6))
    label = np.array([3.0, 1.0])
    feed(net, data=x, label=label)
    objective = net.forward()
    net.backward()
    assert net.output_blobs["crop"].shape == (2, 8, 3, 3)

    p = torch_params(net)
    tx = torch.tensor(x)
    b1 = torch.relu(F.conv2d(tx, *p["b1"]))
    b3 = torch.relu(F.conv2d(tx, *p["b3"], padding=1))
    pool = F.max_pool2d(tx, 3, 1, padding=1)
    mix = torch.cat([b1, b3, pool], dim=1)
    s = torch.relu(mix + 0.5 * F.conv2d(mix, *p["res"], padding=1))
    fc = F.linear(s[:, :, 1:4, 1:4].flatten(1), *p["fc"])
    loss = F.cross_entropy(fc, torch.tensor(label, dtype=torch.long))
    loss.backward()
    assert abs(objective - float(loss.detach())) <= 1e-12 * abs(float(loss.detach()))
    check_gradients(net, p, reduction=72)


V1_COMBINE = f"""
name: "v1-combine"
input: "data" input_dim: 2 input_dim: 3 input_dim: 4 input_dim: 4
input: "label" input_dim: 2 input_dim: 1 input_dim: 1 input_dim: 1
layers {{ name: "a" type: CONVOLUTION bottom: "data" top: "a"
         convolution_param {{ num_output: 2 kernel_size: 1 {GAUSS} }} }}
layers {{ name: "b" type: CONVOLUTION bottom: "data" top: "b"
         convolution_param {{ num_output: 2 kernel_size: 1 {GAUSS} }} }}
layers {{ name: "c" type: CONVOLUTION bottom: "data" top: "c"
         convolution_param {{ num_output: 2 kernel_size: 1 {GAUSS} }} }}
layers {{ name: "mx" type: ELTWISE bottom: "a" bottom: "b" bottom: "c" top: "mx"
         eltwise_param {{ operation: MAX coeff: 1 coeff: 2 coeff: 3 }} }}
layers {{ name: "pr" type: ELTWISE bottom: "a" bottom: "b" bottom: "c" top: "pr"
         eltwise_param {{ operation: PROD stable_prod_grad: false }} }}
layers {{ name: "cat" type: CONCAT bottom: "mx" bottom: "pr" top: "cat" concat_param {{ concat_dim: 1 }} }}
layers {{ name: "relu" type: RELU bottom: "cat" top: "cat" }}
layers {{ name: "fc" type: INNER_PRODUCT bottom: "cat" top: "fc" inner_product_param {{ num_output: 3 {GAUSS} }} }}
layers {{ name: "loss" type: SOFTMAX_LOSS bottom: "fc" bottom: "label" top: "loss" }}
"""


def test_v1_concat_and_eltwise_max_prod_match_torch():
    with pytest.warns(UserWarning) as record:
        net = load_net(V1_COMBINE, backend=numpy64(seed=2), phase="train", input_shapes={"label": (2,)})
    messages = " ".join(str(w.message) for w in record)
    assert "stable_prod_grad: false is ignored" in messages and "coeff is ignored by MAX" in messages
    assert net.get_layer("mx").operation == "max" and net.get_layer("mx").coeffs == ()
    assert net.get_layer("pr").operation == "multiply"
    assert net.get_layer("cat").neuron == mt.neurons.ReLU()
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4, 4))
    label = np.array([0.0, 2.0])
    feed(net, data=x, label=label)
    objective = net.forward()
    net.backward()

    p = torch_params(net)
    tx = torch.tensor(x)
    a, b, c = (F.conv2d(tx, *p[k]) for k in "abc")
    branches = torch.stack([a, b, c])
    cat = torch.relu(torch.cat([branches.max(0).values, branches.prod(0)], dim=1))
    loss = F.cross_entropy(F.linear(cat.flatten(1), *p["fc"]), torch.tensor(label, dtype=torch.long))
    loss.backward()
    assert abs(objective - float(loss.detach())) <= 1e-12 * abs(float(loss.detach()))
    check_gradients(net, p, reduction=64)


HEAD = """
layer { name: "in" type: "Input" top: "x" top: "y" input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 }
        shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
"""


@pytest.mark.parametrize("layer, match", [
    ('layer { name: "e" type: "Eltwise" bottom: "x" bottom: "x" top: "z" eltwise_param { coeff: 1 } }',
     r"layer 'e' \(type 'Eltwise'\): has 1 coeff values for 2 bottoms"),
    ('layer { name: "e" type: "Eltwise" bottom: "x" bottom: "x" top: "z" '
     'eltwise_param { operation: PROD coeff: 1 coeff: 2 } }', r"layer 'e' \(type 'Eltwise'\): coeff is for SUM only"),
    ('layer { name: "e" type: "Eltwise" bottom: "x" bottom: "y" top: "z" }',
     r"ElementWiseLayer 'e': bottoms must all have one shape"),
    ('layer { name: "j" type: "Concat" bottom: "x" bottom: "y" top: "z" concat_param { axis: 1 concat_dim: 1 } }',
     r"layer 'j' \(type 'Concat'\): give either concat_param.axis or the legacy concat_dim"),
    ('layer { name: "j" type: "Concat" bottom: "x" bottom: "y" top: "z" }',
     r"ConcatLayer 'j': bottoms must have the same shape except along dim 1"),
    ('layer { name: "k" type: "Crop" bottom: "x" bottom: "y" top: "z" crop_param { offset: 3 } }',
     r"CropLayer 'k': the window of shape \(1, 2, 3, 3\) at offset \(0, 0, 3, 3\) does not fit"),
    ('layer { name: "k" type: "Crop" bottom: "x" top: "z" }', r"layer 'k' \(type 'Crop'\).*needs two bottoms"),
])
def test_conversion_errors_name_the_layer(layer, match):
    with pytest.raises(CaffeConversionError, match=match) as info:
        load_net(HEAD + layer, backend=numpy64())
    assert info.match("<text>")


def test_concat_axis_and_crop_defaults():
    text = HEAD + """
    layer { name: "k" type: "Crop" bottom: "x" bottom: "y" top: "z" }
    layer { name: "j" type: "Concat" bottom: "z" bottom: "y" top: "w" concat_param { axis: -1 } }
    """
    net = load_net(text, backend=numpy64())
    x = np.arange(50.0).reshape(1, 2, 5, 5)
    y = -np.arange(18.0).reshape(1, 2, 3, 3)
    feed(net, x=x, y=y)
    net.forward()
    np.testing.assert_array_equal(net.output_blobs["w"].to_numpy(), np.concatenate([x[:, :, :3, :3], y], axis=-1))
