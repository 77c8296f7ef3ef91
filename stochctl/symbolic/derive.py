"""Symbolic derivation of the HJB / Isaacs equation of a control problem (design section 2).

For the controlled SDE of :class:`~stochctl.symbolic.ControlProblem` the
generator acting on V(t, x) is

    L^u V = sum_i b_i V_i + 1/2 sum_ij a_ij V_ij,

and the value solves dV/dt + H(x, DV, D2V) = 0, V(T, .) = G, with

    H = min_{u_theta} max_{u_omega} [L^u V + r(x, u)].

Per player p (sign s_p = +1 for a minimiser, -1 for a maximiser)

    A_p = grad_p g . grad_p V,   B_p = eta m_p tr(Sigma_p D2_pp V) = m_p Bt_p,

so L^u V + r = r_state + sum_p [-s_p u_p A_p + u_p^2 B_p / 2 + s_p kappa_p / m_p]
+ u_theta u_omega C, where the cross term C = eta sqrt(m_theta m_omega)
tr(Sigma_{theta omega} D2_{omega theta} V) is present only when the players share
the minibatch (``noise="shared"``) and the per-sample gradients are correlated.
Without it the Hamiltonian separates by player, each player's optimum is the
explicit rule of :mod:`stochctl.symbolic.optimal`, and the lower and upper
Hamiltonians agree (Isaacs' condition). With it, both are reported and a
search over (A_theta, B_theta, A_omega, B_omega, C) looks for a point where
max_{u_omega} min_{u_theta} H < min_{u_theta} max_{u_omega} H.
"""

from __future__ import annotations

import sympy as sp

from ..errors import InputError
from . import rules
from .derivation import (CROSS_TOLERANCE, Derivation, IsaacsCheck, Maximize, Minimize,  # noqa: F401
                         PlayerDerivation, Rendered, exact)
from .isaacs import _cross_pairs, _isaacs, lower_upper  # noqa: F401
from .optimal import kkt_candidates, piecewise_m, piecewise_u, piecewise_u_m, piecewise_u_value
from .problem import ControlProblem

__all__ = ["derive", "Derivation", "PlayerDerivation", "IsaacsCheck", "Minimize", "Maximize"]


def _pair_name(names, i, j):
    return f"{names[i]}_{names[j]}"


def derive(problem: ControlProblem) -> Derivation:
    """Derive generator, Hamiltonian, optimal controls and the Isaacs verdict of ``problem``."""
    if not isinstance(problem, ControlProblem):
        raise InputError(f"derive() expects a ControlProblem; got {type(problem).__name__}")
    model = problem.model
    xs = model.state_symbols
    names = [s.name for s in xs]
    n = len(xs)
    owner = [problem.owner(i) for i in range(n)]
    grad, cov = model.gradient, problem.covariance

    DV = tuple(sp.Symbol(f"V_{nm}", real=True) for nm in names)
    D2V = sp.zeros(n, n)
    for i in range(n):
        for j in range(i, n):
            D2V[i, j] = D2V[j, i] = sp.Symbol(f"V_{_pair_name(names, i, j)}", real=True)

    placeholders: dict = {}
    g_ph = []
    for i, nm in enumerate(names):
        s = sp.Symbol(f"g_{nm}", real=True)
        placeholders[s] = grad[i]
        g_ph.append(s)
    S_ph = sp.zeros(n, n)
    for i in range(n):
        for j in range(i, n):
            if cov[i, j] != 0:
                s = sp.Symbol(f"Sigma_{_pair_name(names, i, j)}", real=True)
                placeholders[s] = cov[i, j]
                S_ph[i, j] = S_ph[j, i] = s
    full = dict(placeholders)

    eta = sp.Symbol("eta", positive=True)
    values = {p.name: float(model.values[p.name]) for p in model.parameters}
    values["eta"] = float(problem.eta)
    ms, kappas = [], []
    for c in problem.controls:
        m = sp.Symbol(f"m_{c.player.name}", positive=True)
        ms.append(m)
        if c.batch is None:
            values[m.name] = 1.0 / c.batch_size
            kappas.append(None)
        else:
            k = sp.Symbol(f"kappa_{c.player.name}", nonnegative=True)
            values[k.name] = float(c.batch.kappa)
            kappas.append(k)
    us = [c.u for c in problem.controls]
    signs = [p.sign for p in problem.players]

    cross_pairs = _cross_pairs(problem, owner)
    separable = not cross_pairs

    # SDE and generator, compact (placeholders) and full.
    b = sp.Matrix([-signs[owner[i]] * us[owner[i]] * g_ph[i] for i in range(n)])
    a = sp.zeros(n, n)
    for i in range(n):
        for j in range(n):
            p, q = owner[i], owner[j]
            if p == q:
                a[i, j] = us[p] ** 2 * eta * ms[p] * S_ph[i, j]
            elif (min(i, j), max(i, j)) in cross_pairs:
                a[i, j] = us[p] * us[q] * eta * sp.sqrt(ms[p] * ms[q]) * S_ph[i, j]
    gen_c = sum((b[i] * DV[i] for i in range(n)), sp.Integer(0)) + sp.Rational(1, 2) * sum(
        (a[i, j] * D2V[i, j] for i in range(n) for j in range(n)), sp.Integer(0))
    control_cost = sum((signs[k] * kappas[k] / ms[k] for k in range(len(us)) if kappas[k] is not None),
                       sp.Integer(0))
    running = sp.sympify(problem.running_cost) + control_cost
    ham_c = gen_c + running

    # Per-player coefficients.
    players_info = []
    for k, c in enumerate(problem.controls):
        idx = [i for i in range(n) if owner[i] == k]
        A_c = sum((g_ph[i] * DV[i] for i in idx), sp.Integer(0))
        Bt_c = eta * sum((S_ph[i, j] * D2V[i, j] for i in idx for j in idx), sp.Integer(0))
        players_info.append((idx, A_c, Bt_c))
    C_sym = C_c = C_full = None
    if cross_pairs:
        if len(problem.players) != 2 or signs[0] == signs[1]:
            raise InputError("noise='shared' with correlated gradients is supported for one min and one max "
                             f"player; got players {[(p.name, p.sense) for p in problem.players]}")
        Ct_c = eta * sum((S_ph[i, j] * D2V[i, j] for (i, j) in sorted(cross_pairs)), sp.Integer(0))
        C_c = sp.sqrt(ms[0] * ms[1]) * Ct_c
        C_full = C_c.xreplace(full)
        C_sym = sp.Symbol(f"C_{problem.players[0].name}_{problem.players[1].name}", real=True)

    players = []
    ham_ab = sp.sympify(problem.running_cost)
    for k, c in enumerate(problem.controls):
        idx, A_c, Bt_c = players_info[k]
        pname, sense, s = c.player.name, c.player.sense, signs[k]
        A_s = sp.Symbol(f"A_{pname}", real=True)
        B_s = sp.Symbol(f"B_{pname}", real=True)
        Bt_s = sp.Symbol(f"Bt_{pname}", real=True)
        u, m, kap = us[k], ms[k], kappas[k]
        lo, hi = exact(c.u_min), exact(c.u_max)
        B_eff = m * Bt_s if c.batch is not None else B_s
        part = rules.player_part(u, A_s, B_eff, s) if kap is None else rules.joint_part(u, m, A_s, Bt_s, kap, s)
        ham_ab += part
        other = None
        A_eff = A_s
        if C_sym is not None:
            other = problem.players[1 - k].name
            A_eff = A_s - C_sym * us[1] if k == 0 else A_s + C_sym * us[0]
        opts = {}
        if c.batch is None or other is not None:
            opts["optimal_control"] = piecewise_u(A_eff, B_eff, lo, hi, sense)
            if other is None:
                opts["value"] = piecewise_u_value(A_s, B_s, lo, hi, sense)
        else:
            m_lo, m_hi = 1 / exact(c.batch.b_max), 1 / exact(c.batch.b_min)
            u_pw, m_pw, val = piecewise_u_m(A_s, Bt_s, kap, lo, hi, m_lo, m_hi, sense)
            opts.update(optimal_control=u_pw, optimal_batch=m_pw, value=val,
                        batch_given_u=piecewise_m(u, Bt_s, kap, m_lo, m_hi, sense),
                        kkt=kkt_candidates(A_s, Bt_s, kap, lo, hi, m_lo, m_hi, sense))
        players.append(PlayerDerivation(
            name=pname, sense=sense, u=u, m=m, u_min=float(c.u_min), u_max=float(c.u_max), batch=c.batch,
            A_symbol=A_s, B_symbol=B_s, Bt_symbol=Bt_s, kappa=kap,
            A=A_c.xreplace(full), B=(m * Bt_c).xreplace(full), Bt=Bt_c.xreplace(full),
            A_compact=A_c, B_compact=m * Bt_c, Bt_compact=Bt_c,
            hamiltonian=part, convex_condition=rules.convex(s * B_eff), effective_A=A_eff,
            best_response_to=other, **opts,
        ))
    players = tuple(players)
    if C_sym is not None:
        ham_ab += C_sym * us[0] * us[1]

    reduced = None
    if separable:
        reduced = sp.sympify(problem.running_cost) + sum((p.value for p in players), sp.Integer(0))
    isaacs = _isaacs(problem, players, ham_ab, reduced, C_sym, cross_pairs, values, DV, D2V, owner)

    return Derivation(
        problem=problem,
        state_symbols=xs,
        value_gradient=DV,
        value_hessian=D2V,
        placeholders=placeholders,
        eta=eta,
        drift=b.xreplace(full),
        diffusion=a.xreplace(full),
        generator=gen_c.xreplace(full),
        hamiltonian=ham_c.xreplace(full),
        drift_compact=b,
        diffusion_compact=a,
        generator_compact=gen_c,
        hamiltonian_compact=ham_c,
        hamiltonian_ab=ham_ab,
        running_cost=running,
        players=players,
        cross_symbol=C_sym,
        cross=C_full,
        cross_compact=C_c,
        separable=separable,
        isaacs=isaacs,
        reduced_hamiltonian=reduced,
        values=values,
    )


# ---------------------------------------------------------------- cross-covariance
