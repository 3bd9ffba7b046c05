"""cpu_ref.random: the Philox4x32-10 stream of triton.language.random in NumPy, the fills, and dropout.

Here the NumPy side is checked on its own (known-answer vectors, stream layout, statistics, seeds and
offsets); tests/test_kernels_random.py checks that Triton draws the very same numbers. The case list
at the top is shared with it.
"""

import math

import numpy as np
import pytest
import torch

from mocha_triton.cpu_ref import random as rnd
from support import CPU, assert_close, call_op

# (shape, seed, offset): sizes across block boundaries, seeds past 32 bits, counters crossing 2**32
FILL_CASES = [
    ((1,), 0, 0),
    ((7,), 1, 0),
    ((3, 5, 7), 12345, 3),
    ((4097,), 2**32 + 3, 17),
    ((2, 3000), 42, 2**31 - 100),
    ((1000,), 7, 2**32 - 500),
    ((33,), 2**63 - 1, 2**62),
    ((0, 3), 5, 0),
]
N_STATS = 100_000
UNIT_FILLS = [("uniform_fill", dict(low=0.0, high=1.0)), ("normal_fill", dict(mean=0.0, std=1.0))]


def _philox_scalar(counter, key, rounds=10):
    """Philox4x32 on Python ints, written independently of cpu_ref.random, for a few counters."""
    m = 0xFFFFFFFF
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(rounds):
        p0, p2 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = (p2 >> 32) ^ c1 ^ k0, p2 & m, (p0 >> 32) ^ c3 ^ k1, p0 & m
        k0, k1 = (k0 + 0x9E3779B9) & m, (k1 + 0xBB67AE85) & m
    return c0, c1, c2, c3


# The Random123 known-answer vectors for philox4x32_10 (counter, key, output).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_known_answers(counter, key, expected):
    words = rnd.philox4x32(tuple(np.array([c], np.uint32) for c in counter), key)
    assert tuple(int(w[0]) for w in words) == expected
    assert _philox_scalar(counter, key) == expected


def test_stream_layout():
    """Element i uses counter (lo32(offset + i), hi32(offset + i), 0, 0) and key (lo32(seed), hi32(seed))."""
    seed, offset, n = 2**40 + 12345, 2**32 - 3, 6  # the counter's high word changes inside the block
    words = rnd.randint4x(seed, offset, n)
    for i in range(n):
        c = offset + i
        expected = _philox_scalar((c & 0xFFFFFFFF, c >> 32, 0, 0), (seed & 0xFFFFFFFF, seed >> 32))
        assert tuple(int(w[i]) for w in words) == expected


def test_uint_to_uniform_float_edges():
    """Words >= 2**31 fold to 2**32 - 1 - x (int32 ~x), then scale by 4.6566127342e-10 into [0, 1)."""
    x = np.array([0, 1, 2**31 - 2, 2**31 - 1, 2**31, 0x80000001, 2**32 - 1], dtype=np.uint32)
    u = rnd.uint_to_uniform_float(x)
    assert u.dtype == np.float32
    assert u[0] == 0 and u[6] == 0  # 2**32 - 1 folds to 0
    assert u[1] == np.float32(4.6566127342e-10)
    assert u[4] == u[3] and u[5] == u[2]  # 2**31 folds to 2**31 - 1, 2**31 + 1 to 2**31 - 2
    assert 0.9999 < u[3] < 1.0  # the largest draw stays below 1 after float32 rounding


def _ks_statistic(sorted_samples, cdf):
    n = sorted_samples.size
    f = cdf(sorted_samples)
    i = np.arange(1, n + 1)
    return max(np.max(i / n - f), np.max(f - (i - 1) / n))


def test_uniform_statistics():
    u = rnd.rand_float32(2024, 0, N_STATS).astype(np.float64)
    assert u.min() >= 0.0 and u.max() < 1.0
    n = u.size
    assert abs(u.mean() - 0.5) < 5 * math.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 5 * math.sqrt((1 / 80 - 1 / 144) / n)
    assert _ks_statistic(np.sort(u), lambda s: s) < 1.95 / math.sqrt(n)  # KS critical value at alpha = 0.001
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / math.sqrt(n)  # consecutive counters look independent


def test_normal_statistics():
    z = rnd.randn_float32(2024, 0, N_STATS).astype(np.float64)
    n = z.size
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.var() - 1) < 5 * math.sqrt(2 / n)
    assert np.max(np.abs(z)) <= math.sqrt(-2 * math.log(1e-7)) + 1e-5  # Box-Muller with u1 >= 1e-7
    ndtr = lambda s: torch.special.ndtr(torch.from_numpy(s)).numpy()
    assert _ks_statistic(np.sort(z), ndtr) < 1.95 / math.sqrt(n)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < 5 / math.sqrt(n)


@pytest.mark.parametrize("op,params", UNIT_FILLS)
def test_seeds_and_offsets_give_different_streams(op, params):
    y = np.empty(10_000, np.float32)
    a = call_op(CPU, op, y=y, seed=1, **params)["y"]
    b = call_op(CPU, op, y=y, seed=2, **params)["y"]
    c = call_op(CPU, op, y=y, seed=1, offset=10_000, **params)["y"]
    d = call_op(CPU, op, y=y, seed=2**32 + 1, **params)["y"]  # the high key word matters
    for other in (b, c, d):
        assert np.mean(a == other) < 0.01
        assert abs(np.corrcoef(a, other)[0, 1]) < 5 / math.sqrt(a.size)


@pytest.mark.parametrize("op,params", [("uniform_fill", dict(low=-2.0, high=3.0)),
                                       ("normal_fill", dict(mean=1.0, std=0.5))])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_offset_shifts_the_stream_exactly(op, params, dtype):
    """A fill of size n at offset k equals elements k..k+n of a fill at offset 0, in any shape (C order)."""
    full = call_op(CPU, op, y=np.empty(3000, dtype), seed=77, **params)["y"]
    for k, shape in [(0, (3000,)), (1, (7,)), (999, (4, 5, 6)), (2000, (1000,))]:
        part = call_op(CPU, op, y=np.empty(shape, dtype), seed=77, offset=k, **params)["y"]
        size = int(np.prod(shape))
        assert np.array_equal(part.reshape(-1), full[k:k + size])


def test_stream_does_not_depend_on_chunking(monkeypatch):
    seed, offset, n = 99, 2**32 - 10, 50
    u, z = rnd.rand_float32(seed, offset, n), rnd.randn_float32(seed, offset, n)
    monkeypatch.setattr(rnd, "CHUNK", 7)
    assert np.array_equal(rnd.rand_float32(seed, offset, n), u)
    assert np.array_equal(rnd.randn_float32(seed, offset, n), z)


@pytest.mark.parametrize("shape,seed,offset", FILL_CASES)
def test_fills_are_affine_maps_of_the_draws(shape, seed, offset):
    """float32 and float64 fills use the same float32 draws; low + (high - low) * u in the output dtype."""
    n = int(np.prod(shape))
    u, z = rnd.rand_float32(seed, offset, n), rnd.randn_float32(seed, offset, n)
    for dtype in ("float32", "float64"):
        t = np.dtype(dtype).type
        y = call_op(CPU, "uniform_fill", y=np.empty(shape, dtype), low=-0.5, high=2.0, seed=seed, offset=offset)["y"]
        assert y.dtype == dtype and y.shape == shape
        assert np.array_equal(y.reshape(-1), t(-0.5) + t(2.5) * u.astype(dtype))
        assert np.all((y >= -0.5) & (y <= 2.0))
        y = call_op(CPU, "normal_fill", y=np.empty(shape, dtype), mean=3.0, std=0.1, seed=seed, offset=offset)["y"]
        assert np.array_equal(y.reshape(-1), t(3.0) + t(0.1) * z.astype(dtype))


def test_degenerate_fills():
    y = call_op(CPU, "uniform_fill", y=np.empty(5), low=2.0, high=2.0, seed=1)["y"]
    assert np.array_equal(y, np.full(5, 2.0))
    y = call_op(CPU, "normal_fill", y=np.empty(5, np.float32), mean=-1.0, std=0.0, seed=1)["y"]
    assert np.array_equal(y, np.full(5, -1.0, np.float32))


# --- dropout --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1,), (2, 3, 4, 5), (1000,), (0, 2)])
@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.9])
def test_dropout(dtype, shape, ratio):
    rng = np.random.default_rng(int(ratio * 10) + len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    rand = rng.random(shape).astype(dtype)
    if rand.size > 1:
        rand.reshape(-1)[0] = ratio  # rand == ratio drops (Mocha keeps rand > ratio)
    scale = 1.0 / (1.0 - ratio)
    mask = (torch.from_numpy(rand) > torch.tensor(ratio, dtype=torch.from_numpy(rand).dtype)).double()
    for op, src, dst in (("dropout_forward", "x", "y"), ("dropout_backward", "dy", "dx")):
        got = call_op(CPU, op, **{src: x, "rand": rand, dst: np.empty_like(x)}, ratio=ratio, scale=scale)[dst]
        assert_close(got, (torch.from_numpy(x).double() * mask * scale).numpy(), dtype, what=op)
        if rand.size > 1:
            assert got.reshape(-1)[0] == 0


def test_dropout_in_place_and_non_finite():
    from mocha_triton.cpu_ref import random

    x = np.array([1.0, np.inf, -2.0, np.nan, 4.0], np.float32)
    rand = np.array([0.9, 0.1, 0.2, 0.3, 0.6], np.float32)
    expected = np.array([2.0, 0.0, 0.0, 0.0, 8.0], np.float32)  # a dropped inf or nan gives 0, as in Julia
    random.dropout_forward(x, rand, x, 0.5, 2.0)
    assert np.array_equal(x, expected)
    dy = np.ones(5, np.float32)
    random.dropout_backward(dy, rand, dy, 0.5, 2.0)
    assert np.array_equal(dy, [2.0, 0.0, 0.0, 0.0, 2.0])


def test_dropout_with_drawn_mask_keeps_one_minus_ratio():
    rand = call_op(CPU, "uniform_fill", y=np.empty(N_STATS, np.float32), low=0.0, high=1.0, seed=3)["y"]
    y = call_op(CPU, "dropout_forward", x=np.ones(N_STATS, np.float32), rand=rand, y=np.empty(N_STATS, np.float32),
                ratio=0.3, scale=1 / 0.7)["y"]
    kept = np.mean(y != 0)
    assert abs(kept - 0.7) < 5 * math.sqrt(0.21 / N_STATS)
    assert abs(y.mean() - 1.0) < 0.01  # auto_scale keeps the expectation


# --- bad inputs -----------------------------------------------------------------------------------------------


def test_bad_inputs():
    from mocha_triton.cpu_ref import random

    y = np.empty(4)
    with pytest.raises(ValueError, match=r"uniform_fill: high must be >= low"):
        random.uniform_fill(y, 1.0, 0.0, 1)
    with pytest.raises(ValueError, match=r"uniform_fill: seed must be in \[0, 2\*\*63\), got -1"):
        random.uniform_fill(y, 0.0, 1.0, -1)
    with pytest.raises(ValueError, match=r"normal_fill: seed must be in \[0, 2\*\*63\)"):
        random.normal_fill(y, 0.0, 1.0, 2**63)
    with pytest.raises(TypeError, match=r"uniform_fill: seed must be an int, got 1.5"):
        random.uniform_fill(y, 0.0, 1.0, 1.5)
    with pytest.raises(TypeError, match=r"normal_fill: seed must be an int, got True"):
        random.normal_fill(y, 0.0, 1.0, True)
    with pytest.raises(ValueError, match=r"normal_fill: std must be >= 0"):
        random.normal_fill(y, 0.0, -1.0, 1)
    with pytest.raises(ValueError, match=r"normal_fill: offset must be >= 0"):
        random.normal_fill(y, 0.0, 1.0, 1, -4)
    with pytest.raises(ValueError, match=r"uniform_fill: offset \+ y.size = .* exceeds the counter limit 2\*\*63"):
        random.uniform_fill(y, 0.0, 1.0, 1, 2**63 - 2)
    with pytest.raises(ValueError, match=r"uniform_fill: low must be finite"):
        random.uniform_fill(y, -np.inf, 1.0, 1)
    with pytest.raises(TypeError, match=r"uniform_fill: y has dtype int64"):
        random.uniform_fill(np.zeros(3, np.int64), 0.0, 1.0, 1)
    random.uniform_fill(y, 0.0, 1.0, np.int64(5), np.uint32(7))  # NumPy integers are ints
    z = np.zeros(3, np.float32)
    for ratio in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"dropout_forward: ratio must be in \(0, 1\)"):
            random.dropout_forward(z, z, z, ratio, 1.0)
    with pytest.raises(ValueError, match=r"dropout_backward: arguments must have the same shape"):
        random.dropout_backward(z, np.zeros(4, np.float32), z, 0.5, 2.0)
    with pytest.raises(TypeError, match=r"dropout_forward: all float arguments must share one dtype"):
        random.dropout_forward(z, np.zeros(3), z, 0.5, 2.0)
    with pytest.raises(ValueError, match=r"dropout_backward: scale must be finite"):
        random.dropout_backward(z, z, z, 0.5, np.inf)
