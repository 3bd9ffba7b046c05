"""Command line: prepare data sets for the HDF5 data layers.

    python -m mocha_triton.cli mnist-to-hdf5 t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz data/test.h5
    python -m mocha_triton.cli mnist-to-hdf5 train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz \\
        data/train.h5 --shuffle-seed 12345678
    python -m mocha_triton.cli digits-to-hdf5 data/ [--test-fraction 0.2] [--seed 1]

Each command prints the source list(s) it wrote (the text files to give a data layer's ``source``).
See :mod:`mocha_triton.datasets` for the formats.
"""

from __future__ import annotations

import argparse
import sys

from mocha_triton import datasets


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mocha_triton.cli",
                                     description="Prepare data sets for mocha-triton's HDF5 data layers.")
    commands = parser.add_subparsers(dest="command", required=True)

    mnist = commands.add_parser("mnist-to-hdf5", help="MNIST IDX files (gzip or raw) -> HDF5 + source list")
    mnist.add_argument("images", help="an IDX image file, e.g. train-images-idx3-ubyte.gz")
    mnist.add_argument("labels", help="the matching IDX label file, e.g. train-labels-idx1-ubyte.gz")
    mnist.add_argument("out", help="the HDF5 file to write; the source list goes next to it (.txt)")
    mnist.add_argument("--scale", type=float, default=datasets.MNIST_SCALE, help="pixel scale (default 1/256)")
    mnist.add_argument("--shuffle-seed", type=int, default=None, help="permute the samples with this seed")

    digits = commands.add_parser("digits-to-hdf5",
                                 help="scikit-learn's 8x8 digits, upsampled to 28x28 -> train/test HDF5")
    digits.add_argument("out_dir")
    digits.add_argument("--test-fraction", type=float, default=0.2)
    digits.add_argument("--seed", type=int, default=datasets.DIGITS_SPLIT_SEED, help="seed of the stratified split")
    digits.add_argument("--no-upsample", action="store_true", help="keep the 8x8 images")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "mnist-to-hdf5":
            written = [datasets.mnist_idx_to_hdf5(args.images, args.labels, args.out, args.scale, args.shuffle_seed)]
        else:
            written = list(datasets.make_digits_hdf5(args.out_dir, args.test_fraction, args.seed,
                                                     upsample=not args.no_upsample))
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for txt in written:
        print(f"wrote {txt} ({datasets.hdf5_num_samples(txt)} samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
