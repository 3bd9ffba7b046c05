"""SoftmaxLossLayer, MultinomialLogisticLossLayer and AccuracyLayer.

Loss values and gradients are checked against torch float64 autograd (``F.cross_entropy`` / ``nll`` with
Mocha's class-weight normalisation and the N * prod(S) averaging) on NumpyBackend float64; the Triton
backend is checked against the NumPy backend in float32 on tiny cases. Accuracy is checked against a
NumPy top-k count. Bad inputs must raise errors that name the layer.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.blob import Blob
from mocha_triton.layers.accuracy import AccuracyLayer
from mocha_triton.layers.base import LayerError
from mocha_triton.layers.data import MemoryDataLayer
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.layers.loss import MultinomialLogisticLossLayer, SoftmaxLossLayer
from mocha_triton.net import Net
from support import assert_close

REL64 = 1e-12


@pytest.fixture(scope="module")
def triton_backend() -> TritonBackend:
    return TritonBackend()


def make_case(pred_shape: tuple[int, ...], label_shape: tuple[int, ...], seed: int = 0):
    """Random logits and integral labels (float) of the given shapes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.0, pred_shape)
    n, c, *spatial = pred_shape
    labels = rng.integers(0, c, (n, *spatial))
    return x, labels, labels.reshape(label_shape).astype(np.float64)


def normalized(weights: np.ndarray | None, c: int, normalize: str) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, np.float64)
    return w if normalize == "no" else w * (c / w.sum())


def torch_softmax_loss(x: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, normalize: str,
                       weight: float) -> tuple[float, np.ndarray]:
    """Mocha's softmax loss in torch float64: weighted NLL summed over positions / (N * prod(S))."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    w = normalized(weights, x.shape[1], normalize)
    per_position = F.cross_entropy(xt, torch.tensor(labels, dtype=torch.long),
                                   weight=None if w is None else torch.tensor(w), reduction="none")
    loss = weight * per_position.sum() / labels.size
    loss.backward()
    return loss.item(), xt.grad.numpy()


def setup_loss(layer, backend, x: np.ndarray, label: np.ndarray, with_diff: bool = True):
    pred = Blob.from_numpy(backend, x, "pred")
    lab = Blob.from_numpy(backend, label, "label")
    diff = Blob.zeros(backend, pred.shape, "pred-diff") if with_diff else None
    state = layer.setup(backend, [pred, lab], [diff, None])
    return state, [pred, lab], [diff, None]


SHAPES = [  # (prediction, label)
    ((5, 4), (5,)),
    ((5, 4), (5, 1)),
    ((3, 4, 2, 3), (3, 2, 3)),
    ((3, 4, 2, 3), (3, 1, 2, 3)),
    ((3, 4, 1, 1), (3, 1)),  # a convolutional head with Mocha-style (N, 1) labels
    ((2, 3, 5), (2, 1, 5)),
]


@pytest.mark.parametrize("pred_shape,label_shape", SHAPES)
@pytest.mark.parametrize("normalize", ["local", "global", "no"])
@pytest.mark.parametrize("use_weights", [False, True])
def test_softmax_loss_matches_torch(pred_shape, label_shape, normalize, use_weights):
    x, labels, label = make_case(pred_shape, label_shape, seed=len(label_shape))
    c = pred_shape[1]
    weights = np.linspace(0.5, 2.0, c) if use_weights else None
    weight = 2.5 if use_weights else 1.0
    layer = SoftmaxLossLayer(name="loss", bottoms=["pred", "label"], weight=weight,
                             weights=None if weights is None else list(weights), normalize=normalize)
    backend = NumpyBackend("float64")
    state, inputs, diffs = setup_loss(layer, backend, x, label)
    state.forward(inputs)
    state.backward(inputs, diffs)
    expected_loss, expected_grad = torch_softmax_loss(x, labels, weights, normalize, weight)
    assert isinstance(state.loss, float)
    assert math.isclose(state.loss, expected_loss, rel_tol=REL64)
    assert_close(diffs[0].to_numpy(), expected_grad, "float64", reduction=c, what="softmax loss gradient")


def test_softmax_loss_weight_scales_loss_and_gradient():
    x, _, label = make_case((6, 5), (6, 1), seed=3)
    backend = NumpyBackend("float64")
    results = []
    for weight in (1.0, 0.25):
        state, inputs, diffs = setup_loss(SoftmaxLossLayer(name="loss", bottoms=["p", "l"], weight=weight),
                                          backend, x, label)
        state.forward(inputs)
        state.backward(inputs, diffs)
        results.append((state.loss, diffs[0].to_numpy()))
    assert math.isclose(results[1][0], 0.25 * results[0][0], rel_tol=REL64)
    np.testing.assert_allclose(results[1][1], 0.25 * results[0][1], rtol=1e-13)


def test_softmax_loss_skips_backward_without_diff():
    x, _, label = make_case((4, 3), (4,))
    backend = NumpyBackend("float64")
    state, inputs, _ = setup_loss(SoftmaxLossLayer(name="loss", bottoms=["p", "l"]), backend, x, label,
                                  with_diff=False)
    state.forward(inputs)
    state.backward(inputs, [None, None])  # nothing to write, must not fail


@pytest.mark.parametrize("pred_shape,label_shape", [((4, 5), (4, 1)), ((2, 5, 2, 3), (2, 2, 3))])
def test_softmax_loss_triton_matches_numpy(triton_backend, pred_shape, label_shape):
    x, _, label = make_case(pred_shape, label_shape, seed=7)
    x, label = x.astype(np.float32), label.astype(np.float32)
    layer = SoftmaxLossLayer(name="loss", bottoms=["p", "l"], weight=0.7, weights=[1.0, 2.0, 0.5, 1.5, 1.0])
    out = {}
    for backend in (NumpyBackend("float32"), triton_backend):
        state, inputs, diffs = setup_loss(layer, backend, x, label)
        state.forward(inputs)
        state.backward(inputs, diffs)
        out[backend.name] = (state.loss, diffs[0].to_numpy())
    positions = label.size
    assert_close(np.array([out["triton"][0]]), np.array([out["numpy"][0]]), "float32", reduction=positions,
                 what="triton loss")
    assert_close(out["triton"][1], out["numpy"][1], "float32", reduction=pred_shape[1], what="triton gradient")


def test_softmax_loss_in_a_net_backpropagates_to_inner_product():
    """MemoryData -> InnerProduct -> SoftmaxLoss: the objective and the weight gradient match torch."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(6, 4))
    labels = rng.integers(0, 3, 6)
    backend = NumpyBackend("float64", seed=5)
    layers = [MemoryDataLayer(name="data", batch_size=6, data=[x, labels.astype(np.float64)]),
              InnerProductLayer(name="ip", output_dim=3, bottoms=["data"], tops=["ip"]),
              SoftmaxLossLayer(name="loss", bottoms=["ip", "label"], weight=1.5)]
    net = Net("loss-net", backend, layers)
    objective = net.forward()
    net.backward()
    weight, bias = net.params["ip"]
    wt = torch.tensor(weight.blob.to_numpy(), requires_grad=True)
    bt = torch.tensor(bias.blob.to_numpy(), requires_grad=True)
    logits = torch.tensor(x) @ wt.T + bt
    loss = 1.5 * F.cross_entropy(logits, torch.tensor(labels), reduction="mean")
    loss.backward()
    assert math.isclose(objective, loss.item(), rel_tol=REL64)
    assert_close(weight.gradient.to_numpy(), wt.grad.numpy(), "float64", reduction=6, what="weight gradient")
    assert_close(bias.gradient.to_numpy(), bt.grad.numpy(), "float64", reduction=6, what="bias gradient")


@pytest.mark.parametrize("normalize", ["local", "no"])
def test_multinomial_logistic_loss_matches_torch(normalize):
    rng = np.random.default_rng(2)
    prob = rng.dirichlet(np.ones(4), size=(3, 2)).transpose(0, 2, 1)  # (N=3, C=4, S=2)
    labels = rng.integers(0, 4, (3, 2))
    weights = np.array([1.0, 3.0, 0.5, 2.0])
    layer = MultinomialLogisticLossLayer(name="mll", bottoms=["prob", "label"], weights=weights, weight=2.0,
                                         normalize=normalize)
    assert not layer.can_backprop and layer.has_loss
    backend = NumpyBackend("float64")
    state, inputs, _ = setup_loss(layer, backend, prob, labels.astype(np.float64), with_diff=False)
    state.forward(inputs)
    w = torch.tensor(normalized(weights, 4, normalize))
    expected = 2.0 * F.nll_loss(torch.log(torch.tensor(prob)), torch.tensor(labels), weight=w,
                                reduction="none").sum() / labels.size
    assert math.isclose(state.loss, expected.item(), rel_tol=REL64)


# --- accuracy --------------------------------------------------------------------------------------


def topk_correct(x: np.ndarray, labels: np.ndarray, k: int) -> int:
    """Positions whose label is among the k highest scores (no ties in random data)."""
    order = np.argsort(-x, axis=1)[:, :k]  # (N, k, *S)
    return int(np.sum(np.any(order == labels[:, None], axis=1)))


@pytest.mark.parametrize("pred_shape,label_shape", [((10, 5), (10, 1)), ((3, 4, 2, 2), (3, 2, 2))])
@pytest.mark.parametrize("top_k", [1, 2])
def test_accuracy_accumulates_and_resets(pred_shape, label_shape, top_k):
    backend = NumpyBackend("float64")
    layer = AccuracyLayer(name="test-accuracy", bottoms=["pred", "label"], top_k=top_k, report_error=True)
    x1, l1, label1 = make_case(pred_shape, label_shape, seed=1)
    x2, l2, label2 = make_case(pred_shape, label_shape, seed=2)
    pred = Blob.from_numpy(backend, x1, "pred")
    label = Blob.from_numpy(backend, label1, "label")
    state = layer.setup(backend, [pred, label], [None, None])
    assert state.statistics()["test-accuracy-accuracy"] == 0.0
    state.forward([pred, label])
    positions = l1.size
    first = topk_correct(x1, l1, top_k) / positions
    assert state.statistics() == {"test-accuracy-accuracy": first, "test-accuracy-error": 1.0 - first}
    pred.copy_from(x2)
    label.copy_from(label2)
    state.forward([pred, label])
    both = (topk_correct(x1, l1, top_k) + topk_correct(x2, l2, top_k)) / (2 * positions)
    assert state.n_seen == 2 * positions
    assert state.statistics()["test-accuracy-accuracy"] == pytest.approx(both, abs=0)
    state.reset_statistics()
    assert state.n_seen == 0 and state.statistics()["test-accuracy-accuracy"] == 0.0
    state.forward([pred, label])
    assert state.statistics()["test-accuracy-accuracy"] == topk_correct(x2, l2, top_k) / positions


def test_accuracy_without_error_key_and_in_net_statistics():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(8, 3))
    labels = np.argmax(x, axis=1).astype(np.float64)
    labels[:2] = (labels[:2] + 1) % 3  # two wrong
    backend = NumpyBackend("float64")
    net = Net("acc", backend, [MemoryDataLayer(name="data", batch_size=8, data=[x, labels]),
                               AccuracyLayer(name="acc", bottoms=["data", "label"])], phase="test")
    net.forward()
    assert net.statistics() == {"acc-accuracy": 6 / 8}
    net.reset_statistics()
    assert net.statistics() == {"acc-accuracy": 0.0}


def test_accuracy_triton_matches_numpy(triton_backend):
    x, labels, label = make_case((6, 4), (6, 1), seed=9)
    x, label = x.astype(np.float32), label.astype(np.float32)
    for backend in (NumpyBackend("float32"), triton_backend):
        layer = AccuracyLayer(name="acc", bottoms=["p", "l"], top_k=2)
        inputs = [Blob.from_numpy(backend, x), Blob.from_numpy(backend, label)]
        state = layer.setup(backend, inputs, [None, None])
        state.forward(inputs)
        assert state.accuracy == topk_correct(x, labels, 2) / 6


# --- bad inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("layer_cls", [SoftmaxLossLayer, MultinomialLogisticLossLayer, AccuracyLayer])
def test_label_out_of_range_names_the_layer(layer_cls):
    backend = NumpyBackend("float64")
    x = np.full((3, 4), 0.25)
    label = np.array([0.0, 4.0, 1.0])  # 4 is outside [0, 4)
    layer = layer_cls(name="my-layer", bottoms=["pred", "label"])
    inputs = [Blob.from_numpy(backend, x), Blob.from_numpy(backend, label)]
    state = layer.setup(backend, inputs, [None, None])
    with pytest.raises(LayerError, match=r"'my-layer'.*outside the class range \[0, 4\)") as info:
        state.forward(inputs)
    assert layer_cls.__name__ in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


def test_non_integral_label_names_the_layer():
    backend = NumpyBackend("float64")
    layer = SoftmaxLossLayer(name="loss", bottoms=["pred", "label"])
    inputs = [Blob.from_numpy(backend, np.zeros((2, 3))), Blob.from_numpy(backend, np.array([0.0, 1.5]))]
    state = layer.setup(backend, inputs, [None, None])
    with pytest.raises(LayerError, match=r"SoftmaxLossLayer 'loss'.*1\.5.*not an integral class index"):
        state.forward(inputs)


@pytest.mark.parametrize("layer_cls", [SoftmaxLossLayer, MultinomialLogisticLossLayer, AccuracyLayer])
@pytest.mark.parametrize("pred_shape,label_shape", [
    ((4, 3), (5,)),  # N differs
    ((4, 3), (4, 2)),  # two labels per sample
    ((2, 3, 4, 5), (2, 5, 4)),  # spatial dims swapped
    ((2, 3, 4, 5), (2, 1, 4)),  # spatial dims missing
    ((4,), (4,)),  # no class axis
])
def test_label_shape_mismatch_names_the_layer(layer_cls, pred_shape, label_shape):
    backend = NumpyBackend("float64")
    layer = layer_cls(name="bad-shapes", bottoms=["pred", "label"])
    inputs = [Blob.zeros(backend, pred_shape), Blob.zeros(backend, label_shape)]
    with pytest.raises(LayerError, match=rf"{layer_cls.__name__} 'bad-shapes'.*shape"):
        layer.setup(backend, inputs, [None, None])


@pytest.mark.parametrize("kwargs,message", [
    (dict(bottoms=["pred"]), "bottoms=\\[prediction, label\\]"),
    (dict(bottoms=["p", "l"], tops=["t"]), "no tops"),
    (dict(bottoms=["p", "l"], normalize="batch"), "normalize must be one of"),
    (dict(bottoms=["p", "l"], weights=[1.0, -1.0]), "finite and non-negative"),
    (dict(bottoms=["p", "l"], weights=[[1.0]]), "1-D"),
    (dict(bottoms=["p", "l"], weight=float("nan")), "weight must be a finite number"),
])
def test_bad_loss_configuration(kwargs, message):
    with pytest.raises(LayerError, match=rf"SoftmaxLossLayer 'cfg'.*{message}"):
        SoftmaxLossLayer(name="cfg", **kwargs)


def test_class_weights_length_and_all_zero_weights():
    backend = NumpyBackend("float64")
    inputs = [Blob.zeros(backend, (2, 3)), Blob.zeros(backend, (2,))]
    with pytest.raises(LayerError, match=r"'w'.*weights has 2 entries.*3 classes"):
        SoftmaxLossLayer(name="w", bottoms=["p", "l"], weights=[1.0, 2.0]).setup(backend, inputs, [None, None])
    with pytest.raises(LayerError, match=r"'z'.*all zero"):
        SoftmaxLossLayer(name="z", bottoms=["p", "l"], weights=[0.0, 0.0, 0.0]).setup(backend, inputs, [None, None])
    # with normalize="no" zero weights are allowed (a zero loss)
    state = SoftmaxLossLayer(name="n", bottoms=["p", "l"], weights=[0.0, 0.0, 0.0], normalize="no").setup(
        backend, inputs, [None, None])
    state.forward(inputs)
    assert state.loss == 0.0


def test_bad_accuracy_configuration():
    with pytest.raises(LayerError, match=r"AccuracyLayer 'acc'.*top_k must be a positive int"):
        AccuracyLayer(name="acc", bottoms=["p", "l"], top_k=0)
    backend = NumpyBackend("float64")
    inputs = [Blob.zeros(backend, (2, 3)), Blob.zeros(backend, (2,))]
    with pytest.raises(LayerError, match=r"AccuracyLayer 'acc'.*top_k=4 exceeds the 3 classes"):
        AccuracyLayer(name="acc", bottoms=["p", "l"], top_k=4).setup(backend, inputs, [None, None])
