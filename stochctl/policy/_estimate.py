"""numba kernels of the regression estimator (numpy state, updated in place).

Per coordinate, with weight alpha of the new observation (g, x):

    dg = g - m_g,  dx = x - m_x,  m_g += alpha dg,  m_x += alpha dx,
    V_g = (1-alpha)(V_g + alpha dg^2),  V_x likewise,  C = (1-alpha)(C + alpha dg dx),

the same arithmetic, in the same order, as ``RegressionEstimator.next_state``;
and the direction-mode read-out of ``RegressionEstimator.read`` in one pass.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit

VAR_FLOOR = 1e-30


@jit
def regression_update(g, x, mg, mx, vg, vx, cgx, alpha):
    """Fold (g, x) into the moments in place; returns False (and changes nothing) if not finite."""
    n = g.shape[0]
    for i in range(n):
        if not (np.isfinite(g[i]) and np.isfinite(x[i])):
            return False
    c = 1.0 - alpha
    for i in range(n):
        dg = g[i] - mg[i]
        dx = x[i] - mx[i]
        mg[i] = mg[i] + alpha * dg
        mx[i] = mx[i] + alpha * dx
        vg[i] = c * (vg[i] + alpha * dg * dg)
        vx[i] = c * (vx[i] + alpha * dx * dx)
        cgx[i] = c * (cgx[i] + alpha * dg * dx)
    return True


@jit
def regression_read_direction(mg, mx, vg, vx, cgx, x, use_x, sumw2, rtol, residual):
    """(a, s2, grad_norm) pooled along the EMA-gradient direction (weights m_g,i^2); NaN if undetermined."""
    n = mg.shape[0]
    den = 1.0 - (2.0 if residual else 1.0) * sumw2
    den_ok = den > 0.0
    W = 0.0
    C = 0.0
    VX = 0.0
    MX2 = 0.0
    RES = 0.0
    for i in range(n):
        w = mg[i] * mg[i]
        W += w
        C += w * cgx[i]
        VX += w * vx[i]
        MX2 += w * mx[i] * mx[i]
        if residual:
            floor = (rtol * mx[i]) ** 2 + VAR_FLOOR
            r = vg[i] - (cgx[i] * cgx[i] / vx[i] if vx[i] > floor else 0.0)
            r = r if r > 0.0 else 0.0
            RES += w * r
        else:
            RES += w * vg[i]
    nan = np.nan
    if not W > 0.0:
        return nan, nan, nan
    VXd = VX / W
    ok = VXd > rtol * rtol * (MX2 / W) + VAR_FLOOR
    a = C / W / VXd if ok else nan
    s2 = RES / W / den if den_ok else nan
    slope = a if ok else 0.0
    gn2 = 0.0
    for i in range(n):
        gh = mg[i] + slope * (x[i] - mx[i]) if use_x else mg[i]
        gn2 += gh * gh
    return a, s2, np.sqrt(gn2)
