"""numba kernels of the implicit (policy-iteration) HJB solver: the linear operator of a fixed policy and
its tridiagonal solve.

For fixed controls (u, m) per grid point, one backward step of the implicit scheme solves

    (I - dt L_{u,m}) V^n = V^{n+1} + dt r,

L the monotone upwind/central difference operator of :mod:`stochctl.solvers._kernels` (same
coefficient arrays ``gh``, ``sd`` and per-player constants); :func:`howard_step_1d` alternates
this solve with the pointwise optimal policy (Howard). Boundary codes as in ``_kernels``.
"""

from __future__ import annotations

import math

from .._jit import jit
from ._kernels import DIRICHLET, REFLECTING, _side, explicit_step_1d_serial


@jit
def _axis_coefficients(u, m, s, g, sdv, side, kind):
    """Coefficients (cm, cp) of L^u on the lower/upper neighbour along one axis (ghosts folded in).

    L^u V = sum over axes of cm (V_- - V_0) + cp (V_+ - V_0); cm, cp >= 0.
    """
    cd = u * abs(g)
    cf = 0.5 * u * u * m * sdv
    fwd = s * g < 0.0
    if side == 0:
        if fwd:
            return cf, cf + cd
        return cf + cd, cf
    if side == 1:
        if kind == REFLECTING:
            return 0.0, 2.0 * cf + cd
        return 0.0, cd if fwd else 0.0
    if kind == REFLECTING:
        return 2.0 * cf + cd, 0.0
    return 0.0 if fwd else cd, 0.0


@jit
def operator_1d(gh, sd, r, has_r, owner, sign, kappa, isbatch, bc, dt, U, M, Vnext, lower, diag, upper, rhs):
    """Tridiagonal system (I - dt L^u) V = Vnext + dt (r + control cost) of one player in 1D.

    Dirichlet face nodes get the identity row. ``lower[i]`` multiplies V[i-1],
    ``upper[i]`` multiplies V[i+1].
    """
    n0 = Vnext.shape[0]
    p = owner[0]
    s = sign[p]
    for i in range(n0):
        side0 = _side(i, n0)
        kind0 = bc[0, 0] if side0 == 1 else bc[0, 1]
        rr = r[i] if has_r else 0.0
        if side0 != 0 and kind0 == DIRICHLET:
            lower[i] = 0.0
            upper[i] = 0.0
            diag[i] = 1.0
            rhs[i] = Vnext[i] + dt * rr
            continue
        u = U[p, i]
        m = M[p, i]
        cm, cp = _axis_coefficients(u, m, s, gh[0, i], sd[0, i], side0, kind0)
        lower[i] = -dt * cm
        upper[i] = -dt * cp
        diag[i] = 1.0 + dt * (cm + cp)
        if isbatch[p]:
            rr += s * kappa[p] / m
        rhs[i] = Vnext[i] + dt * rr


@jit
def operator_2d(gh, sd, r, has_r, owner, sign, kappa, isbatch, bc, dt, U, M, Vnext, cm0, cp0, cm1, cp1, diag, rhs):
    """Five-point system (I - dt L^u) V = Vnext + dt (r + control cost) of one player in 2D.

    ``cm0[i, j]``/``cp0[i, j]`` multiply V[i-1, j]/V[i+1, j] and ``cm1``/``cp1``
    multiply V[i, j-1]/V[i, j+1] (already times -dt); Dirichlet face nodes
    get the identity row.
    """
    n0, n1 = Vnext.shape
    p = owner[0]
    s = sign[p]
    for i in range(n0):
        side0 = _side(i, n0)
        kind0 = bc[0, 0] if side0 == 1 else bc[0, 1]
        for j in range(n1):
            side1 = _side(j, n1)
            kind1 = bc[1, 0] if side1 == 1 else bc[1, 1]
            rr = r[i, j] if has_r else 0.0
            if (side0 != 0 and kind0 == DIRICHLET) or (side1 != 0 and kind1 == DIRICHLET):
                cm0[i, j] = 0.0
                cp0[i, j] = 0.0
                cm1[i, j] = 0.0
                cp1[i, j] = 0.0
                diag[i, j] = 1.0
                rhs[i, j] = Vnext[i, j] + dt * rr
                continue
            u = U[p, i, j]
            m = M[p, i, j]
            a, b = _axis_coefficients(u, m, s, gh[0, i, j], sd[0, i, j], side0, kind0)
            c, d = _axis_coefficients(u, m, s, gh[1, i, j], sd[1, i, j], side1, kind1)
            cm0[i, j] = -dt * a
            cp0[i, j] = -dt * b
            cm1[i, j] = -dt * c
            cp1[i, j] = -dt * d
            diag[i, j] = 1.0 + dt * (a + b + c + d)
            if isbatch[p]:
                rr += s * kappa[p] / m
            rhs[i, j] = Vnext[i, j] + dt * rr


@jit
def solve_tridiagonal(lower, diag, upper, rhs, out, work):
    """Thomas algorithm for a diagonally dominant tridiagonal system (no pivoting needed).

    Row i reads lower[i] x[i-1] + diag[i] x[i] + upper[i] x[i+1] = rhs[i].
    """
    n = diag.shape[0]
    c = work
    inv = 1.0 / diag[0]
    c[0] = upper[0] * inv
    out[0] = rhs[0] * inv
    for i in range(1, n):
        inv = 1.0 / (diag[i] - lower[i] * c[i - 1])
        c[i] = upper[i] * inv
        out[i] = (rhs[i] - lower[i] * out[i - 1]) * inv
    for i in range(n - 2, -1, -1):
        out[i] -= c[i] * out[i + 1]
    return out


@jit
def howard_step_1d(Vnext, W, Wold, Hout, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin,
                   mmax, bc, dt, tol, max_iter, U, M, C, U2, M2, C2, lower, diag, upper, rhs, work, bad):
    """One backward-Euler step in 1D by Howard policy iteration (see :mod:`stochctl.solvers.implicit`).

    U, M on entry: the policy optimal at ``Vnext`` (the starting policy). W
    receives V^k and U, M, C its optimal policy. Returns (iterations, status,
    residual) with status 1 converged, 0 not converged (residual = last
    change), -1 non-finite W.
    """
    n = Vnext.shape[0]
    for i in range(n):
        Wold[i] = Vnext[i]
    change = 0.0
    for it in range(1, max_iter + 1):
        operator_1d(gh, sd, r, has_r, owner, sign, kappa, isbatch, bc, dt, U, M, Vnext, lower, diag, upper, rhs)
        solve_tridiagonal(lower, diag, upper, rhs, W, work)
        change = 0.0
        wmax = 0.0
        for i in range(n):
            w = W[i]
            if not math.isfinite(w):
                return it, -1, math.inf
            d = abs(w - Wold[i])
            if d > change:
                change = d
            if abs(w) > wmax:
                wmax = abs(w)
        explicit_step_1d_serial(W, Hout, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin,
                                mmax, bc, dt, True, U2, M2, C2, bad)
        same = True
        for i in range(n):
            if U2[0, i] != U[0, i] or M2[0, i] != M[0, i]:
                same = False
            U[0, i] = U2[0, i]
            M[0, i] = M2[0, i]
            C[0, i] = C2[0, i]
        if same or change <= tol * max(1.0, wmax):
            residual = 0.0
            for i in range(n):
                d = abs((2.0 * W[i] - Hout[i]) - Vnext[i])
                if not d <= residual:
                    residual = d
            return it, 1, residual
        for i in range(n):
            Wold[i] = W[i]
    return max_iter, 0, change
