"""cpu_ref.index against torch float64: argmax_forward and index_to_onehot, float32 and float64.

* argmax on every shape of cases_index (no spatial axes, batch 1, one class, many classes, empty
  positions) and every kind of values: distinct, ties (the first index wins), NaNs (the first NaN wins),
  infinities (a row of -inf gives 0); the output is exactly the oracle's index, in x's dtype.
* index_to_onehot with float, int32 and int64 labels, with and without the class axis, equals torch's
  one_hot moved to axis 1.
* Bad inputs: every error starts with the op name and names the argument and the problem.
"""

import numpy as np
import pytest

from cases_index import ARGMAX_SHAPES, KINDS, argmax_input, argmax_oracle, onehot_labels, onehot_oracle
from support import CPU, call_op


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", ARGMAX_SHAPES, ids=str)
def test_argmax_matches_torch(shape, kind, dtype):
    x = argmax_input(shape, kind, dtype, seed=len(shape) * 100 + sum(shape))
    y = call_op(CPU, "argmax_forward", x=x, y=np.empty((shape[0], 1, *shape[2:]), dtype))["y"]
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y, argmax_oracle(x))


def test_argmax_ties_go_to_the_first_index_and_nan_wins():
    x = np.array([[1.0, 3.0, 3.0, 2.0],
                  [-np.inf, -np.inf, -np.inf, -np.inf],
                  [5.0, np.nan, 7.0, np.nan],
                  [-0.0, 0.0, -1.0, 0.0]])
    y = call_op(CPU, "argmax_forward", x=x, y=np.empty((4, 1)))["y"]
    np.testing.assert_array_equal(y[:, 0], [1, 0, 1, 0])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("label_dtype", ["float", "int32", "int64"])
@pytest.mark.parametrize("keep_axis", [True, False])
@pytest.mark.parametrize("shape", [(3, 5), (1, 1), (2, 4, 3), (2, 3, 2, 5), (1, 200, 2), (0, 3), (2, 3, 0)], ids=str)
def test_index_to_onehot_matches_torch(shape, keep_axis, label_dtype, dtype):
    label = onehot_labels(shape, dtype if label_dtype == "float" else label_dtype, seed=sum(shape), keep_axis=keep_axis)
    y = call_op(CPU, "index_to_onehot", label=label, y=np.empty(shape, dtype))["y"]
    assert y.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(y, onehot_oracle(label, shape[1]))


def test_argmax_and_onehot_round_trip():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 9, 4))
    indices = call_op(CPU, "argmax_forward", x=x, y=np.empty((6, 1, 4)))["y"]
    onehot = call_op(CPU, "index_to_onehot", label=indices, y=np.empty((6, 9, 4)))["y"]
    np.testing.assert_array_equal(onehot, (x == x.max(axis=1, keepdims=True)).astype(np.float64))


ZEROS32 = np.zeros((2, 3), np.float32)


@pytest.mark.parametrize("call, error, match", [
    (lambda m: m.argmax_forward(np.zeros(3), np.zeros(1)), ValueError,
     r"argmax_forward: x must have at least 2 dimensions, got shape \(3,\)"),
    (lambda m: m.argmax_forward(np.zeros((2, 0)), np.zeros((2, 1))), ValueError,
     r"argmax_forward: x has no classes \(axis 1 has size 0\)"),
    (lambda m: m.argmax_forward(np.zeros((2, 3)), np.zeros((2, 3))), ValueError,
     r"argmax_forward: y has shape \(2, 3\), expected \(2, 1\)"),
    (lambda m: m.argmax_forward(ZEROS32, np.zeros((2, 1))), TypeError,
     r"argmax_forward: all float arguments must share one dtype, got x=float32, y=float64"),
    (lambda m: m.argmax_forward(np.zeros((2, 3), np.int64), np.zeros((2, 1), np.int64)), TypeError,
     r"argmax_forward: x has dtype int64"),
    (lambda m: m.argmax_forward(np.broadcast_to(np.float32(0), (1, 2**24 + 1)), np.zeros((1, 1), np.float32)),
     ValueError, r"argmax_forward: x has 16777217 classes; float32 holds class indices exactly only up to 2\*\*24"),
    (lambda m: m.index_to_onehot(np.array([0.0, 3.0]), np.zeros((2, 3))), ValueError,
     r"index_to_onehot: label holds 3.0, outside the class range \[0, 3\)"),
    (lambda m: m.index_to_onehot(np.array([-1, 0]), np.zeros((2, 3))), ValueError,
     r"index_to_onehot: label holds -1, outside the class range \[0, 3\)"),
    (lambda m: m.index_to_onehot(np.array([0.5, 0.0]), np.zeros((2, 3))), ValueError,
     r"index_to_onehot: label holds 0.5, which is not an integral class index"),
    (lambda m: m.index_to_onehot(np.array([np.nan, 0.0]), np.zeros((2, 3))), ValueError,
     r"index_to_onehot: label holds nan, which is not an integral class index"),
    (lambda m: m.index_to_onehot(np.array([np.inf, 0.0]), np.zeros((2, 3))), ValueError,
     r"index_to_onehot: label holds inf, which is not an integral class index"),
    (lambda m: m.index_to_onehot(np.zeros(2), ZEROS32), TypeError,
     r"index_to_onehot: label has dtype float64; expected float32 \(the dtype of y\) or one of \('int32', 'int64'\)"),
    (lambda m: m.index_to_onehot(np.zeros((2, 2)), np.zeros((2, 3))), ValueError,
     r"index_to_onehot: label has shape \(2, 2\), expected \(2,\) or \(2, 1\)"),
    (lambda m: m.index_to_onehot(np.zeros(2, np.int64), np.zeros((2, 3), np.int64)), TypeError,
     r"index_to_onehot: y has dtype int64"),
    (lambda m: m.index_to_onehot(np.zeros(2), np.zeros((2, 0))), ValueError,
     r"index_to_onehot: y has no classes"),
    (lambda m: m.index_to_onehot([0, 1], np.zeros((2, 3))), TypeError,
     r"index_to_onehot: label must be an array/tensor, got list"),
])
def test_bad_inputs(call, error, match):
    from mocha_triton.cpu_ref import index

    with pytest.raises(error, match=match):
        call(index)
