"""mocha-triton: a Caffe/Mocha.jl-style deep learning framework.

Numeric ops live twice behind one contract (:mod:`mocha_triton.contract`): hand-written Triton
kernels in :mod:`mocha_triton.kernels` and the NumPy reference in :mod:`mocha_triton.cpu_ref`.
"""

from mocha_triton.contract import FAMILIES, NEURONS, OPS, OpSpec

__version__ = "0.1.0"

__all__ = ["FAMILIES", "NEURONS", "OPS", "OpSpec", "__version__"]
