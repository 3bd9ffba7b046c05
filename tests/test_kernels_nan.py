"""NaN in, NaN out: where the NumPy reference propagates a NaN (a diverging run), the Triton kernels must
too, instead of clamping it into a finite loss, activation or gradient (``tl.maximum`` drops NaN unless
told otherwise). Each case puts NaNs into one input and compares the NaN positions and the finite values
of both backends."""

from __future__ import annotations

import numpy as np
import pytest

from support import CPU, TRITON, call_op

F32 = np.float32


def assert_same_nans(got: np.ndarray, want: np.ndarray, what: str) -> None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert np.isnan(want).any(), f"{what}: the case must produce a NaN in the reference"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN positions differ")
    finite = ~np.isnan(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-6, err_msg=what)


def logits_with_nan(shape=(4, 5), seed=0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=shape).astype(F32)
    x[1, 2] = np.nan
    return x


def compare(op: str, **kwargs) -> None:
    want = call_op(CPU, op, **kwargs)
    got = call_op(TRITON, op, **kwargs)
    for name in want:
        if np.issubdtype(want[name].dtype, np.floating):
            assert_same_nans(got[name], want[name], f"{op}.{name}")


def test_relu_keeps_nan():
    x = logits_with_nan()
    compare("neuron_forward", x=x, y=np.empty_like(x), neuron="relu")


@pytest.mark.parametrize("op", ["softmax_loss_forward", "multinomial_logistic_loss_forward"])
def test_classification_losses_keep_nan(op):
    x = logits_with_nan()
    label = np.array([0, 2, 4, 1], F32)
    if op == "softmax_loss_forward":
        compare(op, x=x, label=label, class_weights=None, lse=np.empty(4, F32), loss=np.empty(1, F32))
    else:
        prob = np.abs(x) / 3
        compare(op, prob=prob, label=label, class_weights=None, loss=np.empty(1, F32))


def test_softlabel_loss_keeps_nan():
    x = logits_with_nan()
    target = np.full_like(x, 0.2)
    compare("softlabel_softmax_loss_forward", x=x, target=target, lse=np.empty(4, F32), loss=np.empty(1, F32))


def test_hinge_loss_keeps_nan():
    pred = logits_with_nan()
    label = np.sign(np.random.default_rng(1).normal(size=pred.shape)).astype(F32)
    compare("hinge_loss_forward", pred=pred, label=label, loss=np.empty(1, F32))
