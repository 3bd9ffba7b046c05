"""Norm constraints (NumPy reference): Mocha's L2Cons, applied to a parameter after the solver update.

Mirrors :mod:`mocha_triton.kernels.constraints`. A parameter of shape (U, *rest) has U output units,
one row ``w[u, ...]`` each (an inner-product weight (O, K) has one per output neuron, a conv filter
bank (F, C, KH, KW) one per filter); a 1-D parameter (a bias) is a single unit.
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import constraints as checks


def l2_norm_constraint(w: np.ndarray, threshold: float) -> None:
    """Rescale in place every unit whose L2 norm exceeds ``threshold`` to norm ``threshold``.

    Units with norm <= threshold (zero units included) are left bit-for-bit untouched. The norm is
    accumulated in the dtype of ``w`` (NumPy's pairwise summation); the factor is threshold / norm.
    """
    units, unit_size, threshold = checks.check_l2_norm_constraint(w, threshold)
    if w.size == 0:
        return
    rows = w.reshape(units, unit_size)
    thr = w.dtype.type(threshold)
    norms = np.sqrt(np.sum(rows * rows, axis=1))
    over = norms > thr
    factor = np.divide(thr, norms, out=np.ones_like(norms), where=over)  # x * 1 == x: the rest stay exact
    w *= factor.reshape((units,) + (1,) * (w.ndim - 1)) if w.ndim > 1 else factor
