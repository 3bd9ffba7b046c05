"""kernels.loss equals cpu_ref.loss (float32): softmax loss forward/backward, multinomial logistic
loss, accuracy; determinism of the two-stage reductions; rejections with the shared messages."""

import numpy as np
import pytest
import torch
from test_cpu_ref_loss import LossCase, loss_arrays, loss_cases, softmax_of

from mocha_triton.kernels import loss as kernels_loss
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts

CONTEXTS = triton_config_contexts(kernels_loss)


def _outputs(case: LossCase) -> dict[str, np.ndarray]:
    return {"lse": np.empty(case.position_shape, np.float32), "loss": np.empty(1, np.float32)}


def _both(op: str, **kwargs) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The outputs of op on cpu_ref and on Triton, from the same NumPy inputs."""
    return call_op(CPU, op, **kwargs), call_op(TRITON, op, **kwargs)


@pytest.mark.parametrize("case", loss_cases("tiny"), ids=lambda c: c.id)
def test_matches_reference(case):
    a = loss_arrays(case, "float32")
    c = case.shape[1]
    weights = dict(class_weights=a["class_weights"], normalize=case.normalize)
    for label, context in CONTEXTS:
        what = f"{case.id} [{label}]"
        with context:
            want, got = _both("softmax_loss_forward", **a, **_outputs(case), normalize=case.normalize)
            assert_close(got["lse"], want["lse"], "float32", reduction=c, what=f"lse {what}")
            assert_close(got["loss"], want["loss"], "float32", reduction=case.positions * c, what=f"loss {what}")

            want, got = _both("softmax_loss_backward", x=a["x"], label=a["label"], lse=want["lse"],
                              dx=np.empty_like(a["x"]), scale=1.5, **weights)
            assert_close(got["dx"], want["dx"], "float32", reduction=c, what=f"dx {what}")

            want, got = _both("multinomial_logistic_loss_forward", prob=softmax_of(a["x"]), label=a["label"],
                              loss=np.empty(1, np.float32), **weights)
            assert_close(got["loss"], want["loss"], "float32", reduction=case.positions, what=f"multinomial {what}")

            for top_k in sorted({1, min(3, c)}):
                want, got = _both("accuracy_forward", x=a["x"], label=a["label"], correct=np.empty(1, np.int64),
                                  top_k=top_k)
                assert got["correct"].dtype == np.int64
                assert got["correct"][0] == want["correct"][0], f"accuracy top_k={top_k} {what}"


def test_accuracy_with_ties_matches_reference():
    case = LossCase((4, 140, 3), "int64")
    a = loss_arrays(case, "float32")
    tied = np.random.default_rng(5).integers(0, 3, case.shape).astype(np.float32)
    for top_k in (1, 2, 60, 140):
        want, got = _both("accuracy_forward", x=tied, label=a["label"], correct=np.empty(1, np.int64), top_k=top_k)
        assert got["correct"][0] == want["correct"][0], top_k


def test_clamp_matches_reference():
    x = np.array([[0.0, 0.0, -60.0, 0.0], [0.3, -1.2, 0.8, 2.0]], np.float32)
    label = np.array([2, 0], np.int64)
    w = np.array([0.5, 1.0, 2.0, 1.5], np.float32)
    kwargs = dict(x=x, label=label, class_weights=w, lse=np.empty(2, np.float32), loss=np.empty(1, np.float32),
                  normalize="no")
    want, got = _both("softmax_loss_forward", **kwargs)
    assert_close(got["loss"], want["loss"], "float32", reduction=8)
    prob = np.array([[0.0, 0.5, 0.5]], np.float32)
    kwargs = dict(prob=prob, label=np.array([0], np.int64), class_weights=None, loss=np.empty(1, np.float32))
    got = call_op(TRITON, "multinomial_logistic_loss_forward", **kwargs)["loss"]
    assert_close(got, [-np.log(1e-20)], "float32")


def test_reductions_are_deterministic_and_exact_past_one_block():
    case = LossCase((3, 5, 20, 20), "float", weighted=True)
    a = loss_arrays(case, "float32")
    runs = [call_op(TRITON, "softmax_loss_forward", **a, **_outputs(case))["loss"] for _ in range(2)]
    assert runs[0].tobytes() == runs[1].tobytes()
    # The final reductions loop over partials in REDUCE_BLOCK steps: check them directly past one step.
    n = 2 * kernels_loss.REDUCE_BLOCK + 17
    partial = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    loss = torch.empty(1, device=TRITON.device)
    kernels_loss.loss_total_kernel[(1,)](TRITON.to_backend(partial), loss, n, 3.0,
                                         **kernels_loss._launch(BLOCK=kernels_loss.REDUCE_BLOCK))
    assert_close(TRITON.to_numpy(loss), [partial.astype(np.float64).sum() / 3.0], "float32", reduction=n)
    counts = np.random.default_rng(2).integers(0, 2**40, n)
    total = torch.empty(1, dtype=torch.int64, device=TRITON.device)
    kernels_loss.count_total_kernel[(1,)](TRITON.to_backend(counts), total, n,
                                          **kernels_loss._launch(BLOCK=kernels_loss.REDUCE_BLOCK))
    assert int(TRITON.to_numpy(total)[0]) == int(counts.sum())


def _both_raise(op: str, exc: type, **kwargs) -> str:
    """Run op on both backends; both must raise exc with the same message; return it."""
    messages = []
    for impl in (CPU, TRITON):
        with pytest.raises(exc) as info:
            call_op(impl, op, **kwargs)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    return messages[0]


def test_rejects_bad_labels_and_weights_with_the_shared_messages():
    x = np.zeros((2, 5), np.float32)
    out = dict(lse=np.empty(2, np.float32), loss=np.empty(1, np.float32))
    for bad, message in ((np.array([0, -1]), "label holds -1, outside the class range [0, 5)"),
                         (np.array([0, 5]), "label holds 5, outside the class range [0, 5)"),
                         (np.array([2.5, 0], np.float32), "label holds 2.5, which is not an integral class index")):
        got = _both_raise("softmax_loss_forward", ValueError, x=x, label=bad, class_weights=None, **out)
        assert got == f"softmax_loss_forward: {message}"
    _both_raise("accuracy_forward", ValueError, x=x, label=np.array([0, 9]), correct=np.empty(1, np.int64))
    _both_raise("softmax_loss_backward", ValueError, x=x, label=np.zeros(3, np.int64), class_weights=None,
                lse=np.zeros(2, np.float32), dx=np.empty_like(x))
    _both_raise("multinomial_logistic_loss_forward", ValueError, prob=x, label=np.zeros(2, np.int64),
                class_weights=-np.ones(5, np.float32), loss=np.empty(1, np.float32))
    _both_raise("softmax_loss_forward", ValueError, x=x, label=np.zeros(2, np.int64),
                class_weights=np.ones(4, np.float32), **out)
    _both_raise("accuracy_forward", ValueError, x=x, label=np.zeros(2, np.int64), correct=np.empty(1, np.int64),
                top_k=6)


def test_rejects_float64_and_non_tensors():
    t = TRITON.to_backend
    x64 = t(np.zeros((2, 5)))
    label = t(np.zeros(2, np.int64))
    with pytest.raises(TypeError, match=r"softmax_loss_forward: x has dtype float64; expected one of \('float32',\)"):
        kernels_loss.softmax_loss_forward(x64, label, None, t(np.empty(2)), t(np.empty(1)))
    with pytest.raises(TypeError, match=r"accuracy_forward: x has dtype float64"):
        kernels_loss.accuracy_forward(x64, label, t(np.empty(1, np.int64)))
    x = t(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match=r"label has dtype float64; expected float32"):
        kernels_loss.softmax_loss_backward(x, t(np.zeros(2)), None, t(np.zeros(2, np.float32)), torch.empty_like(x))
    with pytest.raises(TypeError, match=r"multinomial_logistic_loss_forward: label must be a torch.Tensor"):
        kernels_loss.multinomial_logistic_loss_forward(x, np.zeros(2, np.int64), None, t(np.empty(1, np.float32)))


def test_backward_reuses_the_label_check_of_its_forward(monkeypatch):
    """On a GPU reading label values is a copy to the host (a sync): the backward skips it for the label and
    class weights its forward just validated, and still checks anything else."""
    import mocha_triton.checks.loss as loss_checks
    from mocha_triton.kernels import elementwise

    reads = []
    real = loss_checks.host_values
    def counting(a):  # counts the reads of torch tensors (the NumPy reference below reads its arrays too)
        if hasattr(a, "detach"):
            reads.append(tuple(a.shape))
        return real(a)

    monkeypatch.setattr(loss_checks, "host_values", counting)
    rng = np.random.default_rng(0)
    x = TRITON.to_backend(rng.normal(size=(4, 3)).astype(np.float32))
    label = TRITON.to_backend(np.array([0, 2, 1, 2], np.float32))
    weights = TRITON.to_backend(np.array([1.0, 2.0, 0.5], np.float32))
    lse, loss_out, dx = (TRITON.to_backend(np.zeros(s, np.float32)) for s in ((4,), (1,), (4, 3)))
    kernels_loss.softmax_loss_forward(x, label, weights, lse, loss_out)
    assert len(reads) == 2  # the label and the class weights
    kernels_loss.softmax_loss_backward(x, label, weights, lse, dx)
    assert len(reads) == 2, "the backward must not read the values again"
    want = call_op(CPU, "softmax_loss_backward", x=TRITON.to_numpy(x), label=TRITON.to_numpy(label),
                   class_weights=TRITON.to_numpy(weights), lse=TRITON.to_numpy(lse),
                   dx=np.empty((4, 3), np.float32))
    assert_close(TRITON.to_numpy(dx), want["dx"], "float32")
    # another label tensor is checked
    other = TRITON.to_backend(np.array([0, 1, 1, 2], np.float32))
    kernels_loss.softmax_loss_backward(x, other, weights, lse, dx)
    assert len(reads) == 4
    # a label changed in place through torch bumps its version: checked again, and refused
    label[1] = 7.0
    with pytest.raises(ValueError, match=r"softmax_loss_backward: label holds 7.0, outside the class range"):
        kernels_loss.softmax_loss_backward(x, label, weights, lse, dx)
    # one rewritten by a kernel (no version bump) is not re-read, but the kernel turns its bad label into NaN
    label[1] = 2.0
    kernels_loss.softmax_loss_forward(x, label, weights, lse, loss_out)
    elementwise.copy(TRITON.to_backend(np.array([0, 9, 1, 2], np.float32)), label)
    kernels_loss.softmax_loss_backward(x, label, weights, lse, dx)
    got = TRITON.to_numpy(dx)
    assert np.isnan(got[1]).all() and np.isfinite(np.delete(got, 1, axis=0)).all()
