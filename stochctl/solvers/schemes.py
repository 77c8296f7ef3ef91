"""``solve(problem)``: the scheme that the problem calls for, and the schemes with their order and CFL condition.

    solve(problem, grid=None, *, steps=None, time=None, moves=None, points=None, boundary=None, **options)

Continuous time (HJB for one player, Isaacs for two), V_t + opt_u [L^u V + r] = 0 with V(T) = G:
the monotone finite differences :data:`EXPLICIT` or :data:`IMPLICIT` (``scheme`` option, else the
model's). Discrete time, V_n = opt_u E V_{n-1}(x'), V_0 = G, n = 1..steps: :data:`BELLMAN` (one
player) or :data:`BELLMAN_GAME` (two players, simultaneous or alternating ``moves``). Discrete time
when ``steps`` is given or ``time="discrete"``, otherwise the model's
:class:`~stochctl.models.SolveDefaults` decide; their grid, boundary, scheme, step and step count
apply to whatever the call leaves out.

Each :class:`Scheme` declares ``order`` (convergence order in the grid spacing h where V is
smooth), ``time_order`` (in dt; None when time is not discretised) and ``cfl``, its monotonicity
condition (:class:`Monotonicity`): a number that the solver keeps at or below its bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InputError
from ..models.solve_defaults import MOVES, TIMES
from ..symbolic.problem import ControlProblem
from .grid import Grid
from .solution import Solution


@dataclass(frozen=True)
class Monotonicity:
    """A scheme's monotonicity (CFL) condition: ``number(problem, grid, dt) <= bound``, stated by ``text``.

    ``dt=None`` evaluates the number at the step the scheme would take by default.
    """

    text: str
    number: Callable[[ControlProblem, Grid, float | None], float]
    bound: float = 1.0

    def __call__(self, problem, grid: Grid, dt: float | None = None) -> float:
        return float(self.number(_as_problem(problem), grid, dt))

    def holds(self, problem, grid: Grid, dt: float | None = None) -> bool:
        return self(problem, grid, dt) <= self.bound


@dataclass(frozen=True)
class Scheme:
    """A solver of one kind of problem.

    Attributes:
        name: ``"explicit"``, ``"implicit"``, ``"bellman"`` or ``"bellman-game"``.
        time: ``"continuous"`` or ``"discrete"``.
        players: numbers of players it solves.
        dimensions: state dimensions it solves.
        order: convergence order in the grid spacing h where the value is smooth.
        time_order: convergence order in dt (None: time is not discretised).
        cfl: its monotonicity condition.
        run: ``run(problem, grid, **options) -> Solution``.
        default_grid: ``default_grid(problem, points, boundary) -> Grid``.
        options: keyword options ``run`` takes besides ``problem`` and ``grid``.
    """

    name: str
    time: str
    players: tuple[int, ...]
    dimensions: tuple[int, ...]
    order: float
    time_order: float | None
    cfl: Monotonicity
    run: Callable[..., Solution]
    default_grid: Callable[..., Grid]
    options: tuple[str, ...]

    def __call__(self, problem, grid: Grid | None = None, **options) -> Solution:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise InputError(f"the {self.name} scheme ({self.time} time) has no option {unknown[0]!r}; "
                             f"its options: {', '.join(self.options)}")
        return self.run(_as_problem(problem), grid, **options)


def _as_problem(problem) -> ControlProblem:
    from .api import _as_problem as as_problem

    return as_problem(problem)


# ------------------------------------------------------------------ continuous time
def _continuous_grid(problem, points=None, boundary=None) -> Grid:
    from .api import default_grid

    return default_grid(problem, points=points, boundary=boundary)


def _explicit_number(problem, grid, dt) -> float:
    from .coefficients import evaluate_coefficients
    from .explicit import explicit_time_grid

    coeffs = evaluate_coefficients(problem, grid)
    if dt is None:
        times, _ = explicit_time_grid(problem.horizon, coeffs)
        dt = times[1] - times[0]
    return dt * coeffs.cfl_rate()


def _run_continuous(scheme: str):
    def run(problem, grid=None, **options):
        from .api import solve_continuous

        return solve_continuous(problem, grid, scheme=scheme, **options)

    return run


_CONTINUOUS_OPTIONS = ("horizon", "dt", "store_every", "tol", "max_policy_iterations", "progress", "num_threads",
                       "check_boundary", "boundary_factor")

EXPLICIT = Scheme(
    name="explicit", time="continuous", players=(1, 2), dimensions=(1, 2, 3), order=1.0, time_order=1.0,
    cfl=Monotonicity("dt * max_x sum_i (u_max |g_i| / h_i + u_max^2 eta m_max Sigma_ii / h_i^2) <= 1 "
                     "(default dt: 0.9 of the bound; a larger dt is refused)", _explicit_number),
    run=_run_continuous("explicit"), default_grid=_continuous_grid, options=_CONTINUOUS_OPTIONS)
"""Forward Euler with upwind drift and central diffusion (:mod:`stochctl.solvers.explicit`)."""

IMPLICIT = Scheme(
    name="implicit", time="continuous", players=(1,), dimensions=(1, 2), order=1.0, time_order=1.0,
    cfl=Monotonicity("none: I - dt L^u is an M-matrix for every dt > 0", lambda problem, grid, dt: 0.0),
    run=_run_continuous("implicit"), default_grid=_continuous_grid, options=_CONTINUOUS_OPTIONS)
"""Backward Euler with Howard policy iteration (:mod:`stochctl.solvers.implicit`)."""


# ------------------------------------------------------------------ discrete time
def _discrete_grid(problem, points=None, boundary=None) -> Grid:
    from .bellman import discrete_grid

    if boundary is not None:
        raise InputError(f"boundary {boundary!r} applies to continuous time; beyond its grid the discrete-time "
                         "solver extends the value by its quadratic fit")
    return discrete_grid(problem, points=points)


def _spread_number(problem, grid, dt) -> float:
    from .bellman import spread_number, step_coefficients

    if grid.ndim != 1:
        return 0.0
    ((_, b),) = step_coefficients(problem, grid)
    ctl = problem.controls[0]
    return spread_number(grid, b, float(ctl.u_min), float(ctl.u_max))


def _steps(problem, steps):
    if steps is None:
        steps = problem.model.solve_defaults.steps
    return int(problem.horizon) if steps is None else steps


def _run_bellman(problem, grid=None, *, steps=None, **options):
    from .bellman import solve_discrete

    return solve_discrete(problem, grid, steps=_steps(problem, steps), **options)


def _run_game(problem, grid=None, *, steps=None, moves=None, **options):
    from .bellman_game import solve_discrete_game

    moves = problem.model.solve_defaults.moves if moves is None else moves
    return solve_discrete_game(problem, grid, steps=_steps(problem, steps), moves=moves, **options)


BELLMAN = Scheme(
    name="bellman", time="discrete", players=(1,), dimensions=(1, 2), order=2.0, time_order=None,
    cfl=Monotonicity("4 b u / width <= 1 in 1-D: the noise sd of the smallest positive bracket step fits in a "
                     "quarter of the grid; no step condition (one level per training step)", _spread_number),
    run=_run_bellman, default_grid=_discrete_grid,
    options=("steps", "u_bracket", "xatol", "window", "symmetric", "store_every", "progress", "num_threads",
             "continuation"))
"""The Bellman recursion of the training iteration (:mod:`stochctl.solvers.bellman`); second order
in h from the piecewise-linear interpolant, exact in time."""

BELLMAN_GAME = Scheme(
    name="bellman-game", time="discrete", players=(2,), dimensions=(2,), order=2.0, time_order=None,
    cfl=Monotonicity("none enforced: one level per training step", lambda problem, grid, dt: 0.0),
    run=_run_game, default_grid=_discrete_grid,
    options=("steps", "moves", "u_points", "window", "store_every", "progress", "num_threads"))
"""The discrete Isaacs recursion of two-player training (:mod:`stochctl.solvers.bellman_game`);
second order in h from the bilinear interpolant, exact in time."""

ALL_SCHEMES = (EXPLICIT, IMPLICIT, BELLMAN, BELLMAN_GAME)
_CONTINUOUS = {s.name: s for s in (EXPLICIT, IMPLICIT)}


def choose_scheme(problem, *, steps=None, time: str | None = None, scheme: str | None = None,
                  moves: str | None = None) -> Scheme:
    """The scheme of ``problem``: discrete time if ``steps`` is given or ``time`` (else the model's
    ``solve_defaults.time``) says so; then BELLMAN or BELLMAN_GAME by the number of players, or the
    continuous ``scheme`` (else the model's)."""
    problem = _as_problem(problem)
    declared = problem.model.solve_defaults
    if time is not None and time not in TIMES:
        raise InputError(f"time must be one of {', '.join(TIMES)}; got {time!r}")
    if time == "continuous" and steps is not None:
        raise InputError(f"steps={steps!r} asks for discrete time; time='continuous' has a horizon, not steps")
    time = time or ("discrete" if steps is not None else declared.time)
    players = len(problem.players)
    if time == "discrete":
        if scheme is not None:
            raise InputError(f"scheme {scheme!r} applies to continuous time; the discrete-time solver has no scheme")
        if moves is not None and moves not in MOVES:
            raise InputError(f"moves must be one of {', '.join(MOVES)}; got {moves!r}")
        if players == 2:
            return BELLMAN_GAME
        if moves is not None:
            raise InputError(f"moves applies to two-player models; {problem.model.name!r} has one player")
        return BELLMAN
    if moves is not None:
        raise InputError(f"moves {moves!r} applies to discrete-time games; pass steps for discrete time")
    scheme = declared.scheme if scheme is None else scheme
    if scheme not in _CONTINUOUS:
        raise InputError(f"unknown scheme {scheme!r}; valid schemes: {', '.join(_CONTINUOUS)}")
    return _CONTINUOUS[scheme]


def solve(problem, grid: Grid | None = None, *, steps: int | None = None, time: str | None = None,
          moves: str | None = None, scheme: str | None = None, points=None, boundary=None,
          **options) -> Solution:
    """Solve ``problem`` (a ControlProblem or a Model) with the scheme it calls for (module docstring).

    Args:
        problem: the control problem.
        grid: the grid; default the scheme's default grid with ``points`` nodes per axis and
            ``boundary`` (continuous time only), from the model's solve defaults where not given.
        steps: training steps; giving them asks for discrete time (default: the model's, or its horizon).
        time: ``"continuous"`` or ``"discrete"`` (default: discrete if ``steps`` is given, else the model's).
        moves: two-player discrete games: ``"simultaneous"`` or ``"alternating"``.
        scheme: continuous time: ``"explicit"`` or ``"implicit"`` (default: the model's).
        options: options of the chosen scheme (:attr:`Scheme.options`).

    Returns:
        The :class:`Solution` that the chosen scheme returns.
    """
    problem = _as_problem(problem)
    chosen = choose_scheme(problem, steps=steps, time=time, scheme=scheme, moves=moves)
    if grid is None and (points is not None or boundary is not None):
        grid = chosen.default_grid(problem, points, boundary)
    elif grid is not None and (points is not None or boundary is not None):
        raise InputError("pass either a grid or its points and boundary, not both")
    if steps is not None:
        options["steps"] = steps
    if moves is not None:
        options["moves"] = moves
    return chosen(problem, grid, **options)


__all__ = ["solve", "choose_scheme", "Scheme", "Monotonicity", "EXPLICIT", "IMPLICIT", "BELLMAN", "BELLMAN_GAME",
           "ALL_SCHEMES"]
