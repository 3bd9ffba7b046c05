"""Random fills and dropout (NumPy reference), drawing exactly the numbers Triton's ``tl.rand``/``tl.randn`` draw.

Mirrors :mod:`mocha_triton.kernels.random`. Both backends produce the same stream for the same
``(seed, offset)``, so a net initialised or dropped out on the GPU can be replayed on the CPU.

The generator, as implemented by ``triton.language.random`` (identical in Triton 3.6 and 3.9; the
only textual difference is ``~x`` versus ``-x - 1`` in the float conversion, the same int32 value):

* **Philox4x32-10** (Salmon et al., SC'11; the Random123 reference): a 128-bit counter
  ``(c0, c1, c2, c3)`` and a 64-bit key ``(k0, k1)``; each of 10 rounds computes, with
  ``A = 0xD2511F53`` and ``B = 0xCD9E8D57``::

      c0, c1, c2, c3 = hi(B * c2) ^ c1 ^ k0, lo(B * c2), hi(A * c0) ^ c3 ^ k1, lo(A * c0)
      k0, k1 = k0 + 0x9E3779B9, k1 + 0xBB67AE85            (mod 2**32)

* **Key and counter layout.** ``k0, k1`` are the low and high 32 bits of the seed. Element ``i`` of
  a fill uses the counter ``n = offset + i`` as ``(lo32(n), hi32(n), 0, 0)`` (``tl.randint4x`` with
  int64 offsets; with int32 offsets the high word is 0, the same thing for ``n < 2**31``).
* **Uniform** (``tl.rand``): the first output word ``x``, reinterpreted as int32, folded to
  ``[0, 2**31 - 1]`` by ``x < 0 ? ~x : x``, converted to float32 (round to nearest) and multiplied
  in float32 by ``4.6566127342e-10``, the largest scale with ``(2**31 - 1) * scale < 1`` after
  rounding. So ``u`` lies in ``[0, 1)``, ``u == 0`` is possible, and the spacing is that of float32.
* **Normal** (``tl.randn``): the first two words give ``u1, u2`` as above; Box-Muller in float32:
  ``z = sqrt(-2 log(max(u1, 1e-7))) * cos(2 pi u2)``; one normal per counter (the sine half is
  dropped), and ``|z| <= sqrt(-2 log 1e-7) ~ 5.68``.

The integer stream and the uniform floats are bit-exact against Triton (interpreter and GPU). The
normals use float32 ``log``, ``sqrt`` and ``cos``: NumPy's, which is exactly what Triton's
interpreter calls, so they are bit-exact there too; on a GPU these functions are the device's
(libdevice ``logf``/``cosf`` and an approximate sqrt): measured on an H200 with Triton 3.6, 72% of
the normals are bit-identical and the rest differ by at most 7.2e-7 (3 ulp where |z| >= 0.5).

Fills compute ``low + (high - low) * u`` and ``mean + std * z`` in the dtype of ``y`` (for float32
the Triton kernels are launched without FMA contraction, so they round the same way). Counters are
generated in chunks to bound memory; the stream does not depend on the chunking.
"""

from __future__ import annotations

import numpy as np

from mocha_triton.checks import random as checks

PHILOX_ROUND_A = 0xD2511F53
PHILOX_ROUND_B = 0xCD9E8D57
PHILOX_KEY_A = 0x9E3779B9
PHILOX_KEY_B = 0xBB67AE85
PHILOX_ROUNDS = 10
UINT_TO_UNIFORM_SCALE = np.float32(4.6566127342e-10)  # triton.language.random.uint_to_uniform_float
BOX_MULLER_MIN_U = np.float32(1.0e-7)
TWO_PI = np.float32(6.283185307179586)
CHUNK = 1 << 20  # counters per vectorised batch

_MASK32 = 0xFFFFFFFF
_SHIFT32 = np.uint64(32)


def philox4x32(counter: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], key: tuple[int, int],
               rounds: int = PHILOX_ROUNDS) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Philox4x32 with ``rounds`` rounds on arrays of counters (four uint32 arrays of one shape) and a
    key ``(k0, k1)`` of two 32-bit ints; returns the four uint32 output words."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint32) for c in counter)
    k0, k1 = int(key[0]) & _MASK32, int(key[1]) & _MASK32
    a, b = np.uint64(PHILOX_ROUND_A), np.uint64(PHILOX_ROUND_B)
    for _ in range(rounds):
        prod_a = a * c0.astype(np.uint64)  # 32 x 32 -> 64 bits: exact in uint64
        prod_b = b * c2.astype(np.uint64)
        c0, c1, c2, c3 = (
            (prod_b >> _SHIFT32).astype(np.uint32) ^ c1 ^ np.uint32(k0),
            prod_b.astype(np.uint32),  # astype to a narrower unsigned type keeps the low bits
            (prod_a >> _SHIFT32).astype(np.uint32) ^ c3 ^ np.uint32(k1),
            prod_a.astype(np.uint32),
        )
        k0 = (k0 + PHILOX_KEY_A) & _MASK32  # keys stay Python ints: NumPy scalars warn on wraparound
        k1 = (k1 + PHILOX_KEY_B) & _MASK32
    return c0, c1, c2, c3


def randint4x(seed: int, offset: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The four uint32 words ``tl.randint4x(seed, offset + arange(n))`` returns (int64 offsets)."""
    counters = np.arange(n, dtype=np.uint64) + np.uint64(offset)
    zeros = np.zeros(n, dtype=np.uint32)
    lo = counters.astype(np.uint32)
    hi = (counters >> _SHIFT32).astype(np.uint32)
    return philox4x32((lo, hi, zeros, zeros), (seed & _MASK32, seed >> 32))


def uint_to_uniform_float(x: np.ndarray) -> np.ndarray:
    """uint32 words to float32 in [0, 1), exactly as ``triton.language.random.uint_to_uniform_float``."""
    signed = x.view(np.int32)
    folded = np.where(signed < 0, ~signed, signed)
    return folded.astype(np.float32) * UINT_TO_UNIFORM_SCALE


def pair_uniform_to_normal(u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """Box-Muller in float32, the cosine half of ``triton.language.random.pair_uniform_to_normal``."""
    u1 = np.maximum(BOX_MULLER_MIN_U, u1)
    theta = TWO_PI * u2
    r = np.sqrt(np.float32(-2.0) * np.log(u1))
    return r * np.cos(theta)


def rand_float32(seed: int, offset: int, n: int) -> np.ndarray:
    """float32 ``tl.rand(seed, offset + arange(n))``: n uniform draws in [0, 1)."""
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        word0, _, _, _ = randint4x(seed, offset + start, stop - start)
        out[start:stop] = uint_to_uniform_float(word0)
    return out


def randn_float32(seed: int, offset: int, n: int) -> np.ndarray:
    """float32 ``tl.randn(seed, offset + arange(n))``: n standard normal draws."""
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, CHUNK):
        stop = min(start + CHUNK, n)
        word0, word1, _, _ = randint4x(seed, offset + start, stop - start)
        out[start:stop] = pair_uniform_to_normal(uint_to_uniform_float(word0), uint_to_uniform_float(word1))
    return out


def uniform_fill(y: np.ndarray, low: float, high: float, seed: int, offset: int = 0) -> None:
    """y = low + (high - low) * u with u = ``tl.rand(seed, offset + i)`` for the i-th element (C order).

    Computed in the dtype of y: the float32 draws are the same for float32 and float64 outputs.
    """
    low, high, seed, offset = checks.check_uniform_fill(y, low, high, seed, offset)
    t = y.dtype.type
    y[...] = (t(low) + t(high - low) * rand_float32(seed, offset, y.size).astype(y.dtype)).reshape(y.shape)


def normal_fill(y: np.ndarray, mean: float, std: float, seed: int, offset: int = 0) -> None:
    """y = mean + std * z with z = ``tl.randn(seed, offset + i)`` for the i-th element (C order)."""
    mean, std, seed, offset = checks.check_normal_fill(y, mean, std, seed, offset)
    t = y.dtype.type
    y[...] = (t(mean) + t(std) * randn_float32(seed, offset, y.size).astype(y.dtype)).reshape(y.shape)


def _dropout(src: np.ndarray, rand: np.ndarray, dst: np.ndarray, ratio: float, scale: float) -> None:
    t = src.dtype.type
    # where(), not multiplication by the mask: a dropped inf or nan becomes 0, like Julia's false * x
    dst[...] = np.where(rand > t(ratio), src * t(scale), t(0))


def dropout_forward(x: np.ndarray, rand: np.ndarray, y: np.ndarray, ratio: float, scale: float) -> None:
    """y = x * scale where rand > ratio, else 0 (Mocha's dropout with stored draws); y may be x."""
    ratio, scale = checks.check_dropout_forward(x, rand, y, ratio, scale)
    _dropout(x, rand, y, ratio, scale)


def dropout_backward(dy: np.ndarray, rand: np.ndarray, dx: np.ndarray, ratio: float, scale: float) -> None:
    """dx = dy * scale where rand > ratio, else 0 (the forward's mask and scale); dx may be dy."""
    ratio, scale = checks.check_dropout_backward(dy, rand, dx, ratio, scale)
    _dropout(dy, rand, dx, ratio, scale)
