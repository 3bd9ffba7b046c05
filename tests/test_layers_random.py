"""RandomNormal and RandomMask layers (mocha_triton/layers/random.py).

* RandomNormal: top shapes ``(batch_sizes[i], *output_dims)``; the values are the backend's Philox
  normals (cpu_ref.random.randn_float32 at consecutive offsets, top after top, forward after forward);
  mean 0 and variance 1 within 5 standard errors on 40 000 draws; two forwards differ; reseeding replays.
* RandomMask: on several bottoms, ``x * (u > ratio)`` with u the backend's Philox uniforms
  (cpu_ref.random.rand_float32), kept values bit-identical (no rescaling), the zeroed fraction within 5
  standard errors of ``ratio``; backward multiplies by the same mask and puts the bottom's values back;
  the "test" phase is the identity and draws nothing.
* A denoising auto-encoder net (Split -> RandomMask -> IP(sigmoid) -> + 0.1 * RandomNormal -> IP ->
  square loss): objective and every parameter gradient equal torch float64 with the same mask and noise.
* Reproducible from the backend seed; resumed exactly from a resume point and from a solver snapshot
  (6 straight iterations == 3, snapshot, resume, 3 more; bitwise), and another seed trains differently.
* Tiny TritonBackend cases against the NumPy backend (same masks exactly, normals within float32).
* Bad configurations name the layer.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mocha_triton.backends import NumpyBackend, TritonBackend
from mocha_triton.blob import Blob
from mocha_triton.coffee import Snapshot
from mocha_triton.cpu_ref.random import rand_float32, randn_float32
from mocha_triton.layers.base import LayerError
from mocha_triton.layers.combine import ElementWiseLayer
from mocha_triton.layers.data import MemoryDataLayer
from mocha_triton.layers.inner_product import InnerProductLayer
from mocha_triton.layers.pointwise_loss import SquareLossLayer
from mocha_triton.layers.random import RandomMaskLayer, RandomNormalLayer
from mocha_triton.layers.utility import SplitLayer
from mocha_triton.net import Net
from mocha_triton.neurons import Sigmoid
from mocha_triton.parameter import GaussianInitializer
from mocha_triton.policies import LRPolicy, MomPolicy
from mocha_triton.snapshots import capture_resume_point, restore_resume_point
from mocha_triton.solvers import SGD, Solver, SolverParameters
from support import assert_close

# --- RandomNormal --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_normal_draws_the_backend_stream_top_after_top(dtype):
    backend = NumpyBackend(dtype, seed=11)
    layer = RandomNormalLayer(tops=("a", "b"), output_dims=(3, 2), batch_sizes=(4, 1))
    assert layer.name == "random-normal" and layer.is_source
    state = layer.setup(backend, [], [])
    assert [blob.shape for blob in state.blobs] == [(4, 3, 2), (1, 3, 2)]
    assert all(blob.dtype == dtype for blob in state.blobs)
    offset = 0
    for _ in range(2):
        state.forward([])
        for blob in state.blobs:
            expected = randn_float32(11, offset, blob.size).reshape(blob.shape).astype(dtype)
            np.testing.assert_array_equal(blob.to_numpy(), expected)
            offset += blob.size
    assert backend.random_offset == offset


def test_random_normal_is_standard_normal_and_fresh_every_forward():
    state = RandomNormalLayer(tops=("z",), output_dims=(200,), batch_sizes=200).setup(NumpyBackend("float64"), [], [])
    state.forward([])
    first = state.blobs[0].to_numpy()
    state.forward([])
    second = state.blobs[0].to_numpy()
    n = first.size
    assert abs(first.mean()) < 5 / np.sqrt(n)  # standard error of the mean: 1 / sqrt(n)
    assert abs(first.var() - 1) < 5 * np.sqrt(2 / n)  # of the variance of N(0, 1): sqrt(2 / n)
    assert not np.any(first == second)


@pytest.mark.parametrize("kwargs, match", [
    (dict(tops=("z",), output_dims=(2,), batch_sizes=(2,), bottoms=("x",)),
     r"RandomNormalLayer 'random-normal': is a source and takes no bottoms"),
    (dict(tops=(), output_dims=(2,), batch_sizes=()), r"tops must be a non-empty list of distinct names"),
    (dict(tops=("z", "z"), output_dims=(2,), batch_sizes=(2, 2)), r"tops must be a non-empty list of distinct"),
    (dict(tops=("z",), output_dims=(2, 0), batch_sizes=(2,)), r"output_dims must hold positive ints"),
    (dict(tops=("z",), output_dims=2, batch_sizes=(2,)), r"output_dims must be a tuple of ints, got 2"),
    (dict(tops=("z", "w"), output_dims=(2,), batch_sizes=(2,)), r"batch_sizes must have one entry per top"),
    (dict(tops=("z",), output_dims=(2,), batch_sizes=(0,)), r"batch_sizes must hold positive ints"),
    (dict(tops=("z",), output_dims=(2,), batch_sizes=(2,), eltype="int32"),
     r"eltype must be None \(the backend's dtype\) or one of \('float32', 'float64'\), got 'int32'"),
])
def test_random_normal_bad_configurations(kwargs, match):
    with pytest.raises(LayerError, match=match):
        RandomNormalLayer(**kwargs)


def test_random_normal_eltype_must_match_the_backend():
    ok = RandomNormalLayer(tops=("z",), output_dims=(2,), batch_sizes=(3,), eltype=np.float32)
    assert ok.eltype == "float32" and ok.setup(NumpyBackend("float32"), [], []).blobs[0].dtype == "float32"
    with pytest.raises(LayerError, match=r"RandomNormalLayer 'random-normal': eltype float32 differs from the dtype "
                                         r"float64 of the backend"):
        ok.setup(NumpyBackend("float64"), [], [])


# --- RandomMask -----------------------------------------------------------------------------------------


def mask_setup(backend, xs, ratio=0.3, phase="train", with_diffs=True, name="random-mask"):
    layer = RandomMaskLayer(name=name, ratio=ratio, bottoms=tuple(f"x{i}" for i in range(len(xs))))
    inputs = [Blob.from_numpy(backend, x, f"x{i}") for i, x in enumerate(xs)]
    diffs = [Blob.zeros(backend, x.shape) if with_diffs else None for x in xs]
    return layer.setup(backend, inputs, diffs, phase), inputs, diffs


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_random_mask_zeroes_with_probability_ratio_without_rescaling(dtype):
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((40, 25, 20)).astype(dtype), rng.standard_normal((7, 3)).astype(dtype)]
    backend = NumpyBackend(dtype, seed=4)
    state, inputs, diffs = mask_setup(backend, xs, ratio=0.3)
    assert state.layer.is_inplace and state.layer.can_backprop and not state.blobs
    state.forward(inputs)
    offset = 0
    masks = []
    for x, blob in zip(xs, inputs):
        u = rand_float32(4, offset, x.size).reshape(x.shape)
        offset += x.size
        keep = u > np.float32(0.3)
        masks.append(keep)
        np.testing.assert_array_equal(blob.to_numpy(), np.where(keep, x, 0))  # kept values exactly, no scaling
    zeroed = 1 - masks[0].mean()
    assert abs(zeroed - 0.3) < 5 * np.sqrt(0.3 * 0.7 / masks[0].size)
    assert backend.random_offset == offset

    dys = [rng.standard_normal(x.shape).astype(dtype) for x in xs]
    for diff, dy in zip(diffs, dys):
        diff.copy_from(dy)
    state.backward(inputs, diffs)
    for x, blob, diff, dy, keep in zip(xs, inputs, diffs, dys, masks):
        np.testing.assert_array_equal(diff.to_numpy(), np.where(keep, dy, 0))
        np.testing.assert_array_equal(blob.to_numpy(), x)  # the bottom's values are back for the producer


def test_random_mask_draws_a_fresh_mask_every_forward_and_skips_missing_gradients():
    x = np.ones((50, 20))
    state, inputs, _ = mask_setup(NumpyBackend("float64"), [x], ratio=0.5, with_diffs=False)
    state.forward(inputs)
    first = inputs[0].to_numpy()
    state.backward(inputs, [None])
    state.forward(inputs)
    assert not np.array_equal(first, inputs[0].to_numpy())


def test_random_mask_is_the_identity_in_the_test_phase():
    x = np.arange(12.0).reshape(3, 4)
    backend = NumpyBackend("float64")
    state, inputs, diffs = mask_setup(backend, [x], phase="test")
    state.forward(inputs)
    diffs[0].copy_from(np.full(x.shape, 2.0))
    state.backward(inputs, diffs)
    np.testing.assert_array_equal(inputs[0].to_numpy(), x)
    np.testing.assert_array_equal(diffs[0].to_numpy(), np.full(x.shape, 2.0))
    assert backend.random_offset == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(ratio=0.0, bottoms=("x",)), r"RandomMaskLayer 'random-mask': ratio must be a number in \(0, 1\), got 0.0"),
    (dict(ratio=1, bottoms=("x",)), r"ratio must be a number in \(0, 1\), got 1"),
    (dict(ratio=True, bottoms=("x",)), r"ratio must be a number in \(0, 1\), got True"),
    (dict(bottoms=()), r"needs at least one bottom"),
    (dict(bottoms=("x", "x")), r"bottoms must be distinct"),
    (dict(bottoms=("x",), tops=("y",)), r"works in place on its bottoms and takes no tops"),
])
def test_random_mask_bad_configurations(kwargs, match):
    with pytest.raises(LayerError, match=match):
        RandomMaskLayer(**kwargs)


def test_random_mask_refuses_an_unknown_phase():
    with pytest.raises(LayerError, match=r"RandomMaskLayer 'random-mask': phase must be 'train' or 'test'"):
        mask_setup(NumpyBackend(), [np.zeros((2, 2))], phase="eval")


# --- a denoising auto-encoder net ------------------------------------------------------------------------


def dae_layers(x: np.ndarray, batch_size: int = 4) -> list:
    gauss = dict(weight_init=GaussianInitializer(std=0.5), bias_init=GaussianInitializer(std=0.5))
    return [
        MemoryDataLayer(tops=("x",), data=(x,), batch_size=batch_size),
        SplitLayer(name="split", bottoms=("x",), tops=("orig", "corrupt")),
        RandomMaskLayer(ratio=0.3, bottoms=("corrupt",)),
        InnerProductLayer(name="enc", output_dim=3, neuron=Sigmoid(), bottoms=("corrupt",), tops=("h",), **gauss),
        RandomNormalLayer(tops=("eps",), output_dims=(3,), batch_sizes=(batch_size,)),
        ElementWiseLayer(name="noisy", operation="add", coeffs=(1.0, 0.1), bottoms=("h", "eps"), tops=("hn",)),
        InnerProductLayer(name="dec", output_dim=x.shape[1], bottoms=("hn",), tops=("recon",), **gauss),
        SquareLossLayer(bottoms=("recon", "orig")),
    ]


def dae_data(n: int = 8, d: int = 5) -> np.ndarray:
    return np.random.default_rng(2).standard_normal((n, d))


def test_denoising_autoencoder_gradients_match_torch():
    x = dae_data()
    net = Net("dae", NumpyBackend("float64", seed=6), dae_layers(x))
    net.check_bp_topology()
    objective = net.forward()
    net.backward()
    keep = net.get_state("random-mask").dropouts[0].rand.to_numpy() > 0.3
    eps = torch.from_numpy(net.output_blobs["eps"].to_numpy())
    (we, be), (wd, bd) = ([torch.tensor(p.blob.to_numpy(), requires_grad=True) for p in net.params[k]]
                          for k in ("enc", "dec"))
    batch = torch.from_numpy(x[:4])
    h = torch.sigmoid((batch * torch.from_numpy(keep)) @ we.T + be)
    recon = (h + 0.1 * eps) @ wd.T + bd
    loss = ((recon - batch) ** 2).sum() / (2 * 4)
    loss.backward()
    assert abs(objective - loss.item()) <= 1e-12 * abs(loss.item())
    for name, grads in (("enc", (we.grad, be.grad)), ("dec", (wd.grad, bd.grad))):
        for param, grad in zip(net.params[name], grads):
            assert_close(param.gradient.to_numpy(), grad.numpy(), "float64", reduction=8, what=f"{name}.{param.name}")
    np.testing.assert_array_equal(net.output_blobs["corrupt"].to_numpy(), x[:4])  # restored after the backward
    assert not keep.all() and keep.any()


def test_noise_and_masks_are_reproducible_from_the_seed_and_resume_from_a_resume_point():
    x = dae_data()

    def draws(net):
        net.forward()
        return net.output_blobs["eps"].to_numpy(), net.get_state("random-mask").dropouts[0].rand.to_numpy()

    a = Net("a", NumpyBackend("float64", seed=3), dae_layers(x))
    b = Net("b", NumpyBackend("float64", seed=3), dae_layers(x))
    c = Net("c", NumpyBackend("float64", seed=4), dae_layers(x))
    first_a, first_b, first_c = draws(a), draws(b), draws(c)
    for u, v in zip(first_a, first_b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(first_a[0], first_c[0]) and not np.array_equal(first_a[1], first_c[1])

    point = capture_resume_point(a)
    second = draws(a)
    draws(a)
    restore_resume_point(a, point)
    for u, v in zip(draws(a), second):
        np.testing.assert_array_equal(u, v)


def test_training_resumes_bit_for_bit_from_a_snapshot(tmp_path):
    x = dae_data()

    def run(max_iter, seed=6, load_from="", snapshot_every=0):
        net = Net("dae", NumpyBackend("float64", seed=seed), dae_layers(x))
        params = SolverParameters(max_iter=max_iter, regu_coef=0.0, lr_policy=LRPolicy.Fixed(0.2),
                                  mom_policy=MomPolicy.Fixed(0.5), load_from=load_from)
        solver = Solver(SGD(), params)
        if snapshot_every:
            solver.add_coffee_break(Snapshot(str(tmp_path)), every_n_iter=snapshot_every)
        solver.solve(net)
        return [p.blob.to_numpy() for name in ("enc", "dec") for p in net.params[name]]

    straight = run(6)
    run(3, snapshot_every=3)
    assert (tmp_path / "snapshot-000003.h5").exists()
    resumed = run(6, load_from=str(tmp_path))
    for a, b in zip(straight, resumed):
        np.testing.assert_array_equal(a, b)
    other_seed = run(6, seed=7)  # other draws (and initial weights): another trajectory
    assert not np.array_equal(straight[0], other_seed[0])


# --- TritonBackend ---------------------------------------------------------------------------------------


def test_triton_backend_matches_numpy():
    x = np.random.default_rng(8).standard_normal((6, 7)).astype(np.float32)
    results = []
    for backend in (NumpyBackend("float32", seed=21), TritonBackend("cpu", seed=21)):
        normal = RandomNormalLayer(tops=("z",), output_dims=(5,), batch_sizes=(3,)).setup(backend, [], [])
        normal.forward([])
        mask, inputs, diffs = mask_setup(backend, [x], ratio=0.4)
        mask.forward(inputs)
        masked = inputs[0].to_numpy()
        diffs[0].copy_from(np.ones_like(x))
        mask.backward(inputs, diffs)
        results.append((normal.blobs[0].to_numpy(), masked, diffs[0].to_numpy(), inputs[0].to_numpy()))
    (z_np, masked_np, dx_np, restored_np), (z_tr, masked_tr, dx_tr, restored_tr) = results
    assert_close(z_tr, z_np, "float32", what="normals")
    np.testing.assert_array_equal(masked_tr, masked_np)  # the uniform draws are bit-exact on both backends
    np.testing.assert_array_equal(dx_tr, dx_np)
    np.testing.assert_array_equal(restored_tr, x)
    np.testing.assert_array_equal(restored_np, x)
    assert 0 < (masked_np == 0).sum() < x.size
