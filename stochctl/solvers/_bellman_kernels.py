"""numba kernels of the discrete-time Bellman recursion (validated and called by :mod:`.bellman`).

The value of the previous level is represented on a uniform grid y_0 < ... < y_{N-1}
(spacing dy) as

    V(x) = Q(x) + R(x),   Q(x) = q0 + q1 x + q2 x^2,
    R(x) = r_0 + s_0 (x - y_0) + sum_{j=1}^{N-2} delta_j (x - y_j)_+ ,

the quadratic Q plus the piecewise-linear interpolant R of V - Q at the nodes,
extended linearly beyond the end nodes (slopes s_0 and s_{N-2}). For a normal
next state X = m + s Z its expectation is exact:

    E Q(X) = Q(m) + q2 s^2,
    E (X - c)_+ = s phi(d) + (m - c) Phi(d),   d = (m - c) / s,

so no quadrature node can be aligned with a narrow feature of V by the
minimisation over u (H1(d) = phi(d) + d Phi(d) is read from a cubic Hermite table to 1e-10
relative, :func:`hinge_expectation`). Hinges more than ``window`` standard deviations to the
left of m contribute m - y_j (prefix sums), those to the right nothing; the
truncation error is below s H1(-window) per unit |delta| (2e-10 s at the default 6).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .._jit import jit

_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))
_SQRT_EPS = math.sqrt(2.220446049250313e-16)


def _hinge_table(limit: float, per_unit: int):
    d = np.linspace(-limit, limit, int(2 * limit * per_unit) + 1)
    cdf = 0.5 * np.array([math.erfc(-v / math.sqrt(2.0)) for v in d])
    pdf = np.exp(-0.5 * d * d) / math.sqrt(2.0 * math.pi)
    return pdf + d * cdf, cdf


_H_LIMIT = 8.0
_H_PER_UNIT = 64
_H_VALUES, _H_SLOPES = _hinge_table(_H_LIMIT, _H_PER_UNIT)
_H_STEP = 1.0 / _H_PER_UNIT


@jit
def _table_cell(d):
    """Cell k of the H1 table holding d (|d| < limit) and the fraction t in [0, 1] within it."""
    z = (d + _H_LIMIT) * _H_PER_UNIT
    k = int(z)
    if k >= _H_VALUES.shape[0] - 1:
        k = _H_VALUES.shape[0] - 2
    return k, z - k


@jit
def hinge_expectation(mu, s):
    """E (mu + s Z)_+ = s H1(mu / s), H1(d) = phi(d) + d Phi(d), by cubic Hermite interpolation of H1.

    H1' = Phi is tabulated with H1 at 64 points per unit on [-8, 8]; the interpolation error is at
    most step^4 max|H1| / 384 < 1e-10 (H1 = (d^2 - 1) phi(d)), times s. Outside the table
    H1 is 0 (d < -8) or d (d > 8) to within phi(8) = 5e-15.
    """
    if s <= 0.0:
        return mu if mu > 0.0 else 0.0
    d = mu / s
    if d <= -_H_LIMIT:
        return 0.0
    if d >= _H_LIMIT:
        return mu
    k, t = _table_cell(d)
    t2 = t * t
    t3 = t2 * t
    return s * ((2.0 * t3 - 3.0 * t2 + 1.0) * _H_VALUES[k] + (t3 - 2.0 * t2 + t) * _H_STEP * _H_SLOPES[k]
                + (3.0 * t2 - 2.0 * t3) * _H_VALUES[k + 1] + (t3 - t2) * _H_STEP * _H_SLOPES[k + 1])


@jit
def hinge_terms(d):
    """H1(d), H1'(d) = Phi(d) and H1''(d) = phi(d) from the cubic Hermite interpolant of the table."""
    if d <= -_H_LIMIT:
        return 0.0, 0.0, 0.0
    if d >= _H_LIMIT:
        return d, 1.0, 0.0
    k, t = _table_cell(d)
    t2 = t * t
    t3 = t2 * t
    f0 = _H_VALUES[k]
    f1 = _H_VALUES[k + 1]
    m0 = _H_STEP * _H_SLOPES[k]
    m1 = _H_STEP * _H_SLOPES[k + 1]
    val = (2.0 * t3 - 3.0 * t2 + 1.0) * f0 + (t3 - 2.0 * t2 + t) * m0 + (3.0 * t2 - 2.0 * t3) * f1 + (t3 - t2) * m1
    der = ((6.0 * t2 - 6.0 * t) * f0 + (3.0 * t2 - 4.0 * t + 1.0) * m0 + (6.0 * t - 6.0 * t2) * f1
           + (3.0 * t2 - 2.0 * t) * m1) * _H_PER_UNIT
    sec = ((12.0 * t - 6.0) * f0 + (6.0 * t - 4.0) * m0 + (6.0 - 12.0 * t) * f1 + (6.0 * t - 2.0) * m1) \
        * (_H_PER_UNIT * _H_PER_UNIT)
    return val, der, sec


@jit
def prepare_remainder(r, dy, c1, c2, y0, slopes):
    """Slopes of the interpolant of r and prefix sums C1[k] = sum_{j<=k} delta_j, C2[k] = sum delta_j y_j."""
    n = r.shape[0]
    for j in range(n - 1):
        slopes[j] = (r[j + 1] - r[j]) / dy
    c1[0] = 0.0
    c2[0] = 0.0
    for j in range(1, n - 1):
        dj = slopes[j] - slopes[j - 1]
        c1[j] = c1[j - 1] + dj
        c2[j] = c2[j - 1] + dj * (y0 + j * dy)


@jit
def hinge_window(m, s, y0, dy, n, window):
    """Interior hinges j (1 <= j <= n - 2) within ``window`` standard deviations of m: (jlo, jhi)."""
    reach = window * s
    lo_f = math.ceil((m - reach - y0) / dy)
    hi_f = math.floor((m + reach - y0) / dy)
    jlo = 1 if lo_f < 1.0 else (n - 1 if lo_f > n - 1.0 else int(lo_f))
    jhi = n - 2 if hi_f > n - 2.0 else (0 if hi_f < 0.0 else int(hi_f))
    return jlo, jhi


@jit
def expected_value(m, s, y0, dy, r, slopes, c1, c2, q0, q1, q2, window):
    """E V(m + s Z) for V = Q + R of the module docstring (exact up to the window truncation)."""
    n = r.shape[0]
    out = q0 + q1 * m + q2 * (m * m + s * s) + r[0] + slopes[0] * (m - y0)
    if n <= 2:
        return out
    jlo, jhi = hinge_window(m, s, y0, dy, n, window)
    # hinges j < jlo lie far left of m: E (X - y_j)_+ = m - y_j
    out += m * c1[jlo - 1] - c2[jlo - 1]
    for j in range(jlo, jhi + 1):
        dj = (slopes[j] - slopes[j - 1])
        if dj != 0.0:
            out += dj * hinge_expectation(m - (y0 + j * dy), s)
    return out


@jit
def objective(u, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window):
    """J(u) = E V(x - u a - u b Z): next state of the step x' = x - u (a + b Z)."""
    return expected_value(x - u * a, u * b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)


@jit
def objective_derivatives(u, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window):
    """(J, dJ/du, d2J/du2) for u > 0: with m = x - u a, s = u b and d_j = (m - y_j) / s,

    d/du [s H1(d_j)] = b phi(d_j) - a Phi(d_j),   d2/du2 = phi(d_j) (a + b d_j)^2 / s,
    and the quadratic part q0 + q1 m + q2 (m^2 + s^2) differentiated directly.
    """
    n = r.shape[0]
    m = x - u * a
    s = u * b
    J = q0 + q1 * m + q2 * (m * m + s * s) + r[0] + slopes[0] * (m - y0)
    dJ = -a * q1 + q2 * (-2.0 * a * m + 2.0 * b * s) - a * slopes[0]
    d2J = q2 * (2.0 * a * a + 2.0 * b * b)
    if n <= 2:
        return J, dJ, d2J
    jlo, jhi = hinge_window(m, s, y0, dy, n, window)
    J += m * c1[jlo - 1] - c2[jlo - 1]
    dJ += -a * c1[jlo - 1]
    if s <= 0.0:
        return J, dJ, d2J
    inv = 1.0 / s
    for j in range(jlo, jhi + 1):
        dj = slopes[j] - slopes[j - 1]
        if dj != 0.0:
            d = (m - (y0 + j * dy)) * inv
            h1, cdf, pdf = hinge_terms(d)
            J += dj * s * h1
            dJ += dj * (b * pdf - a * cdf)
            w = a + b * d
            d2J += dj * pdf * w * w * inv
    return J, dJ, d2J


@jit
def coarse_objective(u, x, a, b, levels_r, levels_sl, levels_c1, levels_c2, offs, lens, dys, y0, q0, q1, q2,
                     window, per_sd):
    """J(u) on the coarsest level whose spacing is at most s / per_sd (the bracket's estimate).

    Level L is the interpolant through every 2^L-th node; level 0 is the exact representation.
    """
    s = u * b
    lev = 0
    for L in range(1, offs.shape[0]):
        if dys[L] * per_sd <= s:
            lev = L
    o = offs[lev]
    n = lens[lev]
    return expected_value(x - u * a, s, y0, dys[lev], levels_r[o:o + n], levels_sl[o:o + n], levels_c1[o:o + n],
                          levels_c2[o:o + n], q0, q1, q2, window)


@jit
def minimize_node(x, a, b, umin, umax, nb, xatol, y0, dy, r, slopes, c1, c2, q0, q1, q2, window,
                  levels_r, levels_sl, levels_c1, levels_c2, offs, lens, dys, per_sd):
    """Global minimum of J on [umin, umax]: the best of ``nb`` bracket points, refined by Newton (or Brent).

    The bracket ranks the points with :func:`coarse_objective` (a spacing of at least ``per_sd``
    nodes per noise standard deviation); from the best one, exact evaluations walk along the
    bracket while J decreases. An endpoint where J still decreases towards the bound is returned;
    otherwise Newton on J' = 0 with exact derivatives runs on the two bracket cells around the
    best point (Brent's bounded method, as scipy.optimize.fminbound, if Newton does not settle),
    and the refined point is kept only if it is not worse. Returns (J*, u*, interior).
    """
    kbest = 0
    best_c = coarse_objective(umin, x, a, b, levels_r, levels_sl, levels_c1, levels_c2, offs, lens, dys, y0,
                              q0, q1, q2, window, per_sd)
    step = (umax - umin) / (nb - 1)
    for k in range(1, nb):
        u = umin + k * step if k < nb - 1 else umax
        j = coarse_objective(u, x, a, b, levels_r, levels_sl, levels_c1, levels_c2, offs, lens, dys, y0,
                             q0, q1, q2, window, per_sd)
        if j < best_c:
            best_c = j
            kbest = k
    # exact values from the best coarse point: walk along the bracket while J decreases, so that a
    # shift of the coarse estimate cannot leave the refinement in the wrong cell
    best_u = umin + kbest * step if kbest < nb - 1 else umax
    best_j = objective(best_u, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)
    elo = kbest
    ehi = kbest
    while True:
        moved = False
        if kbest == elo and elo > 0:
            elo -= 1
            u = umin + elo * step
            j = objective(u, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)
            if j < best_j:
                best_j = j
                best_u = u
                kbest = elo
                moved = True
        if not moved and kbest == ehi and ehi < nb - 1:
            ehi += 1
            u = umin + ehi * step if ehi < nb - 1 else umax
            j = objective(u, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)
            if j < best_j:
                best_j = j
                best_u = u
                kbest = ehi
                moved = True
        if not moved:
            break
    lo = umin + (kbest - 1) * step if kbest > 0 else umin
    hi = umin + (kbest + 1) * step if kbest < nb - 1 else umax
    # an endpoint where J still decreases towards the bound is the optimum of its cell
    if kbest == nb - 1 and umax > 0.0:
        _, slope, _ = objective_derivatives(umax, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)
        if slope <= 0.0:
            return best_j, umax, False
    if kbest == 0 and umin > 0.0:
        _, slope, _ = objective_derivatives(umin, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)
        if slope >= 0.0:
            return best_j, umin, False
    # Newton on J' = 0 from the best point, inside [lo, hi]; Brent if it does not settle
    un = best_u if best_u > 0.0 else 0.5 * (lo + hi)
    converged = False
    for _ in range(8):
        jn, g1, g2 = objective_derivatives(un, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)
        if not g2 > 0.0:
            break
        nxt = un - g1 / g2
        if nxt < lo:
            nxt = lo
        elif nxt > hi:
            nxt = hi
        if abs(nxt - un) <= xatol:
            un = nxt
            converged = True
            break
        un = nxt
    if converged:
        jn = objective(un, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)
        if jn < best_j:
            best_j = jn
            best_u = un
        interior = best_u > umin + xatol and best_u < umax - xatol
        return best_j, best_u, interior
    # --- Brent's bounded minimisation on [lo, hi]
    aa = lo
    bb = hi
    fulc = aa + _GOLDEN * (bb - aa)
    nfc = fulc
    xf = fulc
    rat = 0.0
    e = 0.0
    fx = objective(xf, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)
    ffulc = fx
    fnfc = fx
    xm = 0.5 * (aa + bb)
    tol1 = _SQRT_EPS * abs(xf) + xatol / 3.0
    tol2 = 2.0 * tol1
    num = 1
    while abs(xf - xm) > (tol2 - 0.5 * (bb - aa)) and num < 200:
        golden = True
        if abs(e) > tol1:
            golden = False
            rr = (xf - nfc) * (fx - ffulc)
            qq = (xf - fulc) * (fx - fnfc)
            p = (xf - fulc) * qq - (xf - nfc) * rr
            qq = 2.0 * (qq - rr)
            if qq > 0.0:
                p = -p
            qq = abs(qq)
            rr = e
            e = rat
            if abs(p) < abs(0.5 * qq * rr) and p > qq * (aa - xf) and p < qq * (bb - xf):
                rat = p / qq
                xt = xf + rat
                if (xt - aa) < tol2 or (bb - xt) < tol2:
                    rat = tol1 if xm >= xf else -tol1
            else:
                golden = True
        if golden:
            e = (aa - xf) if xf >= xm else (bb - xf)
            rat = _GOLDEN * e
        step_x = max(abs(rat), tol1)
        xt = xf + step_x if rat >= 0.0 else xf - step_x
        fu = objective(xt, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)
        num += 1
        if fu <= fx:
            if xt >= xf:
                aa = xf
            else:
                bb = xf
            fulc = nfc
            ffulc = fnfc
            nfc = xf
            fnfc = fx
            xf = xt
            fx = fu
        else:
            if xt < xf:
                aa = xt
            else:
                bb = xt
            if fu <= fnfc or nfc == xf:
                fulc = nfc
                ffulc = fnfc
                nfc = xt
                fnfc = fu
            elif fu <= ffulc or fulc == xf or fulc == nfc:
                fulc = xt
                ffulc = fu
        xm = 0.5 * (aa + bb)
        tol1 = _SQRT_EPS * abs(xf) + xatol / 3.0
        tol2 = 2.0 * tol1
    if fx < best_j:
        best_j = fx
        best_u = xf
    interior = best_u > umin + xatol and best_u < umax - xatol
    return best_j, best_u, interior


@jit(parallel=True)
def bellman_step_1d(nodes, active, a, b, umin, umax, nb, xatol, dy, r, q0, q1, q2, window, v_out, u_out,
                    int_out, slopes, c1, c2, levels_r, levels_sl, levels_c1, levels_c2, offs, lens, dys, per_sd):
    """One level of V_n(x_i) = min_u E V_{n-1}(x_i - u (a_i + b_i Z)) at the nodes ``active`` (parallel)."""
    y0 = nodes[0]
    prepare_remainder(r, dy, c1, c2, y0, slopes)
    for L in range(offs.shape[0]):
        o = offs[L]
        n = lens[L]
        step = (r.shape[0] - 1) // (n - 1)
        for j in range(n):
            levels_r[o + j] = r[j * step]
        prepare_remainder(levels_r[o:o + n], dys[L], levels_c1[o:o + n], levels_c2[o:o + n], y0,
                          levels_sl[o:o + n])
    for t in prange(active.shape[0]):
        i = active[t]
        j, u, inside = minimize_node(nodes[i], a[i], b[i], umin, umax, nb, xatol, y0, dy, r, slopes, c1, c2,
                                     q0, q1, q2, window, levels_r, levels_sl, levels_c1, levels_c2, offs,
                                     lens, dys, per_sd)
        v_out[i] = j
        u_out[i] = u
        int_out[i] = inside


@jit(parallel=True)
def constant_step_1d(nodes, a, b, u, dy, r, q0, q1, q2, window, v_out, slopes, c1, c2):
    """One level of the recursion under a fixed multiplier u (the value of a constant policy)."""
    n = nodes.shape[0]
    y0 = nodes[0]
    prepare_remainder(r, dy, c1, c2, y0, slopes)
    for i in prange(n):
        v_out[i] = objective(u, nodes[i], a[i], b[i], y0, dy, r, slopes, c1, c2, q0, q1, q2, window)


def numpy_expected_value(m, s, nodes, r, q, window=8.0):
    """Vectorised numpy reference of :func:`expected_value` (no prefix sums, no window): for benchmarks and tests."""
    from scipy.special import ndtr

    m = np.asarray(m, dtype=float)[..., None]
    s = np.asarray(s, dtype=float)[..., None]
    dy = nodes[1] - nodes[0]
    slopes = np.diff(r) / dy
    delta = np.diff(slopes)
    mu = m - nodes[1:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        d = mu / s
        h = np.where(s > 0, s * np.exp(-0.5 * d * d) / math.sqrt(2 * math.pi) + mu * ndtr(d), np.maximum(mu, 0.0))
    m = m[..., 0]
    s = s[..., 0]
    return q[0] + q[1] * m + q[2] * (m * m + s * s) + r[0] + slopes[0] * (m - nodes[0]) + (h * delta).sum(-1)


@jit
def _derivatives_any_sign(u, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window):
    """(J, J', J'') at any real u: for u < 0 the noise std is |u| b, i.e. b -> -b (Z is symmetric)."""
    bb = b if u >= 0.0 else -b
    return objective_derivatives(u, x, a, bb, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)


@jit
def continue_past_bound(x, a, b, u, umin, umax, reach_lo, reach_hi, xatol, y0, dy, r, slopes, c1, c2, q0, q1,
                        q2, window):
    """The minimiser u* continued past the bound it sits on (u* itself when it is interior).

    At a bound where J still decreases outwards (J'(u_max) <= 0, or J'(u_min) >= 0), J is
    followed outwards, in steps doubling from reach / 64, to the first point where J' changes
    sign: the nearest local minimiser beyond the bound, i.e. the branch of stationary points
    that reaches the bound, found in that cell by Newton safeguarded by bisection. Clipping the
    result to [u_min, u_max] gives u* back; unlike u*, it has no kink where the optimum meets
    a bound. Capped at u_max + reach_hi and u_min - reach_lo.
    """
    tol = 10.0 * xatol
    if u >= umax - tol:
        side = 1.0
        ub = umax
        reach = reach_hi
    elif u <= umin + tol:
        side = -1.0
        ub = umin
        reach = reach_lo
    else:
        return u
    _, g, _ = _derivatives_any_sign(ub, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)
    if side * g > 0.0 or reach <= 0.0:
        return ub
    # march outwards until J' changes sign: the root lies between prev and t
    step = reach / 64.0
    prev = ub
    t = ub
    found = False
    while True:
        dist = min(abs(t - ub) + step, reach)
        t = ub + side * dist
        _, g, _ = _derivatives_any_sign(t, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)
        if side * g >= 0.0:
            found = True
            break
        if dist >= reach:
            break
        prev = t
        step *= 2.0
    if not found:
        return t
    # bracket [lo, hi] with J'(lo) <= 0 <= J'(hi)
    lo = prev if side > 0.0 else t
    hi = t if side > 0.0 else prev
    un = 0.5 * (lo + hi)
    for _ in range(100):
        _, g, g2 = _derivatives_any_sign(un, x, a, b, y0, dy, r, slopes, c1, c2, q0, q1, q2, window)
        if g > 0.0:
            hi = un
        else:
            lo = un
        nxt = un - g / g2 if g2 > 0.0 else 0.5 * (lo + hi)
        if not (lo < nxt < hi):
            nxt = 0.5 * (lo + hi)
        if abs(nxt - un) <= xatol or hi - lo <= xatol:
            return nxt
        un = nxt
    return un


@jit(parallel=True)
def continuation_step_1d(nodes, active, a, b, u, umin, umax, reach_lo, reach_hi, xatol, dy, r, q0, q1, q2, window,
                         slopes, c1, c2, w_out):
    """:func:`continue_past_bound` at the nodes ``active``, for the level :func:`bellman_step_1d` just solved.

    Reads the remainder tables (``slopes``, ``c1``, ``c2``) that :func:`bellman_step_1d` prepared from ``r``.
    """
    y0 = nodes[0]
    for t in prange(active.shape[0]):
        i = active[t]
        w_out[i] = continue_past_bound(nodes[i], a[i], b[i], u[i], umin, umax, reach_lo, reach_hi, xatol, y0, dy,
                                       r, slopes, c1, c2, q0, q1, q2, window)
