"""Game-aware rates: both players' multipliers from the two-player discrete local model.

Reduced model (docs/DESIGN.md, section 4b, "Games: the rate pair"). Each player p in {G, D} moves one
coordinate z_p along its step direction; the signed field (each player's gradient of its own loss) is

    F = J z + noise,   J = [[a_G, J_GD], [J_DG, a_D]],   J_GD J_DG = -beta_G beta_D   (rotational coupling),

with a_p the own curvature per unit of rate and beta_G beta_D = |J_GD J_DG| the product of the couplings:
measured in the players' step directions (:mod:`stochctl.trainers.curvature`, ``parts["cross"]``:
the other player's gradient response along its own gradient per unit step of p), or else bounded by
beta_p = sqrt(m_p^2 - a_p^2), the cross part of the field measure m_p = |J[:, p] d_p| / |d_p|. The players alternate, the discriminator first (the study's trainers): with x_p = eta_p u_p,

    z_D <- z_D - x_D (F_D(z) + s_D xi_D),   z_G <- z_G - x_G (F_G(z_G, z_D') + s_G xi_G).

Between two generator moves its gradient evolves as (exact for the linear model)

    F_G'' = (1 - x_G a_eff) F_G - x_G a_eff s_G xi_G - x_D J_GD (F_D + s_D xi'),   a_eff = a_G + x_D beta_G beta_D,

so the discriminator's response adds x_D beta_G beta_D to the generator's curvature (with the landing
step x_D a_D = 1 it is the Schur complement a_S = a_G + beta_G beta_D / a_D, the curvature of the
min-max landscape). The noiseless round map has trace T = 2 - x_G a_G - x_D a_D - x_G x_D beta_G beta_D
and determinant Delta = (1 - x_G a_G)(1 - x_D a_D); it is stable iff |Delta| < 1 and |T| < 1 + Delta.

Rules (r_p = SNR_p = |E g_p|^2 / E|g_p|^2, caps cap_p = min(eta_p u_max, 1 / m_p)):

- ``"nash"``: each player minimises its own next gradient second moment: x_D = min(r_D / a_D, cap_D)
  (the one-player rule), x_G = min(r_G / a_eff, cap_G, margin x_stab) where a_eff > 0, else the cap
  (the endpoint rule); x_stab is the largest stable x_G of the round map (Jury conditions); where
  det J = a_G a_D + beta_G beta_D <= 0 no stable pair exists and x_G <= min(x_D, cap_G) instead (the
  generator tied to the discriminator).
- ``"joint"``: one controller minimises the sum of both players' normalised costs
  C(x_D) = C_D + C_G over x_D in [0, cap_D] (x_G as in ``"nash"`` given x_D):

      C_D = (1 - q)^2 r_D + q^2 (1 - r_D),  q = x_D a_D   (E (D's gradient after its move)^2 / E|g_D|^2)
      C_G = (1 - v)^2 r_G + v^2 (1 - r_G),  v = x_G a_eff  (E (G's gradient at its next move)^2 / E|g_G|^2,
                                                           without D's own displacement, counted in C_D),
      C_G = r_G where a_eff <= 0 (no minimum along G's direction: its cost is not informative)

  minimised on a grid of ``JOINT_POINTS`` values of x_D (no host synchronisation).
- ``"min"``: both players take the smaller of their two one-step rates, x_G = x_D = min(x_G^1, x_D^1),
  x_p^1 = min(r_p / a_p, cap_p) (the cap where a_p <= 0).
- ``"tied"``: ``"joint"`` with the generator never faster than the discriminator, x_G <= x_D (a
  time-scale separation imposed, not derived: the model's a_eff assumes D answers G's move, and the
  prototype of DESIGN 4c that tied the two rates trained best).

Every function works on numpy, torch or jax arrays without converting them to Python values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .estimators.base import namespace

RULES = ("joint", "nash", "min", "tied")
ROLES = ("generator", "discriminator")
JOINT_POINTS = 257
"""Grid points of the joint minimisation over x_D in [0, cap_D] (resolution cap_D / 256)."""
MARGIN = 0.5
"""x_G at most this fraction of the stability bound of the round map (1/2: the landing step is half the
explosion step in the one-player model)."""


def _xp(*arrays):
    for a in arrays:
        if not isinstance(a, (float, int, np.floating, np.integer, np.ndarray)):
            return namespace(a)
    return np


def _safe(x, xp):
    """x where x > 0, else 1 (a divisor that never divides by zero; the caller masks those entries)."""
    return xp.where(x > 0, x, xp.ones_like(x))


def _inf(x, xp):
    return xp.zeros_like(x) + np.inf


def coupling(a, m, xp=None):
    """beta = sqrt(max(m^2 - a^2, 0)): the cross part of the field measure m = |J[:, p] d| / |d|.

    |J[:, p] d|^2 = |H_pp d|^2 + |J_qp d|^2 >= (d^T H_pp d)^2 / |d|^2 + |J_qp d|^2, so beta bounds the
    other player's response |J_qp d| / |d| from above (equal when d is an eigenvector of H_pp).
    """
    xp = _xp(a, m) if xp is None else xp
    return xp.sqrt(xp.clip(m * m - a * a, 0.0, None))


def one_step_rate(a, r, cap, xp=None):
    """The one-player one-step rate x = min(r / a, cap) (cap where a <= 0): eta u = SNR / a, capped."""
    xp = _xp(a, r) if xp is None else xp
    cap = cap + xp.zeros_like(a)
    return xp.where(a > 0, xp.fmin(r / _safe(a, xp), cap), cap)


def stable_bound(x_d, a_g, a_d, b2, xp=None):
    """The largest x_G >= 0 for which the noiseless alternating round map is stable (+inf: no bound).

    Jury conditions of lambda^2 - T lambda + Delta, each affine in x_G (q = x_D a_D):
    1 - Delta = q + x_G a_G (1 - q) >= 0;  1 + Delta = 2 - q - x_G a_G (1 - q) >= 0;
    1 + Delta - T = x_G x_D (a_G a_D + b2) >= 0;  1 + Delta + T = 4 - 2 q - x_G (a_G (2 - q) + x_D b2) >= 0.
    The third holds for every x_G >= 0 where det J = a_G a_D + b2 > 0 and for none > 0 where det J < 0
    (:func:`generator_rate` ties the generator to the discriminator there); the bound returned is that
    of the other three, for 0 < q <= 1 (0 where q <= 0 and a_G < 0: no stabilising discriminator step).
    """
    xp = _xp(x_d, a_g, a_d, b2) if xp is None else xp
    q = x_d * a_d
    k1 = a_g * (1.0 - q)
    k4 = a_g * (2.0 - q) + x_d * b2
    inf = _inf(q + k4, xp)
    bound = xp.where(k1 < 0, q / _safe(-k1, xp), inf)
    bound = xp.fmin(bound, xp.where(k1 > 0, (2.0 - q) / _safe(k1, xp), inf))
    bound = xp.fmin(bound, xp.where(k4 > 0, (4.0 - 2.0 * q) / _safe(k4, xp), inf))
    return xp.where((q <= 0) & (k1 < 0), xp.zeros_like(bound), bound)


def generator_rate(x_d, a_g, r_g, a_d, b2, cap_g, margin=MARGIN, xp=None):
    """x_G given the discriminator's x_D: min(r_G / a_eff, cap_G, margin x_stab), the caps where a_eff <= 0.

    a_eff = a_G + x_D b2 (b2 = beta_G beta_D). Where det J = a_G a_D + b2 <= 0 no pair is stable (the
    round map has a real eigenvalue above 1 for every x_G > 0): the generator is tied to the
    discriminator, x_G <= min(x_D, cap_G), the stability bound not applied.

    Returns:
        (x_G, a_eff).
    """
    xp = _xp(x_d, a_g, r_g, a_d) if xp is None else xp
    a_eff = a_g + x_d * b2
    zero = xp.zeros_like(a_eff)
    cap = xp.fmin(cap_g + zero, margin * stable_bound(x_d, a_g, a_d, b2, xp))
    cap = xp.where(a_g * a_d + b2 > 0, cap, xp.fmin(cap_g + zero, x_d + zero))
    return xp.where(a_eff > 0, xp.fmin(r_g / _safe(a_eff, xp), cap), cap), a_eff


def joint_cost(x_d, x_g, a_eff, a_d, r_g, r_d):
    """C = C_D + C_G of the ``"joint"`` rule (module docstring); C_G = r_G where a_eff <= 0."""
    q = x_d * a_d
    c_d = (1.0 - q) ** 2 * r_d + q * q * (1.0 - r_d)
    v = x_g * a_eff
    c_g = (1.0 - v) ** 2 * r_g + v * v * (1.0 - r_g)
    xp = _xp(x_d, x_g, a_eff, a_d, r_g, r_d)
    return c_d + xp.where(a_eff > 0, c_g, r_g + xp.zeros_like(c_g))


def rate_pair(a_g, m_g, r_g, a_d, m_d, r_d, *, eta_g, eta_d, u_max=1.0, rule="joint",
              margin=MARGIN, points=JOINT_POINTS, c_g=None, c_d=None):
    """The effective rates (x_G, x_D) = (eta_G u_G, eta_D u_D) of a rule (module docstring).

    Args:
        a_g, a_d: own curvatures per unit of rate (d^T H_pp d / |d|^2 for SGD; signed).
        m_g, m_d: field measures per unit of rate (>= |a|; NaN or inf: no field cap and no coupling).
        r_g, r_d: signal-to-noise ratios |E g|^2 / E|g|^2 in [0, 1].
        eta_g, eta_d: base rates (numbers).
        u_max: the multipliers' upper bound.
        rule: one of :data:`RULES`.
        margin: x_G at most ``margin`` times the stability bound of the round map.
        points: grid points of the ``"joint"`` minimisation.
        c_g, c_d: the reduced couplings J_DG (measured along G's step) and J_GD (along D's step);
            where both are finite, beta_G beta_D = |c_G c_D| (the rotational model's product), else
            beta_p = sqrt(m_p^2 - a_p^2) from the field measures (an upper bound: it also counts the
            part of H_pp d_p off the direction d_p).

    Returns:
        (x_G, x_D), arrays of the inputs' library.
    """
    if rule not in RULES:
        raise InputError(f"rule must be one of {', '.join(RULES)}; got {rule!r}")
    xp = _xp(a_g, a_d, m_g, m_d, r_g, r_d)
    m_g = xp.where(xp.isfinite(m_g), m_g, xp.abs(a_g))  # no field measure: no coupling, the own cap
    m_d = xp.where(xp.isfinite(m_d), m_d, xp.abs(a_d))
    cap_g = xp.where(m_g > 0, xp.fmin(eta_g * u_max + xp.zeros_like(m_g), 1.0 / _safe(m_g, xp)), eta_g * u_max)
    cap_d = xp.where(m_d > 0, xp.fmin(eta_d * u_max + xp.zeros_like(m_d), 1.0 / _safe(m_d, xp)), eta_d * u_max)
    x_d1 = one_step_rate(a_d, r_d, cap_d, xp)
    if rule == "min":
        x = xp.fmin(one_step_rate(a_g, r_g, cap_g, xp), x_d1)
        return x, x
    b2 = coupling(a_g, m_g, xp) * coupling(a_d, m_d, xp)
    if c_g is not None and c_d is not None:
        prod = xp.abs(xp.zeros_like(b2) + c_g * c_d)
        b2 = xp.where(xp.isnan(prod), b2, prod)
    if rule == "nash":
        x_g, _ = generator_rate(x_d1, a_g, r_g, a_d, b2, cap_g, margin, xp)
        return x_g, x_d1
    shape = (-1,) + (1,) * len(np.shape(a_d))
    t = np.linspace(0.0, 1.0, points).reshape(shape)
    if xp is not np:
        t = xp.asarray(t, dtype=a_d.dtype, device=a_d.device) if xp.__name__ == "torch" else xp.asarray(t)
    x_grid = t * cap_d
    tie = rule == "tied"
    xg_grid, a_eff = generator_rate(x_grid, a_g, r_g, a_d, b2, xp.fmin(cap_g + xp.zeros_like(x_grid), x_grid)
                                    if tie else cap_g, margin, xp)
    cost = joint_cost(x_grid, xg_grid, a_eff, a_d, r_g, r_d)
    cost = xp.where(xp.isnan(cost), _inf(cost, xp), cost)
    best = xp.argmin(cost, axis=0)
    x_d = _take(x_grid + xp.zeros_like(cost), best, xp)
    x_g = _take(xg_grid + xp.zeros_like(cost), best, xp)
    # D non-convex (a_D <= 0): no minimum to land on; the Nash pair (D at its cap)
    x_gn, _ = generator_rate(x_d1, a_g, r_g, a_d, b2, xp.fmin(cap_g, x_d1) if tie else cap_g, margin, xp)
    joint_ok = (a_d > 0) & (_take(cost, best, xp) < np.inf)  # else (a G input not finite) the Nash pair
    return xp.where(joint_ok, x_g, x_gn), xp.where(joint_ok, x_d, x_d1)


def _take(grid, idx, xp):
    """grid[idx[...], ...] along the first axis."""
    if xp is np:
        return np.take_along_axis(grid, np.expand_dims(idx, 0), axis=0)[0]
    if xp.__name__ == "torch":
        return xp.take_along_dim(grid, idx.unsqueeze(0), dim=0)[0]
    return xp.take_along_axis(grid, xp.expand_dims(idx, 0), axis=0)[0]


@dataclass(frozen=True)
class Measurement:
    """One player's inputs to a rule (arrays): own curvature a, field measure m, SNR r, base rate eta, and
    optionally c, the reduced coupling measured along this player's step (the other player's gradient
    response along its own gradient per unit step; NaN: not measured, beta from the field measure)."""

    a: Any
    m: Any
    r: Any
    eta: float
    c: Any = float("nan")


class GameRule:
    """Both players' multipliers from their latest measurements, shared by the two players' schedulers.

    Each player's scheduler calls :meth:`multiplier` at its step with its role, its measurement and a
    fallback multiplier (its per-player rule's, used until the other player has been measured); the
    rule keeps each player's latest measurement and returns u_p = clip(x_p / eta_p, 0, u_max) of the
    pair (x_G, x_D) of :func:`rate_pair`, computed from this player's current measurement and the
    other player's latest.

    Args:
        rule: one of :data:`RULES` (``"joint"``, ``"nash"``, ``"min"``, ``"tied"``).
        u_max: upper bound of the multipliers.
        margin: as in :func:`rate_pair`.
    """

    def __init__(self, rule: str = "joint", *, u_max: float = 1.0, margin: float = MARGIN):
        if rule not in RULES:
            raise InputError(f"rule must be one of {', '.join(RULES)}; got {rule!r}")
        if not isinstance(u_max, (int, float)) or isinstance(u_max, bool) or not u_max > 0 or u_max == np.inf:
            raise InputError(f"u_max must be a positive finite number; got {u_max!r}")
        if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 < margin <= 1:
            raise InputError(f"margin must be a number in (0, 1]; got {margin!r}")
        self.rule, self.u_max, self.margin = rule, float(u_max), float(margin)
        self.latest: dict = {}

    def reset(self) -> None:
        self.latest = {}

    def multiplier(self, role: str, meas: Measurement, fallback):
        """u of player ``role`` from its measurement and the other's latest (``fallback`` before that)."""
        if role not in ROLES:
            raise InputError(f"role must be one of {', '.join(ROLES)}; got {role!r}")
        self.latest[role] = meas
        other = self.latest.get(ROLES[1 - ROLES.index(role)])
        if other is None:
            return fallback
        g, d = (meas, other) if role == "generator" else (other, meas)
        x_g, x_d = rate_pair(g.a, g.m, g.r, d.a, d.m, d.r, eta_g=g.eta, eta_d=d.eta,
                             u_max=self.u_max, rule=self.rule, margin=self.margin, c_g=g.c, c_d=d.c)
        x = x_g if role == "generator" else x_d
        xp = _xp(x)
        u = xp.clip(x / meas.eta, 0.0, self.u_max)
        return xp.where(xp.isnan(u), fallback + 0.0 * u, u)

    def config(self) -> dict:
        return {"rule": self.rule, "u_max": self.u_max, "margin": self.margin}


__all__ = ["RULES", "ROLES", "GameRule", "Measurement", "rate_pair", "generator_rate", "stable_bound",
           "one_step_rate", "coupling", "joint_cost"]
