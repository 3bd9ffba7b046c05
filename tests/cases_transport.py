"""Shared cases of the transport family (Sinkhorn's iteration), and an independent float64 oracle.

:func:`make_case` draws N pairs of histograms and a non-negative cost; :func:`oracle_sinkhorn` is the
plain textbook loop, one sample at a time in torch float64, written independently of cpu_ref (it builds
the transport plan explicitly and sums ``T * M`` for the loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Case:
    n: int
    p: int
    q: int
    lambda_: float
    n_iter: int
    seed: int
    zero_bins: bool = False  # put empty bins into the histograms (a label histogram usually has some)


# Odd sizes, batch 1, a single bin on either side, empty bins, lambda small and large. The last two pad to
# more than RESIDENT_MAX_TILE elements of K, so the Triton side takes its streamed variant (K in tiles).
CASES = [
    Case(3, 5, 7, 2.0, 50, 0),
    Case(1, 4, 4, 0.5, 20, 1),
    Case(4, 6, 3, 7.0, 30, 2, zero_bins=True),
    Case(2, 1, 5, 1.0, 5, 3),
    Case(2, 5, 1, 1.0, 5, 4),
    Case(5, 17, 33, 3.0, 15, 5, zero_bins=True),
    Case(2, 70, 90, 2.0, 6, 6),
    Case(1, 130, 20, 4.0, 4, 7, zero_bins=True),
]


def case_id(case: Case) -> str:
    return f"n{case.n}-{case.p}x{case.q}-lam{case.lambda_}-it{case.n_iter}" + ("-zeros" if case.zero_bins else "")


def histograms(rng: np.random.Generator, n: int, d: int, zero_bins: bool) -> np.ndarray:
    """(n, d) rows of positive weights summing to 1; with ``zero_bins`` about a third of the bins are empty
    (never a whole row)."""
    h = rng.uniform(0.05, 1.0, (n, d))
    if zero_bins and d > 1:
        h[rng.random((n, d)) < 0.35] = 0.0
        h[:, 0] = np.maximum(h[:, 0], 0.5)
    return h / h.sum(axis=1, keepdims=True)


def make_case(case: Case, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pred (N, P), target (N, Q), cost (P, Q)) in ``dtype``: the cost is a distance between bin positions
    on a line, scaled to [0, 1], plus a little noise so that it has no symmetry to hide mistakes."""
    rng = np.random.default_rng(case.seed)
    pred = histograms(rng, case.n, case.p, case.zero_bins)
    target = histograms(rng, case.n, case.q, case.zero_bins)
    x, y = np.sort(rng.random(case.p)), np.sort(rng.random(case.q))
    cost = np.abs(x[:, None] - y[None, :]) + 0.1 * rng.random((case.p, case.q))
    return pred.astype(dtype), target.astype(dtype), cost.astype(dtype)


def outputs_like(case: Case, dtype: str) -> dict[str, np.ndarray]:
    """Arrays of the shapes of sinkhorn_forward's outputs (contents ignored: call_op poisons them)."""
    return {"u": np.empty((case.n, case.p), dtype), "v": np.empty((case.n, case.q), dtype),
            "sample_loss": np.empty(case.n, dtype), "loss": np.empty(1, dtype)}


def oracle_sinkhorn(pred: np.ndarray, target: np.ndarray, cost: np.ndarray, lambda_: float,
                    n_iter: int) -> dict[str, np.ndarray]:
    """u, v, per-sample transport costs and their mean, in float64, one sample at a time."""
    cost64 = torch.from_numpy(np.asarray(cost, np.float64))
    gibbs = torch.exp(-lambda_ * cost64)
    us, vs, costs = [], [], []
    for a, b in zip(torch.from_numpy(np.asarray(pred, np.float64)), torch.from_numpy(np.asarray(target, np.float64))):
        u = torch.full_like(a, 1.0 / a.numel())
        for _ in range(n_iter):
            v = b / (gibbs.T @ u)
            u = a / (gibbs @ v)
        v = b / (gibbs.T @ u)
        plan = u[:, None] * gibbs * v[None, :]
        us.append(u)
        vs.append(v)
        costs.append((plan * cost64).sum())
    sample_loss = torch.stack(costs)
    return {"u": torch.stack(us).numpy(), "v": torch.stack(vs).numpy(), "sample_loss": sample_loss.numpy(),
            "loss": sample_loss.mean().reshape(1).numpy()}
