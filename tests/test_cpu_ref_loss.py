"""cpu_ref.loss against torch float64: softmax loss (forward, backward), multinomial logistic loss,
accuracy; plus the Mocha-specific clamp, finite differences and bad inputs.

The case generator (:class:`LossCase`, :func:`loss_cases`, :func:`loss_arrays`) is shared with
tests/test_kernels_loss.py.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mocha_triton.contract import LOG_CLAMP, NORMALIZE_MODES
from mocha_triton.cpu_ref import loss as ref
from support import CPU, assert_close, call_op

DTYPES = ["float32", "float64"]


@dataclass(frozen=True)
class LossCase:
    """Scores of shape ``shape`` = (N, C, *S) with labels stored as ``label_dtype`` ("float": the dtype
    of the scores, "int32", "int64"), in the (N, 1, *S) layout when ``channel_label``, with random
    class weights when ``weighted`` (one of them zero when ``zero_weight``)."""

    shape: tuple[int, ...]
    label_dtype: str = "float"
    channel_label: bool = False
    weighted: bool = False
    zero_weight: bool = False
    normalize: str = "local"

    @property
    def id(self) -> str:
        parts = ["x".join(map(str, self.shape)), f"label-{self.label_dtype}"]
        parts += ["n1s"] if self.channel_label else []
        parts += [("w0-" if self.zero_weight else "w-") + self.normalize] if self.weighted else []
        return "-".join(parts)

    @property
    def positions(self) -> int:
        return self.shape[0] * math.prod(self.shape[2:])

    @property
    def position_shape(self) -> tuple[int, ...]:
        return (self.shape[0], *self.shape[2:])


def loss_cases(kind: str) -> list[LossCase]:
    """"reference": for cpu_ref against torch; "tiny": shapes for Triton's interpreter, with C above
    one block of 128 classes so that the kernels' walk over C takes several steps."""
    if kind == "reference":
        return [
            LossCase((5, 7)),
            LossCase((1, 3), "int64"),
            LossCase((1, 1)),  # one class: the loss and its gradient are 0
            LossCase((6, 10), "int32", channel_label=True, weighted=True, normalize="local"),
            LossCase((6, 10), "float", weighted=True, zero_weight=True, normalize="global"),
            LossCase((6, 10), "int64", weighted=True, normalize="no"),
            LossCase((2, 5, 3, 4), "float", weighted=True, normalize="local"),
            LossCase((2, 5, 3, 4), "int64", channel_label=True, weighted=True, normalize="global"),
            LossCase((3, 4, 7), "float", channel_label=True, weighted=True, normalize="no"),
            LossCase((1, 6, 1, 5), "int32"),
            LossCase((3, 37, 2, 3), "float", weighted=True, zero_weight=True, normalize="no"),
        ]
    if kind == "tiny":
        return [
            LossCase((5, 7)),
            LossCase((1, 1), "int64"),
            LossCase((3, 150), "int64", weighted=True, zero_weight=True, normalize="local"),
            LossCase((2, 300, 3), "int32", channel_label=True, weighted=True, normalize="no"),
            LossCase((2, 5, 3, 4), "float", channel_label=True, weighted=True, normalize="global"),
            LossCase((2, 130, 2, 3), "float", weighted=True, normalize="local"),
            LossCase((3, 5, 20, 20), "int64"),  # 1200 positions: more than one program
        ]
    raise ValueError(kind)


def loss_arrays(case: LossCase, dtype: str) -> dict[str, np.ndarray | None]:
    """Seeded x (standard normal), label and class_weights (uniform in [0.1, 3), or None) for a case."""
    rng = np.random.default_rng(zlib.crc32(f"{case.id}-{dtype}".encode()))
    n, c = case.shape[:2]
    x = rng.standard_normal(case.shape).astype(dtype)
    label = rng.integers(0, c, case.position_shape)
    if case.channel_label:
        label = label.reshape(n, 1, *case.shape[2:])
    label = label.astype(dtype if case.label_dtype == "float" else case.label_dtype)
    weights = None
    if case.weighted:
        weights = rng.uniform(0.1, 3.0, c).astype(dtype)
        if case.zero_weight:
            weights[int(label.reshape(-1)[0])] = 0.0  # a class that occurs, weighted out
    return {"x": x, "label": label, "class_weights": weights}


def softmax_of(x: np.ndarray) -> np.ndarray:
    """Softmax along axis 1 in float64, cast back to the dtype of x."""
    return torch.softmax(torch.from_numpy(x).double(), dim=1).numpy().astype(x.dtype)


# --- torch float64 oracles ------------------------------------------------------------------------------


def _torch(a: np.ndarray | None) -> torch.Tensor | None:
    return None if a is None else torch.from_numpy(np.asarray(a)).double()


def normalized_weights(class_weights: np.ndarray | None, normalize: str) -> torch.Tensor | None:
    w = _torch(class_weights)
    if w is None or normalize == "no":
        return w
    return w * (w.numel() / w.sum())


def torch_labels(label: np.ndarray, case: LossCase) -> torch.Tensor:
    return torch.from_numpy(np.asarray(label)).reshape(case.position_shape).long()


def torch_softmax_loss(x: torch.Tensor, label: np.ndarray, class_weights: np.ndarray | None, case: LossCase,
                       scale: float = 1.0) -> torch.Tensor:
    """scale * F.cross_entropy(..., reduction="sum") / (N * prod(S)) in float64 (no clamp)."""
    w = normalized_weights(class_weights, case.normalize)
    return scale * F.cross_entropy(x, torch_labels(label, case), weight=w, reduction="sum") / case.positions


def _empty_outputs(case: LossCase, dtype: str) -> dict[str, np.ndarray]:
    return {"lse": np.empty(case.position_shape, dtype), "loss": np.empty(1, dtype)}


# --- softmax loss ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", loss_cases("reference"), ids=lambda c: c.id)
def test_softmax_loss_forward_matches_cross_entropy(case, dtype):
    a = loss_arrays(case, dtype)
    got = call_op(CPU, "softmax_loss_forward", **a, **_empty_outputs(case, dtype), normalize=case.normalize)
    tx = _torch(a["x"])
    c = case.shape[1]
    assert_close(got["lse"], torch.logsumexp(tx, dim=1).numpy(), dtype, reduction=c, what="lse")
    expected = torch_softmax_loss(tx, a["label"], a["class_weights"], case)
    assert_close(got["loss"], [float(expected)], dtype, reduction=case.positions * c, what="loss")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", loss_cases("reference"), ids=lambda c: c.id)
def test_softmax_loss_backward_matches_autograd(case, dtype):
    a = loss_arrays(case, dtype)
    lse = call_op(CPU, "softmax_loss_forward", **a, **_empty_outputs(case, dtype), normalize=case.normalize)["lse"]
    scale = 0.75
    got = call_op(CPU, "softmax_loss_backward", **a, lse=lse, dx=np.empty_like(a["x"]), normalize=case.normalize,
                  scale=scale)["dx"]
    tx = _torch(a["x"]).requires_grad_()
    torch_softmax_loss(tx, a["label"], a["class_weights"], case, scale).backward()
    assert_close(got, tx.grad.numpy(), dtype, reduction=case.shape[1], what="dx")


def test_normalize_modes_rescale_class_weights_to_sum_c():
    """'local' and 'global' both use w * C / sum(w); 'no' keeps w; without weights all modes agree."""
    case = LossCase((4, 6, 2), "int64", weighted=True)
    a = loss_arrays(case, "float64")
    w = a["class_weights"]
    losses = {}
    for normalize in NORMALIZE_MODES:
        losses[normalize] = call_op(CPU, "softmax_loss_forward", **a, **_empty_outputs(case, "float64"),
                                    normalize=normalize)["loss"][0]
    assert losses["local"] == losses["global"]
    rescaled = dict(a, class_weights=w * (6 / w.sum()))
    no_rescale = call_op(CPU, "softmax_loss_forward", **rescaled, **_empty_outputs(case, "float64"),
                         normalize="no")["loss"][0]
    assert_close([losses["local"]], [no_rescale], "float64")
    assert abs(losses["no"] - losses["local"]) > 1e-3  # sum(w) != C here, so "no" differs
    unweighted = [call_op(CPU, "softmax_loss_forward", **dict(a, class_weights=None),
                          **_empty_outputs(case, "float64"), normalize=m)["loss"][0] for m in NORMALIZE_MODES]
    assert unweighted[0] == unweighted[1] == unweighted[2]


def test_channel_label_layout_equals_flat_layout():
    case = LossCase((3, 5, 2, 3), "float", weighted=True)
    a = loss_arrays(case, "float64")
    flat = call_op(CPU, "softmax_loss_forward", **a, **_empty_outputs(case, "float64"))
    channel = call_op(CPU, "softmax_loss_forward", **dict(a, label=a["label"].reshape(3, 1, 2, 3)),
                      **_empty_outputs(case, "float64"))
    assert np.array_equal(flat["loss"], channel["loss"]) and np.array_equal(flat["lse"], channel["lse"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_loss_clamps_log_probability_at_1e_20(dtype):
    """A logit gap > 50 makes p < 1e-20: that position contributes exactly -w * log(1e-20)."""
    log_clamp = np.log(np.dtype(dtype).type(LOG_CLAMP))
    x = np.zeros((1, 4), dtype)
    x[0, 2] = -60.0
    label = np.array([2], dtype)
    one = call_op(CPU, "softmax_loss_forward", x=x, label=label, class_weights=None, lse=np.empty(1, dtype),
                  loss=np.empty(1, dtype))["loss"]
    assert one[0] == -log_clamp

    w = np.array([0.5, 1.0, 2.0, 1.5], dtype)
    weighted = call_op(CPU, "softmax_loss_forward", x=x, label=label, class_weights=w, lse=np.empty(1, dtype),
                       loss=np.empty(1, dtype), normalize="no")["loss"]
    assert weighted[0] == w[2] * -log_clamp

    # Mixed with an unclamped position, against cross-entropy with the clamp applied by hand.
    x2 = np.concatenate([x, np.array([[0.3, -1.2, 0.8, 2.0]], dtype)])
    label2 = np.array([2, 0], dtype)
    got = call_op(CPU, "softmax_loss_forward", x=x2, label=label2, class_weights=w, lse=np.empty(2, dtype),
                  loss=np.empty(1, dtype), normalize="no")["loss"]
    terms = F.cross_entropy(_torch(x2), torch.tensor([2, 0]), weight=_torch(w), reduction="none")
    unclamped = float(terms.sum()) / 2
    clamped = float(torch.minimum(terms, -math.log(LOG_CLAMP) * _torch(w)[[2, 0]]).sum()) / 2
    assert_close(got, [clamped], dtype, reduction=8)
    assert unclamped - clamped > 1.0  # the clamp is active


def test_softmax_loss_gradient_matches_finite_differences():
    case = LossCase((2, 4, 3), "int64", weighted=True, normalize="local")
    a = loss_arrays(case, "float64")
    scale = 0.7

    def loss_at(x):
        return call_op(CPU, "softmax_loss_forward", **dict(a, x=x), **_empty_outputs(case, "float64"),
                       normalize="local")["loss"][0]

    lse = call_op(CPU, "softmax_loss_forward", **a, **_empty_outputs(case, "float64"))["lse"]
    dx = call_op(CPU, "softmax_loss_backward", **a, lse=lse, dx=np.empty_like(a["x"]), scale=scale)["dx"]
    h = 1e-6
    fd = np.empty_like(a["x"])
    for i in np.ndindex(a["x"].shape):
        plus, minus = a["x"].copy(), a["x"].copy()
        plus[i] += h
        minus[i] -= h
        fd[i] = scale * (loss_at(plus) - loss_at(minus)) / (2 * h)
    np.testing.assert_allclose(dx, fd, rtol=0, atol=1e-8)


# --- multinomial logistic loss --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", loss_cases("reference"), ids=lambda c: c.id)
def test_multinomial_logistic_loss_matches_formula(case, dtype):
    a = loss_arrays(case, dtype)
    prob = softmax_of(a["x"])
    labels = torch_labels(a["label"], case)
    flat = prob.reshape(case.shape[0], case.shape[1], -1)
    flat[0, int(labels.reshape(-1)[0]), 0] = 0.0  # p = 0 at a label: clamped at 1e-20
    got = call_op(CPU, "multinomial_logistic_loss_forward", prob=prob, label=a["label"],
                  class_weights=a["class_weights"], loss=np.empty(1, dtype), normalize=case.normalize)["loss"]
    picked = _torch(prob).gather(1, labels.unsqueeze(1)).squeeze(1)
    terms = -torch.log(torch.clamp(picked, min=LOG_CLAMP))
    w = normalized_weights(a["class_weights"], case.normalize)
    if w is not None:
        terms = w[labels] * terms
    assert_close(got, [float(terms.sum()) / case.positions], dtype, reduction=case.positions)


def test_multinomial_on_softmax_equals_softmax_loss():
    case = LossCase((4, 9, 3), "float", weighted=True, normalize="global")
    a = loss_arrays(case, "float64")
    fused = call_op(CPU, "softmax_loss_forward", **a, **_empty_outputs(case, "float64"), normalize="global")
    split = call_op(CPU, "multinomial_logistic_loss_forward", prob=softmax_of(a["x"]), label=a["label"],
                    class_weights=a["class_weights"], loss=np.empty(1), normalize="global")
    assert_close(split["loss"], fused["loss"], "float64", reduction=case.positions * 9)


# --- accuracy -------------------------------------------------------------------------------------------


def torch_accuracy(x: np.ndarray, label: np.ndarray, case: LossCase, top_k: int) -> int:
    """Positions whose label is among the first top_k classes of a stable descending sort of the scores
    (ties keep the lower class index first, like argmax)."""
    tx = _torch(x)
    labels = torch_labels(label, case)
    order = torch.sort(tx, dim=1, descending=True, stable=True).indices[:, :top_k]
    return int((order == labels.unsqueeze(1)).any(dim=1).sum())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", loss_cases("reference"), ids=lambda c: c.id)
def test_accuracy_counts_with_ties_and_top_k(case, dtype):
    a = loss_arrays(case, dtype)
    c = case.shape[1]
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    tied = rng.integers(0, 3, case.shape).astype(dtype)  # few distinct scores: ties everywhere
    for x in (a["x"], tied):
        for top_k in sorted({1, min(2, c), c}):
            got = call_op(CPU, "accuracy_forward", x=x, label=a["label"], correct=np.empty(1, np.int64),
                          top_k=top_k)["correct"]
            assert got.dtype == np.int64
            assert got[0] == torch_accuracy(x, a["label"], case, top_k), (top_k, x is tied)
    # Without ties top-1 accuracy is argmax == label, and top-k is "label among torch.topk".
    labels = torch_labels(a["label"], case)
    tx = _torch(a["x"])
    got1 = call_op(CPU, "accuracy_forward", x=a["x"], label=a["label"], correct=np.empty(1, np.int64))["correct"]
    assert got1[0] == int((tx.argmax(dim=1) == labels).sum())
    k = min(3, c)
    topk = tx.topk(k, dim=1).indices
    gotk = call_op(CPU, "accuracy_forward", x=a["x"], label=a["label"], correct=np.empty(1, np.int64),
                   top_k=k)["correct"]
    assert gotk[0] == int((topk == labels.unsqueeze(1)).any(dim=1).sum())


def test_accuracy_tie_rules_by_hand():
    x = np.array([[1.0, 1.0, 0.0]])
    counts = {}
    for label in range(3):
        for top_k in (1, 2, 3):
            counts[label, top_k] = call_op(CPU, "accuracy_forward", x=x, label=np.array([label], np.int64),
                                           correct=np.empty(1, np.int64), top_k=top_k)["correct"][0]
    # A tie for the top score goes to the lower class index (argmax's first index, Mocha); class 2 has
    # two classes above it.
    assert [counts[0, 1], counts[1, 1], counts[2, 1]] == [1, 0, 0]
    assert [counts[1, 2], counts[2, 2], counts[2, 3]] == [1, 0, 1]


# --- bad inputs -----------------------------------------------------------------------------------------


def _forward(x, label, w=None, normalize="local", lse=None, loss=None):
    lse = np.empty((x.shape[0], *x.shape[2:]), x.dtype) if lse is None else lse
    ref.softmax_loss_forward(x, label, w, lse, np.empty(1, x.dtype) if loss is None else loss, normalize)


def test_bad_labels_are_rejected_with_the_op_and_the_value():
    x = np.zeros((2, 5))
    op = "softmax_loss_forward"
    with pytest.raises(ValueError, match=rf"{op}: label holds -1, outside the class range \[0, 5\)"):
        _forward(x, np.array([0, -1]))
    with pytest.raises(ValueError, match=rf"{op}: label holds 5.0, outside the class range \[0, 5\)"):
        _forward(x, np.array([0.0, 5.0]))
    with pytest.raises(ValueError, match=rf"{op}: label holds 2.5, which is not an integral class index"):
        _forward(x, np.array([2.5, 1.0]))
    with pytest.raises(ValueError, match=rf"{op}: label holds nan, which is not an integral class index"):
        _forward(x, np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=rf"{op}: label has shape \(3,\), expected \(2,\) or \(2, 1\)"):
        _forward(x, np.zeros(3))
    with pytest.raises(ValueError, match=r"label has shape \(2, 4\), expected \(2, 3\) or \(2, 1, 3\)"):
        _forward(np.zeros((2, 5, 3)), np.zeros((2, 4)))
    with pytest.raises(TypeError, match=rf"{op}: label has dtype float32; expected float64 \(the dtype of the "
                                        r"scores\) or one of \('int32', 'int64'\)"):
        _forward(x, np.zeros(2, np.float32))
    with pytest.raises(TypeError, match=rf"{op}: label has dtype bool"):
        _forward(x, np.zeros(2, bool))
    with pytest.raises(ValueError, match=r"softmax_loss_backward: label holds 7, outside"):
        ref.softmax_loss_backward(x, np.array([7, 0]), None, np.zeros(2), np.empty_like(x))
    with pytest.raises(ValueError, match=r"multinomial_logistic_loss_forward: label holds -3, outside"):
        ref.multinomial_logistic_loss_forward(x, np.array([0, -3]), None, np.empty(1))
    with pytest.raises(ValueError, match=r"accuracy_forward: label holds 0.5, which is not an integral"):
        ref.accuracy_forward(x, np.array([0.5, 0.0]), np.empty(1, np.int64))


def test_bad_class_weights_normalize_and_params_are_rejected():
    x, label = np.zeros((2, 5)), np.array([0, 1])
    with pytest.raises(ValueError, match=r"softmax_loss_forward: class_weights has shape \(6,\), expected \(5,\)"):
        _forward(x, label, np.ones(6))
    with pytest.raises(ValueError, match=r"class_weights must be non-negative, found -0.5"):
        _forward(x, label, np.array([1.0, -0.5, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"class_weights must be finite"):
        _forward(x, label, np.array([1.0, np.inf, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"class_weights are all zero, so normalize='global' cannot rescale"):
        _forward(x, label, np.zeros(5), normalize="global")
    _forward(x, label, np.zeros(5), normalize="no")  # zero weights without rescaling: a zero loss, fine
    with pytest.raises(ValueError, match=r"softmax_loss_forward: normalize must be one of \('local', 'global', "
                                         r"'no'\), got 'mean'"):
        _forward(x, label, normalize="mean")
    with pytest.raises(ValueError, match=r"softmax_loss_backward: scale must be finite"):
        ref.softmax_loss_backward(x, label, None, np.zeros(2), np.empty_like(x), scale=float("nan"))
    for top_k in (0, 6, True, 1.5):
        with pytest.raises(ValueError, match=r"accuracy_forward: top_k must be an int in \[1, C\] = \[1, 5\]"):
            ref.accuracy_forward(x, label, np.empty(1, np.int64), top_k)


def test_bad_dtypes_and_shapes_are_rejected():
    x, label = np.zeros((2, 5)), np.array([0, 1])
    with pytest.raises(TypeError, match=r"softmax_loss_forward: all float arguments must share one dtype, got "
                                        r"x=float64, class_weights=float32"):
        _forward(x, label, np.ones(5, np.float32))
    with pytest.raises(TypeError, match=r"all float arguments must share one dtype"):
        _forward(x, label, lse=np.empty(2, np.float32))
    with pytest.raises(TypeError, match=r"softmax_loss_forward: x has dtype int64"):
        _forward(np.zeros((2, 5), np.int64), label)
    with pytest.raises(ValueError, match=r"softmax_loss_forward: lse has shape \(2, 1\), expected \(2,\)"):
        _forward(x, label, lse=np.empty((2, 1)))
    with pytest.raises(ValueError, match=r"softmax_loss_forward: loss has shape \(2,\), expected \(1,\)"):
        _forward(x, label, loss=np.empty(2))
    with pytest.raises(ValueError, match=r"softmax_loss_forward: x must have at least 2 dimensions"):
        _forward(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match=r"softmax_loss_forward: x must not be empty, got shape \(0, 5\)"):
        _forward(np.zeros((0, 5)), np.zeros(0))
    with pytest.raises(ValueError, match=r"softmax_loss_backward: dx has shape \(2, 4\), expected \(2, 5\)"):
        ref.softmax_loss_backward(x, label, None, np.zeros(2), np.empty((2, 4)))
    with pytest.raises(TypeError, match=r"multinomial_logistic_loss_forward: all float arguments must share"):
        ref.multinomial_logistic_loss_forward(x, label, None, np.empty(1, np.float32))
    with pytest.raises(TypeError, match=r"accuracy_forward: correct has dtype float64; expected int64"):
        ref.accuracy_forward(x, label, np.empty(1))
    with pytest.raises(ValueError, match=r"accuracy_forward: correct has shape \(2,\), expected \(1,\)"):
        ref.accuracy_forward(x, label, np.empty(2, np.int64))
