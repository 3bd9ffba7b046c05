"""Caffe's EuclideanLoss becomes a SquareLossLayer: the loss and the gradients of both bottoms equal a
torch float64 re-computation (Caffe: ``sum ||a - b||^2 / (2N)`` times ``loss_weight``)."""

import numpy as np
import pytest
import torch

import mocha_triton as mt
from mocha_triton.caffe import load_net
from support import assert_close

NET = """
layer { name: "in" type: "Input" top: "x" top: "target"
        input_param { shape { dim: 5 dim: 4 } shape { dim: 5 dim: 3 } } }
layer { name: "fc" type: "InnerProduct" bottom: "x" top: "fc" inner_product_param { num_output: 3
        weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "EuclideanLoss" bottom: "fc" bottom: "target" top: "loss" loss_weight: 0.5 }
"""


def test_euclidean_loss_matches_torch():
    rng = np.random.default_rng(0)
    x, target = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    net = load_net(NET, backend=mt.NumpyBackend("float64", seed=1))
    assert isinstance(net.get_state("loss").layer, mt.SquareLossLayer)
    net.output_blobs["x"].copy_from(x)
    net.output_blobs["target"].copy_from(target)
    objective = net.forward()
    net.backward()
    w, b = (torch.tensor(p.blob.to_numpy(), requires_grad=True) for p in net.params["fc"])
    loss = 0.5 * 0.5 * ((torch.tensor(x) @ w.T + b - torch.tensor(target)) ** 2).sum() / 5
    loss.backward()
    assert objective == pytest.approx(loss.item(), rel=1e-12)
    assert_close(net.params["fc"][0].gradient.to_numpy(), w.grad.numpy(), "float64", reduction=5)
    assert_close(net.params["fc"][1].gradient.to_numpy(), b.grad.numpy(), "float64", reduction=5)


def test_euclidean_loss_needs_two_bottoms():
    bad = NET.replace('bottom: "fc" bottom: "target" top: "loss"', 'bottom: "fc" top: "loss"')
    with pytest.raises(mt.caffe.CaffeConversionError, match="needs two bottoms"):
        load_net(bad, backend=mt.NumpyBackend("float64"))
