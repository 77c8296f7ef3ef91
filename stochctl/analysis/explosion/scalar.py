"""One player along one eigen-direction: the three critical steps of x <- (1 - h (a + xi)) x.

With curvature a, multiplicative noise xi ~ N(0, s2) and step h = eta u:

* deterministic: |1 - h a| > 1, i.e. h > 2 / a (every h > 0 when a < 0);
* mean-square: E x_{k+1}^2 / E x_k^2 = (1 - h a)^2 + h^2 s2 > 1, i.e.
  h > 2 a / (a^2 + s2) (every h when a <= 0 and s2 > 0);
* almost-sure: the Lyapunov exponent Lambda(h) = E log|1 - h (a + xi)| > 0,
  computed by quadrature of the integrable log singularity and root-found
  (brentq) above the mean-square threshold (Jensen: Lambda <= log E|.|^2 / 2,
  so the almost-sure threshold is the larger one).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, optimize

from ...errors import InputError, NumericalError

#: E log|xi| for xi ~ N(0, 1): -(Euler's gamma + log 2) / 2.
LOG_ABS_NORMAL = -(np.euler_gamma + math.log(2.0)) / 2.0


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
