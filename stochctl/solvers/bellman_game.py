"""``solve_discrete_game``: the discrete-time Isaacs recursion of two-player training on a 2-D grid.

Player x (the generator, minimising) and player y (the discriminator, maximising) step with
multipliers u_x in [u_min, u_max]_x and u_y in [u_min, u_max]_y:

    x' = x - u_x (a_x + b_x Z1),   a_x = eta dg/dx,    b_x = eta sqrt(m_x Sigma_xx),
    y' = y - u_y (a_y + b_y Z2),   a_y = -eta dg/dy,   b_y = eta sqrt(m_y Sigma_yy),

Z1, Z2 independent standard normals (one minibatch per player), terminal cost G.

Simultaneous moves (both gradients at (x, y)). Discrete time does not separate the players: the
joint expectation J(u_x, u_y) = E V_{n-1}(x', y') couples them, so the order of min and max
matters and both recursions are solved:

    upper value  V+_n = min_{u_x} max_{u_y} E V+_{n-1}(x', y'),
    lower value  V-_n = max_{u_y} min_{u_x} E V-_{n-1}(x', y').

They agree where the one-step game has a saddle point; the solution reports where and by how much
they differ. The controls are searched over ``u_points`` equally spaced values per player
(pure strategies on that grid).

Alternating moves (player x first, then y with the gradient at the moved x, as alternating GDA):

    W_n(x', y) = max_{u_y} E V_{n-1}(x', y - u_y (a_y(x', y) + b_y Z2)),
    V_n(x, y)  = min_{u_x} E W_n(x - u_x (a_x(x, y) + b_x Z1), y),

two one-dimensional steps along the grid lines, each by the one-player kernel (bracket + Newton).
Here the player who moves second sees the first move, so there is one value.

Expectations are exact for the representation V = quadratic (least-squares fit) + bilinear
interpolant extended linearly beyond the grid (:func:`~._bellman_kernels.hat_weights`).
"""

from __future__ import annotations

import time

import numpy as np

from ..errors import InputError, NumericalError
from ..symbolic.problem import ControlProblem
from . import _bellman_kernels_2d as kern2d
from .bellman import (DEFAULT_WINDOW, MAX_STORAGE_BYTES, LineStepper, _int_option, _positive, discrete_grid,
                      quadratic_fit_2d, step_coefficients)
from .coefficients import _evaluate
from .explicit import progress_bar
from .grid import Grid
from .solution import Solution

MOVES = ("simultaneous", "alternating")
DEFAULT_POINTS_2D = 61
DEFAULT_U_POINTS = 21


def _check_game(problem: ControlProblem, grid: Grid) -> None:
    names = [p.name for p in problem.players]
    if len(problem.players) != 2 or any(len(p.symbols) != 1 for p in problem.players):
        raise InputError(f"solve_discrete_game needs two players with one coordinate each; "
                         f"{problem.model.name!r} has players {', '.join(names)}")
    if [p.sense for p in problem.players] != ["min", "max"]:
        raise InputError("solve_discrete_game needs the minimising player first and the maximising one second; "
                         f"got senses {[p.sense for p in problem.players]}")
    if any(c.batch is not None for c in problem.controls):
        raise InputError("the discrete-time solver takes fixed batch sizes; batch control is a continuous-time "
                         "(HJB) option")
    if grid.ndim != 2:
        raise InputError(f"solve_discrete_game needs a 2-D grid; got {grid.ndim} axes")


def solve_discrete_game(problem, grid: Grid | None = None, *, steps: int, moves: str = "simultaneous",
                        u_points: int = DEFAULT_U_POINTS, window: float = DEFAULT_WINDOW, store_every: int = 1,
                        progress=None, num_threads: int | None = None) -> Solution:
    """Solve the discrete-time Isaacs recursion of a two-player model (module docstring).

    Args:
        problem: a two-player :class:`~stochctl.symbolic.ControlProblem` (or Model), one coordinate each.
        grid: 2-D uniform grid (default :func:`~stochctl.solvers.bellman.discrete_grid`: the
            model's domain, 61 x 61 nodes, unless its solve defaults say otherwise).
        steps: N, the number of training steps.
        moves: ``"simultaneous"`` (upper and lower values) or ``"alternating"`` (x moves first).
        u_points: simultaneous: values per player searched (pure strategies); alternating: the
            bracket of the one-dimensional search (then refined by Newton).
        window: hinges farther than ``window`` standard deviations are summed in closed form.
        store_every, progress, num_threads: as :func:`~stochctl.solvers.bellman.solve_discrete`.

    Returns:
        A :class:`Solution` on the step axis k = 0..N. Simultaneous: ``values`` is the upper value
        and ``u_<x>``, ``u_<y>`` its policy; ``lower_u_<x>``, ``lower_u_<y>`` the lower value's
        policy, the lower value at the stored levels in ``diagnostics["lower_values"]`` and the
        gap in ``diagnostics["value_gap"]`` (max |upper - lower| at k = 0) and
        ``diagnostics["gap_fraction"]`` (share of nodes where they differ by more than 1e-9).
    """
    from .api import _metadata, _threads, stored_levels

    if not isinstance(problem, ControlProblem):
        from .api import _as_problem

        problem = _as_problem(problem)
    if moves not in MOVES:
        raise InputError(f"moves must be one of {', '.join(MOVES)}; got {moves!r}")
    steps = _int_option("steps", steps, 1, 10**6)
    u_points = _int_option("u_points", u_points, 2, 1001)
    window = _positive("window", window)
    if grid is None:
        grid = discrete_grid(problem)
    elif not isinstance(grid, Grid):
        raise InputError(f"grid must be a Grid; got {type(grid).__name__}")
    _check_game(problem, grid)
    stored = stored_levels(steps, store_every)
    n_ctl = 4 if moves == "simultaneous" else 2
    per_level = grid.size * 8 * (1 + n_ctl + (1 if moves == "simultaneous" else 0))
    if per_level * len(stored) > MAX_STORAGE_BYTES:
        raise InputError(f"storing {len(stored)} levels of {grid.size} nodes needs "
                         f"{per_level * len(stored) / 2**30:.1f} GiB (limit {MAX_STORAGE_BYTES / 2**30:.0f} GiB); "
                         f"raise store_every")
    start = time.perf_counter()
    (ax, bx), (ay, by) = step_coefficients(problem, grid)
    (cx, cy) = problem.controls
    ux = np.linspace(cx.u_min, cx.u_max, u_points)
    uy = np.linspace(cy.u_min, cy.u_max, u_points)
    mesh = grid.mesh()
    V = _evaluate(problem.model, problem.terminal_cost, mesh, "the terminal cost", grid)
    xs, ys = (np.ascontiguousarray(a, dtype=float) for a in grid.axes)
    dx, dy = (float(h) for h in grid.spacing)
    nx, ny = grid.shape
    px, py = (p.name for p in problem.players)
    slot = {int(k): j for j, k in enumerate(stored)}
    values = np.empty((len(stored), nx, ny))
    values[-1] = V
    pshape = (len(stored) - 1, nx, ny)
    controls = {f"u_{px}": np.empty(pshape), f"u_{py}": np.empty(pshape)}
    convex = {px: np.zeros(pshape, dtype=bool), py: np.zeros(pshape, dtype=bool)}
    lower = None
    if moves == "simultaneous":
        controls[f"lower_u_{px}"] = np.empty(pshape)
        controls[f"lower_u_{py}"] = np.empty(pshape)
        lower = np.empty((len(stored), nx, ny))
        lower[-1] = V
        projector, basis = quadratic_fit_2d(mesh)
        VL = V.copy()
        bufs = [np.empty((nx, ny)) for _ in range(2)] + [np.empty((nx, ny), dtype=np.int64) for _ in range(4)]
    else:
        step_x = LineStepper(xs, u_bracket=max(u_points, 3), window=window)
        step_y = LineStepper(ys, u_bracket=max(u_points, 3), window=window)
    bar = progress_bar(steps, progress, f"bellman game ({moves})")
    with _threads(num_threads):
        try:
            for n in range(1, steps + 1):
                k = steps - n
                if moves == "simultaneous":
                    with np.errstate(over="ignore", invalid="ignore"):
                        q = projector @ V.ravel()
                        r = np.ascontiguousarray((V.ravel() - basis @ q).reshape(nx, ny))
                        ql = projector @ VL.ravel()
                        rl = np.ascontiguousarray((VL.ravel() - basis @ ql).reshape(nx, ny))
                    v_up, v_lo, i_up, j_up, i_lo, j_lo = bufs
                    kern2d.isaacs_step_2d(xs[0], dx, nx, ys[0], dy, ny, ax, bx, ay, by, ux, uy, r, q, window,
                                        v_up, v_lo, i_up, j_up, i_lo, j_lo, rl, ql)
                    _check_finite(v_up, grid, n, steps, "upper value")
                    _check_finite(v_lo, grid, n, steps, "lower value")
                    V, VL = v_up.copy(), v_lo.copy()
                    if k in slot:
                        values[slot[k]] = V
                        lower[slot[k]] = VL
                        controls[f"u_{px}"][slot[k]] = ux[i_up]
                        controls[f"u_{py}"][slot[k]] = uy[j_up]
                        controls[f"lower_u_{px}"][slot[k]] = ux[i_lo]
                        controls[f"lower_u_{py}"][slot[k]] = uy[j_lo]
                        for p, idx in ((px, i_up), (py, j_up)):
                            convex[p][slot[k]] = (idx > 0) & (idx < u_points - 1)
                else:
                    W = np.empty((nx, ny))
                    u_y = np.empty((nx, ny))
                    in_y = np.empty((nx, ny), dtype=bool)
                    for i in range(nx):  # y moves second, from the moved x = xs[i]
                        W[i], u_y[i], in_y[i] = step_y.step(V[i], ay[i], by[i], cy.u_min, cy.u_max, maximise=True)
                    _check_finite(W, grid, n, steps, f"value after {py}'s move")
                    Vn = np.empty((nx, ny))
                    u_x = np.empty((nx, ny))
                    in_x = np.empty((nx, ny), dtype=bool)
                    for j in range(ny):
                        Vn[:, j], u_x[:, j], in_x[:, j] = step_x.step(W[:, j], ax[:, j], bx[:, j], cx.u_min,
                                                                      cx.u_max)
                    _check_finite(Vn, grid, n, steps, "value")
                    V = Vn
                    if k in slot:
                        values[slot[k]] = V
                        controls[f"u_{px}"][slot[k]] = u_x
                        controls[f"u_{py}"][slot[k]] = u_y
                        convex[px][slot[k]] = in_x
                        convex[py][slot[k]] = in_y
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    import numba

    diagnostics = {
        "scheme": "bellman",
        "discrete": True,
        "moves": moves,
        "steps": steps,
        "dt": 1.0,
        "cfl_number": float("nan"),
        "u_points": u_points,
        "window": window,
        "u_bracket": u_points,
        "mass_outside": float("nan"),
        "threads": int(num_threads or numba.get_num_threads()),
    }
    if lower is not None:
        gap = np.abs(values[0] - lower[0])
        diagnostics.update(lower_values=lower, value_gap=float(gap.max()),
                           gap_fraction=float(np.mean(gap > 1e-9 * (1 + np.abs(values[0])))))
    diagnostics["wall_time"] = time.perf_counter() - start
    meta = _metadata(problem)
    meta.update(time_name="k", steps=steps, discrete=True, moves=moves,
                time_axis="step index k; steps_left = steps - k")
    return Solution(problem=problem.model.name, time_name="k", state_names=grid.names, grid=grid,
                    times=np.arange(steps + 1, dtype=float), stored=stored, values=values, controls=controls,
                    convex=convex, u_bounds={px: (cx.u_min, cx.u_max), py: (cy.u_min, cy.u_max)},
                    diagnostics=diagnostics, metadata=meta)


def _check_finite(V, grid: Grid, n: int, steps: int, what: str) -> None:
    if np.all(np.isfinite(V)):
        return
    idx = np.unravel_index(int(np.argmax(~np.isfinite(V))), V.shape)
    where = ", ".join(f"{nm}={ax[i]:.6g}" for nm, ax, i in zip(grid.names, grid.axes, idx))
    raise NumericalError(f"the {what} became non-finite with {n} steps left (k={steps - n}) at {where}")


__all__ = ["solve_discrete_game", "MOVES"]
