"""Where a solved policy's own steps explode the discrete iteration: the explosion map of a Solution."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import InputError
from ._common import _ZERO_TOL, GAME_CRITERIA, ONE_PLAYER_CRITERIA, RHO_TOL, UPDATES, _signs_owner
from .linear import _evaluate, iteration_matrix, second_moment_matrix, spectral_radius
from .scalar import lyapunov_exponent
from .thresholds import simultaneous_critical_eta

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
    from ...symbolic.problem import ControlProblem

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
