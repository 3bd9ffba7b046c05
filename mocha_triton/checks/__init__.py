"""Argument checks shared by both backends, one module per op family (mirroring cpu_ref/ and kernels/).

Each ``check_<op>`` function validates the arguments of one contract op and returns the derived
sizes the implementations need, so the NumPy reference and the Triton kernels reject exactly the same
inputs with exactly the same messages.
"""
