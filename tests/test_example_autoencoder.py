"""The stacked denoising autoencoder example (examples/denoising_autoencoder.py): pretraining lowers the
reconstruction loss of every stage, fine-tuning starts from the pretrained weights, and both classifiers
learn the digits (a short run)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

import mocha_triton as mt  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "denoising_autoencoder.py"


def load_example():
    spec = importlib.util.spec_from_file_location("denoising_autoencoder_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example = load_example()


def test_pretraining_then_fine_tuning_learns(capsys):
    cfg = example.Config(pretrain_iter=300, finetune_iter=400)
    result = example.run(cfg)
    for first, last in result["pretrain_losses"]:
        assert last < 0.5 * first
    assert result["pretrained_accuracy"] > 0.85 and result["baseline_accuracy"] > 0.8
    out = capsys.readouterr().out
    assert "pretraining layer 2 (32 units, corruption 0.2)" in out and "baseline (random init)" in out


def test_fine_tuning_starts_from_the_pretrained_weights():
    cfg = example.Config(hidden=(16,), corruption=(0.1,), pretrain_iter=20)
    data = example.load_digits()
    backend = mt.NumpyBackend("float32", seed=3)
    example.pretrain(backend, data[0], cfg, log=lambda *args: None)
    pretrained = [p.blob.to_numpy() for p in backend.registry.get("ip-layer-1")]
    net = mt.Net("check", backend, [mt.MemoryDataLayer(name="d", batch_size=5, data=[data[0], data[1]],
                                                       tops=["data", "label"]), *example.classifier_layers(cfg)])
    for param, weights in zip(net.params["ip-1"], pretrained):
        np.testing.assert_array_equal(param.blob.to_numpy(), weights)
    # the classifier shares the very blob that pretraining trained (through the param_key)
    assert net.params["ip-1"][0].blob is backend.registry.get("ip-layer-1")[0].blob
