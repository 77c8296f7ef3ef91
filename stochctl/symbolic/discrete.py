"""Discrete-time control problem of a one-player model: Bellman equation and one-step rule (design 4b).

The iteration that training runs is, with u in [u_min, u_max], m = 1/B and
xi ~ N(0, I),

    x_{k+1} = x_k - eta u_k (grad g(x_k) + sqrt(m) Sigma(x_k)^{1/2} xi_k),

grad g and Sigma the model's derived mean gradient and per-sample gradient
covariance. With terminal cost G the value after n steps left solves the
Bellman recursion

    V_0 = G,   V_n(x) = min_{u in [u_min, u_max]} E V_{n-1}(x_{k+1} | x_k = x, u).

With one step left the problem is J(u) = E G(x_{k+1}). The next state is
normal with mean x - eta u grad g and covariance eta^2 u^2 m Sigma, so for a
polynomial G the expectation is exact:
E G(mu + Z) = sum_k (L^k G)(mu) / k!, L = 1/2 sum_ij C_ij d_i d_j (the heat
operator; the sum ends because L lowers the degree by two). For a quadratic G
this is G(mu) + tr(D2 G C) / 2, J is quadratic in u, J = c0 + c1 u + c2 u^2,
and the rule of :mod:`stochctl.symbolic.optimal` applies (with A = -c1, B = 2 c2):
c2 > 0 (J convex in u) gives u* = clip(-c1 / (2 c2), u_min, u_max), exact with
one step left; c2 <= 0 gives the endpoint with the smaller J (u_max iff
J(u_max) < J(u_min); ties go to u_min).

Small steps: with E dx = -eta u grad g and E dx dx^T = eta^2 u^2 (grad g grad g^T + m Sigma)
(third moments O(eta^3)),

    (E V(x') - V(x)) / eta = -u grad g . DV + eta u^2 (grad g^T D2V grad g + m tr(Sigma D2V)) / 2 + O(eta^2),

the HJB generator L^u V of section 2 plus eta u^2 grad g^T D2V grad g / 2, a term of the same
order as the diffusion the SDE keeps (:class:`SmallStep`).

For the dimensionless discrete local model (``local-discrete``:
Y' = (1 - h u) Y - u sqrt(h) xi, G = y^2) :func:`derive_discrete` adds
:class:`LocalDiscrete`: the continuous limit (a series in h of
(E V(Y') - V(y)) / h for a general V, whose h -> 0 term is the HJB Hamiltonian
of ``local-quadratic``), the one-step rule in a trainer's variables
(eta u = SNR / a, SNR = |grad f|^2 / (|grad f|^2 + s^2)), the second moment
recursion and the non-convex direction a <= 0 with its explosion thresholds
(:func:`stochctl.analysis.explosion.critical_steps`).

Reference: design section 4b; Li, Tai & E (2019) for the continuous (SDE) limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from ..errors import InputError, NumericalError
from ..models import canonical_solve_defaults
from .derive import Rendered, derive, exact
from .problem import ControlProblem

__all__ = ["DiscreteDerivation", "LocalDiscrete", "SmallStep", "derive_discrete", "gaussian_expectation", "positivity",
           "LOCAL_MODEL", "DISCRETE_MODELS", "LIMIT_ORDER"]

#: The canonical model whose discrete derivation carries the local-model sections.
LOCAL_MODEL = "local-discrete"
#: Canonical models whose derivation is the discrete one by default (``stochctl derive``, ``--all``):
#: those solved in discrete time (``model.solve_defaults.time``).
DISCRETE_MODELS = tuple(name for name, d in canonical_solve_defaults().items() if d.time == "discrete")
#: Its continuous counterpart (the SDE dY = -u Y dtau + u dW).
CONTINUOUS_LOCAL_MODEL = "local-quadratic"
#: Taylor order of V in the continuous-limit series: E (dY)^k = O(h^(k/2)), so k <= 4 is exact to O(h).
LIMIT_ORDER = 4
#: Steps h of the explosion table of the local document.
EXPLOSION_STEPS = (0.01, 0.1, 0.5, 1.0, 2.0, 3.0)


def gaussian_expectation(expr, symbols, mean, covariance) -> sp.Expr:
    """E expr(X) for X ~ N(mean, covariance), exact for ``expr`` polynomial in ``symbols``.

    Uses E f(mu + Z) = sum_k (L^k f)(mu) / k! with L f = 1/2 sum_ij C_ij d_i d_j f.
    ``mean`` and ``covariance`` may depend on ``symbols`` (the current state):
    the operator acts on fresh variables, substituted by the mean at the end.

    Raises:
        InputError: ``expr`` is not polynomial in ``symbols``.
    """
    expr = sp.sympify(expr)
    symbols = tuple(symbols)
    if not expr.is_polynomial(*symbols):
        raise InputError(f"gaussian_expectation needs a polynomial in {', '.join(map(str, symbols))}; got {expr}")
    n = len(symbols)
    zs = tuple(sp.Dummy(s.name, real=True) for s in symbols)
    C = sp.Matrix(covariance)
    total, term, k = sp.Integer(0), sp.expand(expr.xreplace(dict(zip(symbols, zs)))), 0
    while term != 0:
        total += term / sp.factorial(k)
        k += 1
        term = sp.expand(sum((C[i, j] * sp.diff(term, zs[i], zs[j]) for i in range(n) for j in range(n)),
                             sp.Integer(0)) / 2)
    return sp.expand(total.xreplace(dict(zip(zs, mean))))


# ---------------------------------------------------------------- sign analysis
def _assumed_symbols(model) -> dict:
    """Model parameters -> symbols carrying their constraints (positive / nonnegative)."""
    out = {}
    for p in model.parameters:
        if p.constraint in ("positive", "nonnegative"):
            out[p.symbol] = sp.Symbol(p.name, **{p.constraint: True})
    return out


def positivity(expr, assume: dict) -> tuple[sp.Basic, bool | None]:
    """Where ``expr > 0``: a condition in the original symbols and whether it always holds.

    ``expr`` is factored with the parameter constraints of ``assume``; factors
    known to be positive are dropped, a factor known only to be nonnegative
    becomes ``factor != 0``, the others stay in the inequality.

    Returns:
        ``(condition, always)``: ``always`` is True when ``expr > 0`` for every
        admissible value, False when never, None when it depends.
    """
    back = {v: k for k, v in assume.items()}
    e = sp.factor(sp.sympify(expr).xreplace(assume))
    if e.is_positive:
        return sp.true, True
    if e.is_nonpositive:
        return sp.false, False
    coeff, factors = sp.factor_list(e)
    sign = 1 if coeff > 0 else -1
    undecided, nonzero = [], []
    for f, k in factors:
        if f.is_positive:
            continue
        if f.is_nonnegative or (k % 2 == 0):
            nonzero.append(sp.Ne(f, 0))
            continue
        undecided.append(f**k)
    if not undecided:
        if sign < 0:
            return sp.false, False
        return sp.And(*nonzero).xreplace(back), None
    cond = sp.Mul(sign, *undecided) > 0
    return sp.And(cond, *nonzero).xreplace(back), None


# ---------------------------------------------------------------- result objects
@dataclass(frozen=True)
class LocalDiscrete:
    """The local-model sections of the ``local-discrete`` derivation (module docstring).

    Attributes:
        h: the step in curvature units (the model parameter).
        V: the general value function V(y) of the limit.
        series: (E V(Y') - V(y)) / h as a series in h: its h^0 and h^1 terms.
        limit: the h -> 0 term, -u y V' + u^2 V'' / 2.
        continuous_hamiltonian: L^u V of ``local-quadratic`` in terms of V(y) (from its derivation).
        limit_matches: whether ``limit`` equals ``continuous_hamiltonian`` (sympy-simplified difference 0).
        quadratic_ratio: (J(u) - y^2) / h, exact; ``quadratic_limit`` its h -> 0 limit.
        one_step_value: V_1(y) = J(u*) where u* is interior.
        second_moment_factor: (1 - h u)^2, so E Y'^2 = factor E Y^2 + h u^2 for constant u.
        stationary_second_moment: the fixed point of that recursion, for 0 < h u < 2.
        trainer_step: eta u* in a trainer's variables (|grad f|^2, s^2, a): SNR / a.
        trainer_symbols: the symbols (grad2, s2, a, eta) of ``trainer_step``.
        trainer_one_step: E f(x') for f = a x^2 / 2 along the gradient, x' = x - eta u (a x + s xi).
        trainer_curvature: its second derivative in u, and ``trainer_convex`` where it is > 0.
        trainer_slope: dJ/du at the endpoint analysis for a < 0 (negative: J decreasing, u_max wins).
        explosion_rows: per step h: (h, critical u = 2 / h, h u_max, explodes?).
        nonconvex_steps: the (deterministic, mean-square, almost-sure) thresholds along a direction of
            negative curvature: all 0 (``stochctl.analysis.explosion.critical_steps(-1, 0)``).
    """

    h: sp.Symbol
    V: sp.Function
    series: tuple
    limit: sp.Expr
    continuous_hamiltonian: sp.Expr
    limit_matches: bool
    quadratic_ratio: sp.Expr
    quadratic_limit: sp.Expr
    one_step_value: sp.Expr
    second_moment_factor: sp.Expr
    stationary_second_moment: sp.Expr
    trainer_step: sp.Expr
    trainer_symbols: tuple
    trainer_one_step: sp.Expr
    trainer_curvature: sp.Expr
    trainer_convex: sp.Basic
    trainer_slope: sp.Expr
    explosion_rows: tuple
    nonconvex_steps: tuple


@dataclass(frozen=True)
class SmallStep:
    """(E V(x') - V(x)) / eta to first order in eta, against the HJB generator (module docstring).

    In the compact symbols of the continuous :class:`~stochctl.symbolic.derive.Derivation`
    (V_x, V_x_y, g_x, Sigma_x_y, eta, m_<player>, u_<player>), with
    E dx = -eta u g and E dx dx^T = eta^2 u^2 (g g^T + m Sigma) (third moments are O(eta^3)).

    Attributes:
        discrete: -u g.DV + eta u^2 (g^T D2V g + m tr(Sigma D2V)) / 2, the ratio up to O(eta^2).
        continuous: the generator L^u V of the continuous derivation.
        correction: discrete - continuous = eta u^2 g^T D2V g / 2 (checked by sympy).
        derivation: the continuous derivation (its definitions of g_x and Sigma_x_y).
    """

    discrete: sp.Expr
    continuous: sp.Expr
    correction: sp.Expr
    derivation: object


@dataclass(frozen=True)
class DiscreteDerivation(Rendered):
    """The discrete-time control problem of a one-player model (module docstring).

    eta and m = 1/B enter as exact numbers (the discrete problem is defined for
    one step size); model parameters stay symbolic, ``values`` holds their numbers.

    Attributes:
        problem: the control problem (one player).
        u: the multiplier symbol; ``u_min``, ``u_max``: its bounds.
        eta, m: exact numbers.
        state_symbols, noise_symbols: x and the standard normals xi of the step.
        gradient, covariance: grad g(x) and Sigma(x).
        next_state: x_{k+1} (None unless Sigma is diagonal: it needs Sigma^{1/2}).
        next_mean, next_covariance: mean x - eta u grad g and covariance eta^2 u^2 m Sigma of x_{k+1}.
        terminal_cost: G.
        one_step: J(u) = E G(x_{k+1}), exact (None when G is not polynomial in x).
        coefficients: (c0, c1, c2) with J = c0 + c1 u + c2 u^2 (None unless J is quadratic in u).
        curvature: d2J/du2 (None without a closed-form J).
        convex_condition, convex_always: where d2J/du2 > 0, and whether that holds everywhere.
        stationary: the solutions of dJ/du = 0 (tuple; empty unless J is quadratic in u).
        optimal_control: u* as a Piecewise (clipped ratio / endpoint rule), None unless J is quadratic in u.
        one_step_value: J(u*) where u* is the interior stationary point (convex case).
        local: :class:`LocalDiscrete` for ``local-discrete`` at eta = 1, batch 1; otherwise None.
        small_step: :class:`SmallStep`, the expansion in eta (None for ``local-discrete``, whose
            small parameter is h: see ``local``).
        values: parameter numbers by name, plus eta and m.
    """

    problem: ControlProblem
    u: sp.Symbol
    u_min: float
    u_max: float
    eta: sp.Expr
    m: sp.Expr
    state_symbols: tuple
    noise_symbols: tuple
    gradient: sp.Matrix
    covariance: sp.Matrix
    next_state: sp.Matrix | None
    next_mean: sp.Matrix
    next_covariance: sp.Matrix
    terminal_cost: sp.Expr
    one_step: sp.Expr | None
    coefficients: tuple | None
    curvature: sp.Expr | None
    convex_condition: sp.Basic | None
    convex_always: bool | None
    stationary: tuple
    optimal_control: sp.Expr | None
    one_step_value: sp.Expr | None
    local: LocalDiscrete | None = None
    small_step: SmallStep | None = None
    values: dict = field(default_factory=dict)

    __hash__ = object.__hash__

    @property
    def model(self):
        return self.problem.model

    @property
    def substitutions(self) -> dict:
        """{parameter symbol: number}."""
        return self.model.substitutions

    def numeric(self, expr):
        """``expr`` with the model parameters replaced by their values."""
        return sp.sympify(expr).xreplace(self.substitutions)


# ---------------------------------------------------------------- derivation
def derive_discrete(problem: ControlProblem) -> DiscreteDerivation:
    """Derive the Bellman equation, one-step problem and one-step rule of a one-player ``problem``."""
    if not isinstance(problem, ControlProblem):
        raise InputError(f"derive_discrete() expects a ControlProblem; got {type(problem).__name__}")
    model = problem.model
    if len(model.players) != 1:
        names = ", ".join(p.name for p in model.players)
        raise InputError(f"the discrete derivation covers one-player models; {model.name!r} has "
                         f"{len(model.players)} players ({names})")
    (c,) = problem.controls
    if c.batch is not None:
        raise InputError("the discrete derivation takes a fixed batch size; drop --batch-control")
    xs = model.state_symbols
    n = len(xs)
    u = c.u
    eta, m = exact(problem.eta), sp.Rational(1, c.batch_size)
    lo, hi = exact(c.u_min), exact(c.u_max)
    grad = sp.Matrix(model.gradient)
    cov = sp.Matrix(problem.covariance)
    xi = (sp.Symbol("xi", real=True),) if n == 1 else tuple(sp.Symbol(f"xi_{x.name}", real=True) for x in xs)

    mean = sp.Matrix([sp.expand(xs[i] - eta * u * grad[i]) for i in range(n)])
    next_cov = (eta**2 * u**2 * m * cov).applyfunc(sp.expand)
    diagonal = all(cov[i, j] == 0 for i in range(n) for j in range(n) if i != j)
    next_state = None
    if diagonal:
        next_state = sp.Matrix([xs[i] - eta * u * (grad[i] + sp.sqrt(m * cov[i, i]) * xi[i]) for i in range(n)])

    G = sp.sympify(problem.terminal_cost)
    assume = _assumed_symbols(model)
    J = coeffs = curvature = cond = always = opt = value = None
    stationary: tuple = ()
    if G.is_polynomial(*xs):
        J = sp.expand(gaussian_expectation(G, xs, mean, next_cov))
        poly = sp.Poly(J, u)
        curvature = sp.factor(sp.diff(J, u, 2))
        if poly.degree() <= 2:
            stationary = tuple(sp.factor(s) for s in sp.solve(sp.diff(J, u), u))
            c2, c1, c0 = (poly.coeff_monomial(u**k) for k in (2, 1, 0))
            coeffs = (sp.factor(c0), sp.factor(c1), sp.factor(c2))
            cond, always = positivity(2 * c2, assume)
            if c2 != 0:
                ratio = sp.factor(sp.cancel(-c1 / (2 * c2)))
                value = sp.factor(sp.cancel(c0 - c1**2 / (4 * c2)))
                opt = sp.Min(sp.Max(ratio, lo), hi)
            if not always:
                upper_wins = sp.factor(J.xreplace({u: hi}) - J.xreplace({u: lo})) < 0
                opt = sp.Piecewise(*([(opt, cond)] if c2 != 0 else []), (hi, upper_wins), (lo, True))
        else:  # dJ/du is cubic or higher: its roots are left to the numerical solver
            cond, always = positivity(curvature, assume)

    values = {p.name: float(model.values[p.name]) for p in model.parameters}
    values.update(eta=float(problem.eta), m=1.0 / c.batch_size)
    local = small = None
    if model.name == LOCAL_MODEL:
        if eta == 1 and m == 1:
            local = _local(model, problem, u, J, stationary[0], value)
    else:
        small = _small_step(problem)
    return DiscreteDerivation(
        problem=problem, u=u, u_min=float(c.u_min), u_max=float(c.u_max), eta=eta, m=m,
        state_symbols=xs, noise_symbols=xi, gradient=grad, covariance=cov, next_state=next_state,
        next_mean=mean, next_covariance=next_cov, terminal_cost=G, one_step=J, coefficients=coeffs,
        curvature=curvature, convex_condition=cond, convex_always=always, stationary=stationary,
        optimal_control=opt, one_step_value=value, local=local, small_step=small, values=values,
    )


def _small_step(problem) -> SmallStep:
    """The first-order expansion in eta of the discrete generator, against the HJB generator."""
    d = derive(problem)
    names = [x.name for x in d.state_symbols]
    n = len(names)
    by_name = {s.name: s for s in d.placeholders}
    g = sp.Matrix([by_name[f"g_{nm}"] for nm in names])
    S = sp.zeros(n, n)
    for i in range(n):
        for j in range(i, n):
            S[i, j] = S[j, i] = by_name.get(f"Sigma_{names[i]}_{names[j]}", sp.Integer(0))
    (p,) = d.players
    u, m, eta = p.u, p.m, d.eta
    DV, D2V = sp.Matrix(d.value_gradient), d.value_hessian
    second = (g * g.T + m * S).multiply_elementwise(D2V)
    disc = sp.expand(-u * (g.T * DV)[0, 0] + eta * u**2 * sum(second, sp.Integer(0)) / 2)
    corr = sp.expand(disc - d.generator_compact)
    if sp.expand(corr - eta * u**2 * (g.T * D2V * g)[0, 0] / 2) != 0:  # pragma: no cover - algebra check
        raise NumericalError(f"small-step expansion of {problem.model.name!r}: unexpected correction {corr}")
    return SmallStep(discrete=disc, continuous=d.generator_compact, correction=corr, derivation=d)


# ---------------------------------------------------------------- local model
def _local(model, problem, u, J, interior, value) -> LocalDiscrete:
    """The continuous limit, trainer variables and explosion facts of ``local-discrete``.

    ``J`` is its one-step problem, ``interior`` the stationary point of J and ``value`` J there.
    """
    from ..models import get_model

    (y,) = model.state_symbols
    h = model.parameter("h").symbol
    hp = sp.Symbol("h", positive=True)
    xi = sp.Symbol("xi", real=True)
    V = sp.Function("V")

    # (E V(y + dY) - V(y)) / h as a series in h, dY = -h u y - u sqrt(h) xi, V Taylor-expanded to LIMIT_ORDER.
    dY = -hp * u * y - u * sp.sqrt(hp) * xi
    taylor = sum((sp.diff(V(y), y, k) * gaussian_expectation(dY**k, (xi,), (0,), [[1]]) / sp.factorial(k)
                  for k in range(1, LIMIT_ORDER + 1)), sp.Integer(0))
    ratio = sp.expand(taylor / hp)
    ser = sp.series(ratio, hp, 0, 2).removeO()
    terms = (sp.factor_terms(ser.coeff(hp, 0)), sp.factor_terms(ser.coeff(hp, 1)))
    limit = sp.expand(sp.limit(ratio, hp, 0))

    # The HJB generator of the continuous local model, with V_y -> V'(y), V_y_y -> V''(y).
    cont = derive(ControlProblem.from_model(get_model(CONTINUOUS_LOCAL_MODEL), u_min=problem.controls[0].u_min,
                                            u_max=problem.controls[0].u_max))
    (cy,) = cont.state_symbols
    gen = cont.numeric(cont.generator).xreplace({cont.value_gradient[0]: sp.diff(V(cy), cy),
                                                 cont.value_hessian[0, 0]: sp.diff(V(cy), cy, 2)})
    gen = sp.nsimplify(gen.xreplace({cy: y, cont.players[0].u: u}))
    matches = sp.simplify(gen - limit) == 0

    qratio = sp.expand((J - y**2) / h)
    qlimit = sp.expand(sp.limit(qratio.xreplace({h: hp}), hp, 0))

    M = sp.Symbol("M", nonnegative=True)
    # J = E[Y'^2 | Y = y] is c y^2 + d, so for a constant u: E Y'^2 = c E Y^2 + d.
    jy = sp.Poly(J, y)
    factor, forcing = sp.factor(jy.coeff_monomial(y**2)), jy.coeff_monomial(1)
    fixed = sp.factor(sp.solve(sp.Eq(M, factor * M + forcing), M)[0])

    # Trainer variables: y^2 = |grad f|^2 / (h s^2), h = eta a.
    g2, s2 = sp.Symbol("G2", positive=True), sp.Symbol("s2", positive=True)
    a, eta, s, x = sp.Symbol("a", positive=True), sp.Symbol("eta", positive=True), sp.Symbol("s", positive=True), \
        sp.Symbol("x", real=True)
    step = sp.simplify((eta * interior).xreplace({y: sp.sqrt(g2 / (h * s2))}).xreplace({h: eta * a}))

    ar = sp.Symbol("a", real=True)
    f_next = gaussian_expectation(ar * (x - eta * u * (ar * x + s * xi))**2 / 2, (xi,), (0,), [[1]])
    trainer_J = sp.factor(f_next)
    trainer_curv = sp.factor(sp.diff(f_next, u, 2))
    trainer_convex, _ = positivity(trainer_curv, {})
    slope = sp.factor(sp.diff(f_next, u))

    u_max = float(problem.controls[0].u_max)
    rows = []
    for hv in sorted(set(EXPLOSION_STEPS) | {float(model.values["h"])}):
        # y <- (1 - h u) y explodes iff h u > 2 (DESIGN section 2, curvature 1 in units of h): critical u = 2 / h
        rows.append((hv, 2.0 / hv, hv * u_max, hv * u_max >= 2.0))
    return LocalDiscrete(
        h=h, V=V, series=tuple(t.xreplace({hp: h}) for t in terms), limit=limit, continuous_hamiltonian=gen,
        limit_matches=bool(matches), quadratic_ratio=qratio, quadratic_limit=qlimit, one_step_value=value,
        second_moment_factor=factor, stationary_second_moment=fixed, trainer_step=step,
        trainer_symbols=(g2, s2, a, eta), trainer_one_step=trainer_J, trainer_curvature=trainer_curv,
        trainer_convex=trainer_convex, trainer_slope=slope, explosion_rows=tuple(rows),
        nonconvex_steps=(0.0, 0.0, 0.0),  # a < 0: every step explodes, deterministic, mean-square and almost-sure
    )
