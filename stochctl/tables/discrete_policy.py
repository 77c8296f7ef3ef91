"""The discrete-time policy at any trainer input, read from the scaled table ``local-discrete``.

The discrete local model (design section 4b)

    Y_{k+1} = (1 - h u) Y_k - u sqrt(h) xi_k,   u in [0, u_max],   cost E[Y_K^2],

in the variables z = h u (step in curvature units) and w = sqrt(h) y is

    W_{k+1} = (1 - z) W_k - z xi_k,   z in [0, Z],   Z = h u_max,   cost E[W_K^2] / h,

so u*(u_max, h, n, y) = z*(Z, n, sqrt(h) y) / h exactly: three variables, not four. The table
stores r = u* / u_max = z* / Z on the axes

    Z = h u_max,   T = n Z = u_max tau_remaining,   v = y / sqrt(u_max) = w / sqrt(Z),

(the u_max = 1 policy at h = Z), v >= 0 only (u* is even in y). Three regimes:

- Z above the last node Z_sat: the cap no longer binds anywhere (every unconstrained optimum has
  z* < Z_sat), so z* = z*(Z_sat, n, w) exactly and u* = Z_sat r(Z_sat, n Z_sat, w / sqrt(Z_sat)) / h
  (the large-h asymptote: h u* depends on n and w = sqrt(h) y only).
- Z between 0 and the first positive node: linear in Z between the continuous limit (node Z = 0,
  dY = -u Y dtau + u dW with u in [0, 1], whose error is first order in h) and that node.
- T beyond the last node: the stationary policy (limit of the Bellman iteration, checked converged
  at build); v beyond the last node: its value there.

:func:`query` maps trainer inputs to table coordinates; :func:`lookup` is the one numpy lookup that
``LocalPolicy`` and ``stochctl table lookup local-discrete`` both call.
"""

from __future__ import annotations

import numpy as np

SCALED_AXES = ("Z", "T", "v")
"""Axis names of the scaled discrete table."""
QUERY_AXES = ("u_max", "h", "tau_remaining", "y")
"""What a trainer (or the command line) gives: the model's own variables."""


def is_scaled(table) -> bool:
    """Whether ``table`` has the scaled discrete layout (:data:`SCALED_AXES`)."""
    return table is not None and tuple(table.axis_names) == SCALED_AXES


def query(table, u_max, h, tau_remaining, y, xp=np):
    """Table coordinates (Z, T, v) and the factor f with u* = f r for trainer inputs (module docstring).

    Z is min(h u_max, Z_sat); T and v are clamped into the table so that no lookup extrapolates
    (beyond the axes the stationary policy and the value at the last v node are the answer).
    """
    z_axis, t_axis, v_axis = (a.bounds for a in table.axes)
    zq = xp.clip(h * u_max, 1e-30, z_axis[1])  # clip with float bounds: numpy, torch and jax alike
    T = xp.clip(tau_remaining * zq / h, t_axis[0], t_axis[1])
    v = xp.clip(xp.abs(y) * xp.sqrt(h / zq), 0.0, v_axis[1])
    return zq, T, v, zq / h


def lookup(table, u_max, h, tau_remaining, y, value: str = "u"):
    """u*(u_max, h, tau_remaining, y) and the lookup status (0 inside, 2 NaN input), numpy arrays.

    ``value``: ``"u"`` (the multiplier, clipped to [0, u_max]) or ``"u_continued"``.
    """
    arrays = np.broadcast_arrays(*(np.asarray(c, dtype=np.float64) for c in (u_max, h, tau_remaining, y)))
    shape = arrays[0].shape
    um, hh, tau, yy = (a.reshape(-1) for a in arrays)
    with np.errstate(invalid="ignore", divide="ignore"):
        zq, T, v, f = query(table, um, hh, tau, yy)
        q = np.ascontiguousarray(np.stack([zq, T, v], axis=1))
        res = table.lookup_array(q, names=[value])
        u = res.values[value] * f
    bad = ~(np.isfinite(um) & np.isfinite(hh) & (hh > 0) & (um > 0) & ~np.isnan(tau) & ~np.isnan(yy))
    status = np.where(bad, 2, res.status).astype(np.int8)
    u = np.where(bad, table.value(value).fallback, u)
    return u.reshape(shape), status.reshape(shape)



def table_lookup(table, u_max, h, tau_remaining, y, value: str = "u"):
    """:func:`lookup` for the scaled table; for a table on the axes (u_max, h, tau_remaining, y)
    itself, its interpolation, beyond its last h node keeping that node's step h u (u h_max / h)."""
    if is_scaled(table):
        return lookup(table, u_max, h, tau_remaining, y, value)
    arrays = np.broadcast_arrays(*(np.asarray(c, dtype=np.float64) for c in (u_max, h, tau_remaining, y)))
    q = np.ascontiguousarray(np.stack([a.reshape(-1) for a in arrays], axis=1))
    res = table.lookup_array(q, names=[value])
    u = _beyond_h(res.values[value], q[:, 1], table.axis("h").bounds[1], np)
    return u.reshape(arrays[0].shape), res.status.reshape(arrays[0].shape)


def array_lookup(base, table, u_max, h_max, h, tau_remaining, y, xp):
    """:func:`table_lookup` for arrays of ``xp`` (numpy or jax.numpy); ``base(*coords) -> (values, status)``
    is the table's multilinear lookup of the value in that namespace."""
    if is_scaled(table):
        zq, T, v, f = query(table, u_max, h, tau_remaining, y, xp)
        r, status = base(zq, T, v)
        return r * f, status
    u, status = base(u_max + 0 * h, h, tau_remaining, y)
    return _beyond_h(u, h, h_max, xp), status


def _beyond_h(u, h, h_max, xp):
    over = h > h_max
    return xp.where(over, u * h_max / xp.where(over, h, 1.0), u)
