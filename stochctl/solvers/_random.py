"""numba random streams of the Monte Carlo kernel: xoshiro256++ with ziggurat normals.

Each stream is a xoshiro256++ generator (Blackman and Vigna) whose 256-bit
state is filled by SplitMix64, the seeding its authors recommend: stream i of
a 64-bit key takes outputs 4i .. 4i + 3 of the SplitMix64 sequence of the key.
The state lives in a ``uint64`` array of length 4 that the caller
owns, so a kernel can run one independent stream per path in any thread.
Standard normals come from the 256-layer ziggurat of Marsaglia and Tsang in the
form numpy's ``Generator.standard_normal`` uses (one 64-bit draw in about 99%
of cases: 8 bits choose the layer, 1 the sign, 52 the abscissa).

Seeding numba's thread-local Mersenne Twister (``np.random.seed``) costs about
a microsecond per path and its polar-method normals several times a ziggurat
draw; both dominated the path kernel.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit

_R = 3.6541528853610088  # start of the ziggurat's tail
_V = 0.00492867323399  # area of each layer


def _ziggurat_tables(n: int = 256, bits: int = 52):
    """(ki, wi, fi): acceptance bounds, abscissa scales and density values of the layers."""
    m = float(2**bits)
    ki = np.zeros(n, dtype=np.uint64)
    wi = np.zeros(n)
    fi = np.zeros(n)
    dn = tn = _R
    q = _V / math.exp(-0.5 * dn * dn)
    ki[0] = np.uint64((dn / q) * m)
    ki[1] = 0
    wi[0] = q / m
    wi[n - 1] = dn / m
    fi[0] = 1.0
    fi[n - 1] = math.exp(-0.5 * dn * dn)
    for i in range(n - 2, 0, -1):
        dn = math.sqrt(-2.0 * math.log(_V / dn + math.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64((dn / tn) * m)
        tn = dn
        fi[i] = math.exp(-0.5 * dn * dn)
        wi[i] = dn / m
    return ki, wi, fi


_KI, _WI, _FI = _ziggurat_tables()
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_MASK52 = np.uint64(0x000FFFFFFFFFFFFF)


@jit(inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@jit
def seed_stream(key, index, state):
    """Fill ``state`` (uint64, length 4) for stream ``index`` of ``key``.

    The state is outputs 4 index .. 4 index + 3 of the SplitMix64 sequence
    seeded with ``key``: distinct streams get distinct states, at the cost of a
    few multiplications each.
    """
    s = np.uint64(key) + np.uint64(4 * index) * _GOLDEN
    for i in range(4):
        s += _GOLDEN
        z = s
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        state[i] = z ^ (z >> np.uint64(31))
    return state


@jit(inline="always")
def next_u64(state):
    """Next 64-bit output of xoshiro256++ (:func:`_xoshiro`); advances ``state``."""
    result, s0, s1, s2, s3 = _xoshiro(state[0], state[1], state[2], state[3])
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    return result


@jit(inline="always")
def next_double(state):
    """Uniform double in [0, 1) with 53 random bits."""
    return float(next_u64(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@jit
def _normal_slow(state, idx, rabs, x):
    """The ziggurat's rare branch: tail (layer 0) or wedge test; nan asks for a new draw."""
    if idx == 0:
        while True:
            xx = -math.log1p(-next_double(state)) / _R
            yy = -math.log1p(-next_double(state))
            if yy + yy > xx * xx:
                return -(_R + xx) if (rabs >> np.uint64(8)) & np.uint64(1) else _R + xx
    if (_FI[idx - 1] - _FI[idx]) * next_double(state) + _FI[idx] < math.exp(-0.5 * x * x):
        return x
    return math.nan


@jit(inline="always")
def _candidate(r):
    """Ziggurat candidate of a 64-bit draw: (layer index, |mantissa|, signed x = |mantissa| w_layer)."""
    idx = np.intp(r & np.uint64(0xFF))
    r >>= np.uint64(8)
    rabs = (r >> np.uint64(1)) & _MASK52
    x = float(rabs) * _WI[idx]
    if r & np.uint64(1):
        x = -x
    return idx, rabs, x


@jit(inline="always")
def normal(state):
    """A standard normal draw from the stream ``state`` (ziggurat, module docstring)."""
    while True:
        idx, rabs, x = _candidate(next_u64(state))
        if rabs < _KI[idx]:
            return x
        x = _normal_slow(state, idx, rabs, x)
        if not math.isnan(x):
            return x


@jit(inline="always")
def _xoshiro(s0, s1, s2, s3):
    """(output, new state) of one xoshiro256++ step, the state held in locals."""
    result = _rotl(s0 + s3, 23) + s0
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    return result, s0, s1, s2, _rotl(s3, 45)


@jit
def fill_normal(state, out):
    """Fill ``out`` (1-d float64) with standard normals from ``state``; returns it.

    The same draws as calling :func:`normal` ``out.size`` times, with the state
    kept in registers between them.
    """
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    n = out.shape[0]
    i = 0
    while i < n:
        r, s0, s1, s2, s3 = _xoshiro(s0, s1, s2, s3)
        idx, rabs, x = _candidate(r)
        if rabs < _KI[idx]:
            out[i] = x
            i += 1
            continue
        state[0], state[1], state[2], state[3] = s0, s1, s2, s3
        x = _normal_slow(state, idx, rabs, x)
        s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
        if not math.isnan(x):
            out[i] = x
            i += 1
    state[0], state[1], state[2], state[3] = s0, s1, s2, s3
    return out
