"""The NumPy reference backend (installed as ``mocha_triton.cpu_ref``).

One module per op family, mirroring :mod:`mocha_triton.kernels` name for name, every op of
:mod:`mocha_triton.contract` in vectorised NumPy for float32 and float64. It is the ground truth the
Triton kernels are tested against, and a usable CPU backend.
"""
