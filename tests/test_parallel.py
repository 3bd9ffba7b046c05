"""Data-parallel training (mocha_triton.parallel) on two gloo processes equals one process training on the
full batch: parameters broadcast from rank 0 (the ranks start from different seeds), gradients averaged
(regularization and momentum included), the objective averaged. Runs real processes (subprocesses with
a file rendezvous), so it is one of the slower tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

WORKER = textwrap.dedent('''
    import sys
    import numpy as np
    import torch.distributed as dist
    import mocha_triton as mt

    rank, world, store, out, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 5)), rng.standard_normal((16, 2))
    if kind == "triton":
        backend, x, y = mt.TritonBackend(seed=rank + 1), x.astype(np.float32), y.astype(np.float32)
    else:
        backend = mt.NumpyBackend("float64", seed=rank + 1)  # different seeds: the broadcast must fix them
    layers = [mt.MemoryDataLayer(name="data", batch_size=4, data=[x[rank::world], y[rank::world]], tops=["x", "y"]),
              mt.InnerProductLayer(name="ip1", output_dim=3, neuron=mt.neurons.Tanh(), bottoms=["x"], tops=["h"]),
              mt.InnerProductLayer(name="ip2", output_dim=2, bottoms=["h"], tops=["pred"]),
              mt.SquareLossLayer(name="loss", bottoms=["pred", "y"])]
    net = mt.Net("dp", backend, layers)
    params = mt.SolverParameters(max_iter=5, regu_coef=0.01, lr_policy=mt.LRPolicy.Fixed(0.1),
                                 mom_policy=mt.MomPolicy.Fixed(0.9))
    data_parallel = mt.DataParallel()
    assert data_parallel.world_size == world and data_parallel.is_main == (rank == 0)
    state = mt.Solver(mt.SGD(), params, data_parallel=data_parallel).solve(net)
    arrays = {f"{name}_{i}": p.blob.to_numpy() for name, ps in net.params.items() for i, p in enumerate(ps)}
    np.savez(out, obj_val=state.obj_val, loss=state.losses["loss"], **arrays)
    dist.destroy_process_group()
''')


def run_workers(tmp_path, kind: str, world: int = 2) -> list[dict[str, np.ndarray]]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    store = tmp_path / "rendezvous"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(world), str(store),
                               str(tmp_path / f"rank{r}.npz"), kind], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in range(world)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    return [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(world)]


def single_process_reference(kind: str) -> dict[str, np.ndarray]:
    """One process, batch 8: each batch is the union of the two ranks' batches of 4."""
    import mocha_triton as mt

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 5)), rng.standard_normal((16, 2))
    shards = [(x[r::2], y[r::2]) for r in range(2)]
    order = [np.concatenate([shards[0][k][b * 4:(b + 1) * 4], shards[1][k][b * 4:(b + 1) * 4]]) for k in range(2)
             for b in range(2)]
    xs, ys = np.concatenate(order[:2]), np.concatenate(order[2:])
    if kind == "triton":
        backend, xs, ys = mt.TritonBackend(seed=1), xs.astype(np.float32), ys.astype(np.float32)
    else:
        backend = mt.NumpyBackend("float64", seed=1)  # rank 0's seed: its initial weights win the broadcast
    layers = [mt.MemoryDataLayer(name="data", batch_size=8, data=[xs, ys], tops=["x", "y"]),
              mt.InnerProductLayer(name="ip1", output_dim=3, neuron=mt.neurons.Tanh(), bottoms=["x"], tops=["h"]),
              mt.InnerProductLayer(name="ip2", output_dim=2, bottoms=["h"], tops=["pred"]),
              mt.SquareLossLayer(name="loss", bottoms=["pred", "y"])]
    net = mt.Net("single", backend, layers)
    params = mt.SolverParameters(max_iter=5, regu_coef=0.01, lr_policy=mt.LRPolicy.Fixed(0.1),
                                 mom_policy=mt.MomPolicy.Fixed(0.9))
    state = mt.Solver(mt.SGD(), params).solve(net)
    arrays = {f"{name}_{i}": p.blob.to_numpy() for name, ps in net.params.items() for i, p in enumerate(ps)}
    return {"obj_val": np.array(state.obj_val), **arrays}


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["numpy", "triton"])
def test_two_processes_train_like_one_with_the_full_batch(tmp_path, kind):
    ranks = run_workers(tmp_path, kind)
    want = single_process_reference(kind)
    rtol = 1e-12 if kind == "numpy" else 2e-5
    for name, value in want.items():
        for r, got in enumerate(ranks):
            np.testing.assert_allclose(got[name], value, rtol=rtol, atol=rtol, err_msg=f"{name} on rank {r}")
    assert ranks[0]["loss"] == ranks[1]["loss"]  # averaged: every process reports the same


RESUME_WORKER = textwrap.dedent('''
    import sys
    import numpy as np
    import torch.distributed as dist
    import mocha_triton as mt

    rank, world, store, out, root, mode = (int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5],
                                           sys.argv[6])
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=world)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 5)), rng.standard_normal((16, 2))

    def train(max_iter, load_from, snapshot_every=0):
        backend = mt.NumpyBackend("float64", seed=rank + 1)
        layers = [mt.MemoryDataLayer(name="data", batch_size=3, data=[x[rank::world], y[rank::world]],
                                     tops=["x", "y"], shuffle=True),  # shuffling: the data position matters
                  mt.InnerProductLayer(name="ip", output_dim=2, bottoms=["x"], tops=["h"]),
                  mt.DropoutLayer(name="drop", ratio=0.3, bottoms=["h"]),  # per-rank noise
                  mt.SquareLossLayer(name="loss", bottoms=["h", "y"])]
        net = mt.Net("dp", backend, layers)
        params = mt.SolverParameters(max_iter=max_iter, lr_policy=mt.LRPolicy.Fixed(0.1), load_from=load_from)
        solver = mt.Solver(mt.SGD(), params, data_parallel=mt.DataParallel())
        if snapshot_every:
            solver.add_coffee_break(mt.Snapshot(f"{root}/rank{rank}"), every_n_iter=snapshot_every)
        solver.solve(net)
        return net.params["ip"][0].blob.to_numpy()

    if mode == "resume":  # 6 straight vs 3, snapshot per rank, resume per rank, 3 more
        straight = train(6, "")
        train(3, "", snapshot_every=3)
        resumed = train(6, f"{root}/rank{rank}")
        np.savez(out, straight=straight, resumed=resumed)
    else:  # only rank 1 resumes: the ranks disagree on the iteration
        train(2, "", snapshot_every=2)
        try:
            train(4, f"{root}/rank{rank}" if rank == 1 else "")
        except RuntimeError as err:
            np.savez(out, error=str(err))
    dist.destroy_process_group()
''')


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["resume", "disagree"])
def test_each_process_resumes_from_its_own_snapshots(tmp_path, mode):
    script = tmp_path / "resume_worker.py"
    script.write_text(RESUME_WORKER)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", str(tmp_path / "rendezvous"),
                               str(tmp_path / f"rank{r}.npz"), str(tmp_path / "snaps"), mode], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    for r in range(2):
        result = np.load(tmp_path / f"rank{r}.npz")
        if mode == "resume":
            np.testing.assert_array_equal(result["resumed"], result["straight"])
        else:
            assert "the processes disagree on the iteration to start from" in str(result["error"])


def test_data_parallel_needs_an_initialized_process_group():
    import mocha_triton as mt

    with pytest.raises(RuntimeError, match="torch.distributed is not initialized"):
        mt.DataParallel()
    with pytest.raises(TypeError, match="data_parallel must be a mocha_triton.DataParallel"):
        mt.Solver(mt.SGD(), mt.SolverParameters(max_iter=1), data_parallel="yes")
