"""Data-parallel training on ``torch.distributed`` (gloo on CPUs, NCCL on GPUs): every process trains the
same net on its own share of the data, and the gradients are averaged between the backward pass and the
parameter update, so all processes take the same step — that of one process training on all the data.

::

    import torch.distributed as dist
    import mocha_triton as mt

    dist.init_process_group("gloo")             # "nccl" with TritonBackend on GPUs; torchrun sets the rest
    rank, world = dist.get_rank(), dist.get_world_size()
    data = mt.MemoryDataLayer(name="data", batch_size=64, data=[x[rank::world], y[rank::world]], ...)
    net = mt.Net("train", backend, [data, ...])
    params = mt.SolverParameters(..., load_from=f"snapshots/rank{rank}")   # each process resumes its own
    solver = mt.Solver(mt.SGD(), params, data_parallel=mt.DataParallel())
    solver.add_coffee_break(mt.Snapshot(f"snapshots/rank{rank}"), every_n_iter=1000)
    solver.solve(net)

What the solver does with a :class:`DataParallel` (see :class:`~mocha_triton.solvers.Solver`):

* at ``init``, after any ``load_from``, the processes must agree on the iteration (a clear error says
  when they do not, e.g. one resumed from a snapshot and another started fresh), and every parameter is
  broadcast from rank 0, so all processes start from the same weights whatever their seeds;
* after each ``net.backward`` (regularization included), the gradient of every trainable parameter is
  summed over the processes (``all_reduce``) and scaled by ``1 / world_size`` (the backend's ``scale``
  op), so with equal batch sizes the update is the one of the full batch;
* ``obj_val`` and the per-layer ``losses`` are averaged over the processes, so every process reports the
  same objective (and ``DecayOnValidation``-style decisions agree).

Everything else (validation, statistics, snapshots) runs on each process as configured; the data layers'
positions, the random streams and the solver state stay per process. So each process snapshots into a
directory of its own and resumes from it, as above: a snapshot holds its process's data positions and
random state, and resuming every process from rank 0's would give them all rank 0's noise and data.
torch.distributed is the communication engine (as the design says); the arithmetic on our side stays in
the backend's ops.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DataParallel"]


class DataParallel:
    """Gradient averaging over a ``torch.distributed`` process group (the default group if None)."""

    def __init__(self, group: Any = None) -> None:
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("DataParallel: torch.distributed is not initialized; call "
                               "torch.distributed.init_process_group(...) first (one process per device)")
        self.dist = dist
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)

    @property
    def is_main(self) -> bool:
        """True on rank 0 (where breaks that write files belong)."""
        return self.rank == 0

    # --- what the solver calls ------------------------------------------------------------------
    def broadcast_parameters(self, net: Any) -> None:
        """Copy rank 0's parameter blobs to every process (each shared blob once)."""
        seen: set[int] = set()
        for params in net.params.values():
            for param in params:
                if id(param.blob) in seen:
                    continue
                seen.add(id(param.blob))
                self.dist.broadcast(self._tensor(param.blob), src=self._global_rank(0), group=self.group)

    def require_same(self, value: int, what: str, like: Any) -> None:
        """Raise on every process unless all processes hold the same integer ``value``."""
        if self.world_size == 1:
            return
        largest, minus_smallest = self._all_reduce([float(value), -float(value)], like, self.dist.ReduceOp.MAX)
        if largest != -minus_smallest:
            raise RuntimeError(f"DataParallel: the processes disagree on {what}: rank {self.rank} has {value}, "
                               f"the processes range over {int(-minus_smallest)}..{int(largest)}; give each process "
                               "its own snapshot directory to resume from (load_from), all at the same iteration")

    def average_gradients(self, parameters: list[Any]) -> None:
        """gradient = sum over the processes / world_size, for each parameter (in the same order on all)."""
        if self.world_size == 1:
            return
        for param in parameters:
            self.dist.all_reduce(self._tensor(param.gradient), group=self.group)
            param.gradient.backend.ops.scale(param.gradient.data, 1.0 / self.world_size)

    def average_scalars(self, values: list[float], like: Any) -> list[float]:
        """The mean over the processes of each of ``values``; ``like`` is a blob on the net's backend (its
        device decides where the reduction runs, as NCCL needs GPU tensors)."""
        if self.world_size == 1 or not values:
            return list(values)
        return [v / self.world_size for v in self._all_reduce(values, like, self.dist.ReduceOp.SUM)]

    # --- helpers ----------------------------------------------------------------------------------
    def _all_reduce(self, values: list[float], like: Any, op: Any) -> list[float]:
        """``values`` reduced with ``op`` over the processes, as float64, on ``like``'s device."""
        import torch

        device = like.data.device if isinstance(like.data, torch.Tensor) else "cpu"
        total = torch.tensor(values, dtype=torch.float64, device=device)
        self.dist.all_reduce(total, op=op, group=self.group)
        return total.cpu().tolist()

    def _global_rank(self, group_rank: int) -> int:
        return group_rank if self.group is None else self.dist.get_global_rank(self.group, group_rank)

    @staticmethod
    def _tensor(blob: Any) -> Any:
        """A torch view of a blob's storage (a NumPy array is wrapped without a copy)."""
        import numpy as np
        import torch

        data = blob.data
        if isinstance(data, np.ndarray):
            if not data.flags.c_contiguous:
                raise ValueError(f"DataParallel: blob {blob.name!r} is not contiguous")
            return torch.from_numpy(data)
        return data

    def __repr__(self) -> str:
        return f"DataParallel(rank={self.rank}, world_size={self.world_size})"
