"""Critical learning rates of the discrete iteration at a point (one player and games).

One player: per eigen-direction of the signed Hessian, the three critical steps of
:mod:`.scalar`, the minimum over directions. Games: simultaneous GDA explodes iff
some eigenvalue lambda of U J has |1 - eta lambda| > 1, i.e.
eta > 2 Re(lambda) / |lambda|^2; alternating GDA and both mean-square criteria at
the first eta where the spectral radius of the matrix of :mod:`.linear` exceeds
1 + RHO_TOL, found on a log-spaced scan of (0, eta_max] refined by bisection. For the
quadratic game with a, c >= 0 and u = 1 the alternating threshold is
2 / lambda_max([[a, b], [b, c]]) (Jury's condition on the 2 x 2 iteration matrix).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...errors import InputError
from ._common import (_ZERO_TOL, GAME_CRITERIA, ONE_PLAYER_CRITERIA, RHO_TOL, UPDATES, _as_model, _defaults,
                      _per_player)
from .linear import _noise_operator, iteration_matrix, local_linearization, second_moment_matrix, spectral_radius
from .scalar import _combine, critical_steps

#: Log-spaced points of the threshold scans.
SCAN_POINTS = 600
#: The scans start at SCAN_START * 2 / rho(U J).
SCAN_START = 1e-3


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
