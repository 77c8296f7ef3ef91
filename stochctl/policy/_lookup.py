"""Multilinear interpolation kernels for policy tables (1, 2 and 3 axes).

For breakpoints x_0 < ... < x_{m-1} on each axis and a query q inside the box,
the cell i with x_i <= q <= x_{i+1} and the fraction t = (q - x_i) / (x_{i+1} - x_i)
give, in two dimensions,

    f(q) = (1-t0)(1-t1) F[i,j] + (1-t0) t1 F[i,j+1] + t0 (1-t1) F[i+1,j] + t0 t1 F[i+1,j+1],

which reproduces every function that is affine in each coordinate exactly. A
query outside the box is first clamped to it (status CLAMPED); a query with a
NaN coordinate returns the fallback value of each array (status NAN).

The cell is found in O(1) from a bucket index (``hints``): the span of each
axis is cut into ``nb`` equal buckets and ``hints[b]`` is the cell holding the
bucket's left end; a short forward walk then finds the exact cell, so the
result does not depend on the buckets, only the speed does. Queries of
``THREADED_FROM`` points or more run on the numba threads when there are
several (:func:`stochctl._jit.set_num_threads`; one thread selects the serial
kernel, the better choice when other processes keep the cores busy).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from .._jit import jit

INSIDE = 0
CLAMPED = 1
NAN = 2


def make_hints(breaks: np.ndarray, per_cell: int = 4) -> tuple[np.ndarray, float]:
    """Bucket index of one axis: (hints, buckets per unit length).

    ``hints[b]`` is the cell containing ``x_0 + b / scale``.
    """
    m = breaks.size
    nb = max(1, per_cell * (m - 1))
    scale = nb / (breaks[-1] - breaks[0])
    left = breaks[0] + np.arange(nb + 1) / scale
    hints = np.searchsorted(breaks, left, side="right") - 1
    return np.clip(hints, 0, m - 2).astype(np.int64), float(scale)


@jit(inline="always")
def _locate(breaks, off, m, hints, hoff, nb, scale, q):
    """Cell index and fraction of q (already clamped into the axis span)."""
    lo = breaks[off]
    b = int((q - lo) * scale)
    if b < 0:
        b = 0
    elif b > nb:
        b = nb
    a = hints[hoff + b]
    while a > 0 and breaks[off + a] > q:
        a -= 1
    while a < m - 2 and breaks[off + a + 1] <= q:
        a += 1
    x0 = breaks[off + a]
    return a, (q - x0) / (breaks[off + a + 1] - x0)


@jit(inline="always")
def _clamp(breaks, off, m, q):
    lo = breaks[off]
    hi = breaks[off + m - 1]
    if q < lo:
        return lo, 1
    if q > hi:
        return hi, 1
    return q, 0


@jit
def lookup_1d(breaks, offsets, sizes, hints, hoffsets, nbuckets, scales, strides,
              values, queries, fallback, out, status):
    """out[v, p] = linear interpolation of values[v] at queries[p, 0]."""
    nv = values.shape[0]
    for p in range(queries.shape[0]):
        q0 = queries[p, 0]
        if np.isnan(q0):
            for v in range(nv):
                out[v, p] = fallback[v]
            status[p] = NAN
            continue
        q0, c0 = _clamp(breaks, offsets[0], sizes[0], q0)
        i0, t0 = _locate(breaks, offsets[0], sizes[0], hints, hoffsets[0], nbuckets[0], scales[0], q0)
        f = i0 * strides[0]
        s0 = strides[0]
        for v in range(nv):
            out[v, p] = (1.0 - t0) * values[v, f] + t0 * values[v, f + s0]
        status[p] = CLAMPED if c0 else INSIDE


@jit
def lookup_2d(breaks, offsets, sizes, hints, hoffsets, nbuckets, scales, strides,
              values, queries, fallback, out, status):
    """out[v, p] = bilinear interpolation of values[v] at queries[p, :2]."""
    nv = values.shape[0]
    for p in range(queries.shape[0]):
        q0 = queries[p, 0]
        q1 = queries[p, 1]
        if np.isnan(q0) or np.isnan(q1):
            for v in range(nv):
                out[v, p] = fallback[v]
            status[p] = NAN
            continue
        q0, c0 = _clamp(breaks, offsets[0], sizes[0], q0)
        q1, c1 = _clamp(breaks, offsets[1], sizes[1], q1)
        i0, t0 = _locate(breaks, offsets[0], sizes[0], hints, hoffsets[0], nbuckets[0], scales[0], q0)
        i1, t1 = _locate(breaks, offsets[1], sizes[1], hints, hoffsets[1], nbuckets[1], scales[1], q1)
        s0 = strides[0]
        s1 = strides[1]
        f = i0 * s0 + i1 * s1
        for v in range(nv):
            out[v, p] = ((1.0 - t0) * ((1.0 - t1) * values[v, f] + t1 * values[v, f + s1])
                         + t0 * ((1.0 - t1) * values[v, f + s0] + t1 * values[v, f + s0 + s1]))
        status[p] = CLAMPED if (c0 + c1) else INSIDE


@jit
def lookup_3d(breaks, offsets, sizes, hints, hoffsets, nbuckets, scales, strides,
              values, queries, fallback, out, status):
    """out[v, p] = trilinear interpolation of values[v] at queries[p, :3]."""
    nv = values.shape[0]
    for p in range(queries.shape[0]):
        q0 = queries[p, 0]
        q1 = queries[p, 1]
        q2 = queries[p, 2]
        if np.isnan(q0) or np.isnan(q1) or np.isnan(q2):
            for v in range(nv):
                out[v, p] = fallback[v]
            status[p] = NAN
            continue
        q0, c0 = _clamp(breaks, offsets[0], sizes[0], q0)
        q1, c1 = _clamp(breaks, offsets[1], sizes[1], q1)
        q2, c2 = _clamp(breaks, offsets[2], sizes[2], q2)
        i0, t0 = _locate(breaks, offsets[0], sizes[0], hints, hoffsets[0], nbuckets[0], scales[0], q0)
        i1, t1 = _locate(breaks, offsets[1], sizes[1], hints, hoffsets[1], nbuckets[1], scales[1], q1)
        i2, t2 = _locate(breaks, offsets[2], sizes[2], hints, hoffsets[2], nbuckets[2], scales[2], q2)
        s0 = strides[0]
        s1 = strides[1]
        s2 = strides[2]
        f = i0 * s0 + i1 * s1 + i2 * s2
        for v in range(nv):
            lo = ((1.0 - t1) * ((1.0 - t2) * values[v, f] + t2 * values[v, f + s2])
                  + t1 * ((1.0 - t2) * values[v, f + s1] + t2 * values[v, f + s1 + s2]))
            g = f + s0
            hi = ((1.0 - t1) * ((1.0 - t2) * values[v, g] + t2 * values[v, g + s2])
                  + t1 * ((1.0 - t2) * values[v, g + s1] + t2 * values[v, g + s1 + s2]))
            out[v, p] = (1.0 - t0) * lo + t0 * hi
        status[p] = CLAMPED if (c0 + c1 + c2) else INSIDE


# threaded twins for large queries (numba caches each function separately)


@jit(parallel=True)
def lookup_1d_threads(breaks, offsets, sizes, hints, hoffsets, nbuckets, scales, strides,
                      values, queries, fallback, out, status):
    """Threaded twin of :func:`lookup_1d` (same arithmetic)."""
    nv = values.shape[0]
    for p in prange(queries.shape[0]):
        q0 = queries[p, 0]
        if np.isnan(q0):
            for v in range(nv):
                out[v, p] = fallback[v]
            status[p] = NAN
            continue
        q0, c0 = _clamp(breaks, offsets[0], sizes[0], q0)
        i0, t0 = _locate(breaks, offsets[0], sizes[0], hints, hoffsets[0], nbuckets[0], scales[0], q0)
        f = i0 * strides[0]
        s0 = strides[0]
        for v in range(nv):
            out[v, p] = (1.0 - t0) * values[v, f] + t0 * values[v, f + s0]
        status[p] = CLAMPED if c0 else INSIDE


@jit(parallel=True)
def lookup_2d_threads(breaks, offsets, sizes, hints, hoffsets, nbuckets, scales, strides,
                      values, queries, fallback, out, status):
    """Threaded twin of :func:`lookup_2d` (same arithmetic)."""
    nv = values.shape[0]
    for p in prange(queries.shape[0]):
        q0 = queries[p, 0]
        q1 = queries[p, 1]
        if np.isnan(q0) or np.isnan(q1):
            for v in range(nv):
                out[v, p] = fallback[v]
            status[p] = NAN
            continue
        q0, c0 = _clamp(breaks, offsets[0], sizes[0], q0)
        q1, c1 = _clamp(breaks, offsets[1], sizes[1], q1)
        i0, t0 = _locate(breaks, offsets[0], sizes[0], hints, hoffsets[0], nbuckets[0], scales[0], q0)
        i1, t1 = _locate(breaks, offsets[1], sizes[1], hints, hoffsets[1], nbuckets[1], scales[1], q1)
        s0 = strides[0]
        s1 = strides[1]
        f = i0 * s0 + i1 * s1
        for v in range(nv):
            out[v, p] = ((1.0 - t0) * ((1.0 - t1) * values[v, f] + t1 * values[v, f + s1])
                         + t0 * ((1.0 - t1) * values[v, f + s0] + t1 * values[v, f + s0 + s1]))
        status[p] = CLAMPED if (c0 + c1) else INSIDE


@jit(parallel=True)
def lookup_3d_threads(breaks, offsets, sizes, hints, hoffsets, nbuckets, scales, strides,
                      values, queries, fallback, out, status):
    """Threaded twin of :func:`lookup_3d` (same arithmetic)."""
    nv = values.shape[0]
    for p in prange(queries.shape[0]):
        q0 = queries[p, 0]
        q1 = queries[p, 1]
        q2 = queries[p, 2]
        if np.isnan(q0) or np.isnan(q1) or np.isnan(q2):
            for v in range(nv):
                out[v, p] = fallback[v]
            status[p] = NAN
            continue
        q0, c0 = _clamp(breaks, offsets[0], sizes[0], q0)
        q1, c1 = _clamp(breaks, offsets[1], sizes[1], q1)
        q2, c2 = _clamp(breaks, offsets[2], sizes[2], q2)
        i0, t0 = _locate(breaks, offsets[0], sizes[0], hints, hoffsets[0], nbuckets[0], scales[0], q0)
        i1, t1 = _locate(breaks, offsets[1], sizes[1], hints, hoffsets[1], nbuckets[1], scales[1], q1)
        i2, t2 = _locate(breaks, offsets[2], sizes[2], hints, hoffsets[2], nbuckets[2], scales[2], q2)
        s0 = strides[0]
        s1 = strides[1]
        s2 = strides[2]
        f = i0 * s0 + i1 * s1 + i2 * s2
        for v in range(nv):
            lo = ((1.0 - t1) * ((1.0 - t2) * values[v, f] + t2 * values[v, f + s2])
                  + t1 * ((1.0 - t2) * values[v, f + s1] + t2 * values[v, f + s1 + s2]))
            g = f + s0
            hi = ((1.0 - t1) * ((1.0 - t2) * values[v, g] + t2 * values[v, g + s2])
                  + t1 * ((1.0 - t2) * values[v, g + s1] + t2 * values[v, g + s1 + s2]))
            out[v, p] = (1.0 - t0) * lo + t0 * hi
        status[p] = CLAMPED if (c0 + c1 + c2) else INSIDE


KERNELS = {1: lookup_1d, 2: lookup_2d, 3: lookup_3d}
THREADED = {1: lookup_1d_threads, 2: lookup_2d_threads, 3: lookup_3d_threads}
THREADED_FROM = 1 << 16  # queries from which the threaded kernel pays off


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
        sizes = np.array([b.size for b in breakpoints], dtype=np.int64)
        self.sizes = sizes
        self.breaks = np.ascontiguousarray(np.concatenate(breakpoints), dtype=np.float64)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        hints, scales = zip(*(make_hints(np.asarray(b, dtype=np.float64)) for b in breakpoints))
        self.nbuckets = np.array([h.size - 1 for h in hints], dtype=np.int64)
        self.hints = np.concatenate(hints).astype(np.int64)
        self.hoffsets = np.concatenate([[0], np.cumsum([h.size for h in hints])[:-1]]).astype(np.int64)
        self.scales = np.array(scales, dtype=np.float64)
        shape = tuple(int(s) for s in sizes)
        self.strides = np.array([int(np.prod(shape[j + 1:])) for j in range(d)], dtype=np.int64)
        self.values = np.ascontiguousarray(np.stack([np.asarray(a, dtype=np.float64).reshape(-1)
                                                     for a in arrays]))
        self.fallback = np.asarray(fallback, dtype=np.float64)
        self._row_cache = {}

    def point(self, coords, row: int) -> tuple[float, int]:
        """Interpolate value ``row`` at one point: (value, status)."""
        rows = self._row_cache.get(row)
        if rows is None:
            rows = (np.ascontiguousarray(self.values[row:row + 1]), self.fallback[row:row + 1].copy())
            self._row_cache[row] = rows
        q = np.array([coords], dtype=np.float64)
        out = np.empty((1, 1), dtype=np.float64)
        status = np.empty(1, dtype=np.int8)
        self.kernel(self.breaks, self.offsets, self.sizes, self.hints, self.hoffsets, self.nbuckets,
                    self.scales, self.strides, rows[0], q, rows[1], out, status)
        return float(out[0, 0]), int(status[0])

    def __call__(self, queries: np.ndarray, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """Interpolate at ``queries`` (n, ndim): returns (out (nv, n), status (n,))."""
        values = self.values if rows is None else np.ascontiguousarray(self.values[rows])
        fallback = self.fallback if rows is None else self.fallback[rows]
        n = queries.shape[0]
        out = np.empty((values.shape[0], n), dtype=np.float64)
        status = np.empty(n, dtype=np.int8)
        kernel = self.threaded if n >= THREADED_FROM and numba.get_num_threads() > 1 else self.kernel
        kernel(self.breaks, self.offsets, self.sizes, self.hints, self.hoffsets, self.nbuckets,
               self.scales, self.strides, values, queries, fallback, out, status)
        return out, status
