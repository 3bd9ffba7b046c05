"""Argmax, Index2Onehot, MemoryOutput and HDF5Output layers (mocha_triton/layers/output.py).

* Argmax along Python axes 1, 2, -1 of bottoms of several shapes (several bottoms per layer), float32 and
  float64, against torch's argmax (first index on ties) with keepdim; exact ties; the top's dtype; Mocha's
  default dim=-2 is axis 1 here.
* Index2Onehot along axis 1 and the last axis, float and int64 labels, against torch's one_hot; labels out
  of range or not integral raise errors naming the layer and the bottom; a bottom that is not size 1
  along dim is refused at setup.
* MemoryOutput keeps host copies of every forward's bottoms (later forwards do not change them), reset()
  empties the lists.
* HDF5Output: three forwards of two bottoms read back with h5py from the reopened file (values, dtype,
  chunking, unlimited first axis, dataset names from the bottoms or from ``datasets``, groups); an
  existing file is refused unless force_overwrite (which replaces it); Net.destroy closes the file; a
  missing folder names the file.
* A classifier net (IP -> Softmax -> Argmax -> MemoryOutput) predicts numpy's argmax; a net trained on
  Index2Onehot targets with a square loss has torch float64's gradients.
* Tiny TritonBackend cases of each layer against the NumPy backend.
* Bad configurations name the layer.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias

from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.blob import Blob
from mocha_triton.layers.base import LayerError
from mocha_triton.layers.data import MemoryDataLayer
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.layers.output import ArgmaxLayer, HDF5OutputLayer, Index2OnehotLayer, MemoryOutputLayer
from mocha_triton.layers.pointwise_loss import SquareLossLayer
from mocha_triton.layers.softmax import SoftmaxLayer
from mocha_triton.net import Net
from mocha_triton.parameter import GaussianInitializer
from support import assert_close


def forward_layer(layer, backend, arrays, dtype=None):
    """Set ``layer`` up on blobs holding ``arrays`` and run one forward; return the state."""
    inputs = [Blob.from_numpy(backend, a, name, dtype=dtype) for a, name in zip(arrays, layer.bottoms)]
    state = layer.setup(backend, inputs, [None] * len(inputs))
    state.forward(inputs)
    return state


# --- Argmax --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("dim", [1, 2, -1])
def test_argmax_along_an_axis_matches_torch(dim, dtype):
    rng = np.random.default_rng(abs(dim) + 10)
    shapes = [(3, 4, 5), (2, 3, 6, 2)]
    xs = [rng.integers(-3, 4, shape).astype(dtype) for shape in shapes]  # small integers: many ties
    layer = ArgmaxLayer(name="am", dim=dim, bottoms=("a", "b"), tops=("ia", "ib"))
    state = forward_layer(layer, NumpyBackend(dtype), xs)
    for x, y in zip(xs, state.blobs):
        expected = torch.argmax(torch.from_numpy(x).double(), dim=dim, keepdim=True).double().numpy()
        assert y.dtype == dtype and y.shape == expected.shape
        np.testing.assert_array_equal(y.to_numpy(), expected)
    assert not layer.can_backprop and not layer.is_sink


def test_argmax_ties_go_to_the_first_index_and_mocha_default_is_the_channel_axis():
    x = np.array([[[2.0], [7.0], [7.0]], [[-1.0], [-1.0], [-1.0]]])  # (2, 3, 1)
    layer = ArgmaxLayer(bottoms=("x",), tops=("i",))
    assert layer.name == "argmax" and layer.dim == 1
    state = forward_layer(layer, NumpyBackend("float64"), [x])
    np.testing.assert_array_equal(state.blobs[0].to_numpy(), [[[1.0]], [[0.0]]])


@pytest.mark.parametrize("kwargs, shape, match", [
    (dict(dim=0), (2, 3), r"ArgmaxLayer 'am': dim 0 is the batch axis of bottom 'x'"),
    (dict(dim=-2), (2, 3), r"ArgmaxLayer 'am': dim -2 is the batch axis"),
    (dict(dim=3), (2, 3, 4), r"ArgmaxLayer 'am': dim 3 is out of range for bottom 'x' of shape \(2, 3, 4\)"),
    (dict(dim=2), (2, 3, 0), r"ArgmaxLayer 'am': bottom 'x' of shape \(2, 3, 0\) has no values along dim 2"),
])
def test_argmax_setup_errors_name_the_layer(kwargs, shape, match):
    layer = ArgmaxLayer(name="am", bottoms=("x",), tops=("y",), **kwargs)
    with pytest.raises(LayerError, match=match):
        layer.setup(NumpyBackend(), [Blob.zeros(NumpyBackend(), shape)], [None])


def test_argmax_op_errors_name_the_layer_and_the_bottom():
    layer = ArgmaxLayer(name="am", bottoms=("x",), tops=("y",))
    with pytest.raises(LayerError, match=r"ArgmaxLayer 'am': bottom 'x': argmax_forward: x has dtype int64"):
        forward_layer(layer, NumpyBackend("float64"), [np.zeros((2, 3), np.int64)], dtype="int64")


@pytest.mark.parametrize("kwargs, match", [
    (dict(dim=1.0, bottoms=("x",), tops=("y",)), r"ArgmaxLayer 'am': dim must be an int, got 1.0"),
    (dict(dim=True, bottoms=("x",), tops=("y",)), r"dim must be an int, got True"),
    (dict(bottoms=("x", "z"), tops=("y",)), r"ArgmaxLayer 'am': needs one top per bottom"),
    (dict(bottoms=(), tops=()), r"needs one top per bottom"),
])
def test_argmax_bad_configurations(kwargs, match):
    with pytest.raises(LayerError, match=match):
        ArgmaxLayer(name="am", **kwargs)


# --- Index2Onehot --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_index2onehot_along_the_channel_and_the_last_axis_matches_torch(dtype):
    rng = np.random.default_rng(3)
    channel = rng.integers(0, 5, (4, 1, 3)).astype(dtype)  # dim=1: (N, 1, S) -> (N, 5, S)
    last = rng.integers(0, 5, (4, 3, 1)).astype(dtype)  # dim=-1: (N, S, 1) -> (N, S, 5)
    backend = NumpyBackend(dtype)
    y1 = forward_layer(Index2OnehotLayer(n_class=5, bottoms=("l",), tops=("o",)), backend, [channel]).blobs[0]
    y2 = forward_layer(Index2OnehotLayer(n_class=5, dim=-1, bottoms=("l",), tops=("o",)), backend, [last]).blobs[0]
    want1 = F.one_hot(torch.from_numpy(channel[:, 0]).long(), 5).permute(0, 2, 1).double().numpy()
    want2 = F.one_hot(torch.from_numpy(last[:, :, 0]).long(), 5).double().numpy()
    assert y1.dtype == y2.dtype == dtype and y1.shape == (4, 5, 3) and y2.shape == (4, 3, 5)
    np.testing.assert_array_equal(y1.to_numpy(), want1)
    np.testing.assert_array_equal(y2.to_numpy(), want2)


def test_index2onehot_integer_labels_give_tops_of_the_backend_dtype():
    labels = np.array([[2], [0], [1]], np.int64)
    state = forward_layer(Index2OnehotLayer(n_class=3, bottoms=("l",), tops=("o",)), NumpyBackend("float64"),
                          [labels], dtype="int64")
    assert state.blobs[0].dtype == "float64"
    np.testing.assert_array_equal(state.blobs[0].to_numpy(), np.eye(3)[[2, 0, 1]])


@pytest.mark.parametrize("labels, match", [
    ([[1.0], [3.0]], r"Index2OnehotLayer 'i2o': bottom 'l': index_to_onehot: label holds 3.0, outside the class "
                     r"range \[0, 3\)"),
    ([[-1.0], [0.0]], r"Index2OnehotLayer 'i2o': bottom 'l': .*label holds -1.0, outside the class range"),
    ([[0.25], [0.0]], r"Index2OnehotLayer 'i2o': bottom 'l': .*label holds 0.25, which is not an integral class"),
])
def test_index2onehot_bad_labels_name_the_layer(labels, match):
    layer = Index2OnehotLayer(name="i2o", n_class=3, bottoms=("l",), tops=("o",))
    with pytest.raises(LayerError, match=match):
        forward_layer(layer, NumpyBackend("float64"), [np.array(labels)])


@pytest.mark.parametrize("kwargs, shape, match", [
    (dict(n_class=3), (2, 2), r"Index2OnehotLayer 'i2o': bottom 'l' of shape \(2, 2\) must have size 1 along dim 1"),
    (dict(n_class=3, dim=0), (2, 1), r"dim 0 is the batch axis"),
    (dict(n_class=0), (2, 1), r"Index2OnehotLayer 'i2o': n_class must be a positive int, got 0"),
    (dict(n_class=2.0), (2, 1), r"n_class must be a positive int, got 2.0"),
])
def test_index2onehot_bad_configurations(kwargs, shape, match):
    with pytest.raises(LayerError, match=match):
        layer = Index2OnehotLayer(name="i2o", bottoms=("l",), tops=("o",), **kwargs)
        layer.setup(NumpyBackend(), [Blob.zeros(NumpyBackend(), shape)], [None])


# --- MemoryOutput --------------------------------------------------------------------------------------


def data_layer(n=6, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, 2))
    label = rng.integers(0, 3, (n, 1)).astype(np.float64)
    return MemoryDataLayer(tops=("data", "label"), data=(x, label), batch_size=batch), x, label


def test_memory_output_keeps_a_copy_of_every_forward_and_resets():
    data, x, label = data_layer()
    net = Net("mem", NumpyBackend("float64"), [data, MemoryOutputLayer(bottoms=("data", "label"))])
    for _ in range(3):
        net.forward()
    state = net.get_state("memory-output")
    assert len(state.outputs) == 2 and [len(o) for o in state.outputs] == [3, 3]
    np.testing.assert_array_equal(np.concatenate(state.outputs[0]), x)
    np.testing.assert_array_equal(np.concatenate(state.outputs[1]), label)
    assert all(isinstance(a, np.ndarray) for a in state.outputs[0])
    state.reset()
    assert state.outputs == [[], []]
    net.forward()  # wraps around to the first batch
    np.testing.assert_array_equal(state.outputs[0][0], x[:2])
    net.destroy()


@pytest.mark.parametrize("kwargs, match", [
    (dict(bottoms=()), r"MemoryOutputLayer 'memory-output': needs at least one bottom"),
    (dict(bottoms=("x",), tops=("y",)), r"is a sink and takes no tops"),
])
def test_memory_output_bad_configurations(kwargs, match):
    with pytest.raises(LayerError, match=match):
        MemoryOutputLayer(**kwargs)


# --- HDF5Output ----------------------------------------------------------------------------------------


def test_hdf5_output_appends_every_forward_and_is_read_back_after_destroy(tmp_path):
    path = str(tmp_path / "out.h5")
    data, x, label = data_layer(n=6, batch=2)
    out = HDF5OutputLayer(bottoms=("data", "label"), filename=path)
    net = Net("h5", NumpyBackend("float64"), [data, out])
    assert out.name == "hdf5-output" and out.dataset_names == ("data", "label")
    for _ in range(3):
        net.forward()
    net.destroy()
    net.destroy()  # closing twice is harmless
    with h5py.File(path, "r") as f:
        assert sorted(f) == ["data", "label"]
        np.testing.assert_array_equal(f["data"][()], x)
        np.testing.assert_array_equal(f["label"][()], label)
        assert f["data"].dtype == np.float64
        assert f["data"].maxshape == (None, 3, 2) and f["data"].chunks == (2, 3, 2)
        assert f["label"].maxshape == (None, 1) and f["label"].chunks == (2, 1)


def test_hdf5_output_dataset_names_groups_and_float32(tmp_path):
    path = tmp_path / "named.h5"  # a PathLike works too
    data, x, _ = data_layer(n=4, batch=4)
    out = HDF5OutputLayer(name="dump", bottoms=("data",), datasets=("features/pool5",), filename=path)
    net = Net("h5", NumpyBackend("float32"), [data, out])
    net.forward()
    net.forward()
    state = net.get_state("dump")
    net.destroy()
    assert state.file is None
    with h5py.File(path, "r") as f:
        assert list(f) == ["features"] and f["features/pool5"].dtype == np.float32
        np.testing.assert_array_equal(f["features/pool5"][()], np.concatenate([x, x]).astype(np.float32))
    with pytest.raises(LayerError, match=r"HDF5OutputLayer 'dump': output file .* is closed"):
        state.forward([net.output_blobs["data"]])


def test_hdf5_output_refuses_an_existing_file_unless_force_overwrite(tmp_path):
    path = str(tmp_path / "exists.h5")
    with h5py.File(path, "w") as f:
        f["old"] = np.arange(3)
    data, x, _ = data_layer(n=2, batch=2)
    with pytest.raises(LayerError, match=r"HDF5OutputLayer 'hdf5-output': output file '.*exists.h5' already exists; "
                                         r"pass force_overwrite=True to replace it"):
        Net("h5", NumpyBackend("float64"), [data, HDF5OutputLayer(bottoms=("data",), filename=path)])
    with h5py.File(path, "r") as f:
        assert list(f) == ["old"]  # untouched
    net = Net("h5", NumpyBackend("float64"),
              [data, HDF5OutputLayer(bottoms=("data",), filename=path, force_overwrite=True)])
    net.forward()
    net.destroy()
    with h5py.File(path, "r") as f:
        assert list(f) == ["data"]
        np.testing.assert_array_equal(f["data"][()], x)


@pytest.mark.parametrize("kwargs, match", [
    (dict(bottoms=("a",), filename=""), r"HDF5OutputLayer 'hdf5-output': filename must be a non-empty path"),
    (dict(bottoms=(), filename="f.h5"), r"needs at least one bottom"),
    (dict(bottoms=("a",), tops=("b",), filename="f.h5"), r"is a sink and takes no tops"),
    (dict(bottoms=("a", "b"), datasets=("x",), filename="f.h5"), r"datasets must name one dataset per bottom"),
    (dict(bottoms=("a", "b"), datasets=("x", "x"), filename="f.h5"), r"two bottoms would write the same dataset"),
    (dict(bottoms=("a",), datasets=("/",), filename="f.h5"), r"datasets must be non-empty names"),
    (dict(bottoms=("a",), datasets="feat", filename="f.h5"), r"datasets must be a list of names"),
    (dict(bottoms=("a",), filename="f.h5", force_overwrite=1), r"force_overwrite must be a bool"),
])
def test_hdf5_output_bad_configurations(kwargs, match):
    with pytest.raises(LayerError, match=match):
        HDF5OutputLayer(**kwargs)


def test_hdf5_output_in_a_missing_folder_names_the_file(tmp_path):
    path = str(tmp_path / "no" / "such" / "out.h5")
    layer = HDF5OutputLayer(bottoms=("a",), filename=path)
    with pytest.raises(LayerError, match=r"HDF5OutputLayer 'hdf5-output': cannot create output file '.*out.h5'"):
        layer.setup(NumpyBackend(), [Blob.zeros(NumpyBackend(), (2, 3))], [None])


# --- nets ----------------------------------------------------------------------------------------------


def classifier(data, **ip):
    return [data, InnerProductLayer(name="ip", output_dim=4, bottoms=("data",), tops=("score",),
                                    weight_init=GaussianInitializer(std=1.0), bias_init=GaussianInitializer(std=1.0),
                                    **ip),
            SoftmaxLayer(name="prob", bottoms=("score",), tops=("prob",))]


def test_a_classifier_net_predicts_the_argmax_of_its_probabilities():
    data, x, _ = data_layer(n=6, batch=3, seed=5)
    layers = classifier(data) + [ArgmaxLayer(bottoms=("prob",), tops=("pred",)),
                                 MemoryOutputLayer(bottoms=("prob", "pred"))]
    net = Net("predict", NumpyBackend("float64", seed=2), layers)
    net.forward()
    net.forward()
    probs, preds = (np.concatenate(o) for o in net.get_state("memory-output").outputs)
    w, b = (p.blob.to_numpy() for p in net.params["ip"])
    expected = torch.softmax(torch.from_numpy(x.reshape(6, -1) @ w.T + b), dim=1)
    assert_close(probs, expected.numpy(), "float64", reduction=6)
    np.testing.assert_array_equal(preds, np.argmax(expected.numpy(), axis=1)[:, None].astype(np.float64))


def test_a_net_trained_on_onehot_targets_has_torch_gradients():
    """prob = softmax(ip(x)); loss = ||prob - onehot(label)||^2 / (2N): Index2Onehot makes the target."""
    data, x, label = data_layer(n=4, batch=4, seed=7)
    layers = classifier(data) + [Index2OnehotLayer(n_class=4, bottoms=("label",), tops=("target",)),
                                 SquareLossLayer(bottoms=("prob", "target"))]
    net = Net("onehot", NumpyBackend("float64", seed=3), layers)
    net.check_bp_topology()
    objective = net.forward()
    net.backward()
    w, b = (torch.tensor(p.blob.to_numpy(), requires_grad=True) for p in net.params["ip"])
    prob = torch.softmax(torch.from_numpy(x.reshape(4, -1)) @ w.T + b, dim=1)
    target = F.one_hot(torch.from_numpy(label[:, 0]).long(), 4).double()
    loss = ((prob - target) ** 2).sum() / (2 * 4)
    loss.backward()
    assert abs(objective - loss.item()) <= 1e-12 * abs(loss.item())
    assert net.diff_blobs["target"] is None  # no gradient towards the labels
    for param, grad in zip(net.params["ip"], (w.grad, b.grad)):
        assert_close(param.gradient.to_numpy(), grad.numpy(), "float64", reduction=6, what=param.name)


# --- TritonBackend -------------------------------------------------------------------------------------


def test_triton_backend_matches_numpy(tmp_path):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 5, 2)).astype(np.float32)
    x[1, 2:4, 0] = 9.0  # a tie
    labels = rng.integers(0, 4, (3, 1, 2)).astype(np.float32)
    results = []
    for backend, name in ((NumpyBackend("float32"), "np"), (TritonBackend("cpu"), "tr")):
        path = str(tmp_path / f"{name}.h5")
        layers = [MemoryDataLayer(tops=("x", "label"), data=(x, labels), batch_size=3),
                  ArgmaxLayer(bottoms=("x",), tops=("i",)),
                  Index2OnehotLayer(n_class=4, bottoms=("label",), tops=("o",)),
                  MemoryOutputLayer(bottoms=("i", "o")),
                  HDF5OutputLayer(bottoms=("i", "o"), filename=path)]
        net = Net(name, backend, layers)
        net.forward()
        outputs = [o[0] for o in net.get_state("memory-output").outputs]
        net.destroy()
        with h5py.File(path, "r") as f:
            for kept, stored in zip(outputs, (f["i"][()], f["o"][()])):
                np.testing.assert_array_equal(kept, stored)
                assert stored.dtype == np.float32
        results.append(outputs)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    assert results[1][0][1, 0, 0] == 2.0
    with pytest.raises(LayerError, match="Index2OnehotLayer 'index2onehot': bottom 'label': .*outside the class range"):
        forward_layer(Index2OnehotLayer(n_class=2, bottoms=("label",), tops=("o",)), TritonBackend("cpu"), [labels])
