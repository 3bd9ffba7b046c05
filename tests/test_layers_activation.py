"""NeuronLayer: every neuron of the contract as a layer of its own, forward and backward against torch
float64 autograd, two bottoms, the Triton backend against NumPy, and bad configurations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.blob import Blob
from mocha_triton.layers.activation import NeuronLayer
from mocha_triton.layers.base import LayerError
from mocha_triton.neurons import Exponential, Identity, LReLU, ReLU, Sigmoid, Tanh
from support import assert_close

NEURONS = [(Identity(), lambda x: x), (ReLU(), torch.relu), (LReLU(0.2), lambda x: torch.where(x > 0, x, 0.2 * x)),
           (Sigmoid(), torch.sigmoid), (Tanh(), torch.tanh), (Exponential(), torch.exp)]


def run(layer, backend, arrays, grads):
    blobs = [Blob.from_numpy(backend, a, f"x{i}") for i, a in enumerate(arrays)]
    diffs = [Blob.zeros(backend, a.shape, f"dx{i}") for i, a in enumerate(arrays)]
    state = layer.setup(backend, blobs, diffs)
    state.forward(blobs)
    state.blobs_diff = [Blob.from_numpy(backend, g, f"dy{i}") for i, g in enumerate(grads)]  # as a Net would
    state.backward(blobs, diffs)
    return [y.to_numpy() for y in state.blobs], [d.to_numpy() for d in diffs]


@pytest.mark.parametrize("neuron, reference", NEURONS, ids=[n.op_name for n, _ in NEURONS])
def test_neuron_layer_matches_torch(neuron, reference):
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(3, 4, 2)), rng.normal(size=(5,)) + 0.01]
    grads = [rng.normal(size=a.shape) for a in arrays]
    layer = NeuronLayer(name="act", neuron=neuron, bottoms=["a", "b"], tops=["ya", "yb"])
    outs, dxs = run(layer, NumpyBackend("float64"), arrays, grads)
    for a, g, y, dx in zip(arrays, grads, outs, dxs):
        t = torch.tensor(a, requires_grad=True)
        ty = reference(t)
        ty.backward(torch.tensor(g))
        assert_close(y, ty.detach().numpy(), "float64")
        assert_close(dx, t.grad.numpy(), "float64")


def test_triton_backend_matches_numpy():
    rng = np.random.default_rng(1)
    arrays, grads = [rng.normal(size=(4, 6)).astype(np.float32)], [rng.normal(size=(4, 6)).astype(np.float32)]
    layer = NeuronLayer(name="act", neuron=Sigmoid(), bottoms=["a"], tops=["y"])
    numpy_result = run(layer, NumpyBackend("float32"), arrays, grads)
    triton_result = run(layer, TritonBackend(), arrays, grads)
    for want, got in zip(numpy_result, triton_result):
        assert_close(got[0], want[0], "float32")


def test_bad_configurations_name_the_layer():
    with pytest.raises(LayerError, match="NeuronLayer 'act': neuron must be a mocha_triton.neurons.Neuron"):
        NeuronLayer(name="act", neuron="relu", bottoms=["a"], tops=["y"])
    with pytest.raises(LayerError, match="NeuronLayer 'act': needs one top per bottom"):
        NeuronLayer(name="act", bottoms=["a", "b"], tops=["y"])
