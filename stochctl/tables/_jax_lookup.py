"""jax.numpy version of the policy tables' multilinear lookup, for jitted optax transformations.

Kept apart from :mod:`.optax_adapter` so that the policies of :mod:`.estimators` can evaluate
their table under ``jax.numpy`` without importing the adapter.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import require_extra


def _jax():
    require_extra("optax", "optax")
    jax = require_extra("jax", "optax")
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    return jax, jnp, ravel_pytree


def jax_table_lookup(table, value: str):
    """jax.numpy multilinear interpolation of one table value: f(*coords) -> (values, status).

    Same rules as the numba kernel: coordinates clamped into the grid (status
    1), NaN coordinates answered with the value's fallback (status 2), and the
    value's interpolant and clip rule (:class:`~stochctl.tables.TableValue`).
    """
    _, jnp, _ = _jax()
    spec = table.value(value)
    bps = [np.asarray(a.breakpoints) for a in table.axes]
    data = np.asarray(table.interpolated(value))
    names = list(table.axis_names)
    clip = spec.clip
    fallback = float(spec.fallback)

    def lookup(*coords):
        dtype = jnp.result_type(*coords, jnp.float32)
        nan = False
        clamped = False
        idx, frac, clamped_q = [], [], []
        for b, q in zip(bps, coords):
            q = jnp.asarray(q, dtype)
            bj = jnp.asarray(b, dtype)
            lo, hi = bj[0], bj[-1]
            isnan = jnp.isnan(q)
            nan = nan | isnan
            clamped = clamped | (q < lo) | (q > hi)
            qc = jnp.clip(jnp.where(isnan, lo, q), lo, hi)
            clamped_q.append(qc)
            i = jnp.clip(jnp.searchsorted(bj, qc, side="right") - 1, 0, b.size - 2)
            idx.append(i)
            frac.append((qc - bj[i]) / (bj[i + 1] - bj[i]))
        V = jnp.asarray(data, dtype)
        out = 0.0
        for corner in itertools.product((0, 1), repeat=len(bps)):
            w = 1.0
            for t, c in zip(frac, corner):
                w = w * (t if c else 1.0 - t)
            out = out + w * V[tuple(i + c for i, c in zip(idx, corner))]
        if clip is not None:
            lo_c, hi_c = (clamped_q[names.index(b)] if isinstance(b, str) else b for b in clip)
            out = jnp.minimum(jnp.maximum(out, lo_c), hi_c)
        out = jnp.where(nan, jnp.asarray(fallback, dtype), out)
        status = jnp.where(nan, 2, jnp.where(clamped, 1, 0))
        return out, status

    return lookup
