"""Net topology: sorting, in-place placement, topology errors, sharing across nets, printing, epochs."""

import numpy as np
import pytest

import mocha_triton as mt


def data_layer(n=6, batch=3, name="data"):
    rng = np.random.default_rng(0)
    return mt.MemoryDataLayer(name=name, tops=["data", "label"], batch_size=batch,
                              data=[rng.standard_normal((n, 4)), rng.integers(0, 3, (n, 1)).astype(float)])


def ip(name, bottom, top, dim=3, **kw):
    return mt.InnerProductLayer(name=name, output_dim=dim, bottoms=[bottom], tops=[top], **kw)


def test_layers_in_any_order_are_sorted_and_inplace_runs_after_its_producer():
    layers = [mt.SoftmaxLossLayer(name="loss", bottoms=["ip2", "label"]), ip("ip2", "ip1", "ip2"),
              mt.DropoutLayer(name="drop", bottoms=["ip1"]), ip("ip1", "data", "ip1", dim=5), data_layer()]
    net = mt.Net("n", mt.NumpyBackend("float64"), layers)
    assert [layer.name for layer in net.layers] == ["data", "ip1", "drop", "ip2", "loss"]
    assert np.isfinite(net.forward())


@pytest.mark.parametrize("layers, message", [
    (lambda: [data_layer(), ip("a", "data", "x"), ip("b", "data", "x")], "produced by both"),
    (lambda: [data_layer(), ip("a", "nothing", "x")], "bottom 'nothing' is not produced"),
    (lambda: [data_layer(), ip("a", "y", "x"), ip("b", "x", "y")], "form a cycle"),
    (lambda: [data_layer(), ip("a", "data", "x"), ip("a", "x", "y")], "duplicate layer names"),
])
def test_topology_errors(layers, message):
    with pytest.raises(mt.TopologyError, match=message):
        mt.Net("bad", mt.NumpyBackend(), layers())


def test_fan_out_without_split_and_dangling_blobs_are_caught_before_training():
    backend = mt.NumpyBackend()
    fan_out = mt.Net("fan", backend, [data_layer(), ip("a", "data", "x"), ip("b", "x", "y"), ip("c", "x", "z"),
                                      mt.SoftmaxLossLayer(name="l1", bottoms=["y", "label"]),
                                      mt.SoftmaxLossLayer(name="l2", bottoms=["z", "label"])])
    with pytest.raises(mt.TopologyError, match="insert a SplitLayer"):
        fan_out.check_bp_topology()
    dangling = mt.Net("dangle", backend, [data_layer(), ip("a", "data", "x"), ip("b", "x", "y")])
    with pytest.raises(mt.TopologyError, match="dangling"):
        dangling.check_bp_topology()
    split = mt.Net("split", backend, [data_layer(), ip("a", "data", "x"),
                                      mt.SplitLayer(name="s", bottoms=["x"], tops=["x1", "x2"]),
                                      ip("b", "x1", "y"), ip("c", "x2", "z"),
                                      mt.SoftmaxLossLayer(name="l1", bottoms=["y", "label"]),
                                      mt.SoftmaxLossLayer(name="l2", bottoms=["z", "label"])])
    split.check_bp_topology()


def test_test_net_shares_the_training_nets_weights_by_layer_name():
    backend = mt.NumpyBackend("float64")
    shared = [ip("ip1", "data", "ip1", dim=3)]
    loss = mt.SoftmaxLossLayer(name="loss", bottoms=["ip1", "label"])
    train = mt.Net("train", backend, [data_layer(), *shared, loss])
    test = mt.Net("test", backend, [data_layer(name="test-data")] + shared
                  + [mt.AccuracyLayer(name="acc", bottoms=["ip1", "label"])], phase="test")
    assert test.params["ip1"][0].blob is train.params["ip1"][0].blob
    assert test.params["ip1"][0].gradient is not train.params["ip1"][0].gradient
    train.params["ip1"][0].blob.fill(0.25)
    test.forward()
    np.testing.assert_allclose(test.output_blobs["ip1"].to_numpy(), np.broadcast_to(
        test.output_blobs["data"].to_numpy().sum(1, keepdims=True) * 0.25, (3, 3)))


def test_print_lists_every_layer_with_shapes_and_forward_epoch_counts_one_pass():
    backend = mt.NumpyBackend()
    net = mt.Net("printed", backend, [data_layer(n=7, batch=3), ip("ip1", "data", "ip1"),
                                      mt.SoftmaxLossLayer(name="loss", bottoms=["ip1", "label"])])
    text = str(net)
    assert "ip1" in text and "InnerProductLayer" in text and "data(3, 4) -> ip1(3, 3)" in text
    assert "[weight(3, 4)] [bias(3,)]" in text
    data_state = net.get_state("data")
    net.forward_epoch()
    assert data_state.epoch == 1
    with pytest.raises(KeyError, match="no layer 'missing'"):
        net.get_state("missing")


def test_frozen_layers_are_not_trainable():
    net = mt.Net("f", mt.NumpyBackend(), [data_layer(), ip("ip1", "data", "h"), ip("ip2", "h", "y"),
                                          mt.SoftmaxLossLayer(name="loss", bottoms=["y", "label"])])
    net.freeze("ip1")
    assert [name for name, _ in net.trainable_parameters()] == ["ip2", "ip2"]
    net.unfreeze_all()
    assert len(net.trainable_parameters()) == 4
