"""Training-dynamics models: a per-sample loss and its players.

A :class:`Model` is a per-sample loss l(x; xi) written in sympy, the players
who own the coordinates of x (each minimising or maximising), independent
standard normal noises xi that stand for the data/latent sampling, parameters
with defaults, and defaults for the base learning rate, batch size and
parameter domain. From it the package derives

* the mean objective g(x) = E_xi[l(x; xi)] (exact where polynomial in xi,
  Gauss-Hermite quadrature of order ``quadrature_order`` otherwise),
* its gradient grad g and Hessian D2 g,
* the per-sample gradient covariance
  Sigma(x) = E[grad l grad l^T] - grad g grad g^T.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import sympy as sp

from ..errors import InputError
from ..formula import check_exponents, combine_symbolic_powers
from .quadrature import expectation
from .solve_defaults import SolveDefaults

SENSES = ("min", "max")
CONSTRAINTS = ("real", "positive", "nonnegative")


@dataclass(frozen=True)
class Player:
    """A player: its name, whether it minimises or maximises, its coordinates.

    Attributes:
        name: player name, e.g. ``"theta"`` (generator) or ``"omega"``.
        sense: ``"min"`` or ``"max"``.
        symbols: the state symbols this player updates.
    """

    name: str
    sense: str
    symbols: tuple[sp.Symbol, ...]

    def __post_init__(self):
        if self.sense not in SENSES:
            raise InputError(f"player {self.name!r}: sense must be one of {SENSES}; got {self.sense!r}")
        if not self.symbols:
            raise InputError(f"player {self.name!r} has no state symbols")

    @property
    def sign(self) -> int:
        """+1 for a minimiser (descends), -1 for a maximiser (ascends)."""
        return 1 if self.sense == "min" else -1


@dataclass(frozen=True)
class Parameter:
    """A model parameter with its default value and constraint.

    Attributes:
        symbol: the sympy symbol used in the loss.
        default: default numerical value.
        constraint: one of ``"real"``, ``"positive"``, ``"nonnegative"``.
        description: one line shown in help and derivation documents.
    """

    symbol: sp.Symbol
    default: float
    constraint: str = "real"
    description: str = ""

    @property
    def name(self) -> str:
        return self.symbol.name

    def check(self, value) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise InputError(f"parameter {self.name}: expected a number; got {value!r}") from None
        if not math.isfinite(v):
            raise InputError(f"parameter {self.name}: expected a finite number; got {value!r}")
        if self.constraint == "positive" and not v > 0:
            raise InputError(f"parameter {self.name}: expected a positive number; got {v!r}")
        if self.constraint == "nonnegative" and not v >= 0:
            raise InputError(f"parameter {self.name}: expected a number >= 0; got {v!r}")
        return v


@dataclass(frozen=True)
class Model:
    """A per-sample loss with players, noises, parameters and defaults.

    Attributes:
        name: model name (``"dirac-gan"``).
        description: one-paragraph description with the formula.
        loss: per-sample loss l(x; xi, params) as a sympy expression.
        players: the players, in order (min player first by convention).
        noises: independent standard normal symbols in the loss.
        parameters: the parameters with defaults and constraints.
        values: current parameter values by name (defaults if not overridden).
        eta: default base learning rate (> 0).
        batch_size: default batch size per player (>= 1).
        domain: default box per state symbol name, ``{name: (lo, hi)}``.
        quadrature_order: Gauss-Hermite nodes per noise for non-polynomial terms.
        terminal: terminal cost G(x) of the control problem (default: g itself).
        horizon: default horizon T of the control problem.
        time_name: name of the time variable (``"t"``; ``"tau"`` for the local model).
        solve_defaults: how :func:`stochctl.solvers.solve` solves it by default (continuous
            or discrete time, grid, boundary, scheme).
    """

    name: str
    description: str
    loss: sp.Expr
    players: tuple[Player, ...]
    noises: tuple[sp.Symbol, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)
    eta: float = 0.1
    batch_size: int = 1
    domain: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    quadrature_order: int = 32
    terminal: sp.Expr | None = None
    horizon: float = 1.0
    time_name: str = "t"
    solve_defaults: SolveDefaults = field(default_factory=SolveDefaults)

    __hash__ = object.__hash__

    def __post_init__(self):
        names = [p.name for p in self.players]
        if len(set(names)) != len(names):
            raise InputError(f"model {self.name!r}: duplicate player names {names}")
        states = self.state_symbols
        if len(set(states)) != len(states):
            raise InputError(f"model {self.name!r}: a state symbol belongs to two players")
        declared = set(states) | set(self.noises) | {p.symbol for p in self.parameters}
        unknown = self.loss.free_symbols - declared
        if unknown:
            raise InputError(
                f"model {self.name!r}: loss uses undeclared symbols {sorted(map(str, unknown))}"
            )
        if self.terminal is not None:
            extra = sp.sympify(self.terminal).free_symbols - (declared - set(self.noises))
            if extra:
                raise InputError(
                    f"model {self.name!r}: terminal cost uses undeclared symbols {sorted(map(str, extra))}"
                )
        if not (isinstance(self.horizon, (int, float)) and self.horizon > 0 and math.isfinite(self.horizon)):
            raise InputError(f"model {self.name!r}: horizon must be a positive number; got {self.horizon!r}")
        if not (isinstance(self.eta, (int, float)) and self.eta > 0 and math.isfinite(self.eta)):
            raise InputError(f"model {self.name!r}: eta must be a positive number; got {self.eta!r}")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise InputError(
                f"model {self.name!r}: batch_size must be an integer >= 1; got {self.batch_size!r}"
            )
        full = {p.name: p.default for p in self.parameters}
        for k, v in dict(self.values).items():
            if k not in full:
                raise self._unknown_parameter(k)
            full[k] = self.parameter(k).check(v)
        for p in self.parameters:
            p.check(full[p.name])
        object.__setattr__(self, "values", full)
        values = {p.symbol: full[p.name] for p in self.parameters}
        check_exponents(self.loss, values, where=f"model {self.name!r} loss")
        if self.terminal is not None:
            check_exponents(self.terminal, values, where=f"model {self.name!r} terminal cost")
        dom = {}
        for s in states:
            lo, hi = dict(self.domain).get(s.name, (-1.0, 1.0))
            lo, hi = float(lo), float(hi)
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise InputError(f"model {self.name!r}: domain of {s.name} must be finite lo < hi; got ({lo}, {hi})")
            dom[s.name] = (lo, hi)
        object.__setattr__(self, "domain", dom)
        if not isinstance(self.solve_defaults, SolveDefaults):
            raise InputError(f"model {self.name!r}: solve_defaults must be a SolveDefaults; "
                             f"got {type(self.solve_defaults).__name__}")
        self.solve_defaults.check_states(tuple(s.name for s in states), self.name)

    # ----------------------------------------------------------------- access
    def _unknown_parameter(self, key):
        valid = ", ".join(p.name for p in self.parameters) or "(none)"
        return InputError(f"model {self.name!r} has no parameter {key!r}; valid parameters: {valid}")

    def parameter(self, name: str) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise self._unknown_parameter(name)

    def with_params(self, **values) -> "Model":
        """A copy with some parameter values replaced (validated)."""
        for k in values:
            self.parameter(k)
        return replace(self, values={**self.values, **values})

    def with_options(self, **changes) -> "Model":
        """A copy with dataclass fields replaced (eta, batch_size, domain, ...)."""
        if "domain" in changes:
            changes["domain"] = {**self.domain, **changes["domain"]}
        return replace(self, **changes)

    @property
    def state_symbols(self) -> tuple[sp.Symbol, ...]:
        return tuple(s for p in self.players for s in p.symbols)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.state_symbols)

    @property
    def parameter_symbols(self) -> tuple[sp.Symbol, ...]:
        return tuple(p.symbol for p in self.parameters)

    @property
    def parameter_values(self) -> tuple[float, ...]:
        return tuple(self.values[p.name] for p in self.parameters)

    @property
    def substitutions(self) -> dict:
        return {p.symbol: sp.Float(self.values[p.name], 17) for p in self.parameters}

    def player_slices(self) -> tuple[slice, ...]:
        """Index range of each player's coordinates in the state vector."""
        out, i = [], 0
        for p in self.players:
            out.append(slice(i, i + len(p.symbols)))
            i += len(p.symbols)
        return tuple(out)

    @property
    def is_game(self) -> bool:
        return len(self.players) > 1

    # ----------------------------------------------------------- derivations
    @functools.cached_property
    def objective(self) -> sp.Expr:
        """Mean objective g(x) = E_xi[l(x; xi)] (parameters kept symbolic)."""
        return expectation(self.loss, self.noises, self.quadrature_order)

    @functools.cached_property
    def sample_gradient(self) -> sp.Matrix:
        """Per-sample gradient grad_x l(x; xi)."""
        return sp.Matrix([combine_symbolic_powers(sp.diff(self.loss, s)) for s in self.state_symbols])

    @functools.cached_property
    def gradient(self) -> sp.Matrix:
        """grad g(x), differentiated under the expectation."""
        return sp.Matrix([expectation(e, self.noises, self.quadrature_order) for e in self.sample_gradient])

    @functools.cached_property
    def hessian(self) -> sp.Matrix:
        """D2 g(x)."""
        grad = self.gradient
        return sp.Matrix([[combine_symbolic_powers(sp.diff(grad[i], s)) for s in self.state_symbols]
                          for i in range(len(grad))])

    @functools.cached_property
    def gradient_covariance(self) -> sp.Matrix:
        """Sigma(x) = E[grad l grad l^T] - grad g grad g^T (per-sample)."""
        n = len(self.state_symbols)
        gl, gg = self.sample_gradient, self.gradient
        if not self.noises:
            return sp.zeros(n, n)
        out = sp.zeros(n, n)
        for i in range(n):
            for j in range(i, n):
                second = expectation(gl[i] * gl[j], self.noises, self.quadrature_order)
                out[i, j] = out[j, i] = sp.simplify(second - gg[i] * gg[j]) if self._polynomial() else second - gg[i] * gg[j]
        return out

    def _polynomial(self) -> bool:
        return bool(self.loss.is_polynomial(*self.noises)) if self.noises else True

    @property
    def terminal_cost(self) -> sp.Expr:
        """G(x): the declared terminal cost, or the mean objective g."""
        return sp.sympify(self.terminal) if self.terminal is not None else self.objective

    # ----------------------------------------------------------- numerics
    def lambdify(self, expr, *, params: bool = False):
        """Vectorised numpy function of the state (and optionally parameters), from the one cached evaluator.

        With ``params=False`` the current parameter values are bound; the
        function takes one array per state symbol and returns an array of their
        broadcast shape (a matrix expression gives shape ``(rows, cols, *shape)``).
        With ``params=True`` it is sympy's raw lambdify over the state symbols
        followed by the parameter symbols. See :mod:`stochctl._evaluator`.
        """
        from .._evaluator import numpy_function, state_function

        if params:
            return numpy_function(tuple(self.state_symbols) + tuple(self.parameter_symbols), expr)
        return state_function(self, expr)

    def summary(self) -> str:
        players = ", ".join(f"{p.name} ({p.sense}: {', '.join(map(str, p.symbols))})" for p in self.players)
        params = ", ".join(f"{k}={v:g}" for k, v in self.values.items()) or "none"
        return f"{self.name}: players {players}; parameters {params}; eta={self.eta:g}, batch={self.batch_size}"
