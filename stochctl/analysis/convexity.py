"""Convexity of the objective in each player's coordinates, and of the profile objective.

For a player p with coordinates x_p the Hessian block H_pp = D2_{x_p x_p} g is
taken symbolically from the model. A minimiser needs g convex in x_p, i.e.
lambda_min(H_pp) >= 0; a maximiser needs g concave in x_p, i.e.
lambda_max(H_pp) <= 0. Both are evaluated on a tensor grid over the box; the
grid points where they fail form the non-convex (non-concave) regions, and a
few of them, spread over the region, are re-evaluated at 30 significant digits
from the sympy Hessian as concrete witnesses.

For a game with min coordinates theta and max coordinates omega, the profile
(upper) objective

    P(theta) = max_omega g(theta, omega)

is what the min player effectively minimises. It is computed on the theta grid
by grid search refined with a bounded local optimiser, and its convexity is
tested by second differences: a convex function has
P(theta + h) - 2 P(theta) + P(theta - h) >= 0 for every theta and h, so a
negative second difference beyond the numerical error certifies that P is not
convex there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp

from ..errors import InputError, NumericalError
from ._minmax import XTOL, grid_values, minmax, objective_function, resolve_box, resolve_points

__all__ = ["BlockConvexity", "BlockScan", "ConvexityReport", "FailurePoint", "ProfileObjective", "analyze_convexity",
           "scan_block_convexity", "CONVEXITY_TOL"]

_DIGITS = 30

CONVEXITY_TOL = 1e-9
"""Relative tolerance of the convexity scan (:func:`scan_block_convexity`).

A player's deciding eigenvalue fails its requirement when it lies on the wrong
side of 0 by more than CONVEXITY_TOL * max(1, largest |eigenvalue| of that
block on the grid): round-off of an exactly zero curvature (a bilinear term, a
Dirac GAN at theta = 0) then never counts as a failure.
"""


@dataclass(frozen=True)
class BlockScan:
    """One player's Hessian block on a grid: its eigenvalues and where its requirement fails.

    Attributes:
        player, sense: the player's name and ``"min"`` or ``"max"``.
        requirement: ``"convex"`` (min player: lambda_min >= 0) or ``"concave"``
            (max player: lambda_max <= 0).
        symbols: the player's state symbols.
        block: the symbolic block D2_{x_p x_p} g.
        eigenvalues: ascending eigenvalues per grid point, shape (*grid, k).
        extreme: the deciding eigenvalue (lambda_min or lambda_max), shape of the grid.
        fails: ``extreme`` beyond ``tolerance`` on the wrong side of 0.
        tolerance: CONVEXITY_TOL * max(1, max |eigenvalue|).
    """

    player: str
    sense: str
    requirement: str
    symbols: tuple[sp.Symbol, ...]
    block: sp.ImmutableMatrix
    eigenvalues: np.ndarray
    extreme: np.ndarray
    fails: np.ndarray
    tolerance: float


def scan_block_convexity(model, mesh) -> tuple[BlockScan, ...]:
    """The convexity scan: each player's Hessian block on a grid (module docstring, :data:`CONVEXITY_TOL`).

    Args:
        model: a :class:`~stochctl.models.Model`.
        mesh: one array per state coordinate, all of the grid's shape.

    Raises:
        NumericalError: a block is not finite somewhere on the grid, naming the player.
    """
    mesh = [np.asarray(m, dtype=float) for m in mesh]
    shape = mesh[0].shape
    hessian = model.hessian
    out = []
    for player, sl in zip(model.players, model.player_slices()):
        block = sp.ImmutableMatrix(hessian[sl, sl])
        k = block.rows
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            raw = model.lambdify(block)(*mesh)
        mat = np.stack([np.broadcast_to(np.asarray(raw[i][j], dtype=float), shape)
                        for i in range(k) for j in range(k)], axis=-1).reshape(*shape, k, k)
        if not np.all(np.isfinite(mat)):
            raise NumericalError(f"the Hessian block of {player.name} is not finite on the box; choose a smaller box")
        eig = np.linalg.eigvalsh((mat + np.swapaxes(mat, -1, -2)) / 2)
        tol = CONVEXITY_TOL * max(1.0, float(np.abs(eig).max()))
        if player.sense == "min":
            extreme, fails, requirement = eig[..., 0], eig[..., 0] < -tol, "convex"
        else:
            extreme, fails, requirement = eig[..., -1], eig[..., -1] > tol, "concave"
        out.append(BlockScan(player.name, player.sense, requirement, player.symbols, block, eig, extreme, fails, tol))
    return tuple(out)


@dataclass(frozen=True)
class FailurePoint:
    """A point where a player's convexity (or concavity) requirement fails.

    Attributes:
        player: the player's name.
        requirement: ``"convex"`` (min player) or ``"concave"`` (max player).
        names: state names, in state order.
        point: the coordinates, in state order.
        eigenvalue: the deciding eigenvalue of the player's Hessian block there
            (lambda_min < 0 for a minimiser, lambda_max > 0 for a maximiser),
            evaluated from the sympy Hessian at 30 significant digits.
    """

    player: str
    requirement: str
    names: tuple[str, ...]
    point: tuple[float, ...]
    eigenvalue: float

    def as_dict(self) -> dict:
        return {"player": self.player, "requirement": self.requirement,
                "point": dict(zip(self.names, self.point)), "eigenvalue": self.eigenvalue}


@dataclass(frozen=True)
class BlockConvexity:
    """Convexity (min player) or concavity (max player) of g in one player's coordinates.

    Attributes:
        player: the player's name.
        sense: ``"min"`` or ``"max"``.
        requirement: ``"convex"`` for a minimiser, ``"concave"`` for a maximiser.
        symbols: the player's state symbols.
        block: the symbolic Hessian block D2_{x_p x_p} g (parameters symbolic).
        eigenvalues: its eigenvalues on the grid, ascending, shape (*grid, k).
        extreme: the deciding eigenvalue on the grid (lambda_min for a
            minimiser, lambda_max for a maximiser), shape of the grid.
        fails: where the requirement fails (``extreme`` beyond ``tolerance``
            on the wrong side of 0), shape of the grid.
        failure_fraction: fraction of grid points where it fails.
        tolerance: eigenvalues within this of 0 count as 0.
    """

    player: str
    sense: str
    requirement: str
    symbols: tuple[sp.Symbol, ...]
    block: sp.ImmutableMatrix
    eigenvalues: np.ndarray
    extreme: np.ndarray
    fails: np.ndarray
    failure_fraction: float
    tolerance: float

    @property
    def holds(self) -> bool:
        """True when the requirement holds at every grid point."""
        return not bool(self.fails.any())


@dataclass(frozen=True)
class ProfileObjective:
    """The profile objective P(theta) = max_omega g(theta, omega) and its convexity.

    Attributes:
        min_names: names of the theta coordinates (all minimisers' coordinates).
        max_names: names of the omega coordinates.
        axes: the theta grid, one 1-D array per theta coordinate.
        values: P on the theta grid (refined by a local optimiser).
        grid_values: P from the (theta, omega) grid alone.
        argmax: a maximising omega per theta grid point, shape (*theta grid, |omega|).
        curvature: smallest eigenvalue of the second-difference Hessian of P at
            interior grid points (in one dimension the second difference
            (P[i+1] - 2 P[i] + P[i-1]) / h^2); NaN on the boundary.
        nonconvex: where ``curvature < -tolerance``.
        nonconvex_fraction: fraction of interior grid points that are non-convex.
        tolerance: numerical error bound of the curvature.
        failures: up to a few concrete thetas with their curvature, as
            ``(theta tuple, curvature)``, the most negative first.
    """

    min_names: tuple[str, ...]
    max_names: tuple[str, ...]
    axes: tuple[np.ndarray, ...]
    values: np.ndarray
    grid_values: np.ndarray
    argmax: np.ndarray
    curvature: np.ndarray
    nonconvex: np.ndarray
    nonconvex_fraction: float
    tolerance: float
    failures: tuple[tuple[tuple[float, ...], float], ...]

    @property
    def convex(self) -> bool:
        """True when no second difference of P is negative beyond the tolerance."""
        return not bool(self.nonconvex.any())


@dataclass(frozen=True)
class ConvexityReport:
    """Convexity findings of a model on a box.

    Attributes:
        model_name: the model's name.
        parameters: the parameter values used.
        state_names: the state coordinates, in order.
        box: ``{name: (lo, hi)}``.
        axes: the grid, one 1-D array per state coordinate (``indexing='ij'``).
        objective: g on the grid.
        blocks: one :class:`BlockConvexity` per player.
        failures: concrete points where a requirement fails, verified from the
            sympy Hessian (a few per player).
        profile: the profile objective for a game with both a minimiser and a
            maximiser, else None.
    """

    model_name: str
    parameters: Mapping[str, float]
    state_names: tuple[str, ...]
    box: Mapping[str, tuple[float, float]]
    axes: tuple[np.ndarray, ...]
    objective: np.ndarray
    blocks: tuple[BlockConvexity, ...]
    failures: tuple[FailurePoint, ...]
    profile: ProfileObjective | None

    def to_dict(self) -> dict:
        """JSON-friendly summary (no grids)."""
        out = {
            "players": [
                {"player": b.player, "sense": b.sense, "requirement": b.requirement,
                 "holds_on_grid": b.holds, "failure_fraction": b.failure_fraction,
                 "extreme_eigenvalue": float(b.extreme.min() if b.sense == "min" else b.extreme.max()),
                 "hessian_block": _block_strings(b.block)}
                for b in self.blocks
            ],
            "failures": [f.as_dict() for f in self.failures],
        }
        if self.profile is not None:
            p = self.profile
            out["profile"] = {
                "theta": list(p.min_names), "omega": list(p.max_names), "convex": p.convex,
                "nonconvex_fraction": p.nonconvex_fraction, "tolerance": p.tolerance,
                "failures": [{"point": dict(zip(p.min_names, x)), "curvature": c} for x, c in p.failures],
            }
        else:
            out["profile"] = None
        return out


def _tidy(v) -> float:
    """A grid coordinate rounded to 12 significant digits (drops linspace round-off)."""
    return float(f"{float(v):.12g}")


def _block_strings(block, limit: int = 400):
    """The block's entries as strings, or None when they are too long to be useful."""
    rows = [[str(e) for e in block.row(i)] for i in range(block.rows)]
    return rows if max(len(e) for r in rows for e in r) <= limit else None


def _spread(indices: np.ndarray, score: np.ndarray, count: int) -> list[int]:
    """Up to ``count`` rows of ``indices``: the best ``score`` first, then farthest-point sampling."""
    if len(indices) == 0:
        return []
    chosen = [int(np.argmax(score))]
    dist = np.linalg.norm(indices - indices[chosen[0]], axis=1)
    while len(chosen) < min(count, len(indices)):
        k = int(np.argmax(dist))
        if dist[k] == 0:
            break
        chosen.append(k)
        dist = np.minimum(dist, np.linalg.norm(indices - indices[k], axis=1))
    return chosen


def exact_eigenvalues(model, block: sp.Matrix, point: Mapping) -> list[float]:
    """Eigenvalues (ascending) of a symbolic Hessian block at a point, at 30 digits.

    Args:
        model: the model (its parameter values are substituted).
        block: a symmetric sympy matrix in the state and parameter symbols.
        point: ``{state symbol: value}``.
    """
    subs = {**model.substitutions, **{s: sp.Float(float(v), _DIGITS) for s, v in point.items()}}
    entries = [[block[i, j].evalf(_DIGITS, subs=subs) for j in range(block.cols)] for i in range(block.rows)]
    with mpmath.workdps(_DIGITS):
        mat = mpmath.matrix([[mpmath.mpf(str(e)) for e in row] for row in entries])
        mat = (mat + mat.T) / 2
        eig = mpmath.eigsy(mat, eigvals_only=True)
        return sorted(float(e) for e in eig)


def _profile_curvature(values: np.ndarray, axes: tuple[np.ndarray, ...]) -> np.ndarray:
    """Smallest eigenvalue of the central second-difference Hessian at interior grid points."""
    d = values.ndim
    steps = [a[1] - a[0] for a in axes]
    inner = tuple(slice(1, -1) for _ in range(d))
    hess = np.empty(tuple(n - 2 for n in values.shape) + (d, d))

    def shifted(offsets):
        return values[tuple(slice(1 + o, values.shape[k] - 1 + o) for k, o in enumerate(offsets))]

    for a in range(d):
        e = [0] * d
        e[a] = 1
        hess[..., a, a] = (shifted(e) - 2 * values[inner] + shifted([-v for v in e])) / steps[a] ** 2
        for b in range(a + 1, d):
            pp, pm, mp, mm = ([0] * d for _ in range(4))
            pp[a], pp[b], pm[a], pm[b], mp[a], mp[b], mm[a], mm[b] = 1, 1, 1, -1, -1, 1, -1, -1
            mixed = (shifted(pp) - shifted(pm) - shifted(mp) + shifted(mm)) / (4 * steps[a] * steps[b])
            hess[..., a, b] = hess[..., b, a] = mixed
    out = np.full(values.shape, np.nan)
    out[inner] = np.linalg.eigvalsh(hess)[..., 0] if d > 1 else hess[..., 0, 0]
    return out


def analyze_convexity(model, *, box: Mapping | None = None, points: int | None = None,
                      max_points: int = 5) -> ConvexityReport:
    """Convexity of g per player and of the profile objective, on a grid over a box.

    Args:
        model: a :class:`~stochctl.models.Model`.
        box: ``{state name: (lo, hi)}`` overriding the model's domain.
        points: grid points per side (default 61, fewer in 3+ dimensions).
        max_points: at most this many concrete failure points per player
            (and for the profile).

    Returns:
        A :class:`ConvexityReport`.
    """
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 1:
        raise InputError(f"max_points must be an integer >= 1; got {max_points!r}")
    box = resolve_box(model, box)
    names = model.state_names
    n = resolve_points(points, len(names))
    axes = tuple(np.linspace(lo, hi, n) for lo, hi in box.values())
    g = objective_function(model)
    values = grid_values(g, axes)
    mesh = np.meshgrid(*axes, indexing="ij")

    blocks, failures = [], []
    for scan in scan_block_convexity(model, mesh):
        player = next(p for p in model.players if p.name == scan.player)
        block, extreme, fails, requirement = scan.block, scan.extreme, scan.fails, scan.requirement
        blocks.append(BlockConvexity(player.name, player.sense, requirement, player.symbols, block, scan.eigenvalues,
                                     extreme, fails, float(fails.mean()), scan.tolerance))
        idx = np.argwhere(fails)
        score = -player.sign * extreme[fails]
        found = 0
        for row in _spread(idx, score, 4 * max_points):
            if found == max_points:
                break
            x = tuple(_tidy(a[i]) for a, i in zip(axes, idx[row]))
            exact = exact_eigenvalues(model, block, dict(zip(model.state_symbols, x)))
            lam = exact[0] if player.sense == "min" else exact[-1]
            if player.sign * lam < 0:
                failures.append(FailurePoint(player.name, requirement, names, x, lam))
                found += 1

    profile = None
    min_idx = tuple(i for i, p in _owners(model) if p.sense == "min")
    max_idx = tuple(i for i, p in _owners(model) if p.sense == "max")
    if min_idx and max_idx:
        profile = _profile(g, axes, values, min_idx, max_idx, names, max_points)
    return ConvexityReport(model.name, dict(model.values), names, box, axes, values, tuple(blocks),
                           tuple(failures), profile)


def _owners(model):
    for p, sl in zip(model.players, model.player_slices()):
        for i in range(sl.start, sl.stop):
            yield i, p


def _profile(g, axes, values, min_idx, max_idx, names, max_points) -> ProfileObjective:
    """P(theta) = max_omega g on the theta grid and its second-difference curvature."""
    mm = minmax(g, axes, min_idx, max_idx, values=values)
    th_axes = tuple(axes[i] for i in min_idx)
    curvature = _profile_curvature(mm.profile, th_axes)
    scale = float(values.max() - values.min())
    lipschitz = _lipschitz(values, axes)
    value_err = 1e-12 * (1.0 + scale) + 10 * XTOL * lipschitz
    h = min(a[1] - a[0] for a in th_axes)
    tol = 4 * len(th_axes) * value_err / h**2
    interior = np.isfinite(curvature)
    nonconvex = interior & (curvature < -tol)
    idx = np.argwhere(nonconvex)
    chosen = _spread(idx, -curvature[nonconvex], max_points)
    fails = tuple(
        (tuple(_tidy(a[i]) for a, i in zip(th_axes, idx[k])), float(curvature[tuple(idx[k])]))
        for k in sorted(chosen, key=lambda k: curvature[tuple(idx[k])])
    )
    return ProfileObjective(tuple(names[i] for i in min_idx), tuple(names[i] for i in max_idx), th_axes,
                            mm.profile, mm.profile_grid, mm.response, curvature, nonconvex,
                            float(nonconvex.sum() / max(interior.sum(), 1)), tol, fails)


def _lipschitz(values: np.ndarray, axes) -> float:
    """Largest grid difference quotient of g: a Lipschitz estimate on the box."""
    out = 0.0
    for k, a in enumerate(axes):
        out = max(out, float(np.abs(np.diff(values, axis=k)).max() / (a[1] - a[0])))
    return out
