"""Feedback policies on a grid, as the Monte Carlo simulations read them.

A :class:`GridPolicy` holds each control u_p(t, x) (and m_p(t, x) under batch control) on a uniform
tensor grid, piecewise constant in time (on [t_j, t_{j+1}) the level stored at t_j), read by
multilinear interpolation in space clamped to the grid's box, as :meth:`Solution.control_at` does;
:func:`as_policy` turns a Solution or constant multipliers into one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputError
from ..symbolic.problem import ControlProblem
from . import _mc_kernels
from .solution import Solution


@dataclass(frozen=True)
class GridPolicy:
    """A feedback policy on a uniform tensor grid, piecewise constant in time.

    Attributes:
        names: state coordinate names, in the problem's order.
        lower, upper: the grid's box.
        points: grid points per axis (at least 2).
        level_times: start time of each policy level, ascending, first 0.
        controls: control name (``u_<player>``, ``m_<player>``) -> array of
            shape (levels, *points).
        horizon: final time T.
        steps: number of time steps of the grid the policy came from (the
            default Euler step count), or None.
    """

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    points: tuple[int, ...]
    level_times: np.ndarray
    controls: Mapping[str, np.ndarray] = field(repr=False)
    horizon: float
    steps: int | None = None

    def __post_init__(self):
        d = len(self.names)
        lower = np.asarray(self.lower, dtype=float).reshape(-1)
        upper = np.asarray(self.upper, dtype=float).reshape(-1)
        points = tuple(int(n) for n in self.points)
        if lower.size != d or upper.size != d or len(points) != d:
            raise InputError(f"policy grid: expected {d} bounds and point counts; got "
                             f"lower={lower.tolist()}, upper={upper.tolist()}, points={points}")
        if not (np.all(np.isfinite(lower)) and np.all(np.isfinite(upper)) and np.all(lower < upper)):
            raise InputError(f"policy grid: need finite lower < upper; got lower={lower.tolist()}, "
                             f"upper={upper.tolist()}")
        if min(points) < 2:
            raise InputError(f"policy grid: need at least 2 points per axis; got {points}")
        times = np.asarray(self.level_times, dtype=float).reshape(-1)
        horizon = float(self.horizon)
        if not (math.isfinite(horizon) and horizon > 0):
            raise InputError(f"policy horizon must be a positive number; got {self.horizon!r}")
        if times.size == 0 or times[0] != 0.0 or np.any(np.diff(times) <= 0) or times[-1] >= horizon:
            raise InputError(f"policy level_times must increase from 0 and stay below the horizon "
                             f"{horizon:g}; got {times.tolist()[:6]}")
        controls = {}
        for name, arr in dict(self.controls).items():
            a = np.asarray(arr, dtype=float)
            if a.shape != (times.size, *points):
                raise InputError(f"policy control {name!r}: expected shape {(times.size, *points)}; got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise InputError(f"policy control {name!r} has non-finite entries")
            a = a.view()
            a.flags.writeable = False
            controls[name] = a
        if not controls:
            raise InputError("policy has no controls")
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "level_times", times)
        object.__setattr__(self, "controls", controls)
        object.__setattr__(self, "horizon", horizon)

    # ---------------------------------------------------------- constructors
    @classmethod
    def from_solution(cls, solution) -> "GridPolicy":
        """The policy of a grid-solver :class:`Solution` (every stored policy level)."""
        grid = solution.grid
        axes = [np.asarray(a, dtype=float) for a in grid.axes]
        for name, a in zip(grid.names, axes):
            step = a[1] - a[0]
            if not np.allclose(np.diff(a), step, rtol=1e-9, atol=0.0):
                raise InputError(f"solution grid axis {name!r} is not uniform")
        controls = {k: np.asarray(v) for k, v in solution.controls.items()}
        levels = next(iter(controls.values())).shape[0]
        times = np.asarray(solution.times, dtype=float)
        stored = np.asarray(solution.stored, dtype=np.int64)
        return cls(
            names=tuple(grid.names),
            lower=np.array([a[0] for a in axes]),
            upper=np.array([a[-1] for a in axes]),
            points=tuple(a.size for a in axes),
            level_times=times[stored[:levels]] - times[0],
            controls=controls,
            horizon=float(times[-1] - times[0]),
            steps=times.size - 1,
        )

    @classmethod
    def constant(cls, problem: ControlProblem, u, *, horizon: float | None = None) -> "GridPolicy":
        """Constant multipliers (and batch controls), on the problem's domain.

        Args:
            problem: the control problem.
            u: one multiplier for every player, or a mapping from player name or
                control name (``u_<player>``, ``m_<player>``) to its value. Under
                batch control m_p defaults to 1/batch_size of that player, clipped
                to the batch range.
            horizon: final time (default: the problem's).
        """
        values = _constant_values(problem, u)
        return cls.open_loop(problem, [0.0], {k: [v] for k, v in values.items()}, horizon=horizon)

    @classmethod
    def open_loop(cls, problem: ControlProblem, times, u, *, horizon: float | None = None) -> "GridPolicy":
        """A schedule u(t) that ignores the state: value ``u[j]`` on [times[j], times[j+1]).

        Args:
            problem: the control problem.
            times: level start times, ascending from 0.
            u: array of values (every player), or a mapping from player or control
                name to its array of values (missing batch controls: 1/batch_size).
            horizon: final time (default: the problem's).
        """
        times = np.asarray(times, dtype=float).reshape(-1)
        if isinstance(u, Mapping):
            schedule = {k: np.asarray(v, dtype=float).reshape(-1) for k, v in u.items()}
        else:
            arr = np.asarray(u, dtype=float).reshape(-1)
            schedule = {c.player.name: arr for c in problem.controls}
        for k, v in schedule.items():
            if v.size != times.size:
                raise InputError(f"open-loop schedule {k!r}: expected {times.size} values (one per time); got {v.size}")
        per_level = [_constant_values(problem, {k: v[j] for k, v in schedule.items()}) for j in range(times.size)]
        names = tuple(problem.model.state_names)
        lower = np.array([problem.model.domain[n][0] for n in names])
        upper = np.array([problem.model.domain[n][1] for n in names])
        shape = (2,) * len(names)
        controls = {
            key: np.stack([np.full(shape, level[key]) for level in per_level]) for key in per_level[0]
        }
        return cls(names, lower, upper, shape, times, controls,
                   float(problem.horizon if horizon is None else horizon))

    # --------------------------------------------------------------- access
    @property
    def spacing(self) -> np.ndarray:
        return (self.upper - self.lower) / (np.asarray(self.points) - 1)

    def with_constant(self, problem: ControlProblem, u) -> "GridPolicy":
        """A copy in which some controls are replaced by constants (same keys as :meth:`constant`)."""
        if not isinstance(u, Mapping):
            raise InputError(f"with_constant expects a mapping of control or player names to values; got {u!r}")
        values = _constant_values(problem, u, fill=False)
        controls = dict(self.controls)
        for key, v in values.items():
            controls[key] = np.full((self.level_times.size, *self.points), v)
        return replace(self, controls=controls)

    def level_at(self, t) -> np.ndarray:
        """Index of the level in force at time(s) t: the last level starting at or before t."""
        t = np.asarray(t, dtype=float)
        tol = 1e-9 * max(self.horizon, 1.0)
        return np.clip(np.searchsorted(self.level_times, t + tol, side="right") - 1, 0, self.level_times.size - 1)

    @functools.cached_property
    def table(self) -> np.ndarray:
        """Every control stacked, (controls, levels, grid points), in the order of ``controls``."""
        return np.ascontiguousarray(np.stack([a.reshape(self.level_times.size, -1) for a in self.controls.values()]))

    @functools.cached_property
    def flat(self) -> np.ndarray:
        """(controls, levels): the value of each level of :attr:`table` constant in space, else NaN."""
        tab = self.table
        const = np.all(tab == tab[:, :, :1], axis=2)
        return np.where(const, tab[:, :, 0], np.nan)

    def _grid_arrays(self):
        """(lower corner, inverse spacings, points, C-order strides) of the grid, as the kernels take them."""
        npts = np.asarray(self.points, dtype=np.int64)
        strides = np.array([int(np.prod(npts[j + 1:])) for j in range(npts.size)], dtype=np.int64)
        return self.lower.copy(), 1.0 / self.spacing, npts, strides

    def index(self, name: str) -> int:
        """Position of control ``name`` in :attr:`table`."""
        if name not in self.controls:
            raise InputError(f"unknown control {name!r}; valid: {', '.join(self.controls)}")
        return list(self.controls).index(name)

    def at(self, name: str, points, t=0.0) -> np.ndarray:
        """Control ``name`` at ``points`` (shape (n, d) or (d,)) and time(s) ``t``."""
        c = self.index(name)
        pts = np.atleast_2d(np.asarray(points, dtype=float))
        if pts.shape[1] != len(self.names):
            raise InputError(f"points must have {len(self.names)} coordinates ({', '.join(self.names)}); "
                             f"got shape {pts.shape}")
        levels = np.broadcast_to(self.level_at(t), (pts.shape[0],)).astype(np.int64)
        out = np.empty(pts.shape[0])
        _mc_kernels.interp_points(self.table, c, np.ascontiguousarray(levels), *self._grid_arrays(),
                                  np.ascontiguousarray(pts), out)
        return out


def _control_keys(problem: ControlProblem) -> list[str]:
    keys = []
    for c in problem.controls:
        keys.append(f"u_{c.player.name}")
        if c.batch is not None:
            keys.append(f"m_{c.player.name}")
    return keys


def _canonical_key(problem: ControlProblem, key: str) -> str:
    names = [c.player.name for c in problem.controls]
    return f"u_{key}" if key in names else key


def _constant_values(problem: ControlProblem, u, *, fill: bool = True) -> dict[str, float]:
    """Validated constant controls by control name (module docstring of GridPolicy.constant)."""
    if isinstance(u, Mapping):
        given = {_canonical_key(problem, str(k)): v for k, v in u.items()}
    else:
        given = {f"u_{c.player.name}": u for c in problem.controls}
    valid = _control_keys(problem)
    for key in given:
        if key not in valid:
            players = [c.player.name for c in problem.controls]
            raise InputError(f"unknown control {key!r}; valid: {', '.join(players + valid)}")
    out = {}
    for c in problem.controls:
        name = c.player.name
        key = f"u_{name}"
        if key in given:
            v = _number(key, given[key])
            if not c.u_min <= v <= c.u_max:
                raise InputError(f"{key} must lie in [{c.u_min:g}, {c.u_max:g}]; got {v:g}")
            out[key] = v
        elif fill:
            raise InputError(f"constant policy: missing a value for {key}")
        if c.batch is not None:
            key = f"m_{name}"
            if key in given:
                v = _number(key, given[key])
                if not c.batch.m_min * (1 - 1e-12) <= v <= c.batch.m_max * (1 + 1e-12):
                    raise InputError(f"{key} must lie in [{c.batch.m_min:g}, {c.batch.m_max:g}]; got {v:g}")
                out[key] = v
            elif fill:
                out[key] = min(max(1.0 / c.batch_size, c.batch.m_min), c.batch.m_max)
    return out


def _number(name, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{name} must be finite; got {value!r}")
    return v


def as_policy(problem: ControlProblem, policy) -> GridPolicy:
    """A :class:`GridPolicy` from a Solution, a GridPolicy, a number or a mapping of constants."""
    if isinstance(policy, GridPolicy):
        return policy
    if isinstance(policy, Solution):
        return GridPolicy.from_solution(policy)
    if isinstance(policy, (int, float, Mapping)) and not isinstance(policy, bool):
        return GridPolicy.constant(problem, policy)
    raise InputError(f"policy must be a Solution, a GridPolicy, a number or a mapping of constants; "
                     f"got {type(policy).__name__}")
