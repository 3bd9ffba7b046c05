"""Caffe interop: read Caffe's net, weight and solver files and turn them into mocha-triton objects.

* :mod:`mocha_triton.caffe.proto` - Caffe's protobuf schema (message classes built in Python).
* :mod:`mocha_triton.caffe.reader` - reading ``.prototxt`` / ``.caffemodel`` / solver files, with
  Caffe's upgrades of legacy formats; every failure is a :class:`CaffeFormatError`.
"""

# --- reading Caffe files (mocha_triton/caffe/reader.py, proto.py) -------------------------------
from mocha_triton.caffe import proto
from mocha_triton.caffe.reader import (
    CaffeFormatError,
    blob_shape,
    blob_to_numpy,
    filter_net,
    numpy_to_blob,
    parse_caffemodel,
    parse_net,
    parse_solver,
    read_blob,
    read_caffemodel,
    read_net,
    read_solver,
    upgrade_net,
    upgrade_solver,
)

__all__ = [
    "proto",
    "CaffeFormatError",
    "blob_shape",
    "blob_to_numpy",
    "filter_net",
    "numpy_to_blob",
    "parse_caffemodel",
    "parse_net",
    "parse_solver",
    "read_blob",
    "read_caffemodel",
    "read_net",
    "read_solver",
    "upgrade_net",
    "upgrade_solver",
]
# --- end of reading Caffe files (other parts: import below and extend with ``__all__ += [...]``) ----

# --- Caffe nets and solvers as mocha-triton objects (mocha_triton/caffe/convert.py, solver.py) ------
from mocha_triton.caffe.convert import (  # noqa: E402
    SUPPORTED_TYPES,
    CaffeArgMaxLayer,
    CaffeConversionError,
    CaffeReshapeLayer,
    InputLayer,
    feed,
    load_net,
    load_weights,
)
from mocha_triton.caffe.solver import CaffeTestPerformance, MultiStepLR, SigmoidLR, load_solver  # noqa: E402

__all__ += [
    "SUPPORTED_TYPES",
    "CaffeArgMaxLayer",
    "CaffeConversionError",
    "CaffeReshapeLayer",
    "CaffeTestPerformance",
    "InputLayer",
    "MultiStepLR",
    "SigmoidLR",
    "feed",
    "load_net",
    "load_solver",
    "load_weights",
]
# --- end of Caffe nets and solvers ------------------------------------------------------------------
