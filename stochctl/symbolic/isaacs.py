"""Isaacs' condition with a cross term: min-max against max-min, and the search for a counterexample."""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp

from ..errors import NumericalError
from .derivation import CROSS_TOLERANCE, IsaacsCheck, Maximize, Minimize, exact
from .optimal import _u_rule
from .problem import ControlProblem


def _grid_points(model, per_axis: int) -> np.ndarray:
    axes = [np.linspace(*model.domain[s.name], per_axis) for s in model.state_symbols]
    return np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(axes), -1)


def _cross_pairs(problem: ControlProblem, owner) -> frozenset:
    """Index pairs (i < j) of different players whose noise is correlated (shared minibatch)."""
    if problem.noise != "shared":
        return frozenset()
    cov = problem.covariance
    n = cov.rows
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if owner[i] != owner[j] and cov[i, j] != 0]
    if not pairs:
        return frozenset()
    model = problem.model
    out = set()
    pts = _grid_points(model, 9)
    diag = max(float(np.max(np.abs(model.lambdify(cov[i, i])(*pts)))) for i in range(n))
    for i, j in pairs:
        e = cov[i, j]
        if e.count_ops() < 300 and sp.simplify(e) == 0:
            continue
        vals = np.abs(model.lambdify(e)(*pts))
        if np.max(vals) > CROSS_TOLERANCE * max(1.0, diag):
            out.add((i, j))
    return frozenset(out)


# ---------------------------------------------------------------- Isaacs
def _min_max_quadratic(p, r, q, s, c, x_lo, x_hi, y_lo, y_hi):
    """min_x max_y Q(x, y), Q = p x + r x^2/2 + q y + s y^2/2 + c x y, on boxes (vectorised, exact).

    For fixed x the inner maximum is the explicit rule with A = q + c x, B = s.
    The outer function is piecewise quadratic in x, so its minimum is attained at
    an endpoint, at a switch of the inner rule, or at a stationary point of one of
    the inner branches (y = y_lo, y = y_hi, y = (q + c x)/(-s)); evaluating the
    exact outer function at all of these candidates gives the exact minimum.
    """
    p, r, q, s, c = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (p, r, q, s, c)))
    shape = p.shape

    def outer(x):
        y = _u_rule(q + c * x, -s, y_lo, y_hi)
        return p * x + 0.5 * r * x * x + q * y + 0.5 * s * y * y + c * x * y

    def solve(num, den):
        ok = den != 0
        return np.divide(num, den, out=np.full(shape, x_lo, dtype=float), where=ok)

    cands = [np.full(shape, float(x_lo)), np.full(shape, float(x_hi))]
    for yk in (y_lo, y_hi):
        cands.append(solve(-s * yk - q, c))  # inner ratio hits y_k (s < 0)
        cands.append(solve(-(p + c * yk), r))  # stationary with y = y_k
    cands.append(solve(-0.5 * (y_lo + y_hi) * s - q, c))  # endpoint switch (s >= 0)
    s_safe = np.where(s != 0, s, 1.0)
    cands.append(solve(-(p - c * q / s_safe), np.where(s != 0, r - c * c / s_safe, 0.0)))  # interior ratio
    best = np.full(shape, np.inf)
    for x in cands:
        x = np.clip(x, x_lo, x_hi)
        best = np.minimum(best, outer(x))
    return best


def lower_upper(A1, B1, A2, B2, C, u1, u2):
    """Lower max_{u2} min_{u1} H and upper min_{u1} max_{u2} H (exact, vectorised).

    H = -u1 A1 + u1^2 B1 / 2 + u2 A2 + u2^2 B2 / 2 + C u1 u2, player 1 minimising
    over ``u1 = (lo, hi)``, player 2 maximising over ``u2``.
    """
    upper = _min_max_quadratic(-np.asarray(A1, float), B1, A2, B2, C, *u1, *u2)
    lower = -_min_max_quadratic(-np.asarray(A2, float), -np.asarray(B2, float), np.asarray(A1, float),
                                -np.asarray(B1, float), -np.asarray(C, float), *u2, *u1)
    return lower, upper


def _coefficient_candidates(free):
    """Small integer coefficient vectors (A1, B1, A2, B2, C), simplest first."""
    levels = {"A": (0, 1, -1), "B": (0, 1, -1, 2, -2), "C": (1, -1, 2, -2)}
    kinds = ("A", "B", "A", "B", "C")
    axes = [levels[k] if ok else (0,) for k, ok in zip(kinds, free)]
    cands = list(itertools.product(*axes))
    cands.sort(key=lambda v: (sum(x != 0 for x in v), sum(abs(x) for x in v)))
    return np.array(cands, dtype=float)


def _isaacs(problem, players, ham_ab, reduced, C_sym, cross_pairs, values, DV, D2V, owner):
    """The Isaacs check: verdict, lower and upper Hamiltonians, counterexample."""
    if len(players) == 1:
        return IsaacsCheck(False, None, "one player (an HJB equation, not a game)")
    if len({p.sense for p in players}) == 1:
        return IsaacsCheck(False, None, f"all players {players[0].sense}imise (a single controller, not a game)")
    mins = [p for p in players if p.sense == "min"]
    maxs = [p for p in players if p.sense == "max"]

    def nested(expr, outer, inner):
        def ext(cls, e, pl):
            return cls(e, (pl.u, exact(pl.u_min), exact(pl.u_max)))

        e = expr
        for pl in inner:
            e = ext(Minimize if pl.sense == "min" else Maximize, e, pl)
        for pl in outer:
            e = ext(Minimize if pl.sense == "min" else Maximize, e, pl)
        return e

    lower = nested(ham_ab, maxs, mins)
    upper = nested(ham_ab, mins, maxs)
    if C_sym is None:
        return IsaacsCheck(True, True, "the Hamiltonian separates by player (no correlated noise across players), "
                                       "so min-max equals max-min", lower=reduced, upper=reduced)
    ce = _counterexample(problem, players, cross_pairs, values, DV, D2V, owner)
    if ce is None:
        return IsaacsCheck(True, True, "no point with lower < upper Hamiltonian was found", lower=lower, upper=upper)
    return IsaacsCheck(True, False, "the noise is correlated across players (shared minibatch), so the cross term "
                                    "couples the two controls, and max-min < min-max at the counterexample",
                       lower=lower, upper=upper, counterexample=ce)


def _counterexample(problem, players, cross_pairs, values, DV, D2V, owner):
    """A point where the lower Hamiltonian is below the upper one, or None.

    The state x* is the grid point of the domain with the largest cross-covariance.
    There A_p, B_p and C can be set independently through V_p, V_pp and V_pq
    (A_p is forced to 0 where grad_p g(x*) = 0), so small integer coefficient
    vectors are tried, simplest first, and the first with a gap is returned with
    derivative values of V that realise it. Without batch control the lower and
    upper Hamiltonians are exact (:func:`lower_upper`); with batch control they
    are computed on a grid of (u, m) per player.
    """
    model = problem.model
    n = len(DV)
    cov = problem.covariance
    grad = model.gradient
    pts = _grid_points(model, 9)
    cross_abs = sum(np.abs(model.lambdify(cov[i, j])(*pts)) for i, j in sorted(cross_pairs))
    # Round before the argmax so that ties (symmetric models) resolve to the first grid point.
    x_star = pts[:, int(np.argmax(np.round(cross_abs / np.max(cross_abs), 9)))]
    g = np.array([model.lambdify(grad[i])(*x_star) for i in range(n)], dtype=float)
    S = np.asarray(model.lambdify(cov)(*x_star), dtype=float).reshape(n, n)
    p1, p2 = players
    idx = [[i for i in range(n) if owner[i] == k] for k in range(2)]
    gi = [max(ix, key=lambda i: abs(g[i])) for ix in idx]
    si = [max(ix, key=lambda i: S[i, i]) for ix in idx]
    ci = max(sorted(cross_pairs), key=lambda ij: abs(S[ij]))
    scale_g = max(1.0, float(np.max(np.abs(g))))
    free = (abs(g[gi[0]]) > 1e-12 * scale_g, S[si[0], si[0]] > 0, abs(g[gi[1]]) > 1e-12 * scale_g,
            S[si[1], si[1]] > 0, True)
    cands = _coefficient_candidates(free)
    eta_v = values["eta"]
    batch = any(p.batch is not None for p in players)
    u1, u2 = (p1.u_min, p1.u_max), (p2.u_min, p2.u_max)
    tol = 1e-9
    if not batch:
        lower, upper = lower_upper(*cands.T, u1, u2)
        gaps = upper - lower
        if np.any(gaps < -tol * (1 + np.abs(upper))):
            raise NumericalError("lower Hamiltonian exceeds the upper one: minimax inequality violated")
        hits = np.nonzero(gaps > tol * (1 + np.abs(upper)))[0]
        if hits.size == 0:
            return None
        k = int(hits[0])
        coeffs, lo_v, up_v, how = cands[k], float(lower[k]), float(upper[k]), "exact"
        m_vals = (values[p1.m.name], values[p2.m.name])
    else:
        found = None
        for v in cands:
            lo_v, up_v = _grid_lower_upper(v, players, values)
            if up_v - lo_v > 1e-6 * (1 + abs(up_v)):
                found = (v, lo_v, up_v)
                break
        if found is None:
            return None
        coeffs, lo_v, up_v = found
        how = "grid of 41 u-values x 41 m-values per player"
        m_vals = (1.0, 1.0)  # Bt and Ct are per unit m
    A1, B1, A2, B2, C = (float(v) for v in coeffs)
    deriv = {s.name: 0.0 for s in DV}
    deriv.update({D2V[i, j].name: 0.0 for i in range(n) for j in range(i, n)})
    deriv[DV[gi[0]].name] = A1 / g[gi[0]] if A1 else 0.0
    deriv[DV[gi[1]].name] = A2 / g[gi[1]] if A2 else 0.0
    deriv[D2V[si[0], si[0]].name] = B1 / (eta_v * m_vals[0] * S[si[0], si[0]]) if B1 else 0.0
    deriv[D2V[si[1], si[1]].name] = B2 / (eta_v * m_vals[1] * S[si[1], si[1]]) if B2 else 0.0
    i, j = ci
    deriv[D2V[i, j].name] = C / (eta_v * np.sqrt(m_vals[0] * m_vals[1]) * S[i, j])
    c_name = f"C_{p1.name}_{p2.name}"
    labels = ([p1.A_symbol.name, p1.B_symbol.name, p2.A_symbol.name, p2.B_symbol.name, c_name] if not batch else
              [p1.A_symbol.name, p1.Bt_symbol.name, p2.A_symbol.name, p2.Bt_symbol.name, "Ct_" + c_name[2:]])
    return {
        "state": {s.name: float(v) for s, v in zip(model.state_symbols, x_star)},
        "coefficients": dict(zip(labels, (A1, B1, A2, B2, C))),
        "derivatives": {k: float(v) for k, v in deriv.items()},
        "lower": lo_v,
        "upper": up_v,
        "gap": up_v - lo_v,
        "method": how,
    }


def _grid_lower_upper(v, players, values, nu: int = 41, nm: int = 41):
    """Lower and upper Hamiltonians on a (u, m) grid per player (batch control with a cross term)."""
    A1, Bt1, A2, Bt2, Ct = v
    grids = []
    for p in players:
        u = np.linspace(p.u_min, p.u_max, nu)
        if p.batch is not None:
            m = np.linspace(1.0 / p.batch.b_max, 1.0 / p.batch.b_min, nm)
            kap = p.batch.kappa
        else:
            m = np.array([values[p.m.name]])
            kap = 0.0
        U, M = np.meshgrid(u, m, indexing="ij")
        grids.append((U.ravel(), M.ravel(), kap))
    (U1, M1, k1), (U2, M2, k2) = grids
    h1 = -U1 * A1 + 0.5 * U1 * U1 * M1 * Bt1 + k1 / M1
    h2 = U2 * A2 + 0.5 * U2 * U2 * M2 * Bt2 - k2 / M2
    H = h1[:, None] + h2[None, :] + Ct * np.sqrt(M1[:, None] * M2[None, :]) * U1[:, None] * U2[None, :]
    return float(H.min(axis=0).max()), float(H.max(axis=1).min())
