"""Boxes, grids and the grid-plus-local-optimiser min-max engine of the analyses.

For a function h(x) on a box whose coordinates are split into outer indices O
and inner indices I, :func:`minmax` computes the profile and its minimum

    P(x_O) = max_{x_I} h(x_O, x_I),        min_{x_O} P(x_O),

first on a tensor grid, then refined: every inner maximum starts from the best
grid candidates (distinct discrete peaks) and is polished by a bounded local
optimiser inside the neighbouring grid cells (scipy ``minimize_scalar``
bounded Brent in one dimension, L-BFGS-B otherwise); the outer minimum is
polished the same way (Brent, or Nelder-Mead with bounds, because P is only
Lipschitz where the inner maximiser jumps). A refined value replaces the grid
value only when it is better, so refinement never loses accuracy.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from ..errors import InputError, NumericalError

#: Absolute tolerance of the local optimisers on the coordinates.
XTOL = 1e-10
#: Total grid size allowed for the default number of points per side.
_GRID_BUDGET = 250_000


def resolve_box(model, box: Mapping | None = None) -> dict[str, tuple[float, float]]:
    """The model's domain with the entries of ``box`` replacing it (validated).

    Args:
        model: a :class:`~stochctl.models.Model`.
        box: ``{state name: (lo, hi)}`` for some or all state coordinates.

    Returns:
        ``{state name: (lo, hi)}`` for every state coordinate, in state order.
    """
    out = {name: tuple(map(float, model.domain[name])) for name in model.state_names}
    for name, bounds in dict(box or {}).items():
        if name not in out:
            raise InputError(
                f"box: {name!r} is not a state symbol of model {model.name!r}; valid: {', '.join(out)}"
            )
        try:
            lo, hi = (float(v) for v in bounds)
        except (TypeError, ValueError):
            raise InputError(f"box {name}: expected two numbers (lo, hi); got {bounds!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InputError(f"box {name}: expected finite lo < hi; got ({lo!r}, {hi!r})")
        out[name] = (lo, hi)
    return out


def resolve_points(points, dim: int) -> int:
    """Grid points per side: the given number (validated) or a default by dimension.

    The default is 61 per side, fewer in three or more dimensions so that the
    whole grid stays within about 250 000 points.
    """
    if points is None:
        return max(5, min(61, int(_GRID_BUDGET ** (1.0 / max(dim, 1)))))
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 5:
        raise InputError(f"points per side must be an integer >= 5; got {points!r}")
    if int(points) ** dim > 20 * _GRID_BUDGET:
        raise InputError(
            f"points per side {points} gives {int(points) ** dim} grid points in {dim} dimensions; "
            f"expected at most {20 * _GRID_BUDGET}"
        )
    return int(points)


@functools.lru_cache(maxsize=16)
def objective_function(model) -> Callable:
    """Vectorised numpy g(*state) with the model's parameter values bound (cached per model)."""
    raw = model.lambdify(model.objective, params=True)
    values = model.parameter_values

    def g(*state):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return np.asarray(raw(*state, *values), dtype=float)

    return g


def grid_values(h: Callable, axes: tuple[np.ndarray, ...]) -> np.ndarray:
    """h on the tensor grid of ``axes`` (``indexing='ij'``), checked finite."""
    mesh = np.meshgrid(*axes, indexing="ij")
    values = np.broadcast_to(h(*mesh), mesh[0].shape).astype(float)
    if not np.all(np.isfinite(values)):
        idx = np.unravel_index(np.argmin(np.isfinite(values)), values.shape)
        where = ", ".join(f"{a[i]:.6g}" for a, i in zip(axes, idx))
        raise NumericalError(f"the objective is not finite at the grid point ({where}); choose a smaller box")
    return values


def _distinct_peaks(values: np.ndarray, count: int, scan: int = 64) -> list[tuple[int, ...]]:
    """Indices of up to ``count`` largest entries, no two within one grid cell of each other."""
    order = np.argsort(values, axis=None)[::-1][:scan]
    chosen: list[np.ndarray] = []
    for flat in order:
        idx = np.array(np.unravel_index(flat, values.shape))
        if all(np.max(np.abs(idx - c)) > 1 for c in chosen):
            chosen.append(idx)
            if len(chosen) == count:
                break
    return [tuple(int(i) for i in c) for c in chosen]


def _cell(axes, idx):
    """Bounds of the neighbouring grid cells around the grid point ``idx``."""
    return [(a[max(i - 1, 0)], a[min(i + 1, len(a) - 1)]) for a, i in zip(axes, idx)]


def _local_max(fun: Callable[[np.ndarray], float], x0: np.ndarray, bounds, *, smooth: bool):
    """Maximise ``fun`` near ``x0`` within ``bounds``: (value, point), never worse than x0."""
    best_x, best_v = np.array(x0, dtype=float), float(fun(np.asarray(x0, dtype=float)))
    if len(bounds) == 1:
        (a, b), = bounds
        res = optimize.minimize_scalar(lambda t: -fun(np.array([t])), bounds=(a, b), method="bounded",
                                       options={"xatol": XTOL, "maxiter": 200})
        trials = [np.array([res.x]), np.array([a]), np.array([b])]
    elif smooth:
        res = optimize.minimize(lambda x: -fun(x), best_x, method="L-BFGS-B", bounds=bounds,
                                options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 200})
        trials = [res.x]
    else:
        res = optimize.minimize(lambda x: -fun(x), best_x, method="Nelder-Mead", bounds=bounds,
                                options={"xatol": XTOL, "fatol": 1e-14, "maxiter": 400 * len(bounds)})
        trials = [res.x]
    for x in trials:
        v = float(fun(x))
        if np.isfinite(v) and v > best_v:
            best_x, best_v = np.array(x, dtype=float), v
    return best_v, best_x


@dataclass(frozen=True)
class MinMax:
    """Result of :func:`minmax`: min over the outer coordinates of the inner maximum.

    Attributes:
        value: refined min_{x_O} max_{x_I} h.
        grid_value: the same from the grid alone (before refinement).
        outer_point: the minimising x_O (empty when O is empty).
        inner_point: a maximising x_I at ``outer_point`` (empty when I is empty).
        profile: refined P(x_O) on the outer grid (shape of the outer grid; a
            0-d array when O is empty).
        profile_grid: P from the grid alone.
        response: the maximising x_I per outer grid point, shape (*outer grid, |I|).
    """

    value: float
    grid_value: float
    outer_point: np.ndarray
    inner_point: np.ndarray
    profile: np.ndarray
    profile_grid: np.ndarray
    response: np.ndarray


def minmax(h: Callable, axes: tuple[np.ndarray, ...], outer: tuple[int, ...], inner: tuple[int, ...],
           *, values: np.ndarray | None = None, candidates: int = 2) -> MinMax:
    """min over x_O of max over x_I of h on the tensor grid of ``axes``, refined.

    Args:
        h: vectorised function of all coordinates (in state order).
        axes: one 1-D grid per coordinate; the box is their hull.
        outer: indices of the minimised coordinates.
        inner: indices of the maximised coordinates.
        values: h on the full grid if already computed.
        candidates: grid peaks refined per inner (and the outer) problem.
    """
    dim = len(axes)
    if sorted(outer + inner) != list(range(dim)):
        raise InputError(f"outer {outer} and inner {inner} must partition the coordinates 0..{dim - 1}")
    if values is None:
        values = grid_values(h, axes)
    # order the grid as (outer..., inner...)
    full = np.transpose(values, outer + inner)
    outer_shape = full.shape[: len(outer)]
    inner_axes = tuple(axes[i] for i in inner)
    outer_axes = tuple(axes[i] for i in outer)

    def point(xo, xi):
        x = [0.0] * dim
        for k, i in enumerate(outer):
            x[i] = xo[k]
        for k, i in enumerate(inner):
            x[i] = xi[k]
        return x

    def inner_max(xo, slab=None):
        if not inner:
            return float(h(*point(xo, ()))), np.zeros(0)
        if slab is None:
            mesh = np.meshgrid(*inner_axes, indexing="ij")
            slab = np.broadcast_to(h(*point(xo, mesh)), mesh[0].shape)
            slab = np.where(np.isfinite(slab), slab, -np.inf)
        best_v, best_x = -np.inf, None
        for idx in _distinct_peaks(slab, candidates):
            x0 = np.array([a[i] for a, i in zip(inner_axes, idx)])
            v, x = _local_max(lambda xi: float(h(*point(xo, xi))), x0, _cell(inner_axes, idx), smooth=True)
            if v > best_v:
                best_v, best_x = v, x
        return best_v, best_x

    n_outer = int(np.prod(outer_shape)) if outer else 1
    flat = full.reshape(n_outer, -1)
    profile_grid = flat.max(axis=1)
    profile = np.empty(n_outer)
    response = np.empty((n_outer, len(inner)))
    for k in range(n_outer):
        idx = np.unravel_index(k, outer_shape) if outer else ()
        xo = [a[i] for a, i in zip(outer_axes, idx)]
        slab = flat[k].reshape(full.shape[len(outer):]) if inner else None
        profile[k], response[k] = inner_max(xo, slab)
    if not np.all(np.isfinite(profile)):
        raise NumericalError("the inner optimisation produced a non-finite value; choose a smaller box")
    profile = profile.reshape(outer_shape)
    profile_grid = profile_grid.reshape(outer_shape)
    response = response.reshape(*outer_shape, len(inner))

    if not outer:
        return MinMax(float(profile), float(profile_grid), np.zeros(0), response.reshape(-1),
                      profile, profile_grid, response)
    best_v, best_xo = np.inf, None
    for idx in _distinct_peaks(-profile, candidates):
        x0 = np.array([a[i] for a, i in zip(outer_axes, idx)])
        v, x = _local_max(lambda xo: -inner_max(xo)[0], x0, _cell(outer_axes, idx), smooth=False)
        if -v < best_v:
            best_v, best_xo = -v, x
    best_v_inner, best_xi = inner_max(best_xo)
    return MinMax(float(best_v_inner), float(profile_grid.min()), best_xo, best_xi,
                  profile, profile_grid, response)
