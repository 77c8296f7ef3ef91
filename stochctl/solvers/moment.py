"""Open-loop control of the second moment (Li, Tai & E's quadratic example).

For the quadratic loss f = a x^2 / 2 with per-sample gradient noise
Sigma = s^2 x^2 + sigma^2 and a learning-rate multiplier u(t) in [0, 1] that
does not look at the state, m(t) = E[X_t^2] of the SDE
dX = -u a X dt + u sqrt(eta) Sigma^{1/2} dW obeys the closed equation

    dm/dt = f(m, u) = -2 a u m + eta u^2 (s^2 m + sigma^2),      m(0) = m0,

and the open-loop problem is to minimise m(T). Here eta already includes the
batch factor 1/B.

Closed form (s = 0). Derivation: let F(m) = min_{u in [0, 1]} f(m, u). Any
control gives m' = f(m, u) >= F(m), so by the comparison lemma for the scalar
ODE (F is Lipschitz on bounded sets) its trajectory stays above the solution
m* of m*' = F(m*); and u*(t) = argmin_u f(m*(t), u) attains it. (Pontryagin
gives the same rule: the costate p' = 2 a u p, p(T) = 1 stays positive, so
H = p f is minimised pointwise.) For a, sigma > 0, f is a convex parabola in
u with vertex a m / (eta sigma^2), hence

    u* = min(1, a m / (eta sigma^2)).

* While m > eta sigma^2 / a: u = 1 and m' = -2 a m + eta sigma^2, so
  m(t) = c + (m0 - c) e^{-2 a t} with c = eta sigma^2 / (2 a); m reaches the
  threshold 2 c at t* = ln(m0 / c - 1) / (2 a) = ln(2 a m0 / (eta sigma^2) - 1) / (2 a).
* Afterwards u = a m / (eta sigma^2) and m' = -a^2 m^2 / (eta sigma^2), so
  1/m(t) = 1/m_s + a^2 (t - t_s) / (eta sigma^2) from the switch (t_s, m_s),
  and u(t) = a m(t) / (eta sigma^2) = 1 / (eta sigma^2 / (a m_s) + a (t - t_s)):
  with (t_s, m_s) = (t*, eta sigma^2 / a) this is 1 / (1 + a (t - t*)); when
  m0 <= eta sigma^2 / a the ratio phase starts at once, (t_s, m_s) = (0, m0),
  and u(t) = 1 / (eta sigma^2 / (a m0) + a t).

Edge cases: a <= 0 makes f(m, u) >= 0 = f(m, 0), so u = 0; sigma = 0 < a
gives u = 1 throughout (t* = inf).

Numerical reference: :func:`optimize_schedule` minimises m(T) over
piecewise-constant u on N pieces with L-BFGS-B (bounds [0, 1]), propagating m
exactly over each piece (m' = -lambda m + beta with constant lambda, beta) and
differentiating that propagation exactly by the adjoint recursion.

Reference: Q. Li, C. Tai, W. E, "Stochastic modified equations and adaptive
stochastic gradient algorithms", ICML 2017.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, NumericalError


def _real(name, value, *, positive=False, nonnegative=False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(v) or (positive and v <= 0) or (nonnegative and v < 0):
        want = "a positive number" if positive else "a number >= 0" if nonnegative else "a finite number"
        raise InputError(f"{name} must be {want}; got {value!r}")
    return v


@dataclass(frozen=True)
class MomentControl:
    """The optimal open-loop multiplier and second moment in closed form (s = 0).

    Build it with :func:`moment_closed_form` or :meth:`from_problem`.

    Attributes:
        a, sigma, eta, m0, horizon: the data of the module docstring.
        t_star: end of the full-step phase (u = 1): 0 when it is empty,
            inf when it never ends (sigma = 0 < a); nan when a <= 0 (u = 0).
        t_switch, m_switch: start (t_s, m_s) of the ratio phase.
    """

    a: float
    sigma: float
    eta: float
    m0: float
    horizon: float
    t_star: float
    t_switch: float
    m_switch: float

    @classmethod
    def from_problem(cls, problem, m0: float) -> "MomentControl":
        """The closed form for a ControlProblem of the ``quadratic`` model with s = 0, u in [0, 1]."""
        p = moment_parameters(problem)
        if p["s"] != 0.0:
            raise InputError(f"the closed form needs s = 0 (additive noise only); got s={p['s']:g}")
        return moment_closed_form(p["a"], p["sigma"], p["eta"], m0, problem.horizon)

    @property
    def kind(self) -> str:
        """``"zero"`` (a <= 0), ``"full"`` (u = 1 throughout), ``"switch"`` or ``"ratio"``."""
        if math.isnan(self.t_star):
            return "zero"
        if math.isinf(self.t_switch) or self.t_switch >= self.horizon:
            return "full"
        return "switch" if self.t_star > 0 else "ratio"

    def control(self, t) -> np.ndarray | float:
        """u*(t) (module docstring)."""
        shape = np.shape(t)
        t = np.atleast_1d(np.asarray(t, dtype=float))
        if math.isnan(self.t_star):
            out = np.zeros_like(t)
        else:
            out = np.ones_like(t)
            late = t >= self.t_switch
            k = self.eta * self.sigma**2 / (self.a * self.m_switch) if late.any() else 1.0
            out[late] = 1.0 / (k + self.a * (t[late] - self.t_switch))
        return float(out[0]) if shape == () else out.reshape(shape)

    def second_moment(self, t) -> np.ndarray | float:
        """m(t) under u* (module docstring)."""
        shape = np.shape(t)
        t = np.atleast_1d(np.asarray(t, dtype=float))
        a, noise = self.a, self.eta * self.sigma**2
        if math.isnan(self.t_star):
            out = np.full_like(t, self.m0)
        else:
            c = noise / (2 * a)
            out = c + (self.m0 - c) * np.exp(-2 * a * t)
            late = t >= self.t_switch
            if late.any():
                out[late] = 1.0 / (1.0 / self.m_switch + a * a * (t[late] - self.t_switch) / noise)
        return float(out[0]) if shape == () else out.reshape(shape)

    @property
    def final_moment(self) -> float:
        """m(T), the optimal open-loop value of E[X_T^2]."""
        return float(self.second_moment(self.horizon))


def moment_closed_form(a: float, sigma: float, eta: float, m0: float, horizon: float) -> MomentControl:
    """Li-Tai-E's optimal open-loop control of E[X^2] (module docstring), u in [0, 1].

    Args:
        a: curvature of f = a x^2 / 2.
        sigma: additive gradient-noise scale (Sigma = sigma^2).
        eta: base learning rate times 1/B.
        m0: E[X_0^2] > 0.
        horizon: T > 0.
    """
    a = _real("a", a)
    sigma = _real("sigma", sigma, nonnegative=True)
    eta = _real("eta", eta, positive=True)
    m0 = _real("m0", m0, positive=True)
    horizon = _real("horizon", horizon, positive=True)
    if a <= 0:
        return MomentControl(a, sigma, eta, m0, horizon, math.nan, math.nan, m0)
    if sigma == 0:
        return MomentControl(a, sigma, eta, m0, horizon, math.inf, math.inf, 0.0)
    threshold = eta * sigma**2 / a
    if m0 > threshold:
        t_star = math.log(2 * a * m0 / (eta * sigma**2) - 1) / (2 * a)
        return MomentControl(a, sigma, eta, m0, horizon, t_star, t_star, threshold)
    return MomentControl(a, sigma, eta, m0, horizon, 0.0, 0.0, m0)


def moment_parameters(problem) -> dict[str, float]:
    """a, s, sigma and the effective eta (eta / B) of a ``quadratic``-model ControlProblem.

    Raises:
        InputError: for another model, a batch control, or bounds other than [0, 1].
    """
    model = problem.model
    if model.name != "quadratic":
        raise InputError(f"moment closure is derived for the 'quadratic' model; got {model.name!r}")
    (control,) = problem.controls
    if control.batch is not None:
        raise InputError("moment closure needs a fixed batch size; the problem has a batch control")
    if (control.u_min, control.u_max) != (0.0, 1.0):
        raise InputError(f"moment closure is derived for u in [0, 1]; got [{control.u_min:g}, {control.u_max:g}]")
    v = model.values
    return {"a": v["a"], "s": v["s"], "sigma": v["sigma"], "eta": problem.eta / control.batch_size}


# ------------------------------------------------------------ piecewise control
def _phi(lam, dt):
    """(1 - exp(-lam dt)) / lam and its derivative in lam (series near lam = 0)."""
    x = lam * dt
    small = np.abs(x) < 1e-3
    safe = np.where(small, 1.0, lam)
    e = np.exp(-x)
    phi = np.where(small, dt * (1 - x / 2 + x * x / 6 - x**3 / 24), -np.expm1(-x) / safe)
    dphi = np.where(small, dt * dt * (-0.5 + x / 3 - x * x / 8 + x**3 / 30), (dt * e - phi) / safe)
    return e, phi, dphi


def propagate_moment(edges, u, *, a: float, sigma: float, eta: float, m0: float, s: float = 0.0,
                     gradient: bool = False):
    """Exact m at every edge under u = u[j] on [edges[j], edges[j+1]).

    On each piece m' = -lambda m + beta with lambda = 2 a u - eta s^2 u^2 and
    beta = eta sigma^2 u^2, so m_{j+1} = m_j e^{-lambda dt} + beta (1 - e^{-lambda dt}) / lambda.

    Returns:
        m at the edges, shape (N + 1,); with ``gradient=True`` also
        d m(T) / d u, shape (N,) (adjoint recursion).
    """
    edges = np.asarray(edges, dtype=float)
    u = np.asarray(u, dtype=float)
    if edges.ndim != 1 or u.shape != (edges.size - 1,) or np.any(np.diff(edges) <= 0):
        raise InputError(f"need increasing edges (N + 1,) and u (N,); got {edges.shape} and {u.shape}")
    dt = np.diff(edges)
    lam = 2 * a * u - eta * s * s * u * u
    beta = eta * sigma * sigma * u * u
    e, phi, dphi = _phi(lam, dt)
    m = np.empty(edges.size)
    m[0] = m0
    for j in range(u.size):
        m[j + 1] = m[j] * e[j] + beta[j] * phi[j]
    if not gradient:
        return m
    dlam = 2 * a - 2 * eta * s * s * u
    dbeta = 2 * eta * sigma * sigma * u
    local = (-dt * m[:-1] * e + beta * dphi) * dlam + phi * dbeta
    adjoint = np.empty(u.size)
    acc = 1.0
    for j in range(u.size - 1, -1, -1):
        adjoint[j] = acc * local[j]
        acc *= e[j]
    return m, adjoint


@dataclass(frozen=True)
class PiecewiseSchedule:
    """A numerically optimised piecewise-constant open-loop multiplier.

    Attributes:
        edges: piece boundaries 0 = t_0 < ... < t_N = T.
        u: value on each piece, shape (N,).
        moments: m at the edges under ``u``.
        iterations: optimiser iterations.
        message: the optimiser's exit message.
    """

    edges: np.ndarray
    u: np.ndarray
    moments: np.ndarray
    iterations: int
    message: str

    @property
    def final_moment(self) -> float:
        return float(self.moments[-1])

    def control(self, t) -> np.ndarray | float:
        """u(t) (the last piece at t = T)."""
        t = np.asarray(t, dtype=float)
        j = np.clip(np.searchsorted(self.edges, t, side="right") - 1, 0, self.u.size - 1)
        out = self.u[j]
        return float(out) if out.ndim == 0 else out


def optimize_schedule(a: float, sigma: float, eta: float, m0: float, horizon: float, *, pieces: int = 64,
                      s: float = 0.0, tol: float = 1e-13) -> PiecewiseSchedule:
    """Minimise m(T) over piecewise-constant u in [0, 1] on ``pieces`` equal pieces.

    L-BFGS-B with the exact gradient of :func:`propagate_moment`, started at u = 1/2.

    Raises:
        NumericalError: if the optimiser reports failure.
    """
    from scipy.optimize import minimize

    a = _real("a", a)
    sigma = _real("sigma", sigma, nonnegative=True)
    eta = _real("eta", eta, positive=True)
    m0 = _real("m0", m0, positive=True)
    horizon = _real("horizon", horizon, positive=True)
    s = _real("s", s, nonnegative=True)
    if isinstance(pieces, bool) or not isinstance(pieces, int) or pieces < 1:
        raise InputError(f"pieces must be an integer >= 1; got {pieces!r}")
    edges = np.linspace(0.0, horizon, pieces + 1)
    scale = 1.0 / m0

    def objective(u):
        m, grad = propagate_moment(edges, u, a=a, sigma=sigma, eta=eta, m0=m0, s=s, gradient=True)
        return m[-1] * scale, grad * scale

    res = minimize(objective, np.full(pieces, 0.5), jac=True, method="L-BFGS-B", bounds=[(0.0, 1.0)] * pieces,
                   options={"ftol": tol, "gtol": tol, "maxiter": 10_000, "maxcor": 30})
    if not res.success:
        raise NumericalError(f"schedule optimisation failed: {res.message}")
    u = np.clip(res.x, 0.0, 1.0)
    moments = propagate_moment(edges, u, a=a, sigma=sigma, eta=eta, m0=m0, s=s)
    return PiecewiseSchedule(edges, u, moments, int(res.nit), str(res.message))


def integrate_moment(control, *, a: float, sigma: float, eta: float, m0: float, horizon: float, s: float = 0.0,
                     breakpoints=(), rtol: float = 1e-11, atol: float = 1e-14) -> float:
    """m(T) for a control function u(t) by integrating the moment ODE (scipy ``solve_ivp``, DOP853).

    Args:
        control: callable t -> u(t).
        breakpoints: times where u may jump or kink; the integration restarts there.
    """
    from scipy.integrate import solve_ivp

    def rhs(t, m):
        u = float(control(t))
        return [-2 * a * u * m[0] + eta * u * u * (s * s * m[0] + sigma * sigma)]

    cuts = sorted({0.0, float(horizon), *(float(b) for b in breakpoints if 0.0 < b < horizon)})
    m = float(m0)
    for t0, t1 in zip(cuts[:-1], cuts[1:]):
        sol = solve_ivp(rhs, (t0, t1), [m], method="DOP853", rtol=rtol, atol=atol)
        if not sol.success:
            raise NumericalError(f"moment ODE integration failed on [{t0:g}, {t1:g}]: {sol.message}")
        m = float(sol.y[0, -1])
    return m
