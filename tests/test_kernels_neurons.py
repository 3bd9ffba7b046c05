"""kernels.neurons equals cpu_ref.neurons (float32), in place too, and rejects the same bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from test_cpu_ref_neurons import neuron_arrays, neuron_configs

from mocha_triton.kernels import neurons as kernels_neurons
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts

# Tiny shapes, one spanning several programs with a ragged last block, one empty.
SHAPES = [(1,), (3, 5), (2, 3, 4, 5), (kernels_neurons.BLOCK + 77,), (0, 3)]
EXACT = ("identity", "relu", "leaky_relu")  # one comparison or multiply: bit-identical to NumPy


@pytest.mark.parametrize("label,context", triton_config_contexts(kernels_neurons))
@pytest.mark.parametrize("neuron,slope", neuron_configs())
def test_matches_reference(neuron, slope, label, context):
    with context:
        for shape in SHAPES:
            x, dy = neuron_arrays(shape, "float32", neuron)
            fwd = dict(x=x, y=np.empty_like(x), neuron=neuron, negative_slope=slope)
            want, got = call_op(CPU, "neuron_forward", **fwd)["y"], call_op(TRITON, "neuron_forward", **fwd)["y"]
            assert_close(got, want, "float32", what=f"{neuron} forward {shape} [{label}]")
            bwd = dict(y=want, dy=dy, dx=np.empty_like(dy), neuron=neuron, negative_slope=slope)
            dx_want, dx = call_op(CPU, "neuron_backward", **bwd)["dx"], call_op(TRITON, "neuron_backward", **bwd)["dx"]
            assert_close(dx, dx_want, "float32", what=f"{neuron} backward {shape} [{label}]")
            if neuron in EXACT:
                np.testing.assert_array_equal(got, want)
                np.testing.assert_array_equal(dx, dx_want)


def test_boundary_values():
    """relu'(0) = 0, leaky_relu'(0) = slope, sigmoid/tanh saturate at +-100 without NaN or inf."""
    x = TRITON.to_backend(np.array([0.0, -0.0, 100.0, -100.0, 1e-30, -1e-30], np.float32))
    y = TRITON.to_backend(np.full(6, np.nan, np.float32))
    kernels_neurons.neuron_forward(x, y, "sigmoid")
    out = TRITON.to_numpy(y)
    np.testing.assert_array_equal(out[:3], [0.5, 0.5, 1.0])
    assert 0.0 <= out[3] < 1e-40
    kernels_neurons.neuron_forward(x, y, "tanh")
    np.testing.assert_array_equal(TRITON.to_numpy(y)[:4], [0.0, 0.0, 1.0, -1.0])
    stored = TRITON.to_backend(np.array([0.0, -0.0, 2.0, -1.0, 1e-30, 0.0], np.float32))
    dy = TRITON.to_backend(np.full(6, 3.0, np.float32))
    dx = TRITON.to_backend(np.full(6, np.nan, np.float32))
    kernels_neurons.neuron_backward(stored, dy, dx, "relu")
    np.testing.assert_array_equal(TRITON.to_numpy(dx), [0.0, 0.0, 3.0, 0.0, 3.0, 0.0])
    kernels_neurons.neuron_backward(stored, dy, dx, "leaky_relu", 0.5)
    np.testing.assert_array_equal(TRITON.to_numpy(dx), [1.5, 1.5, 3.0, 1.5, 3.0, 1.5])
    for neuron in ("sigmoid", "tanh"):
        kernels_neurons.neuron_forward(x, y, neuron)
        kernels_neurons.neuron_backward(y, TRITON.to_backend(np.ones(6, np.float32)), dx, neuron)
        got = TRITON.to_numpy(dx)
        assert np.all(np.isfinite(got)) and np.all(np.abs(got[2:4]) < 1e-40)


@pytest.mark.parametrize("neuron,slope", neuron_configs())
def test_in_place(neuron, slope):
    """y is x (forward) and dx is dy (backward) give the out-of-place results."""
    x, dy = neuron_arrays((kernels_neurons.BLOCK + 5,), "float32", neuron)
    y_want = call_op(CPU, "neuron_forward", x=x, y=np.empty_like(x), neuron=neuron, negative_slope=slope)["y"]
    dx_want = call_op(CPU, "neuron_backward", y=y_want, dy=dy, dx=np.empty_like(dy), neuron=neuron,
                      negative_slope=slope)["dx"]
    tx = TRITON.to_backend(x)
    kernels_neurons.neuron_forward(tx, tx, neuron, slope)
    assert_close(TRITON.to_numpy(tx), y_want, "float32", what=f"{neuron} forward in place")
    ty, tdy = TRITON.to_backend(y_want), TRITON.to_backend(dy)
    kernels_neurons.neuron_backward(ty, tdy, tdy, neuron, slope)
    assert_close(TRITON.to_numpy(tdy), dx_want, "float32", what=f"{neuron} backward in place")


def test_rejects_float64_and_bad_inputs():
    f32 = TRITON.to_backend(np.zeros((2, 3), np.float32))
    t64 = TRITON.to_backend(np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"neuron_forward: x has dtype float64; expected one of \('float32',\)"):
        kernels_neurons.neuron_forward(t64, t64, "relu")
    with pytest.raises(TypeError, match=r"neuron_backward: dy has dtype float64; expected one of \('float32',\)"):
        kernels_neurons.neuron_backward(f32, t64, f32, "relu")
    with pytest.raises(ValueError, match=r"neuron_forward: neuron must be one of .* got 'softplus'"):
        kernels_neurons.neuron_forward(f32, f32, "softplus")
    with pytest.raises(ValueError, match=r"neuron_forward: arguments must have the same shape, got x=\(2, 3\), "
                                         r"y=\(3, 2\)"):
        kernels_neurons.neuron_forward(f32, TRITON.to_backend(np.zeros((3, 2), np.float32)), "relu")
    with pytest.raises(ValueError, match=r"neuron_backward: negative_slope must be >= 0 for leaky_relu"):
        kernels_neurons.neuron_backward(f32, f32, f32, "leaky_relu", -0.5)
    with pytest.raises(TypeError, match=r"neuron_forward: y must be a torch.Tensor on the Triton backend"):
        kernels_neurons.neuron_forward(f32, np.zeros((2, 3), np.float32), "relu")
    wide = TRITON.to_backend(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"neuron_backward: dy must be contiguous"):
        kernels_neurons.neuron_backward(f32, wide[:, 1:3].t(), f32, "tanh")
