"""Triton kernels for every op of the contract (installed as ``mocha_triton.kernels``).

One module per op family, mirroring :mod:`mocha_triton.cpu_ref` name for name. torch tensors are
used only as storage: every computation is a ``@triton.jit`` kernel of ours.

Importing this package prepares Triton's environment before any kernel is decorated:

* ``TRITON_DEFAULT_FP_FUSION=1`` so Triton 3.6 and 3.9+ contract multiply-adds the same way;
* ``TRITON_INTERPRET=1`` when no CUDA device is present, so the kernels run in Triton's interpreter
  on CPU tensors (unless ``MOCHA_TRITON_COMPILE_ONLY=1``, used by the sm_90 compile gate, which
  compiles the kernels without running them).
"""

import os

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
if "TRITON_INTERPRET" not in os.environ and os.environ.get("MOCHA_TRITON_COMPILE_ONLY") != "1":
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"

from mocha_triton.kernels._runtime import get_precision, precision, set_precision  # noqa: E402

__all__ = ["get_precision", "precision", "set_precision"]
