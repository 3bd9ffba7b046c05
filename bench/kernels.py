"""Every Triton op against its torch peer (cuDNN / cuBLAS / eager) on a table of real layer shapes.

    python bench/kernels.py [--batch 64 256] [--precision tf32] [--out DIR] [--budget-s 240]
    python bench/kernels.py --smoke        # CPU: run every row once on tiny shapes, no timing

Times are medians of ``triton.testing.do_bench`` (L2 flushed before every run). The ratio is
torch_ms / ours_ms (> 1: ours is faster). The TF32 setting is the same on both sides:
``torch.backends.cudnn.allow_tf32`` and ``torch.backends.cuda.matmul.allow_tf32`` follow
``--precision`` ("ieee" -> off, "tf32" -> on). Convolutions report TFLOP/s (2*N*F*OH*OW*C/g*KH*KW per
pass); memory-bound ops report GB/s (bytes read + written). Results go to DIR/kernels.jsonl and
DIR/kernels.md; a short table is printed last.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from shapes import (  # noqa: E402
    ALEXNET_CONV,
    ALEXNET_IP,
    ALEXNET_POOL,
    CIFAR_QUICK_CONV,
    CIFAR_QUICK_IP,
    CIFAR_QUICK_POOL,
    LENET_CONV,
    LENET_IP,
    LENET_POOL,
    VGG_CONV3,
)

import mocha_triton.kernels as kernels_pkg  # noqa: E402  (sets up Triton's environment first)
from mocha_triton.checks.conv import conv2d_output_size  # noqa: E402
from mocha_triton.checks.pooling import pool2d_output_size  # noqa: E402
from mocha_triton.kernels import (  # noqa: E402
    combine,
    conv,
    elementwise,
    inner_product,
    loss,
    neurons,
    normalization,
    pointwise_loss,
    pooling,
    softmax,
    solvers,
)


@dataclass
class Row:
    group: str  # conv_fwd, conv_dgrad, conv_wgrad, ip_fwd, ip_bwd, pool, loss, neuron, copy, solver, lrn, combine
    name: str
    ours: Callable[[], object]
    ref: Callable[[], object]
    flops: float = 0.0  # per call, for TFLOP/s
    bytes: float = 0.0  # per call, for GB/s


def randn(*shape: int, device: str) -> torch.Tensor:
    """Standard normal float32 test data (torch RNG is fine here: this is the benchmark's input,
    not a kernel-path computation)."""
    return torch.randn(*shape, device=device, dtype=torch.float32)


def conv_rows(batch: int, device: str, shapes: list) -> list[Row]:
    rows = []
    for name, c, h, w, f, k, s, p, g in shapes:
        oh, ow = conv2d_output_size(h, w, k[0], k[1], (s, s), (p, p))
        x, wt, b = randn(batch, c, h, w, device=device), randn(f, c // g, *k, device=device), randn(f, device=device)
        dy = randn(batch, f, oh, ow, device=device)
        y, dx, dw = torch.empty_like(dy), torch.empty_like(x), torch.empty_like(wt)
        flops = 2.0 * batch * f * oh * ow * (c // g) * k[0] * k[1]
        kw = dict(stride=(s, s), pad=(p, p), groups=g)
        tag = f"{name} N{batch}"

        def bwd(mask, x=x, wt=wt, dy=dy, s=s, p=p, g=g):
            return lambda: torch.ops.aten.convolution_backward(dy, x, wt, None, [s, s], [p, p], [1, 1], False,
                                                               [0, 0], g, mask)

        rows += [
            Row("conv_fwd", tag, lambda x=x, wt=wt, b=b, y=y, kw=kw: conv.conv2d_forward(x, wt, b, y, **kw),
                lambda x=x, wt=wt, b=b, s=s, p=p, g=g: F.conv2d(x, wt, b, s, p, 1, g), flops),
            Row("conv_dgrad", tag, lambda dy=dy, wt=wt, dx=dx, kw=kw: conv.conv2d_backward_data(dy, wt, dx, **kw),
                bwd([True, False, False]), flops),
            Row("conv_wgrad", tag, lambda x=x, dy=dy, dw=dw, kw=kw: conv.conv2d_backward_weight(x, dy, dw, **kw),
                bwd([False, True, False]), flops),
        ]
    return rows


def ip_rows(batch: int, device: str, shapes: list) -> list[Row]:
    rows = []
    for name, k, o in shapes:
        x, w, b, dy = randn(batch, k, device=device), randn(o, k, device=device), randn(o, device=device), \
            randn(batch, o, device=device)
        y, dx, dw = torch.empty(batch, o, device=device), torch.empty_like(x), torch.empty_like(w)
        flops = 2.0 * batch * k * o
        tag = f"{name} N{batch}"

        def ours_bwd(x=x, w=w, dy=dy, dx=dx, dw=dw):
            inner_product.inner_product_backward_data(dy, w, dx)
            inner_product.inner_product_backward_weight(x, dy, dw)

        def ref_bwd(x=x, w=w, dy=dy):
            torch.mm(dy, w)
            torch.mm(dy.t(), x)

        rows += [
            Row("ip_fwd", tag, lambda x=x, w=w, b=b, y=y: inner_product.inner_product_forward(x, w, b, y),
                lambda x=x, w=w, b=b: F.linear(x, w, b), flops),
            Row("ip_bwd", tag, ours_bwd, ref_bwd, 2 * flops),
        ]
    return rows


def pool_rows(batch: int, device: str, shapes: list) -> list[Row]:
    rows = []
    for name, c, h, w, k, s, p, mode in shapes:
        oh, ow = pool2d_output_size(h, w, k, s, p, True)
        x, dy = randn(batch, c, h, w, device=device), randn(batch, c, oh, ow, device=device)
        y, dx = torch.empty_like(dy), torch.empty_like(x)
        idx = torch.empty(dy.shape, dtype=torch.int32, device=device)
        moved = 4.0 * (x.numel() + y.numel())
        tag = f"{name} N{batch}"
        if mode == "max":
            t_y, t_idx = F.max_pool2d(x, k, s, p, ceil_mode=True, return_indices=True)
            pooling.max_pool2d_forward(x, y, idx, k, s, p)
            rows += [
                Row("pool", f"{tag} max fwd", lambda x=x, y=y, idx=idx, k=k, s=s, p=p:
                    pooling.max_pool2d_forward(x, y, idx, k, s, p),
                    lambda x=x, k=k, s=s, p=p: F.max_pool2d(x, k, s, p, ceil_mode=True, return_indices=True),
                    bytes=moved + 4.0 * y.numel()),
                Row("pool", f"{tag} max bwd", lambda dy=dy, idx=idx, dx=dx, k=k, s=s, p=p:
                    pooling.max_pool2d_backward(dy, idx, dx, k, s, p),
                    lambda dy=dy, x=x, t_idx=t_idx, k=k, s=s, p=p: torch.ops.aten.max_pool2d_with_indices_backward(
                        dy, x, list(k), list(s), list(p), [1, 1], True, t_idx),
                    bytes=moved + 4.0 * y.numel()),
            ]
        else:
            rows += [
                Row("pool", f"{tag} mean fwd", lambda x=x, y=y, k=k, s=s, p=p:
                    pooling.mean_pool2d_forward(x, y, k, s, p),
                    lambda x=x, k=k, s=s, p=p: F.avg_pool2d(x, k, s, p, ceil_mode=True), bytes=moved),
                Row("pool", f"{tag} mean bwd", lambda dy=dy, dx=dx, k=k, s=s, p=p:
                    pooling.mean_pool2d_backward(dy, dx, k, s, p),
                    lambda dy=dy, x=x, k=k, s=s, p=p: torch.ops.aten.avg_pool2d_backward(
                        dy, x, list(k), list(s), list(p), True, True, None), bytes=moved),
            ]
    return rows


def loss_rows(batch: int, device: str, classes: list[tuple[int, tuple[int, ...]]]) -> list[Row]:
    rows = []
    for c, spatial in classes:
        x = randn(batch, c, *spatial, device=device)
        label = torch.randint(0, c, (batch, *spatial), device=device)
        label_f = label.to(torch.float32)
        lse = torch.empty((batch, *spatial), device=device)
        out, dx = torch.empty(1, device=device), torch.empty_like(x)

        def ours(x=x, label_f=label_f, lse=lse, out=out, dx=dx):
            loss.softmax_loss_forward(x, label_f, None, lse, out)
            loss.softmax_loss_backward(x, label_f, None, lse, dx)

        def ref(x=x, label=label):
            xx = x.detach().requires_grad_()
            F.cross_entropy(xx, label).backward()

        rows.append(Row("loss", f"softmax-loss C{c} S{spatial} N{batch} fwd+bwd", ours, ref,
                        bytes=4.0 * (3 * x.numel() + 2 * label.numel())))
        y = torch.empty_like(x)
        rows.append(Row("softmax", f"softmax C{c} S{spatial} N{batch} fwd",
                        lambda x=x, y=y: softmax.softmax_forward(x, y), lambda x=x: torch.softmax(x, 1),
                        bytes=8.0 * x.numel()))
    return rows


def bandwidth_rows(device: str, numel: int) -> list[Row]:
    x, y = randn(numel, device=device), torch.empty(numel, device=device)
    moved = 8.0 * numel
    rows = [Row("copy", f"copy {numel / 1e6:.0f}M fp32", lambda: elementwise.copy(x, y), lambda: y.copy_(x),
                bytes=moved)]
    for name, ref in (("relu", F.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh)):
        rows.append(Row("neuron", f"{name} fwd {numel / 1e6:.0f}M",
                        lambda name=name: neurons.neuron_forward(x, y, name), lambda ref=ref: ref(x), bytes=moved))
    rows.append(Row("neuron", f"relu bwd {numel / 1e6:.0f}M", lambda: neurons.neuron_backward(y, x, y, "relu"),
                    lambda: torch.ops.aten.threshold_backward(x, y, 0.0), bytes=12.0 * numel))
    return rows + solver_rows(device, numel)


def solver_rows(device: str, numel: int) -> list[Row]:
    """One parameter update of ``numel`` elements against ``torch.optim`` on a parameter of that size
    (fused kernels for SGD and Adam on CUDA, ``foreach`` otherwise): what PyTorch eager training runs.
    The updates run repeatedly on the same tensors; the learning rate is small so values stay finite."""
    def tensors(count: int) -> list[torch.Tensor]:
        return [randn(numel, device=device).abs_() * 1e-3 for _ in range(count)]

    fused = {"fused": True} if device == "cuda" else {"foreach": False}
    cases = [  # name, our update, the torch optimizer, tensors read + written per element
        ("sgd momentum", lambda w, g, a, b: solvers.sgd_momentum_update(w, g, a, 1e-6, 0.9),
         lambda p: torch.optim.SGD([p], lr=1e-6, momentum=0.9, **fused), 5),
        ("adam", lambda w, g, a, b: solvers.adam_update(w, g, a, b, 1e-6, 0.9, 0.999, 1e-8),
         lambda p: torch.optim.Adam([p], lr=1e-6, **fused), 7),
        ("adagrad", lambda w, g, a, b: solvers.adagrad_update(w, g, a, 1e-6, 1e-8),
         lambda p: torch.optim.Adagrad([p], lr=1e-6, foreach=device == "cuda"), 5),
        ("rmsprop", lambda w, g, a, b: solvers.rmsprop_update(w, g, a, 1e-6, 0.99, 1e-8),
         lambda p: torch.optim.RMSprop([p], lr=1e-6, foreach=device == "cuda"), 5),
        ("adadelta", lambda w, g, a, b: solvers.adadelta_update(w, g, a, b, 1e-6, 0.95, 1e-6),
         lambda p: torch.optim.Adadelta([p], lr=1e-6, foreach=device == "cuda"), 7),
    ]
    rows = []
    for name, ours, make_optimizer, moved in cases:
        w, g, a, b = tensors(4)
        param = torch.nn.Parameter(w.clone())
        param.grad = g.clone()
        optimizer = make_optimizer(param)
        rows.append(Row("solver", f"{name} update {numel / 1e6:.0f}M",
                        lambda ours=ours, w=w, g=g, a=a, b=b: ours(w, g, a, b),
                        lambda optimizer=optimizer: optimizer.step(), bytes=4.0 * moved * numel))
    return rows


def lrn_rows(batch: int, device: str, shapes: list[tuple[str, int, int, int]]) -> list[Row]:
    """Caffe's across-channel LRN (size 5, alpha 1e-4, beta 0.75, k 1 as in AlexNet) against
    ``torch.nn.functional.local_response_norm`` (the same formula for odd sizes); forward, and our
    backward against autograd through torch's composite implementation."""
    rows = []
    for name, c, h, w in shapes:
        x = randn(batch, c, h, w, device=device)
        y, scale, dy, dx = (torch.empty_like(x) for _ in range(4))
        moved = 4.0 * x.numel() * 3  # read x, write y and the stored scale
        rows.append(Row("lrn", f"{name} N{batch} fwd",
                        lambda x=x, y=y, scale=scale: normalization.lrn_forward(x, y, scale, 5, 1e-4, 0.75, 1.0),
                        lambda x=x: F.local_response_norm(x, 5, 1e-4, 0.75, 1.0), bytes=moved))
        normalization.lrn_forward(x, y, scale, 5, 1e-4, 0.75, 1.0)
        xr = x.clone().requires_grad_()
        yr = F.local_response_norm(xr, 5, 1e-4, 0.75, 1.0)

        def ref_bwd(yr=yr, xr=xr, dy=dy):
            return torch.autograd.grad(yr, xr, dy, retain_graph=True)

        rows.append(Row("lrn", f"{name} N{batch} bwd",
                        lambda x=x, y=y, scale=scale, dy=dy, dx=dx: normalization.lrn_backward(
                            x, y, scale, dy, dx, 5, 1e-4, 0.75), ref_bwd, bytes=4.0 * x.numel() * 5))
    return rows


def combine_rows(batch: int, device: str, residual_hw: int = 56, inception_hw: int = 28) -> list[Row]:
    """A residual sum (ResNet-50 stage 2: 256 x 56 x 56) against ``torch.add``, an inception concat
    (GoogLeNet 3a: 64 + 128 + 32 + 32 channels at 28 x 28) against ``torch.cat``, and a square loss."""
    r, i = residual_hw, inception_hw
    a, b = randn(batch, 256, r, r, device=device), randn(batch, 256, r, r, device=device)
    y = torch.empty_like(a)
    rows = [Row("combine", f"eltwise add 256x{r}x{r} N{batch}", lambda: combine.eltwise_forward(a, b, y, "add"),
                lambda: torch.add(a, b), bytes=12.0 * a.numel())]
    branches = [randn(batch, c, i, i, device=device) for c in (64, 128, 32, 32)]
    out = torch.empty(batch, 256, i, i, device=device)

    def ours_concat() -> None:
        start = 0
        for x in branches:
            combine.copy_block(x, out, (0, 0, 0, 0), (0, start, 0, 0), tuple(x.shape))
            start += x.shape[1]

    rows.append(Row("combine", f"concat 4 branches {i}x{i} N{batch}", ours_concat, lambda: torch.cat(branches, 1),
                    bytes=8.0 * out.numel()))
    pred, target = randn(batch, 784, device=device), randn(batch, 784, device=device)
    loss_out = torch.empty(1, device=device)
    rows.append(Row("combine", f"square loss fwd (N{batch}, 784)",
                    lambda: pointwise_loss.square_loss_forward(pred, target, loss_out),
                    lambda: F.mse_loss(pred, target, reduction="sum"), bytes=8.0 * pred.numel()))
    return rows


def all_rows(batches: list[int], device: str, smoke: bool) -> list[Row]:
    if smoke:  # tiny shapes for the interpreter: every code path once
        conv_shapes = [("tiny.conv", 3, 9, 9, 4, (3, 3), 2, 1, 1), ("tiny.gconv", 4, 6, 6, 4, (3, 3), 1, 1, 2)]
        return (conv_rows(2, device, conv_shapes) + ip_rows(3, device, [("tiny.ip", 20, 7)])
                + pool_rows(2, device, [("tiny.pool", 3, 7, 7, (3, 3), (2, 2), (1, 1), "max"),
                                        ("tiny.mpool", 3, 7, 7, (3, 3), (2, 2), (1, 1), "mean")])
                + loss_rows(3, device, [(5, ()), (4, (3, 3))]) + bandwidth_rows(device, 5000)
                + lrn_rows(2, device, [("tiny.lrn", 7, 5, 5)]) + combine_rows(1, device, 4, 3))
    rows: list[Row] = []
    conv_shapes = LENET_CONV + CIFAR_QUICK_CONV + ALEXNET_CONV + VGG_CONV3
    for batch in batches:
        rows += conv_rows(batch, device, conv_shapes)
    for batch in batches:
        rows += ip_rows(batch, device, LENET_IP + CIFAR_QUICK_IP + ALEXNET_IP)
    for batch in batches:
        rows += pool_rows(batch, device, LENET_POOL + CIFAR_QUICK_POOL + ALEXNET_POOL)
    for batch in batches:
        rows += loss_rows(batch, device, [(10, ()), (1000, ()), (21, (64, 64))])
    for batch in batches:
        rows += lrn_rows(batch, device, [("alexnet.norm1", 96, 55, 55), ("alexnet.norm2", 256, 27, 27)])
    rows += combine_rows(batches[0], device)
    return rows + bandwidth_rows(device, 1 << 26)


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--precision", default="tf32", choices=["ieee", "tf32", "tf32x3"])
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--budget-s", type=float, default=1e9, help="stop starting new rows after this long")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, run once, no timing (CPU interpreter)")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.smoke:
        sys.exit("bench/kernels.py times GPU kernels: no CUDA device here (use --smoke to exercise the code)")
    kernels_pkg.set_precision(args.precision)
    tf32 = args.precision != "ieee"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.manual_seed(0)

    rows = all_rows(args.batch, device, args.smoke)
    os.makedirs(args.out, exist_ok=True)
    results = []
    t_start = time.time()
    with open(os.path.join(args.out, "kernels.jsonl"), "w") as jsonl:
        for row in rows:
            if time.time() - t_start > args.budget_s:
                print(f"budget of {args.budget_s}s spent: skipped {len(rows) - len(results)} rows", flush=True)
                break
            try:
                if args.smoke:
                    row.ours()
                    row.ref()
                    ours_ms = ref_ms = float("nan")
                else:
                    import triton.testing

                    row.ours()  # autotune and compile outside the timing
                    ours_ms = triton.testing.do_bench(row.ours, warmup=10, rep=50, return_mode="median")
                    ref_ms = triton.testing.do_bench(row.ref, warmup=10, rep=50, return_mode="median")
                rec = {"group": row.group, "name": row.name, "ours_ms": ours_ms, "torch_ms": ref_ms,
                       "ratio": ref_ms / ours_ms,
                       "tflops": row.flops / ours_ms / 1e9 if row.flops else None,
                       "torch_tflops": row.flops / ref_ms / 1e9 if row.flops else None,
                       "gbps": row.bytes / ours_ms / 1e6 if row.bytes else None}
            except Exception as exc:  # keep going: one failing row must not hide the others
                rec = {"group": row.group, "name": row.name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            results.append(rec)
            jsonl.write(json.dumps(rec) + "\n")
            jsonl.flush()
            print(json.dumps(rec), flush=True)

    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu (interpreter smoke run)"
    import triton

    lines = [f"# bench/kernels.py — {gpu}", "",
             f"triton {triton.__version__}, torch {torch.__version__}, precision {args.precision} "
             f"(torch TF32 {'on' if tf32 else 'off'}), date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             "", "| group | shape | ours ms | torch ms | torch/ours | TFLOP/s ours | TFLOP/s torch | GB/s ours |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]

    def fmt(v, spec=".3f"):
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    for r in results:
        if "error" in r:
            lines.append(f"| {r['group']} | {r['name']} | ERROR: {r['error']} | | | | | |")
        else:
            lines.append(f"| {r['group']} | {r['name']} | {fmt(r['ours_ms'], '.4f')} | {fmt(r['torch_ms'], '.4f')} | "
                         f"{fmt(r['ratio'], '.2f')} | {fmt(r['tflops'], '.1f')} | {fmt(r['torch_tflops'], '.1f')} | "
                         f"{fmt(r['gbps'], '.0f')} |")
    groups = sorted({r["group"] for r in results})
    summary = ["", "| group | rows | errors | geomean torch/ours | worst |", "|---|---:|---:|---:|---|"]
    for g in groups:
        ok = [r for r in results if r["group"] == g and "error" not in r and not math.isnan(r["ratio"])]
        errors = sum(1 for r in results if r["group"] == g and "error" in r)
        worst = min(ok, key=lambda r: r["ratio"]) if ok else None
        summary.append(f"| {g} | {len(ok)} | {errors} | {fmt(geomean([r['ratio'] for r in ok]), '.2f')} | "
                       + (f"{worst['name']} ({worst['ratio']:.2f})" if worst else "") + " |")
    with open(os.path.join(args.out, "kernels.md"), "w") as fh:
        fh.write("\n".join(lines + summary) + "\n")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
