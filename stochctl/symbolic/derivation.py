"""The records of a derivation (per player, Isaacs check, the whole) and the exact-number helper."""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..errors import InputError
from .problem import BatchControl, ControlProblem


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
#: Renderer of each derivation class: an object with ``to_markdown``, ``to_latex``, ``to_dict`` and
#: ``to_json`` functions of a derivation. The renderers live a stage up (:mod:`stochctl.documents`,
#: which reads this stage and the analyses) and enter themselves here when that package is imported;
#: the package face ``stochctl`` imports it, so every derivation can render itself.
RENDERERS: dict[type, object] = {}


def register_renderer(cls: type, renderer) -> None:
    """Make ``renderer`` (a module or object with to_markdown/to_latex/to_dict/to_json) render ``cls``."""
    RENDERERS[cls] = renderer


class Rendered:
    """``to_markdown`` / ``to_latex`` / ``to_dict`` / ``to_json`` delegated to the renderer registered for the class."""

    def _render(self, what: str):
        for cls in type(self).__mro__:
            if cls in RENDERERS:
                return getattr(RENDERERS[cls], what)(self)
        raise RuntimeError(f"no renderer registered for {type(self).__name__}; import stochctl.documents")

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
