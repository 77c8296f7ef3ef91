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

import itertools
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..errors import InputError, NumericalError
from . import rules
from .optimal import (
    _u_rule,
    kkt_candidates,
    piecewise_m,
    piecewise_u,
    piecewise_u_m,
    piecewise_u_value,
)
from .problem import BatchControl, ControlProblem

__all__ = ["derive", "Derivation", "PlayerDerivation", "IsaacsCheck", "Minimize", "Maximize"]

#: Relative size of |Sigma_{theta omega}| below which the cross-covariance counts as zero.
CROSS_TOLERANCE = 1e-12


def exact(value) -> sp.Expr:
    """A float as an exact sympy number (0.1 -> 1/10), from its shortest decimal repr."""
    v = float(value)
    if v.is_integer():
        return sp.Integer(int(v))
    return sp.Rational(repr(v))


# ---------------------------------------------------------------- extremum expressions
class _Extremum(sp.Expr):
    """Unevaluated ``min``/``max`` of ``expr`` over ``var in [lo, hi]``."""

    _op = ""
    is_commutative = True

    def __new__(cls, expr, limits):
        expr = sp.sympify(expr)
        limits = sp.Tuple(*limits)
        if len(limits) != 3:
            raise InputError(f"{cls.__name__}: limits must be (var, lo, hi); got {limits}")
        return sp.Expr.__new__(cls, expr, limits)

    @property
    def expr(self):
        return self.args[0]

    @property
    def variable(self):
        return self.args[1][0]

    @property
    def bounds(self):
        return self.args[1][1], self.args[1][2]

    @property
    def free_symbols(self):
        lo, hi = self.bounds
        return (self.expr.free_symbols - {self.variable}) | lo.free_symbols | hi.free_symbols

    def _latex(self, printer):
        var = printer._print(self.variable)
        lo, hi = (printer._print(b) for b in self.bounds)
        return rf"\{self._op}_{{{var} \in [{lo}, {hi}]}} \left[ {printer._print(self.expr)} \right]"

    def _sympystr(self, printer):
        lo, hi = self.bounds
        return f"{self._op}_{{{self.variable} in [{lo}, {hi}]}}({printer._print(self.expr)})"


class Minimize(_Extremum):
    """``Minimize(expr, (u, lo, hi))``: min over u in [lo, hi] of expr (unevaluated)."""

    _op = "min"


class Maximize(_Extremum):
    """``Maximize(expr, (u, lo, hi))``: max over u in [lo, hi] of expr (unevaluated)."""

    _op = "max"


# ---------------------------------------------------------------- result objects
class Rendered:
    """``to_markdown`` / ``to_latex`` / ``to_dict`` / ``to_json`` delegated to the functions of a renderer module.

    ``_renderer`` names the module of this package; it is imported on first use because
    the renderers import the derivation modules.
    """

    _renderer = "render"

    def _render(self, what: str):
        import importlib

        return getattr(importlib.import_module(f"{__package__}.{self._renderer}"), what)(self)

    def to_latex(self) -> str:
        return self._render("to_latex")

    def to_markdown(self) -> str:
        return self._render("to_markdown")

    def to_dict(self) -> dict:
        return self._render("to_dict")

    def to_json(self) -> str:
        return self._render("to_json")


@dataclass(frozen=True)
class PlayerDerivation:
    """One player's part of the Hamiltonian and its pointwise optimal control.

    Attributes:
        name, sense: the player (``"min"`` / ``"max"``) and s = +1 / -1.
        u, m: the control symbols u_p and m_p = 1/B_p (m_p is a control only with ``batch``).
        u_min, u_max: bounds of u_p.
        batch: the :class:`BatchControl` of the player, or None (fixed m_p).
        A_symbol, B_symbol, Bt_symbol: short symbols A_p, B_p = m_p Bt_p, Bt_p.
        kappa: symbol kappa_p of the compute cost (None without batch control).
        A, B, Bt: A_p = grad_p g . grad_p V, B_p = eta m_p tr(Sigma_pp D2_pp V), Bt_p = B_p / m_p.
        A_compact, B_compact, Bt_compact: the same with g_i, Sigma_ij as placeholder symbols.
        hamiltonian: the player's part -s u A + u^2 B / 2 (+ s kappa / m) in the short symbols.
        convex_condition: where the clipped ratio applies (s B > 0).
        effective_A: A_p, or A_p - C u_omega / A_omega + C u_theta for a best response
            under a cross term.
        optimal_control: u_p* as a Piecewise in the short symbols (convexity case split).
        optimal_batch: joint m_p* under batch control (None otherwise).
        batch_given_u: m_p* for fixed u_p under batch control (None otherwise).
        kkt: the KKT candidates ``(label, u, m, value, exists)`` of the joint (u, m) problem.
        value: the optimal value of the player's part (Piecewise / Min / Max), None for a
            best response.
        best_response_to: name of the other player when u_p* is a best response to it.
    """

    name: str
    sense: str
    u: sp.Symbol
    m: sp.Symbol
    u_min: float
    u_max: float
    batch: BatchControl | None
    A_symbol: sp.Symbol
    B_symbol: sp.Symbol
    Bt_symbol: sp.Symbol
    kappa: sp.Symbol | None
    A: sp.Expr
    B: sp.Expr
    Bt: sp.Expr
    A_compact: sp.Expr
    B_compact: sp.Expr
    Bt_compact: sp.Expr
    hamiltonian: sp.Expr
    convex_condition: sp.Basic
    effective_A: sp.Expr
    optimal_control: sp.Expr
    optimal_batch: sp.Expr | None = None
    batch_given_u: sp.Expr | None = None
    kkt: tuple = ()
    value: sp.Expr | None = None
    best_response_to: str | None = None

    @property
    def sign(self) -> int:
        return 1 if self.sense == "min" else -1


@dataclass(frozen=True)
class IsaacsCheck:
    """Whether min-max and max-min of the Hamiltonian agree.

    Attributes:
        applicable: False for one player (plain HJB) or players of one sense.
        holds: the verdict (None when not applicable).
        reason: one sentence explaining the verdict.
        lower: max_{u_omega} min_{u_theta} H (sympy, possibly unevaluated extrema).
        upper: min_{u_theta} max_{u_omega} H.
        counterexample: where lower < upper: the state point, the values of
            (A_theta, B_theta, A_omega, B_omega, C) (Bt and Ct under batch control),
            derivative values of V realising them, and both Hamiltonian values.
    """

    applicable: bool
    holds: bool | None
    reason: str
    lower: sp.Expr | None = None
    upper: sp.Expr | None = None
    counterexample: dict | None = None


@dataclass(frozen=True)
class Derivation(Rendered):
    """The symbolic HJB / Isaacs equation of a :class:`ControlProblem` (module docstring).

    Formulas keep the model parameters, eta, m_p (fixed batch) and kappa_p as
    symbols; ``values`` holds their numbers and :meth:`numeric` substitutes them.

    Attributes:
        problem: the control problem.
        state_symbols: x.
        value_gradient: the symbols V_<x_i> standing for dV/dx_i.
        value_hessian: the symmetric matrix of symbols V_<x_i>_<x_j>.
        placeholders: g_<x_i> -> dg/dx_i and Sigma_<x_i>_<x_j> -> Sigma_ij (nonzero entries).
        eta: the symbol of the base learning rate.
        drift, diffusion: b(x, u) and a(x, u) of the SDE.
        generator: L^u V; ``hamiltonian``: L^u V + r before optimisation.
        drift_compact, diffusion_compact, generator_compact, hamiltonian_compact:
            the same in terms of the placeholders.
        hamiltonian_ab: L^u V + r in the short symbols A_p, B_p (Bt_p), C.
        running_cost: r = r_state(x) + sum_p s_p kappa_p / m_p.
        players: one :class:`PlayerDerivation` per player.
        cross_symbol, cross, cross_compact: C and its expression (None without cross term).
        separable: whether H is a sum of one function per player.
        isaacs: the :class:`IsaacsCheck`.
        reduced_hamiltonian: H after substituting the optimum (short symbols); None when
            the Hamiltonian does not separate (see ``isaacs.lower`` / ``isaacs.upper``).
        values: numbers of the symbolic constants by name.
    """

    problem: ControlProblem
    state_symbols: tuple
    value_gradient: tuple
    value_hessian: sp.Matrix
    placeholders: dict
    eta: sp.Symbol
    drift: sp.Matrix
    diffusion: sp.Matrix
    generator: sp.Expr
    hamiltonian: sp.Expr
    drift_compact: sp.Matrix
    diffusion_compact: sp.Matrix
    generator_compact: sp.Expr
    hamiltonian_compact: sp.Expr
    hamiltonian_ab: sp.Expr
    running_cost: sp.Expr
    players: tuple
    cross_symbol: sp.Symbol | None
    cross: sp.Expr | None
    cross_compact: sp.Expr | None
    separable: bool
    isaacs: IsaacsCheck
    reduced_hamiltonian: sp.Expr | None
    values: dict = field(default_factory=dict)

    __hash__ = object.__hash__

    # ------------------------------------------------------------ access
    @property
    def model(self):
        return self.problem.model

    @property
    def isaacs_holds(self) -> bool | None:
        """The Isaacs verdict (None for one player)."""
        return self.isaacs.holds

    @property
    def lower_hamiltonian(self):
        return self.isaacs.lower

    @property
    def upper_hamiltonian(self):
        return self.isaacs.upper

    def player(self, name: str) -> PlayerDerivation:
        for p in self.players:
            if p.name == name:
                return p
        raise InputError(f"no player {name!r}; players: {', '.join(p.name for p in self.players)}")

    @property
    def definitions(self) -> dict:
        """Short symbols -> full expressions: A_p, B_p, Bt_p and C."""
        out = {}
        for p in self.players:
            out[p.A_symbol] = p.A
            out[p.B_symbol] = p.B
            out[p.Bt_symbol] = p.Bt
        if self.cross_symbol is not None:
            out[self.cross_symbol] = self.cross
        return out

    def expand(self, expr):
        """Replace the short symbols A_p, B_p, Bt_p, C in ``expr`` by their expressions."""
        return sp.sympify(expr).xreplace(self.definitions)

    @property
    def substitutions(self) -> dict:
        """{symbol: number} for the model parameters, eta, fixed m_p and kappa_p."""
        names = dict(self.values)
        syms = set(self.model.parameter_symbols) | {self.eta}
        for p in self.players:
            syms.add(p.m)
            if p.kappa is not None:
                syms.add(p.kappa)
        return {s: sp.Float(names[s.name], 17) for s in syms if s.name in names}

    def numeric(self, expr):
        """``expr`` with the short symbols expanded and all constants replaced by their values."""
        return self.expand(expr).xreplace(self.substitutions)



# ---------------------------------------------------------------- derivation
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
