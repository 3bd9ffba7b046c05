"""Data tools: IDX reading (raw, gzip, corrupt files), MNIST -> HDF5, the embedded 8x8 digits.

Synthetic IDX files are written here byte by byte with ``struct`` (an independent encoder), the real
MNIST t10k files are read when /work/shared/external/mnist exists (skipped elsewhere).
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest

from mocha_triton import datasets

MNIST_DIR = Path("/work/shared/external/mnist")
T10K_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Encode a uint8 array as IDX: big-endian magic 0x0000 08 ndim, big-endian sizes, the bytes."""
    array = np.asarray(array, np.uint8)
    magic = 0x0800 | array.ndim if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write(path: Path, content: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


@pytest.fixture
def synthetic(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (7, 5, 4), dtype=np.uint8), rng.integers(0, 10, 7, dtype=np.uint8)


# --- IDX reading -------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, synthetic, gz):
    images, labels = synthetic
    img = write(tmp_path / "img", idx_bytes(images), gz)
    lbl = write(tmp_path / "lbl", idx_bytes(labels), gz)
    np.testing.assert_array_equal(datasets.read_idx(img, datasets.IDX_IMAGES_MAGIC), images)
    np.testing.assert_array_equal(datasets.read_idx(lbl, datasets.IDX_LABELS_MAGIC), labels)


def test_read_idx_big_endian_int32(tmp_path):
    values = np.array([[1, -2, 70000], [3, 4, -5]], np.int32)
    content = struct.pack(">I", 0x0C02) + struct.pack(">2I", 2, 3) + values.astype(">i4").tobytes()
    out = datasets.read_idx(write(tmp_path / "ints", content))
    np.testing.assert_array_equal(out, values)
    assert out.dtype.isnative


def test_load_mnist_idx_scales_and_shapes(tmp_path, synthetic):
    images, labels = synthetic
    data, label = datasets.load_mnist_idx(write(tmp_path / "i.gz", idx_bytes(images), True),
                                          write(tmp_path / "l", idx_bytes(labels)))
    assert data.shape == (7, 1, 5, 4) and data.dtype == np.float32
    assert label.shape == (7, 1) and label.dtype == np.float32
    np.testing.assert_array_equal(data[:, 0], images.astype(np.float64) / 256.0)  # /256 is exact in float32
    np.testing.assert_array_equal(label[:, 0], labels)
    assert data.max() < 1.0


@pytest.mark.parametrize("case, message", [
    ("labels-as-images", "bad IDX magic number 2049, expected 2051"),
    ("not-idx", "not an IDX file"),
    ("empty", "no 4-byte magic number"),
    ("short-header", "truncated IDX header"),
    ("short-data", "truncated IDX file"),
    ("trailing", "unexpected bytes"),
    ("bad-gzip", "corrupt or truncated gzip"),
])
def test_corrupt_image_files_name_the_file(tmp_path, synthetic, case, message):
    images, labels = synthetic
    good = idx_bytes(images)
    content = {
        "labels-as-images": idx_bytes(labels),
        "not-idx": b"\x89PNG\r\n\x1a\n" + bytes(64),
        "empty": b"",
        "short-header": good[:10],
        "short-data": good[:-3],
        "trailing": good + b"\x00\x00",
        "bad-gzip": gzip.compress(good)[:-20],
    }[case]
    img = tmp_path / f"{case}-images-idx3-ubyte"
    img.write_bytes(content)
    lbl = write(tmp_path / "labels", idx_bytes(labels))
    with pytest.raises(ValueError, match=message) as info:
        datasets.load_mnist_idx(img, lbl)
    assert str(img) in str(info.value)


def test_mismatched_counts_name_both_files(tmp_path, synthetic):
    images, labels = synthetic
    img = write(tmp_path / "img", idx_bytes(images))
    lbl = write(tmp_path / "lbl", idx_bytes(labels[:5]))
    with pytest.raises(ValueError, match="has 7 images but .* has 5 labels") as info:
        datasets.load_mnist_idx(img, lbl)
    assert str(img) in str(info.value) and str(lbl) in str(info.value)


def test_label_out_of_range_and_missing_file(tmp_path, synthetic):
    images, labels = synthetic
    img = write(tmp_path / "img", idx_bytes(images))
    lbl = write(tmp_path / "lbl", idx_bytes(np.where(labels == labels[0], 12, labels)))
    with pytest.raises(ValueError, match="labels are digits 0..9, found 12"):
        datasets.load_mnist_idx(img, lbl)
    with pytest.raises(FileNotFoundError, match="nope"):
        datasets.load_mnist_idx(tmp_path / "nope", lbl)


# --- HDF5 output -------------------------------------------------------------------------------


def read_source(txt: Path) -> tuple[np.ndarray, np.ndarray]:
    lines = [line for line in Path(txt).read_text().splitlines() if line.strip()]
    assert len(lines) == 1 and Path(lines[0]).is_absolute()
    with h5py.File(lines[0], "r") as f:
        assert f["data"].chunks is None and f["data"].compression is None  # contiguous: mappable
        return f["data"][...], f["label"][...]


def test_mnist_idx_to_hdf5_writes_data_label_and_source_list(tmp_path, synthetic):
    images, labels = synthetic
    img = write(tmp_path / "img.gz", idx_bytes(images), True)
    lbl = write(tmp_path / "lbl.gz", idx_bytes(labels), True)
    txt = datasets.mnist_idx_to_hdf5(img, lbl, tmp_path / "out" / "train.h5")
    assert txt == tmp_path / "out" / "train.txt"
    data, label = read_source(txt)
    assert data.dtype == np.float32 and label.dtype == np.float32
    np.testing.assert_array_equal(data[:, 0], images / 256.0)
    np.testing.assert_array_equal(label, labels[:, None])

    # shuffled: the same (image, label) pairs, in the seeded permutation's order
    txt2 = datasets.mnist_idx_to_hdf5(img, lbl, tmp_path / "shuffled.h5", scale=1.0, shuffle_seed=3)
    data2, label2 = read_source(txt2)
    order = np.random.default_rng(3).permutation(7)
    np.testing.assert_array_equal(data2[:, 0], images[order])
    np.testing.assert_array_equal(label2[:, 0], labels[order])
    assert not np.array_equal(order, np.arange(7))


def test_write_hdf5_rejects_bad_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"bad\.h5: data must be \(N, C, H, W\)"):
        datasets.write_hdf5(tmp_path / "bad.h5", np.zeros((3, 4)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"label must be \(N, 1\) = \(3, 1\)"):
        datasets.write_hdf5(tmp_path / "bad.h5", np.zeros((3, 1, 2, 2)), np.zeros(3))


def test_stratified_split_is_seeded_disjoint_and_proportional():
    label = np.repeat(np.arange(4), [10, 20, 30, 40]).astype(np.float32)
    train, test = datasets.stratified_split(label, 0.2, seed=1)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))
    np.testing.assert_array_equal(np.bincount(label[test].astype(int)), [2, 4, 6, 8])
    again = datasets.stratified_split(label, 0.2, seed=1)
    np.testing.assert_array_equal(again[1], test)
    assert not np.array_equal(datasets.stratified_split(label, 0.2, seed=2)[1], test)
    with pytest.raises(ValueError, match="test_fraction must be in"):
        datasets.stratified_split(label, 1.0, seed=1)


# --- real MNIST --------------------------------------------------------------------------------


@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason="the MNIST files are not available here")
def test_real_mnist_t10k(tmp_path):
    images_gz, labels_gz = MNIST_DIR / "t10k-images-idx3-ubyte.gz", MNIST_DIR / "t10k-labels-idx1-ubyte.gz"
    txt = datasets.mnist_idx_to_hdf5(images_gz, labels_gz, tmp_path / "t10k.h5")
    data, label = read_source(txt)
    assert data.shape == (10000, 1, 28, 28) and label.shape == (10000, 1)
    assert np.bincount(label[:, 0].astype(int)).tolist() == T10K_HISTOGRAM
    # independent decode: a 16-byte header, then the pixels in order
    raw = np.frombuffer(gzip.decompress(images_gz.read_bytes()), np.uint8, offset=16).reshape(10000, 28, 28)
    np.testing.assert_array_equal(data[:, 0], raw / 256.0)
    assert 0.0 <= data.min() and data.max() < 1.0
    assert datasets.read_idx(MNIST_DIR / "train-labels-idx1-ubyte.gz", datasets.IDX_LABELS_MAGIC).shape == (60000,)


# --- the embedded 8x8 digits -------------------------------------------------------------------


def test_digits_upsampling_is_a_padded_kronecker_upscale():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    digits = load_digits()
    data, label = datasets.load_digits_arrays()
    small, _ = datasets.load_digits_arrays(upsample=False)
    assert data.shape == (1797, 1, 28, 28) and small.shape == (1797, 1, 8, 8)
    assert data.dtype == np.float32 and label.dtype == np.float32
    np.testing.assert_array_equal(label[:, 0], digits.target)
    expected_small = np.round(digits.images * 255 / 16) / 256  # MNIST byte range, then /256
    np.testing.assert_allclose(small[:, 0], expected_small, rtol=0, atol=1e-7)
    assert data.min() == 0.0 and data.max() == 255 / 256
    inner = data[:, 0, 2:26, 2:26]
    for di in range(3):
        for dj in range(3):
            np.testing.assert_array_equal(inner[:, di::3, dj::3], small[:, 0])
    border = data[:, 0].copy()
    border[:, 2:26, 2:26] = 0
    assert not border.any()


def test_make_digits_hdf5_split(tmp_path):
    pytest.importorskip("sklearn")
    train_txt, test_txt = datasets.make_digits_hdf5(tmp_path, test_fraction=0.2, seed=5)
    assert train_txt.name == "digits-train.txt" and test_txt.name == "digits-test.txt"
    (train_x, train_y), (test_x, test_y) = read_source(train_txt), read_source(test_txt)
    assert len(train_y) + len(test_y) == 1797
    assert datasets.hdf5_num_samples(train_txt) == len(train_y)
    full_x, full_y = datasets.load_digits_arrays()
    per_class = np.bincount(full_y[:, 0].astype(int))
    np.testing.assert_array_equal(np.bincount(test_y[:, 0].astype(int)), np.round(0.2 * per_class))
    # the two sides hold exactly the original samples (as a multiset of rows)
    rows = {(x.tobytes(), float(y[0])) for x, y in zip(full_x, full_y)}
    assert {(x.tobytes(), float(y[0])) for x, y in zip(np.concatenate([train_x, test_x]),
                                                       np.concatenate([train_y, test_y]))} == rows
    # seeded: the same seed writes the same files, another seed another split
    again = datasets.make_digits_hdf5(tmp_path / "again", test_fraction=0.2, seed=5)
    np.testing.assert_array_equal(read_source(again[1])[1], test_y)
    other = datasets.make_digits_hdf5(tmp_path / "other", test_fraction=0.2, seed=6)
    assert not np.array_equal(read_source(other[1])[1], test_y)


# --- the command line --------------------------------------------------------------------------


def test_cli_converts_and_reports_errors(tmp_path, synthetic, capsys):
    from mocha_triton import cli

    images, labels = synthetic
    img = write(tmp_path / "img.gz", idx_bytes(images), True)
    lbl = write(tmp_path / "lbl", idx_bytes(labels))
    assert cli.main(["mnist-to-hdf5", str(img), str(lbl), str(tmp_path / "m.h5"), "--shuffle-seed", "3"]) == 0
    assert f"wrote {tmp_path / 'm.txt'} (7 samples)" in capsys.readouterr().out
    order = np.random.default_rng(3).permutation(7)
    np.testing.assert_array_equal(read_source(tmp_path / "m.txt")[1][:, 0], labels[order])

    assert cli.main(["mnist-to-hdf5", str(lbl), str(lbl), str(tmp_path / "bad.h5")]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and str(lbl) in err and "expected 2051" in err

    pytest.importorskip("sklearn")
    assert cli.main(["digits-to-hdf5", str(tmp_path / "d"), "--no-upsample", "--test-fraction", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "digits-train.txt" in out and "digits-test.txt" in out
    assert read_source(tmp_path / "d" / "digits-test.txt")[0].shape[1:] == (1, 8, 8)
