"""Data transformers: preprocessing applied in place to every batch a data layer loads (Mocha's
``DataTransformers``).

A data layer takes ``transformers=[(top_name, transformer), ...]`` and, after cutting a batch of shape
``(batch_size, *sample_shape)`` for a top, applies that top's transformers in the listed order.

* :class:`SubMean` subtracts a mean shaped like one sample (from a NumPy array or an HDF5 file with a
  dataset named ``"mean"``).
* :class:`Scale` multiplies the batch by a scalar.

Transformers work on the **host batch**, a NumPy array in the backend's dtype, before the data layer
copies it to the backend: the work is tiny next to a network's forward pass, it needs no device
memory, and the asynchronous HDF5 layer does it in its background thread, off the training path.

A transformer is a small immutable configuration like a layer. ``transformer.setup(backend,
sample_shape, dtype)`` checks it against the data it will see and returns a
:class:`TransformerState` whose ``forward(batch)`` modifies ``batch`` in place. To add a transformer,
subclass both.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np


class TransformerState:
    """A transformer set up for one top: ``forward`` rewrites a host batch in place."""

    def forward(self, batch: np.ndarray) -> None:
        """Transform ``batch`` of shape ``(batch_size, *sample_shape)`` in place."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Release resources (nothing for the built-in transformers)."""


class DataTransformer:
    """Base configuration of a data transformer."""

    def setup(self, backend: Any, sample_shape: tuple[int, ...], dtype: str) -> TransformerState:
        """Check the configuration against one top's ``sample_shape`` and ``dtype``; raise ValueError."""
        raise NotImplementedError


# --- SubMean -----------------------------------------------------------------------------------


def _mean_matching(mean: np.ndarray, sample_shape: tuple[int, ...], where: str) -> np.ndarray:
    """``mean`` reshaped to ``sample_shape``.

    Accepted: exactly the sample shape, or the sample shape with one extra singleton axis in front
    (``(1, C, H, W)``: Mocha's mean file, whose Julia batch axis of size 1 is the first h5py axis) or
    at the end.
    """
    shape = tuple(mean.shape)
    if shape in (sample_shape, (1, *sample_shape), (*sample_shape, 1)):
        return mean.reshape(sample_shape)
    raise ValueError(f"SubMean: the mean {where} has shape {shape}, but one sample has shape {sample_shape} "
                     f"(a leading or trailing singleton axis is allowed)")


def _read_mean_file(path: str) -> np.ndarray:
    """The dataset ``"mean"`` of the HDF5 file ``path``, as a NumPy array."""
    import h5py

    if not os.path.isfile(path):
        raise ValueError(f"SubMean: mean file {path!r} does not exist")
    try:
        with h5py.File(path, "r") as f:
            if "mean" not in f or not isinstance(f["mean"], h5py.Dataset):
                raise ValueError(f"SubMean: mean file {path!r} has no dataset 'mean' (found {sorted(f.keys())})")
            return np.asarray(f["mean"][()])
    except OSError as err:
        raise ValueError(f"SubMean: cannot read the mean file {path!r} as HDF5 (truncated or corrupt?): {err}") \
            from err


@dataclass(frozen=True, eq=False)
class SubMean(DataTransformer):
    """Subtract a mean sample from every sample of the batch.

    Give exactly one of ``mean_file`` (path of an HDF5 file with a dataset ``"mean"``, read at setup) or
    ``mean_blob`` (a NumPy array, or a :class:`~mocha_triton.blob.Blob`, copied to the host at setup).
    The mean is shaped like one sample, optionally with a leading or trailing singleton axis.
    """

    mean_file: str = ""
    mean_blob: Any = None

    def __post_init__(self) -> None:
        if bool(self.mean_file) == (self.mean_blob is not None):
            raise ValueError("SubMean: give exactly one of mean_file or mean_blob")
        if self.mean_file and not isinstance(self.mean_file, (str, os.PathLike)):
            raise ValueError(f"SubMean: mean_file must be a path, got {self.mean_file!r}")

    def setup(self, backend: Any, sample_shape: tuple[int, ...], dtype: str) -> SubMeanState:
        if self.mean_blob is not None:
            raw = self.mean_blob.to_numpy() if hasattr(self.mean_blob, "to_numpy") else np.asarray(self.mean_blob)
            where = "blob"
        else:
            raw = _read_mean_file(os.fspath(self.mean_file))
            where = f"in {os.fspath(self.mean_file)!r}"
        if not (np.issubdtype(raw.dtype, np.floating) or np.issubdtype(raw.dtype, np.integer)):
            raise ValueError(f"SubMean: the mean {where} has dtype {raw.dtype}; expected a real number type")
        mean = _mean_matching(raw, tuple(sample_shape), where).astype(dtype, copy=True)
        if not np.all(np.isfinite(mean)):
            raise ValueError(f"SubMean: the mean {where} holds non-finite values")
        return SubMeanState(mean)


class SubMeanState(TransformerState):
    def __init__(self, mean: np.ndarray) -> None:
        self.mean = mean  # (*sample_shape), in the batch dtype

    def forward(self, batch: np.ndarray) -> None:
        batch -= self.mean  # broadcast over the batch axis


# --- Scale -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale(DataTransformer):
    """Multiply the batch by ``scale`` (e.g. 1/256 to map bytes into [0, 1))."""

    scale: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float, np.floating, np.integer)) \
                or not math.isfinite(self.scale):
            raise ValueError(f"Scale: scale must be a finite number, got {self.scale!r}")

    def setup(self, backend: Any, sample_shape: tuple[int, ...], dtype: str) -> ScaleState:
        return ScaleState(np.dtype(dtype).type(self.scale))


class ScaleState(TransformerState):
    def __init__(self, scale: np.floating) -> None:
        self.scale = scale

    def forward(self, batch: np.ndarray) -> None:
        batch *= self.scale


__all__ = ["DataTransformer", "Scale", "ScaleState", "SubMean", "SubMeanState", "TransformerState"]
