"""cpu_ref.regularizers, cpu_ref.constraints and cpu_ref.solvers against closed forms in torch float64.

The case generators at the top are shared with tests/test_kernels_optim.py.
"""

import numpy as np
import pytest
import torch

from support import CPU, assert_close, call_op

DTYPES = ["float32", "float64"]
PARAM_SHAPES = [(1,), (7,), (3, 5), (4, 3, 2, 2), (1, 1, 1, 1), (2, 1025), (0, 3)]
# (shape, threshold): units are rows of >= 2-D parameters, a 1-D parameter is one unit
CONSTRAINT_SHAPES = [((6, 5), 1.5), ((9, 3, 2, 2), 2.0), ((5,), 1.0), ((4, 1), 0.7), ((3, 2000), 4.5), ((1, 1, 1), 0.5)]
NORM_FACTORS = np.array([4.0, 0.3, 0.0, 1.5, 0.9])  # unit norm / threshold, cycled over units; 0: all-zero unit


def param_arrays(shape, dtype, seed, count):
    """``count`` independent standard-normal arrays of ``shape`` and ``dtype``."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(count)]


def constraint_case(shape, threshold, dtype, seed):
    """A parameter whose units have norms threshold * NORM_FACTORS (cycled), so no unit sits near the
    threshold, where rounding could flip the decision; returns (w, units)."""
    rng = np.random.default_rng(seed)
    units = 1 if len(shape) == 1 else shape[0]
    rows = rng.standard_normal((units, int(np.prod(shape)) // units))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    rows *= threshold * NORM_FACTORS[np.arange(units) % len(NORM_FACTORS)][:, None]
    return rows.reshape(shape).astype(dtype), units


def expected_constraint(w, threshold, units):
    rows = torch.from_numpy(w).double().reshape(units, -1)
    norms = torch.linalg.vector_norm(rows, dim=1)
    factor = torch.where(norms > threshold, threshold / torch.clamp(norms, min=1e-300), torch.ones_like(norms))
    return (rows * factor[:, None]).reshape(w.shape).numpy()


SOLVER_HYPER = [
    dict(lr=0.1, momentum=0.9, next_momentum=0.95),
    dict(lr=0.01, momentum=0.0, next_momentum=0.5),
    dict(lr=0.0, momentum=0.99, next_momentum=0.99),
]
# (op, hyperparameters) of the adaptive methods; several settings each, including the edges of each range
ADAPTIVE_HYPER = [
    ("adam_update", dict(step_size=0.01, beta1=0.9, beta2=0.999, epsilon=1e-8)),
    ("adam_update", dict(step_size=0.3, beta1=0.0, beta2=0.5, epsilon=0.1)),
    ("adam_update", dict(step_size=0.0, beta1=0.99, beta2=0.0, epsilon=0.0)),
    ("adagrad_update", dict(lr=0.1, epsilon=1e-8)),
    ("adagrad_update", dict(lr=0.5, epsilon=0.0)),
    ("rmsprop_update", dict(lr=0.01, decay=0.99, epsilon=1e-8)),
    ("rmsprop_update", dict(lr=0.2, decay=0.0, epsilon=0.5)),
    ("adadelta_update", dict(lr=1.0, rho=0.95, epsilon=1e-6)),
    ("adadelta_update", dict(lr=0.5, rho=0.0, epsilon=0.25)),
]
# the state arrays of each adaptive op, in argument order
ADAPTIVE_STATE = {"adam_update": ("m", "v"), "adagrad_update": ("h",), "rmsprop_update": ("h",),
                  "adadelta_update": ("h", "u")}


def adaptive_case(op, shape, dtype, seed):
    """w, dw and the op's state arrays; state that is a sum or average of squares is non-negative."""
    arrays = param_arrays(shape, dtype, seed, 2 + len(ADAPTIVE_STATE[op]))
    state = dict(zip(ADAPTIVE_STATE[op], arrays[2:], strict=True))
    for name in ("v", "h", "u"):
        if name in state:
            state[name] = np.abs(state[name])
    return {"w": arrays[0], "dw": arrays[1], **state}


# --- regularizers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", PARAM_SHAPES)
def test_regularizer_gradients(dtype, shape):
    w, dw = param_arrays(shape, dtype, sum(shape) + 1, 2)
    if w.size:
        w.reshape(-1)[:: 3] = 0  # sign(0) = 0
    tw, tdw = torch.from_numpy(w).double(), torch.from_numpy(dw).double()
    for coef in (0.0, 5e-4, 1.3):
        got = call_op(CPU, "l2_regularizer_gradient", w=w, dw=dw, coef=coef)["dw"]
        assert_close(got, (tdw + coef * tw).numpy(), dtype, what=f"l2 coef={coef}")
        got = call_op(CPU, "l1_regularizer_gradient", w=w, dw=dw, coef=coef)["dw"]
        assert_close(got, (tdw + coef * torch.sign(tw)).numpy(), dtype, what=f"l1 coef={coef}")
    if w.size:
        got = call_op(CPU, "l1_regularizer_gradient", w=w, dw=dw, coef=0.25)["dw"]
        zero = w == 0
        assert np.array_equal(got[zero], dw[zero]), "sign(0) must be 0"


@pytest.mark.parametrize("shape", [(5,), (3, 4)])
def test_regularizer_gradients_match_finite_differences(shape):
    """dw += coef * w is the gradient of coef/2 ||w||^2; dw += coef * sign(w) that of coef * ||w||_1."""
    rng = np.random.default_rng(5)
    w = rng.standard_normal(shape)
    w += np.sign(w) * 0.1  # keep |w| >= 0.1 so |.| is smooth around every point
    coef, h = 0.37, 1e-6
    objectives = {
        "l2_regularizer_gradient": lambda a: 0.5 * coef * np.sum(a * a),
        "l1_regularizer_gradient": lambda a: coef * np.sum(np.abs(a)),
    }
    for op, f in objectives.items():
        grad = call_op(CPU, op, w=w, dw=np.zeros(shape), coef=coef)["dw"]
        numeric = np.empty(shape)
        for i in np.ndindex(*shape):  # a handful of taps: a loop is fine here
            e = np.zeros(shape)
            e[i] = h
            numeric[i] = (f(w + e) - f(w - e)) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-8, err_msg=op)


# --- constraints ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,threshold", CONSTRAINT_SHAPES)
def test_l2_norm_constraint(dtype, shape, threshold):
    w, units = constraint_case(shape, threshold, dtype, seed=len(shape) * 31 + shape[0])
    got = call_op(CPU, "l2_norm_constraint", w=w, threshold=threshold)["w"]
    unit_size = w.size // units
    assert_close(got, expected_constraint(w, threshold, units), dtype, reduction=unit_size)
    rows_in, rows_out = w.reshape(units, -1), got.reshape(units, -1)
    norms_in = np.linalg.norm(rows_in.astype(np.float64), axis=1)
    norms_out = np.linalg.norm(rows_out.astype(np.float64), axis=1)
    below = norms_in <= threshold
    assert np.array_equal(rows_out[below], rows_in[below]), "units within the threshold must be untouched"
    tol = {"float32": 1e-5, "float64": 1e-12}[dtype] * np.sqrt(unit_size)
    np.testing.assert_allclose(norms_out[~below], threshold, rtol=tol)
    if len(shape) == 1:  # one unit, far above the threshold: the whole vector is rescaled
        assert units == 1 and not below[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_l2_norm_constraint_edges(dtype):
    """A unit exactly at the threshold is not rescaled; zero units stay zero; empty blobs are fine."""
    w = np.array([[3.0, 4.0], [0.0, 0.0], [6.0, 8.0]], dtype)
    got = call_op(CPU, "l2_norm_constraint", w=w, threshold=5.0)["w"]
    assert np.array_equal(got, np.array([[3.0, 4.0], [0.0, 0.0], [3.0, 4.0]], dtype))
    # a 1-D blob is one unit, not one unit per element
    got = call_op(CPU, "l2_norm_constraint", w=np.array([3.0, 4.0], dtype), threshold=1.0)["w"]
    assert_close(got, [0.6, 0.8], dtype)
    for shape in [(0,), (0, 4), (3, 0)]:
        assert call_op(CPU, "l2_norm_constraint", w=np.zeros(shape, dtype), threshold=1.0)["w"].shape == shape


# --- solvers ---------------------------------------------------------------------------------------------------


def expected_sgd(w, dw, v, lr, momentum):
    w, dw, v = (torch.from_numpy(a).double() for a in (w, dw, v))
    v_new = momentum * v - lr * dw
    return {"w": (w + v_new).numpy(), "v": v_new.numpy()}


def expected_nesterov(w, dw, v, lr, momentum, next_momentum):
    w, dw, v = (torch.from_numpy(a).double() for a in (w, dw, v))
    v_new = momentum * v - lr * dw
    return {"w": (w - momentum * v + (1 + next_momentum) * v_new).numpy(), "v": v_new.numpy()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", PARAM_SHAPES)
def test_solver_updates(dtype, shape):
    w, dw, v = param_arrays(shape, dtype, 3 * sum(shape) + 7, 3)
    for hyper in SOLVER_HYPER:
        sgd = dict(lr=hyper["lr"], momentum=hyper["momentum"])
        got = call_op(CPU, "sgd_momentum_update", w=w, dw=dw, v=v, **sgd)
        want = expected_sgd(w, dw, v, **sgd)
        for name in ("w", "v"):
            assert_close(got[name], want[name], dtype, what=f"sgd.{name} {hyper}")
        got = call_op(CPU, "nesterov_update", w=w, dw=dw, v=v, **hyper)
        want = expected_nesterov(w, dw, v, **hyper)
        for name in ("w", "v"):
            assert_close(got[name], want[name], dtype, what=f"nesterov.{name} {hyper}")


def expected_adaptive(op, arrays, hyper):
    """The closed forms of the adaptive updates in torch float64; returns the new w and state arrays."""
    a = {name: torch.from_numpy(x).double() for name, x in arrays.items()}
    w, g = a["w"], a["dw"]
    if op == "adam_update":
        b1, b2 = hyper["beta1"], hyper["beta2"]
        m = b1 * a["m"] + (1 - b1) * g
        v = b2 * a["v"] + (1 - b2) * g.square()
        return {"w": w - hyper["step_size"] * m / (v.sqrt() + hyper["epsilon"]), "m": m, "v": v}
    if op == "adagrad_update":
        h = a["h"] + g.square()
        return {"w": w - hyper["lr"] * g / (h.sqrt() + hyper["epsilon"]), "h": h}
    if op == "rmsprop_update":
        h = hyper["decay"] * a["h"] + (1 - hyper["decay"]) * g.square()
        return {"w": w - hyper["lr"] * g / (h.sqrt() + hyper["epsilon"]), "h": h}
    rho, eps = hyper["rho"], hyper["epsilon"]
    h = rho * a["h"] + (1 - rho) * g.square()
    d = torch.sqrt(a["u"] + eps) / torch.sqrt(h + eps) * g
    return {"w": w - hyper["lr"] * d, "h": h, "u": rho * a["u"] + (1 - rho) * d.square()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", PARAM_SHAPES)
@pytest.mark.parametrize("op,hyper", ADAPTIVE_HYPER)
def test_adaptive_updates(op, hyper, dtype, shape):
    arrays = adaptive_case(op, shape, dtype, seed=5 * sum(shape) + len(op))
    got = call_op(CPU, op, **arrays, **hyper)
    want = expected_adaptive(op, arrays, hyper)
    assert set(got) == set(want)
    for name, value in want.items():
        # a handful of roundings per element; the float32 tolerance scales with the condition of the quotient
        assert_close(got[name], value.numpy(), dtype, reduction=4, what=f"{op}.{name} {hyper}")


@pytest.mark.parametrize("nesterov", [False, True])
def test_solver_trajectories_match_torch_sgd(nesterov):
    """With a constant lr and momentum, Mocha's v is -lr times torch's momentum buffer, so several steps of
    sgd_momentum_update (nesterov_update) follow torch.optim.SGD(momentum, nesterov=False (True)) exactly."""
    from mocha_triton.cpu_ref import solvers

    rng = np.random.default_rng(17)
    lr, mu, shape = 0.05, 0.9, (4, 6)
    w = rng.standard_normal(shape)
    v = np.zeros(shape)
    param = torch.nn.Parameter(torch.from_numpy(w.copy()))
    opt = torch.optim.SGD([param], lr=lr, momentum=mu, nesterov=nesterov)
    for _ in range(6):
        g = rng.standard_normal(shape)
        param.grad = torch.from_numpy(g.copy())
        opt.step()
        if nesterov:
            solvers.nesterov_update(w, g, v, lr, mu, mu)
        else:
            solvers.sgd_momentum_update(w, g, v, lr, mu)
    assert_close(w, param.detach().numpy(), "float64", reduction=6)
    assert_close(v, -lr * opt.state[param]["momentum_buffer"].numpy(), "float64", reduction=6)


@pytest.mark.parametrize("method", ["adam", "adagrad", "rmsprop", "adadelta"])
def test_adaptive_trajectories_match_torch_optim(method):
    """Eight steps of each adaptive op follow the torch.optim optimizer of the same method (float64).

    Adam: torch adds epsilon after the bias correction, so with epsilon = 0 the two coincide exactly;
    the Caffe form's epsilon is covered by the closed-form test above.
    """
    from mocha_triton.cpu_ref import solvers

    rng = np.random.default_rng(23)
    shape, lr = (3, 5), 0.05
    w = rng.standard_normal(shape)
    state = [np.zeros(shape), np.zeros(shape)]
    param = torch.nn.Parameter(torch.from_numpy(w.copy()))
    opt = {
        "adam": lambda: torch.optim.Adam([param], lr=lr, betas=(0.8, 0.95), eps=0.0),
        "adagrad": lambda: torch.optim.Adagrad([param], lr=lr, eps=1e-3),
        "rmsprop": lambda: torch.optim.RMSprop([param], lr=lr, alpha=0.9, eps=1e-3),
        "adadelta": lambda: torch.optim.Adadelta([param], lr=0.7, rho=0.8, eps=1e-4),
    }[method]()
    for t in range(1, 9):
        g = rng.standard_normal(shape)
        param.grad = torch.from_numpy(g.copy())
        opt.step()
        if method == "adam":
            step_size = lr * np.sqrt(1 - 0.95**t) / (1 - 0.8**t)
            solvers.adam_update(w, g, state[0], state[1], step_size, 0.8, 0.95, 0.0)
        elif method == "adagrad":
            solvers.adagrad_update(w, g, state[0], lr, 1e-3)
        elif method == "rmsprop":
            solvers.rmsprop_update(w, g, state[0], lr, 0.9, 1e-3)
        else:
            solvers.adadelta_update(w, g, state[0], state[1], 0.7, 0.8, 1e-4)
    assert_close(w, param.detach().numpy(), "float64", reduction=8)
    torch_state = opt.state[param]
    if method == "adam":
        assert_close(state[0], torch_state["exp_avg"].numpy(), "float64", reduction=8)
        assert_close(state[1], torch_state["exp_avg_sq"].numpy(), "float64", reduction=8)
    elif method == "adagrad":
        assert_close(state[0], torch_state["sum"].numpy(), "float64", reduction=8)
    elif method == "rmsprop":
        assert_close(state[0], torch_state["square_avg"].numpy(), "float64", reduction=8)
    else:
        assert_close(state[0], torch_state["square_avg"].numpy(), "float64", reduction=8)
        assert_close(state[1], torch_state["acc_delta"].numpy(), "float64", reduction=8)


# --- bad inputs ------------------------------------------------------------------------------------------------


def test_bad_inputs():
    from mocha_triton.cpu_ref import constraints, regularizers, solvers

    z3, z4 = np.zeros(3), np.zeros(4)
    with pytest.raises(ValueError, match=r"l2_regularizer_gradient: coef must be >= 0, got -0.1"):
        regularizers.l2_regularizer_gradient(z3, z3.copy(), -0.1)
    with pytest.raises(ValueError, match=r"l1_regularizer_gradient: arguments must have the same shape"):
        regularizers.l1_regularizer_gradient(z3, z4, 0.1)
    with pytest.raises(TypeError, match=r"l1_regularizer_gradient: all float arguments must share one dtype"):
        regularizers.l1_regularizer_gradient(z3, z3.astype(np.float32), 0.1)
    with pytest.raises(TypeError, match=r"l2_regularizer_gradient: w has dtype int64"):
        regularizers.l2_regularizer_gradient(np.zeros(3, np.int64), z3, 0.1)
    with pytest.raises(ValueError, match=r"l2_regularizer_gradient: coef must be finite"):
        regularizers.l2_regularizer_gradient(z3, z3.copy(), float("inf"))
    with pytest.raises(ValueError, match=r"l2_norm_constraint: threshold must be > 0, got 0.0"):
        constraints.l2_norm_constraint(z3, 0.0)
    with pytest.raises(ValueError, match=r"l2_norm_constraint: threshold must be > 0, got -1.0"):
        constraints.l2_norm_constraint(z3, -1.0)
    with pytest.raises(ValueError, match=r"l2_norm_constraint: w must have at least 1 dimensions"):
        constraints.l2_norm_constraint(np.zeros(()), 1.0)
    with pytest.raises(TypeError, match=r"l2_norm_constraint: w has dtype int32"):
        constraints.l2_norm_constraint(np.zeros(3, np.int32), 1.0)
    with pytest.raises(TypeError, match=r"l2_norm_constraint: threshold must be a real scalar"):
        constraints.l2_norm_constraint(z3, "big")
    with pytest.raises(ValueError, match=r"sgd_momentum_update: arguments must have the same shape"):
        solvers.sgd_momentum_update(z3, z3.copy(), z4, 0.1, 0.9)
    with pytest.raises(TypeError, match=r"sgd_momentum_update: all float arguments must share one dtype"):
        solvers.sgd_momentum_update(z3, z3.copy(), z3.astype(np.float32), 0.1, 0.9)
    with pytest.raises(ValueError, match=r"sgd_momentum_update: lr must be >= 0"):
        solvers.sgd_momentum_update(z3, z3.copy(), z3.copy(), -0.1, 0.9)
    with pytest.raises(ValueError, match=r"nesterov_update: next_momentum must be >= 0"):
        solvers.nesterov_update(z3, z3.copy(), z3.copy(), 0.1, 0.9, -0.5)
    with pytest.raises(ValueError, match=r"nesterov_update: momentum must be finite"):
        solvers.nesterov_update(z3, z3.copy(), z3.copy(), 0.1, float("nan"), 0.9)
    with pytest.raises(ValueError, match=r"adam_update: beta1 must be in \[0, 1\), got 1.0"):
        solvers.adam_update(z3, z3.copy(), z3.copy(), z3.copy(), 0.1, 1.0, 0.999, 1e-8)
    with pytest.raises(ValueError, match=r"adam_update: beta2 must be in \[0, 1\), got -0.5"):
        solvers.adam_update(z3, z3.copy(), z3.copy(), z3.copy(), 0.1, 0.9, -0.5, 1e-8)
    with pytest.raises(ValueError, match=r"adam_update: epsilon must be >= 0"):
        solvers.adam_update(z3, z3.copy(), z3.copy(), z3.copy(), 0.1, 0.9, 0.999, -1e-8)
    with pytest.raises(ValueError, match=r"adam_update: arguments must have the same shape"):
        solvers.adam_update(z3, z3.copy(), z3.copy(), z4, 0.1, 0.9, 0.999, 1e-8)
    with pytest.raises(TypeError, match=r"adagrad_update: all float arguments must share one dtype"):
        solvers.adagrad_update(z3, z3.copy(), z3.astype(np.float32), 0.1, 1e-8)
    with pytest.raises(ValueError, match=r"adagrad_update: lr must be >= 0"):
        solvers.adagrad_update(z3, z3.copy(), z3.copy(), -1.0, 1e-8)
    with pytest.raises(ValueError, match=r"rmsprop_update: decay must be in \[0, 1\)"):
        solvers.rmsprop_update(z3, z3.copy(), z3.copy(), 0.1, 1.5, 1e-8)
    with pytest.raises(ValueError, match=r"adadelta_update: epsilon must be > 0, got 0.0"):
        solvers.adadelta_update(z3, z3.copy(), z3.copy(), z3.copy(), 1.0, 0.95, 0.0)
    with pytest.raises(TypeError, match=r"adadelta_update: u has dtype int64"):
        solvers.adadelta_update(z3, z3.copy(), z3.copy(), np.zeros(3, np.int64), 1.0, 0.95, 1e-6)
    with pytest.raises(ValueError, match=r"adadelta_update: rho must be finite"):
        solvers.adadelta_update(z3, z3.copy(), z3.copy(), z3.copy(), 1.0, float("inf"), 1e-6)
