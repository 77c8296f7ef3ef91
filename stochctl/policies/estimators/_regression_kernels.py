"""numba kernels of the regression estimator (numpy state, updated in place).

Per coordinate, with weight alpha of the new observation (g, x):

    dg = g - m_g,  dx = x - m_x,  m_g += alpha dg,  m_x += alpha dx,
    V_g = (1-alpha)(V_g + alpha dg^2),  V_x likewise,  C = (1-alpha)(C + alpha dg dx),

the same arithmetic, in the same order, as ``RegressionEstimator.next_state``;
and the direction-mode read-out of ``RegressionEstimator.read``,

    a = sum w C / sum w V_x,  s2 = sum w r / sum w / (1 - k S),  |grad| = |m_g + a (x - m_x)|,

with w_i = m_{g,i}^2 and the residual r_i = max(V_g - C^2 / V_x, 0) (or V_g).
Speed: every sum runs in four interleaved partial sums (coordinate i goes to
partial sum i mod 4, the four are added pairwise at the end), since one
running sum is a chain of dependent additions and four chains run about four
times as fast; the residuals, which need a division each, are computed in an
elementwise loop of their own. The order is fixed, so results are
reproducible; they differ from a sequential sum in the last digits only.
The ``_parts`` kernels take a parameter group as a tuple of 1-D arrays (views
of a network's tensors) instead of one concatenated copy and give the same
numbers bit for bit. Inputs may be float32, widened element by element.
"""

from __future__ import annotations

import numpy as np

from ..._jit import jit

VAR_FLOOR = 1e-30


@jit
def _finite(g, x):
    """All entries finite (x - x is 0 exactly for finite x, NaN otherwise; a branch-free reduction)."""
    ok = True
    for i in range(g.shape[0]):
        ok &= (g[i] - g[i] == 0.0) & (x[i] - x[i] == 0.0)
    return ok


@jit
def _fold_segment(g, x, mg, mx, vg, vx, cgx, alpha):
    """The fold of every coordinate of (g, x) (finite)."""
    c = 1.0 - alpha
    for i in range(g.shape[0]):
        dg = np.float64(g[i]) - mg[i]
        dx = np.float64(x[i]) - mx[i]
        mg[i] = mg[i] + alpha * dg
        mx[i] = mx[i] + alpha * dx
        vg[i] = c * (vg[i] + alpha * dg * dg)
        vx[i] = c * (vx[i] + alpha * dx * dx)
        cgx[i] = c * (cgx[i] + alpha * dg * dx)


@jit
def regression_update(g, x, mg, mx, vg, vx, cgx, alpha):
    """Fold (g, x) into the moments in place; returns False (and changes nothing) if not finite."""
    if not _finite(g, x):
        return False
    _fold_segment(g, x, mg, mx, vg, vx, cgx, alpha)
    return True


@jit(error_model="numpy")
def _noise(mx, vg, vx, cgx, rtol, residual, out):
    """out_i = max(V_g - C^2 / V_x, 0) where V_x > (rtol m_x)^2 + floor, else V_g (V_g if not ``residual``).

    An elementwise loop of its own: the compiler unrolls it and overlaps the
    divisions (``error_model="numpy"`` drops the division-by-zero check, which
    the guard makes unreachable).
    """
    if not residual:
        for i in range(vg.shape[0]):
            out[i] = vg[i]
        return
    for i in range(vg.shape[0]):
        v = vx[i]
        big = v > (rtol * mx[i]) ** 2 + VAR_FLOOR
        r = vg[i] - (cgx[i] * cgx[i] / (v if big else 1.0) if big else 0.0)
        out[i] = r if r > 0.0 else 0.0


@jit
def _sums(mg, mx, vx, cgx, r):
    """sum w, sum w C, sum w V_x, sum w m_x^2, sum w r (w = m_g^2), each in four
    interleaved partial sums (coordinates 0, 1, 2, 3 mod 4; the last n mod 4 go to the first)."""
    n = mg.shape[0]
    W0 = W1 = W2 = W3 = 0.0
    C0 = C1 = C2 = C3 = 0.0
    V0 = V1 = V2 = V3 = 0.0
    M0 = M1 = M2 = M3 = 0.0
    R0 = R1 = R2 = R3 = 0.0
    m = n - n % 4
    for i in range(0, m, 4):
        w = mg[i] * mg[i]
        W0 += w
        C0 += w * cgx[i]
        V0 += w * vx[i]
        M0 += w * mx[i] * mx[i]
        R0 += w * r[i]
        k = i + 1
        w = mg[k] * mg[k]
        W1 += w
        C1 += w * cgx[k]
        V1 += w * vx[k]
        M1 += w * mx[k] * mx[k]
        R1 += w * r[k]
        k = i + 2
        w = mg[k] * mg[k]
        W2 += w
        C2 += w * cgx[k]
        V2 += w * vx[k]
        M2 += w * mx[k] * mx[k]
        R2 += w * r[k]
        k = i + 3
        w = mg[k] * mg[k]
        W3 += w
        C3 += w * cgx[k]
        V3 += w * vx[k]
        M3 += w * mx[k] * mx[k]
        R3 += w * r[k]
    for i in range(m, n):
        w = mg[i] * mg[i]
        W0 += w
        C0 += w * cgx[i]
        V0 += w * vx[i]
        M0 += w * mx[i] * mx[i]
        R0 += w * r[i]
    return ((W0 + W1) + (W2 + W3), (C0 + C1) + (C2 + C3), (V0 + V1) + (V2 + V3), (M0 + M1) + (M2 + M3),
            (R0 + R1) + (R2 + R3))


@jit
def _pooled(mg, mx, vg, vx, cgx, sumw2, rtol, residual, scratch):
    """(a, s2, W) pooled along the EMA-gradient direction: the sums of the read-out.

    The residuals go to ``scratch`` first (:func:`_noise`), then one pass
    sums (:func:`_sums`).
    """
    _noise(mx, vg, vx, cgx, rtol, residual, scratch)
    W, C, VX, MX2, RES = _sums(mg, mx, vx, cgx, scratch)
    nan = np.nan
    if not W > 0.0:
        return nan, nan, W
    den = 1.0 - (2.0 if residual else 1.0) * sumw2
    VXd = VX / W
    ok = VXd > rtol * rtol * (MX2 / W) + VAR_FLOOR
    a = C / W / VXd if ok else nan
    s2 = RES / W / den if den > 0.0 else nan
    return a, s2, W


@jit
def regression_read_direction(mg, mx, vg, vx, cgx, x, use_x, sumw2, rtol, residual, scratch):
    """(a, s2, grad_norm) pooled along the EMA-gradient direction (weights m_g,i^2); NaN if undetermined.

    ``x``: the current parameters (used when ``use_x``) to predict the gradient there;
    ``scratch``: a work array of the moments' size.
    """
    a, s2, W = _pooled(mg, mx, vg, vx, cgx, sumw2, rtol, residual, scratch)
    if not W > 0.0:
        return a, s2, np.nan
    slope = a if use_x and not np.isnan(a) else 0.0
    s0, s1, s2_, s3 = _norm2_segment(mg, mx, x, slope, 0, 0.0, 0.0, 0.0, 0.0)
    return a, s2, np.sqrt((s0 + s1) + (s2_ + s3))


# the same on a parameter group given as a tuple of 1-D arrays (views of a network's
# tensors, no copies): coordinates numbered through the arrays in order. Each array
# works on slices of the moments: indexing with a running offset instead compiles
# to code twice as slow.


@jit
def regression_update_parts(gs, xs, mg, mx, vg, vx, cgx, alpha):
    """:func:`regression_update` with (g, x) the concatenations of the arrays ``gs``, ``xs``."""
    for t in range(len(gs)):
        if not _finite(gs[t], xs[t]):
            return False
    a = 0
    for t in range(len(gs)):
        b = a + gs[t].shape[0]
        _fold_segment(gs[t], xs[t], mg[a:b], mx[a:b], vg[a:b], vx[a:b], cgx[a:b], alpha)
        a = b
    return True


@jit
def _norm2_segment(mg, mx, x, slope, start, s0, s1, s2, s3):
    """Add (m_g + slope (x - m_x))^2 of this segment to four partial sums, coordinate i
    (global index ``start`` + local index) to partial sum i mod 4; returns the sums."""
    n = mg.shape[0]
    j = 0
    while j < n and (start + j) % 4:  # up to the next multiple of 4
        gh = mg[j] + slope * (np.float64(x[j]) - mx[j])
        lane = (start + j) % 4
        if lane == 1:
            s1 += gh * gh
        elif lane == 2:
            s2 += gh * gh
        else:
            s3 += gh * gh
        j += 1
    m = j + (n - j) // 4 * 4
    for i in range(j, m, 4):
        gh = mg[i] + slope * (np.float64(x[i]) - mx[i])
        s0 += gh * gh
        gh = mg[i + 1] + slope * (np.float64(x[i + 1]) - mx[i + 1])
        s1 += gh * gh
        gh = mg[i + 2] + slope * (np.float64(x[i + 2]) - mx[i + 2])
        s2 += gh * gh
        gh = mg[i + 3] + slope * (np.float64(x[i + 3]) - mx[i + 3])
        s3 += gh * gh
    for i in range(m, n):  # lanes 0, 1, 2 in order
        gh = mg[i] + slope * (np.float64(x[i]) - mx[i])
        if i - m == 0:
            s0 += gh * gh
        elif i - m == 1:
            s1 += gh * gh
        else:
            s2 += gh * gh
    return s0, s1, s2, s3


@jit
def regression_read_parts(mg, mx, vg, vx, cgx, xs, sumw2, rtol, residual, scratch):
    """:func:`regression_read_direction` at x = the concatenation of the arrays ``xs``."""
    a, s2, W = _pooled(mg, mx, vg, vx, cgx, sumw2, rtol, residual, scratch)
    if not W > 0.0:
        return a, s2, np.nan
    slope = 0.0 if np.isnan(a) else a
    s0 = s1 = s2_ = s3 = 0.0
    lo = 0
    for t in range(len(xs)):
        hi = lo + xs[t].shape[0]
        s0, s1, s2_, s3 = _norm2_segment(mg[lo:hi], mx[lo:hi], xs[t], slope, lo, s0, s1, s2_, s3)
        lo = hi
    return a, s2, np.sqrt((s0 + s1) + (s2_ + s3))



# rms mode: the curvature pooled along the EMA-gradient direction as above, the noise
# averaged over the n coordinates, s2 = sum r / n / (1 - k S), and the root-mean-square
# gradient over the window, sqrt(max((sum m_g^2 + sum V_g) / n - s2, 0)): m_g^2 + V_g is
# the EMA of g^2 exactly, whose mean is the window's mean |grad f|^2 / n plus s2.


@jit
def _sum4(v):
    """sum v in four interleaved partial sums (the order of :func:`_sums`)."""
    n = v.shape[0]
    t0 = t1 = t2 = t3 = 0.0
    m = n - n % 4
    for i in range(0, m, 4):
        t0 += v[i]
        t1 += v[i + 1]
        t2 += v[i + 2]
        t3 += v[i + 3]
    for i in range(m, n):
        t0 += v[i]
    return (t0 + t1) + (t2 + t3)


@jit
def regression_read_rms(mg, mx, vg, vx, cgx, sumw2, rtol, residual, scratch):
    """(a, s2, rms gradient) of the rms mode (NaN if undetermined); ``scratch`` as in
    :func:`regression_read_direction`. Needs no current parameters: the rms gradient
    is a window average."""
    a, s2d, W = _pooled(mg, mx, vg, vx, cgx, sumw2, rtol, residual, scratch)
    n = mg.shape[0]
    den = 1.0 - (2.0 if residual else 1.0) * sumw2
    if not W > 0.0 or not den > 0.0:
        return a, np.nan, np.nan
    s2 = _sum4(scratch) / n / den
    ms = (W + _sum4(vg)) / n - s2
    return a, s2, np.sqrt(ms) if ms > 0.0 else 0.0
