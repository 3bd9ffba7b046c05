"""Command line tools for Caffe models.

::

    python -m mocha_triton.caffe.cli convert model.prototxt model.caffemodel out.h5
        [--input-shape data=1,1,28,28] [--phase test]
    python -m mocha_triton.caffe.cli classify model.prototxt model.caffemodel input.(h5|npy)
        [--dataset data] [--scale 0.00390625] [--mean 0] [--top 5] [--batch-size 64] [--output prob]
        [--backend numpy|triton]

* ``convert`` builds the net (:func:`~mocha_triton.caffe.load_net`) with the trained weights and writes
  them as mocha-triton's flat HDF5 model (``<layer>___<param>`` datasets,
  :func:`~mocha_triton.export_flat_weights`), which ``SolverParameters(load_from=...)`` and
  :func:`~mocha_triton.load_flat_weights` read. ``--input-shape`` replaces Caffe data layers (needed
  for nets that read LMDB databases; shapes only matter for the parameter shapes).
* ``classify`` runs a deploy net (one Input layer) on the samples of a ``.npy`` file or an HDF5
  dataset, preprocessed like Caffe as ``(x - mean) * scale``, and prints one line per sample: its index
  and the ``--top`` classes with their scores (of ``--output``, by default the net's only unconsumed
  blob, e.g. ``prob``)::

      0: 7 (0.999998) 3 (0.000001) 2 (0.000000)

  The samples may omit singleton dimensions of the input (MNIST ``(N, 28, 28)`` feeds ``(N, 1, 28, 28)``).

Errors (missing files, bad shapes, unsupported layers) print ``error: ...`` and exit with status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from mocha_triton.caffe.convert import InputState, feed, load_net
from mocha_triton.caffe.reader import CaffeFormatError

__all__ = ["main"]


class CliError(Exception):
    """A problem to report as ``error: ...`` with exit status 2."""


def _shape_arg(text: str) -> tuple[str, tuple[int, ...]]:
    """``data=1,1,28,28`` -> ("data", (1, 1, 28, 28))."""
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected TOP=D1,D2,... with positive ints, got {text!r}")
    return name, shape


def _backend(name: str | None) -> Any:
    import mocha_triton as mt

    if name is None:
        return mt.default_backend()
    if name == "numpy":
        return mt.NumpyBackend("float32")
    return mt.TritonBackend()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mocha_triton.caffe.cli",
                                     description="Convert Caffe models and classify with them.")
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", help="write a caffemodel's weights as a flat HDF5 model file")
    convert.add_argument("prototxt", help="the Caffe net definition (.prototxt)")
    convert.add_argument("caffemodel", help="the trained weights (.caffemodel)")
    convert.add_argument("output", help="the HDF5 file to write (<layer>___<param> datasets)")
    convert.add_argument("--input-shape", action="append", type=_shape_arg, default=[], metavar="TOP=D1,D2,...",
                         help="shape of an input or data-layer top (repeatable)")
    convert.add_argument("--phase", choices=("train", "test"), default="test", help="net phase (default test)")

    classify = commands.add_parser("classify", help="print the top classes of each sample")
    classify.add_argument("prototxt", help="a deploy net definition with one Input layer")
    classify.add_argument("caffemodel", help="the trained weights (.caffemodel)")
    classify.add_argument("input", help="samples: a .npy file or an HDF5 file (.h5/.hdf5)")
    classify.add_argument("--dataset", default="data", help="HDF5 dataset holding the samples (default data)")
    classify.add_argument("--scale", type=float, default=1.0, help="multiply the samples by this (default 1)")
    classify.add_argument("--mean", default="", help="subtract this first: one value or one per channel, "
                                                     "comma-separated")
    classify.add_argument("--top", type=int, default=5, help="classes to print per sample (default 5)")
    classify.add_argument("--batch-size", type=int, default=64, help="samples per forward pass (default 64)")
    classify.add_argument("--output", default="", help="blob to read the scores from (default: the net's only "
                                                      "unconsumed blob)")
    classify.add_argument("--backend", choices=("numpy", "triton"), default=None,
                          help="default: triton on a GPU, else numpy")
    return parser


def convert_command(args: argparse.Namespace) -> int:
    from mocha_triton.snapshots import export_flat_weights

    shapes = dict(args.input_shape)
    net = load_net(args.prototxt, args.caffemodel, _backend("numpy"), phase=args.phase, input_shapes=shapes or None)
    export_flat_weights(net, args.output)
    layers = [name for name, params in net.params.items() if params]
    count = sum(len(params) for params in net.params.values())
    print(f"wrote {count} parameters of {len(layers)} layers ({', '.join(layers)}) to {args.output}")
    return 0


def _read_samples(path: str, dataset: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise CliError(f"input file {path!r} does not exist")
    if path.endswith(".npy"):
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise CliError(f"cannot read {path!r} as a .npy array: {err}") from err
    if path.endswith((".h5", ".hdf5")):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
                    raise CliError(f"HDF5 file {path!r} has no dataset {dataset!r}; it has {sorted(f.keys())} "
                                   "(choose one with --dataset)")
                return f[dataset][()]
        except OSError as err:
            raise CliError(f"cannot read HDF5 file {path!r}: {err}") from err
    raise CliError(f"input file {path!r} must end in .npy, .h5 or .hdf5")


def _as_batches(samples: np.ndarray, sample_shape: tuple[int, ...], path: str) -> np.ndarray:
    """``samples`` as ``(N, *sample_shape)``: a single sample, or N samples of the right size."""
    if samples.dtype.kind not in "fiub":
        raise CliError(f"{path!r}: samples have dtype {samples.dtype}; expected numbers")
    per_sample = math.prod(sample_shape)
    if samples.shape == sample_shape:
        return samples.reshape(1, *sample_shape)
    if samples.ndim >= 1 and samples.shape[0] > 0 and math.prod(samples.shape[1:]) == per_sample:
        return samples.reshape(samples.shape[0], *sample_shape)
    raise CliError(f"{path!r}: samples of shape {samples.shape} do not fit the net's input {sample_shape} "
                   f"({per_sample} values per sample)")


def _output_blob(net: Any, requested: str) -> str:
    if requested:
        if requested not in net.output_blobs:
            raise CliError(f"the net has no blob {requested!r}; blobs: {sorted(net.output_blobs)}")
        return requested
    consumed = {b for layer in net.layers for b in layer.bottoms}
    free = [top for layer in net.layers if not layer.is_source for top in layer.tops if top not in consumed]
    if len(free) != 1:
        raise CliError(f"cannot tell which blob holds the scores (unconsumed blobs: {free}); choose one with --output")
    return free[0]


def classify_command(args: argparse.Namespace) -> int:
    if args.top < 1 or args.batch_size < 1:
        raise CliError("--top and --batch-size must be positive")
    samples = _read_samples(args.input, args.dataset)
    backend = _backend(args.backend)
    probe = load_net(args.prototxt, None, backend, batch_size=1)  # shapes only, to size the batches
    inputs = [(top, state) for state in probe.states if isinstance(state, InputState) for top in state.layer.tops]
    if len(inputs) != 1:
        raise CliError(f"classify needs a net with exactly one Input blob, found {[top for top, _ in inputs]}")
    top = inputs[0][0]
    sample_shape = probe.output_blobs[top].shape[1:]
    x = _as_batches(samples, sample_shape, args.input).astype(np.float32)
    probe.destroy()
    backend.shutdown()  # forget the probe's parameters: the real net gets its own
    if args.mean:
        try:
            mean = np.array([float(v) for v in args.mean.split(",")], dtype=np.float32)
        except ValueError:
            raise CliError(f"--mean must be comma-separated numbers, got {args.mean!r}") from None
        if mean.size not in (1, sample_shape[0]):
            raise CliError(f"--mean has {mean.size} values for {sample_shape[0]} channels")
        x = x - mean.reshape((-1,) + (1,) * (len(sample_shape) - 1))
    x = x * np.float32(args.scale)
    n = x.shape[0]
    batch = min(args.batch_size, n)
    net = load_net(args.prototxt, args.caffemodel, backend, batch_size=batch)
    output = _output_blob(net, args.output)
    scores = []
    for start in range(0, n, batch):
        chunk = x[start:start + batch]
        if chunk.shape[0] < batch:  # pad the last batch
            chunk = np.concatenate([chunk, np.zeros((batch - chunk.shape[0], *sample_shape), np.float32)])
        feed(net, {top: chunk})
        net.forward()
        scores.append(net.output_blobs[output].to_numpy().reshape(batch, -1))
    table = np.concatenate(scores)[:n]
    k = min(args.top, table.shape[1])
    for i, row in enumerate(table):
        best = np.argsort(-row, kind="stable")[:k]
        print(f"{i}: " + " ".join(f"{c} ({row[c]:.6f})" for c in best))
    net.destroy()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 after printing ``error: ...``)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "convert":
            return convert_command(args)
        return classify_command(args)
    except (CliError, CaffeFormatError, ValueError, KeyError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
