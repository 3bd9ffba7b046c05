"""cpu_ref.pointwise_loss against torch float64 autograd: square loss, binary cross-entropy and hinge loss
(values and both gradients), binary accuracy against a direct count, and bad inputs.

The case generator at the top is shared with tests/test_kernels_pointwise_loss.py.
"""

import numpy as np
import pytest
import torch

from support import CPU, assert_close, call_op

DTYPES = ["float32", "float64"]
SHAPES = [(1,), (5,), (3, 4), (2, 3, 4, 5), (7, 1), (1, 1, 1, 1), (4, 1100)]


def pointwise_case(kind, shape, dtype, seed):
    """(prediction, target) for a loss kind: "square" (normal, normal), "bce" (probabilities in
    [0.02, 0.98], targets in [0, 1] with some exact 0s and 1s), "hinge" (normal scores, labels -1/+1 and
    some scores exactly on the margin y * pred == 1, where the subgradient is 0)."""
    rng = np.random.default_rng(seed)
    if kind == "square":
        return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    if kind == "bce":
        prob = rng.uniform(0.02, 0.98, shape).astype(dtype)
        label = rng.uniform(0.0, 1.0, shape)
        label.reshape(-1)[::3] = rng.integers(0, 2, label.reshape(-1)[::3].shape)
        return prob, label.astype(dtype)
    pred = (2.0 * rng.standard_normal(shape)).astype(dtype)
    label = rng.choice([-1.0, 1.0], shape).astype(dtype)
    pred.reshape(-1)[::4] = label.reshape(-1)[::4]  # on the margin: y * pred == 1 exactly
    return pred, label


def torch_loss(kind, a, b):
    n = a.shape[0]
    if kind == "square":
        return 0.5 * ((a - b) ** 2).sum() / n
    if kind == "bce":
        return -(b * torch.log(a) + (1 - b) * torch.log(1 - a)).sum() / n
    return torch.clamp(1 - b * a, min=0).sum() / n


OPS = {"square": ("square_loss_forward", "square_loss_backward", ("pred", "target"), ("dpred",)),
       "bce": ("binary_cross_entropy_forward", "binary_cross_entropy_backward", ("prob", "label"),
               ("dprob", "dlabel")),
       "hinge": ("hinge_loss_forward", "hinge_loss_backward", ("pred", "label"), ("dpred", "dlabel"))}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["square", "bce", "hinge"])
def test_losses_and_gradients_match_torch_autograd(kind, shape, dtype):
    a, b = pointwise_case(kind, shape, dtype, seed=sum(shape) + len(kind))
    forward, backward, names, grads = OPS[kind]
    ta, tb = (torch.from_numpy(x).double().requires_grad_() for x in (a, b))
    loss = torch_loss(kind, ta, tb)
    scale = 0.7
    (scale * loss).backward()
    got = call_op(CPU, forward, **{names[0]: a, names[1]: b}, loss=np.empty(1, dtype))
    assert_close(got["loss"], [loss.item()], dtype, reduction=a.size)
    outs = {g: np.empty_like(a) for g in grads}
    got = call_op(CPU, backward, **{names[0]: a, names[1]: b}, **outs, scale=scale)
    # hinge: torch's clamp passes the gradient at the kink (y * pred == 1), the subgradient used here is 0
    want = {grads[0]: ta.grad.numpy()}
    if len(grads) == 2:
        want[grads[1]] = tb.grad.numpy()
    if kind == "hinge":
        on_margin = b * a == 1
        for g in want.values():
            g[on_margin] = 0.0
    for name, value in want.items():
        assert_close(got[name], value, dtype, what=f"{backward}.{name}")


@pytest.mark.parametrize("kind", ["square", "bce", "hinge"])
def test_gradients_match_finite_differences(kind):
    a, b = pointwise_case(kind, (3, 4), "float64", seed=11)
    if kind == "hinge":
        a += 0.01  # keep every element off the kink, where the loss is not differentiable
    forward, backward, names, grads = OPS[kind]

    def loss_of(x, y):
        return call_op(CPU, forward, **{names[0]: x, names[1]: y}, loss=np.empty(1))["loss"][0]

    outs = {g: np.empty_like(a) for g in grads}
    analytic = call_op(CPU, backward, **{names[0]: a, names[1]: b}, **outs)
    h = 1e-6
    for which, grad_name in enumerate(grads):
        numeric = np.empty_like(a)
        for i in np.ndindex(*a.shape):
            e = np.zeros_like(a)
            e[i] = h
            args_plus, args_minus = [a, b], [a, b]
            args_plus[which] = (a, b)[which] + e
            args_minus[which] = (a, b)[which] - e
            numeric[i] = (loss_of(*args_plus) - loss_of(*args_minus)) / (2 * h)
        np.testing.assert_allclose(analytic[grad_name], numeric, rtol=1e-6, atol=1e-8, err_msg=grad_name)


def test_square_loss_gradient_of_the_target_is_the_swapped_call():
    pred, target = pointwise_case("square", (4, 3), "float64", seed=2)
    tp, tt = torch.from_numpy(pred).requires_grad_(), torch.from_numpy(target).requires_grad_()
    torch_loss("square", tp, tt).backward()
    got = call_op(CPU, "square_loss_backward", pred=target, target=pred, dpred=np.empty_like(pred))["dpred"]
    assert_close(got, tt.grad.numpy(), "float64")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_binary_accuracy_counts_agreeing_signs(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    pred = rng.standard_normal(shape).astype(dtype)
    label = rng.choice([-1.0, 1.0], shape).astype(dtype)
    for threshold in (0.0, 0.5):
        got = call_op(CPU, "binary_accuracy_forward", pred=pred, label=label, correct=np.empty(1, np.int64),
                      threshold=threshold)["correct"]
        want = sum(int((p > threshold) == (q > threshold)) for p, q in zip(pred.reshape(-1), label.reshape(-1)))
        assert got.tolist() == [want]
    # 0/1 labels with threshold 0.5, and exact ties at the threshold (not "greater")
    probs = np.array([[0.2, 0.5, 0.7, 0.9]], dtype)
    labels = np.array([[0.0, 0.0, 1.0, 0.0]], dtype)
    got = call_op(CPU, "binary_accuracy_forward", pred=probs, label=labels, correct=np.empty(1, np.int64),
                  threshold=0.5)["correct"]
    assert got.tolist() == [3]


def test_optional_gradients_are_skipped():
    from mocha_triton.cpu_ref import pointwise_loss

    prob, label = pointwise_case("bce", (3, 2), "float64", seed=4)
    full_prob, full_label = np.empty_like(prob), np.empty_like(prob)
    pointwise_loss.binary_cross_entropy_backward(prob, label, full_prob, full_label)
    only = np.empty_like(prob)
    pointwise_loss.binary_cross_entropy_backward(prob, label, None, only)
    np.testing.assert_array_equal(only, full_label)
    pointwise_loss.hinge_loss_backward(prob, label, None, None)  # nothing wanted: a no-op


def test_bad_inputs():
    from mocha_triton.cpu_ref import pointwise_loss as ops

    a, b = np.zeros((2, 3)), np.zeros((2, 3))
    loss = np.empty(1)
    with pytest.raises(ValueError, match=r"square_loss_forward: arguments must have the same shape, "
                                         r"got pred=\(2, 3\), target=\(3, 2\)"):
        ops.square_loss_forward(a, np.zeros((3, 2)), loss)
    with pytest.raises(TypeError, match=r"hinge_loss_forward: all float arguments must share one dtype"):
        ops.hinge_loss_forward(a, b.astype(np.float32), loss)
    with pytest.raises(TypeError, match=r"binary_cross_entropy_forward: loss has dtype float32; expected float64"):
        ops.binary_cross_entropy_forward(a + 0.5, b, np.empty(1, np.float32))
    with pytest.raises(ValueError, match=r"square_loss_forward: loss has shape \(2,\), expected \(1,\)"):
        ops.square_loss_forward(a, b, np.empty(2))
    with pytest.raises(ValueError, match=r"hinge_loss_forward: pred must hold at least one sample"):
        ops.hinge_loss_forward(np.zeros((0, 3)), np.zeros((0, 3)), loss)
    with pytest.raises(ValueError, match=r"hinge_loss_forward: pred must have at least 1 dimensions"):
        ops.hinge_loss_forward(np.zeros(()), np.zeros(()), loss)
    with pytest.raises(ValueError, match=r"hinge_loss_backward: arguments must have the same shape, got pred=\(2, 3\), "
                                         r"dlabel=\(2, 2\)"):
        ops.hinge_loss_backward(a, b, None, np.empty((2, 2)))
    with pytest.raises(TypeError, match=r"binary_cross_entropy_backward: dprob has dtype int64"):
        ops.binary_cross_entropy_backward(a, b, np.empty((2, 3), np.int64), None)
    with pytest.raises(ValueError, match=r"square_loss_backward: scale must be finite"):
        ops.square_loss_backward(a, b, np.empty_like(a), float("nan"))
    with pytest.raises(TypeError, match=r"binary_accuracy_forward: correct has dtype float64; expected int64"):
        ops.binary_accuracy_forward(a, b, np.empty(1), 0.0)
    with pytest.raises(TypeError, match=r"binary_accuracy_forward: threshold must be a real scalar"):
        ops.binary_accuracy_forward(a, b, np.empty(1, np.int64), "half")
