"""Test configuration: Triton's interpreter without a GPU, deterministic hypothesis, shared fixtures."""

import os

os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
try:
    import torch

    if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"  # must be set before any @triton.jit runs
except ImportError:  # pragma: no cover - torch is a hard dependency
    pass

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=25,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", deadline=None, max_examples=25, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
