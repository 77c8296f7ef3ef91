"""The optimal-control rules, written once (design section 2).

Every form of the rules is produced from the sympy expressions built here: the Piecewise of the
derivation (:mod:`stochctl.symbolic.optimal`, :mod:`stochctl.symbolic.derive`), the numpy
functions (lambdified by :mod:`stochctl.symbolic.rulegen`) and the numba kernels of the grid
solvers (printed by :mod:`stochctl.symbolic.rulegen` into :mod:`stochctl.symbolic._rule_kernels`).
The rules are stated for a minimiser with curvature Bs = s B (s = +1 min, -1 max): a maximiser of
u A + u^2 B / 2 minimises -u A + u^2 (-B) / 2.

* player part of the Hamiltonian: h(u) = -s u A + u^2 B / 2;
* u* = argmin over [u_min, u_max] of phi(u) = -u A + u^2 Bs / 2:
  Bs > 0 (convex): clip(A / Bs, u_min, u_max); Bs <= 0: u_max iff A > (u_min + u_max) Bs / 2
  (phi(u_max) < phi(u_min); ties go to u_min);
* m* = argmin over [m_min, m_max] of u^2 m Bt / 2 + kappa / m with c = u^2 Bt:
  c > 0: clip(sqrt(2 kappa / c), m_min, m_max); otherwise m_max;
* joint (u, m): minimise f(u, m) = -u A + u^2 m Bt / 2 + kappa / m over the box by its KKT
  candidates (interior stationary set, stationary points inside the faces m = m_max, m = m_min,
  u = u_min, u = u_max, then the corners); the first admissible candidate with the smallest f wins.
"""

from __future__ import annotations

import sympy as sp

__all__ = ["player_part", "joint_part", "u_rule", "u_value", "convex", "m_rule", "kkt_candidates"]


def player_part(u, A, B, s):
    """h = -s u A + u^2 B / 2, a player's part of the Hamiltonian at control u (fixed batch)."""
    return -s * u * A + u**2 * B / 2


def joint_part(u, m, A, Bt, kappa, s):
    """f = -s u A + u^2 m Bt / 2 + s kappa / m, a player's part under batch control (m = 1 / batch)."""
    return -s * u * A + u**2 * m * Bt / 2 + s * kappa / m


def convex(Bs):
    """Where the clipped ratio applies: Bs > 0."""
    return Bs > 0


def u_rule(A, Bs, lo, hi) -> sp.Piecewise:
    """u* = argmin_{u in [lo, hi]} -u A + u^2 Bs / 2 as a Piecewise (module docstring)."""
    clip = sp.Min(sp.Max(A / Bs, lo), hi)
    return sp.Piecewise((clip, convex(Bs)), (hi, A > (lo + hi) * Bs / 2), (lo, True))


def u_value(A, Bs, lo, hi) -> sp.Piecewise:
    """min_{u in [lo, hi]} -u A + u^2 Bs / 2 as a Piecewise, case by case of :func:`u_rule`."""

    def phi(u):
        return -u * A + u**2 * Bs / 2

    return sp.Piecewise(
        (phi(lo), (Bs > 0) & (A <= lo * Bs)),
        (-A**2 / (2 * Bs), (Bs > 0) & (A < hi * Bs)),
        (phi(hi), (Bs > 0) | (A > (lo + hi) * Bs / 2)),
        (phi(lo), True),
    )


def m_rule(c, kappa, lo, hi) -> sp.Piecewise:
    """m* = argmin_{m in [lo, hi]} m c / 2 + kappa / m (c = u^2 Bt): clip(sqrt(2 kappa / c)) if c > 0, else hi."""
    return sp.Piecewise((sp.Min(sp.Max(sp.sqrt(2 * kappa / c), lo), hi), c > 0), (hi, True))


def kkt_candidates(A, Bs, kappa, ul, uh, ml, mh):
    """KKT candidates ``(label, u, m, f, exists)`` of min f(u, m) = -u A + u^2 m Bs / 2 + kappa / m, in order.

    The interior stationary set exists only where A^2 = 2 kappa Bs with Bs, kappa, A > 0: the curve
    u m = A / Bs, on which f = 0 (its geometric-mean point is the candidate). Face m = m_k:
    u = A / (m_k Bs) when it lies in [ul, uh]; face u = u_k: m = sqrt(2 kappa / (u_k^2 Bs)) when it
    lies in [ml, mh]; then the four corners. Candidates whose condition is identically false are
    dropped.
    """

    def f(u, m):
        return -u * A + u**2 * m * Bs / 2 + kappa / m

    c = A / Bs
    m_lo = sp.Max(ml, c / uh)
    m_hi = mh if ul == 0 else sp.Min(mh, c / ul)
    m_int = sp.sqrt(m_lo * m_hi)
    cands = [("interior", c / m_int, m_int, sp.Integer(0),
              sp.And(sp.Eq(A**2, 2 * kappa * Bs), Bs > 0, kappa > 0, A > 0, m_lo <= m_hi))]
    for mk in (mh, ml):
        uk = A / (mk * Bs)
        cands.append((f"face m = {mk}", uk, mk, f(uk, mk), sp.And(Bs > 0, A >= ul * mk * Bs, A <= uh * mk * Bs)))
    for uk in (ul, uh):
        q = uk**2 * Bs
        mk = sp.sqrt(2 * kappa / q)
        ok = sp.And(q > 0, 2 * kappa >= q * ml**2, 2 * kappa <= q * mh**2)
        cands.append((f"face u = {uk}", uk, mk, f(uk, mk) if ok is not sp.false else sp.nan, ok))
    for uc in (ul, uh):
        for mc in (mh, ml):
            cands.append((f"corner (u, m) = ({uc}, {mc})", uc, mc, f(uc, mc), sp.true))
    return tuple(cand for cand in cands if cand[4] is not sp.false)
