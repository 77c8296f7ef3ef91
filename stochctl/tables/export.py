"""Tables from solutions, and tables as CSV (functions bound as :class:`PolicyTable` methods)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .._io import atomic_path
from ..errors import InputError
from .spec import MULTIPLIER, TableAxis, TableValue


def from_solution(cls, solution, *, controls: Sequence[str] | None = None,
                  names: Mapping[str, str] | None = None, time_axis: str = "tau_remaining",
                  include_value: bool = False, include_convex: bool = False,
                  axis_info: Mapping[str, Mapping] | None = None,
                  metadata: Mapping | None = None):
    """Tabulate the optimal policy of a :class:`~stochctl.solvers.Solution`.

    ``solution.controls[c][j]`` is the policy on [t_k, t_{k+1}) with
    k = stored[j]. The table's first axis is the time to go,
    ``tau_remaining = T - t_k`` (increasing, so the levels are reversed),
    with a row at 0 holding the last stored level's policy (it stays in
    force until T when every level is stored; with ``store_every`` > 1
    the steps after the last stored level are not kept and this row
    repeats that level), followed by the grid axes. With
    ``time_axis="t"`` the first axis is t_k itself.

    Args:
        solution: the solved problem.
        controls: which controls (default: all, ``u_<player>`` and
            ``m_<player>``).
        names: control name -> value name. Default: the control name, or
            for a single player just ``u`` (and ``m``).
        time_axis: ``"tau_remaining"`` (default) or ``"t"``.
        include_value: also tabulate the value function ``V`` (V(T) at
            tau_remaining = 0).
        include_convex: also tabulate each player's convexity map
            (1 where the clipped-ratio rule applies, 0 where the policy is
            bang-bang), named ``convex`` or ``convex_<player>``.
        axis_info: axis name -> dict of units/long_name/estimator/extrapolation/
            role/from_trainer. Defaults: the time axis is ``time_to_go`` with
            from_trainer ``eta*steps_left`` (t = k eta), ``a*eta*steps_left``
            for the dimensionless local-quadratic model, ``steps_left`` for a
            discrete-time solution; state axes have role ``state`` and no
            from_trainer (a trainer cannot know a model's state unless told
            how), except the local model's ``y`` = ``grad_norm/sqrt(a*eta*s2)``.
        metadata: extra metadata, e.g. ``{"refinement_error": 3e-3}``.
    """
    if time_axis not in ("tau_remaining", "t"):
        raise InputError(f"time_axis must be 'tau_remaining' or 't'; got {time_axis!r}")
    times = np.asarray(solution.times, dtype=np.float64)
    K = times.size - 1
    stored = np.asarray(getattr(solution, "stored", np.arange(K + 1)), dtype=np.int64)
    grid = solution.grid
    grid_names, grid_axes = list(grid.names), [np.asarray(a, dtype=np.float64) for a in grid.axes]
    horizon = float(times[-1])
    players = list(getattr(solution, "u_bounds", {}) or {})
    sol_meta = dict(getattr(solution, "metadata", {}) or {})
    all_controls = dict(solution.controls)
    chosen = list(all_controls) if controls is None else list(controls)
    unknown = [c for c in chosen if c not in all_controls]
    if unknown or not chosen:
        raise InputError(f"unknown control(s) {unknown}; the solution has {sorted(all_controls)}")

    def default_name(key):
        kind, _, player = key.partition("_")
        return kind if len(players) == 1 and player == players[0] else key

    names = {c: default_name(c) for c in chosen} | dict(names or {})

    def arrange(levels):
        """Policy levels j = 0..len(stored)-2 -> rows in increasing axis order."""
        if time_axis == "t":
            return levels
        return np.concatenate([levels[-1:], levels[::-1]], axis=0)

    t_axis = times[stored[:-1]] if time_axis == "t" else horizon - times[stored[::-1]]
    vals = []
    for c in chosen:
        kind, _, player = c.partition("_")
        if kind == "u" and player in players:
            lo, hi = solution.u_bounds[player]
            units, long = MULTIPLIER, f"optimal learning-rate multiplier of player {player}"
        elif kind == "m" and player in sol_meta.get("batch_control", {}):
            bc = sol_meta["batch_control"][player]
            lo, hi = 1.0 / bc["b_max"], 1.0 / bc["b_min"]
            units, long = "1/samples", f"optimal inverse batch size of player {player}"
        else:
            raise InputError(f"cannot tell the valid range of control {c!r}; expected u_<player> or "
                             f"m_<player> with players {players}")
        levels = np.asarray(all_controls[c], dtype=np.float64)
        tol = 1e-9 * (hi - lo)
        if levels.min() < lo - tol or levels.max() > hi + tol:
            raise InputError(f"control {c!r} leaves [{lo}, {hi}]: range [{levels.min()}, {levels.max()}]")
        vals.append(TableValue(names[c], arrange(np.clip(levels, lo, hi)), units=units,
                               valid_range=(lo, hi), long_name=long))
    if include_value:
        V = np.asarray(solution.values, dtype=np.float64)
        vals.append(TableValue("V", V[:-1] if time_axis == "t" else V[::-1], units="cost",
                               valid_range=(-math.inf, math.inf), long_name="value function"))
    if include_convex:
        for player, conv in (getattr(solution, "convex", {}) or {}).items():
            name = "convex" if len(players) == 1 else f"convex_{player}"
            vals.append(TableValue(name, arrange(np.asarray(conv, dtype=np.float64)), units="1",
                                   valid_range=(0.0, 1.0), fallback=0.0,
                                   long_name=f"1 where player {player}'s clipped-ratio rule applies, "
                                             "0 where the policy is bang-bang"))
    problem = solution.problem if isinstance(solution.problem, str) else sol_meta.get("model")
    info = {}
    local = problem == "local-quadratic"  # dimensionless: time a eta k, state in noise units
    if local:
        info["y"] = {"long_name": "distance to the minimum in noise units, |x| sqrt(a / (eta s^2))",
                     "estimator": "|grad|/sqrt(a*eta*s^2)", "from_trainer": "grad_norm/sqrt(a*eta*s2)"}
    for key, extra in (axis_info or {}).items():
        info[key] = {**info.get(key, {}), **extra}
    # the time axis: the model's time is t = k eta (DESIGN section 1), the local model's a eta k
    clock = "a*eta" if local else "eta"
    if time_axis == "tau_remaining":
        t_defaults = {"long_name": "time to go (horizon minus time)", "estimator": f"{clock}*(K-k)",
                      "role": "time_to_go", "from_trainer": f"{clock}*steps_left"}
    else:
        t_defaults = {"long_name": "time", "estimator": f"{clock}*k", "role": "parameter"}
    t_name = time_axis
    if sol_meta.get("discrete") and time_axis == "tau_remaining":
        # a discrete-time solution's time is the step index: the axis counts the steps left
        t_name = "steps_left"
        t_defaults = {"long_name": "training steps left; the value at n is the policy with n steps left",
                      "estimator": "K-k", "role": "time_to_go", "from_trainer": "steps_left"}
    ax = [TableAxis(t_name, t_axis, **{**t_defaults, **info.get(t_name, {})})]
    for n, g in zip(grid_names, grid_axes):
        ax.append(TableAxis(n, g, **{"long_name": f"state {n}", "role": "state", **info.get(n, {})}))
    diag = dict(getattr(solution, "diagnostics", {}) or {})
    scalar = (bool, int, float, str, np.integer, np.floating)
    meta = {
        "problem": problem,
        "parameters": sol_meta.get("parameters"),
        "eta": sol_meta.get("eta"),
        "horizon": horizon,
        "scheme": diag.get("scheme"),
        "grid": {"names": grid_names, "lower": list(getattr(grid, "lower", [])),
                 "upper": list(getattr(grid, "upper", [])), "points": list(getattr(grid, "points", [])),
                 "boundary": [list(b) for b in getattr(grid, "boundary", [])],
                 "time_steps": K, "time_levels": int(stored.size)},
        "solution": {k: v for k, v in sol_meta.items() if k not in ("parameters",)},
        "diagnostics": {k: v for k, v in diag.items() if isinstance(v, scalar)},
        **dict(metadata or {}),
    }
    return cls.from_arrays(ax, vals, metadata=meta, history="built from a Solution")


def _csv_rows(self, index):
    """The CSV lines (without newline) of the grid nodes with flat indices ``index``."""
    shape = tuple(a.breakpoints.size for a in self.axes)
    nodes = np.unravel_index(np.asarray(index), shape)
    cols = [a.breakpoints[i] for a, i in zip(self.axes, nodes)] + [v.data[nodes] for v in self.values]
    return [",".join(repr(float(x)) for x in row) for row in zip(*cols)]


def csv_size(self, sample: int = 2000) -> int:
    """Estimated size in bytes of :meth:`to_csv`'s file: header plus rows x the mean length of up to
    ``sample`` evenly spaced rows (exact when the table has at most ``sample`` nodes)."""
    n = int(np.prod([a.breakpoints.size for a in self.axes]))
    index = np.unique(np.linspace(0, n - 1, min(n, sample)).round().astype(np.int64))
    mean = np.mean([len(r) + 1 for r in _csv_rows(self, index)])
    return len(",".join(self.axis_names + self.value_names)) + 1 + int(round(mean * n))


def to_csv(self, path) -> Path:
    """Write the table as CSV in long form: one row per grid node.

    Columns: the axis coordinates, then each value, with a header row of
    names; numbers are written with round-trip precision.
    """
    path = Path(path)
    grids = np.meshgrid(*(a.breakpoints for a in self.axes), indexing="ij")
    cols = [g.reshape(-1) for g in grids] + [v.data.reshape(-1) for v in self.values]
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(self.axis_names + self.value_names) + "\n")
        for row in zip(*cols):
            f.write(",".join(repr(float(x)) for x in row) + "\n")
    return path
