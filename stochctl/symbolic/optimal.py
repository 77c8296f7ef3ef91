"""Pointwise optimal controls of the Hamiltonian (design section 2).

For one player, with A = grad_p g . grad_p V and B = eta m tr(Sigma_p D2_pp V):

* min player, phi(u) = -u A + u^2 B / 2 minimised over [u_min, u_max]:
  B > 0 (convex): u* = clip(A / B, u_min, u_max);
  B <= 0: the endpoint with the smaller phi; phi(u_max) < phi(u_min) iff
  A > (u_min + u_max) B / 2 (ties go to u_min).
* max player, psi(u) = u A + u^2 B / 2 maximised: B < 0: u* = clip(A / (-B), ...);
  B >= 0: the endpoint with the larger psi (ties go to u_min). Maximising psi is
  minimising phi with B replaced by -B.
* batch control, m = 1/B_batch in [m_min, m_max], compute cost kappa / m and
  B = m Bt with Bt = eta tr(Sigma_p D2_pp V): for fixed u the min player
  minimises h(m) = u^2 m Bt / 2 + kappa / m; u^2 Bt > 0 gives
  m* = clip(sqrt(2 kappa / (u^2 Bt)), m_min, m_max), otherwise m* = m_max (the
  smallest batch). The max player maximises u^2 m Bt / 2 - kappa / m, i.e. the
  same rule with Bt replaced by -Bt.
* joint (u, m): minimise f(u, m) = -u A + u^2 m Bt / 2 + kappa / m over the box
  by enumerating the KKT candidates: the interior stationary set (it exists
  only when A^2 = 2 kappa Bt with Bt > 0, where it is the curve u m = A / Bt
  on which f = 0), the stationary point inside each face (the one-dimensional
  optimum on a face is either that point or a corner), and the four corners;
  the first candidate with the smallest f wins (ties: smaller u, then smaller
  batch). The max player
  maximises u A + u^2 m Bt / 2 - kappa / m, i.e. minimises f with Bt -> -Bt.

The rules themselves are written once, in :mod:`stochctl.symbolic.rules`: the sympy
builders here (``piecewise_*``, used by :func:`stochctl.symbolic.derive`) substitute the
player's sense into them, and the vectorised numpy functions (``optimal_*``) are their
lambdified forms (:func:`stochctl.symbolic.rulegen.numpy_rules`), as the solvers' numba
kernels are their printed forms.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import InputError
from . import rules
from .rulegen import numpy_rules

SENSES = ("min", "max")

__all__ = [
    "convex_case",
    "optimal_u_min_player",
    "optimal_u_max_player",
    "optimal_u",
    "optimal_m",
    "optimal_u_m",
    "control_value",
    "joint_value",
    "piecewise_u",
    "piecewise_u_value",
    "piecewise_m",
    "kkt_candidates",
    "piecewise_u_m",
]


def _sign(sense: str) -> int:
    if sense not in SENSES:
        raise InputError(f"sense must be one of {SENSES}; got {sense!r}")
    return 1 if sense == "min" else -1


def _check_bounds(lo, hi, what: str):
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise InputError(f"{what} bounds must be finite; got [{lo}, {hi}]")
    if np.any(lo > hi):
        raise InputError(f"{what} bounds need {what}_min <= {what}_max; got [{lo}, {hi}]")
    return lo, hi


def _scalar_or_array(out: np.ndarray):
    return out[()] if out.ndim == 0 else out


# ------------------------------------------------------------------ numpy
def convex_case(B, sense: str = "min"):
    """Where the clipped ratio applies: B > 0 for a min player, B < 0 for a max player."""
    s = _sign(sense)
    return _scalar_or_array(np.asarray(s * np.asarray(B, dtype=float) > 0))


def _u_rule(A, B, u_min, u_max):
    """argmin of phi(u) = -u A + u^2 B / 2 over [u_min, u_max] (module docstring)."""
    return numpy_rules().u_rule(A, B, u_min, u_max)


def optimal_u_min_player(A, B, u_min, u_max):
    """Minimiser of phi(u) = -u A + u^2 B / 2 on [u_min, u_max].

    B > 0: u* = clip(A / B, u_min, u_max); B <= 0: the endpoint with the smaller
    phi (u_max iff A > (u_min + u_max) B / 2; ties go to u_min). Vectorised.
    """
    _check_bounds(u_min, u_max, "u")
    return _scalar_or_array(_u_rule(A, B, u_min, u_max))


def optimal_u_max_player(A, B, u_min, u_max):
    """Maximiser of psi(u) = u A + u^2 B / 2 on [u_min, u_max].

    B < 0: u* = clip(A / (-B), u_min, u_max); B >= 0: the endpoint with the
    larger psi (ties go to u_min). Vectorised.
    """
    _check_bounds(u_min, u_max, "u")
    return _scalar_or_array(_u_rule(A, -np.asarray(B, dtype=float), u_min, u_max))


def optimal_u(A, B, u_min, u_max, sense: str = "min"):
    """:func:`optimal_u_min_player` or :func:`optimal_u_max_player` by ``sense``."""
    s = _sign(sense)
    _check_bounds(u_min, u_max, "u")
    return _scalar_or_array(_u_rule(A, s * np.asarray(B, dtype=float), u_min, u_max))


def control_value(u, A, B, sense: str = "min"):
    """The player's part of the Hamiltonian: -u A + u^2 B / 2 (min) or u A + u^2 B / 2 (max)."""
    return _scalar_or_array(numpy_rules().player_part(u, A, B, _sign(sense)))


def _m_rule(u, Bt, kappa, m_min, m_max):
    """argmin of h(m) = u^2 m Bt / 2 + kappa / m over [m_min, m_max] (kappa >= 0)."""
    u, Bt = np.asarray(u, dtype=float), np.asarray(Bt, dtype=float)
    return numpy_rules().m_rule(u * u * Bt, kappa, m_min, m_max)


def _check_kappa(kappa):
    k = np.asarray(kappa, dtype=float)
    if not np.all(np.isfinite(k)) or np.any(k < 0):
        raise InputError(f"kappa must be finite and >= 0; got {kappa!r}")


def optimal_m(u, Bt, kappa, m_min, m_max, sense: str = "min"):
    """Optimal m = 1/B_batch for fixed u (module docstring).

    min: minimise u^2 m Bt / 2 + kappa / m; max: maximise u^2 m Bt / 2 - kappa / m.
    With c = s u^2 Bt (s = +1 min, -1 max): c > 0 gives
    m* = clip(sqrt(2 kappa / c), m_min, m_max), otherwise m* = m_max.
    """
    s = _sign(sense)
    _check_bounds(m_min, m_max, "m")
    _check_kappa(kappa)
    return _scalar_or_array(_m_rule(u, s * np.asarray(Bt, dtype=float), kappa, m_min, m_max))


def joint_value(u, m, A, Bt, kappa, sense: str = "min"):
    """The player's part of the Hamiltonian under batch control.

    min: -u A + u^2 m Bt / 2 + kappa / m;  max: u A + u^2 m Bt / 2 - kappa / m.
    """
    return _scalar_or_array(numpy_rules().joint_part(u, m, A, Bt, kappa, _sign(sense)))


def _joint_candidates_np(A, Bt, kappa, ul, uh, ml, mh):
    """KKT candidates (u_k, m_k, f_k, admissible_k) of min f(u, m) = -u A + u^2 m Bt/2 + kappa/m (arrays)."""
    return [tuple(fn(A, Bt, kappa, ul, uh, ml, mh) for fn in cand) for cand in numpy_rules().kkt]


def optimal_u_m(A, Bt, kappa, u_min, u_max, m_min, m_max, sense: str = "min"):
    """Joint optimum (u*, m*) by KKT candidates (module docstring).

    Minimises f(u, m) = -u A + u^2 m Bt / 2 + kappa / m (min player) or
    maximises u A + u^2 m Bt / 2 - kappa / m (max player) over
    [u_min, u_max] x [m_min, m_max], with 0 <= u_min and 0 < m_min. The
    candidates, in order: the interior stationary point, the stationary points
    inside the faces m = m_max, m = m_min, u = u_min, u = u_max, and the corners
    (u_min, m_max), (u_min, m_min), (u_max, m_max), (u_max, m_min); the first
    admissible one with the best value wins, so ties go to the smaller u and
    then to the smaller batch (larger m). Returns the arrays ``(u, m)``.
    """
    s = _sign(sense)
    _check_bounds(u_min, u_max, "u")
    _check_bounds(m_min, m_max, "m")
    _check_kappa(kappa)
    if np.any(np.asarray(m_min, dtype=float) <= 0):
        raise InputError(f"m_min must be > 0; got {m_min!r}")
    if np.any(np.asarray(u_min, dtype=float) < 0):
        raise InputError(f"u_min must be >= 0; got {u_min!r}")
    A, Bt, kappa, ul, uh, ml, mh = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (A, Bt, kappa, u_min, u_max, m_min, m_max)))
    Bt = s * Bt  # the max player minimises f with Bt -> -Bt
    cands = _joint_candidates_np(A, Bt, kappa, ul, uh, ml, mh)
    us = np.array([u for u, _, _, _ in cands])
    ms = np.array([m for _, m, _, _ in cands])
    ok = np.array([v for _, _, _, v in cands])
    values = np.where(ok, np.array([f for _, _, f, _ in cands]), np.inf)
    best = np.argmin(values, axis=0)[None]
    return (_scalar_or_array(np.take_along_axis(us, best, axis=0)[0]),
            _scalar_or_array(np.take_along_axis(ms, best, axis=0)[0]))


# ------------------------------------------------------------------ sympy
def _sym(v):
    return sp.sympify(v)


def piecewise_u(A, B, u_min, u_max, sense: str = "min") -> sp.Piecewise:
    """u* as a sympy Piecewise with the convexity case split (:func:`stochctl.symbolic.rules.u_rule`).

    min: ``Piecewise((clip(A/B), B > 0), (u_max, A > (u_min+u_max) B/2), (u_min, True))``;
    max: the same with B replaced by -B.
    """
    s = _sign(sense)
    A, B, lo, hi = map(_sym, (A, B, u_min, u_max))
    return rules.u_rule(A, s * B, lo, hi)


def piecewise_u_value(A, B, u_min, u_max, sense: str = "min") -> sp.Piecewise:
    """The optimal value min_u phi(u) (min) or max_u psi(u) (max) as a Piecewise.

    min player, B > 0: -A u_min + u_min^2 B/2 if A <= u_min B, -A^2/(2B) if
    u_min B < A < u_max B, -A u_max + u_max^2 B/2 if A >= u_max B; B <= 0: the
    smaller endpoint value. The max player's value is -(min value with B -> -B).
    """
    s = _sign(sense)
    A, B, lo, hi = map(_sym, (A, B, u_min, u_max))
    pw = rules.u_value(A, s * B, lo, hi)
    return pw if s == 1 else -pw


def piecewise_m(u, Bt, kappa, m_min, m_max, sense: str = "min") -> sp.Piecewise:
    """m* for fixed u as a Piecewise: clip(sqrt(2 kappa / (s u^2 Bt))) where s u^2 Bt > 0, else m_max."""
    s = _sign(sense)
    u, Bt, kappa, lo, hi = map(_sym, (u, Bt, kappa, m_min, m_max))
    return rules.m_rule(s * u**2 * Bt, kappa, lo, hi)


def kkt_candidates(A, Bt, kappa, u_min, u_max, m_min, m_max, sense: str = "min"):
    """The KKT candidates of the joint (u, m) problem, in the order of :func:`optimal_u_m`.

    Returns a tuple of ``(label, u, m, value, exists)`` with sympy entries free of
    Piecewise: ``value`` is f(u, m) = -u A + u^2 m Bt' / 2 + kappa / m with
    Bt' = Bt (min) or -Bt (max), so the optimum is always the admissible
    candidate with the smallest ``value`` (the max player's optimal value is
    -value), and ``exists`` is the condition under which the candidate is admissible
    (:func:`stochctl.symbolic.rules.kkt_candidates`).
    """
    s = _sign(sense)
    A, Bt, kappa, ul, uh, ml, mh = map(_sym, (A, Bt, kappa, u_min, u_max, m_min, m_max))
    return rules.kkt_candidates(A, s * Bt, kappa, ul, uh, ml, mh)


def piecewise_u_m(A, Bt, kappa, u_min, u_max, m_min, m_max, sense: str = "min"):
    """Joint optimum (u*, m*) and its value as Piecewise over the KKT candidates.

    Candidate k is chosen where it is admissible and no admissible candidate
    has a smaller value (first such candidate in order). Returns ``(u, m, value)``;
    the value is min f (min player) or max of u A + u^2 m Bt/2 - kappa/m (max player).
    """
    s = _sign(sense)
    cands = kkt_candidates(A, Bt, kappa, u_min, u_max, m_min, m_max, sense)
    conds = []
    for k, (_, _, _, vk, ok) in enumerate(cands):
        beats = [sp.Or(sp.Not(oj), vk < vj) if j < k else sp.Or(sp.Not(oj), vk <= vj)
                 for j, (_, _, _, vj, oj) in enumerate(cands) if j != k]
        conds.append(sp.And(ok, *beats))

    def pick(item: int) -> sp.Piecewise:
        # evaluate=False: sympy's Piecewise canonicalisation is very slow on these conditions
        pieces = [(c[item], cond) for c, cond in zip(cands[:-1], conds[:-1])]
        return sp.Piecewise(*pieces, (cands[-1][item], True), evaluate=False)

    v_pw = pick(3)
    return pick(1), pick(2), (v_pw if s == 1 else -v_pw)
