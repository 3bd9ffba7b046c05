"""kernels.regularizers, kernels.constraints and kernels.solvers equal their cpu_ref counterparts (float32).

Cases come from the generators of tests/test_cpu_ref_optim.py. On a GPU the kernels may contract
multiply-adds into FMAs, hence assert_close rather than bit equality (except where no rounding happens).
"""

import numpy as np
import pytest
from test_cpu_ref_optim import (
    ADAPTIVE_HYPER,
    CONSTRAINT_SHAPES,
    PARAM_SHAPES,
    SOLVER_HYPER,
    adaptive_case,
    constraint_case,
    param_arrays,
)

from mocha_triton.kernels import constraints, regularizers, solvers
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts

F32 = "float32"
KERNEL_SHAPES = PARAM_SHAPES + [(5000,)]  # 5000 spans several interpreter blocks


def assert_same(op, kwargs, reduction=1, exact=False):
    want = call_op(CPU, op, **kwargs)
    got = call_op(TRITON, op, **kwargs)
    for name in want:
        if exact:
            assert np.array_equal(got[name], want[name]), f"{op}.{name} differs"
        else:
            assert_close(got[name], want[name], F32, reduction, what=f"{op}.{name}")


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
def test_regularizers_match_reference(shape):
    w, dw = param_arrays(shape, F32, sum(shape) + 2, 2)
    if w.size:
        w.reshape(-1)[:: 4] = 0
    for _, context in triton_config_contexts(regularizers):
        with context:
            for coef in (0.0, 0.01, 2.5):
                assert_same("l2_regularizer_gradient", dict(w=w, dw=dw, coef=coef))
                # coef * sign(w) is exact, so the sum rounds once on both sides
                assert_same("l1_regularizer_gradient", dict(w=w, dw=dw, coef=coef), exact=True)


@pytest.mark.parametrize("shape,threshold", CONSTRAINT_SHAPES + [((1, 5000), 3.0), ((5000,), 3.0)])
def test_l2_norm_constraint_matches_reference(shape, threshold):
    w, units = constraint_case(shape, threshold, F32, seed=shape[0] + 3)
    for _, context in triton_config_contexts(constraints):
        with context:
            want = call_op(CPU, "l2_norm_constraint", w=w, threshold=threshold)["w"]
            got = call_op(TRITON, "l2_norm_constraint", w=w, threshold=threshold)["w"]
            assert_close(got, want, F32, reduction=w.size // units)
            rows_in, rows_got = w.reshape(units, -1), got.reshape(units, -1)
            below = np.linalg.norm(rows_in.astype(np.float64), axis=1) <= threshold
            assert np.array_equal(rows_got[below], rows_in[below]), "units within the threshold must be untouched"


def test_l2_norm_constraint_edges():
    w = np.array([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]], np.float32)
    got = call_op(TRITON, "l2_norm_constraint", w=w, threshold=5.0)["w"]
    assert np.array_equal(got, np.array([[3.0, 4.0], [0.0, 0.0], [3.0, 4.0]], np.float32))
    got = call_op(TRITON, "l2_norm_constraint", w=np.array([3.0, 4.0], np.float32), threshold=1.0)["w"]
    assert_close(got, [0.6, 0.8], F32)
    for shape in [(0,), (0, 4), (3, 0)]:
        assert call_op(TRITON, "l2_norm_constraint", w=np.zeros(shape, np.float32), threshold=1.0)["w"].shape == shape


def test_l2_norm_constraint_is_deterministic():
    w, _ = constraint_case((4, 3000), 1.0, F32, seed=9)
    a = call_op(TRITON, "l2_norm_constraint", w=w, threshold=1.0)["w"]
    b = call_op(TRITON, "l2_norm_constraint", w=w, threshold=1.0)["w"]
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("shape", KERNEL_SHAPES)
def test_solvers_match_reference(shape):
    w, dw, v = param_arrays(shape, F32, 3 * sum(shape) + 8, 3)
    for _, context in triton_config_contexts(solvers):
        with context:
            for hyper in SOLVER_HYPER:
                assert_same("sgd_momentum_update", dict(w=w, dw=dw, v=v, lr=hyper["lr"], momentum=hyper["momentum"]))
                assert_same("nesterov_update", dict(w=w, dw=dw, v=v, **hyper))


@pytest.mark.parametrize("shape", [(7,), (4, 3, 2, 2), (0, 3), (5000,)])
@pytest.mark.parametrize("op,hyper", ADAPTIVE_HYPER)
def test_adaptive_updates_match_reference(op, hyper, shape):
    arrays = adaptive_case(op, shape, F32, seed=7 * sum(shape) + len(op))
    for _, context in triton_config_contexts(solvers):
        with context:
            assert_same(op, dict(**arrays, **hyper), reduction=4)


def test_adaptive_steps_in_place():
    """Several Adam and Adadelta steps on the same device tensors follow the reference step by step."""
    shape = (3, 7)
    host = {"w": param_arrays(shape, F32, 31, 1)[0], **{name: np.zeros(shape, F32) for name in ("m", "v", "h", "u")}}
    device = {name: TRITON.to_backend(a) for name, a in host.items()}
    reference = CPU.module("solvers")
    for t in range(1, 4):
        g = param_arrays(shape, F32, 200 + t, 1)[0]
        step_size = 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        for impl, arrays, grad in ((solvers, device, TRITON.to_backend(g)), (reference, host, g)):
            impl.adam_update(arrays["w"], grad, arrays["m"], arrays["v"], step_size, 0.9, 0.999, 1e-8)
            impl.adadelta_update(arrays["w"], grad, arrays["h"], arrays["u"], 1.0, 0.95, 1e-6)
    for name, want in host.items():
        assert_close(TRITON.to_numpy(device[name]), want, F32, reduction=6, what=name)


def test_solver_steps_in_place():
    """Several steps on the same device tensors follow the reference step by step."""
    w, dw, v = param_arrays((3, 7), F32, 21, 3)
    tw, tv = TRITON.to_backend(w), TRITON.to_backend(v)
    cw, cv = w.copy(), v.copy()
    for step in range(3):
        g = param_arrays((3, 7), F32, 100 + step, 1)[0]
        solvers.nesterov_update(tw, TRITON.to_backend(g), tv, 0.1, 0.9, 0.95)
        CPU.module("solvers").nesterov_update(cw, g, cv, 0.1, 0.9, 0.95)
    assert_close(TRITON.to_numpy(tw), cw, F32, reduction=3)
    assert_close(TRITON.to_numpy(tv), cv, F32, reduction=3)


def test_rejects_float64_and_bad_inputs():
    t64 = TRITON.to_backend(np.zeros(3))
    t32 = TRITON.to_backend(np.zeros(3, np.float32))
    t32b = TRITON.to_backend(np.zeros(4, np.float32))
    float32_only = r"l2_regularizer_gradient: w has dtype float64; expected one of \('float32',\)"
    with pytest.raises(TypeError, match=float32_only):
        regularizers.l2_regularizer_gradient(t64, t64, 0.1)
    with pytest.raises(ValueError, match=r"l1_regularizer_gradient: coef must be >= 0"):
        regularizers.l1_regularizer_gradient(t32, TRITON.to_backend(np.zeros(3, np.float32)), -1.0)
    with pytest.raises(ValueError, match="l2_regularizer_gradient: arguments must have the same shape"):
        regularizers.l2_regularizer_gradient(t32, t32b, 0.1)
    with pytest.raises(TypeError, match=r"l2_norm_constraint: w has dtype float64"):
        constraints.l2_norm_constraint(t64, 1.0)
    with pytest.raises(ValueError, match=r"l2_norm_constraint: threshold must be > 0"):
        constraints.l2_norm_constraint(t32, 0.0)
    with pytest.raises(TypeError, match=r"sgd_momentum_update: dw has dtype float64"):
        solvers.sgd_momentum_update(t32, t64, t32, 0.1, 0.9)
    with pytest.raises(ValueError, match="nesterov_update: arguments must have the same shape"):
        solvers.nesterov_update(t32, t32b, t32, 0.1, 0.9, 0.9)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        solvers.sgd_momentum_update(np.zeros(3, np.float32), t32, t32, 0.1, 0.9)
    with pytest.raises(TypeError, match=r"adam_update: v has dtype float64"):
        solvers.adam_update(t32, t32, t32, t64, 0.1, 0.9, 0.999, 1e-8)
    with pytest.raises(ValueError, match=r"rmsprop_update: decay must be in \[0, 1\)"):
        solvers.rmsprop_update(t32, t32, t32, 0.1, 1.0, 1e-8)
    with pytest.raises(ValueError, match="adagrad_update: arguments must have the same shape"):
        solvers.adagrad_update(t32, t32b, t32, 0.1, 1e-8)
    with pytest.raises(ValueError, match=r"adadelta_update: epsilon must be > 0"):
        solvers.adadelta_update(t32, t32, t32, t32, 1.0, 0.9, 0.0)
    with pytest.raises(ValueError, match="l2_norm_constraint: w must be contiguous"):
        constraints.l2_norm_constraint(TRITON.to_backend(np.zeros((3, 4), np.float32)).t(), 1.0)
