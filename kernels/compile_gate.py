"""Compile every kernel with every autotune config for sm_90 on the CPU, and check its resources.

Run as ``MOCHA_TRITON_COMPILE_ONLY=1 python -m mocha_triton.kernels.compile_gate`` (the test suite
does this in a subprocess, since the interpreter must be off for real compilation). It needs no GPU:
``triton.compile`` with ``GPUTarget("cuda", 90, 32)`` produces PTX and a cubin, and the cubin's
resource usage is read with the ``cuobjdump`` that ships in Triton's wheel.

Each kernel module lists its kernels in ``compile_cases()``; the gate fails when a module defines a
public ``@triton.jit`` kernel that no case covers, when a config does not compile, when ptxas spills
registers (local memory), or when shared memory exceeds the H100's 227 KiB per block.
Prints one JSON object per line and a summary; exits 1 on any failure.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

os.environ["MOCHA_TRITON_COMPILE_ONLY"] = "1"
os.environ.pop("TRITON_INTERPRET", None)
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

import mocha_triton.kernels as kernels_pkg  # noqa: E402
from mocha_triton.kernels._runtime import CompileCase, config_label  # noqa: E402

H100_MAX_SHARED_PER_BLOCK = 232448  # 227 KiB opt-in dynamic shared memory per block on sm_90
TARGET = GPUTarget("cuda", 90, 32)


def _cuobjdump() -> str:
    import triton.backends.nvidia as nv

    return os.path.join(os.path.dirname(nv.__file__), "bin", "cuobjdump")


def resource_usage(cubin: bytes) -> dict[str, int]:
    """REG/STACK/SHARED/LOCAL of the (single) function in a cubin."""
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
        path = f.name
    try:
        out = subprocess.run([_cuobjdump(), "--dump-resource-usage", path], capture_output=True, text=True,
                             check=True).stdout
    finally:
        os.unlink(path)
    line = next(ln for ln in out.splitlines() if "REG:" in ln)
    return {k.lower(): int(v) for k, v in re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", line)}


def _jit_fn(kernel: Any) -> Any:
    return kernel.fn if isinstance(kernel, triton.runtime.Autotuner) else kernel


def compile_one(fn: Any, signature: dict[str, str], constexprs: dict[str, Any], num_warps: int,
                num_stages: int) -> dict[str, Any]:
    full_sig = {name: signature.get(name, "constexpr") for name in fn.arg_names}
    missing = [n for n, t in full_sig.items() if t == "constexpr" and n not in constexprs]
    if missing:
        raise ValueError(f"no type or constexpr value for {missing}")
    try:
        src = ASTSource(fn, full_sig, constexprs=constexprs)
    except Exception:  # older Triton keys constexprs by argument index
        src = ASTSource(fn, full_sig, constexprs={(fn.arg_names.index(k),): v for k, v in constexprs.items()})
    compiled = triton.compile(src, target=TARGET, options={"num_warps": num_warps, "num_stages": num_stages})
    usage = resource_usage(compiled.asm["cubin"])
    usage["dynamic_shared"] = int(compiled.metadata.shared)
    usage["wgmma"] = "wgmma" in compiled.asm["ptx"]
    return usage


def expand(case: CompileCase) -> list[tuple[str, dict[str, Any], int, int]]:
    """(label, constexprs, warps, stages) for every config of the case's kernel."""
    if isinstance(case.kernel, triton.runtime.Autotuner):
        configs = getattr(case.kernel, "all_configs", case.kernel.configs)
        return [(config_label(c), {**case.constexprs, **c.kwargs}, c.num_warps, c.num_stages) for c in configs]
    return [(f"w{case.num_warps},s{case.num_stages}", dict(case.constexprs), case.num_warps, case.num_stages)]


def kernel_modules() -> list[Any]:
    # _-prefixed modules hold device helpers and host plumbing, compiled as part of the kernels using them
    names = [m.name for m in pkgutil.iter_modules(kernels_pkg.__path__)
             if m.name != "compile_gate" and not m.name.startswith("_")]
    return [importlib.import_module(f"mocha_triton.kernels.{n}") for n in sorted(names)]


def defined_kernels(module: Any) -> dict[str, Any]:
    """The public @triton.jit kernels (plain or autotuned) defined in a module, by name.

    Names starting with an underscore are device helpers (called from kernels, never launched) and
    are compiled as part of the kernels that call them.
    """
    found = {}
    for name, obj in vars(module).items():
        if name.startswith("_"):
            continue
        fn = _jit_fn(obj) if isinstance(obj, (triton.runtime.Autotuner, triton.runtime.JITFunction)) else None
        if fn is not None and fn.fn.__module__ == module.__name__:
            found[name] = obj
    return found


def run() -> int:
    failures = 0
    total = 0
    t0 = time.time()
    for module in kernel_modules():
        cases = module.compile_cases() if hasattr(module, "compile_cases") else []
        covered = {id(_jit_fn(c.kernel)) for c in cases}
        for name, obj in defined_kernels(module).items():
            if id(_jit_fn(obj)) not in covered:
                failures += 1
                print(json.dumps({"module": module.__name__, "kernel": name, "ok": False,
                                  "error": "not covered by compile_cases()"}))
        for case in cases:
            fn = _jit_fn(case.kernel)
            for label, constexprs, warps, stages in expand(case):
                total += 1
                row: dict[str, Any] = {"module": module.__name__, "kernel": fn.__name__,
                                       "case": case.label, "config": label}
                try:
                    usage = compile_one(fn, case.signature, constexprs, warps, stages)
                    row.update(usage)
                    problems = []
                    if usage["local"] > 0 or usage["stack"] > 0:
                        problems.append(f"register spill: {usage['local']} bytes local, {usage['stack']} stack")
                    if usage["dynamic_shared"] + usage["shared"] > H100_MAX_SHARED_PER_BLOCK:
                        problems.append(f"shared memory {usage['dynamic_shared'] + usage['shared']} bytes "
                                        f"> {H100_MAX_SHARED_PER_BLOCK}")
                    row["ok"] = not problems
                    if problems:
                        row["error"] = "; ".join(problems)
                except Exception as exc:  # report every failing config, not only the first
                    row.update(ok=False, error=f"{type(exc).__name__}: {str(exc)[:2000]}")
                failures += not row["ok"]
                print(json.dumps(row), flush=True)
    print(f"compile gate: {total} configs compiled for sm_90 in {time.time() - t0:.1f}s, "
          f"{failures} failures (triton {triton.__version__})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run())
