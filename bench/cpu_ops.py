"""NumPy reference (cpu_ref) ops vs the same ops in torch CPU, on LeNet and CIFAR-10-quick layer shapes.

    python bench/cpu_ops.py [--batch 64 100] [--groups conv pool ip loss solver] [--out bench/results/cpu_ops.md]

Prints a table of median times and the ratio torch_time / cpu_ref_time (> 1: the reference is faster).
Both sides use float32 and the same threads. The OpenBLAS variables (OPENBLAS_CORETYPE,
OPENBLAS_L2_SIZE) slow NumPy on some machines here; the output says whether they were set. For a fair
comparison run it as ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/cpu_ops.py``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from shapes import CIFAR_QUICK_CONV, CIFAR_QUICK_IP, CIFAR_QUICK_POOL, LENET_CONV, LENET_IP, LENET_POOL  # noqa: E402

from mocha_triton.checks.conv import conv2d_output_size  # noqa: E402
from mocha_triton.checks.pooling import pool2d_output_size  # noqa: E402
from mocha_triton.cpu_ref import conv, inner_product, loss, pooling, solvers  # noqa: E402


def median_time(fn: Callable[[], object], min_time: float = 0.3, min_runs: int = 5) -> float:
    """Median wall time of fn() in seconds over at least min_runs runs and min_time seconds."""
    fn()  # warm-up
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    return statistics.median(times)


def conv_rows(batch: int, rng: np.random.Generator) -> list[tuple[str, Callable, Callable]]:
    rows = []
    for name, c, h, w, f, k, s, p, g in LENET_CONV + CIFAR_QUICK_CONV:
        oh, ow = conv2d_output_size(h, w, k[0], k[1], (s, s), (p, p))
        x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((f, c // g, *k)).astype(np.float32)
        b = rng.standard_normal(f).astype(np.float32)
        dy = rng.standard_normal((batch, f, oh, ow)).astype(np.float32)
        y, dx, dw, db = np.empty_like(dy), np.empty_like(x), np.empty_like(wt), np.empty_like(b)
        tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, wt, b, dy))
        kw = dict(stride=(s, s), pad=(p, p), groups=g)

        def ours_fwd(x=x, wt=wt, b=b, y=y, kw=kw):
            conv.conv2d_forward(x, wt, b, y, **kw)

        def ours_bwd(x=x, wt=wt, dy=dy, dx=dx, dw=dw, db=db, kw=kw):
            conv.conv2d_backward_data(dy, wt, dx, **kw)
            conv.conv2d_backward_weight(x, dy, dw, **kw)
            conv.conv2d_backward_bias(dy, db)

        def torch_fwd(tx=tx, tw=tw, tb=tb, s=s, p=p, g=g):
            F.conv2d(tx, tw, tb, s, p, 1, g)

        def torch_bwd(tx=tx, tw=tw, tdy=tdy, s=s, p=p, g=g):
            torch.ops.aten.convolution_backward(tdy, tx, tw, [tw.shape[0]], [s, s], [p, p], [1, 1], False,
                                                [0, 0], g, [True, True, True])

        rows.append((f"{name} fwd", ours_fwd, torch_fwd))
        rows.append((f"{name} bwd (data+weight+bias)", ours_bwd, torch_bwd))
    return rows


def pool_rows(batch: int, rng: np.random.Generator) -> list[tuple[str, Callable, Callable]]:
    rows = []
    for name, c, h, w, k, s, p, mode in LENET_POOL + CIFAR_QUICK_POOL:
        oh, ow = pool2d_output_size(h, w, k, s, p, True)
        x = rng.standard_normal((batch, c, h, w)).astype(np.float32)
        y = np.empty((batch, c, oh, ow), np.float32)
        idx = np.empty(y.shape, np.int32)
        tx = torch.from_numpy(x)
        if mode == "max":
            def ours(x=x, y=y, idx=idx, k=k, s=s, p=p):
                pooling.max_pool2d_forward(x, y, idx, k, s, p)

            def ref(tx=tx, k=k, s=s, p=p):
                F.max_pool2d(tx, k, s, p, ceil_mode=True, return_indices=True)
        else:
            def ours(x=x, y=y, k=k, s=s, p=p):
                pooling.mean_pool2d_forward(x, y, k, s, p)

            def ref(tx=tx, k=k, s=s, p=p):
                F.avg_pool2d(tx, k, s, p, ceil_mode=True, count_include_pad=True)
        rows.append((f"{name} {mode} fwd", ours, ref))
    return rows


def ip_rows(batch: int, rng: np.random.Generator) -> list[tuple[str, Callable, Callable]]:
    rows = []
    for name, k, o in LENET_IP + CIFAR_QUICK_IP:
        x = rng.standard_normal((batch, k)).astype(np.float32)
        w = rng.standard_normal((o, k)).astype(np.float32)
        b = rng.standard_normal(o).astype(np.float32)
        dy = rng.standard_normal((batch, o)).astype(np.float32)
        y, dx, dw = np.empty((batch, o), np.float32), np.empty_like(x), np.empty_like(w)
        tx, tw, tb, tdy = (torch.from_numpy(a) for a in (x, w, b, dy))

        def ours(x=x, w=w, b=b, y=y, dy=dy, dx=dx, dw=dw):
            inner_product.inner_product_forward(x, w, b, y)
            inner_product.inner_product_backward_data(dy, w, dx)
            inner_product.inner_product_backward_weight(x, dy, dw)

        def ref(tx=tx, tw=tw, tb=tb, tdy=tdy):
            F.linear(tx, tw, tb)
            torch.mm(tdy, tw)
            torch.mm(tdy.t(), tx)

        rows.append((f"{name} fwd+bwd", ours, ref))
    return rows


def loss_rows(batch: int, rng: np.random.Generator) -> list[tuple[str, Callable, Callable]]:
    x = rng.standard_normal((batch, 10)).astype(np.float32)
    label = rng.integers(0, 10, batch).astype(np.float32)
    lse, out, dx = np.empty(batch, np.float32), np.empty(1, np.float32), np.empty_like(x)
    tx, tl = torch.from_numpy(x), torch.from_numpy(label).long()

    def ours():
        loss.softmax_loss_forward(x, label, None, lse, out)
        loss.softmax_loss_backward(x, label, None, lse, dx)

    def ref():
        xx = tx.detach().requires_grad_()
        F.cross_entropy(xx, tl).backward()

    return [("softmax-loss (N,10) fwd+bwd", ours, ref)]


def solver_rows(rng: np.random.Generator) -> list[tuple[str, Callable, Callable]]:
    """One update of LeNet's largest parameter (ip1's 500 x 800 weight) against torch.optim's single-tensor
    (foreach=False) step; both sides update in place, with a small lr so values stay finite."""
    shape = (500, 800)

    def arrays(count: int) -> list[np.ndarray]:
        return [np.abs(rng.standard_normal(shape)).astype(np.float32) * 1e-3 for _ in range(count)]

    cases = [  # name, our update, the torch optimizer
        ("sgd momentum", lambda w, g, a, b: solvers.sgd_momentum_update(w, g, a, 1e-6, 0.9),
         lambda p: torch.optim.SGD([p], lr=1e-6, momentum=0.9, foreach=False)),
        ("adam", lambda w, g, a, b: solvers.adam_update(w, g, a, b, 1e-6, 0.9, 0.999, 1e-8),
         lambda p: torch.optim.Adam([p], lr=1e-6, foreach=False)),
        ("adagrad", lambda w, g, a, b: solvers.adagrad_update(w, g, a, 1e-6, 1e-8),
         lambda p: torch.optim.Adagrad([p], lr=1e-6, foreach=False)),
        ("rmsprop", lambda w, g, a, b: solvers.rmsprop_update(w, g, a, 1e-6, 0.99, 1e-8),
         lambda p: torch.optim.RMSprop([p], lr=1e-6, foreach=False)),
        ("adadelta", lambda w, g, a, b: solvers.adadelta_update(w, g, a, b, 1e-6, 0.95, 1e-6),
         lambda p: torch.optim.Adadelta([p], lr=1e-6, foreach=False)),
    ]
    rows = []
    for name, ours, make_optimizer in cases:
        w, g, a, b = arrays(4)
        param = torch.nn.Parameter(torch.from_numpy(w.copy()))
        param.grad = torch.from_numpy(g.copy())
        optimizer = make_optimizer(param)
        rows.append((f"{name} update 500x800", lambda ours=ours, w=w, g=g, a=a, b=b: ours(w, g, a, b),
                     lambda optimizer=optimizer: optimizer.step()))
    return rows


GROUPS = {"conv": conv_rows, "pool": pool_rows, "ip": ip_rows, "loss": loss_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 100])
    parser.add_argument("--groups", nargs="+", default=[*GROUPS, "solver"], choices=[*GROUPS, "solver"])
    parser.add_argument("--out", default=None, help="also write the table (markdown) to this file")
    args = parser.parse_args()

    blas_vars = {v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    header = [
        "# cpu_ref vs torch CPU",
        "",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)",
        "OpenBLAS variables: " + (", ".join(f"{k}={v}" for k, v in blas_vars.items() if v) or "unset"),
        f"date: {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| batch | op | cpu_ref ms | torch ms | torch/cpu_ref |",
        "|---:|---|---:|---:|---:|",
    ]
    print("\n".join(header), flush=True)
    lines = list(header)
    rng = np.random.default_rng(0)
    ratios = []
    work = [(batch, row) for batch in args.batch for group in args.groups if group in GROUPS
            for row in GROUPS[group](batch, rng)]
    if "solver" in args.groups:  # parameter updates do not depend on the batch
        work += [("-", row) for row in solver_rows(rng)]
    for batch, (name, ours, ref) in work:
        t_ours, t_ref = median_time(ours), median_time(ref)
        ratios.append((name, batch, t_ref / t_ours))
        line = f"| {batch} | {name} | {t_ours * 1e3:.3f} | {t_ref * 1e3:.3f} | {t_ref / t_ours:.2f} |"
        print(line, flush=True)
        lines.append(line)
    geo = float(np.exp(np.mean([np.log(r) for _, _, r in ratios])))
    summary = f"\ngeomean torch/cpu_ref: {geo:.2f} (> 1 means the NumPy reference is faster)"
    print(summary)
    lines.append(summary)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
