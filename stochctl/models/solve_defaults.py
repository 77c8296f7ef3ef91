"""How a model is solved when the caller does not say: :class:`SolveDefaults`.

A model declares whether it is solved in continuous time (the HJB equation of one player,
the Isaacs equation of two) or in discrete time (the Bellman recursion of its training
iteration), and the grid, boundary and time stepping that make its solve accurate.
:func:`stochctl.solvers.solve` reads these; options passed to it win. A TOML model declares
them in its ``[solver]`` table (:func:`from_solver_table`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import InputError

TIMES = ("continuous", "discrete")
"""Kinds of time a model is solved in by default."""

MOVES = ("simultaneous", "alternating")
"""Move orders of a two-player discrete game."""


def _points(value, what: str):
    if value is None:
        return None
    items = value if isinstance(value, (list, tuple)) else (value,)
    if not items or any(isinstance(n, bool) or not isinstance(n, int) or n < 3 for n in items):
        raise InputError(f"{what}: expected an integer of at least 3 nodes per axis (or one per axis); got {value!r}")
    return value if not isinstance(value, list) else tuple(value)


def _box(domain, what: str) -> dict:
    if not isinstance(domain, Mapping):
        raise InputError(f"{what}: expected a mapping of state name to (lo, hi); got {domain!r}")
    out = {}
    for name, box in domain.items():
        try:
            lo, hi = (float(v) for v in box)
        except (TypeError, ValueError):
            raise InputError(f"{what}.{name}: expected (lo, hi); got {box!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InputError(f"{what}.{name}: expected finite lo < hi; got {box!r}")
        out[str(name)] = (lo, hi)
    return out


@dataclass(frozen=True)
class SolveDefaults:
    """A model's defaults for :func:`stochctl.solvers.solve`.

    Continuous time solves V_t + opt_u [L^u V + r] = 0, V(T) = G on a grid; discrete time
    solves V_n(x) = opt_u E V_{n-1}(x'), V_0 = G, for ``steps`` training steps.

    Attributes:
        time: ``"continuous"`` (HJB/Isaacs) or ``"discrete"`` (Bellman).
        domain: continuous grid box per state, overriding the model's domain (others keep it).
        points: continuous grid nodes per axis (None: by dimension, 401 / 101 / 31).
        boundary: boundary condition on every face of the continuous grid.
        scheme: continuous time stepping, ``"explicit"`` or ``"implicit"``.
        dt: time step of ``scheme`` on the default grid (None: the scheme's own choice).
        store_every: keep every k-th time level of a solve on the default grid.
        discrete_domain: discrete grid box per state, overriding the model's domain.
        discrete_points: discrete grid nodes per axis (None: 401 in 1-D, 61 in 2-D).
        steps: training steps of a discrete solve (None: the horizon, rounded down).
        moves: move order of a two-player discrete game.
    """

    time: str = "continuous"
    domain: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    points: int | tuple[int, ...] | None = None
    boundary: str = "linear"
    scheme: str = "explicit"
    dt: float | None = None
    store_every: int = 1
    discrete_domain: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    discrete_points: int | tuple[int, ...] | None = None
    steps: int | None = None
    moves: str = "simultaneous"

    def __post_init__(self):
        if self.time not in TIMES:
            raise InputError(f"solve defaults: time must be one of {', '.join(TIMES)}; got {self.time!r}")
        if self.moves not in MOVES:
            raise InputError(f"solve defaults: moves must be one of {', '.join(MOVES)}; got {self.moves!r}")
        for name in ("boundary", "scheme"):
            if not isinstance(getattr(self, name), str):
                raise InputError(f"solve defaults: {name} must be a name; got {getattr(self, name)!r}")
        if self.dt is not None and (isinstance(self.dt, bool) or not isinstance(self.dt, (int, float))
                                    or not (math.isfinite(self.dt) and self.dt > 0)):
            raise InputError(f"solve defaults: dt must be a positive finite number; got {self.dt!r}")
        for name in ("store_every", "steps"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise InputError(f"solve defaults: {name} must be an integer >= 1; got {v!r}")
        object.__setattr__(self, "points", _points(self.points, "solve defaults: points"))
        object.__setattr__(self, "discrete_points", _points(self.discrete_points, "solve defaults: discrete_points"))
        object.__setattr__(self, "domain", _box(self.domain, "solve defaults: domain"))
        object.__setattr__(self, "discrete_domain", _box(self.discrete_domain, "solve defaults: discrete_domain"))

    def check_states(self, states, model: str) -> None:
        """Refuse a box of a state the model does not have."""
        for what in ("domain", "discrete_domain"):
            unknown = sorted(set(getattr(self, what)) - set(states))
            if unknown:
                raise InputError(f"model {model!r}: solve defaults {what} names {unknown[0]!r}, not a state; "
                                 f"states: {', '.join(states)}")


TABLE_KEYS = {"grid": "points", "scheme": "scheme", "dt": "dt", "store_every": "store_every",
              "boundary": "boundary", "steps": "steps"}
"""``[solver]`` keys of a TOML model that are solve defaults, and their field (``grid`` also sets
``discrete_points``; ``steps`` makes the model discrete)."""


def from_solver_table(table: Mapping, where: str = "[solver]") -> SolveDefaults:
    """The solve defaults of a TOML model's ``[solver]`` table (other keys are solver options)."""
    values = {}
    for key, name in TABLE_KEYS.items():
        if key in table:
            values[name] = tuple(table[key]) if isinstance(table[key], list) else table[key]
    if "points" in values:
        values["discrete_points"] = values["points"]
    if "steps" in values:
        values["time"] = "discrete"
    if isinstance(values.get("dt"), int) and not isinstance(values.get("dt"), bool):
        values["dt"] = float(values["dt"])
    try:
        return SolveDefaults(**values)
    except InputError as exc:
        raise InputError(f"{where}: {str(exc).removeprefix('solve defaults: ')}") from None


__all__ = ["SolveDefaults", "TIMES", "MOVES", "TABLE_KEYS", "from_solver_table"]
