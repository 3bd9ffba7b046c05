"""Shared test machinery: run a contract op on either backend, compare with tolerances.

* :data:`CPU` and :data:`TRITON` wrap the two backends behind one interface: ``module(family)``,
  ``to_backend(np_array)``, ``to_numpy(array)``.
* :func:`call_op` runs one contract op from NumPy inputs: it converts every array argument to the
  backend's type, **poisons** every ``out`` argument first (NaN for floats, a sentinel for ints) so
  an element the op forgets to write fails the test, and returns the ``out``/``inout`` arguments as
  NumPy arrays.
* :func:`assert_close` is the single tolerance rule: ``max|actual - expected| <= tol * sqrt(reduction)
  * max|expected|`` (normwise relative error), see its docstring.
* :func:`triton_config_contexts` yields one context per autotune config to cover on this machine:
  one in the interpreter, every config of every autotuned kernel of the module on a GPU when
  ``MOCHA_TRITON_ALL_CONFIGS=1``.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
from typing import Any

import numpy as np

from mocha_triton.contract import OPS

TOL = {"float64": 1e-12, "float32": 1e-5}


class NumpyImpl:
    name = "cpu_ref"
    dtypes = ("float32", "float64")

    def module(self, family: str) -> Any:
        return importlib.import_module(f"mocha_triton.cpu_ref.{family}")

    def to_backend(self, a: np.ndarray) -> np.ndarray:
        return np.array(a, copy=True)

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)


class TritonImpl:
    name = "triton"
    dtypes = ("float32",)

    @property
    def device(self) -> str:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def module(self, family: str) -> Any:
        return importlib.import_module(f"mocha_triton.kernels.{family}")

    def to_backend(self, a: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(a).copy()).to(self.device)

    def to_numpy(self, a: Any) -> np.ndarray:
        return a.detach().cpu().numpy()


CPU = NumpyImpl()
TRITON = TritonImpl()


def poison(a: np.ndarray) -> np.ndarray:
    out = np.empty_like(a)
    if np.issubdtype(a.dtype, np.floating):
        out.fill(np.nan)
    else:
        out.fill(-123456)
    return out


def call_op(impl: Any, op: str, **kwargs: Any) -> dict[str, np.ndarray]:
    """Run contract op ``op`` on ``impl``; array kwargs are NumPy, results come back as NumPy.

    ``out`` arguments are poisoned before the call; pass them as arrays of the right shape and dtype
    (their contents are ignored).
    """
    spec = OPS[op]
    args = {}
    for arg in spec.args:
        if arg.name not in kwargs:
            continue
        value = kwargs[arg.name]
        if isinstance(value, np.ndarray):
            value = impl.to_backend(poison(value) if arg.role == "out" else value)
        args[arg.name] = value
    getattr(impl.module(spec.family), op)(**args)
    return {name: impl.to_numpy(args[name]) for name in spec.outputs}


def assert_close(actual: np.ndarray, expected: np.ndarray, dtype: str, reduction: int = 1, what: str = "") -> None:
    """Normwise relative check: ``max|a - e| <= TOL[dtype] * sqrt(reduction) * max(max|e|, tiny)``.

    ``reduction`` is the length of the longest sum behind one output element (the tolerance grows
    with its square root, the typical growth of rounding error). TOL is 1e-12 for float64 and 1e-5
    for float32. NaN or inf anywhere in ``actual`` (e.g. an unwritten poisoned element) fails.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values at {np.argwhere(~np.isfinite(actual))[:5]}"
    if actual.size == 0:
        return
    scale = max(float(np.max(np.abs(expected))), np.finfo(np.float64).tiny)
    err = float(np.max(np.abs(actual - expected))) / scale
    tol = TOL[dtype] * math.sqrt(max(reduction, 1))
    assert err <= tol, f"{what}: relative error {err:.3e} > {tol:.3e} ({dtype}, reduction {reduction})"


def triton_config_contexts(module: Any) -> list[tuple[str, Any]]:
    """(label, context manager) pairs covering the autotune configs to test on this machine."""
    from mocha_triton.kernels import _runtime

    if _runtime.INTERPRET or os.environ.get("MOCHA_TRITON_ALL_CONFIGS") != "1":
        return [("autotuned", contextlib.nullcontext())]
    contexts = []
    for tuned in _runtime.AUTOTUNED:
        if tuned.fn.fn.__module__ != module.__name__:
            continue
        for config in tuned.all_configs:
            label = f"{tuned.fn.__name__}[{_runtime.config_label(config)}]"
            contexts.append((label, _runtime.only_config(tuned, config)))
    return contexts or [("plain", contextlib.nullcontext())]
