"""numba forms of the control rules, generated from :mod:`stochctl.symbolic.rules`: do not edit.

Regenerate with ``python -m stochctl.symbolic.rulegen`` (a test checks that this file is what
it prints). The rules and their equations are stated in :mod:`stochctl.symbolic.rules`.
"""

import math

from .._jit import jit


@jit
def player_part(u, A, B, s):
    """h = -s u A + u^2 B / 2."""
    return -A*s*u + (1/2)*B*u**2


@jit(error_model="numpy")
def joint_part(u, m, A, Bt, kappa, s):
    """f = -s u A + u^2 m Bt / 2 + s kappa / m."""
    return -A*s*u + (1/2)*Bt*m*u**2 + kappa*s/m


@jit
def is_convex(Bs):
    """Bs > 0: the clipped ratio applies."""
    return (Bs > 0)


@jit(error_model="numpy")
def u_rule(A, Bs, ul, uh):
    """argmin over [ul, uh] of -u A + u^2 Bs / 2."""
    return ((min(uh, max(ul, A/Bs))) if (Bs > 0) else (uh) if (A > (1/2)*Bs*(uh + ul)) else (ul))


@jit(error_model="numpy")
def m_rule(c, kappa, ml, mh):
    """argmin over [ml, mh] of m c / 2 + kappa / m."""
    return ((min(mh, max(ml, math.sqrt(2)*math.sqrt(kappa/c)))) if (c > 0) else (mh))


@jit(error_model="numpy")
def joint_rule(A, Bs, kappa, ul, uh, ml, mh):
    """(u, m, f) minimising f = -u A + u^2 m Bs / 2 + kappa / m: first best KKT candidate."""
    best_u = ul
    best_m = mh
    best_f = math.inf
    # interior
    if (A**2 == 2*Bs*kappa) and (max(ml, A/(Bs*uh)) <= min(mh, A/(Bs*ul))) and (A > 0) and (Bs > 0) and (kappa > 0):
        f = 0.0
        if f < best_f:
            best_u = A/(Bs*math.sqrt(max(ml, A/(Bs*uh))*min(mh, A/(Bs*ul))))
            best_m = math.sqrt(max(ml, A/(Bs*uh))*min(mh, A/(Bs*ul)))
            best_f = f
    # face m = mh
    if (A >= Bs*mh*ul) and (A <= Bs*mh*uh) and (Bs > 0):
        f = -1/2*A**2/(Bs*mh) + kappa/mh
        if f < best_f:
            best_u = A/(Bs*mh)
            best_m = mh
            best_f = f
    # face m = ml
    if (A >= Bs*ml*ul) and (A <= Bs*ml*uh) and (Bs > 0):
        f = -1/2*A**2/(Bs*ml) + kappa/ml
        if f < best_f:
            best_u = A/(Bs*ml)
            best_m = ml
            best_f = f
    # face u = ul
    if (2*kappa >= Bs*ml**2*ul**2) and (2*kappa <= Bs*mh**2*ul**2) and (Bs*ul**2 > 0):
        f = -A*ul + (1/2)*math.sqrt(2)*Bs*ul**2*math.sqrt(kappa/(Bs*ul**2)) + (1/2)*math.sqrt(2)*kappa/math.sqrt(kappa/(Bs*ul**2))
        if f < best_f:
            best_u = ul
            best_m = math.sqrt(2)*math.sqrt(kappa/(Bs*ul**2))
            best_f = f
    # face u = uh
    if (2*kappa >= Bs*ml**2*uh**2) and (2*kappa <= Bs*mh**2*uh**2) and (Bs*uh**2 > 0):
        f = -A*uh + (1/2)*math.sqrt(2)*Bs*uh**2*math.sqrt(kappa/(Bs*uh**2)) + (1/2)*math.sqrt(2)*kappa/math.sqrt(kappa/(Bs*uh**2))
        if f < best_f:
            best_u = uh
            best_m = math.sqrt(2)*math.sqrt(kappa/(Bs*uh**2))
            best_f = f
    # corner (u, m) = (ul, mh)
    f = -A*ul + (1/2)*Bs*mh*ul**2 + kappa/mh
    if f < best_f:
        best_u = ul
        best_m = mh
        best_f = f
    # corner (u, m) = (ul, ml)
    f = -A*ul + (1/2)*Bs*ml*ul**2 + kappa/ml
    if f < best_f:
        best_u = ul
        best_m = ml
        best_f = f
    # corner (u, m) = (uh, mh)
    f = -A*uh + (1/2)*Bs*mh*uh**2 + kappa/mh
    if f < best_f:
        best_u = uh
        best_m = mh
        best_f = f
    # corner (u, m) = (uh, ml)
    f = -A*uh + (1/2)*Bs*ml*uh**2 + kappa/ml
    if f < best_f:
        best_u = uh
        best_m = ml
        best_f = f
    return best_u, best_m, best_f


@jit
def player_optimum(A, Bt, s, ul, uh, mfix, isbatch, kappa, ml, mh):
    """Optimal (u, m) of one player, its Hamiltonian part h and whether the clipped ratio applies.

    Fixed batch m: u = u_rule(A, s m Bt), h = player_part(u, A, m Bt, s), convex = s m Bt > 0.
    Batch control: (u, m) = joint_rule(A, s Bt, kappa, ...), h = joint_part(u, m, A, Bt, kappa, s).
    """
    if isbatch:
        Bs = s * Bt
        u, m, f = joint_rule(A, Bs, kappa, ul, uh, ml, mh)
        return u, m, joint_part(u, m, A, Bt, kappa, s), is_convex(Bs)
    B = mfix * Bt
    Bs = s * B
    u = u_rule(A, Bs, ul, uh)
    return u, mfix, player_part(u, A, B, s), is_convex(Bs)


@jit
def player_optimum_array(A, Bt, s, ul, uh, mfix, isbatch, kappa, ml, mh, U, M, H, C):
    """:func:`player_optimum` at every entry of the 1-D arrays A, Bt, into U, M, H, C."""
    for i in range(A.shape[0]):
        U[i], M[i], H[i], C[i] = player_optimum(A[i], Bt[i], s, ul, uh, mfix, isbatch, kappa, ml, mh)
