"""Host-side plumbing shared by the kernel modules: precision, autotuning, argument checks.

Nothing here computes on tensors. The pieces:

* :func:`set_precision` / :func:`precision` — the ``tl.dot`` input precision every dot kernel is
  launched with ("ieee" by default: exact fp32; "tf32" and "tf32x3" for speed).
* :func:`autotune` — ``triton.autotune`` that keeps the full config list for the sm_90 compile gate
  and for GPU tests over every config, and collapses to one config in the interpreter (which cannot
  benchmark).
* :func:`only_config` — run with one chosen config of an autotuned kernel (tests use it to cover
  every config on a GPU).
* :class:`CompileCase` — how the compile gate compiles a kernel: argument types and constexprs.
* :data:`STREAM_LAUNCH` / :func:`stream_grid` / :func:`stream_compile_case` — the one launch shape of
  the streaming (flat elementwise) kernels, shared by their launchers and their compile cases.
* :func:`require_tensor` / :func:`same_device` — storage checks on the torch side.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import triton

from mocha_triton.contract import PRECISIONS

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"

_precision = "ieee"


def set_precision(value: str) -> None:
    """Set the ``tl.dot`` input precision for every later launch: "ieee", "tf32" or "tf32x3"."""
    global _precision
    if value not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {value!r}")
    _precision = value


def get_precision() -> str:
    return _precision


@contextlib.contextmanager
def precision(value: str) -> Iterator[None]:
    """Temporarily use another ``tl.dot`` input precision."""
    old = _precision
    set_precision(value)
    try:
        yield
    finally:
        set_precision(old)


def _quick_bench(fn: Any, quantiles: Any = None) -> Any:
    """Autotuning timer: Triton's do_bench with shorter warm-up and repetition (ms) than its default,
    since every new shape benchmarks every config; medians of ~20 runs separate configs well enough."""
    return triton.testing.do_bench(fn, warmup=5, rep=20, quantiles=quantiles)


AUTOTUNED: list[Any] = []  # every Autotuner made by autotune(), in definition order


def autotune(configs: list[triton.Config], key: list[str], interpreter_config: triton.Config | None = None,
             **kwargs: Any):
    """``triton.autotune`` that remembers all configs and runs a single one in the interpreter.

    ``interpreter_config`` (default: the first config) is the one used under ``TRITON_INTERPRET=1``;
    pick large blocks there, since the interpreter's cost grows with the number of programs.
    The full list stays in ``kernel.all_configs`` for the compile gate and for GPU tests.
    """
    chosen = [interpreter_config or configs[0]] if INTERPRET else configs
    if not INTERPRET:
        kwargs.setdefault("do_bench", _quick_bench)

    def decorate(fn):
        tuned = triton.autotune(configs=chosen, key=key, **kwargs)(fn)
        tuned.all_configs = list(configs)
        AUTOTUNED.append(tuned)
        return tuned

    return decorate


@contextlib.contextmanager
def only_config(tuned: Any, config: triton.Config) -> Iterator[None]:
    """Run an autotuned kernel with exactly ``config`` (no benchmarking) inside the block."""
    old_configs, old_cache = tuned.configs, tuned.cache
    tuned.configs, tuned.cache = [config], {}
    try:
        yield
    finally:
        tuned.configs, tuned.cache = old_configs, old_cache


def config_label(config: triton.Config) -> str:
    blocks = ",".join(f"{k}={v}" for k, v in config.kwargs.items())
    return f"{blocks},w{config.num_warps},s{config.num_stages}"


@dataclass
class CompileCase:
    """A kernel and the argument types the compile gate compiles it with for sm_90.

    ``signature`` maps every runtime argument to a Triton type ("*fp32", "*i32", "i32", "i64",
    "fp32"); ``constexprs`` gives the constexpr arguments that are not autotuned. For an autotuned
    kernel the gate adds each config's kwargs, warps and stages; for a plain kernel it uses
    ``num_warps``/``num_stages`` (which must be what the launcher passes).
    """

    kernel: Any
    signature: dict[str, str]
    constexprs: dict[str, Any] = field(default_factory=dict)
    num_warps: int = 4
    num_stages: int = 3
    label: str = ""


# Streaming kernels walk a flat contiguous view: program p handles elements [p * BLOCK, (p + 1) * BLOCK).
# On a GPU 1024 elements at 4 warps is 8 per thread (two 16-byte vector loads per operand), enough to
# stream at memory bandwidth; the interpreter's cost grows with the number of programs, so it gets
# bigger blocks. There is no loop to pipeline, hence one stage.
STREAM_GPU_BLOCK = 1024
STREAM_BLOCK = 4096 if INTERPRET else STREAM_GPU_BLOCK  # elements per program at launch
STREAM_NUM_WARPS = 4
STREAM_NUM_STAGES = 1
STREAM_LAUNCH = {"BLOCK": STREAM_BLOCK, "num_warps": STREAM_NUM_WARPS, "num_stages": STREAM_NUM_STAGES}


def stream_grid(numel: int, block: int = STREAM_BLOCK) -> tuple[int]:
    """1-D grid of a streaming kernel: ``cdiv(numel, block)`` programs."""
    return (triton.cdiv(numel, block),)


def stream_compile_case(kernel: Any, signature: dict[str, str], constexprs: dict[str, Any] | None = None,
                        label: str = "") -> CompileCase:
    """The compile case of a streaming kernel launched with :data:`STREAM_LAUNCH`: the GPU block size,
    ``STREAM_NUM_WARPS`` and ``STREAM_NUM_STAGES``, plus any other constexprs."""
    return CompileCase(kernel, signature, {**(constexprs or {}), "BLOCK": STREAM_GPU_BLOCK}, STREAM_NUM_WARPS,
                       STREAM_NUM_STAGES, label=label)


def require_tensor(op: str, name: str, t: Any, device: Any = None) -> None:
    """``t`` is a torch tensor, contiguous, and (if given) on ``device``."""
    import torch

    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor on the Triton backend, got {type(t).__name__}")
    if not t.is_contiguous():
        raise ValueError(f"{op}: {name} must be contiguous")
    if device is not None and t.device != device:
        raise ValueError(f"{op}: {name} is on {t.device}, expected {device}")


def same_device(op: str, named: dict[str, Any]) -> Any:
    """Check the tensors (None skipped) are contiguous torch tensors on one device; return it."""
    device = None
    for name, t in named.items():
        if t is None:
            continue
        require_tensor(op, name, t, device)
        device = t.device
    return device
