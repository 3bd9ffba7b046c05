"""Backends and blobs: selection, storage round trips, ops dispatch, precision setting."""

import os

import numpy as np
import pytest
import torch

from mocha_triton.backends import NumpyBackend, TritonBackend, default_backend
from mocha_triton.blob import Blob
from mocha_triton.contract import OPS


def test_default_backend_without_gpu_is_numpy():
    if torch.cuda.is_available():
        assert isinstance(default_backend(), TritonBackend)
    else:
        backend = default_backend()
        assert isinstance(backend, NumpyBackend) and backend.dtype == "float32"


@pytest.mark.parametrize("make", [lambda: NumpyBackend("float64"), lambda: NumpyBackend("float32"),
                                  lambda: TritonBackend()], ids=["numpy64", "numpy32", "triton"])
def test_blob_round_trip_reshape_fill_and_ops(make):
    backend = make()
    assert set(vars(backend.ops)) == set(OPS)
    a = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    blob = Blob.from_numpy(backend, a, "a")
    assert blob.shape == (2, 3, 4) and blob.dtype == backend.dtype
    np.testing.assert_array_equal(blob.to_numpy(), a.astype(backend.dtype))
    view = blob.reshape(2, -1)
    assert view.shape == (2, 12)
    view.fill(1.5)  # a view shares memory with its blob
    np.testing.assert_array_equal(blob.to_numpy(), np.full((2, 3, 4), 1.5))
    other = Blob.zeros(backend, (2, 3, 4))
    other.copy_from(blob)
    backend.ops.axpy(2.0, blob.data, other.data)
    np.testing.assert_array_equal(other.to_numpy(), np.full((2, 3, 4), 4.5))
    with pytest.raises(ValueError, match="cannot reshape"):
        blob.reshape(5, 5)
    with pytest.raises(ValueError, match="cannot copy"):
        blob.copy_from(np.zeros(7))


def test_each_triton_backend_runs_at_its_own_precision():
    from mocha_triton.kernels import get_precision

    fast = TritonBackend(precision="tf32x3")
    exact = TritonBackend(precision="ieee")
    assert (fast.precision, exact.precision) == ("tf32x3", "ieee")
    y = fast.empty((3,))
    fast.ops.fill(y, 1.0)
    assert get_precision() == "tf32x3"
    exact.ops.fill(y, 2.0)
    assert get_precision() == "ieee"
    with pytest.raises(ValueError, match="precision must be one of"):
        TritonBackend(precision="fp8")


def test_triton_backend_device_must_match_the_kernel_mode():
    other = "cuda" if not torch.cuda.is_available() else "cpu"
    with pytest.raises(ValueError, match="does not match this process's kernels"):
        TritonBackend(device=other)


def test_the_kernel_mode_is_the_one_the_kernels_were_imported_in(monkeypatch):
    """What counts is how the kernel modules were decorated, not what TRITON_INTERPRET says later: on a GPU
    machine, a CPU backend after a CUDA one must be refused (and must not flip the environment)."""
    from mocha_triton.kernels import _runtime

    here = "cpu" if _runtime.INTERPRET else "cuda"
    monkeypatch.setattr(_runtime, "INTERPRET", not _runtime.INTERPRET)  # as if imported in the other mode
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match=f"device '{here}' does not match this process's kernels"):
        TritonBackend(device=here)
    assert os.environ["TRITON_INTERPRET"] == "0"


def test_numpy_backend_rejects_other_dtypes():
    with pytest.raises(ValueError, match="dtype must be"):
        NumpyBackend("float16")


def test_random_offsets_are_reserved_in_order():
    backend = NumpyBackend(seed=5)
    assert backend.next_random_offset(10) == 0
    assert backend.next_random_offset(3) == 10
    backend.seed(5)
    assert backend.next_random_offset(1) == 0
