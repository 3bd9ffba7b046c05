"""Backends: where blobs live and which implementation of the op contract computes on them.

* :class:`NumpyBackend` — NumPy arrays on the host, ops from :mod:`mocha_triton.cpu_ref`
  (float32 or float64).
* :class:`TritonBackend` — torch tensors used as storage on CUDA (or, without a GPU, on the CPU with
  Triton's interpreter), ops from :mod:`mocha_triton.kernels` (float32). Its ``precision`` ("ieee",
  "tf32", "tf32x3") is passed to every ``tl.dot``.
* :func:`default_backend` — Triton on a GPU, else NumPy.

Layers are written once against this interface: ``backend.ops.<op>(...)`` runs a contract op on raw
arrays, ``backend.empty``/``from_numpy``/``to_numpy`` move data, ``backend.registry`` shares
parameters between layers and nets, ``backend.rng`` draws initial weights.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np

from mocha_triton.contract import FAMILIES, OPS, PRECISIONS


class ParameterRegistry:
    """Parameters by key (a layer's ``param_key``, or its name): the mechanism behind sharing.

    A layer whose key is already registered shares those parameter blobs instead of making new ones.
    """

    def __init__(self) -> None:
        self._params: dict[str, list[Any]] = {}

    def get(self, key: str) -> list[Any] | None:
        return self._params.get(key)

    def put(self, key: str, params: list[Any]) -> None:
        self._params[key] = params

    def reset(self) -> None:
        self._params.clear()

    def __contains__(self, key: str) -> bool:
        return key in self._params


class Backend:
    """The interface layers compute through. Subclasses set ``name``, ``dtype`` and the array hooks."""

    name = "abstract"
    package = ""

    def __init__(self, dtype: str = "float32", seed: int = 0) -> None:
        self.dtype = dtype
        self.ops = SimpleNamespace(**{
            name: getattr(importlib.import_module(f"mocha_triton.{self.package}.{spec.family}"), name)
            for family in FAMILIES for name, spec in OPS.items() if spec.family == family
        })
        self.registry = ParameterRegistry()
        self.seed(seed)

    def seed(self, seed: int) -> None:
        """Reset the host RNG (initializers) and the device RNG stream (dropout, random fills)."""
        self.rng = np.random.default_rng(seed)
        self.random_seed = int(seed) % (2**63)
        self.random_offset = 0

    def next_random_offset(self, count: int) -> int:
        """Reserve ``count`` counters of the Philox stream; returns the first (reproducible draws)."""
        offset = self.random_offset
        self.random_offset += int(count)
        return offset

    # --- array hooks (raw arrays of this backend) ----------------------------------------------
    def empty(self, shape: tuple[int, ...], dtype: str | None = None) -> Any:
        raise NotImplementedError

    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> Any:
        raise NotImplementedError

    def to_numpy(self, data: Any) -> np.ndarray:
        raise NotImplementedError

    def copy_into(self, data: Any, array: np.ndarray) -> None:
        """Write a host array into a raw array of the same shape."""
        raise NotImplementedError

    def zeros(self, shape: tuple[int, ...], dtype: str | None = None) -> Any:
        """A zero-filled raw array: the fill op for the backend's float dtype, a host copy for others (ints)."""
        data = self.empty(shape, dtype)
        if not math.prod(shape):
            return data
        if (dtype or self.dtype) == self.dtype:
            self.ops.fill(data, 0.0)
        else:
            self.copy_into(data, np.zeros(shape, dtype))
        return data

    def shutdown(self) -> None:
        """Drop every registered parameter (blobs are freed when no longer referenced)."""
        self.registry.reset()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dtype={self.dtype!r})"


class NumpyBackend(Backend):
    """The NumPy reference backend: host arrays, float32 or float64."""

    name = "numpy"
    package = "cpu_ref"

    def __init__(self, dtype: str = "float32", seed: int = 0) -> None:
        if dtype not in ("float32", "float64"):
            raise ValueError(f"NumpyBackend: dtype must be 'float32' or 'float64', got {dtype!r}")
        super().__init__(dtype, seed)

    def empty(self, shape: tuple[int, ...], dtype: str | None = None) -> np.ndarray:
        return np.empty(shape, dtype or self.dtype)

    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> np.ndarray:
        return np.array(array, dtype=dtype or self.dtype, copy=True)

    def to_numpy(self, data: np.ndarray) -> np.ndarray:
        return np.array(data, copy=True)

    def copy_into(self, data: np.ndarray, array: np.ndarray) -> None:
        np.copyto(data, np.asarray(array).reshape(data.shape), casting="unsafe")


class TritonBackend(Backend):
    """Triton kernels on torch storage: CUDA when a GPU is present, else CPU tensors in the interpreter.

    ``precision`` is the ``tl.dot`` input precision for every kernel: "tf32" by default on a GPU (like
    cuDNN's default for convolutions), "ieee" (exact fp32) in the interpreter and for parity tests.
    """

    name = "triton"
    package = "kernels"

    def __init__(self, device: str | None = None, precision: str | None = None, seed: int = 0) -> None:
        import torch

        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu" and "mocha_triton.kernels" not in sys.modules:
            os.environ["TRITON_INTERPRET"] = "1"  # before any kernel module is imported
        import mocha_triton.kernels as kernels
        from mocha_triton.kernels import _runtime

        self.torch = torch
        self.device = torch.device(device)
        # Triton decides at decoration time whether kernels are compiled or interpreted: one mode per
        # process, the one the kernel modules were imported in (not what the environment says now).
        interpreting = _runtime.INTERPRET
        if interpreting != (self.device.type == "cpu"):
            mode = "Triton's interpreter (CPU tensors)" if interpreting else "compiled for the GPU"
            raise ValueError(f"TritonBackend: device {device!r} does not match this process's kernels, which "
                             f"run {mode}; use one TritonBackend device per process")
        precision = precision or ("tf32" if self.device.type == "cuda" else "ieee")
        if precision not in PRECISIONS:
            raise ValueError(f"TritonBackend: precision must be one of {PRECISIONS}, got {precision!r}")
        self.precision = precision
        super().__init__("float32", seed)
        # Each backend runs its ops at its own tl.dot precision, whatever other backends set.
        for name, op in vars(self.ops).items():
            setattr(self.ops, name, self._with_precision(op, kernels.set_precision))

    def _with_precision(self, op: Any, set_precision: Any) -> Any:
        precision = self.precision

        def run(*args: Any, **kwargs: Any) -> Any:
            set_precision(precision)
            return op(*args, **kwargs)

        run.__name__, run.__doc__, run.__wrapped__ = op.__name__, op.__doc__, op
        return run

    def _torch_dtype(self, dtype: str | None) -> Any:
        return getattr(self.torch, dtype or self.dtype)

    def empty(self, shape: tuple[int, ...], dtype: str | None = None) -> Any:
        return self.torch.empty(shape, dtype=self._torch_dtype(dtype), device=self.device)

    def from_numpy(self, array: np.ndarray, dtype: str | None = None) -> Any:
        host = np.ascontiguousarray(array, dtype=dtype or self.dtype)
        return self.torch.from_numpy(host.copy()).to(self.device)

    def to_numpy(self, data: Any) -> np.ndarray:
        return data.detach().cpu().numpy().copy()

    def copy_into(self, data: Any, array: np.ndarray) -> None:
        host = np.ascontiguousarray(np.asarray(array).reshape(tuple(data.shape)), dtype=str(data.dtype)[6:])
        data.copy_(self.torch.from_numpy(host))

    def __repr__(self) -> str:
        return f"TritonBackend(device={str(self.device)!r}, precision={self.precision!r})"


def default_backend(seed: int = 0) -> Backend:
    """TritonBackend on a CUDA GPU, else NumpyBackend (float32)."""
    try:
        import torch

        if torch.cuda.is_available():
            return TritonBackend("cuda", seed=seed)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return NumpyBackend("float32", seed=seed)
