"""Index ops along the class axis (NumPy reference): argmax and one-hot encoding.

Mirrors :mod:`mocha_triton.kernels.index`. Both ops see their blobs as ``(N, C, *S)``: ``C`` classes at
each of the ``N * prod(S)`` positions (a layer working along another axis views its blob as
``(pre, C, post)`` first). Indices are 0-based and stored as floats, like Mocha's and Caffe's labels.

* ``argmax_forward``: ``y[n, 0, s]`` is the index of the largest ``x[n, :, s]``; ties go to the first
  (smallest) index, as in Mocha's loop; a NaN counts as larger than any number (the first NaN wins),
  as in NumPy's and torch's argmax.
* ``index_to_onehot``: ``y[n, c, s] = 1`` where ``c == label[n, s]``, else 0; labels are checked to be
  integral class indices in ``[0, C)``.

Everything is vectorised over the flat ``(N, C, S)`` view.
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import index as checks


def argmax_forward(x: np.ndarray, y: np.ndarray) -> None:
    """y (N, 1, *S) = the index (a float of x's dtype) of the maximum of x (N, C, *S) along axis 1.

    Ties go to the first index; a NaN counts as the maximum (the first NaN wins).
    """
    g = checks.check_argmax_forward(x, y)
    indices = np.argmax(x.reshape(g.n, g.c, g.s), axis=1)  # NumPy: first maximum, NaN propagates
    y[...] = indices.reshape(y.shape)


def index_to_onehot(label: np.ndarray, y: np.ndarray) -> None:
    """y (N, C, *S) = one-hot encoding of label ((N, *S) or (N, 1, *S) class indices in [0, C)) along axis 1."""
    g = checks.check_index_to_onehot(label, y)
    labels = label.reshape(g.n, 1, g.s)
    classes = np.arange(g.c).reshape(1, g.c, 1)
    y[...] = (classes == labels).reshape(y.shape)
