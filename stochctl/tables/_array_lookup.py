"""The policy tables' multilinear lookup in torch or jax.numpy, for the trainers' on-device and jitted steps.

Same rules as the numba kernel: coordinates clamped into the grid (status 1), NaN coordinates
answered with the value's fallback (status 2), and the value's interpolant and clip rule
(:class:`~stochctl.tables.TableValue`). Imports neither torch nor jax: the array library is
the one of the coordinates.
"""

from __future__ import annotations

import itertools

import numpy as np


def _ops(xp):
    """(asarray(x, like), searchsorted_right(b, q), result dtype of coordinates) for torch or jax.numpy."""
    if xp.__name__ == "torch":
        def asarray(x, like):
            if isinstance(x, np.ndarray) and like.device.type == "cuda":  # a table constant, copied once
                return xp.from_numpy(x).pin_memory().to(like.device, like.dtype, non_blocking=True)
            if isinstance(x, (int, float)):
                return xp.full((), x, dtype=like.dtype, device=like.device)  # a fill, no copy from the host
            return xp.as_tensor(x, dtype=like.dtype, device=like.device)

        def dtype_of(coords):
            t = next((c for c in coords if hasattr(c, "dtype") and c.dtype.is_floating_point), None)
            return coords[0] if t is None else t

        return asarray, lambda b, q: xp.searchsorted(b, q, side="right"), dtype_of

    def asarray_j(x, like):
        return xp.asarray(x, like.dtype)

    def dtype_of_j(coords):
        return xp.zeros([], xp.result_type(*coords, xp.float32))

    return asarray_j, lambda b, q: xp.searchsorted(b, q, side="right"), dtype_of_j


def array_table_lookup(table, value: str, xp):
    """Multilinear interpolation of one table value in ``xp``: f(*coords) -> (values, status)."""
    spec = table.value(value)
    bps = [np.asarray(a.breakpoints) for a in table.axes]
    data = np.asarray(table.interpolated(value))
    names = list(table.axis_names)
    clip = spec.clip
    fallback = float(spec.fallback)
    asarray, search_right, like_of = _ops(xp)
    consts = {}  # (device, dtype) -> (breakpoints, data): built once per device and type

    def constants(like):
        key = (str(getattr(like, "device", "")), str(like.dtype))
        hit = consts.get(key)
        if hit is None:
            hit = consts[key] = ([asarray(np.array(b), like) for b in bps], asarray(np.array(data), like))
        return hit

    def lookup(*coords):
        like = like_of(coords)
        coords = [asarray(q, like) if not hasattr(q, "dtype") or q.dtype != like.dtype else q for q in coords]
        bjs, V = constants(like)
        nan = clamped = None
        idx, frac, clamped_q = [], [], []
        for b, bj, q in zip(bps, bjs, coords):
            lo, hi = bj[0], bj[-1]
            isnan = xp.isnan(q)
            nan = isnan if nan is None else nan | isnan
            out_side = (q < lo) | (q > hi)
            clamped = out_side if clamped is None else clamped | out_side
            qc = xp.clip(xp.where(isnan, lo, q), lo, hi)
            clamped_q.append(qc)
            i = xp.clip(search_right(bj, qc) - 1, 0, b.size - 2)
            idx.append(i)
            frac.append((qc - bj[i]) / (bj[i + 1] - bj[i]))
        out = 0.0
        for corner in itertools.product((0, 1), repeat=len(bps)):
            w = 1.0
            for t, c in zip(frac, corner):
                w = w * (t if c else 1.0 - t)
            out = out + w * V[tuple(i + c for i, c in zip(idx, corner))]
        if clip is not None:
            lo_c, hi_c = (clamped_q[names.index(b)] if isinstance(b, str) else b for b in clip)
            out = xp.minimum(xp.maximum(out, asarray(lo_c, out)), asarray(hi_c, out))
        out = xp.where(nan, asarray(fallback, out), out)
        status = xp.where(nan, 2, xp.where(clamped, 1, 0))
        return out, status

    return lookup
