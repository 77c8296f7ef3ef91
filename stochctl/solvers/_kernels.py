"""numba kernels of the finite-difference HJB/Isaacs solver.

All kernels work on precomputed coefficient arrays (stacked per axis i):

    gh[i] = g_i(x) / h_i                 (g_i = dg/dx_i),
    sd[i] = eta Sigma_ii(x) / h_i^2,

with per-player constants ``sign`` (+1 min, -1 max), ``umin``, ``umax``,
``mfix`` (m = 1/B when the batch is fixed), ``isbatch``, ``kappa``, ``mmin``,
``mmax``, and ``owner[i]``, the player of axis i. For player p the discrete
Hamiltonian is (module :mod:`stochctl.solvers.explicit`)

    -s_p u A_p + u^2 m Bt_p / 2 (+ s_p kappa / m under batch control),
    A_p = sum_{i of p} gh_i D1_i V,   Bt_p = sum_{i of p} sd_i D2_i V,

where D1_i is the upwind difference (forward where s_p g_i < 0, i.e. where the
drift -s_p u g_i points up the axis) and D2_i the central second difference,
both in units of h_i (not divided by it). Boundary codes are the indices of
:data:`stochctl.solvers.grid.BOUNDARY_KINDS`. The optimum of each player and its part of the
Hamiltonian come from the generated rule kernels (:mod:`stochctl.symbolic._rule_kernels`,
printed from :mod:`stochctl.symbolic.rules`), the one form of the rules that every scheme calls.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .._jit import jit
from ..symbolic._rule_kernels import player_optimum, player_part, u_rule

DIRICHLET = 0
LINEAR = 1
REFLECTING = 2


@jit
def axis_differences(vm, v0, vp, fwd, side, kind):
    """(D1, D2) along one axis in units of h: upwind first and central second difference.

    ``side`` is 0 inside, 1 on the lower face (``vm`` unused), 2 on the upper
    face (``vp`` unused). Reflecting faces mirror the ghost node (V_{-1} = V_1);
    linear (and, for the policy, Dirichlet) faces have D2 = 0 and drop an
    outward upwind difference (see :mod:`stochctl.solvers.grid`).
    """
    if side == 0:
        d1 = vp - v0 if fwd else v0 - vm
        d2 = (vp - 2.0 * v0) + vm
    elif side == 1:
        if kind == REFLECTING:
            d1 = vp - v0 if fwd else v0 - vp
            d2 = (vp - 2.0 * v0) + vp
        else:
            d1 = vp - v0 if fwd else 0.0
            d2 = 0.0
    else:
        if kind == REFLECTING:
            d1 = vm - v0 if fwd else v0 - vm
            d2 = (vm - 2.0 * v0) + vm
        else:
            d1 = 0.0 if fwd else v0 - vm
            d2 = 0.0
    return d1, d2


@jit
def _side(i, n):
    if i == 0:
        return 1
    if i == n - 1:
        return 2
    return 0


@jit
def _points_1d(start, stop, V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin, mmax,
               bc, dt, store, U, M, C):
    """Nodes start..stop-1 of the 1D explicit step; returns whether a result is not finite."""
    n0 = V.shape[0]
    p0 = owner[0]
    s0 = sign[p0]
    anybad = False
    for i in range(start, stop):
        side0 = _side(i, n0)
        kind0 = bc[0, 0] if side0 == 1 else bc[0, 1]
        fixed = side0 != 0 and kind0 == DIRICHLET
        im = i - 1 if i > 0 else i
        ip = i + 1 if i < n0 - 1 else i
        v0 = V[i]
        g = gh[0, i]
        d1, d2 = axis_differences(V[im], v0, V[ip], s0 * g < 0.0, side0, kind0)
        A = g * d1
        Bt = sd[0, i] * d2
        u, m, h, cv = player_optimum(A, Bt, s0, umin[p0], umax[p0], mfix[p0], isbatch[p0], kappa[p0],
                                     mmin[p0], mmax[p0])
        if store:
            U[0, i] = u
            M[0, i] = m
            C[0, i] = cv
        H = 0.0 + h
        if fixed:
            H = 0.0
        val = v0 + dt * (H + r[i]) if has_r else v0 + dt * H
        out[i] = val
        if not math.isfinite(val):
            anybad = True
    return anybad


@jit(parallel=True)
def explicit_step_1d(V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin, mmax,
                     bc, dt, store, U, M, C, bad):
    """One explicit step out = V + dt (H(V) + r) in 1D; policy into U, M, C when ``store``.

    Nodes on a Dirichlet face get out = V + dt r. ``bad[c]`` is set when a
    result of chunk c is not finite. Parallel over chunks of nodes.
    """
    n0 = V.shape[0]
    nchunks = bad.shape[0]
    size = (n0 + nchunks - 1) // nchunks
    for cc in prange(nchunks):
        c = np.int64(cc)
        bad[c] = _points_1d(c * size, min(n0, (c + 1) * size), V, out, gh, sd, r, has_r, owner, sign, umin, umax,
                            mfix, isbatch, kappa, mmin, mmax, bc, dt, store, U, M, C)


@jit
def explicit_step_1d_serial(V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin, mmax,
                            bc, dt, store, U, M, C, bad):
    """Serial version of :func:`explicit_step_1d` (``bad[0]`` flags a non-finite result)."""
    bad[0] = _points_1d(0, V.shape[0], V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa,
                        mmin, mmax, bc, dt, store, U, M, C)


@jit
def _block_2d(i0, i1, j0, j1, V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin,
              mmax, bc, dt, store, U, M, C):
    """Nodes [i0, i1) x [j0, j1) of the 2D explicit step (general path); returns whether a result is not finite.

    One call covers a whole block: calls between compiled functions cost a
    reference-count update per array argument, so they are kept out of the
    per-node loops.
    """
    n0, n1 = V.shape
    nplayers = sign.shape[0]
    q0 = owner[0]
    q1 = owner[1]
    s0 = sign[q0]
    s1 = sign[q1]
    rowbad = False
    for i in range(i0, i1):
        side0 = _side(i, n0)
        kind0 = bc[0, 0] if side0 == 1 else bc[0, 1]
        fixed0 = side0 != 0 and kind0 == DIRICHLET
        im = i - 1 if i > 0 else i
        ip = i + 1 if i < n0 - 1 else i
        for j in range(j0, j1):
            side1 = _side(j, n1)
            kind1 = bc[1, 0] if side1 == 1 else bc[1, 1]
            fixed = fixed0 or (side1 != 0 and kind1 == DIRICHLET)
            jm = j - 1 if j > 0 else j
            jp = j + 1 if j < n1 - 1 else j
            v0 = V[i, j]
            g0 = gh[0, i, j]
            g1 = gh[1, i, j]
            a0, b0 = axis_differences(V[im, j], v0, V[ip, j], s0 * g0 < 0.0, side0, kind0)
            a1, b1 = axis_differences(V[i, jm], v0, V[i, jp], s1 * g1 < 0.0, side1, kind1)
            a0 = g0 * a0
            b0 = sd[0, i, j] * b0
            a1 = g1 * a1
            b1 = sd[1, i, j] * b1
            if nplayers == 1:
                u, m, h, cv = player_optimum(a0 + a1, b0 + b1, s0, umin[0], umax[0], mfix[0], isbatch[0],
                                             kappa[0], mmin[0], mmax[0])
                H = 0.0 + h
                if store:
                    U[0, i, j] = u
                    M[0, i, j] = m
                    C[0, i, j] = cv
            else:
                u, m, h, cv = player_optimum(a0, b0, s0, umin[q0], umax[q0], mfix[q0], isbatch[q0],
                                             kappa[q0], mmin[q0], mmax[q0])
                u2, m2, h2, cv2 = player_optimum(a1, b1, s1, umin[q1], umax[q1], mfix[q1], isbatch[q1],
                                                 kappa[q1], mmin[q1], mmax[q1])
                H = (0.0 + h) + h2 if q0 == 0 else (0.0 + h2) + h
                if store:
                    U[q0, i, j] = u
                    M[q0, i, j] = m
                    C[q0, i, j] = cv
                    U[q1, i, j] = u2
                    M[q1, i, j] = m2
                    C[q1, i, j] = cv2
            if fixed:
                H = 0.0
            val = v0 + dt * (H + r[i, j]) if has_r else v0 + dt * H
            out[i, j] = val
            if not math.isfinite(val):
                rowbad = True
    return rowbad


@jit(error_model="numpy")
def _interior_2d(vm, v, vp, g0r, g1r, d0r, d1r, o, first, s0, s1, ul0, uh0, m0, ul1, uh1, m1, dt):
    """Nodes j = 1..n1-2 of an interior row in 2D, two players, fixed batch, r = 0, no policy stored: branch-free.

    Same formulas as the general path (:func:`u_rule`, :func:`player_part`), written so that the
    loop vectorises: no policy is stored and the rule's conditional expression becomes a select.
    Rows are 1-D arrays. Returns the number of non-finite results.
    """
    n1 = v.shape[0]
    nbad = 0
    for j in range(1, n1 - 1):
        v0 = v[j]
        g0 = g0r[j]
        g1 = g1r[j]
        a0 = g0 * ((vp[j] - v0) if s0 * g0 < 0.0 else (v0 - vm[j]))
        b0 = d0r[j] * ((vp[j] - 2.0 * v0) + vm[j])
        a1 = g1 * ((v[j + 1] - v0) if s1 * g1 < 0.0 else (v0 - v[j - 1]))
        b1 = d1r[j] * ((v[j + 1] - 2.0 * v0) + v[j - 1])
        B0 = m0 * b0
        h0 = player_part(u_rule(a0, s0 * B0, ul0, uh0), a0, B0, s0)
        B1 = m1 * b1
        h1 = player_part(u_rule(a1, s1 * B1, ul1, uh1), a1, B1, s1)
        H = (0.0 + h0) + h1 if first else (0.0 + h1) + h0
        val = v0 + dt * H
        o[j] = val
        nbad += (val - val) != 0.0
    return nbad


@jit(error_model="numpy")
def _interior_2d_one(vm, v, vp, g0r, g1r, d0r, d1r, o, s, ul, uh, m, dt):
    """As :func:`_interior_2d` for one player owning both axes: A = A_0 + A_1, Bt = Bt_0 + Bt_1."""
    n1 = v.shape[0]
    nbad = 0
    for j in range(1, n1 - 1):
        v0 = v[j]
        g0 = g0r[j]
        g1 = g1r[j]
        a = g0 * ((vp[j] - v0) if s * g0 < 0.0 else (v0 - vm[j])) + g1 * (
            (v[j + 1] - v0) if s * g1 < 0.0 else (v0 - v[j - 1]))
        b = d0r[j] * ((vp[j] - 2.0 * v0) + vm[j]) + d1r[j] * ((v[j + 1] - 2.0 * v0) + v[j - 1])
        B = m * b
        val = v0 + dt * (0.0 + player_part(u_rule(a, s * B, ul, uh), a, B, s))
        o[j] = val
        nbad += (val - val) != 0.0
    return nbad


@jit
def _interior_row(i, V, out, gh, sd, owner, sign, umin, umax, mfix, dt):
    """:func:`_interior_2d` on row i; returns the number of non-finite results."""
    if sign.shape[0] == 1:
        return _interior_2d_one(V[i - 1], V[i], V[i + 1], gh[0, i], gh[1, i], sd[0, i], sd[1, i], out[i], sign[0],
                                umin[0], umax[0], mfix[0], dt)
    q0 = owner[0]
    q1 = owner[1]
    return _interior_2d(V[i - 1], V[i], V[i + 1], gh[0, i], gh[1, i], sd[0, i], sd[1, i], out[i], q0 == 0,
                        sign[q0], sign[q1], umin[q0], umax[q0], mfix[q0], umin[q1], umax[q1], mfix[q1], dt)


@jit
def _edges_2d(V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin, mmax, bc, dt, store,
              U, M, C):
    """The boundary rows and columns of the 2D step (general path); returns whether a result is not finite."""
    n0, n1 = V.shape
    bad = _block_2d(0, 1, 0, n1, V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin,
                    mmax, bc, dt, store, U, M, C)
    bad |= _block_2d(n0 - 1, n0, 0, n1, V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa,
                     mmin, mmax, bc, dt, store, U, M, C)
    bad |= _block_2d(1, n0 - 1, 0, 1, V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa,
                     mmin, mmax, bc, dt, store, U, M, C)
    bad |= _block_2d(1, n0 - 1, n1 - 1, n1, V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch,
                     kappa, mmin, mmax, bc, dt, store, U, M, C)
    return bad


@jit(parallel=True)
def explicit_step_2d(V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin, mmax,
                     bc, dt, store, U, M, C, bad):
    """One explicit step out = V + dt (H(V) + r) in 2D (one or two players), parallel over rows.

    See :func:`explicit_step_1d`; ``bad[i]`` flags row i (``bad[0]`` also the
    boundary). Steps that store no policy, without batch control or running
    cost, take the branch-free vectorised path :func:`_interior_2d` inside
    the box and the general path on its boundary.
    """
    n0, n1 = V.shape
    if not (isbatch.any() or store or has_r):
        for ii in prange(1, n0 - 1):
            i = np.int64(ii)
            bad[i] = _interior_row(i, V, out, gh, sd, owner, sign, umin, umax, mfix, dt) > 0
        bad[n0 - 1] = False
        bad[0] = _edges_2d(V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin, mmax, bc,
                           dt, store, U, M, C)
        return
    for ii in prange(n0):
        i = np.int64(ii)
        bad[i] = _block_2d(i, i + 1, 0, n1, V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch,
                           kappa, mmin, mmax, bc, dt, store, U, M, C)


@jit
def explicit_step_2d_serial(V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin, mmax,
                            bc, dt, store, U, M, C, bad):
    """Serial version of :func:`explicit_step_2d`."""
    n0, n1 = V.shape
    if not (isbatch.any() or store or has_r):
        for i in range(1, n0 - 1):
            bad[i] = _interior_row(i, V, out, gh, sd, owner, sign, umin, umax, mfix, dt) > 0
        bad[n0 - 1] = False
        bad[0] = _edges_2d(V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin, mmax, bc,
                           dt, store, U, M, C)
        return
    for i in range(n0):
        bad[i] = _block_2d(i, i + 1, 0, n1, V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch,
                           kappa, mmin, mmax, bc, dt, store, U, M, C)


@jit
def _plane_3d(i, V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin, mmax,
              bc, dt, store, U, M, C):
    """Plane i of the 3D explicit step; returns whether a result is not finite."""
    n0, n1, n2 = V.shape
    nplayers = sign.shape[0]
    A = np.zeros(nplayers)
    Bt = np.zeros(nplayers)
    side0 = _side(i, n0)
    kind0 = bc[0, 0] if side0 == 1 else bc[0, 1]
    fixed0 = side0 != 0 and kind0 == DIRICHLET
    im = i - 1 if i > 0 else i
    ip = i + 1 if i < n0 - 1 else i
    rowbad = False
    for j in range(n1):
        side1 = _side(j, n1)
        kind1 = bc[1, 0] if side1 == 1 else bc[1, 1]
        fixed1 = fixed0 or (side1 != 0 and kind1 == DIRICHLET)
        jm = j - 1 if j > 0 else j
        jp = j + 1 if j < n1 - 1 else j
        for k in range(n2):
            side2 = _side(k, n2)
            kind2 = bc[2, 0] if side2 == 1 else bc[2, 1]
            fixed = fixed1 or (side2 != 0 and kind2 == DIRICHLET)
            km = k - 1 if k > 0 else k
            kp = k + 1 if k < n2 - 1 else k
            v0 = V[i, j, k]
            for p in range(nplayers):
                A[p] = 0.0
                Bt[p] = 0.0
            g = gh[0, i, j, k]
            p = owner[0]
            d1, d2 = axis_differences(V[im, j, k], v0, V[ip, j, k], sign[p] * g < 0.0, side0, kind0)
            A[p] += g * d1
            Bt[p] += sd[0, i, j, k] * d2
            g = gh[1, i, j, k]
            p = owner[1]
            d1, d2 = axis_differences(V[i, jm, k], v0, V[i, jp, k], sign[p] * g < 0.0, side1, kind1)
            A[p] += g * d1
            Bt[p] += sd[1, i, j, k] * d2
            g = gh[2, i, j, k]
            p = owner[2]
            d1, d2 = axis_differences(V[i, j, km], v0, V[i, j, kp], sign[p] * g < 0.0, side2, kind2)
            A[p] += g * d1
            Bt[p] += sd[2, i, j, k] * d2
            H = 0.0
            for p in range(nplayers):
                u, m, h, cv = player_optimum(A[p], Bt[p], sign[p], umin[p], umax[p], mfix[p], isbatch[p],
                                             kappa[p], mmin[p], mmax[p])
                H += h
                if store:
                    U[p, i, j, k] = u
                    M[p, i, j, k] = m
                    C[p, i, j, k] = cv
            if fixed:
                H = 0.0
            val = v0 + dt * (H + r[i, j, k]) if has_r else v0 + dt * H
            out[i, j, k] = val
            if not math.isfinite(val):
                rowbad = True
    return rowbad


@jit(parallel=True)
def explicit_step_3d(V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin, mmax,
                     bc, dt, store, U, M, C, bad):
    """One explicit step out = V + dt (H(V) + r) in 3D (one to three players), parallel over planes."""
    n0 = V.shape[0]
    for ii in prange(n0):
        i = np.int64(ii)
        bad[i] = _plane_3d(i, V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin,
                           mmax, bc, dt, store, U, M, C)


@jit
def explicit_step_3d_serial(V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin, mmax,
                            bc, dt, store, U, M, C, bad):
    """Serial version of :func:`explicit_step_3d`."""
    for i in range(V.shape[0]):
        bad[i] = _plane_3d(i, V, out, gh, sd, r, has_r, owner, sign, umin, umax, mfix, isbatch, kappa, mmin,
                           mmax, bc, dt, store, U, M, C)
