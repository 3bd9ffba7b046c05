"""Shared configurations of the index family (argmax_forward, index_to_onehot) for the cpu_ref and the
kernels tests, and their oracles in torch float64.

* :data:`ARGMAX_SHAPES` — ``(N, C, *S)``: no spatial axes, batch 1, odd sizes, one class, C past one and
  two 128-class steps of the Triton walk, empty positions.
* :func:`argmax_input` — values of a kind: ``"normal"`` (distinct), ``"ties"`` (small integers: many
  equal maxima), ``"nan"`` (ties plus NaNs), ``"inf"`` (ties plus infinities, some rows all -inf).
* :func:`argmax_oracle` — the index of the first maximum (torch's argmax, which documents first-index
  ties), or of the first NaN where a row holds one.
* :func:`onehot_oracle` — ``torch.nn.functional.one_hot`` moved to axis 1.
"""

from __future__ import annotations

import numpy as np
import torch

ARGMAX_SHAPES = [(3, 5), (1, 1), (2, 7, 3), (1, 17, 2, 3), (4, 130, 2), (2, 300), (2, 3, 2, 2, 2), (0, 4), (2, 3, 0)]
KINDS = ("normal", "ties", "nan", "inf")


def argmax_input(shape: tuple[int, ...], kind: str, dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.standard_normal(shape).astype(dtype)
    x = rng.integers(-2, 3, shape).astype(dtype)
    if x.size and kind == "nan":
        x[rng.random(shape) < 0.15] = np.nan
    if x.size and kind == "inf":
        x[rng.random(shape) < 0.2] = np.inf
        x[rng.random(shape) < 0.3] = -np.inf
        x[0] = -np.inf  # every class of the first sample: the answer is index 0
    return x


def argmax_oracle(x: np.ndarray) -> np.ndarray:
    """(N, 1, *S) float64: first index of the maximum along axis 1, or of the first NaN."""
    t = torch.from_numpy(x).double()
    nan = torch.isnan(t)
    if t.numel() == 0:
        return np.zeros((t.shape[0], 1, *t.shape[2:]))
    first_max = torch.argmax(torch.where(nan, torch.tensor(-np.inf, dtype=torch.float64), t), dim=1, keepdim=True)
    first_nan = torch.argmax(nan.to(torch.int64), dim=1, keepdim=True)  # 0 when no NaN; used only where one is
    has_nan = nan.any(dim=1, keepdim=True)
    return torch.where(has_nan, first_nan, first_max).double().numpy()


def onehot_oracle(label: np.ndarray, c: int) -> np.ndarray:
    """(N, C, *S) float64 one-hot encoding of the (N, *S) or (N, 1, *S) class indices."""
    labels = torch.from_numpy(np.asarray(label, dtype=np.float64)).long()
    if labels.ndim >= 2 and labels.shape[1] == 1:
        labels = labels.squeeze(1)
    n, spatial = labels.shape[0], tuple(labels.shape[1:])
    onehot = torch.nn.functional.one_hot(labels.reshape(n, int(np.prod(spatial))), c).double()  # (N, S, C)
    return onehot.permute(0, 2, 1).reshape(n, c, *spatial).numpy()


def onehot_labels(shape: tuple[int, ...], dtype: str, seed: int, keep_axis: bool) -> np.ndarray:
    """Random class indices for a one-hot output of ``shape`` (N, C, *S): (N, 1, *S) or (N, *S)."""
    rng = np.random.default_rng(seed)
    n, c, *spatial = shape
    labels = rng.integers(0, c, (n, 1, *spatial) if keep_axis else (n, *spatial))
    return labels.astype(dtype)
