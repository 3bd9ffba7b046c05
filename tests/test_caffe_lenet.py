"""A real trained Caffe model: the LeNet of ethereon/caffe-tensorflow (Caffe's MNIST example, 10000
iterations) converted with ``load_net`` classifies the MNIST test set.

* NumpyBackend, all 10000 images (input x / 256 in float32, like the Caffe data layer's scale): at least
  99.1 % correct (SOURCES.md measured 99.14 % with an independent NumPy forward pass).
* TritonBackend (exact "ieee" fp32) gives the same predictions and probabilities as NumPy on the first
  512 images (four batches of 128), on a GPU and in Triton's interpreter alike (there LeNet's forward
  pass takes about 0.2 s per image).

Both tests are skipped when the external files are absent.
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import pytest

import mocha_triton as mt
from mocha_triton.caffe import feed, load_net

EXTERNAL = "/work/shared/external"
LENET = os.path.join(EXTERNAL, "caffe", "lenet_ethereon")
MNIST = os.path.join(EXTERNAL, "mnist")
FILES = [os.path.join(LENET, "lenet.prototxt"), os.path.join(LENET, "lenet_iter_10000.caffemodel"),
         os.path.join(MNIST, "t10k-images-idx3-ubyte.gz"), os.path.join(MNIST, "t10k-labels-idx1-ubyte.gz")]

pytestmark = pytest.mark.skipif(not all(os.path.isfile(f) for f in FILES),
                                reason="the Caffe LeNet model or the MNIST test set is not available")


def read_idx(path: str) -> np.ndarray:
    """An IDX file (MNIST's format): magic (0, 0, dtype 0x08 = uint8, ndim), big-endian dims, data."""
    raw = gzip.open(path).read()
    assert raw[:3] == b"\x00\x00\x08", f"{path}: not an unsigned-byte IDX file"
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw[4:4 + 4 * ndim], ">u4"))
    return np.frombuffer(raw[4 + 4 * ndim:], np.uint8).reshape(shape)


@pytest.fixture(scope="module")
def mnist() -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(FILES[2]).astype(np.float32)[:, None] / np.float32(256)  # (10000, 1, 28, 28)
    labels = read_idx(FILES[3]).astype(np.int64)
    assert images.shape == (10000, 1, 28, 28) and labels.shape == (10000,)
    return images, labels


def probabilities(backend: mt.Backend, images: np.ndarray, batch: int) -> np.ndarray:
    """The 'prob' blob of the converted deploy net for every image (len(images) % batch == 0)."""
    net = load_net(FILES[0], FILES[1], backend, batch_size=batch)
    result = []
    for start in range(0, len(images), batch):
        feed(net, data=images[start:start + batch])
        net.forward()
        result.append(net.output_blobs["prob"].to_numpy())
    net.destroy()
    return np.concatenate(result)


def test_numpy_backend_classifies_mnist_at_caffe_accuracy(mnist):
    images, labels = mnist
    prob = probabilities(mt.NumpyBackend("float32"), images, batch=500)
    accuracy = float(np.mean(prob.argmax(axis=1) == labels))
    assert accuracy >= 0.991, accuracy
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_triton_backend_gives_the_same_predictions(mnist):
    images, _ = mnist
    count, batch = 512, 128
    subset = images[:count]
    expected = probabilities(mt.NumpyBackend("float32"), subset, batch)
    actual = probabilities(mt.TritonBackend(precision="ieee"), subset, batch)
    np.testing.assert_array_equal(actual.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_allclose(actual, expected, atol=1e-5)
