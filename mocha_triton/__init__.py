"""mocha-triton: a Caffe/Mocha.jl-style deep learning framework.

Numeric ops live twice behind one contract (:mod:`mocha_triton.contract`): hand-written Triton
kernels in :mod:`mocha_triton.kernels` and the NumPy reference in :mod:`mocha_triton.cpu_ref`.
Everything a user needs is exported here, with Mocha's names::

    import mocha_triton as mt
    backend = mt.default_backend()
    net = mt.Net("train", backend, [mt.MemoryDataLayer(...), mt.ConvolutionLayer(...), ...])
    solver = mt.Solver(mt.SGD(), mt.SolverParameters(max_iter=1000, lr_policy=mt.LRPolicy.Inv(0.01, 1e-4, 0.75)))
"""

from mocha_triton import caffe, datasets, neurons, transformers
from mocha_triton.backends import Backend, NumpyBackend, TritonBackend, default_backend
from mocha_triton.blob import Blob
from mocha_triton.coffee import Coffee, CoffeeLounge, Snapshot, TrainingSummary, ValidationPerformance
from mocha_triton.contract import FAMILIES, NEURONS, OPS, OpSpec
from mocha_triton.layers.accuracy import AccuracyLayer
from mocha_triton.layers.activation import NeuronLayer
from mocha_triton.layers.base import Layer, LayerError, LayerState, TopologyError
from mocha_triton.layers.combine import ConcatLayer, CropLayer, ElementWiseFunctors, ElementWiseLayer, IdentityLayer
from mocha_triton.layers.convolution import ConvolutionLayer
from mocha_triton.layers.data import AsyncHDF5DataLayer, HDF5DataLayer, MemoryDataLayer
from mocha_triton.layers.dropout import DropoutLayer
from mocha_triton.layers.inner_product import InnerProductLayer, TiedInnerProductLayer
from mocha_triton.layers.loss import MultinomialLogisticLossLayer, SoftlabelSoftmaxLossLayer, SoftmaxLossLayer
from mocha_triton.layers.normalization import LRNLayer, LRNMode, PowerLayer
from mocha_triton.layers.output import ArgmaxLayer, HDF5OutputLayer, Index2OnehotLayer, MemoryOutputLayer
from mocha_triton.layers.pointwise_loss import (
    BinaryAccuracyLayer,
    BinaryCrossEntropyLossLayer,
    GaussianKLLossLayer,
    HingeLossLayer,
    SquareLossLayer,
)
from mocha_triton.layers.pooling import ChannelPoolingLayer, Pooling, PoolingLayer
from mocha_triton.layers.random import RandomMaskLayer, RandomNormalLayer
from mocha_triton.layers.softmax import SoftmaxLayer
from mocha_triton.layers.transport import WassersteinLossLayer
from mocha_triton.layers.utility import ReshapeLayer, SplitLayer
from mocha_triton.net import Net
from mocha_triton.parallel import DataParallel
from mocha_triton.parameter import (
    ConstantInitializer,
    GaussianInitializer,
    L1Regu,
    L2Cons,
    L2Regu,
    NoCons,
    NoRegu,
    NullInitializer,
    OrthogonalInitializer,
    Parameter,
    XavierInitializer,
)
from mocha_triton.policies import LRPolicy, MomPolicy
from mocha_triton.snapshots import (
    SnapshotError,
    export_flat_weights,
    latest_snapshot,
    load_flat_weights,
    load_snapshot,
    save_snapshot,
)
from mocha_triton.solvers import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Nesterov,
    RMSProp,
    Solver,
    SolverMethod,
    SolverParameters,
    SolverState,
)

DataTransformers = transformers  # Mocha's module name: mt.DataTransformers.Scale(...)

__version__ = "0.1.0"

__all__ = [
    "AccuracyLayer", "Adadelta", "Adagrad", "Adam", "ArgmaxLayer", "AsyncHDF5DataLayer", "Backend",
    "BinaryAccuracyLayer", "BinaryCrossEntropyLossLayer", "Blob", "ChannelPoolingLayer", "Coffee", "CoffeeLounge",
    "ConcatLayer", "ConstantInitializer", "ConvolutionLayer", "CropLayer", "DataParallel", "DataTransformers",
    "DropoutLayer", "ElementWiseFunctors", "ElementWiseLayer", "FAMILIES", "GaussianInitializer",
    "GaussianKLLossLayer", "HDF5DataLayer", "HDF5OutputLayer", "HingeLossLayer", "IdentityLayer",
    "Index2OnehotLayer", "InnerProductLayer", "L1Regu", "L2Cons", "L2Regu", "LRNLayer", "LRNMode", "LRPolicy",
    "Layer", "LayerError", "LayerState", "MemoryDataLayer", "MemoryOutputLayer", "MomPolicy",
    "MultinomialLogisticLossLayer", "NEURONS", "Nesterov", "Net", "NeuronLayer", "NoCons", "NoRegu",
    "NullInitializer", "NumpyBackend", "OPS", "OpSpec", "OrthogonalInitializer", "Parameter", "Pooling",
    "PoolingLayer", "PowerLayer", "RMSProp", "RandomMaskLayer", "RandomNormalLayer", "ReshapeLayer", "SGD",
    "Snapshot", "SnapshotError", "SoftlabelSoftmaxLossLayer", "SoftmaxLayer", "SoftmaxLossLayer", "Solver",
    "SolverMethod", "SolverParameters", "SolverState", "SplitLayer", "SquareLossLayer", "TiedInnerProductLayer",
    "TopologyError", "TrainingSummary", "TritonBackend", "ValidationPerformance", "WassersteinLossLayer",
    "XavierInitializer", "__version__", "default_backend", "export_flat_weights", "caffe", "datasets",
    "latest_snapshot", "load_flat_weights", "load_snapshot", "neurons", "save_snapshot", "transformers",
]
