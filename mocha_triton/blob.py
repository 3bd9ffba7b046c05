"""Blob: a backend-owned N-d array with a name, like Caffe's and Mocha's blobs.

A blob wraps one raw array of its backend (a NumPy array or a torch tensor). It has no element
access: data moves by whole-blob copies (:meth:`to_numpy`, :meth:`copy_from`), and ops read and
write ``blob.data`` through the backend's op contract.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class Blob:
    """An array living on ``backend``; ``reshape`` returns a view sharing memory."""

    def __init__(self, backend: Any, data: Any, name: str = "") -> None:
        self.backend = backend
        self.data = data
        self.name = name

    @classmethod
    def empty(cls, backend: Any, shape: tuple[int, ...], name: str = "", dtype: str | None = None) -> Blob:
        return cls(backend, backend.empty(tuple(int(s) for s in shape), dtype), name)

    @classmethod
    def zeros(cls, backend: Any, shape: tuple[int, ...], name: str = "", dtype: str | None = None) -> Blob:
        return cls(backend, backend.zeros(tuple(int(s) for s in shape), dtype), name)

    @classmethod
    def from_numpy(cls, backend: Any, array: np.ndarray, name: str = "", dtype: str | None = None) -> Blob:
        return cls(backend, backend.from_numpy(array, dtype), name)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.data.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def dtype(self) -> str:
        return str(self.data.dtype).removeprefix("torch.")

    def to_numpy(self) -> np.ndarray:
        """A host copy of the contents."""
        return self.backend.to_numpy(self.data)

    def copy_from(self, source: np.ndarray | Blob) -> None:
        """Overwrite the contents from a host array (same number of elements) or another blob."""
        if isinstance(source, Blob):
            if source.shape != self.shape:
                raise ValueError(f"blob {self.name!r}: cannot copy from shape {source.shape} into {self.shape}")
            self.backend.ops.copy(source.data, self.data)
            return
        array = np.asarray(source)
        if array.size != self.size:
            raise ValueError(f"blob {self.name!r}: cannot copy {array.shape} ({array.size} elements) into "
                             f"{self.shape} ({self.size} elements)")
        self.backend.copy_into(self.data, array)

    def fill(self, value: float) -> None:
        if self.size:
            self.backend.ops.fill(self.data, value)

    def reshape(self, *shape: int) -> Blob:
        """A view with another shape and the same elements (no copy); one dimension may be -1."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        shape = tuple(int(s) for s in shape)
        if shape.count(-1) == 1:  # one inferred dimension, like NumPy
            known = math.prod(s for s in shape if s != -1)
            shape = tuple(self.size // known if s == -1 and known else s for s in shape)
        if math.prod(shape) != self.size:
            raise ValueError(f"blob {self.name!r}: cannot reshape {self.shape} to {shape}")
        return Blob(self.backend, self.data.reshape(shape), self.name)

    def __repr__(self) -> str:
        return f"Blob({self.name!r}, shape={self.shape}, dtype={self.dtype})"
