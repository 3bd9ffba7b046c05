"""Data tools: turn image data sets into the HDF5 files that the data layers read.

The on-disk convention is Caffe's and Mocha's (see ``HDF5DataLayer``):

* one or more HDF5 files, each with a dataset ``"data"`` of shape (N, C, H, W) float32 and a dataset
  ``"label"`` of shape (N, 1) float32 holding **0-based** class indices;
* a *source list*: a text file naming one HDF5 file per line. A data layer gets the list, not the file.

Two data sets are supported:

* **MNIST** in LeCun's IDX format (:func:`read_idx`, :func:`load_mnist_idx`, :func:`mnist_idx_to_hdf5`),
  gzip-compressed or raw. Pixels are scaled by 1/256 into [0, 1), as Mocha's ``convert.jl`` does.
* **scikit-learn's 8x8 digits** (:func:`load_digits_arrays`, :func:`make_digits_hdf5`): 1797 handwritten
  digits that ship inside scikit-learn (no download), the default data set of the LeNet example. The
  8x8 images are upsampled to MNIST's 28x28 so that LeNet's layers fit unchanged.

Every file problem (bad magic number, truncated file, mismatched counts) raises a ``ValueError`` that
names the file.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from mocha_triton.layers.data import read_source_list

PathLike = str | os.PathLike

#: IDX magic numbers of the MNIST files: 0x00000803 (unsigned bytes, 3 dims) and 0x00000801 (1 dim).
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

#: IDX element types (the third byte of the magic number): code -> big-endian NumPy dtype.
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}

#: Mocha's MNIST scaling: uint8 pixels / 256, into [0, 1).
MNIST_SCALE = 1.0 / 256.0

#: How the 8x8 digits become 28x28: each pixel becomes a 3x3 block (24x24), then 2 zero pixels of
#: padding on every side (28x28), like MNIST's digits centred in a 20x20 box inside 28x28.
DIGITS_UPSCALE = 3
DIGITS_PAD = 2

#: The default seed of the digits' train/test split. The split is part of the data set's definition
#: (like MNIST's fixed test set); training seeds are separate. See examples/mnist_lenet.py for how
#: LeNet's validation accuracy varies with it.
DIGITS_SPLIT_SEED = 1


# --- IDX files ---------------------------------------------------------------------------------


def _read_bytes(path: PathLike) -> bytes:
    """The decompressed content of ``path``: gzip is recognised by its magic bytes, not the name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({err})") from err


def read_idx(path: PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzip-compressed or raw.

    Layout: a big-endian 4-byte magic number ``0x0000TTDD`` (TT the element type code, DD the number
    of dimensions), DD big-endian uint32 sizes, then the elements in C order. Returns an array with
    those dimensions in native byte order. ``expected_magic`` (e.g. :data:`IDX_IMAGES_MAGIC`) is
    checked when given. Raises ``ValueError`` naming the file for a bad magic number, a truncated
    file or trailing bytes.
    """
    content = _read_bytes(path)
    if len(content) < 4:
        raise ValueError(f"{path}: truncated IDX file: {len(content)} bytes, no 4-byte magic number")
    magic = int.from_bytes(content[:4], "big")
    type_code, ndim = (magic >> 8) & 0xFF, magic & 0xFF
    if magic >> 16 != 0 or type_code not in IDX_DTYPES or ndim == 0:
        raise ValueError(f"{path}: bad IDX magic number {magic} (0x{magic:08x}): not an IDX file")
    if expected_magic is not None and magic != expected_magic:
        raise ValueError(f"{path}: bad IDX magic number {magic}, expected {expected_magic}")
    header = 4 + 4 * ndim
    if len(content) < header:
        raise ValueError(f"{path}: truncated IDX header: {len(content)} bytes, expected {header} for {ndim} dims")
    shape = tuple(int.from_bytes(content[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = IDX_DTYPES[type_code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(content) < expected:
        raise ValueError(f"{path}: truncated IDX file: {len(content)} bytes, expected {expected} for shape {shape}")
    if len(content) > expected:
        raise ValueError(f"{path}: {len(content) - expected} unexpected bytes after the IDX data of shape {shape}")
    return np.frombuffer(content, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def load_mnist_idx(image_file: PathLike, label_file: PathLike,
                   scale: float = MNIST_SCALE) -> tuple[np.ndarray, np.ndarray]:
    """Read a pair of MNIST IDX files into arrays in the data layers' layout.

    Returns ``data`` (N, 1, rows, cols) float32 = pixels * ``scale`` (1/256: [0, 1), like Mocha) and
    ``label`` (N, 1) float32 holding the 0-based digit. Raises ``ValueError`` naming the file(s) for
    wrong magic numbers, truncated files, labels outside 0..9 or mismatched image/label counts.
    """
    images = read_idx(image_file, IDX_IMAGES_MAGIC)
    labels = read_idx(label_file, IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{image_file} has {images.shape[0]} images but {label_file} has {labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{label_file}: MNIST labels are digits 0..9, found {int(labels.max())}")
    data = (images.astype(np.float32) * np.float32(scale))[:, None, :, :]
    return np.ascontiguousarray(data), labels.astype(np.float32)[:, None]


# --- HDF5 files and source lists ---------------------------------------------------------------


def source_list_path(h5_path: PathLike) -> Path:
    """Where the source list of an HDF5 file goes: next to it, same stem, ``.txt``."""
    return Path(h5_path).with_suffix(".txt")


def write_source_list(txt_path: PathLike, h5_paths: Sequence[PathLike]) -> Path:
    """Write a data layer's source list: one HDF5 path per line.

    The paths are written absolute, so the list works from any working directory (Mocha's lists hold
    paths relative to the working directory, which breaks when a script is run from elsewhere).
    """
    txt_path = Path(txt_path)
    txt_path.parent.mkdir(parents=True, exist_ok=True)
    txt_path.write_text("".join(f"{Path(p).resolve()}\n" for p in h5_paths))
    return txt_path


def write_hdf5(out_h5: PathLike, data: np.ndarray, label: np.ndarray) -> Path:
    """Write ``data`` (N, C, H, W) and ``label`` (N, 1) as float32 HDF5 datasets "data" and "label",
    plus the source list next to the file (:func:`source_list_path`). Returns the source list's path.

    The datasets are stored contiguous (no chunking, no compression) so readers can map them.
    """
    data = np.asarray(data)
    label = np.asarray(label)
    if data.ndim != 4:
        raise ValueError(f"{out_h5}: data must be (N, C, H, W), got shape {data.shape}")
    if label.shape != (data.shape[0], 1):
        raise ValueError(f"{out_h5}: label must be (N, 1) = ({data.shape[0]}, 1), got shape {label.shape}")
    out_h5 = Path(out_h5)
    out_h5.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(out_h5, "w") as f:
        f.create_dataset("data", data=data.astype(np.float32, copy=False))
        f.create_dataset("label", data=label.astype(np.float32, copy=False))
    return write_source_list(source_list_path(out_h5), [out_h5])


def mnist_idx_to_hdf5(image_gz_or_raw: PathLike, label_gz_or_raw: PathLike, out_h5: PathLike,
                      scale: float = MNIST_SCALE, shuffle_seed: int | None = None) -> Path:
    """Convert a pair of MNIST IDX files (gzip or raw) into one HDF5 file plus its source list.

    ``out_h5`` gets "data" (N, 1, 28, 28) float32 = pixels * ``scale`` and "label" (N, 1) float32
    (0-based digits). With ``shuffle_seed`` the samples are permuted by
    ``np.random.default_rng(shuffle_seed).permutation(N)`` (Mocha's ``convert.jl`` permutes too).
    Returns the path of the source list written next to ``out_h5`` (same stem, ``.txt``).
    """
    data, label = load_mnist_idx(image_gz_or_raw, label_gz_or_raw, scale)
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(data.shape[0])
        data, label = data[order], label[order]
    return write_hdf5(out_h5, data, label)


# --- splitting ---------------------------------------------------------------------------------


def stratified_split(label: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: (train indices, test indices), each shuffled.

    From every class, ``round(test_fraction * class size)`` samples (chosen by a permutation drawn
    from ``np.random.default_rng(seed)``) go to the test side, the rest to the train side, so both
    sides keep the class proportions.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    label = np.asarray(label).reshape(-1)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(label):
        members = rng.permutation(np.flatnonzero(label == cls))
        n_test = int(round(test_fraction * members.size))
        test.append(members[:n_test])
        train.append(members[n_test:])
    train_idx, test_idx = np.concatenate(train), np.concatenate(test)
    if not train_idx.size or not test_idx.size:
        raise ValueError(f"test_fraction {test_fraction} leaves an empty train or test side for {label.size} samples")
    return rng.permutation(train_idx), rng.permutation(test_idx)


def write_split_hdf5(out_dir: PathLike, data: np.ndarray, label: np.ndarray, test_fraction: float, seed: int,
                     prefix: str = "") -> tuple[Path, Path]:
    """Split (data, label) with :func:`stratified_split` and write ``<prefix>train.h5`` and
    ``<prefix>test.h5`` (+ source lists) into ``out_dir``. Returns (train list, test list)."""
    train_idx, test_idx = stratified_split(label, test_fraction, seed)
    out_dir = Path(out_dir)
    train_txt = write_hdf5(out_dir / f"{prefix}train.h5", data[train_idx], label[train_idx])
    test_txt = write_hdf5(out_dir / f"{prefix}test.h5", data[test_idx], label[test_idx])
    return train_txt, test_txt


# --- scikit-learn's 8x8 digits -----------------------------------------------------------------


def load_digits_arrays(upsample: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 handwritten 8x8 digits (bundled with scikit-learn, no download).

    The pixels are integers 0..16. They are first mapped to MNIST's byte range,
    ``round(v * 255 / 16)`` (0..255), then scaled like MNIST (/256, into [0, 1)).

    With ``upsample`` (the default) each image becomes 28x28, deterministically: a Kronecker upscale
    (every pixel becomes a 3x3 block of the same value: nearest-neighbour, 8x8 -> 24x24), then 2 zero
    pixels of padding on each side (24x24 -> 28x28), the input size of LeNet. Without it the images
    stay 8x8 (small nets, fast tests).

    Returns ``data`` (1797, 1, 28, 28) or (1797, 1, 8, 8) float32 and ``label`` (1797, 1) float32.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - scikit-learn is in the "examples" extra
        raise ImportError("the digits data set needs scikit-learn: pip install scikit-learn "
                          "(or pip install -e '.[examples]')") from err
    digits = load_digits()
    pixels = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)  # (1797, 8, 8), 0..255 like MNIST
    if upsample:
        block = np.ones((DIGITS_UPSCALE, DIGITS_UPSCALE), np.uint8)
        pixels = np.stack([np.kron(image, block) for image in pixels])
        pad = DIGITS_PAD
        pixels = np.pad(pixels, ((0, 0), (pad, pad), (pad, pad)))
    data = (pixels.astype(np.float32) * np.float32(MNIST_SCALE))[:, None, :, :]
    return np.ascontiguousarray(data), digits.target.astype(np.float32)[:, None]


def make_digits_hdf5(out_dir: PathLike, test_fraction: float = 0.2, seed: int = DIGITS_SPLIT_SEED,
                     upsample: bool = True) -> tuple[Path, Path]:
    """Write the digits data set (:func:`load_digits_arrays`) as train/test HDF5 files in ``out_dir``.

    The split is stratified and seeded (:func:`stratified_split`): about ``test_fraction`` of each
    class goes to ``digits-test.h5``, the rest to ``digits-train.h5``. Returns the paths of the two
    source lists (``digits-train.txt``, ``digits-test.txt``) to give to the data layers.
    """
    data, label = load_digits_arrays(upsample)
    return write_split_hdf5(out_dir, data, label, test_fraction, seed, prefix="digits-")


def hdf5_num_samples(source: PathLike) -> int:
    """The number of samples listed by a source list (sum of the files' "label" lengths).

    The list is read like the HDF5 data layers read it (:func:`mocha_triton.layers.data.read_source_list`:
    relative entries are found in the current directory or next to the list); a bad list raises ValueError.
    """
    total = 0
    for path in read_source_list(source):
        with h5py.File(path, "r") as f:
            total += f["label"].shape[0]
    return total
