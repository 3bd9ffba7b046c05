"""ChannelPoolingLayer: max and mean pooling along one axis of bottoms of any rank (Mocha's layer).

Tops and bottom gradients against torch float64 (the axis moved last, padded, unfolded; autograd for the
backward) on NumpyBackend float64 and float32, for several ranks, axes (positive and negative
``channel_dim``) and several bottoms of different shapes, as Mocha's test does; through a net (an inner
product feeding channel pooling feeding a square loss); the Triton backend against the NumPy backend in
float32; Mocha's output sizes; bad configurations and inputs name the layer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.blob import Blob
from mocha_triton.layers.base import LayerError
from mocha_triton.layers.data import MemoryDataLayer
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.layers.pointwise_loss import SquareLossLayer
from mocha_triton.layers.pooling import ChannelPoolingLayer, Pooling
from mocha_triton.net import Net
from support import assert_close


def torch_channel_pool(x: torch.Tensor, axis: int, kernel: int, stride: int, pad: tuple[int, int],
                       mean: bool) -> torch.Tensor:
    """Pool x along ``axis`` with Mocha's windows: move the axis last, pad it (zeros for mean, -inf for
    max) far enough for every window, unfold, reduce (the mean divides by the kernel), move it back."""
    c = x.shape[axis]
    front, back = pad
    pooled = math.ceil((c + front + back - kernel) / stride) + 1
    if (pooled - 1) * stride >= c + front:
        pooled -= 1
    length = max(front + c, (pooled - 1) * stride + kernel)
    rows = F.pad(x.movedim(axis, -1), (front, length - front - c), value=0.0 if mean else float("-inf"))
    windows = rows.unfold(-1, kernel, stride)[..., :pooled, :]
    y = windows.sum(dim=-1) / kernel if mean else windows.max(dim=-1).values
    return y.movedim(-1, axis)


CONFIGS = [  # (bottom shapes, channel_dim, kernel, stride, pad)
    ([(2, 9, 3, 4), (3, 7, 2, 2)], 1, 3, 2, (2, 2)),  # Mocha's test: two bottoms of different shapes
    ([(2, 8, 3, 4)], 1, 5, 1, (2, 2)),  # LRN's across-channel window
    ([(2, 3, 6, 4)], 2, 2, 2, (0, 1)),  # the height axis, a dropped last window
    ([(2, 3, 4, 7)], -1, 3, 3, (0, 0)),  # the last axis; the last window past it, divided by 3
    ([(4, 6)], 1, 4, 1, (1, 2)),  # a 2-D blob, asymmetric padding
    ([(2, 3, 5, 2, 2)], -3, 2, 1, (1, 1)),  # 5-D, a negative axis in the middle
    ([(3, 5, 2)], 1, 6, 1, (1, 0)),  # a window as long as the padded axis
]


def setup_layer(layer, backend, arrays: list[np.ndarray], with_diffs: bool = True):
    blobs = [Blob.from_numpy(backend, a, name) for a, name in zip(arrays, layer.bottoms)]
    diffs = [Blob.from_numpy(backend, np.full_like(a, np.nan), name + "-diff") if with_diffs else None
             for a, name in zip(arrays, layer.bottoms)]
    state = layer.setup(backend, blobs, diffs)
    for i, blob in enumerate(state.blobs):  # the net would allocate the top diffs
        state.blobs_diff[i] = Blob.zeros(backend, blob.shape, blob.name + "-diff", dtype=blob.dtype)
    return state, blobs, diffs


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("pooling", [Pooling.Max(), Pooling.Mean()], ids=["max", "mean"])
@pytest.mark.parametrize("shapes,channel_dim,kernel,stride,pad", CONFIGS)
def test_tops_and_gradients_match_torch(shapes, channel_dim, kernel, stride, pad, pooling, dtype):
    rng = np.random.default_rng(len(shapes[0]) + kernel)
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    names = [f"x{i}" for i in range(len(shapes))]
    layer = ChannelPoolingLayer(name="cp", kernel=kernel, stride=stride, pad=pad, channel_dim=channel_dim,
                                pooling=pooling, bottoms=names, tops=[f"y{i}" for i in range(len(shapes))])
    state, blobs, diffs = setup_layer(layer, NumpyBackend(dtype), arrays)
    state.forward(blobs)
    top_diffs = [rng.standard_normal(blob.shape).astype(dtype) for blob in state.blobs]
    for blob, dy in zip(state.blobs_diff, top_diffs):
        blob.copy_from(dy)
    state.backward(blobs, diffs)
    mean = isinstance(pooling, Pooling.Mean)
    for x, top, dy, diff in zip(arrays, state.blobs, top_diffs, diffs):
        tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        axis = channel_dim % x.ndim
        ty = torch_channel_pool(tx, axis, kernel, stride, pad, mean)
        ty.backward(torch.tensor(dy, dtype=torch.float64))
        assert top.shape == tuple(ty.shape)
        assert top.to_numpy().dtype == np.dtype(dtype)
        overlap = -(-kernel // stride)
        assert_close(top.to_numpy(), ty.detach().numpy(), dtype, reduction=kernel, what="top")
        assert_close(diff.to_numpy(), tx.grad.numpy(), dtype, reduction=overlap, what="bottom gradient")
    if not mean:
        argmax = state.argmax[0].to_numpy()
        assert argmax.dtype == np.int32 and argmax.shape == state.blobs[0].shape
        assert 0 <= argmax.min() and argmax.max() < shapes[0][channel_dim % len(shapes[0])]


def test_output_sizes_follow_mocha_and_channel_dim_maps_like_mocha():
    """Mocha's channel_dim=-2 (its default) is Python's axis 1, its -1 - d in general; -1 here is the last axis."""
    layer = ChannelPoolingLayer(name="cp", kernel=3, stride=2, pad=(2, 2), bottoms=["x"], tops=["y"])
    assert layer.channel_dim == 1 and layer.pad == (2, 2) and isinstance(layer.pooling, Pooling.Max)
    assert layer.output_shape((5, 9, 4, 4)) == (5, 6, 4, 4)  # ceil((9 + 4 - 3) / 2) + 1 = 6
    assert layer.output_shape((5, 4, 4, 9)) == (5, 3, 4, 9)  # ceil(5 / 2) + 1 = 4, the last starts at 4 + 2: 3
    last = ChannelPoolingLayer(name="cp", kernel=2, stride=2, pad=1, channel_dim=-1, bottoms=["x"], tops=["y"])
    assert last.pad == (1, 1)
    assert last.output_shape((5, 3, 4)) == (5, 3, 3)
    assert last.view((5, 3, 4)) == (15, 4, 1)
    assert layer.view((5, 9, 4, 4)) == (5, 9, 16)


def test_skips_bottoms_without_gradients():
    backend = NumpyBackend("float64")
    layer = ChannelPoolingLayer(name="cp", kernel=2, pooling=Pooling.Mean(), bottoms=["x"], tops=["y"])
    state, blobs, diffs = setup_layer(layer, backend, [np.ones((2, 3, 2))], with_diffs=False)
    state.forward(blobs)
    state.backward(blobs, diffs)  # nothing to write
    np.testing.assert_array_equal(state.blobs[0].to_numpy(), np.ones((2, 2, 2)))


def test_channel_pooling_inside_a_net_back_propagates():
    """data -> inner product -> channel max pooling (kernel 3, pad (1, 1)) -> square loss: the inner
    product's gradients against torch float64 autograd."""
    rng = np.random.default_rng(11)
    x, target = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))  # 6 channels pool into 4
    backend = NumpyBackend("float64", seed=4)
    layers = [MemoryDataLayer(name="data", batch_size=5, data=[x, target], tops=["x", "target"]),
              InnerProductLayer(name="ip", output_dim=6, bottoms=["x"], tops=["h"]),
              ChannelPoolingLayer(name="cp", kernel=3, stride=2, pad=(1, 1), bottoms=["h"], tops=["pooled"]),
              SquareLossLayer(name="loss", bottoms=["pooled", "target"])]
    net = Net("channel-pool", backend, layers)
    objective = net.forward()
    net.backward()
    w, b = (torch.tensor(p.blob.to_numpy(), requires_grad=True) for p in net.params["ip"])
    pooled = torch_channel_pool(torch.tensor(x) @ w.T + b, 1, 3, 2, (1, 1), mean=False)
    loss = 0.5 * ((pooled - torch.tensor(target)) ** 2).sum() / 5
    loss.backward()
    assert objective == pytest.approx(loss.item(), rel=1e-12)
    for param, tensor in zip(net.params["ip"], (w, b)):
        assert_close(param.gradient.to_numpy(), tensor.grad.numpy(), "float64", reduction=5, what=param.name)


def test_triton_backend_matches_numpy():
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((2, 7, 3, 2)).astype(np.float32), rng.standard_normal((3, 5)).astype(np.float32)]
    for pooling in (Pooling.Max(), Pooling.Mean()):
        layer = ChannelPoolingLayer(name="cp", kernel=3, stride=2, pad=(1, 2), pooling=pooling, bottoms=["a", "b"],
                                    tops=["ya", "yb"])
        results = []
        for backend in (NumpyBackend("float32"), TritonBackend()):
            state, blobs, diffs = setup_layer(layer, backend, arrays)
            state.forward(blobs)
            for blob in state.blobs_diff:
                blob.copy_from(np.linspace(-1, 1, math.prod(blob.shape), dtype=np.float32).reshape(blob.shape))
            state.backward(blobs, diffs)
            results.append(([t.to_numpy() for t in state.blobs], [d.to_numpy() for d in diffs],
                            [a.to_numpy() for a in state.argmax]))
        (tops_np, diffs_np, argmax_np), (tops_tr, diffs_tr, argmax_tr) = results
        for want, got in zip(tops_np + diffs_np, tops_tr + diffs_tr):
            assert_close(got, want, "float32", reduction=3)
        for want, got in zip(argmax_np, argmax_tr):
            np.testing.assert_array_equal(got, want)


def test_bad_configurations_and_inputs_name_the_layer():
    def make(**kwargs):
        return ChannelPoolingLayer(name="cp", **{"bottoms": ["x"], "tops": ["y"], **kwargs})

    for kwargs, message in [
        ({"kernel": 0}, r"kernel must be an int >= 1, got 0"),
        ({"kernel": 2.0}, r"kernel must be an int >= 1, got 2.0"),
        ({"stride": True}, r"stride must be an int >= 1, got True"),
        ({"kernel": 3, "pad": (3, 0)}, r"pad \(3, 0\) must be >= 0 and smaller than kernel 3 at both ends"),
        ({"kernel": 3, "pad": (0, -1)}, r"pad \(0, -1\) must be >= 0"),
        ({"kernel": 3, "pad": (1, 1, 1)}, r"pad must be an int or a pair of ints \(front, back\)"),
        ({"kernel": 3, "pad": "1"}, r"pad must be an int or a pair of ints"),
        ({"channel_dim": 0}, r"channel_dim must be a non-zero int \(a Python axis; 0 is the batch axis\)"),
        ({"channel_dim": 1.0}, r"channel_dim must be a non-zero int"),
        ({"pooling": "max"}, r"pooling must be Pooling.Max\(\) or Pooling.Mean\(\)"),
        ({"tops": []}, r"needs one top per bottom"),
    ]:
        with pytest.raises(LayerError, match=r"ChannelPoolingLayer 'cp': " + message):
            make(**kwargs)
    backend = NumpyBackend("float64")
    x = [Blob.zeros(backend, (2, 3, 4), "x")]
    with pytest.raises(LayerError, match=r"ChannelPoolingLayer 'cp': channel_dim 3 is not a non-batch axis of a "
                                         r"bottom of shape \(2, 3, 4\) \(axes 1 to 2, or -1 to -2\)"):
        make(channel_dim=3).setup(backend, x, [None])
    with pytest.raises(LayerError, match=r"ChannelPoolingLayer 'cp': channel_dim -3 is not a non-batch axis"):
        make(channel_dim=-3).setup(backend, x, [None])
    with pytest.raises(LayerError, match=r"ChannelPoolingLayer 'cp': channel_pool_output_size: kernel 6 is larger "
                                         r"than the padded axis 5 \(a bottom of shape \(2, 3, 4\)\)"):
        make(kernel=6, pad=(1, 1)).setup(backend, x, [None])
    with pytest.raises(LayerError, match=r"ChannelPoolingLayer 'cp': got 2 input blobs for bottoms \('x',\)"):
        make().setup(backend, x + x, [None, None])
