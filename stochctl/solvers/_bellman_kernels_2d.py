"""numba kernels of the discrete-time Bellman recursion on 2-D grids (validated and called by
:mod:`.bellman` and :mod:`.bellman_game`).

The value of the previous level is V = Q + R: Q the quadratic with coefficients q on
(1, x, y, x^2, x y, y^2) and R the bilinear interpolant of V - Q on a uniform grid, extended
linearly beyond it. For independent normal coordinates of the next state,
E R = wx^T R wy with wx_i = E hat_i(X) (:func:`hat_weights`), and E Q follows from the means and
variances: both are exact, as in one dimension (:mod:`._bellman_kernels`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .._jit import jit
from ._bellman_kernels import hinge_expectation


@jit
def hat_weights(m, s, y0, dy, n, window, w, first):
    """E hat_i(m + s Z) for the hat basis of a uniform grid, extended linearly beyond the ends.

    hat_i = ((x - y_{i-1})_+ - 2 (x - y_i)_+ + (x - y_{i+1})_+) / dy inside; the end hats
    hat_0 = (y_1 - x)_+ / dy, hat_1 = ((x - y_0) - 2 (x - y_1)_+ + (x - y_2)_+) / dy,
    hat_{n-2} = ((x - y_{n-3})_+ - 2 (x - y_{n-2})_+) / dy, hat_{n-1} = (x - y_{n-2})_+ / dy
    reproduce the linear extension of the interpolant, so sum_i R_i E hat_i(X) = E R(X) exactly.
    Writes the weights of nodes first .. first + count - 1 into w and returns (first, count): every
    node outside that range has weight 0 (window of ``window`` standard deviations plus one cell).
    """
    reach = window * s + dy
    lo = int(math.floor((m - reach - y0) / dy)) if m - reach > y0 else 0
    hi = int(math.ceil((m + reach - y0) / dy)) if m + reach < y0 + (n - 1) * dy else n - 1
    if lo < 0:
        lo = 0
    if hi > n - 1:
        hi = n - 1
    if lo > n - 1:
        lo = n - 1
    if hi < 0:
        hi = 0
    # the end hats carry the linear extension: keep them when the mass reaches past an end
    if lo <= 2 or m - reach < y0:
        lo = 0
    if hi >= n - 3 or m + reach > y0 + (n - 1) * dy:
        hi = n - 1
    if hi < lo:
        hi = lo
    count = hi - lo + 1
    for t in range(count):
        i = lo + t
        yi = y0 + i * dy
        if i == 0:
            val = hinge_expectation(y0 + dy - m, s)
        elif i == 1:
            val = (m - y0) - 2.0 * hinge_expectation(m - yi, s) + hinge_expectation(m - yi - dy, s)
        elif i == n - 1:
            val = hinge_expectation(m - (yi - dy), s)
        elif i == n - 2:
            val = hinge_expectation(m - (yi - dy), s) - 2.0 * hinge_expectation(m - yi, s)
        else:
            val = (hinge_expectation(m - (yi - dy), s) - 2.0 * hinge_expectation(m - yi, s)
                   + hinge_expectation(m - yi - dy, s))
        w[t] = val / dy
    first[0] = lo
    return count


@jit(parallel=True)
def isaacs_step_2d(x0, dx, nx, y0, dy, ny, ax, bx, ay, by, ux, uy, r, q, window, v_up, v_lo, i_up, j_up, i_lo,
                   j_lo, r_lower, q_lower):
    """One level of the simultaneous-move recursions on a 2-D grid, pure strategies on u grids.

    J(k, l) = E V_{n-1}(x - ux_k (ax + bx Z1), y - uy_l (ay + by Z2)), Z1, Z2 independent, with
    V = Q + R (Q quadratic with coefficients q = (1, x, y, x^2, x y, y^2), R bilinear, extended
    linearly): E Q exactly, E R = wx^T R wy. Player x minimises, player y maximises:
    upper value min_k max_l J (recursion on ``r``, ``q``), lower value max_l min_k J (on
    ``r_lower``, ``q_lower``). Writes the values and the indices of the optimal controls.
    """
    nux = ux.shape[0]
    nuy = uy.shape[0]
    for p in prange(nx * ny):
        i = p // ny
        j = p % ny
        xi = x0 + i * dx
        yj = y0 + j * dy
        wx = np.empty((nux, nx))
        fx = np.empty(nux, dtype=np.int64)
        cx = np.empty(nux, dtype=np.int64)
        wy = np.empty((nuy, ny))
        fy = np.empty(nuy, dtype=np.int64)
        cy = np.empty(nuy, dtype=np.int64)
        first = np.empty(1, dtype=np.int64)
        mx = np.empty(nux)
        sx = np.empty(nux)
        my = np.empty(nuy)
        sy = np.empty(nuy)
        for k in range(nux):
            mx[k] = xi - ux[k] * ax[i, j]
            sx[k] = ux[k] * bx[i, j]
            cx[k] = hat_weights(mx[k], sx[k], x0, dx, nx, window, wx[k], first)
            fx[k] = first[0]
        for l in range(nuy):
            my[l] = yj - uy[l] * ay[i, j]
            sy[l] = uy[l] * by[i, j]
            cy[l] = hat_weights(my[l], sy[l], y0, dy, ny, window, wy[l], first)
            fy[l] = first[0]
        for which in range(2):
            rr = r if which == 0 else r_lower
            qq = q if which == 0 else q_lower
            J = np.empty((nux, nuy))
            for k in range(nux):
                for l in range(nuy):
                    m1 = mx[k]
                    m2 = my[l]
                    val = (qq[0] + qq[1] * m1 + qq[2] * m2 + qq[3] * (m1 * m1 + sx[k] * sx[k]) + qq[4] * m1 * m2
                           + qq[5] * (m2 * m2 + sy[l] * sy[l]))
                    acc = 0.0
                    for a in range(cx[k]):
                        row = 0.0
                        ia = fx[k] + a
                        for b in range(cy[l]):
                            row += rr[ia, fy[l] + b] * wy[l, b]
                        acc += wx[k, a] * row
                    J[k, l] = val + acc
            if which == 0:
                best = np.inf
                bk = 0
                bl = 0
                for k in range(nux):
                    worst = -np.inf
                    wl = 0
                    for l in range(nuy):
                        if J[k, l] > worst:
                            worst = J[k, l]
                            wl = l
                    if worst < best:
                        best = worst
                        bk = k
                        bl = wl
                v_up[i, j] = best
                i_up[i, j] = bk
                j_up[i, j] = bl
            else:
                best = -np.inf
                bk = 0
                bl = 0
                for l in range(nuy):
                    low = np.inf
                    wk = 0
                    for k in range(nux):
                        if J[k, l] < low:
                            low = J[k, l]
                            wk = k
                    if low > best:
                        best = low
                        bk = wk
                        bl = l
                v_lo[i, j] = best
                i_lo[i, j] = bk
                j_lo[i, j] = bl


@jit
def objective_2d(u, xi, yj, a1, b1, a2, b2, x0, dx, nx, y0, dy, ny, r, q, window, wx, wy, first):
    """J(u) = E V(x - u (a1 + b1 Z1), y - u (a2 + b2 Z2)) for one player owning both coordinates.

    V = Q + R as in :func:`isaacs_step_2d` (Q quadratic with coefficients (1, x, y, x^2, x y, y^2),
    R bilinear extended linearly), Z1, Z2 independent: E R = wx^T R wy exactly.
    """
    m1 = xi - u * a1
    s1 = u * b1
    m2 = yj - u * a2
    s2 = u * b2
    cx = hat_weights(m1, s1, x0, dx, nx, window, wx, first)
    fx = first[0]
    cy = hat_weights(m2, s2, y0, dy, ny, window, wy, first)
    fy = first[0]
    val = q[0] + q[1] * m1 + q[2] * m2 + q[3] * (m1 * m1 + s1 * s1) + q[4] * m1 * m2 + q[5] * (m2 * m2 + s2 * s2)
    acc = 0.0
    for p in range(cx):
        row = 0.0
        for t in range(cy):
            row += r[fx + p, fy + t] * wy[t]
        acc += wx[p] * row
    return val + acc


@jit(parallel=True)
def bellman_step_2d(x0, dx, nx, y0, dy, ny, a1, b1, a2, b2, umin, umax, nb, xatol, r, q, window, v_out, u_out,
                    int_out):
    """One level of V_n = min_u E V_{n-1}(next) for a one-player 2-D state: the best of ``nb`` bracket
    points, refined by golden section on its two neighbouring cells (kept only if not worse)."""
    golden = 0.5 * (math.sqrt(5.0) - 1.0)
    for p in prange(nx * ny):
        i = p // ny
        j = p % ny
        xi = x0 + i * dx
        yj = y0 + j * dy
        wx = np.empty(nx)
        wy = np.empty(ny)
        first = np.empty(1, dtype=np.int64)
        step = (umax - umin) / (nb - 1)
        best_j = np.inf
        best_u = umin
        kbest = 0
        for k in range(nb):
            u = umin + k * step if k < nb - 1 else umax
            val = objective_2d(u, xi, yj, a1[i, j], b1[i, j], a2[i, j], b2[i, j], x0, dx, nx, y0, dy, ny, r, q,
                               window, wx, wy, first)
            if val < best_j:
                best_j = val
                best_u = u
                kbest = k
        lo = umin + (kbest - 1) * step if kbest > 0 else umin
        hi = umin + (kbest + 1) * step if kbest < nb - 1 else umax
        c = hi - golden * (hi - lo)
        d = lo + golden * (hi - lo)
        fc = objective_2d(c, xi, yj, a1[i, j], b1[i, j], a2[i, j], b2[i, j], x0, dx, nx, y0, dy, ny, r, q, window,
                          wx, wy, first)
        fd = objective_2d(d, xi, yj, a1[i, j], b1[i, j], a2[i, j], b2[i, j], x0, dx, nx, y0, dy, ny, r, q, window,
                          wx, wy, first)
        while hi - lo > xatol:
            if fc < fd:
                hi = d
                d = c
                fd = fc
                c = hi - golden * (hi - lo)
                fc = objective_2d(c, xi, yj, a1[i, j], b1[i, j], a2[i, j], b2[i, j], x0, dx, nx, y0, dy, ny, r,
                                  q, window, wx, wy, first)
            else:
                lo = c
                c = d
                fc = fd
                d = lo + golden * (hi - lo)
                fd = objective_2d(d, xi, yj, a1[i, j], b1[i, j], a2[i, j], b2[i, j], x0, dx, nx, y0, dy, ny, r,
                                  q, window, wx, wy, first)
        uc = 0.5 * (lo + hi)
        fu = objective_2d(uc, xi, yj, a1[i, j], b1[i, j], a2[i, j], b2[i, j], x0, dx, nx, y0, dy, ny, r, q,
                          window, wx, wy, first)
        if fu < best_j:
            best_j = fu
            best_u = uc
        v_out[i, j] = best_j
        u_out[i, j] = best_u
        int_out[i, j] = best_u > umin + xatol and best_u < umax - xatol
