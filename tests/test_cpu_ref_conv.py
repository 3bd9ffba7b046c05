"""cpu_ref.conv against torch float64, finite differences, and the shared argument checks.

* Every op on every "reference" case of :mod:`cases_conv`, float32 and float64, against torch in
  float64 (conv2d, nn.grad.conv2d_input, nn.grad.conv2d_weight, dy.sum) with the tolerance scaled by
  the reduction length. Inputs are read-only arrays, so an op that wrote into one would fail.
* Every fused neuron against the torch activation (leaky_relu with the default and another slope).
* Outputs that are non-contiguous views are written through; non-contiguous inputs are read right.
* Finite differences in float64 on the "tiny" cases: the directional derivative of
  sum(neuron(conv(x, w) + b) * r) along random directions matches the backward ops chained with the
  neuron's gradient.
* Bad inputs raise the shared messages.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cases_conv import ConvCase, conv_arrays, conv_cases
from mocha_triton.contract import NEURONS
from mocha_triton.cpu_ref import conv
from mocha_triton.cpu_ref._activations import neuron_grad_from_output
from support import CPU, assert_close, call_op

REFERENCE = conv_cases("reference")
TINY = conv_cases("tiny")
DTYPES = ["float32", "float64"]
SLOPE = 0.2  # a non-default leaky_relu slope, so that passing it through is tested


def _frozen(a):
    """A read-only copy of ``a`` (None stays None): an op writing into an input would raise."""
    if a is None:
        return None
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


def _t(a):
    return None if a is None else torch.from_numpy(np.array(a, dtype=np.float64))


def _torch_neuron(z: torch.Tensor, neuron: str, negative_slope: float) -> torch.Tensor:
    return {
        "identity": lambda: z,
        "relu": lambda: torch.relu(z),
        "leaky_relu": lambda: F.leaky_relu(z, negative_slope),
        "sigmoid": lambda: torch.sigmoid(z),
        "tanh": lambda: torch.tanh(z),
        "exp": lambda: torch.exp(z),
    }[neuron]()


def _torch_forward(case: ConvCase, x, w, b, neuron: str, negative_slope: float) -> np.ndarray:
    z = F.conv2d(_t(x), _t(w), _t(b), case.stride, case.pad, 1, case.groups)
    return _torch_neuron(z, neuron, negative_slope).numpy()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", REFERENCE, ids=lambda c: c.id)
def test_forward(case, dtype):
    a = conv_arrays(case, dtype)
    y = call_op(CPU, "conv2d_forward", x=_frozen(a.x), w=_frozen(a.w), b=_frozen(a.b),
                y=np.empty(case.y_shape, dtype), **case.params(), neuron=case.neuron,
                negative_slope=SLOPE)["y"]
    want = _torch_forward(case, a.x, a.w, a.b, case.neuron, SLOPE)
    assert_close(y, want, dtype, case.forward_reduction, what=f"conv2d_forward {case.id}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", REFERENCE, ids=lambda c: c.id)
def test_backward_data(case, dtype):
    a = conv_arrays(case, dtype)
    dx = call_op(CPU, "conv2d_backward_data", dy=_frozen(a.dy), w=_frozen(a.w), dx=np.empty(case.x_shape, dtype),
                 **case.params())["dx"]
    want = torch.nn.grad.conv2d_input(case.x_shape, _t(a.w), _t(a.dy), case.stride, case.pad, 1, case.groups)
    assert_close(dx, want.numpy(), dtype, case.data_reduction, what=f"conv2d_backward_data {case.id}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", REFERENCE, ids=lambda c: c.id)
def test_backward_weight(case, dtype):
    a = conv_arrays(case, dtype)
    dw = call_op(CPU, "conv2d_backward_weight", x=_frozen(a.x), dy=_frozen(a.dy), dw=np.empty(case.w_shape, dtype),
                 **case.params())["dw"]
    want = torch.nn.grad.conv2d_weight(_t(a.x), case.w_shape, _t(a.dy), case.stride, case.pad, 1, case.groups)
    assert_close(dw, want.numpy(), dtype, case.weight_reduction, what=f"conv2d_backward_weight {case.id}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", REFERENCE, ids=lambda c: c.id)
def test_backward_bias(case, dtype):
    a = conv_arrays(case, dtype)
    db = call_op(CPU, "conv2d_backward_bias", dy=_frozen(a.dy), db=np.empty(case.f, dtype))["db"]
    assert_close(db, _t(a.dy).sum(dim=(0, 2, 3)).numpy(), dtype, case.weight_reduction,
                 what=f"conv2d_backward_bias {case.id}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("neuron", NEURONS)
def test_fused_neurons(neuron, dtype):
    """Each neuron on a strided, padded, grouped case; leaky_relu also with its default slope."""
    case = ConvCase(2, 4, 7, 8, 6, 3, 3, (2, 1), (1, 1), groups=2, neuron=neuron)
    a = conv_arrays(case, dtype, seed=1)
    for kwargs, slope in (({}, 0.01), ({"negative_slope": 0.3}, 0.3)):
        y = call_op(CPU, "conv2d_forward", x=a.x, w=a.w, b=a.b, y=np.empty(case.y_shape, dtype),
                    **case.params(), neuron=neuron, **kwargs)["y"]
        assert_close(y, _torch_forward(case, a.x, a.w, a.b, neuron, slope), dtype, case.forward_reduction,
                     what=f"{neuron} slope {slope}")


def test_strided_views_in_and_out():
    """Non-contiguous inputs are read right; non-contiguous output views are written through."""
    case = ConvCase(2, 4, 6, 7, 6, 3, 2, (1, 2), (1, 0), groups=2, neuron="tanh")
    a = conv_arrays(case, "float64", seed=2)
    x_t = np.asfortranarray(a.x)  # same values, non-C-contiguous input
    w_t = np.asfortranarray(a.w)

    big_y = np.full((case.n, 2 * case.f, case.oh, case.ow), 7.0)
    conv.conv2d_forward(x_t, w_t, a.b, big_y[:, ::2], **case.params(), neuron=case.neuron)
    assert_close(big_y[:, ::2], _torch_forward(case, a.x, a.w, a.b, case.neuron, 0.01), "float64",
                 case.forward_reduction)
    assert np.all(big_y[:, 1::2] == 7.0)

    big_dx = np.full((case.n, case.c, case.h, 2 * case.w), 7.0)
    conv.conv2d_backward_data(np.asfortranarray(a.dy), w_t, big_dx[..., 1::2], **case.params())
    want = torch.nn.grad.conv2d_input(case.x_shape, _t(a.w), _t(a.dy), case.stride, case.pad, 1, case.groups)
    assert_close(big_dx[..., 1::2], want.numpy(), "float64", case.data_reduction)
    assert np.all(big_dx[..., ::2] == 7.0)

    big_dw = np.full((2 * case.f,) + case.w_shape[1:], 7.0)
    conv.conv2d_backward_weight(x_t, a.dy, big_dw[::2], **case.params())
    want = torch.nn.grad.conv2d_weight(_t(a.x), case.w_shape, _t(a.dy), case.stride, case.pad, 1, case.groups)
    assert_close(big_dw[::2], want.numpy(), "float64", case.weight_reduction)
    assert np.all(big_dw[1::2] == 7.0)

    big_db = np.full(2 * case.f, 7.0)
    conv.conv2d_backward_bias(a.dy, big_db[1::2])
    assert_close(big_db[1::2], a.dy.sum(axis=(0, 2, 3)), "float64", case.weight_reduction)
    assert np.all(big_db[::2] == 7.0)


@pytest.mark.parametrize("case", TINY, ids=lambda c: c.id)
def test_finite_differences(case):
    """d/dt L(x + t vx, w + t vw, b + t vb) at t = 0, for L = sum(neuron(conv(x, w) + b) * r), equals
    <dx, vx> + <dw, vw> + <db, vb> with dy = r * neuron'(y) pushed through the backward ops."""
    a = conv_arrays(case, "float64", seed=3)
    rng = np.random.default_rng(4)
    b = a.b if a.b is not None else np.zeros(case.f)
    r, vx, vw, vb = (rng.standard_normal(s) for s in (case.y_shape, case.x_shape, case.w_shape, (case.f,)))

    def loss(x, w, b):
        y = np.empty(case.y_shape)
        conv.conv2d_forward(x, w, b, y, **case.params(), neuron=case.neuron)
        return float(np.sum(y * r)), y

    _, y = loss(a.x, a.w, b)
    dy = np.empty_like(y)
    neuron_grad_from_output(y, r, case.neuron, out=dy)
    dx, dw, db = np.empty(case.x_shape), np.empty(case.w_shape), np.empty(case.f)
    conv.conv2d_backward_data(dy, a.w, dx, **case.params())
    conv.conv2d_backward_weight(a.x, dy, dw, **case.params())
    conv.conv2d_backward_bias(dy, db)

    eps = 1e-6
    for name, analytic, step in (
        ("x", np.sum(dx * vx), (vx, 0, 0)),
        ("w", np.sum(dw * vw), (0, vw, 0)),
        ("b", np.sum(db * vb), (0, 0, vb)),
    ):
        plus = loss(a.x + eps * step[0], a.w + eps * step[1], b + eps * step[2])[0]
        minus = loss(a.x - eps * step[0], a.w - eps * step[1], b - eps * step[2])[0]
        numeric = (plus - minus) / (2 * eps)
        assert abs(numeric - analytic) <= 1e-6 * max(abs(analytic), 1.0), (name, numeric, analytic)


# --- bad inputs ---------------------------------------------------------------------------------


def _z(*shape, dtype=np.float64):
    return np.zeros(shape, dtype)


FWD = "conv2d_forward"


@pytest.mark.parametrize("call, error, match", [
    # wrong ndim
    (lambda: conv.conv2d_forward(_z(3, 5, 5), _z(2, 3, 3, 3), None, _z(1, 2, 3, 3), 1, 0, 1),
     ValueError, rf"{FWD}: x must be 4-D, got shape \(3, 5, 5\)"),
    (lambda: conv.conv2d_backward_data(_z(1, 2, 3, 3), _z(2, 3, 3), _z(1, 3, 5, 5), 1, 0, 1),
     ValueError, r"conv2d_backward_data: w must be 4-D"),
    (lambda: conv.conv2d_backward_bias(_z(2, 3), _z(3)), ValueError, r"conv2d_backward_bias: dy must be 4-D"),
    # channels and groups
    (lambda: conv.conv2d_forward(_z(1, 4, 5, 5), _z(2, 3, 3, 3), None, _z(1, 2, 3, 3), 1, 0, 1),
     ValueError, rf"{FWD}: x has 4 channels but w expects 3 per group x 1 groups = 3"),
    (lambda: conv.conv2d_forward(_z(1, 3, 5, 5), _z(2, 3, 3, 3), None, _z(1, 2, 3, 3), 1, 0, 2),
     ValueError, rf"{FWD}: groups=2 does not divide the 3 input channels of x"),
    (lambda: conv.conv2d_forward(_z(1, 4, 5, 5), _z(3, 2, 3, 3), None, _z(1, 3, 3, 3), 1, 0, 2),
     ValueError, rf"{FWD}: groups=2 does not divide the 3 filters of w"),
    (lambda: conv.conv2d_backward_data(_z(1, 2, 3, 3), _z(2, 3, 3, 3), _z(1, 4, 5, 5), 1, 0, 1),
     ValueError, r"conv2d_backward_data: dx has 4 channels but w expects 3"),
    (lambda: conv.conv2d_backward_weight(_z(1, 4, 5, 5), _z(1, 2, 3, 3), _z(2, 3, 3, 3), 1, 0, 1),
     ValueError, r"conv2d_backward_weight: x has 4 channels but dw expects 3"),
    (lambda: conv.conv2d_forward(_z(1, 3, 5, 5), _z(2, 3, 3, 3), None, _z(1, 2, 3, 3), 1, 0, 0),
     ValueError, rf"{FWD}: groups must be a positive int, got 0"),
    # kernel larger than the padded input
    (lambda: conv.conv2d_forward(_z(1, 3, 4, 4), _z(2, 3, 7, 3), None, _z(1, 2, 1, 2), 1, 1, 1),
     ValueError, rf"{FWD}: kernel \(7, 3\) is larger than the padded input \(6, 6\)"),
    (lambda: conv.conv2d_backward_weight(_z(1, 3, 4, 4), _z(1, 2, 1, 1), _z(2, 3, 5, 5), 1, 0, 1),
     ValueError, r"conv2d_backward_weight: kernel \(5, 5\) is larger than the padded input \(4, 4\)"),
    # dtypes
    (lambda: conv.conv2d_forward(_z(1, 3, 5, 5, dtype=np.int64), _z(2, 3, 3, 3), None, _z(1, 2, 3, 3), 1, 0, 1),
     TypeError, rf"{FWD}: x has dtype int64; expected one of \('float32', 'float64'\)"),
    (lambda: conv.conv2d_backward_bias(_z(1, 2, 3, 3, dtype=np.float16), _z(2)),
     TypeError, r"conv2d_backward_bias: dy has dtype float16"),
    (lambda: conv.conv2d_forward([[[[1.0]]]], _z(1, 1, 1, 1), None, _z(1, 1, 1, 1), 1, 0, 1),
     TypeError, rf"{FWD}: x must be an array/tensor, got list"),
    (lambda: conv.conv2d_forward(_z(1, 3, 5, 5), _z(2, 3, 3, 3), _z(2, dtype=np.float32), _z(1, 2, 3, 3), 1, 0, 1),
     TypeError, rf"{FWD}: all float arguments must share one dtype, got x=float64, w=float64, b=float32"),
    (lambda: conv.conv2d_backward_weight(_z(1, 3, 5, 5, dtype=np.float32), _z(1, 2, 3, 3), _z(2, 3, 3, 3), 1, 0, 1),
     TypeError, r"conv2d_backward_weight: all float arguments must share one dtype"),
    # output and bias shapes
    (lambda: conv.conv2d_forward(_z(1, 3, 5, 5), _z(2, 3, 3, 3), None, _z(1, 2, 5, 5), 1, 0, 1),
     ValueError, rf"{FWD}: y has shape \(1, 2, 5, 5\), expected \(1, 2, 3, 3\)"),
    (lambda: conv.conv2d_forward(_z(1, 3, 5, 5), _z(2, 3, 3, 3), _z(3), _z(1, 2, 3, 3), 1, 0, 1),
     ValueError, rf"{FWD}: b has shape \(3,\), expected \(2,\)"),
    (lambda: conv.conv2d_backward_data(_z(1, 2, 3, 3), _z(2, 3, 3, 3), _z(1, 3, 5, 5), 2, 0, 1),
     ValueError, r"conv2d_backward_data: dy has shape \(1, 2, 3, 3\), expected \(1, 2, 2, 2\)"),
    (lambda: conv.conv2d_backward_weight(_z(1, 3, 5, 5), _z(1, 2, 3, 3), _z(2, 3, 3, 3), 1, 1, 1),
     ValueError, r"conv2d_backward_weight: dy has shape \(1, 2, 3, 3\), expected \(1, 2, 5, 5\)"),
    (lambda: conv.conv2d_backward_bias(_z(1, 2, 3, 3), _z(3)),
     ValueError, r"conv2d_backward_bias: db has shape \(3,\), expected \(2,\)"),
    # stride, pad, neuron values
    (lambda: conv.conv2d_forward(_z(1, 3, 5, 5), _z(2, 3, 3, 3), None, _z(1, 2, 3, 3), (1, 0), 0, 1),
     ValueError, rf"{FWD}: stride must be >= 1 in both dimensions, got \(1, 0\)"),
    (lambda: conv.conv2d_forward(_z(1, 3, 5, 5), _z(2, 3, 3, 3), None, _z(1, 2, 3, 3), 1, -1, 1),
     ValueError, rf"{FWD}: pad must be >= 0 in both dimensions, got \(-1, -1\)"),
    (lambda: conv.conv2d_backward_data(_z(1, 2, 3, 3), _z(2, 3, 3, 3), _z(1, 3, 5, 5), (1, 1, 1), 0, 1),
     TypeError, r"conv2d_backward_data: stride must be an int or a pair \(h, w\) of ints"),
    (lambda: conv.conv2d_backward_weight(_z(1, 3, 5, 5), _z(1, 2, 3, 3), _z(2, 3, 3, 3), 1, (0, 1.5), 1),
     TypeError, r"conv2d_backward_weight: pad must hold ints"),
    (lambda: conv.conv2d_forward(_z(1, 3, 5, 5), _z(2, 3, 3, 3), None, _z(1, 2, 3, 3), 1, 0, 1, "softplus"),
     ValueError, rf"{FWD}: neuron must be one of .*, got 'softplus'"),
    (lambda: conv.conv2d_forward(_z(1, 3, 5, 5), _z(2, 3, 3, 3), None, _z(1, 2, 3, 3), 1, 0, 1, "leaky_relu",
                                 float("nan")),
     ValueError, rf"{FWD}: negative_slope must be finite"),
])
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call()
