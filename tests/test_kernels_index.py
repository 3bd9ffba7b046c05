"""kernels.index equals cpu_ref.index (float32), exactly: argmax_forward and index_to_onehot.

* argmax on the shapes and value kinds of cases_index (ties, NaNs, infinities; C past one and two
  128-class steps of the walk), plus ties and NaNs placed across the boundary of two steps;
* index_to_onehot with float32, int32 and int64 labels, with and without the class axis, class counts
  past one 128-class tile;
* the Triton side rejects float64, bad shapes and bad labels with the shared messages, and
  non-contiguous tensors.
"""

import numpy as np
import pytest

from cases_index import ARGMAX_SHAPES, KINDS, argmax_input, argmax_oracle, onehot_labels, onehot_oracle
from mocha_triton.kernels import index as kernels_index
from support import CPU, TRITON, call_op, triton_config_contexts

CONTEXTS = triton_config_contexts(kernels_index)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", ARGMAX_SHAPES, ids=str)
def test_argmax_matches_reference(shape, kind):
    x = argmax_input(shape, kind, "float32", seed=len(shape) * 100 + sum(shape))
    y = np.empty((shape[0], 1, *shape[2:]), np.float32)
    want = call_op(CPU, "argmax_forward", x=x, y=y)["y"]
    for label, context in CONTEXTS:
        with context:
            got = call_op(TRITON, "argmax_forward", x=x, y=y)["y"]
        np.testing.assert_array_equal(got, want, err_msg=label)
        np.testing.assert_array_equal(got, argmax_oracle(x), err_msg=label)


def test_argmax_across_the_steps_of_the_class_walk():
    """Column by column: a tie between steps keeps the first; a NaN in a later step beats a larger number
    in an earlier one; a NaN in an earlier step beats everything after; -inf everywhere gives 0."""
    c = 300  # three 128-class steps
    x = np.zeros((1, c, 4), np.float32)
    x[0, 5, 0] = x[0, 200, 0] = 9.0
    x[0, 3, 1], x[0, 140, 1], x[0, 290, 1] = 50.0, np.nan, np.nan
    x[0, 100, 2], x[0, 250, 2] = np.nan, np.inf
    x[0, :, 3] = -np.inf
    for label, context in CONTEXTS:
        with context:
            got = call_op(TRITON, "argmax_forward", x=x, y=np.empty((1, 1, 4), np.float32))["y"]
        np.testing.assert_array_equal(got[0, 0], [5, 140, 100, 0], err_msg=label)


@pytest.mark.parametrize("label_dtype", ["float32", "int32", "int64"])
@pytest.mark.parametrize("keep_axis", [True, False])
@pytest.mark.parametrize("shape", [(3, 5), (1, 1), (2, 4, 3), (2, 3, 2, 5), (1, 200, 2), (0, 3), (2, 3, 0)], ids=str)
def test_index_to_onehot_matches_reference(shape, keep_axis, label_dtype):
    label = onehot_labels(shape, label_dtype, seed=sum(shape), keep_axis=keep_axis)
    y = np.empty(shape, np.float32)
    want = call_op(CPU, "index_to_onehot", label=label, y=y)["y"]
    for name, context in CONTEXTS:
        with context:
            got = call_op(TRITON, "index_to_onehot", label=label, y=y)["y"]
        np.testing.assert_array_equal(got, want, err_msg=name)
        np.testing.assert_array_equal(got, onehot_oracle(label, shape[1]), err_msg=name)


def test_rejects_float64_bad_shapes_and_bad_labels():
    t = TRITON.to_backend
    with pytest.raises(TypeError, match=r"argmax_forward: x has dtype float64; expected one of \('float32',\)"):
        kernels_index.argmax_forward(t(np.zeros((2, 3))), t(np.zeros((2, 1))))
    with pytest.raises(ValueError, match=r"argmax_forward: y has shape \(2, 3\), expected \(2, 1\)"):
        kernels_index.argmax_forward(t(np.zeros((2, 3), np.float32)), t(np.zeros((2, 3), np.float32)))
    with pytest.raises(TypeError, match=r"index_to_onehot: y has dtype float64; expected one of \('float32',\)"):
        kernels_index.index_to_onehot(t(np.zeros(2, np.int64)), t(np.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"index_to_onehot: label holds 3.0, outside the class range \[0, 3\)"):
        kernels_index.index_to_onehot(t(np.array([0.0, 3.0], np.float32)), t(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match=r"index_to_onehot: label holds 1.5, which is not an integral class index"):
        kernels_index.index_to_onehot(t(np.array([1.5, 0.0], np.float32)), t(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match="argmax_forward: x must be contiguous"):
        kernels_index.argmax_forward(t(np.zeros((3, 2), np.float32)).t(), t(np.zeros((2, 1), np.float32)))
    with pytest.raises(TypeError, match="index_to_onehot: label must be a torch.Tensor"):
        kernels_index.index_to_onehot(np.zeros(2, np.float32), t(np.zeros((2, 3), np.float32)))
