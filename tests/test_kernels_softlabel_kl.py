"""kernels.loss.softlabel_softmax_loss_* and kernels.pointwise_loss.gaussian_kl_loss_* equal their cpu_ref
twins (float32) on the cases of tests/test_cpu_ref_softlabel_kl.py; optional gradients, the 1e-20 clamp,
determinism, and rejections with the shared messages."""

import numpy as np
import pytest
from test_cpu_ref_softlabel_kl import KL_SHAPES, kl_arrays, positions, softlabel_arrays, softlabel_cases

from mocha_triton.contract import OPS
from mocha_triton.kernels import loss as kernels_loss
from mocha_triton.kernels import pointwise_loss as kernels_pointwise
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts

F32 = "float32"


def _both(op: str, **kwargs) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The outputs of op on cpu_ref and on Triton, from the same NumPy inputs."""
    return call_op(CPU, op, **kwargs), call_op(TRITON, op, **kwargs)


def _gradients(impl, op: str, inputs: dict[str, np.ndarray], grads: dict[str, bool], scale: float) -> dict:
    """Run a two-gradient backward op on impl with the gradients flagged False passed as None; return the
    others as NumPy arrays (support.call_op cannot pass None outputs)."""
    like = next(iter(inputs.values()))
    args = {name: impl.to_backend(a) for name, a in inputs.items()}
    outs = {name: impl.to_backend(np.full_like(like, np.nan)) if wanted else None for name, wanted in grads.items()}
    getattr(impl.module(OPS[op].family), op)(**args, **outs, scale=scale)
    return {name: impl.to_numpy(a) for name, a in outs.items() if a is not None}


def _both_raise(op: str, exc: type, **kwargs) -> str:
    """Run op on both backends; both must raise exc with the same message; return it."""
    messages = []
    for impl in (CPU, TRITON):
        with pytest.raises(exc) as info:
            call_op(impl, op, **kwargs)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    return messages[0]


@pytest.mark.parametrize("shape", softlabel_cases("tiny"), ids=str)
def test_softlabel_matches_reference(shape):
    x, q = softlabel_arrays(shape, F32)
    c = shape[1]
    outputs = {"lse": np.empty((shape[0], *shape[2:]), np.float32), "loss": np.empty(1, np.float32)}
    for label, context in triton_config_contexts(kernels_loss):
        with context:
            want, got = _both("softlabel_softmax_loss_forward", x=x, target=q, **outputs)
            assert_close(got["lse"], want["lse"], F32, reduction=c, what=f"lse [{label}]")
            assert_close(got["loss"], want["loss"], F32, reduction=positions(shape) * c, what=f"loss [{label}]")
            inputs = {"x": x, "target": q, "lse": want["lse"]}
            for dx, dtarget in ((True, True), (True, False), (False, True)):
                grads = {"dx": dx, "dtarget": dtarget}
                want_g, got_g = (_gradients(impl, "softlabel_softmax_loss_backward", inputs, grads, 1.5)
                                 for impl in (CPU, TRITON))
                assert got_g.keys() == want_g.keys() == {name for name, wanted in grads.items() if wanted}
                for name in got_g:
                    assert_close(got_g[name], want_g[name], F32, reduction=c, what=f"{name} [{label}]")


def test_softlabel_clamp_and_determinism():
    x = np.array([[0.0, 0.0, -60.0, 0.0], [0.3, -1.2, 0.8, 2.0]], np.float32)
    q = np.array([[0.25, 0.25, 0.5, 0.0], [0.1, 0.2, 0.3, 0.4]], np.float32)
    outputs = {"lse": np.empty(2, np.float32), "loss": np.empty(1, np.float32)}
    want, got = _both("softlabel_softmax_loss_forward", x=x, target=q, **outputs)
    assert_close(got["loss"], want["loss"], F32, reduction=8)
    want_g, got_g = _both("softlabel_softmax_loss_backward", x=x, target=q, lse=want["lse"], dx=np.empty_like(x),
                          dtarget=np.empty_like(x))
    assert_close(got_g["dtarget"], want_g["dtarget"], F32, what="clamped dtarget")
    assert got_g["dtarget"][0, 2] == want_g["dtarget"][0, 2] == np.float32(-np.log(np.float32(1e-20)) / 2)

    shape = (3, 5, 20, 20)
    x, q = softlabel_arrays(shape, F32)
    outputs = {"lse": np.empty((3, 20, 20), np.float32), "loss": np.empty(1, np.float32)}
    runs = [call_op(TRITON, "softlabel_softmax_loss_forward", x=x, target=q, **outputs)["loss"] for _ in range(2)]
    assert runs[0].tobytes() == runs[1].tobytes()


@pytest.mark.parametrize("shape", KL_SHAPES + [(3, 3000)], ids=str)
def test_gaussian_kl_matches_reference(shape):
    mu, sigma = kl_arrays(shape, F32, seed=sum(shape))
    for label, context in triton_config_contexts(kernels_pointwise):
        with context:
            want, got = _both("gaussian_kl_loss_forward", mu=mu, sigma=sigma, loss=np.empty(1, np.float32))
            assert_close(got["loss"], want["loss"], F32, reduction=mu.size, what=f"loss [{label}]")
            for dmu, dsigma in ((True, True), (True, False), (False, True)):
                grads = {"dmu": dmu, "dsigma": dsigma}
                want_g, got_g = (_gradients(impl, "gaussian_kl_loss_backward", {"mu": mu, "sigma": sigma}, grads, 0.5)
                                 for impl in (CPU, TRITON))
                assert got_g.keys() == want_g.keys() == {name for name, wanted in grads.items() if wanted}
                for name in got_g:
                    assert_close(got_g[name], want_g[name], F32, what=f"{name} [{label}]")


def test_gaussian_kl_is_deterministic():
    mu, sigma = kl_arrays((4, 2500), F32, seed=3)
    runs = [call_op(TRITON, "gaussian_kl_loss_forward", mu=mu, sigma=sigma, loss=np.empty(1, np.float32))["loss"]
            for _ in range(2)]
    assert runs[0].tobytes() == runs[1].tobytes()


def test_rejects_bad_inputs_with_the_shared_messages():
    x, q = np.zeros((2, 5), np.float32), np.full((2, 5), 0.2, np.float32)
    outputs = {"lse": np.empty(2, np.float32), "loss": np.empty(1, np.float32)}
    message = _both_raise("softlabel_softmax_loss_forward", ValueError, x=x, target=q[:, :3], **outputs)
    assert message == "softlabel_softmax_loss_forward: target has shape (2, 3), expected (2, 5) (the shape of x)"
    _both_raise("softlabel_softmax_loss_forward", ValueError, x=x, target=q, lse=np.empty(3, np.float32),
                loss=np.empty(1, np.float32))
    _both_raise("softlabel_softmax_loss_backward", ValueError, x=x, target=q, lse=np.zeros(2, np.float32),
                dx=np.empty((2, 4), np.float32), dtarget=None)
    _both_raise("gaussian_kl_loss_forward", ValueError, mu=x, sigma=np.ones((5, 2), np.float32),
                loss=np.empty(1, np.float32))
    _both_raise("gaussian_kl_loss_backward", ValueError, mu=x, sigma=q, dmu=None, dsigma=np.empty((2, 2), np.float32))


def test_rejects_float64_and_non_tensors():
    t = TRITON.to_backend
    x64 = t(np.zeros((2, 5)))
    with pytest.raises(TypeError, match=r"softlabel_softmax_loss_forward: x has dtype float64; expected one of "
                                        r"\('float32',\)"):
        kernels_loss.softlabel_softmax_loss_forward(x64, x64, t(np.empty(2)), t(np.empty(1)))
    x32 = t(np.zeros((2, 5), np.float32))
    with pytest.raises(TypeError, match=r"softlabel_softmax_loss_backward: target must be a torch.Tensor"):
        kernels_loss.softlabel_softmax_loss_backward(x32, np.zeros((2, 5), np.float32), t(np.zeros(2, np.float32)),
                                                     x32, None)
    with pytest.raises(TypeError, match=r"gaussian_kl_loss_forward: mu has dtype float64"):
        kernels_pointwise.gaussian_kl_loss_forward(x64, x64, t(np.empty(1)))
    with pytest.raises(TypeError, match=r"gaussian_kl_loss_backward: dsigma has dtype float64"):
        kernels_pointwise.gaussian_kl_loss_backward(x32, x32, None, x64)
