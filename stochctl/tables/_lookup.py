"""Multilinear interpolation kernels for policy tables (1 to 4 axes).

For breakpoints x_0 < ... < x_{m-1} on each axis and a query q inside the box,
the cell i with x_i <= q <= x_{i+1} and the fraction t = (q - x_i) / (x_{i+1} - x_i)
give, in two dimensions,

    f(q) = (1-t0)(1-t1) F[i,j] + (1-t0) t1 F[i,j+1] + t0 (1-t1) F[i+1,j] + t0 t1 F[i+1,j+1],

which reproduces every function that is affine in each coordinate exactly. A
query outside the box is first clamped to it (status CLAMPED); a query with a
NaN coordinate returns the fallback value of each array (status NAN).

Finding the cell. On an equally spaced axis (breakpoints within a few
rounding errors of x_0 + i h) s = (q - x_0) / h is computed with the
precomputed 1 / h, i = min(floor(s), m - 2) and t = s - i: no search and no
division. On any other axis the span is cut into ``nb`` equal buckets and
``hints[b]`` is the last cell whose left breakpoint lies in an earlier bucket
than b, evaluated with the same floating-point expression as the kernel, so
x_hint < q for every q of bucket b; a forward walk finds the cell and
t = (q - x_i) * (1 / (x_{i+1} - x_i)) uses the precomputed inverse widths.
The result does not depend on the buckets, only the speed does.

The per-axis code is written out in each kernel on purpose: a helper that
returns the (cell, fraction) pair per axis compiles to code three times
slower. Kernels work on the query range [start, stop) and return the numbers
of clamped and NaN queries; queries of ``THREADED_FROM`` points or more are
split into chunks that run on the numba threads when there are several
(:func:`stochctl._jit.set_num_threads`; one thread selects the serial kernel,
the better choice when other processes keep the cores busy). Every chunk runs
the serial kernel, so threaded and serial results are identical.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .._jit import jit

INSIDE = 0
CLAMPED = 1
NAN = 2
THREADED_FROM = 1 << 16  # queries from which the threaded kernel pays off
CHUNK = 1 << 14           # queries per chunk of the threaded kernel

# columns of the per-axis tables
LO, HI, SCALE = 0, 1, 2                               # float: first/last breakpoint, 1/h or buckets per unit
OFF, SIZE, UNIFORM, HOFF, STRIDE = 0, 1, 2, 3, 4      # int


def is_uniform(breaks: np.ndarray) -> bool:
    """Whether the breakpoints are x_0 + i h up to a few rounding errors."""
    m = breaks.size
    ideal = breaks[0] + (breaks[-1] - breaks[0]) * (np.arange(m) / (m - 1))
    tol = 8 * np.finfo(np.float64).eps * max(abs(breaks[0]), abs(breaks[-1]), breaks[-1] - breaks[0])
    return bool(np.all(np.abs(breaks - ideal) <= tol))


def make_hints(breaks: np.ndarray, per_cell: int = 4) -> tuple[np.ndarray, float]:
    """Bucket index of one axis: (hints, buckets per unit length).

    With bucket(x) = int((x - x_0) * scale), ``hints[b]`` is the largest cell
    index i <= m - 2 with bucket(x_i) < b (0 if none); since bucket() is
    non-decreasing in x, x_{hints[b]} < q for every q with bucket(q) = b.
    """
    m = breaks.size
    nb = max(1, per_cell * (m - 1))
    scale = nb / (breaks[-1] - breaks[0])
    bucket = ((breaks[:-1] - breaks[0]) * scale).astype(np.int64)
    hints = np.searchsorted(bucket, np.arange(nb + 1), side="left") - 1
    return np.clip(hints, 0, m - 2).astype(np.int64), float(scale)


@jit
def lookup_1d(breaks, invw, hints, axf, axi, values, queries, fallback, out, status, start, stop):
    """out[v, p] = linear interpolation of values[v] at queries[p, 0], p in [start, stop).

    Returns (clamped, nan) counts.
    """
    nv = values.shape[0]
    o0, m0, u0, h0, s0 = axi[0, 0], axi[0, 1], axi[0, 2], axi[0, 3], axi[0, 4]
    lo0, hi0, sc0 = axf[0, 0], axf[0, 1], axf[0, 2]
    n_clamped = 0
    n_nan = 0
    for p in range(start, stop):
        q0 = queries[p, 0]
        if np.isnan(q0):
            for v in range(nv):
                out[v, p] = fallback[v]
            status[p] = NAN
            n_nan += 1
            continue
        c = 0
        if q0 < lo0:
            q0 = lo0
            c = 1
        elif q0 > hi0:
            q0 = hi0
            c = 1
        x = (q0 - lo0) * sc0
        if u0:
            i0 = min(int(x), m0 - 2)
            if i0 < m0 - 2 and breaks[o0 + i0 + 1] <= q0:
                i0 += 1
        else:
            i0 = hints[h0 + int(x)]
            while i0 < m0 - 2 and breaks[o0 + i0 + 1] <= q0:
                i0 += 1
        t0 = (q0 - breaks[o0 + i0]) * invw[o0 + i0]
        f = i0 * s0
        for v in range(nv):
            out[v, p] = (1.0 - t0) * values[v, f] + t0 * values[v, f + s0]
        status[p] = c
        n_clamped += c
    return n_clamped, n_nan


@jit
def lookup_2d(breaks, invw, hints, axf, axi, values, queries, fallback, out, status, start, stop):
    """out[v, p] = bilinear interpolation of values[v] at queries[p, :2], p in [start, stop).

    Returns (clamped, nan) counts.
    """
    nv = values.shape[0]
    o0, m0, u0, h0, s0 = axi[0, 0], axi[0, 1], axi[0, 2], axi[0, 3], axi[0, 4]
    o1, m1, u1, h1, s1 = axi[1, 0], axi[1, 1], axi[1, 2], axi[1, 3], axi[1, 4]
    lo0, hi0, sc0 = axf[0, 0], axf[0, 1], axf[0, 2]
    lo1, hi1, sc1 = axf[1, 0], axf[1, 1], axf[1, 2]
    n_clamped = 0
    n_nan = 0
    for p in range(start, stop):
        q0 = queries[p, 0]
        q1 = queries[p, 1]
        if np.isnan(q0) or np.isnan(q1):
            for v in range(nv):
                out[v, p] = fallback[v]
            status[p] = NAN
            n_nan += 1
            continue
        c = 0
        if q0 < lo0:
            q0 = lo0
            c = 1
        elif q0 > hi0:
            q0 = hi0
            c = 1
        if q1 < lo1:
            q1 = lo1
            c = 1
        elif q1 > hi1:
            q1 = hi1
            c = 1
        x = (q0 - lo0) * sc0
        if u0:
            i0 = min(int(x), m0 - 2)
            if i0 < m0 - 2 and breaks[o0 + i0 + 1] <= q0:
                i0 += 1
        else:
            i0 = hints[h0 + int(x)]
            while i0 < m0 - 2 and breaks[o0 + i0 + 1] <= q0:
                i0 += 1
        t0 = (q0 - breaks[o0 + i0]) * invw[o0 + i0]
        x = (q1 - lo1) * sc1
        if u1:
            i1 = min(int(x), m1 - 2)
            if i1 < m1 - 2 and breaks[o1 + i1 + 1] <= q1:
                i1 += 1
        else:
            i1 = hints[h1 + int(x)]
            while i1 < m1 - 2 and breaks[o1 + i1 + 1] <= q1:
                i1 += 1
        t1 = (q1 - breaks[o1 + i1]) * invw[o1 + i1]
        f = i0 * s0 + i1 * s1
        for v in range(nv):
            out[v, p] = ((1.0 - t0) * ((1.0 - t1) * values[v, f] + t1 * values[v, f + s1])
                         + t0 * ((1.0 - t1) * values[v, f + s0] + t1 * values[v, f + s0 + s1]))
        status[p] = c
        n_clamped += c
    return n_clamped, n_nan


@jit
def lookup_3d(breaks, invw, hints, axf, axi, values, queries, fallback, out, status, start, stop):
    """out[v, p] = trilinear interpolation of values[v] at queries[p, :3], p in [start, stop).

    Returns (clamped, nan) counts.
    """
    nv = values.shape[0]
    o0, m0, u0, h0, s0 = axi[0, 0], axi[0, 1], axi[0, 2], axi[0, 3], axi[0, 4]
    o1, m1, u1, h1, s1 = axi[1, 0], axi[1, 1], axi[1, 2], axi[1, 3], axi[1, 4]
    o2, m2, u2, h2, s2 = axi[2, 0], axi[2, 1], axi[2, 2], axi[2, 3], axi[2, 4]
    lo0, hi0, sc0 = axf[0, 0], axf[0, 1], axf[0, 2]
    lo1, hi1, sc1 = axf[1, 0], axf[1, 1], axf[1, 2]
    lo2, hi2, sc2 = axf[2, 0], axf[2, 1], axf[2, 2]
    n_clamped = 0
    n_nan = 0
    for p in range(start, stop):
        q0 = queries[p, 0]
        q1 = queries[p, 1]
        q2 = queries[p, 2]
        if np.isnan(q0) or np.isnan(q1) or np.isnan(q2):
            for v in range(nv):
                out[v, p] = fallback[v]
            status[p] = NAN
            n_nan += 1
            continue
        c = 0
        if q0 < lo0:
            q0 = lo0
            c = 1
        elif q0 > hi0:
            q0 = hi0
            c = 1
        if q1 < lo1:
            q1 = lo1
            c = 1
        elif q1 > hi1:
            q1 = hi1
            c = 1
        if q2 < lo2:
            q2 = lo2
            c = 1
        elif q2 > hi2:
            q2 = hi2
            c = 1
        x = (q0 - lo0) * sc0
        if u0:
            i0 = min(int(x), m0 - 2)
            if i0 < m0 - 2 and breaks[o0 + i0 + 1] <= q0:
                i0 += 1
        else:
            i0 = hints[h0 + int(x)]
            while i0 < m0 - 2 and breaks[o0 + i0 + 1] <= q0:
                i0 += 1
        t0 = (q0 - breaks[o0 + i0]) * invw[o0 + i0]
        x = (q1 - lo1) * sc1
        if u1:
            i1 = min(int(x), m1 - 2)
            if i1 < m1 - 2 and breaks[o1 + i1 + 1] <= q1:
                i1 += 1
        else:
            i1 = hints[h1 + int(x)]
            while i1 < m1 - 2 and breaks[o1 + i1 + 1] <= q1:
                i1 += 1
        t1 = (q1 - breaks[o1 + i1]) * invw[o1 + i1]
        x = (q2 - lo2) * sc2
        if u2:
            i2 = min(int(x), m2 - 2)
            if i2 < m2 - 2 and breaks[o2 + i2 + 1] <= q2:
                i2 += 1
        else:
            i2 = hints[h2 + int(x)]
            while i2 < m2 - 2 and breaks[o2 + i2 + 1] <= q2:
                i2 += 1
        t2 = (q2 - breaks[o2 + i2]) * invw[o2 + i2]
        f = i0 * s0 + i1 * s1 + i2 * s2
        for v in range(nv):
            lo = ((1.0 - t1) * ((1.0 - t2) * values[v, f] + t2 * values[v, f + s2])
                  + t1 * ((1.0 - t2) * values[v, f + s1] + t2 * values[v, f + s1 + s2]))
            g = f + s0
            hi = ((1.0 - t1) * ((1.0 - t2) * values[v, g] + t2 * values[v, g + s2])
                  + t1 * ((1.0 - t2) * values[v, g + s1] + t2 * values[v, g + s1 + s2]))
            out[v, p] = (1.0 - t0) * lo + t0 * hi
        status[p] = c
        n_clamped += c
    return n_clamped, n_nan


@jit
def lookup_nd(breaks, invw, hints, axf, axi, values, queries, fallback, out, status, start, stop):
    """out[v, p] = multilinear interpolation in any number of axes (4 for the discrete local table).

    The same cell search as the written-out kernels, in a loop over the axes, then the 2^d corners.
    Returns (clamped, nan) counts.
    """
    nv = values.shape[0]
    d = axi.shape[0]
    cell = np.empty(d, dtype=np.int64)
    frac = np.empty(d)
    n_clamped = 0
    n_nan = 0
    for p in range(start, stop):
        bad = False
        for j in range(d):
            if np.isnan(queries[p, j]):
                bad = True
        if bad:
            for v in range(nv):
                out[v, p] = fallback[v]
            status[p] = NAN
            n_nan += 1
            continue
        c = 0
        for j in range(d):
            o, m, u, h = axi[j, 0], axi[j, 1], axi[j, 2], axi[j, 3]
            lo, hi, sc = axf[j, 0], axf[j, 1], axf[j, 2]
            q = queries[p, j]
            if q < lo:
                q = lo
                c = 1
            elif q > hi:
                q = hi
                c = 1
            x = (q - lo) * sc
            if u:
                i = min(int(x), m - 2)
                if i < m - 2 and breaks[o + i + 1] <= q:
                    i += 1
            else:
                i = hints[h + int(x)]
                while i < m - 2 and breaks[o + i + 1] <= q:
                    i += 1
            cell[j] = i
            frac[j] = (q - breaks[o + i]) * invw[o + i]
        base = 0
        for j in range(d):
            base += cell[j] * axi[j, 4]
        for v in range(nv):
            out[v, p] = 0.0
        for corner in range(1 << d):
            w = 1.0
            f = base
            for j in range(d):
                if (corner >> j) & 1:
                    w *= frac[j]
                    f += axi[j, 4]
                else:
                    w *= 1.0 - frac[j]
            if w != 0.0:
                for v in range(nv):
                    out[v, p] += w * values[v, f]
        status[p] = c
        n_clamped += c
    return n_clamped, n_nan


# threaded drivers: chunks of the query range, each run by the serial kernel
# (numba caches each function separately, so one driver per dimension)


@jit(parallel=True)
def lookup_1d_threads(breaks, invw, hints, axf, axi, values, queries, fallback, out, status, chunk):
    """:func:`lookup_1d` over all queries in chunks of ``chunk`` on the numba threads."""
    n = queries.shape[0]
    k = (n + chunk - 1) // chunk
    counts = np.zeros((k, 2), dtype=np.int64)
    for c in prange(k):
        a, b = lookup_1d(breaks, invw, hints, axf, axi, values, queries, fallback, out, status, c * chunk,
                         min(n, (c + 1) * chunk))
        counts[c, 0] = a
        counts[c, 1] = b
    return counts[:, 0].sum(), counts[:, 1].sum()


@jit(parallel=True)
def lookup_2d_threads(breaks, invw, hints, axf, axi, values, queries, fallback, out, status, chunk):
    """:func:`lookup_2d` over all queries in chunks of ``chunk`` on the numba threads."""
    n = queries.shape[0]
    k = (n + chunk - 1) // chunk
    counts = np.zeros((k, 2), dtype=np.int64)
    for c in prange(k):
        a, b = lookup_2d(breaks, invw, hints, axf, axi, values, queries, fallback, out, status, c * chunk,
                         min(n, (c + 1) * chunk))
        counts[c, 0] = a
        counts[c, 1] = b
    return counts[:, 0].sum(), counts[:, 1].sum()


@jit(parallel=True)
def lookup_3d_threads(breaks, invw, hints, axf, axi, values, queries, fallback, out, status, chunk):
    """:func:`lookup_3d` over all queries in chunks of ``chunk`` on the numba threads."""
    n = queries.shape[0]
    k = (n + chunk - 1) // chunk
    counts = np.zeros((k, 2), dtype=np.int64)
    for c in prange(k):
        a, b = lookup_3d(breaks, invw, hints, axf, axi, values, queries, fallback, out, status, c * chunk,
                         min(n, (c + 1) * chunk))
        counts[c, 0] = a
        counts[c, 1] = b
    return counts[:, 0].sum(), counts[:, 1].sum()


@jit(parallel=True)
def lookup_nd_threads(breaks, invw, hints, axf, axi, values, queries, fallback, out, status, chunk):
    """:func:`lookup_nd` over all queries in chunks of ``chunk`` on the numba threads."""
    n = queries.shape[0]
    k = (n + chunk - 1) // chunk
    counts = np.zeros((k, 2), dtype=np.int64)
    for c in prange(k):
        a, b = lookup_nd(breaks, invw, hints, axf, axi, values, queries, fallback, out, status, c * chunk,
                         min(n, (c + 1) * chunk))
        counts[c, 0] = a
        counts[c, 1] = b
    return counts[:, 0].sum(), counts[:, 1].sum()


KERNELS = {1: lookup_1d, 2: lookup_2d, 3: lookup_3d, 4: lookup_nd}
THREADED = {1: lookup_1d_threads, 2: lookup_2d_threads, 3: lookup_3d_threads, 4: lookup_nd_threads}
MAX_AXES = 4


class Lookup:
    """Kernel arguments of one table, prepared once.

    Args:
        breakpoints: the axes' breakpoints (strictly increasing, >= 2 each).
        arrays: value arrays of shape ``tuple(len(b) for b in breakpoints)``.
        fallback: value returned for a NaN query, one per array.
    """

    def __init__(self, breakpoints, arrays, fallback):
        d = len(breakpoints)
        self.ndim = d
        self.kernel = KERNELS[d]
        self.threaded = THREADED[d]
        bps = [np.ascontiguousarray(b, dtype=np.float64) for b in breakpoints]
        sizes = [b.size for b in bps]
        shape = tuple(sizes)
        self.breaks = np.concatenate(bps)
        self.invw = np.concatenate([np.append(1.0 / np.diff(b), 0.0) for b in bps])
        hints = [make_hints(b) for b in bps]
        self.hints = np.concatenate([h for h, _ in hints])
        self.axf = np.zeros((d, 3), dtype=np.float64)
        self.axi = np.zeros((d, 5), dtype=np.int64)
        off = hoff = 0
        for j, b in enumerate(bps):
            uniform = is_uniform(b)
            self.axf[j] = (b[0], b[-1], (b.size - 1) / (b[-1] - b[0]) if uniform else hints[j][1])
            self.axi[j] = (off, b.size, uniform, hoff, int(np.prod(shape[j + 1:])))
            off += b.size
            hoff += hints[j][0].size
        self.values = np.ascontiguousarray(np.stack([np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]))
        self.fallback = np.asarray(fallback, dtype=np.float64)
        self._rows = {}

    def _args(self, rows):
        """(values, fallback) of the selected rows (cached per selection)."""
        if rows is None:
            return self.values, self.fallback
        key = tuple(rows)
        hit = self._rows.get(key)
        if hit is None:
            hit = (np.ascontiguousarray(self.values[list(key)]), np.ascontiguousarray(self.fallback[list(key)]))
            self._rows[key] = hit
        return hit

    def point(self, coords, row: int) -> tuple[float, int]:
        """Interpolate value ``row`` at one point: (value, status)."""
        values, fallback = self._args((row,))
        q = np.array([coords], dtype=np.float64)
        out = np.empty((1, 1), dtype=np.float64)
        status = np.empty(1, dtype=np.int8)
        self.kernel(self.breaks, self.invw, self.hints, self.axf, self.axi, values, q, fallback, out, status, 0, 1)
        return float(out[0, 0]), int(status[0])

    def __call__(self, queries: np.ndarray, rows=None) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Interpolate at ``queries`` (n, ndim): (out (nv, n), status (n,), clamped count, NaN count)."""
        values, fallback = self._args(rows)
        n = queries.shape[0]
        out = np.empty((values.shape[0], n), dtype=np.float64)
        status = np.empty(n, dtype=np.int8)
        args = (self.breaks, self.invw, self.hints, self.axf, self.axi, values, queries, fallback, out, status)
        if n >= THREADED_FROM and numba.get_num_threads() > 1:
            clamped, nan = self.threaded(*args, CHUNK)
        else:
            clamped, nan = self.kernel(*args, 0, n)
        return out, status, int(clamped), int(nan)
