"""kernels.pointwise_loss equals cpu_ref.pointwise_loss (float32) on the cases of
tests/test_cpu_ref_pointwise_loss.py, plus optional gradients, determinism and bad inputs."""

import numpy as np
import pytest
from test_cpu_ref_pointwise_loss import OPS, SHAPES, pointwise_case

from mocha_triton.kernels import pointwise_loss
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts

F32 = "float32"
KERNEL_SHAPES = SHAPES + [(3, 3000)]  # several programs in the interpreter too


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
@pytest.mark.parametrize("kind", ["square", "bce", "hinge"])
def test_losses_and_gradients_match_reference(kind, shape):
    a, b = pointwise_case(kind, shape, F32, seed=sum(shape) + len(kind))
    forward, backward, names, grads = OPS[kind]
    inputs = {names[0]: a, names[1]: b}
    for _, context in triton_config_contexts(pointwise_loss):
        with context:
            want = call_op(CPU, forward, **inputs, loss=np.empty(1, F32))["loss"]
            got = call_op(TRITON, forward, **inputs, loss=np.empty(1, F32))["loss"]
            assert_close(got, want, F32, reduction=a.size, what=forward)
            outs = {g: np.empty_like(a) for g in grads}
            want = call_op(CPU, backward, **inputs, **outs, scale=1.5)
            got = call_op(TRITON, backward, **inputs, **outs, scale=1.5)
            for name in grads:
                assert_close(got[name], want[name], F32, what=f"{backward}.{name}")


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
def test_binary_accuracy_matches_reference(shape):
    rng = np.random.default_rng(len(shape))
    pred = rng.standard_normal(shape).astype(F32)
    label = rng.choice([-1.0, 1.0], shape).astype(F32)
    pred.reshape(-1)[::5] = 0.0  # exactly at the threshold
    for threshold in (0.0, 0.25):
        kwargs = dict(pred=pred, label=label, correct=np.empty(1, np.int64), threshold=threshold)
        assert call_op(TRITON, "binary_accuracy_forward", **kwargs)["correct"].tolist() == \
            call_op(CPU, "binary_accuracy_forward", **kwargs)["correct"].tolist()


def test_optional_gradients_and_determinism():
    prob, label = pointwise_case("bce", (4, 2500), F32, seed=3)
    tp, tl = TRITON.to_backend(prob), TRITON.to_backend(label)
    both_p, both_l = TRITON.to_backend(np.zeros_like(prob)), TRITON.to_backend(np.zeros_like(prob))
    pointwise_loss.binary_cross_entropy_backward(tp, tl, both_p, both_l)
    only = TRITON.to_backend(np.full_like(prob, np.nan))
    pointwise_loss.binary_cross_entropy_backward(tp, tl, None, only)
    np.testing.assert_array_equal(TRITON.to_numpy(only), TRITON.to_numpy(both_l))
    only = TRITON.to_backend(np.full_like(prob, np.nan))
    pointwise_loss.hinge_loss_backward(tp, tl, only, None)
    assert np.isfinite(TRITON.to_numpy(only)).all()
    losses = set()
    for _ in range(2):
        loss = TRITON.to_backend(np.empty(1, np.float32))
        pointwise_loss.binary_cross_entropy_forward(tp, tl, loss)
        losses.add(TRITON.to_numpy(loss).tobytes())
    assert len(losses) == 1, "the reduction must be deterministic"


def test_rejects_float64_and_bad_inputs():
    t64 = TRITON.to_backend(np.zeros((2, 3)))
    t32 = TRITON.to_backend(np.zeros((2, 3), np.float32))
    loss = TRITON.to_backend(np.empty(1, np.float32))
    with pytest.raises(TypeError, match=r"square_loss_forward: pred has dtype float64; expected one of \('float32',\)"):
        pointwise_loss.square_loss_forward(t64, t64, loss)
    with pytest.raises(ValueError, match="hinge_loss_forward: arguments must have the same shape"):
        pointwise_loss.hinge_loss_forward(t32, TRITON.to_backend(np.zeros((3, 2), np.float32)), loss)
    with pytest.raises(TypeError, match="binary_accuracy_forward: correct has dtype float32; expected int64"):
        pointwise_loss.binary_accuracy_forward(t32, t32, loss)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        pointwise_loss.square_loss_backward(t32, np.zeros((2, 3), np.float32), t32)
    strided = TRITON.to_backend(np.zeros((3, 2), np.float32)).t()
    with pytest.raises(ValueError, match="square_loss_forward: target must be contiguous"):
        pointwise_loss.square_loss_forward(t32, strided, loss)
    with pytest.raises(ValueError, match="hinge_loss_backward: dlabel must be contiguous"):
        pointwise_loss.hinge_loss_backward(t32, t32, None, strided)
