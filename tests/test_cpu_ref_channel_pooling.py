"""cpu_ref.pooling's channel pooling (max_channel_pool_* and mean_channel_pool_*) against torch float64:
windows cut with F.pad + unfold, max and mean, gradients by autograd; against a plain-loop oracle of the
rules for ties, -inf and NaN; Mocha's output size; finite differences; bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cases_channel_pooling import (
    ChannelCase,
    channel_arrays,
    channel_cases,
    loop_backward,
    loop_forward,
    loop_output_size,
    random_cases,
    run_all,
)
from mocha_triton.checks.pooling import channel_pool_output_size
from mocha_triton.cpu_ref import pooling as ref
from support import CPU, assert_close, call_op

DTYPES = ["float32", "float64"]
CASES = channel_cases("reference") + random_cases(seed=1, count=8)


def torch_channel_pool(case: ChannelCase, x: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(y, argmax or None) of pooling x (M, C, S) along axis 1, by padding the axis (-inf for max, 0 for
    mean) to cover every window and unfolding it."""
    front = case.pad[0]
    length = max(front + case.c, (case.oc - 1) * case.stride + case.kernel)
    fill = float("-inf") if mode == "max" else 0.0
    rows = F.pad(x.transpose(1, 2), (front, length - front - case.c), value=fill)  # (M, S, L)
    windows = rows.unfold(2, case.kernel, case.stride)[:, :, :case.oc]  # (M, S, OC, kernel)
    if mode == "mean":
        return (windows.sum(dim=-1) / case.kernel).transpose(1, 2), None
    values, taps = windows.max(dim=-1)  # the first maximal tap
    starts = torch.arange(case.oc) * case.stride - front
    return values.transpose(1, 2), (taps + starts[None, None, :]).transpose(1, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_matches_torch_and_autograd(case, dtype):
    x, dy = channel_arrays(case, dtype)
    got = run_all(CPU, case, x, dy)
    for mode in ("max", "mean"):
        tx = torch.from_numpy(x).double().requires_grad_()
        y, argmax = torch_channel_pool(case, tx, mode)
        y.backward(torch.from_numpy(dy).double())
        if mode == "max":
            assert np.array_equal(got["argmax"], argmax.numpy()), "argmax"
            assert np.array_equal(got["max"], y.detach().numpy().astype(dtype)), "max picks, it does not round"
        else:
            assert_close(got["mean"], y.detach().numpy(), dtype, reduction=case.kernel, what="mean")
        assert_close(got[f"{mode}_dx"], tx.grad.numpy(), dtype, reduction=case.overlap, what=f"{mode}_dx")


@pytest.mark.parametrize("case", channel_cases("reference")[:6], ids=lambda c: c.id)
def test_ties_and_non_finite_values_follow_the_loop_oracle(case):
    """Ties go to the first channel; -inf and NaN are never taken (an all -inf/NaN window names its first
    channel and gives -inf)."""
    x, dy = channel_arrays(case, "float64", ties=True)
    flat = x.reshape(-1)
    flat[::5] = -np.inf
    flat[::7] = np.nan
    got = run_all(CPU, case, x, dy)
    want = loop_forward(case, x)
    assert np.array_equal(got["argmax"], want["argmax"])
    assert np.array_equal(got["max"], want["max"])
    want_dx = loop_backward(case, dy, want["argmax"])
    assert_close(got["max_dx"], want_dx["max_dx"], "float64", reduction=case.overlap)
    finite = np.nan_to_num(x, nan=0.0, neginf=0.0)
    mean = call_op(CPU, "mean_channel_pool_forward", x=finite, y=np.empty(case.y_shape), kernel=case.kernel,
                   stride=case.stride, pad=case.pad)["y"]
    assert_close(mean, loop_forward(case, finite)["mean"], "float64", reduction=case.kernel)
    assert_close(got["mean_dx"], want_dx["mean_dx"], "float64", reduction=case.overlap)


def test_all_minus_infinity_window_names_its_first_channel():
    case = ChannelCase(1, 4, 1, 3, 1, (1, 1))
    x = np.full(case.x_shape, -np.inf)
    got = run_all(CPU, case, x, np.ones(case.y_shape))
    assert got["argmax"].reshape(-1).tolist() == [0, 0, 1, 2]
    assert np.all(got["max"] == -np.inf)


def test_gradients_match_finite_differences():
    case = ChannelCase(2, 6, 3, 3, 2, (1, 2))
    x, dy = channel_arrays(case, "float64")
    got = run_all(CPU, case, x, dy)
    h = 1e-6
    for mode in ("max", "mean"):
        def objective(values, mode=mode):
            return float((run_all(CPU, case, values, dy)[mode] * dy).sum())

        fd = np.empty_like(x)
        for i in np.ndindex(x.shape):
            plus, minus = x.copy(), x.copy()
            plus[i] += h
            minus[i] -= h
            fd[i] = (objective(plus) - objective(minus)) / (2 * h)
        np.testing.assert_allclose(got[f"{mode}_dx"], fd, rtol=0, atol=1e-8, err_msg=mode)


def test_output_size_follows_mocha():
    # Mocha's rule, restated by a loop, over a grid of valid configurations
    for c in range(1, 9):
        for k in range(1, 6):
            for s in range(1, 5):
                for front in range(k):
                    for back in range(k):
                        if k <= c + front + back:
                            assert channel_pool_output_size(c, k, s, (front, back)) == \
                                loop_output_size(c, k, s, front, back), (c, k, s, front, back)
    assert channel_pool_output_size(4, 2, 2, (0, 1)) == 2  # the third window would start in the padding
    assert channel_pool_output_size(9, 3, 2, (2, 2)) == 6  # Mocha's test configuration
    assert channel_pool_output_size(10, 5, 1, 2) == 10  # an int pads both ends
    # every window holds a channel, the last one included
    for case in CASES:
        assert all(len(case.window(oc)) > 0 for oc in range(case.oc)), case


def test_empty_outer_and_inner_axes():
    for shape in ((0, 5, 3), (2, 5, 0)):
        case_like = {"kernel": 3, "stride": 2, "pad": (1, 1)}
        oc = channel_pool_output_size(5, **case_like)
        y = np.empty((shape[0], oc, shape[2]))
        argmax = np.empty(y.shape, np.int32)
        ref.max_channel_pool_forward(np.zeros(shape), y, argmax, **case_like)
        dx = np.empty(shape)
        ref.mean_channel_pool_backward(y, dx, **case_like)
        # empty blobs are legal (a batch of 0, an empty spatial axis): nothing to write, no error
        assert oc == 3 and y.size == argmax.size == dx.size == 0


def test_bad_arguments_are_rejected():
    x = np.zeros((2, 5, 3))
    y, argmax = np.empty((2, 5, 3)), np.empty((2, 5, 3), np.int32)
    op = "max_channel_pool_forward"
    with pytest.raises(ValueError, match=rf"{op}: pad \(3, 0\) must be >= 0 and smaller than kernel 3 at both ends"):
        ref.max_channel_pool_forward(x, y, argmax, 3, 1, (3, 0))
    with pytest.raises(ValueError, match=rf"{op}: pad \(0, -1\) must be >= 0"):
        ref.max_channel_pool_forward(x, y, argmax, 3, 1, (0, -1))
    with pytest.raises(TypeError, match=rf"{op}: pad must be an int or a pair \(front, back\) of ints, got "
                                        r"\(1, 1, 1\)"):
        ref.max_channel_pool_forward(x, y, argmax, 3, 1, (1, 1, 1))
    with pytest.raises(TypeError, match=rf"{op}: pad must hold ints, got \(1.0, 1\)"):
        ref.max_channel_pool_forward(x, y, argmax, 3, 1, (1.0, 1))
    with pytest.raises(ValueError, match=rf"{op}: kernel must be a positive int, got 0"):
        ref.max_channel_pool_forward(x, y, argmax, 0, 1, (0, 0))
    with pytest.raises(ValueError, match=rf"{op}: stride must be a positive int, got True"):
        ref.max_channel_pool_forward(x, y, argmax, 3, True, (0, 0))
    with pytest.raises(ValueError, match=rf"{op}: kernel 8 is larger than the padded axis 7"):
        ref.max_channel_pool_forward(x, y, argmax, 8, 1, (1, 1))
    with pytest.raises(ValueError, match=rf"{op}: the pooled axis is empty"):
        ref.max_channel_pool_forward(np.zeros((2, 0, 3)), y, argmax, 1, 1, (0, 0))
    with pytest.raises(ValueError, match=rf"{op}: x must be 3-D, got shape \(2, 5\)"):
        ref.max_channel_pool_forward(np.zeros((2, 5)), y, argmax, 1, 1, (0, 0))
    with pytest.raises(ValueError, match=rf"{op}: y has shape \(2, 5, 3\), expected \(2, 3, 3\)"):
        ref.max_channel_pool_forward(x, y, argmax, 3, 2, (1, 1))
    with pytest.raises(TypeError, match=rf"{op}: argmax has dtype int64; expected int32"):
        ref.max_channel_pool_forward(x, y, argmax.astype(np.int64), 1, 1, (0, 0))
    with pytest.raises(TypeError, match=rf"{op}: all float arguments must share one dtype"):
        ref.max_channel_pool_forward(x, y.astype(np.float32), argmax, 1, 1, (0, 0))
    with pytest.raises(ValueError, match=r"max_channel_pool_backward: dy has shape \(2, 5, 3\), expected "
                                         r"\(2, 3, 3\)"):
        ref.max_channel_pool_backward(y, argmax, x, 3, 2, (1, 1))
    with pytest.raises(ValueError, match=r"mean_channel_pool_forward: y has shape \(2, 5, 3\), expected \(2, 2, 3\)"):
        ref.mean_channel_pool_forward(x, y, 3, 3, (0, 0))
    with pytest.raises(TypeError, match=r"mean_channel_pool_backward: dx has dtype int64"):
        ref.mean_channel_pool_backward(y, np.zeros((2, 5, 3), np.int64), 1, 1, (0, 0))
    with pytest.raises(ValueError, match=r"channel_pool_output_size: pad \(2, 2\) must be >= 0 and smaller than "
                                         r"kernel 2"):
        channel_pool_output_size(5, 2, 1, 2)
