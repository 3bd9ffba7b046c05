"""Caffe solvers as mocha-triton solvers (mocha_triton/caffe/solver.py).

* A Caffe solver with an HDF5Data train/test net (written here with small random data) trains and
  validates with our coffee breaks: the test runs exactly ``test_iter`` batches, snapshots land in the
  ``snapshot_prefix`` directory, and the classes are learned.
* The first SGD update equals the hand-computed Caffe update (``lr_mult``, ``decay_mult``,
  ``weight_decay``, the policy's learning rate).
* Every lr_policy against Caffe's closed form; unsupported settings raise errors naming the field.
"""

from __future__ import annotations

import math
import os
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

import mocha_triton as mt
from mocha_triton.caffe import CaffeConversionError, CaffeTestPerformance, MultiStepLR, SigmoidLR, load_solver
from mocha_triton.caffe.reader import read_solver
from mocha_triton.caffe.solver import caffe_lr_policy

NET = """
name: "tiny"
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TRAIN }
        hdf5_data_param { source: "train.txt" batch_size: 16 shuffle: true } }
layer { name: "data" type: "HDF5Data" top: "data" top: "label" include { phase: TEST }
        hdf5_data_param { source: "test.txt" batch_size: 8 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        param { lr_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "xavier" }
                            bias_filler { type: "constant" } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" }
                              bias_filler { type: "constant" value: 0.1 } } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy" include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

SOLVER = """
net: "net.prototxt"
test_iter: 3
test_interval: 20
base_lr: 0.05
momentum: 0.9
weight_decay: 0.0005
lr_policy: "step"
gamma: 0.5
stepsize: 20
display: 10
max_iter: 40
snapshot: 20
snapshot_prefix: "snaps"
random_seed: 7
"""


def write_data(folder, name: str, n: int, seed: int) -> None:
    """``n`` samples (1, 6, 6) of 3 classes: a fixed pattern per class plus noise; labels as floats."""
    patterns = np.random.default_rng(0).choice([-1.0, 1.0], size=(3, 1, 6, 6))
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, n)
    with h5py.File(folder / f"{name}.h5", "w") as f:
        f["data"] = patterns[label] + rng.normal(0, 0.5, (n, 1, 6, 6))
        f["label"] = label.astype(np.float64)
    (folder / f"{name}.txt").write_text(f"{name}.h5\n")


@pytest.fixture
def caffe_dir(tmp_path, monkeypatch):
    """tmp/model: the solver, the net and the data; the current directory is tmp/run."""
    model = tmp_path / "model"
    model.mkdir()
    write_data(model, "train", 96, 1)
    write_data(model, "test", 32, 2)
    (model / "net.prototxt").write_text(NET)
    (model / "solver.prototxt").write_text(SOLVER)
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(run)
    return model


def test_solver_trains_validates_and_snapshots(caffe_dir, capsys):
    solver, train_net, test_net = load_solver(str(caffe_dir / "solver.prototxt"), mt.NumpyBackend("float64"))
    params = solver.params
    assert isinstance(solver.method, mt.SGD)
    assert (params.max_iter, params.regu_coef) == (40, 0.0005)
    assert params.lr_policy == mt.LRPolicy.Step(0.05, 0.5, 20) and params.mom_policy == mt.MomPolicy.Fixed(0.9)
    assert (train_net.phase, test_net.phase) == ("train", "test")
    assert test_net.params["conv"][0].blob is train_net.params["conv"][0].blob  # shared by layer name
    breaks = {type(cb.coffee).__name__: cb.every_n_iter for cb in solver.lounge.coffee_breaks}
    assert breaks == {"TrainingSummary": 10, "CaffeTestPerformance": 20, "Snapshot": 20}

    state = solver.solve(train_net)
    assert state.iteration == 40
    stats = solver.lounge.statistics
    accuracy, test_loss = stats["accuracy-accuracy"], stats["loss-loss"]
    assert sorted(accuracy) == sorted(test_loss) == [0, 20, 40]
    assert accuracy[40] >= 0.9 and test_loss[40] < test_loss[0]
    assert sorted(stats["learning_rate"]) == [0, 10, 20, 30, 40]
    assert stats["learning_rate"][30] == pytest.approx(0.025)  # step: 0.05 * 0.5 ** (30 // 20)
    data = test_net.get_state("data")  # 3 tests x 3 batches x 8 = 72 samples of 32: exactly test_iter batches
    assert (data.epoch, data.offset) == (2, 8)
    snapshots = sorted(os.listdir("snaps"))  # snapshot_prefix is relative to the current directory
    assert snapshots == ["snapshot-000000.h5", "snapshot-000020.h5", "snapshot-000040.h5"]
    out = capsys.readouterr().out
    assert "TEST iter=000020 accuracy-accuracy=" in out and "TRAIN iter=000010" in out


def test_first_update_is_caffes_sgd_step(caffe_dir):
    solver, net, _ = load_solver(str(caffe_dir / "solver.prototxt"), mt.NumpyBackend("float64"))
    state = solver.init(net)
    before = {name: [p.blob.to_numpy() for p in params] for name, params in net.params.items()}
    net.backward(0.0)  # the raw gradients of the batch the first update uses
    grads = {name: [p.gradient.to_numpy() for p in params] for name, params in net.params.items()}
    solver.step(net, state)
    lr, decay = 0.05, 0.0005  # Step(0.05, 0.5, 20) at iteration 1; weight_decay
    expected = {  # w -= lr * lr_mult * (g + weight_decay * decay_mult * w); the momentum history starts at 0
        "conv": [before["conv"][0] - lr * 1 * (grads["conv"][0] + decay * 1 * before["conv"][0]),
                 before["conv"][1] - lr * 2 * grads["conv"][1]],
        "ip": [before["ip"][0] - lr * (grads["ip"][0] + decay * before["ip"][0]),
               before["ip"][1] - lr * (grads["ip"][1] + decay * before["ip"][1])],
    }
    for name, arrays in expected.items():
        for param, array in zip(net.params[name], arrays):
            np.testing.assert_allclose(param.blob.to_numpy(), array, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("settings, expected", [
    ('type: "Adam" momentum: 0.8 momentum2: 0.99 delta: 1e-6', mt.Adam(beta1=0.8, beta2=0.99, epsilon=1e-6)),
    ('type: "Adam" momentum: 0.9', mt.Adam(beta1=0.9, beta2=0.999, epsilon=1e-8)),  # Caffe's defaults
    ('type: "AdaGrad" delta: 1e-7', mt.Adagrad(epsilon=1e-7)),
    ('type: "RMSProp" rms_decay: 0.95', mt.RMSProp(decay=0.95, epsilon=1e-8)),
    ('type: "AdaDelta" momentum: 0.95 delta: 1e-6', mt.Adadelta(rho=0.95, epsilon=1e-6)),
    ('solver_type: ADAM momentum: 0.9', mt.Adam()),  # the legacy enum, upgraded
])
def test_adaptive_solver_types(caffe_dir, settings, expected):
    (caffe_dir / "adaptive.prototxt").write_text(SOLVER.replace("momentum: 0.9\n", "") + settings)
    solver, _, _ = load_solver(str(caffe_dir / "adaptive.prototxt"), mt.NumpyBackend("float64"))
    assert solver.method == expected
    assert solver.params.mom_policy == mt.MomPolicy.Fixed(0.0)


def test_first_update_is_caffes_adam_step(caffe_dir):
    """Caffe's first Adam update (t = 1): m = (1 - b1) g, v = (1 - b2) g^2,
    w -= lr * sqrt(1 - b2) / (1 - b1) * m / (sqrt(v) + delta), with g including the weight decay."""
    text = SOLVER.replace("momentum: 0.9\n", 'type: "Adam" momentum: 0.8 momentum2: 0.95 delta: 0.001\n')
    (caffe_dir / "adam.prototxt").write_text(text)
    solver, net, _ = load_solver(str(caffe_dir / "adam.prototxt"), mt.NumpyBackend("float64"))
    state = solver.init(net)
    before = {name: [p.blob.to_numpy() for p in params] for name, params in net.params.items()}
    net.backward(0.0)
    grads = {name: [p.gradient.to_numpy() for p in params] for name, params in net.params.items()}
    solver.step(net, state)
    lr, decay, b1, b2, delta = 0.05, 0.0005, 0.8, 0.95, 0.001
    for name, lr_mults, decay_mults in (("conv", (1, 2), (1, 0)), ("ip", (1, 1), (1, 1))):
        for param, w, g, lr_mult, decay_mult in zip(net.params[name], before[name], grads[name], lr_mults,
                                                     decay_mults):
            g = g + decay * decay_mult * w
            m, v = (1 - b1) * g, (1 - b2) * g * g
            expected = w - lr * lr_mult * math.sqrt(1 - b2) / (1 - b1) * m / (np.sqrt(v) + delta)
            np.testing.assert_allclose(param.blob.to_numpy(), expected, rtol=1e-12, atol=1e-15, err_msg=name)


def test_inline_net_nesterov_and_no_initial_test(caffe_dir, monkeypatch):
    inline = "net_param { " + NET.replace('name: "tiny"', "") + " }"
    text = f"""{inline}
    type: "Nesterov" base_lr: 0.01 momentum: 0.5 lr_policy: "fixed" max_iter: 2
    test_iter: 1 test_interval: 1 test_initialization: false
    """
    monkeypatch.chdir(caffe_dir)  # an inline net finds its HDF5 lists from the current directory
    solver, net, test_net = load_solver(text, mt.NumpyBackend("float64"))
    assert isinstance(solver.method, mt.Nesterov)
    test_break = next(cb.coffee for cb in solver.lounge.coffee_breaks if isinstance(cb.coffee, CaffeTestPerformance))
    assert (test_break.test_iter, test_break.test_initialization) == (1, False)
    solver.solve(net)
    assert sorted(solver.lounge.statistics["accuracy-accuracy"]) == [1, 2]


def test_separate_train_and_test_net_files(caffe_dir):
    lines = NET.splitlines()
    test_data = next(i for i, line in enumerate(lines) if "include { phase: TEST }" in line and "HDF5Data" in line)
    train_only = "\n".join(lines[:test_data] + lines[test_data + 2:])  # without the TEST data layer
    (caffe_dir / "train.prototxt").write_text(train_only.replace(" include { phase: TEST }", ""))
    text = (caffe_dir / "solver.prototxt").read_text().replace('net: "net.prototxt"',
                                                               'train_net: "train.prototxt" test_net: "net.prototxt"')
    (caffe_dir / "solver2.prototxt").write_text(text)
    solver, net, test_net = load_solver(str(caffe_dir / "solver2.prototxt"), mt.NumpyBackend("float64"))
    assert "accuracy" in [layer.name for layer in net.layers]  # train.prototxt keeps its accuracy in TRAIN
    assert test_net.get_state("data").layer.batch_size == 8


# --- learning-rate policies ------------------------------------------------------------------------------

ITERATIONS = [0, 1, 9, 10, 11, 29, 30, 31, 59, 60, 99, 100, 150]


@pytest.mark.parametrize("settings, closed_form", [
    ('lr_policy: "fixed"', lambda it: 0.1),
    ('lr_policy: "step" gamma: 0.5 stepsize: 10', lambda it: 0.1 * 0.5 ** (it // 10)),
    ('lr_policy: "exp" gamma: 0.99', lambda it: 0.1 * 0.99 ** it),
    ('lr_policy: "inv" gamma: 0.0001 power: 0.75', lambda it: 0.1 * (1 + 0.0001 * it) ** -0.75),
    ('lr_policy: "multistep" gamma: 0.1 stepvalue: 10 stepvalue: 30 stepvalue: 60',
     lambda it: 0.1 * 0.1 ** sum(it >= s for s in (10, 30, 60))),
    ('lr_policy: "poly" power: 2', lambda it: 0.1 * max(0.0, 1 - it / 100) ** 2),
    ('lr_policy: "sigmoid" gamma: -0.1 stepsize: 50', lambda it: 0.1 / (1 + math.exp(0.1 * (it - 50)))),
])
def test_lr_policies_match_caffes_closed_forms(settings, closed_form):
    policy = caffe_lr_policy(read_solver(f'net: "x" base_lr: 0.1 max_iter: 100 {settings}'))
    for it in ITERATIONS:
        assert policy.get(SimpleNamespace(iteration=it)) == pytest.approx(closed_form(it), rel=1e-6), it
    if "multistep" in settings:
        assert policy == MultiStepLR(0.1, 0.1, (10, 30, 60))
    if "sigmoid" in settings:
        assert isinstance(policy, SigmoidLR)


@pytest.mark.parametrize("settings, match", [
    ('lr_policy: "step" gamma: 0.5', "lr_policy 'step' needs stepsize"),
    ('lr_policy: "cosine"', "lr_policy 'cosine' is not supported; use one of fixed, step"),
    ('lr_policy: "multistep" gamma: 0.5', "needs stepvalue"),
    ('lr_policy: "multistep" gamma: 0.5 stepvalue: 20 stepvalue: 10', "stepvalues must increase"),
])
def test_lr_policy_errors(settings, match):
    with pytest.raises(CaffeConversionError, match=match):
        caffe_lr_policy(read_solver(f'net: "x" base_lr: 0.1 max_iter: 100 {settings}'))


@pytest.mark.parametrize("old, new, match", [
    ("", 'type: "Lion"', r"solver type 'Lion' is not supported; use one of \['SGD', 'Nesterov', 'Adam', 'AdaGrad'"),
    ("", 'type: "AdaGrad"', r"momentum 0.9 cannot be used with AdaGrad \(Caffe refuses it too\)"),
    ("momentum: 0.9", 'type: "RMSProp" momentum: 0.5', r"momentum 0.5 cannot be used with RMSProp"),
    ("momentum: 0.9", 'type: "Adam" momentum: 1.0', r"Adam settings \(momentum, momentum2, rms_decay, delta\): "
                                                     r"Adam: beta1 must be in \[0, 1\), got 1.0"),
    ("momentum: 0.9", 'type: "AdaDelta" momentum: 0.95 delta: 0', r"Adadelta: epsilon must be > 0, got 0.0"),
    ("momentum: 0.9", 'type: "RMSProp" rms_decay: 1.5', r"RMSProp: decay must be in \[0, 1\)"),
    ("", "iter_size: 2", "iter_size 2 is not supported"),
    ("", "clip_gradients: 10", "clip_gradients is not supported"),
    ("", 'regularization_type: "L3"', "regularization_type 'L3'"),
    ('net: "net.prototxt"', 'net: "missing.prototxt"', r"net file 'missing.prototxt' not found \(looked for"),
    ("", 'test_net: "net.prototxt" test_net: "net.prototxt"', "has 2 test nets; only one is supported"),
    ("", 'train_net: "net.prototxt"', r"needs exactly one of net, net_param, train_net, train_net_param"),
    ("max_iter: 40", "", "needs max_iter"),
])
def test_unsupported_solver_settings(caffe_dir, old, new, match):
    text = SOLVER.replace(old, new) if old else SOLVER + new
    (caffe_dir / "bad.prototxt").write_text(text)
    with pytest.raises(CaffeConversionError, match=match) as info:
        load_solver(str(caffe_dir / "bad.prototxt"), mt.NumpyBackend("float64"))
    assert "bad.prototxt" in str(info.value)
