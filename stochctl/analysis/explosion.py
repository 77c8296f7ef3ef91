"""When does the discrete training iteration explode? Critical learning rates, maps and simulations.

**One player.** Along an eigen-direction v of the signed Hessian J = s D2 g
(s = +1 for a minimiser, -1 for a maximiser) with eigenvalue (curvature) a, the
per-sample curvature v^T D2 l(x; xi) v fluctuates with variance s2 (per sample;
s2 / B for a minibatch of B), and with step h = eta u the linearised SGD
iteration is the multiplicative-noise model

    x_{k+1} = (1 - h (a + xi_k)) x_k,   xi_k ~ N(0, s2).

Its three thresholds (``critical_steps``), each the smallest h that explodes:

* deterministic: |1 - h a| > 1, i.e. h > 2 / a (every h > 0 when a < 0);
* mean-square: E x_{k+1}^2 / E x_k^2 = (1 - h a)^2 + h^2 s2 > 1, i.e.
  h > 2 a / (a^2 + s2) (every h when a <= 0 and s2 > 0);
* almost-sure: the Lyapunov exponent Lambda(h) = E log|1 - h (a + xi)| > 0,
  computed by quadrature of the integrable log singularity (``lyapunov_exponent``)
  and root-found (brentq) above the mean-square threshold (Jensen:
  Lambda <= log E|.|^2 / 2, so the almost-sure threshold is the larger one).

Several coordinates are treated per eigen-direction of J: the curvature a_i is
the eigenvalue, the noise s2_i = Var(v_i^T D2 l v_i) / B, and each threshold is
the minimum over directions (exact for the deterministic threshold; the noise
coupling between directions is neglected for the other two). The multiplicative
noise is the variance of the per-sample curvature d2 l / dx2 over the model's
noises, taken symbolically (:func:`stochctl.models.expectation`); for the
quadratic model l = (a + s xi) x^2/2 - sigma zeta x it is s^2. The additive
part, the per-sample gradient covariance Sigma(x), shifts the stationary
spread but not the thresholds, and is reported alongside.

**Games.** With the signed gradient field F = (grad_theta g, -grad_omega g), its
Jacobian J at the point and the players' multipliers U = diag(u_p):

* simultaneous GDA: x <- (I - eta U J) x explodes iff some eigenvalue lambda of
  U J has |1 - eta lambda| > 1, i.e. eta > 2 Re(lambda) / |lambda|^2, so
  eta_crit = min over eigenvalues (0 as soon as one has Re(lambda) <= 0, e.g.
  purely imaginary ones; zero eigenvalues are neutral and skipped);
* alternating GDA (players in the model's order, each at the point left by the
  previous one): M_alt = T_P ... T_1 with T_p = I - eta E_p U J (E_p selects
  player p's rows); eta_crit is the first eta at which the spectral radius
  rho(M_alt) exceeds 1, found on a log-spaced scan of (0, eta_max] refined by
  bisection. For the quadratic game g = a th^2/2 + b th om - c om^2/2 with
  a, c >= 0 and u = 1 it equals 2 / lambda_max([[a, b], [b, c]]) (Jury's
  condition 1 + det + trace > 0 on the 2 x 2 iteration matrix);
* mean-square (both updates): the second moment P = E[x x^T] of the linearised
  stochastic iteration evolves by the linear map
  P -> M P M^T + eta^2 E[U Xi P Xi^T U] (simultaneous; for alternating the
  composition of the per-player maps), Xi the per-sample fluctuation of s D2 l,
  with each player's own minibatch (independent between players, covariance
  divided by B_p). Explodes iff its spectral radius exceeds 1. Additive noise
  only adds a constant forcing and does not move the threshold.

Numerical thresholds: the scan starts at 1e-3 of the natural step 2 / rho(U J)
(rho the spectral radius); a threshold reported 0 means the iteration explodes
at every scanned step down to there (every eta > 0 on the first-order
analysis), ``None`` that it does not explode up to ``eta_max``.

**Simulation.** :func:`simulate_explosion` runs the real discrete iteration
(see :mod:`stochctl.analysis._explosion_kernels`) for many seeded paths and a
sweep of eta, and reports the probability that |x_k - center| exceeds a bound
or stops being finite within a number of steps, with a binomial confidence
interval (Wilson or Clopper-Pearson). Paths measure the almost-sure threshold.
:func:`simulate_second_moment` averages |x_k - center|^2 over many paths and
fits its growth rate, which measures the mean-square one: between the two
thresholds almost every path converges while the mean square diverges.

References: Li, Tai & E (2017/2019) for the SDE approximation and the
quadratic test case; Mescheder, Geiger & Nowozin (2018) for the Dirac GAN and
simultaneous versus alternating updates.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from scipy import integrate, optimize, stats

from ..errors import InputError, NumericalError
from ..models import Model, expectation

__all__ = [
    "ExplosionThresholds", "ExplosionMap", "ExplosionSimulation", "SecondMomentGrowth", "LocalLinearization",
    "explosion_thresholds", "explosion_map", "simulate_explosion", "simulate_second_moment", "local_linearization",
    "critical_steps", "lyapunov_exponent", "expected_log_abs_normal", "simultaneous_critical_eta",
    "iteration_matrix", "second_moment_matrix", "spectral_radius", "resolve_point",
    "UPDATES", "NOISES", "INTERVALS", "ONE_PLAYER_CRITERIA", "GAME_CRITERIA",
]

UPDATES = ("simultaneous", "alternating")
"""Update orders of the players."""
NOISES = ("gaussian", "sample", "none")
"""Minibatch noise models of the simulations (:mod:`stochctl.analysis._explosion_kernels`)."""
INTERVALS = ("wilson", "clopper-pearson")
"""Binomial confidence intervals of the explosion probability."""
ONE_PLAYER_CRITERIA = ("deterministic", "mean_square", "almost_sure")
GAME_CRITERIA = ("simultaneous", "alternating", "mean_square_simultaneous", "mean_square_alternating")

#: E log|xi| for xi ~ N(0, 1): -(Euler's gamma + log 2) / 2.
LOG_ABS_NORMAL = -(np.euler_gamma + math.log(2.0)) / 2.0
#: An iteration explodes where its spectral radius exceeds 1 + RHO_TOL.
RHO_TOL = 1e-9
#: Log-spaced points of the threshold scans.
SCAN_POINTS = 600
#: The scans start at SCAN_START * 2 / rho(U J).
SCAN_START = 1e-3
#: Eigenvalues (curvatures) below this fraction of the largest are zero.
_ZERO_TOL = 1e-12


# ------------------------------------------------------------------ scalar model
def expected_log_abs_normal(m: float) -> float:
    """E log|xi - m| for xi ~ N(0, 1), by adaptive quadrature.

    The integrand has an integrable log singularity at xi = m; it is integrated
    on each side of m with the algebraic-logarithmic weights of QUADPACK
    (``weight='alg-loga'``/``'alg-logb'``), which integrate log|xi - m| times
    the density exactly at the endpoint. Far from the origin (|m| >= 50) the
    asymptotic series log|m| - sum_k (2k-1)!! / (2k m^(2k)) is used.
    """
    m = float(m)
    if not math.isfinite(m):
        raise InputError(f"expected_log_abs_normal needs a finite m; got {m!r}")
    density = lambda z: math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)  # noqa: E731
    opts = dict(epsabs=1e-14, epsrel=1e-12, limit=200)
    am = abs(m)
    if am >= 50.0:
        series, moment = 0.0, 1.0
        for k in range(1, 7):
            moment *= 2 * k - 1
            series += moment / (2 * k * am ** (2 * k))
        return math.log(am) - series
    reach = 14.0
    if am < reach - 0.5:
        right = integrate.quad(density, m, reach, weight="alg-loga", wvar=(0.0, 0.0), **opts)[0]
        left = integrate.quad(density, -reach, m, weight="alg-logb", wvar=(0.0, 0.0), **opts)[0]
        return right + left
    r = am - 0.5
    return integrate.quad(lambda z: density(z) * math.log(abs(z - m)), -r, r, **opts)[0]


def lyapunov_exponent(h: float, a: float, s2: float) -> float:
    """Lambda(h) = E log|1 - h (a + xi)|, xi ~ N(0, s2): the growth rate of log|x_k|.

    With c = 1 - h a and d = h sqrt(s2), Lambda = log d + E log|xi' - c/d|
    (xi' standard normal; :func:`expected_log_abs_normal`), and log|c| when
    s2 = 0 (-inf at h a = 1).
    """
    h, a, s2 = float(h), float(a), float(s2)
    if not (math.isfinite(h) and h >= 0 and math.isfinite(a) and math.isfinite(s2) and s2 >= 0):
        raise InputError(f"lyapunov_exponent needs h >= 0, finite a and s2 >= 0; got h={h!r}, a={a!r}, s2={s2!r}")
    if h == 0.0:
        return 0.0
    c = 1.0 - h * a
    d = h * math.sqrt(s2)
    if d == 0.0:
        return math.log(abs(c)) if c != 0.0 else -math.inf
    m = c / d
    if abs(m) >= 50.0:  # log d + log|m| - series, without the cancellation of the two logs
        return math.log(abs(c)) + (expected_log_abs_normal(m) - math.log(abs(m)))
    return math.log(d) + expected_log_abs_normal(m)


def critical_steps(a: float, s2: float = 0.0) -> tuple[float | None, float | None, float | None]:
    """Deterministic, mean-square and almost-sure critical steps h of x <- (1 - h (a + xi)) x.

    Args:
        a: curvature (eigenvalue of the signed Hessian).
        s2: variance of the multiplicative noise xi (>= 0).

    Returns:
        ``(deterministic, mean_square, almost_sure)``: the smallest step h that
        explodes (module docstring); 0 when every h > 0 explodes, None when none does.
    """
    a, s2 = float(a), float(s2)
    if not (math.isfinite(a) and math.isfinite(s2) and s2 >= 0):
        raise InputError(f"critical_steps needs a finite curvature a and a variance s2 >= 0; got a={a!r}, s2={s2!r}")
    if a < 0:
        return 0.0, 0.0, 0.0
    det = 2.0 / a if a > 0 else None
    if s2 == 0.0:
        return det, det, det
    ms = 2.0 * a / (a * a + s2) if a > 0 else 0.0
    s = math.sqrt(s2)
    # Lambda(h) >= log(h s) + E log|xi| (E log|xi + m| is smallest at m = 0), so hi is unstable.
    hi = 1.0001 * math.exp(-LOG_ABS_NORMAL) / s
    lo = ms if ms > 0 else 1e-6 * hi
    grid = np.geomspace(lo, hi, 80)
    values = np.array([lyapunov_exponent(h, a, s2) for h in grid])
    positive = np.flatnonzero(values > 0)
    if positive.size == 0:  # pragma: no cover - excluded by the bound on hi
        raise NumericalError(f"no almost-sure threshold found below h={hi:.6g} for a={a}, s2={s2}")
    i = int(positive[0])
    if i == 0:
        return det, ms, float(grid[0])
    root = optimize.brentq(lambda h: lyapunov_exponent(h, a, s2), grid[i - 1], grid[i], xtol=1e-15,
                           rtol=4 * np.finfo(float).eps, maxiter=200)
    return det, ms, float(root)


def _combine(values) -> float | None:
    """The smallest threshold of several: 0 dominates, None (never) is ignored."""
    found = [v for v in values if v is not None]
    return min(found) if found else None


# ----------------------------------------------------------- iteration matrices
def _player_rows(owner, n_players) -> np.ndarray:
    """(n_players, n) boolean: which coordinates each player owns."""
    owner = np.asarray(owner)
    return np.array([owner == p for p in range(n_players)])


def iteration_matrix(uj: np.ndarray, eta, owner, update: str = "simultaneous") -> np.ndarray:
    """Iteration matrix of linearised GDA: I - eta U J, or T_P ... T_1 for alternating updates.

    Args:
        uj: U J, shape (..., n, n).
        eta: base learning rate(s), broadcastable against ``uj.shape[:-2]``.
        owner: player index of each coordinate; players update in index order.
        update: ``"simultaneous"`` or ``"alternating"``.
    """
    _check_update(update)
    uj = np.asarray(uj, dtype=float)
    n = uj.shape[-1]
    step = np.asarray(eta, dtype=float)[..., None, None] * uj
    eye = np.eye(n)
    if update == "simultaneous":
        return eye - step
    rows = _player_rows(owner, int(np.max(owner)) + 1)
    out = np.broadcast_to(eye, step.shape).copy()
    for mask in rows:
        out = (eye - step * mask[:, None]) @ out
    return out


def _kron(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched Kronecker product with row-major vec: vec(A P B^T) = (A kron B) vec(P)."""
    n = a.shape[-1]
    return np.einsum("...ik,...jl->...ijkl", a, b).reshape(*a.shape[:-2], n * n, n * n)


def _noise_operator(cov4: np.ndarray, weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """K[(i,j),(k,l)] = w_i w_j Cov(D2l_ik, D2l_jl) for i, j both in ``mask`` (one minibatch)."""
    n = cov4.shape[-1]
    same = np.outer(mask, mask).astype(float)
    k4 = np.einsum("...i,...j,...ikjl,ij->...ijkl", weights, weights, cov4, same)
    return k4.reshape(*k4.shape[:-4], n * n, n * n)


def second_moment_matrix(uj: np.ndarray, cov4: np.ndarray, weights: np.ndarray, eta, owner,
                         update: str = "simultaneous") -> np.ndarray:
    """Linear map of E[x x^T] (row-major vec) for linearised SGD / SGA with multiplicative noise.

    Simultaneous: A = M kron M + eta^2 sum_p K_p with M = I - eta U J; alternating:
    A = A_P ... A_1 with A_p = T_p kron T_p + eta^2 K_p. K_p is player p's
    minibatch term E[(E_p U Xi) kron (E_p U Xi)] (module docstring).

    Args:
        uj: U J, shape (..., n, n).
        cov4: per-sample Cov(D2l_ij, D2l_kl), shape (..., n, n, n, n).
        weights: w_i = u_i s_i / sqrt(B_p(i)), shape (..., n).
        eta, owner, update: as in :func:`iteration_matrix`.
    """
    _check_update(update)
    uj = np.asarray(uj, dtype=float)
    eta = np.asarray(eta, dtype=float)
    n = uj.shape[-1]
    step = eta[..., None, None] * uj
    eta2 = (eta * eta)[..., None, None]
    eye = np.eye(n)
    rows = _player_rows(owner, int(np.max(owner)) + 1)
    if update == "simultaneous":
        m = eye - step
        out = _kron(m, m)
        for mask in rows:
            out = out + eta2 * _noise_operator(cov4, weights, mask)
        return out
    out = np.broadcast_to(np.eye(n * n), (*step.shape[:-2], n * n, n * n)).copy()
    for mask in rows:
        t = eye - step * mask[:, None]
        out = (_kron(t, t) + eta2 * _noise_operator(cov4, weights, mask)) @ out
    return out


def spectral_radius(matrices: np.ndarray) -> np.ndarray:
    """max |eigenvalue| of each matrix of a stack (inf for a matrix with non-finite entries)."""
    matrices = np.asarray(matrices, dtype=float)
    finite = np.all(np.isfinite(matrices), axis=(-2, -1))
    safe = np.where(finite[..., None, None], matrices, 0.0)
    rho = np.abs(np.linalg.eigvals(safe)).max(axis=-1)
    return np.where(finite, rho, np.inf)


def simultaneous_critical_eta(eigenvalues) -> float | None:
    """min over eigenvalues lambda of U J of 2 Re(lambda) / |lambda|^2 (module docstring).

    Returns 0 when some lambda has Re(lambda) <= 0 (relative tolerance 1e-12;
    zero eigenvalues are neutral and skipped) and None when every eigenvalue is zero.
    """
    lam = np.asarray(eigenvalues, dtype=complex).ravel()
    scale = float(np.abs(lam).max()) if lam.size else 0.0
    if scale == 0.0:
        return None
    crit = []
    for value in lam:
        r = abs(value)
        if r <= _ZERO_TOL * scale:
            continue
        if value.real <= _ZERO_TOL * r:
            return 0.0
        crit.append(2.0 * value.real / r**2)
    return min(crit) if crit else None


def _first_explosion(radius, scale: float, eta_max: float) -> float | None:
    """Smallest eta in (0, eta_max] with radius(eta) > 1 + RHO_TOL (module docstring).

    ``radius`` maps an array of etas to spectral radii. Scans SCAN_POINTS
    log-spaced etas from SCAN_START * 2 / scale, then bisects to a relative
    width of 1e-12.
    """
    if scale <= 0.0:
        return None
    lo = min(SCAN_START * 2.0 / scale, eta_max * 1e-6)
    grid = np.geomspace(lo, eta_max, SCAN_POINTS)
    bad = radius(grid) > 1.0 + RHO_TOL
    if not bad.any():
        return None
    i = int(np.argmax(bad))
    if i == 0:
        return 0.0
    a, b = float(grid[i - 1]), float(grid[i])
    while b - a > 1e-12 * b:
        mid = 0.5 * (a + b)
        if radius(np.array([mid]))[0] > 1.0 + RHO_TOL:
            b = mid
        else:
            a = mid
    return 0.5 * (a + b)


def _check_update(update):
    if update not in UPDATES:
        raise InputError(f"update {update!r} unknown; valid: {', '.join(UPDATES)}")


# ------------------------------------------------------------- model ingredients
@dataclass(frozen=True)
class _Ingredients:
    n: int
    hessian: object  # lambdified list of n*n entries
    moments: object  # lambdified list of E[D2l_P D2l_Q] - E[D2l_P] E[D2l_Q] over unique pairs P <= Q
    sigma: object  # lambdified list of n*n entries of Sigma(x)
    pairs: tuple
    products: tuple


_INGREDIENTS: dict[str, _Ingredients] = {}


def _structure_key(model: Model) -> str:
    parts = [sp.srepr(model.loss), sp.srepr(model.noises), sp.srepr(model.state_symbols),
             sp.srepr(model.parameter_symbols), str(model.quadrature_order)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _ingredients(model: Model) -> _Ingredients:
    """Symbolic Hessian, per-sample curvature covariance and Sigma, lambdified (cached by structure)."""
    key = _structure_key(model)
    if key in _INGREDIENTS:
        return _INGREDIENTS[key]
    states = model.state_symbols
    n = len(states)
    args = list(states) + list(model.parameter_symbols)
    d2l = [[sp.diff(model.loss, si, sj) for sj in states] for si in states]
    pairs = tuple((i, j) for i in range(n) for j in range(i, n))
    products = tuple((p, q) for ip, p in enumerate(pairs) for q in pairs[ip:])
    mean = {p: expectation(d2l[p[0]][p[1]], model.noises, model.quadrature_order) for p in pairs}
    moments = []
    for p, q in products:
        second = expectation(d2l[p[0]][p[1]] * d2l[q[0]][q[1]], model.noises, model.quadrature_order)
        moments.append(second - mean[p] * mean[q])
    hess = model.hessian
    sigma = model.gradient_covariance
    ing = _Ingredients(
        n=n,
        hessian=sp.lambdify(args, [hess[i, j] for i in range(n) for j in range(n)], modules="numpy", cse=True),
        moments=sp.lambdify(args, moments, modules="numpy", cse=True),
        sigma=sp.lambdify(args, [sigma[i, j] for i in range(n) for j in range(n)], modules="numpy", cse=True),
        pairs=pairs,
        products=products,
    )
    _INGREDIENTS[key] = ing
    return ing


def _evaluate(model: Model, state: tuple[np.ndarray, ...]):
    """H (..., n, n), Cov of per-sample D2 l entries (..., n, n, n, n) and Sigma (..., n, n) at the states."""
    ing = _ingredients(model)
    n = ing.n
    shape = np.broadcast(*[np.asarray(s) for s in state]).shape
    values = model.parameter_values

    def entries(f):
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            raw = f(*state, *values)
        return [np.broadcast_to(np.asarray(v, dtype=float), shape) for v in raw]

    hess = np.stack(entries(ing.hessian), axis=-1).reshape(*shape, n, n)
    sig = np.stack(entries(ing.sigma), axis=-1).reshape(*shape, n, n)
    cov = np.zeros((*shape, n, n, n, n))
    for (p, q), v in zip(ing.products, entries(ing.moments)):
        for (i, j) in {p, p[::-1]}:
            for (k, l) in {q, q[::-1]}:
                cov[..., i, j, k, l] = v
                cov[..., k, l, i, j] = v
    for name, arr in (("Hessian", hess), ("gradient covariance", sig), ("curvature covariance", cov)):
        if not np.all(np.isfinite(arr)):
            raise NumericalError(f"model {model.name!r}: the {name} is not finite at the requested point(s)")
    return hess, cov, sig


def resolve_point(model: Model, point, where: str = "point") -> np.ndarray:
    """A state point as a float array in state order, from a dict (every coordinate) or a sequence.

    Raises:
        InputError: unknown or missing coordinate, wrong length, or a non-finite value,
            naming it (``where`` prefixes the message).
    """
    names = model.state_names
    if isinstance(point, Mapping):
        for k in point:
            if k not in names:
                raise InputError(f"{where}: unknown coordinate {k!r}; coordinates of model {model.name!r}: "
                                 f"{', '.join(names)}")
        for k in names:
            if k not in point:
                raise InputError(f"{where}: missing coordinate {k!r}; expected values for {', '.join(names)}")
        raw = [point[k] for k in names]
    else:
        raw = list(np.atleast_1d(np.asarray(point, dtype=object)))
        if len(raw) != len(names):
            raise InputError(f"{where}: expected {len(names)} coordinates ({', '.join(names)}); got {len(raw)}")
    out = []
    for k, v in zip(names, raw):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise InputError(f"{where}: coordinate {k} must be a number; got {v!r}") from None
        if not math.isfinite(f):
            raise InputError(f"{where}: coordinate {k} must be finite; got {v!r}")
        out.append(f)
    return np.array(out)


@dataclass(frozen=True, eq=False)
class LocalLinearization:
    """The ingredients of the linearised iteration at a point.

    Attributes:
        model: the model's name.
        names: state coordinates, in order.
        point: the point.
        signs: +1 (minimiser) or -1 (maximiser) per coordinate.
        owner: player index per coordinate.
        players: player names.
        hessian: D2 g at the point.
        jacobian: J = diag(signs) D2 g, the Jacobian of the signed gradient field.
        curvature_covariance: per-sample Cov(D2 l_ij, D2 l_kl) over the noises, shape (n, n, n, n).
        gradient_covariance: per-sample Sigma(x) (additive noise).
    """

    model: str
    names: tuple[str, ...]
    point: np.ndarray
    signs: np.ndarray
    owner: np.ndarray
    players: tuple[str, ...]
    hessian: np.ndarray
    jacobian: np.ndarray
    curvature_covariance: np.ndarray
    gradient_covariance: np.ndarray


def _signs_owner(model: Model) -> tuple[np.ndarray, np.ndarray]:
    owner = np.concatenate([np.full(len(p.symbols), k) for k, p in enumerate(model.players)]).astype(np.int64)
    signs = np.array([model.players[k].sign for k in owner], dtype=float)
    return signs, owner


def local_linearization(model: Model, point) -> LocalLinearization:
    """Hessian, signed Jacobian and noise covariances of ``model`` at ``point`` (dict or sequence)."""
    model = _as_model(model)[0]
    x = resolve_point(model, point)
    hess, cov, sig = _evaluate(model, tuple(x))
    signs, owner = _signs_owner(model)
    return LocalLinearization(model=model.name, names=model.state_names, point=x, signs=signs, owner=owner,
                              players=tuple(p.name for p in model.players), hessian=hess,
                              jacobian=signs[:, None] * hess + 0.0, curvature_covariance=cov,
                              gradient_covariance=sig)


def _as_model(obj):
    """(model, problem or None) from a Model or a ControlProblem."""
    from ..symbolic.problem import ControlProblem

    if isinstance(obj, ControlProblem):
        return obj.model, obj
    if isinstance(obj, Model):
        return obj, None
    raise InputError(f"expected a Model or a ControlProblem; got {type(obj).__name__}")


def _per_player(model: Model, value, what: str, default: tuple, *, integer: bool = False) -> tuple:
    """One value per player from None (defaults), a number (every player) or {player: value}."""
    names = [p.name for p in model.players]
    if value is None:
        return default
    if isinstance(value, Mapping):
        for k in value:
            if k not in names:
                raise InputError(f"{what}: unknown player {k!r}; players: {', '.join(names)}")
        items = [value.get(k, d) for k, d in zip(names, default)]
    else:
        items = [value] * len(names)
    out = []
    for name, v in zip(names, items):
        if integer:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"{what} for player {name} must be an integer >= 1; got {v!r}")
            out.append(int(v))
        else:
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise InputError(f"{what} for player {name} must be a number; got {v!r}") from None
            if isinstance(v, bool) or not math.isfinite(f) or f < 0:
                raise InputError(f"{what} for player {name} must be a finite number >= 0; got {v!r}")
            out.append(f)
    return tuple(out)


def _defaults(model: Model, problem) -> tuple[tuple, tuple]:
    """Default multipliers (u_max under a problem, else 1) and batch sizes (b_min under batch control)."""
    if problem is None:
        return (1.0,) * len(model.players), (model.batch_size,) * len(model.players)
    us = tuple(float(c.u_max) for c in problem.controls)
    bs = tuple(int(math.ceil(c.batch.b_min)) if c.batch is not None else int(c.batch_size) for c in problem.controls)
    return us, bs


# ------------------------------------------------------------------ thresholds
@dataclass(frozen=True, eq=False)
class ExplosionThresholds:
    """Critical base learning rates eta at a point (module docstring).

    Every threshold is the smallest eta > 0 at which the iteration explodes, with
    the players' multipliers u (step h = eta u): 0 when every eta > 0 explodes,
    None when none does (for the numerical game thresholds: none up to ``eta_max``).

    Attributes:
        model: the model's name.
        kind: ``"one-player"`` or ``"game"``.
        names, point: state coordinates and the point.
        players, multipliers, batch_sizes: per player.
        deterministic, mean_square, almost_sure: one-player thresholds (None for games).
        simultaneous, alternating, mean_square_simultaneous, mean_square_alternating:
            game thresholds (None for one player).
        eigenvalues: eigenvalues of U J (for one player, u times the curvatures).
        jacobian: J, the Jacobian of the signed gradient field.
        curvature: one player: eigenvalues a_i of J (curvature per eigen-direction).
        directions: one player: the eigen-directions (columns).
        noise_variance: one player: s2_i = Var(v_i^T D2 l v_i) / B per direction.
        gradient_covariance: Sigma(x) / B per player block (additive noise).
        eta_max: upper end of the numerical scans (games).
    """

    model: str
    kind: str
    names: tuple[str, ...]
    point: tuple[float, ...]
    players: tuple[str, ...]
    multipliers: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    eigenvalues: np.ndarray
    jacobian: np.ndarray
    gradient_covariance: np.ndarray
    deterministic: float | None = None
    mean_square: float | None = None
    almost_sure: float | None = None
    simultaneous: float | None = None
    alternating: float | None = None
    mean_square_simultaneous: float | None = None
    mean_square_alternating: float | None = None
    curvature: np.ndarray | None = None
    directions: np.ndarray | None = None
    noise_variance: np.ndarray | None = None
    eta_max: float | None = None

    @property
    def criteria(self) -> tuple[str, ...]:
        return ONE_PLAYER_CRITERIA if self.kind == "one-player" else GAME_CRITERIA

    def critical(self, criterion: str) -> float | None:
        """The threshold of one criterion (see :attr:`criteria`)."""
        if criterion not in self.criteria:
            raise InputError(f"criterion {criterion!r} unknown for a {self.kind} model; valid: "
                             f"{', '.join(self.criteria)}")
        return getattr(self, criterion)

    def explodes(self, eta: float, criterion: str) -> bool:
        """Whether base learning rate ``eta`` is beyond the threshold of ``criterion``."""
        crit = self.critical(criterion)
        return crit is not None and eta > crit

    def as_dict(self) -> dict:
        """JSON-ready summary: thresholds, eigenvalues as [re, im] pairs, the point."""
        out = {"model": self.model, "kind": self.kind, "point": dict(zip(self.names, self.point)),
               "multipliers": dict(zip(self.players, self.multipliers)),
               "batch_size": dict(zip(self.players, self.batch_sizes))}
        for c in self.criteria:
            out[c] = getattr(self, c)
        out["eigenvalues"] = [[float(v.real) + 0.0, float(v.imag) + 0.0] for v in np.asarray(self.eigenvalues)]
        out["jacobian"] = np.asarray(self.jacobian).tolist()
        if self.kind == "one-player":
            out["curvature"] = np.asarray(self.curvature).tolist()
            out["noise_variance"] = np.asarray(self.noise_variance).tolist()
        else:
            out["eta_max"] = self.eta_max
        out["gradient_covariance"] = np.asarray(self.gradient_covariance).tolist()
        return out

    def summary(self) -> str:
        def fmt(v):
            if v is None:
                return "none" + (f" up to {self.eta_max:.4g}" if self.kind == "game" else "")
            return "0 (every eta > 0 explodes)" if v == 0 else f"{v:.6g}"

        where = ", ".join(f"{n}={v:g}" for n, v in zip(self.names, self.point))
        us = ", ".join(f"{p}={u:g}" for p, u in zip(self.players, self.multipliers))
        bs = ", ".join(f"{p}={b}" for p, b in zip(self.players, self.batch_sizes))
        eig = ", ".join(f"{v.real:.6g}{v.imag:+.6g}i" for v in np.asarray(self.eigenvalues))
        lines = [f"{self.model} at {where} (multipliers {us}; batch {bs})", f"eigenvalues of U J: {eig}"]
        if self.kind == "one-player":
            lines.append("curvature per eigen-direction: " + ", ".join(f"{a:.6g}" for a in self.curvature)
                         + "; multiplicative noise variance: " + ", ".join(f"{s:.6g}" for s in self.noise_variance))
            labels = {"deterministic": "deterministic", "mean_square": "mean-square", "almost_sure": "almost-sure"}
        else:
            labels = {"simultaneous": "simultaneous GDA", "alternating": "alternating GDA",
                      "mean_square_simultaneous": "mean-square, simultaneous SGA",
                      "mean_square_alternating": "mean-square, alternating SGA"}
        for c in self.criteria:
            lines.append(f"critical eta, {labels[c]}: {fmt(getattr(self, c))}")
        return "\n".join(lines)


def _block_sigma(sig: np.ndarray, owner: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """Sigma / B_p on each player's diagonal block, zero across players (independent minibatches)."""
    same = owner[:, None] == owner[None, :]
    return np.where(same, sig / batch[owner][:, None], 0.0)


def explosion_thresholds(model, point, *, multipliers=None, batch_size=None,
                         eta_max: float | None = None) -> ExplosionThresholds:
    """Critical learning rates of the discrete iteration at ``point`` (module docstring).

    Args:
        model: a :class:`~stochctl.models.Model`, or a
            :class:`~stochctl.symbolic.ControlProblem` (then the defaults are
            each player's u_max and batch size, b_min under batch control).
        point: ``{coordinate: value}`` for every coordinate, or a sequence in state order.
        multipliers: u per player: a number for all, or ``{player: u}`` (default 1).
        batch_size: B per player: an integer for all, or ``{player: B}`` (default: the model's).
        eta_max: upper end of the numerical scans of games (default 1000 / rho(U J)).

    Returns:
        :class:`ExplosionThresholds`.
    """
    model, problem = _as_model(model)
    u_def, b_def = _defaults(model, problem)
    us = np.array(_per_player(model, multipliers, "multiplier", u_def))
    bs = np.array(_per_player(model, batch_size, "batch size", b_def, integer=True))
    if eta_max is not None:
        if isinstance(eta_max, bool) or not isinstance(eta_max, (int, float)) or not (
                math.isfinite(eta_max) and eta_max > 0):
            raise InputError(f"eta_max must be a positive number; got {eta_max!r}")
        eta_max = float(eta_max)
    lin = local_linearization(model, point)
    n = len(lin.names)
    owner = lin.owner
    u_coord = us[owner]
    uj = u_coord[:, None] * lin.jacobian
    common = dict(model=model.name, names=lin.names, point=tuple(map(float, lin.point)),
                  players=lin.players, multipliers=tuple(map(float, us)), batch_sizes=tuple(map(int, bs)),
                  jacobian=lin.jacobian, gradient_covariance=_block_sigma(lin.gradient_covariance, owner, bs))
    if not model.is_game:
        u = float(us[0])
        jac = 0.5 * (lin.jacobian + lin.jacobian.T)
        curv, vecs = np.linalg.eigh(jac)
        scale = float(np.abs(curv).max()) if n else 0.0
        curv = np.where(np.abs(curv) <= _ZERO_TOL * scale, 0.0, curv)
        s2 = np.einsum("ia,ja,ka,la,ijkl->a", vecs, vecs, vecs, vecs, lin.curvature_covariance) / bs[0]
        s2 = np.maximum(s2, 0.0)
        steps = [critical_steps(a, v) for a, v in zip(curv, s2)]

        def in_eta(values):
            h = _combine(values)
            if u == 0 or h is None:
                return None  # a zero multiplier never moves
            return h / u

        det, ms, asure = (in_eta([s[k] for s in steps]) for k in range(3))
        return ExplosionThresholds(kind="one-player", eigenvalues=(u * curv).astype(complex),
                                   deterministic=det, mean_square=ms, almost_sure=asure, curvature=curv,
                                   directions=vecs, noise_variance=s2, **common)
    eig = np.linalg.eigvals(uj)
    weights = u_coord * lin.signs / np.sqrt(bs[owner])
    noise = _noise_operator(lin.curvature_covariance, weights, np.ones(n, bool))
    rho_uj = float(np.abs(eig).max())
    scale = max(rho_uj, math.sqrt(float(spectral_radius(noise))))
    if eta_max is None:
        eta_max = 1000.0 / scale if scale > 0 else 1000.0
    sim = simultaneous_critical_eta(eig)
    if sim is not None and sim > eta_max:
        sim = None
    alt = _first_explosion(lambda e: spectral_radius(iteration_matrix(uj, e, owner, "alternating")), scale, eta_max)
    if not np.any(lin.curvature_covariance):
        ms_sim, ms_alt = sim, alt  # rho(M kron M) = rho(M)^2
    else:
        ms_sim, ms_alt = (
            _first_explosion(lambda e, upd=upd: spectral_radius(
                second_moment_matrix(uj, lin.curvature_covariance, weights, e, owner, upd)), scale, eta_max)
            for upd in UPDATES)
    return ExplosionThresholds(kind="game", eigenvalues=eig, simultaneous=sim, alternating=alt,
                               mean_square_simultaneous=ms_sim, mean_square_alternating=ms_alt,
                               eta_max=eta_max, **common)


# ------------------------------------------------------------ from a Solution
@dataclass(frozen=True, eq=False)
class ExplosionMap:
    """Where the solved policy's own steps explode the discrete iteration.

    At every grid node x the iteration is linearised at x and run with the
    policy's multipliers u*(x) and base learning rate eta; a criterion
    "explodes" there when eta is beyond its threshold (:func:`explosion_thresholds`).

    Attributes:
        names: state coordinates (grid axes).
        axes: grid coordinates per axis.
        time: time of the policy level used.
        eta: base learning rate.
        u_max: player -> upper bound of the multiplier.
        criteria: the criteria evaluated.
        bang_bang: player -> where the control is bang-bang (not in the
            clipped-ratio case) and at u_max.
        explodes: criterion -> where eta u*(x) explodes the iteration.
        explodes_bang_bang: criterion -> ``explodes`` within the bang-bang region of some player.
        critical_eta: criterion -> critical eta at u*(x), for the criteria with
            closed forms (one player: deterministic, mean_square; games:
            simultaneous); inf where nothing explodes, 0 where every eta does.
        fractions: fractions of the domain (trapezoidal weights on the grid)
            of every map: ``bang_bang_<player>``, ``bang_bang`` (any player),
            ``<criterion>`` and ``<criterion>_bang_bang``.
    """

    names: tuple[str, ...]
    axes: tuple[np.ndarray, ...]
    time: float
    eta: float
    u_max: dict
    criteria: tuple[str, ...]
    bang_bang: dict = field(default_factory=dict)
    explodes: dict = field(default_factory=dict)
    explodes_bang_bang: dict = field(default_factory=dict)
    critical_eta: dict = field(default_factory=dict)
    fractions: dict = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"explosion map at time {self.time:g}, eta={self.eta:g}"]
        for p in self.bang_bang:
            lines.append(f"player {p}: bang-bang at u_max={self.u_max[p]:g} on "
                         f"{100 * self.fractions[f'bang_bang_{p}']:.1f}% of the domain")
        for c in self.criteria:
            lines.append(f"{c}: the policy explodes on {100 * self.fractions[c]:.1f}% of the domain, "
                         f"{100 * self.fractions[c + '_bang_bang']:.1f}% within the bang-bang region")
        return "\n".join(lines)


def _trapezoid_weights(shape) -> np.ndarray:
    w = np.ones(shape)
    for axis, n in enumerate(shape):
        edge = np.ones(n)
        if n > 1:
            edge[[0, -1]] = 0.5
        w = w * edge.reshape([-1 if k == axis else 1 for k in range(len(shape))])
    return w / w.sum()


def explosion_map(solution, problem, *, t: float = 0.0, eta: float | None = None) -> ExplosionMap:
    """The map of where the solved policy would explode the discrete algorithm.

    Args:
        solution: a :class:`~stochctl.solvers.Solution` of ``problem``.
        problem: the :class:`~stochctl.symbolic.ControlProblem` it solves
            (model, eta, batch sizes).
        t: time of the policy level used (the level in force at t).
        eta: base learning rate (default: the problem's).

    Returns:
        :class:`ExplosionMap`.
    """
    from ..symbolic.problem import ControlProblem

    if not isinstance(problem, ControlProblem):
        raise InputError(f"problem must be a ControlProblem; got {type(problem).__name__}")
    model = problem.model
    if tuple(solution.state_names) != model.state_names:
        raise InputError(f"solution coordinates {tuple(solution.state_names)} differ from the model's "
                         f"{model.state_names}")
    players = [p.name for p in model.players]
    for p in players:
        if f"u_{p}" not in solution.controls:
            raise InputError(f"solution has no control 'u_{p}'; controls: {', '.join(solution.controls)}")
    eta = problem.eta if eta is None else eta
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not (math.isfinite(eta) and eta > 0):
        raise InputError(f"eta must be a positive number; got {eta!r}")
    eta = float(eta)
    j = solution.policy_index(t)
    mesh = solution.grid.mesh()
    shape = mesh[0].shape
    flat = tuple(np.ravel(m) for m in mesh)
    hess, cov, _ = _evaluate(model, flat)
    signs, owner = _signs_owner(model)
    jac = signs[:, None] * hess
    u = np.stack([np.ravel(solution.controls[f"u_{p}"][j]) for p in players], axis=-1)  # (N, P)
    mfac = []
    for k, (p, c) in enumerate(zip(players, problem.controls)):
        if f"m_{p}" in solution.controls:
            mfac.append(np.ravel(solution.controls[f"m_{p}"][j]))
        else:
            mfac.append(np.full(u.shape[0], 1.0 / c.batch_size))
    mfac = np.stack(mfac, axis=-1)
    u_max, bang = {}, {}
    for k, p in enumerate(players):
        lo, hi = solution.u_bounds.get(p, (problem.controls[k].u_min, problem.controls[k].u_max))
        u_max[p] = hi
        at_max = u[:, k] >= hi - 1e-9 * (hi - lo)
        if p in solution.convex:
            at_max = at_max & ~np.ravel(solution.convex[p][j])
        bang[p] = at_max
    any_bang = np.any(np.stack(list(bang.values())), axis=0)
    explodes, critical = {}, {}
    if not model.is_game:
        sym = 0.5 * (jac + np.swapaxes(jac, -1, -2))
        curv, vecs = np.linalg.eigh(sym)
        s2 = np.maximum(np.einsum("pia,pja,pka,pla,pijkl->pa", vecs, vecs, vecs, vecs, cov), 0.0) * mfac[:, :1]
        scale = np.abs(curv).max(axis=-1, keepdims=True)
        curv = np.where(np.abs(curv) <= _ZERO_TOL * scale, 0.0, curv)
        h = eta * u[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            steps = {
                "deterministic": np.where(curv < 0, 0.0, np.where(curv > 0, 2.0 / curv, np.inf)),
                "mean_square": np.where(curv < 0, 0.0, np.where(curv > 0, 2.0 * curv / (curv**2 + s2),
                                                                np.where(s2 > 0, 0.0, np.inf))),
            }
            for name, per_direction in steps.items():
                h_crit = per_direction.min(axis=-1)
                explodes[name] = h > h_crit
                critical[name] = np.where(u[:, 0] > 0, h_crit / u[:, 0], np.inf)  # 0 stays 0, inf stays inf
        asure = np.zeros(h.shape, bool)
        for i in np.flatnonzero(h > 0):
            asure[i] = any(lyapunov_exponent(h[i], a, v) > 0 for a, v in zip(curv[i], s2[i]))
        explodes["almost_sure"] = asure
        criteria = ONE_PLAYER_CRITERIA
    else:
        u_coord = u[:, owner]
        uj = u_coord[:, :, None] * jac
        eig = np.linalg.eigvals(uj)
        critical["simultaneous"] = np.array([
            (lambda v: np.inf if v is None else v)(simultaneous_critical_eta(e)) for e in eig])
        explodes["simultaneous"] = spectral_radius(iteration_matrix(uj, eta, owner, "simultaneous")) > 1 + RHO_TOL
        explodes["alternating"] = spectral_radius(iteration_matrix(uj, eta, owner, "alternating")) > 1 + RHO_TOL
        weights = u_coord * signs * np.sqrt(mfac[:, owner])
        for upd in UPDATES:
            a = second_moment_matrix(uj, cov, weights, np.full(u.shape[0], eta), owner, upd)
            explodes[f"mean_square_{upd}"] = spectral_radius(a) > 1 + RHO_TOL
        criteria = GAME_CRITERIA
    weights_grid = _trapezoid_weights(shape)
    fraction = lambda mask: float(np.sum(weights_grid * mask))  # noqa: E731
    bang_maps = {p: m.reshape(shape) for p, m in bang.items()}
    explode_maps = {c: explodes[c].reshape(shape) for c in criteria}
    both = {c: explode_maps[c] & any_bang.reshape(shape) for c in criteria}
    fractions = {f"bang_bang_{p}": fraction(m) for p, m in bang_maps.items()}
    fractions["bang_bang"] = fraction(any_bang.reshape(shape))
    for c in criteria:
        fractions[c] = fraction(explode_maps[c])
        fractions[c + "_bang_bang"] = fraction(both[c])
    return ExplosionMap(names=model.state_names, axes=tuple(solution.grid.axes), time=float(solution.policy_times[j]),
                        eta=eta, u_max=u_max, criteria=criteria, bang_bang=bang_maps, explodes=explode_maps,
                        explodes_bang_bang=both, critical_eta={c: v.reshape(shape) for c, v in critical.items()},
                        fractions=fractions)


# ------------------------------------------------------------------ simulation
def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _etas(etas) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(etas, dtype=float)) if not isinstance(etas, str) else None
    if arr is None or arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"etas must be a non-empty 1-D sequence of positive numbers; got {etas!r}")
    return arr


@functools.lru_cache(maxsize=16)
def _problem_of(model: Model):
    from ..symbolic.problem import ControlProblem

    return ControlProblem.from_model(model)


def _setup(model_or_problem, start, etas, multipliers, update, noise, batch_size, center, seed, paths):
    """Validated inputs and the kernel arguments shared by both simulations."""
    from ..symbolic.compile import compile_problem
    from ._explosion_kernels import NOISE_MODES, explosion_kernels

    model, problem = _as_model(model_or_problem)
    _check_update(update)
    if noise not in NOISES:
        raise InputError(f"noise {noise!r} unknown; valid: {', '.join(NOISES)}")
    etas = _etas(etas)
    paths = _positive_int("paths", paths)
    seed = _positive_int("seed", seed, minimum=0)
    u_def, b_def = _defaults(model, problem)
    us = np.array(_per_player(model, multipliers, "multiplier", u_def))
    bs = np.array(_per_player(model, batch_size, "batch size", b_def, integer=True), dtype=np.int64)
    x0 = resolve_point(model, start, "start")
    c = np.zeros_like(x0) if center is None else resolve_point(model, center, "center")
    compiled = compile_problem(problem if problem is not None else _problem_of(model))
    module = explosion_kernels(compiled)
    signs, owner = _signs_owner(model)
    n_players = len(model.players)
    slices = model.player_slices()
    starts = np.array([s.start for s in slices], dtype=np.int64)
    stops = np.array([s.stop for s in slices], dtype=np.int64)
    if update == "alternating" and n_players > 1:
        phase, n_phases = np.arange(n_players, dtype=np.int64), n_players
    else:
        phase, n_phases = np.zeros(n_players, dtype=np.int64), 1
    hs = etas[:, None] * us[owner][None, :]
    seeds = np.random.SeedSequence(seed).generate_state(paths, dtype=np.uint32).astype(np.int64)
    args = (compiled.params, signs, owner, phase, n_phases, starts, stops, np.ascontiguousarray(hs), bs,
            NOISE_MODES[noise], int(compiled.n_noises), x0, c)
    info = dict(model=model.name, update=update if n_players > 1 else "sgd", noise=noise, names=model.state_names,
                start=tuple(map(float, x0)), center=tuple(map(float, c)), players=tuple(p.name for p in model.players),
                multipliers=tuple(map(float, us)), batch_sizes=tuple(map(int, bs)), etas=etas, paths=paths, seed=seed)
    return module, args, seeds, info, model


@dataclass(frozen=True, eq=False)
class ExplosionSimulation:
    """Simulated explosion probabilities of the discrete iteration over a sweep of eta.

    Attributes:
        model, update, noise: model name; ``"sgd"``, ``"simultaneous"`` or
            ``"alternating"``; noise model (:data:`NOISES`).
        names, start, center: coordinates, start point, centre of the norm
            (default: the origin, the equilibrium of the canonical quadratic models).
        players, multipliers, batch_sizes: per player (step of player p: eta u_p).
        etas: the base learning rates of the sweep.
        paths, steps, bound, seed: sample size, iterations, explosion bound on
            |x_k - center|, master seed (per-path seeds from
            :class:`numpy.random.SeedSequence`, shared by every eta).
        explosion_step: (len(etas), paths) first step k with |x_k - center| > bound
            or non-finite; -1 where the path never exploded.
        counts, probability: exploded paths and their fraction, per eta.
        ci_low, ci_high: binomial confidence interval of the probability.
        confidence, interval: its level and method (:data:`INTERVALS`).
    """

    model: str
    update: str
    noise: str
    names: tuple[str, ...]
    start: tuple[float, ...]
    center: tuple[float, ...]
    players: tuple[str, ...]
    multipliers: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    etas: np.ndarray
    paths: int
    steps: int
    bound: float
    seed: int
    explosion_step: np.ndarray
    counts: np.ndarray
    probability: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    confidence: float
    interval: str

    @property
    def step_sizes(self) -> np.ndarray:
        """h = eta u per eta (rows) and player (columns)."""
        return self.etas[:, None] * np.asarray(self.multipliers)[None, :]

    def as_dict(self) -> dict:
        return {"model": self.model, "update": self.update, "noise": self.noise, "etas": self.etas,
                "multipliers": dict(zip(self.players, self.multipliers)), "paths": self.paths,
                "steps": self.steps, "bound": self.bound, "seed": self.seed, "probability": self.probability,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "confidence": self.confidence,
                "interval": self.interval}


def simulate_explosion(model, start, etas, *, multipliers=None, update: str = "simultaneous",
                       noise: str = "gaussian", batch_size=None, paths: int = 1000, steps: int = 1000,
                       bound: float = 1e6, center=None, seed: int = 0, confidence: float = 0.95,
                       interval: str = "wilson") -> ExplosionSimulation:
    """Probability that the discrete iteration explodes within ``steps``, for each eta.

    A path explodes when |x_k - center| > bound or x_k stops being finite for
    some k <= steps. The iteration and its noise are described in
    :mod:`stochctl.analysis._explosion_kernels`.

    Args:
        model: a Model or a ControlProblem (defaults as in :func:`explosion_thresholds`).
        start: start point (dict or sequence).
        etas: base learning rates to sweep (step of player p: eta u_p).
        multipliers, batch_size: per player, as in :func:`explosion_thresholds`.
        update: ``"simultaneous"`` or ``"alternating"`` (the same for one player).
        noise: ``"gaussian"`` (Cholesky of Sigma / B), ``"sample"`` (mean of B
            per-sample gradients) or ``"none"``.
        paths, steps, bound: sample size, iterations, explosion bound.
        center: centre of the norm (default: the origin).
        seed: master seed.
        confidence, interval: level and method of the binomial interval.
    """
    steps = _positive_int("steps", steps)
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not (math.isfinite(bound) and bound > 0):
        raise InputError(f"bound must be a positive number; got {bound!r}")
    if not (isinstance(confidence, float) and 0 < confidence < 1):
        raise InputError(f"confidence must be a number in (0, 1); got {confidence!r}")
    if interval not in INTERVALS:
        raise InputError(f"interval {interval!r} unknown; valid: {', '.join(INTERVALS)}")
    module, args, seeds, info, _ = _setup(model, start, etas, multipliers, update, noise, batch_size, center, seed,
                                          paths)
    out = np.empty((len(info["etas"]), info["paths"]), dtype=np.int64)
    module.explosion_paths(*args, seeds, steps, float(bound) ** 2, out)
    counts = (out >= 0).sum(axis=1)
    method = "wilson" if interval == "wilson" else "exact"
    lows, highs = [], []
    for k in counts:
        ci = stats.binomtest(int(k), info["paths"]).proportion_ci(confidence_level=confidence, method=method)
        lows.append(ci.low)
        highs.append(ci.high)
    return ExplosionSimulation(**info, steps=steps, bound=float(bound), explosion_step=out, counts=counts,
                               probability=counts / info["paths"], ci_low=np.array(lows), ci_high=np.array(highs),
                               confidence=confidence, interval=interval)


@dataclass(frozen=True, eq=False)
class SecondMomentGrowth:
    """Averaged second moment r_k = |x_k - center|^2 over many paths, per eta.

    Attributes:
        model, update, noise, names, start, center, players, multipliers,
        batch_sizes, etas, paths, seed: as in :class:`ExplosionSimulation`.
        steps: iterations K.
        mean: (len(etas), K + 1) sample mean of r_k (inf once a path overflows).
        stderr: its standard error.
        growth_rate: (log mean_K - log mean_0) / K per eta.
        growth_stderr: its standard error (delta method, from the spread at step K).
        predicted_rate: log of the spectral radius of the second-moment map of
            the iteration linearised at ``center`` (:func:`second_moment_matrix`).
    """

    model: str
    update: str
    noise: str
    names: tuple[str, ...]
    start: tuple[float, ...]
    center: tuple[float, ...]
    players: tuple[str, ...]
    multipliers: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    etas: np.ndarray
    paths: int
    seed: int
    steps: int
    mean: np.ndarray
    stderr: np.ndarray
    growth_rate: np.ndarray
    growth_stderr: np.ndarray
    predicted_rate: np.ndarray


def simulate_second_moment(model, start, etas, *, multipliers=None, update: str = "simultaneous",
                           noise: str = "gaussian", batch_size=None, paths: int = 20000, steps: int = 10,
                           center=None, seed: int = 0) -> SecondMomentGrowth:
    """Growth rate of the averaged second moment of the discrete iteration, for each eta.

    Arguments as in :func:`simulate_explosion`. With a deterministic start the
    growth rate (log mean r_K - log r_0) / K estimates log rho of the
    second-moment map; it is positive above the mean-square threshold and
    negative below (exactly log((1 - h a)^2 + h^2 s^2) for the quadratic model
    without additive noise).
    """
    steps = _positive_int("steps", steps)
    module, args, seeds, info, mdl = _setup(model, start, etas, multipliers, update, noise, batch_size, center,
                                            seed, paths)
    chunks = min(64, info["paths"])
    n_eta = len(info["etas"])
    sums = np.empty((n_eta, chunks, steps + 1))
    sums2 = np.empty_like(sums)
    module.second_moments(*args, seeds, steps, sums, sums2)
    p = info["paths"]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        mean = sums.sum(axis=1) / p
        var = np.maximum(sums2.sum(axis=1) / p - mean**2, 0.0) * p / max(p - 1, 1)
        stderr = np.sqrt(var / p)
        growth = (np.log(mean[:, -1]) - np.log(mean[:, 0])) / steps
        growth_se = stderr[:, -1] / mean[:, -1] / steps
    lin = local_linearization(mdl, info["center"])
    us = np.asarray(info["multipliers"])
    bs = np.asarray(info["batch_sizes"])
    uj = us[lin.owner][:, None] * lin.jacobian
    weights = us[lin.owner] * lin.signs / np.sqrt(bs[lin.owner])
    upd = info["update"] if info["update"] in UPDATES else "simultaneous"
    with np.errstate(divide="ignore"):
        predicted = np.log(spectral_radius(second_moment_matrix(uj, lin.curvature_covariance, weights, info["etas"],
                                                                lin.owner, upd)))
    return SecondMomentGrowth(**info, steps=steps, mean=mean, stderr=stderr, growth_rate=growth,
                              growth_stderr=growth_se, predicted_rate=predicted)
