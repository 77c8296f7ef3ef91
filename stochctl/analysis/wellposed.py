"""Well-posedness of the minimax problem: upper and lower values on a box.

With theta the coordinates of the minimising players and omega those of the
maximising players, on a box Theta x Omega,

    upper value  U = min_theta max_omega g(theta, omega),
    lower value  L = max_omega min_theta g(theta, omega),

and always L <= U. For continuous g on a compact box both are attained, and a
saddle point (theta*, omega*), with g(theta*, omega) <= g(theta*, omega*) <=
g(theta, omega*) for all theta, omega, exists iff U = L; it is then any theta*
attaining U together with any omega* attaining L. Each value is computed by
grid search refined by bounded local optimisers for the inner and the outer
problem (see :mod:`stochctl.analysis._minmax`), and the gap U - L is compared
with a tolerance that covers the optimisers' accuracy:

    tol = atol + rtol (max g - min g) + 10 xtol Lip(g),

xtol being the optimisers' coordinate tolerance and Lip(g) the largest grid
difference quotient of g (a value at a kink or a boundary optimum is off by at
most Lip(g) times the coordinate error). A one-player model has U = L = min g
(max g for a maximiser), attained at a minimiser.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, NumericalError
from ._minmax import XTOL, grid_values, minmax, objective_function, resolve_box, resolve_points

__all__ = ["WellPosednessReport", "analyze_wellposedness"]


@dataclass(frozen=True)
class WellPosednessReport:
    """Upper and lower values of the minimax problem on a box, and the saddle verdict.

    Attributes:
        model_name: the model's name.
        parameters: the parameter values used.
        state_names: the state coordinates, in order.
        box: ``{name: (lo, hi)}``.
        points: grid points per side of the search grid.
        min_names: the minimised coordinates (theta).
        max_names: the maximised coordinates (omega).
        upper_value: U = min_theta max_omega g.
        lower_value: L = max_omega min_theta g.
        gap: U - L (>= 0 up to ``tolerance``).
        tolerance: gaps up to this count as 0.
        saddle_point: whether a saddle point exists (``gap <= tolerance``).
        saddle: the saddle point in state order when it exists, else None.
        upper_point: (theta attaining U, a best response omega), in state order.
        lower_point: (a best response theta, omega attaining L), in state order.
        upper_grid_value: U from the grid alone.
        lower_grid_value: L from the grid alone.
    """

    model_name: str
    parameters: Mapping[str, float]
    state_names: tuple[str, ...]
    box: Mapping[str, tuple[float, float]]
    points: int
    min_names: tuple[str, ...]
    max_names: tuple[str, ...]
    upper_value: float
    lower_value: float
    gap: float
    tolerance: float
    saddle_point: bool
    saddle: tuple[float, ...] | None
    upper_point: tuple[float, ...]
    lower_point: tuple[float, ...]
    upper_grid_value: float
    lower_grid_value: float

    @property
    def value(self) -> float | None:
        """The value of the game (U = L) when a saddle point exists, else None."""
        return 0.5 * (self.upper_value + self.lower_value) if self.saddle_point else None

    def to_dict(self) -> dict:
        """JSON-friendly summary."""
        named = lambda x: dict(zip(self.state_names, x)) if x is not None else None  # noqa: E731
        return {
            "upper_value": self.upper_value,
            "lower_value": self.lower_value,
            "gap": self.gap,
            "tolerance": self.tolerance,
            "saddle_point": self.saddle_point,
            "saddle": named(self.saddle),
            "value": self.value,
            "upper_point": named(self.upper_point),
            "lower_point": named(self.lower_point),
            "theta": list(self.min_names),
            "omega": list(self.max_names),
        }


def analyze_wellposedness(model, *, box: Mapping | None = None, points: int | None = None,
                          rtol: float = 1e-7, atol: float = 1e-9) -> WellPosednessReport:
    """Upper value, lower value, their gap and the saddle point of g on a box.

    Args:
        model: a :class:`~stochctl.models.Model`.
        box: ``{state name: (lo, hi)}`` overriding the model's domain.
        points: grid points per side (default 61, fewer in 3+ dimensions).
        rtol: gap tolerance relative to the range of g on the box.
        atol: absolute gap tolerance.

    Returns:
        A :class:`WellPosednessReport`.
    """
    for name, v in (("rtol", rtol), ("atol", atol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0 and np.isfinite(v)):
            raise InputError(f"{name} must be a finite number >= 0; got {v!r}")
    box = resolve_box(model, box)
    names = model.state_names
    n = resolve_points(points, len(names))
    axes = tuple(np.linspace(lo, hi, n) for lo, hi in box.values())
    g = objective_function(model)
    values = grid_values(g, axes)

    owner_sense = [p.sense for p, sl in zip(model.players, model.player_slices()) for _ in range(sl.start, sl.stop)]
    theta = tuple(i for i, s in enumerate(owner_sense) if s == "min")
    omega = tuple(i for i, s in enumerate(owner_sense) if s == "max")

    upper = minmax(g, axes, theta, omega, values=values)
    lower = minmax(lambda *x: -g(*x), axes, omega, theta, values=-values)
    U, L = upper.value, -lower.value

    def assemble(idx_a, xa, idx_b, xb):
        x = [0.0] * len(names)
        for i, v in zip(idx_a, xa):
            x[i] = float(v)
        for i, v in zip(idx_b, xb):
            x[i] = float(v)
        return tuple(x)

    upper_point = assemble(theta, upper.outer_point, omega, upper.inner_point)
    lower_point = assemble(omega, lower.outer_point, theta, lower.inner_point)
    scale = float(values.max() - values.min())
    lipschitz = max(float(np.abs(np.diff(values, axis=k)).max() / (a[1] - a[0])) for k, a in enumerate(axes))
    tol = atol + rtol * scale + 10 * XTOL * lipschitz
    gap = U - L
    if gap < -tol:
        raise NumericalError(
            f"lower value {L:.10g} exceeds upper value {U:.10g} beyond the tolerance {tol:.3g}; "
            "the optimisation did not converge, increase the grid points"
        )
    saddle_ok = gap <= tol
    saddle = assemble(theta, upper.outer_point, omega, lower.outer_point) if saddle_ok else None
    return WellPosednessReport(
        model.name, dict(model.values), names, box, n, tuple(names[i] for i in theta),
        tuple(names[i] for i in omega), float(U), float(L), float(gap), float(tol), bool(saddle_ok), saddle,
        upper_point, lower_point, float(upper.grid_value), float(-lower.grid_value),
    )
