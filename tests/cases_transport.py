"""Shared cases of the transport family (Sinkhorn's iteration), and an independent float64 oracle.

:func:`make_case` draws N pairs of histograms and a non-negative cost; :func:`oracle_sinkhorn` is the
plain textbook loop, one sample at a time in torch float64, written independently of cpu_ref (it builds
the transport plan explicitly and sums ``T * M`` for the loss). :func:`degenerate_inputs` makes samples that
are not histograms (zero mass, NaN), whose non-finite results both backends must reproduce, and
:func:`assert_same_nonfinite` compares such results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from support import assert_close


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
# more than RESIDENT_MAX_TILE elements of K, so the Triton side takes its host-driven variant (a launch per
# half-iteration).
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


# Samples of degenerate_inputs, in order: what makes each one degenerate (sample 0 and the last are sound).
DEGENERATE_SAMPLES = ("sound", "pred all zero", "target all zero", "pred and target all zero", "NaN in pred",
                      "NaN in target", "sound")


def degenerate_inputs(case: Case, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """make_case with len(DEGENERATE_SAMPLES) samples, the middle ones broken as DEGENERATE_SAMPLES says.

    A zero-mass row divides by zero inside Sinkhorn (u = 0 then v = b / 0, or v = 0 then u = a / 0), and
    a NaN spreads through its sample's sums: each of these samples has a NaN transport cost, so the mean
    loss is NaN, while the sound samples keep their finite values.
    """
    pred, target, cost = make_case(Case(len(DEGENERATE_SAMPLES), case.p, case.q, case.lambda_, case.n_iter,
                                        case.seed, case.zero_bins), dtype)
    pred[1] = 0.0
    target[2] = 0.0
    pred[3], target[3] = 0.0, 0.0
    pred[4, case.p // 2] = np.nan
    target[5, case.q - 1] = np.nan
    return pred, target, cost


def assert_same_nonfinite(actual: np.ndarray, expected: np.ndarray, dtype: str, reduction: int = 1,
                          what: str = "") -> None:
    """NaN at the same positions, +inf and -inf at the same positions, the finite values close."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    for name, test in (("NaN", np.isnan), ("+inf", np.isposinf), ("-inf", np.isneginf)):
        differ = np.argwhere(test(actual) != test(expected))
        assert differ.size == 0, f"{what}: {name} positions differ at {differ[:5].tolist()}"
    finite = np.isfinite(expected)
    assert_close(actual[finite], expected[finite], dtype, reduction, what=what)
