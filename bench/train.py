"""LeNet training throughput (images/s) and peak memory: mocha-triton against PyTorch eager.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/train.py            # NumpyBackend vs torch CPU
    python bench/train.py --device cuda [--precision tf32]                         # TritonBackend vs torch CUDA
    python bench/train.py --windows 7 --window-iters 30 --out bench/results/train.md

Both sides train the same net (the LeNet of examples/mnist_lenet.py: conv 20@5x5, max pool 2/2,
conv 50@5x5, max pool 2/2, ip 500 + ReLU, ip 10, softmax loss) at the same batch size, from the *same
initial weights* (Xavier uniform, zero biases, drawn once by mocha-triton and copied into the torch
model), on the same batches (the embedded 8x8 digits upsampled to 28x28, served in order), with SGD,
momentum 0.9, ``LRPolicy.Inv(0.01, 1e-4, 0.75)``, weight decay 0.0005 on weights only and a 2x bias
learning rate. The torch side uses ``torch.optim.SGD`` (its momentum form ``v = mu v + g; w -= lr v`` equals
Caffe's ``v = mu v - lr g; w += v`` for a constant lr; the Inv policy changes lr by < 1e-4 relative per iteration).
Each iteration of both sides ends with the loss as a Python float (Mocha's ``obj_val``), i.e. one
host synchronisation per iteration on the GPU. The table's mean loss over the timed iterations is a
sanity check that both sides train the same model: the two loss sequences match closely (to ~1e-4
relative over the first iterations on the CPU, then drift apart slowly through float rounding).

Timing: ``--warmup`` untimed iterations (Triton autotuning happens here on a GPU), then ``--windows``
windows of ``--window-iters`` iterations each; reported: the median window's images/s (and the spread).

Peak memory:

* NumPy side: ``tracemalloc`` peak from building the net through ``--memory-iters`` iterations (NumPy
  reports its array allocations to tracemalloc; OpenBLAS's internal buffers are not included);
* torch CPU side: the ``ru_maxrss`` increase over building the model and ``--memory-iters`` iterations,
  measured in a fresh subprocess started before the parent grows (ru_maxrss is a high-water mark that
  Linux carries over fork + exec), after torch's one-time CPU runtime and optimizer imports are warmed
  up; the same measurement is shown for the NumPy side, also in its own subprocess;
* GPU: ``torch.cuda.max_memory_allocated`` for each side (the Triton backend allocates through torch's
  caching allocator too), reset before each side.

The OpenBLAS variables OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE slow NumPy's GEMMs on some machines here;
the output says whether they are set. ``--device cuda`` needs a CUDA GPU (the code path is written to
run there; it has not been run in this workspace, which has no GPU).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
BASE_LR, LR_GAMMA, LR_POWER, MOMENTUM, WEIGHT_DECAY = 0.01, 1e-4, 0.75, 0.9, 0.0005


def load_example() -> Any:
    """examples/mnist_lenet.py as a module (for its ``lenet_layers``)."""
    spec = importlib.util.spec_from_file_location("mnist_lenet_example", ROOT / "examples" / "mnist_lenet.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def load_data(n: int = 1797) -> tuple[np.ndarray, np.ndarray, str]:
    """(data (n, 1, 28, 28) float32, label (n, 1) float32, description): the digits, or seeded noise
    when scikit-learn is not installed (throughput does not depend on the values)."""
    try:
        from mocha_triton.datasets import load_digits_arrays

        data, label = load_digits_arrays()
        return data[:n], label[:n], "scikit-learn digits upsampled to 28x28"
    except ImportError:
        rng = np.random.default_rng(0)
        return (rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, (n, 1)).astype(np.float32),
                "uniform noise (scikit-learn not installed)")


def inv_lr(iteration: int) -> float:
    return BASE_LR * (1.0 + LR_GAMMA * iteration) ** (-LR_POWER)


# --- mocha-triton side ---------------------------------------------------------------------------


class MochaRun:
    """LeNet on a mocha-triton backend, trained by ``Solver(SGD())`` one ``step`` at a time."""

    def __init__(self, backend: Any, data: np.ndarray, label: np.ndarray, batch: int) -> None:
        from mocha_triton.layers.data import MemoryDataLayer
        from mocha_triton.layers.loss import SoftmaxLossLayer
        from mocha_triton.net import Net
        from mocha_triton.policies import LRPolicy, MomPolicy
        from mocha_triton.solvers import SGD, Solver, SolverParameters

        layers = [MemoryDataLayer(name="data", batch_size=batch, data=[data, label]),
                  *load_example().lenet_layers(), SoftmaxLossLayer(name="loss", bottoms=["ip2", "label"])]
        self.backend = backend
        self.net = Net("lenet-bench", backend, layers)
        self.initial = {name: [p.blob.to_numpy() for p in params] for name, params in self.net.params.items()}
        params = SolverParameters(max_iter=10**9, regu_coef=WEIGHT_DECAY, mom_policy=MomPolicy.Fixed(MOMENTUM),
                                  lr_policy=LRPolicy.Inv(BASE_LR, LR_GAMMA, LR_POWER))
        self.solver = Solver(SGD(), params)
        self.state = self.solver.init(self.net)
        self.losses: list[float] = []

    def step(self) -> None:
        # obj_val before the step is the loss of the batch this step trains on (as the torch side records)
        self.losses.append(self.state.obj_val)
        self.solver.step(self.net, self.state)

    def close(self) -> None:
        self.net.destroy()
        self.backend.shutdown()


# --- torch side ----------------------------------------------------------------------------------


def torch_lenet(initial: dict[str, list[np.ndarray]] | None, device: str) -> Any:
    """The same LeNet as a torch module; ``initial`` (mocha-triton's parameters by layer) sets its weights."""
    import torch
    import torch.nn.functional as F

    class LeNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 20, 5)
            self.conv2 = torch.nn.Conv2d(20, 50, 5)
            self.ip1 = torch.nn.Linear(800, 500)
            self.ip2 = torch.nn.Linear(500, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.max_pool2d(self.conv1(x), 2, 2)
            x = F.max_pool2d(self.conv2(x), 2, 2)
            return self.ip2(F.relu(self.ip1(x.flatten(1))))

    model = LeNet()
    with torch.no_grad():
        for name in ("conv1", "conv2", "ip1", "ip2"):
            module = getattr(model, name)
            if initial is not None:
                weight, bias = initial[name]
                module.weight.copy_(torch.from_numpy(weight))
                module.bias.copy_(torch.from_numpy(bias))
            else:  # the same scheme: Xavier U[-s, s], s = sqrt(3 / fan_in); zero bias
                fan_in = module.weight[0].numel()
                s = (3.0 / fan_in) ** 0.5
                rng = np.random.default_rng(0)
                module.weight.copy_(torch.from_numpy(rng.uniform(-s, s, tuple(module.weight.shape)).astype(np.float32)))
                module.bias.zero_()
    return model.to(device)


class TorchRun:
    """The torch LeNet trained with torch.optim.SGD, batches copied from the host like the data layer's."""

    def __init__(self, initial: dict[str, list[np.ndarray]] | None, data: np.ndarray, label: np.ndarray,
                 batch: int, device: str) -> None:
        import torch

        self.torch = torch
        self.device = device
        self.model = torch_lenet(initial, device)
        weights = [p for n, p in self.model.named_parameters() if n.endswith("weight")]
        biases = [p for n, p in self.model.named_parameters() if n.endswith("bias")]
        self.optimizer = torch.optim.SGD([
            {"params": weights, "lr": BASE_LR, "weight_decay": WEIGHT_DECAY, "lr_mult": 1.0},
            {"params": biases, "lr": 2 * BASE_LR, "weight_decay": 0.0, "lr_mult": 2.0},
        ], lr=BASE_LR, momentum=MOMENTUM)
        self.data, self.label = data, label.reshape(-1).astype(np.int64)
        self.batch = batch
        self.offset = 0
        self.iteration = 0
        self.losses: list[float] = []

    def next_batch(self) -> tuple[Any, Any]:
        """The next ``batch`` samples in order, wrapping around (like MemoryDataLayer without shuffle)."""
        idx = (self.offset + np.arange(self.batch)) % len(self.data)
        self.offset = (self.offset + self.batch) % len(self.data)
        x = self.torch.from_numpy(np.ascontiguousarray(self.data[idx])).to(self.device)
        y = self.torch.from_numpy(self.label[idx]).to(self.device)
        return x, y

    def step(self) -> None:
        import torch.nn.functional as F

        self.iteration += 1
        for group in self.optimizer.param_groups:
            group["lr"] = inv_lr(self.iteration) * group["lr_mult"]
        x, y = self.next_batch()
        loss = F.cross_entropy(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.losses.append(loss.item())

    def close(self) -> None:
        pass


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Timing:
    images_per_s: float  # median window
    low: float  # slowest window
    high: float  # fastest window
    mean_loss: float  # over the timed iterations (a sanity check: both sides train the same model)


def time_windows(step: Callable[[], None], sync: Callable[[], None], losses: list[float], batch: int, warmup: int,
                 windows: int, window_iters: int) -> Timing:
    for _ in range(warmup):
        step()
    sync()
    first = len(losses)
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(window_iters):
            step()
        sync()
        rates.append(window_iters * batch / (time.perf_counter() - start))
    return Timing(statistics.median(rates), min(rates), max(rates), float(np.mean(losses[first:])))


def memory_child(side: str, batch: int, iters: int) -> dict[str, float]:
    """Run in a fresh process: build one side and train ``iters`` iterations; ru_maxrss (KiB on Linux)
    before and after, plus the tracemalloc peak for the NumPy side."""
    data, label, _ = load_data()
    if side == "torch":  # libraries and torch's lazily started CPU runtime are not the model's memory
        import torch

        x = torch.ones(1, 1, 8, 8, requires_grad=True)
        torch.nn.functional.conv2d(x, torch.ones(2, 1, 3, 3)).sum().backward()
        torch.optim.SGD([x], lr=0.1, momentum=0.9).step()  # imports the optimizer machinery
    else:
        from mocha_triton.backends import NumpyBackend  # noqa: F401
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result: dict[str, float] = {}
    if side == "torch":
        run = TorchRun(None, data, label, batch, "cpu")
        for _ in range(iters):
            run.step()
    else:
        from mocha_triton.backends import NumpyBackend

        tracemalloc.start()
        run = MochaRun(NumpyBackend("float32", seed=0), data, label, batch)
        for _ in range(iters):
            run.step()
        result["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["maxrss_delta_mib"] = (after - before) / 1024
    return result


def run_memory_child(side: str, batch: int, iters: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--memory-child", side, "--batch", str(batch),
                          "--memory-iters", str(iters)], capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"memory measurement for {side} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def environment(device: str) -> list[str]:
    import torch

    lines = [f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
             f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)"]
    if device == "cuda":
        import triton

        lines.append(f"GPU: {torch.cuda.get_device_name()}, triton {triton.__version__}, cuda {torch.version.cuda}")
    set_vars = {v: os.environ[v] for v in OPENBLAS_VARS if v in os.environ}
    if set_vars:
        lines.append(f"OpenBLAS variables: SET {set_vars} -- they slow NumPy here; for a fair comparison run "
                     f"`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/train.py`")
    else:
        lines.append("OpenBLAS variables: unset (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("ieee", "tf32", "tf32x3"), default="tf32",
                        help="TritonBackend precision; torch's TF32 switches follow it (cuda only)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--windows", type=int, default=5)
    parser.add_argument("--window-iters", type=int, default=20)
    parser.add_argument("--memory-iters", type=int, default=5)
    parser.add_argument("--out", help="also write the report (markdown) to this file")
    parser.add_argument("--memory-child", choices=("numpy", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child:
        print(json.dumps(memory_child(args.memory_child, args.batch, args.memory_iters)))
        return 0

    if args.device == "cpu":
        # First, while this process is still small: Linux carries ru_maxrss over fork + exec, so a child
        # started from a large parent would inherit the parent's high-water mark.
        numpy_mem = run_memory_child("numpy", args.batch, args.memory_iters)
        torch_mem = run_memory_child("torch", args.batch, args.memory_iters)

    import torch

    data, label, what = load_data()
    lines = ["# LeNet training: mocha-triton vs PyTorch eager", "", *environment(args.device),
             f"date: {time.strftime('%Y-%m-%d %H:%M')}",
             f"data: {what}; batch {args.batch}; {args.warmup} warm-up iterations, then {args.windows} windows "
             f"of {args.window_iters} iterations each (images/s of the median window)", ""]

    if args.device == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda needs a CUDA GPU")
        from mocha_triton.backends import TritonBackend

        tf32 = args.precision != "ieee"
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        sync = torch.cuda.synchronize
        torch.cuda.reset_peak_memory_stats()
        ours = MochaRun(TritonBackend("cuda", precision=args.precision, seed=0), data, label, args.batch)
        ours_name = f"mocha-triton TritonBackend ({args.precision})"
        ours_time = time_windows(ours.step, sync, ours.losses, args.batch, args.warmup, args.windows,
                                 args.window_iters)
        ours_mem = f"{torch.cuda.max_memory_allocated() / 2**20:.1f} MiB (torch.cuda.max_memory_allocated)"
        initial = ours.initial
        ours.close()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        theirs = TorchRun(initial, data, label, args.batch, "cuda")
        theirs_name = f"torch eager CUDA (cuDNN, TF32 {'on' if tf32 else 'off'})"
        theirs_time = time_windows(theirs.step, sync, theirs.losses, args.batch, args.warmup, args.windows,
                                   args.window_iters)
        theirs_mem = f"{torch.cuda.max_memory_allocated() / 2**20:.1f} MiB (torch.cuda.max_memory_allocated)"
    else:
        from mocha_triton.backends import NumpyBackend

        sync = lambda: None  # noqa: E731 - the CPU sides are synchronous
        ours = MochaRun(NumpyBackend("float32", seed=0), data, label, args.batch)
        ours_name = "mocha-triton NumpyBackend (float32)"
        ours_time = time_windows(ours.step, sync, ours.losses, args.batch, args.warmup, args.windows,
                                 args.window_iters)
        theirs = TorchRun(ours.initial, data, label, args.batch, "cpu")
        ours.close()
        theirs_name = "torch eager CPU"
        theirs_time = time_windows(theirs.step, sync, theirs.losses, args.batch, args.warmup, args.windows,
                                   args.window_iters)
        ours_mem = (f"{numpy_mem['tracemalloc_peak_mib']:.1f} MiB (tracemalloc peak); "
                    f"{numpy_mem['maxrss_delta_mib']:.1f} MiB (ru_maxrss delta)")
        theirs_mem = f"{torch_mem['maxrss_delta_mib']:.1f} MiB (ru_maxrss delta)"

    lines += ["| side | images/s | windows min-max | mean loss (timed iters) | peak memory |",
              "|---|---:|---:|---:|---|"]
    for name, t, mem in ((ours_name, ours_time, ours_mem), (theirs_name, theirs_time, theirs_mem)):
        lines.append(f"| {name} | {t.images_per_s:.0f} | {t.low:.0f}-{t.high:.0f} | {t.mean_loss:.4f} | {mem} |")
    lines += ["", f"ratio mocha-triton / torch: {ours_time.images_per_s / theirs_time.images_per_s:.2f} "
                  "(> 1: mocha-triton is faster)"]
    if args.device == "cpu":
        lines.append("memory: peak over building the net/model and "
                     f"{args.memory_iters} training iterations, each side in a fresh process")
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
