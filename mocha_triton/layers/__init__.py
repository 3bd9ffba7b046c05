"""Layers: one module per layer family. See :mod:`mocha_triton.layers.base` for the protocol."""
