"""kernels.conv equals cpu_ref.conv (float32; precision "ieee" unless a test says otherwise).

Every op runs on the tiny cases of tests/cases_conv.py plus a few cases of our own (several tiles
along every GEMM axis, grouped 1x1, strided data gradients) inside every context of :func:`contexts`:
in the interpreter the tiles each launch fits to its shape and the small fixed interpreter configs
(under which MULTI_TILE spans several tiles on every axis); every autotune config of this module on a
GPU with ``MOCHA_TRITON_ALL_CONFIGS=1``.
"""

import contextlib
import math

import numpy as np
import pytest
import torch

from cases_conv import ConvCase, conv_arrays, conv_cases
from mocha_triton.contract import NEURONS
from mocha_triton.cpu_ref import conv as ref
from mocha_triton.kernels import conv as kconv
from mocha_triton.kernels import precision
from mocha_triton.kernels._runtime import INTERPRET
from support import CPU, TRITON, assert_close, call_op, triton_config_contexts

F32 = np.float32

# Cases of our own, beyond the shared tiny list.
MULTI_TILE = ConvCase(2, 20, 9, 9, 40, 3, 3, (1, 1), (1, 1), neuron="relu")  # >1 tile on every axis, >1 K block
EXTRA = [
    MULTI_TILE,
    ConvCase(1, 4, 3, 5, 6, 1, 1, groups=2, neuron="leaky_relu"),  # grouped 1x1: implicit GEMM, not gemm()
    ConvCase(1, 3, 11, 10, 4, 5, 5, (3, 3), (2, 2), has_bias=False),  # stride 3, several taps per phase
    ConvCase(8, 2, 16, 16, 3, 3, 3, (1, 1), (1, 1)),  # batch 8: the filter gradient splits the batch
]
CASES = conv_cases("tiny") + EXTRA


@contextlib.contextmanager
def fixed_interpreter_tiles():
    old = kconv.FIT_INTERPRETER_TILES
    kconv.FIT_INTERPRETER_TILES = False
    try:
        yield
    finally:
        kconv.FIT_INTERPRETER_TILES = old


def contexts() -> list:
    """(label, context) pairs to run the Triton side in: support.triton_config_contexts, plus the
    fixed interpreter configs in the interpreter."""
    fixed = [("fixed interpreter tiles", fixed_interpreter_tiles())] if INTERPRET else []
    return triton_config_contexts(kconv) + fixed


def _op_calls(case: ConvCase, a) -> list[tuple[str, dict, int]]:
    """(op, kwargs, reduction length) for the four ops of one case."""
    geometry = case.params()
    return [
        ("conv2d_forward", dict(x=a.x, w=a.w, b=a.b, y=np.empty(case.y_shape, F32), neuron=case.neuron, **geometry),
         case.forward_reduction + 1),
        ("conv2d_backward_data", dict(dy=a.dy, w=a.w, dx=np.empty(case.x_shape, F32), **geometry),
         case.data_reduction),
        ("conv2d_backward_weight", dict(x=a.x, dy=a.dy, dw=np.empty(case.w_shape, F32), **geometry),
         case.weight_reduction),
        ("conv2d_backward_bias", dict(dy=a.dy, db=np.empty(case.f, F32)), case.weight_reduction),
    ]


def _compare(case: ConvCase, tolerance=None) -> None:
    """Every op of ``case`` on both backends, in every config context; ``tolerance(reduction)``
    replaces the float32 rule of assert_close (for the TF32 precisions)."""
    a = conv_arrays(case, "float32")
    for op, kwargs, reduction in _op_calls(case, a):
        want = call_op(CPU, op, **kwargs)
        for label, context in contexts():
            with context:
                got = call_op(TRITON, op, **kwargs)
            for name in want:
                what = f"{op}.{name} [{label}] {case.id}"
                if tolerance is None:
                    assert_close(got[name], want[name], "float32", reduction, what=what)
                else:
                    err = np.max(np.abs(got[name] - want[name])) / max(np.max(np.abs(want[name])), 1e-30)
                    assert np.all(np.isfinite(got[name])) and err <= tolerance(reduction), f"{what}: error {err:.2e}"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_ops_match_reference(case):
    _compare(case)


@pytest.mark.parametrize("mode, tol", [("tf32", 2e-3), ("tf32x3", 2e-5)])
def test_tensor_core_precisions(mode, tol):
    """TF32 (about 1e-3 relative per product) and 3xTF32 (about fp32): loose normwise bounds. In the
    interpreter every precision is exact fp32; on a GPU this exercises the tensor-core paths."""
    for case in (CASES[0], MULTI_TILE, EXTRA[2]):
        with precision(mode):
            _compare(case, tolerance=lambda reduction: tol * math.sqrt(reduction))


@pytest.mark.parametrize("neuron", NEURONS)
def test_every_neuron_in_the_epilogue(neuron):
    """The fused epilogue b + neuron(.) with a non-default leaky slope, on the implicit GEMM and on
    the 1x1 route through gemm()."""
    for case in (ConvCase(1, 3, 5, 4, 5, 3, 2, (1, 2), (1, 0), neuron=neuron),
                 ConvCase(2, 3, 3, 4, 5, 1, 1, neuron=neuron)):
        a = conv_arrays(case, "float32", seed=1)
        kwargs = dict(x=a.x, w=a.w, b=a.b, y=np.empty(case.y_shape, F32), neuron=neuron, negative_slope=0.3,
                      **case.params())
        want = call_op(CPU, "conv2d_forward", **kwargs)["y"]
        for label, context in contexts():
            with context:
                got = call_op(TRITON, "conv2d_forward", **kwargs)["y"]
            assert_close(got, want, "float32", case.forward_reduction + 1, what=f"{neuron} [{label}] {case.id}")


def _reached(size: int, out_size: int, kernel: int, stride: int, pad: int) -> np.ndarray:
    """Which input positions along one axis some window tap covers."""
    taps = np.arange(out_size)[:, None] * stride - pad + np.arange(kernel)[None, :]
    hit = np.zeros(size, bool)
    hit[taps[(taps >= 0) & (taps < size)]] = True
    return hit


@pytest.mark.parametrize("case", [
    ConvCase(2, 3, 7, 8, 4, 1, 1, (2, 2)),  # 1x1 at stride 2: three of four phases have no tap
    ConvCase(1, 2, 10, 9, 3, 1, 2, (3, 3), (0, 1)),  # stride 3 > kernel: empty phases along both axes
    ConvCase(1, 2, 9, 11, 3, 2, 3, (3, 2), (1, 0), groups=1),  # stride 3 > kernel 2, last rows unreached
    ConvCase(2, 4, 8, 8, 6, 3, 3, (2, 3), (1, 0), groups=2),  # groups and phases share a grid axis
], ids=lambda c: c.id)
def test_strided_data_gradient_by_phases(case):
    """Every stride phase is one dense GEMM; pixels no tap reaches are exactly 0 (never left unwritten)."""
    a = conv_arrays(case, "float32")
    kwargs = dict(dy=a.dy, w=a.w, dx=np.empty(case.x_shape, F32), **case.params())
    want = call_op(CPU, "conv2d_backward_data", **kwargs)["dx"]
    reached = (_reached(case.h, case.oh, case.kh, case.stride[0], case.pad[0])[:, None]
               & _reached(case.w, case.ow, case.kw, case.stride[1], case.pad[1])[None, :])
    assert not reached.all(), "the case must leave some pixels unreached"
    for label, context in contexts():
        with context:
            got = call_op(TRITON, "conv2d_backward_data", **kwargs)["dx"]
        assert_close(got, want, "float32", case.data_reduction, what=f"dx [{label}] {case.id}")
        assert np.all(got[:, :, ~reached] == 0.0), f"[{label}] unreached pixels must be 0"


def test_split_cuts_long_reductions_into_nonempty_slices():
    device = torch.device("cpu")
    for length in (1, 7, 64, 1000, 12345):
        for per_slice in (1, 3, 500):
            split, slice_len = kconv._split(length, per_slice, 16, device)
            assert 1 <= split <= kconv.MAX_SPLIT
            assert (split - 1) * slice_len < length <= split * slice_len  # no empty slice, all covered
    assert kconv._split(1000, 1, 16, device)[0] > 1  # a long reduction with few programs is split
    assert kconv._split(0, 1, 16, device) == (1, 1)


def test_gradients_are_deterministic():
    """The filter and bias gradients add their slices in a fixed order: two runs are bit-identical."""
    case = EXTRA[3]
    a = conv_arrays(case, "float32")
    dw_kwargs = dict(x=a.x, dy=a.dy, dw=np.empty(case.w_shape, F32), **case.params())
    db_kwargs = dict(dy=a.dy, db=np.empty(case.f, F32))
    pixels_per_sample = case.oh * case.ow
    assert kconv._split(case.n, 1, math.ceil(kconv.WEIGHT_MIN_SLICE / pixels_per_sample), torch.device("cpu"))[0] > 1
    for label, context in contexts():
        with context:
            first = call_op(TRITON, "conv2d_backward_weight", **dw_kwargs)["dw"]
            second = call_op(TRITON, "conv2d_backward_weight", **dw_kwargs)["dw"]
            db1 = call_op(TRITON, "conv2d_backward_bias", **db_kwargs)["db"]
            db2 = call_op(TRITON, "conv2d_backward_bias", **db_kwargs)["db"]
        assert first.tobytes() == second.tobytes(), label
        assert db1.tobytes() == db2.tobytes(), label


def test_empty_batch():
    """N = 0: nothing to compute forward; the parameter gradients are sums over nothing, i.e. 0."""
    case = ConvCase(1, 3, 5, 5, 4, 3, 3)
    x = np.zeros((0, 3, 5, 5), F32)
    dy = np.zeros((0, 4, 3, 3), F32)
    w = conv_arrays(case, "float32").w
    got = call_op(TRITON, "conv2d_backward_weight", x=x, dy=dy, dw=np.empty(w.shape, F32), stride=1, pad=0, groups=1)
    assert np.array_equal(got["dw"], np.zeros(w.shape, F32))
    got = call_op(TRITON, "conv2d_backward_bias", dy=dy, db=np.empty(4, F32))
    assert np.array_equal(got["db"], np.zeros(4, F32))
    got = call_op(TRITON, "conv2d_forward", x=x, w=w, b=None, y=np.empty((0, 4, 3, 3), F32), stride=1, pad=0,
                  groups=1)
    assert got["y"].shape == (0, 4, 3, 3)


def test_rejects_float64_and_bad_shapes_like_the_reference():
    xn, wn, bn, yn = (np.zeros(shape, F32) for shape in [(1, 2, 5, 5), (3, 2, 3, 3), (3,), (1, 3, 3, 3)])
    x, w, b, y = (TRITON.to_backend(a) for a in (xn, wn, bn, yn))
    x64, dy64 = (TRITON.to_backend(a.astype(np.float64)) for a in (xn, yn))
    float64 = r"has dtype float64; expected one of \('float32',\)"
    with pytest.raises(TypeError, match="conv2d_forward: x " + float64):
        kconv.conv2d_forward(x64, w, b, y, 1, 0, 1)
    with pytest.raises(TypeError, match="conv2d_backward_data: dy " + float64):
        kconv.conv2d_backward_data(dy64, w, x, 1, 0, 1)
    with pytest.raises(TypeError, match="conv2d_backward_weight: x " + float64):
        kconv.conv2d_backward_weight(x64, y, w, 1, 0, 1)
    with pytest.raises(TypeError, match="conv2d_backward_bias: dy " + float64):
        kconv.conv2d_backward_bias(dy64, b)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        kconv.conv2d_forward(xn, w, b, y, 1, 0, 1)
    with pytest.raises(ValueError, match="conv2d_forward: x must be contiguous"):
        kconv.conv2d_forward(x.transpose(2, 3), w, b, y, 1, 0, 1)

    # Shape errors: the Triton side raises exactly the reference's message (shared checks).
    bad_calls = [
        ("conv2d_forward", lambda m, t: m.conv2d_forward(t(xn), t(wn), t(bn), t(np.zeros((1, 3, 4, 3), F32)), 1, 0, 1)),
        ("conv2d_forward", lambda m, t: m.conv2d_forward(t(xn), t(wn), t(bn), t(yn), 1, 0, 2)),
        ("conv2d_backward_data", lambda m, t: m.conv2d_backward_data(t(yn), t(wn), t(xn), 2, 0, 1)),
        ("conv2d_backward_weight",
         lambda m, t: m.conv2d_backward_weight(t(xn), t(yn), t(np.zeros((3, 2, 3, 2), F32)), 1, 0, 1)),
        ("conv2d_backward_bias", lambda m, t: m.conv2d_backward_bias(t(yn), t(np.zeros(4, F32)))),
    ]
    for op, call in bad_calls:
        with pytest.raises(ValueError) as expected:
            call(ref, CPU.to_backend)
        with pytest.raises(ValueError) as got:
            call(kconv, TRITON.to_backend)
        assert str(got.value) == str(expected.value) and str(got.value).startswith(op)


def test_rejects_what_the_kernels_cannot_index():
    """Sizes past the kernels' 32-bit in-sample offsets or their grid axes (meta tensors: no memory)."""
    big = torch.empty((1, 1, 50_000, 50_000), device="meta")
    one = torch.empty((1, 1, 1, 1), device="meta")
    with pytest.raises(ValueError, match="conv2d_forward: one sample or the filters hold 2500000000 elements"):
        kconv.conv2d_forward(big, one, None, big, 1, 0, 1)
    groups = 70_000
    x = torch.empty((1, groups, 1, 1), device="meta")
    w = torch.empty((groups, 1, 1, 1), device="meta")
    with pytest.raises(ValueError, match="conv2d_forward: 70000 groups"):
        kconv.conv2d_forward(x, w, None, x, 1, 0, groups)
