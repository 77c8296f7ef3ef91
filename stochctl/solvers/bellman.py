"""``solve_discrete``: the discrete-time Bellman recursion of the training iteration that actually runs.

    solve_discrete(problem, steps=N) -> Solution

For a one-player model the iteration is x_{k+1} = x_k - eta u_k (grad g(x_k) + sqrt(m) Sigma(x_k)^{1/2} xi_k)
with xi_k ~ N(0, 1), m = 1/B and u_k in [u_min, u_max]; its optimal cost with n steps left solves

    V_0 = G,   V_n(x) = min_{u in [u_min, u_max]} E V_{n-1}(x - u (a(x) + b(x) xi)),
    a = eta grad g,   b = eta sqrt(m Sigma),

(design section 4b; for ``local-discrete``, a = h y and b = sqrt(h)). The next state is normal given
(x, u), and V_{n-1} is represented on a uniform grid as a quadratic plus the piecewise-linear
interpolant of the rest (:mod:`._bellman_kernels`), whose expectation is computed exactly: the
minimisation over u cannot exploit a quadrature rule. The quadratic is the least-squares fit of
V_{n-1} on the nodes, refitted at every level.

Minimisation: J(u) need not be convex in u, so every node ranks ``u_bracket`` equally spaced points
of [u_min, u_max] (on a coarser copy of the grid with at least 3 nodes per noise standard
deviation), walks with exact values along the bracket while J decreases, returns an endpoint
where J still decreases towards the bound, and otherwise refines by Newton on J' = 0 with exact
derivatives on the two neighbouring cells (Brent's bounded method if Newton does not settle;
tolerance ``xatol``); the refined point is kept only if it is not worse
(:func:`~._bellman_kernels.minimize_node`).

Boundary: beyond the grid, V_{n-1} is its quadratic fit plus the linear extension of the remainder's
interpolant at the end node. Next states that leave the grid are priced by that extension; the
probability mass the optimal policy sends outside from the inner half of the grid is recorded
(``mass_outside``), and :func:`discrete_boundary_sensitivity` compares with a wider domain.

Time axis of the returned :class:`~stochctl.solvers.Solution`: the step index k = 0..N (time name
``"k"``), so that ``values[k]`` is V_{N-k} (N - k steps left) and ``controls[name][k]`` is the
multiplier of step k, taken with N - k steps left, as for the PDE solver's levels.
"""

from __future__ import annotations

import math
import time

import numpy as np
import sympy as sp

from ..errors import InputError, NumericalError
from ..models import canonical_solve_defaults
from ..symbolic.problem import ControlProblem
from . import _bellman_kernels as kern
from . import _bellman_kernels_2d as kern2d
from .coefficients import _evaluate, check_diagonal, hamiltonian_terms
from .explicit import progress_bar
from .grid import Grid
from .solution import Solution

DISCRETE_DEFAULTS = {name: {"domain": dict(d.discrete_domain), "points": d.discrete_points}
                     for name, d in canonical_solve_defaults().items()
                     if d.discrete_domain or d.discrete_points is not None}
"""Discrete grid defaults of the canonical models that declare their own (read from the model records,
:attr:`~stochctl.models.SolveDefaults.discrete_points` and ``discrete_domain``)."""

DEFAULT_POINTS_1D = 401
DEFAULT_POINTS_2D = 61
DEFAULT_BRACKET = 33
DEFAULT_WINDOW = 6.0
MAX_STORAGE_BYTES = 8 * 2**30
MAX_STEPS = 10**7
BRACKET_NODES_PER_SD = 3.0
"""The bracket ranks candidates on the coarsest level with at least this many nodes per noise sd."""


def _as_problem(problem) -> ControlProblem:
    from .api import _as_problem as as_problem

    return as_problem(problem)


def _int_option(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (
            high is not None and value > high):
        bound = f"an integer >= {low}" + ("" if high is None else f" and <= {high}")
        raise InputError(f"{name} must be {bound}; got {value!r}")
    return int(value)


def _positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not (
            math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a positive finite number; got {value!r}")
    return float(value)


def discrete_grid(problem: ControlProblem, points: int | None = None) -> Grid:
    """Default grid of the discrete solvers: ``model.solve_defaults.discrete_domain`` and
    ``discrete_points``, else the model's domain with 401 (1-D) or 61 (2-D) nodes per axis."""
    defaults = problem.model.solve_defaults
    if points is None:
        points = defaults.discrete_points
    if points is None:
        points = DEFAULT_POINTS_1D if len(problem.model.state_names) == 1 else DEFAULT_POINTS_2D
    domain = {s: defaults.discrete_domain.get(s, problem.model.domain[s]) for s in problem.model.state_names}
    return Grid.from_domain(domain, points, "linear")


def step_coefficients(problem: ControlProblem, grid: Grid) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per state coordinate i, at the nodes: a_i = eta s_p dg/dx_i and b_i = eta sqrt(Sigma_ii / B_p).

    p owns coordinate i (s_p = +1 for a minimiser, -1 for a maximiser; B_p its batch), and one step
    is x_i' = x_i - u_p (a_i + b_i xi_i) with independent xi_i (a correlated diffusion is refused).
    dg/dx_i and Sigma_ii are the derivation's Hamiltonian terms
    (:func:`~stochctl.solvers.coefficients.hamiltonian_terms`), as for the grid solvers.
    """
    mesh = grid.mesh()
    check_diagonal(problem, grid, mesh)
    grads, sigmas = hamiltonian_terms(problem, grid, mesh)
    out = []
    for i, (grad, sigma) in enumerate(zip(grads, sigmas)):
        p = problem.owner(i)
        a = problem.eta * float(problem.players[p].sign) * grad
        b = problem.eta * np.sqrt(sigma / problem.controls[p].batch_size)
        out.append((np.ascontiguousarray(a, dtype=float), np.ascontiguousarray(b, dtype=float)))
    return out


def _quadratic_fit(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Basis (N, 3) of 1, x, x^2 and its least-squares projector (3, N), scaled for conditioning."""
    centre = 0.5 * (nodes[0] + nodes[-1])
    half = 0.5 * (nodes[-1] - nodes[0])
    z = (nodes - centre) / half
    basis = np.stack([np.ones_like(z), z, z * z], axis=1)
    projector = np.linalg.pinv(basis)
    # coefficients in z -> coefficients in x: q(z) = c0 + c1 z + c2 z^2, z = (x - centre) / half
    to_x = np.array([[1.0, -centre / half, centre**2 / half**2],
                     [0.0, 1.0 / half, -2 * centre / half**2],
                     [0.0, 0.0, 1.0 / half**2]])
    return basis, to_x @ projector


def check_discrete_problem(problem: ControlProblem, grid: Grid) -> None:
    """Refuse what the discrete solver does not cover, with one line each."""
    if any(c.batch is not None for c in problem.controls):
        raise InputError("the discrete-time solver takes a fixed batch size; batch control is a "
                         "continuous-time (HJB) option")
    if sp.sympify(problem.running_cost) != 0:
        raise InputError("the discrete-time solver supports a terminal cost only; this problem has a running cost "
                         f"{problem.running_cost}")
    if len(problem.players) != 1:
        raise InputError(f"solve_discrete solves one-player problems; {problem.model.name!r} has players "
                         f"{', '.join(p.name for p in problem.players)}: use solve_discrete_game")
    if grid.ndim not in (1, 2):
        raise InputError(f"solve_discrete solves one-player problems on 1-D or 2-D grids; the grid has {grid.ndim} "
                         "axes")
    if problem.players[0].sense != "min":
        raise InputError(f"player {problem.players[0].name!r} maximises; a one-player discrete problem must minimise")


def _smallest_step(umin: float, umax: float, nb: int) -> float:
    return umin if umin > 0 else (umax - umin) / (nb - 1)


def spread_number(grid: Grid, b: np.ndarray, umin: float, umax: float, nb: int = DEFAULT_BRACKET) -> float:
    """4 sd / width: the noise sd b u of the smallest positive bracket step u over a quarter of the
    grid's width (the grid holds the next-state spread iff it is at most 1)."""
    spread = float(np.max(b)) * _smallest_step(umin, umax, nb)
    return 4.0 * spread / float(grid.upper[0] - grid.lower[0])


def _check_spread(grid: Grid, b: np.ndarray, umin: float, umax: float, nb: int) -> None:
    """Refuse a grid whose width cannot hold the noise of the smallest positive bracket step."""
    u_small = _smallest_step(umin, umax, nb)
    spread = float(np.max(b)) * u_small
    width = float(grid.upper[0] - grid.lower[0])
    if spread_number(grid, b, umin, umax, nb) > 1.0:
        raise InputError(
            f"the grid [{grid.lower[0]:g}, {grid.upper[0]:g}] cannot hold the next-state spread: the noise standard "
            f"deviation of the step u={u_small:.4g} reaches {spread:.4g}, more than a quarter of the width "
            f"{width:g}; widen the domain or lower u_max")


def storage_bytes(points: int, levels: int) -> int:
    """Bytes of the stored value, control and interior arrays."""
    return points * (8 * levels + 9 * (levels - 1))


def solve_discrete(problem, grid: Grid | None = None, *, steps: int, u_bracket: int = DEFAULT_BRACKET,
                   xatol: float = 1e-8, window: float = DEFAULT_WINDOW, symmetric: bool | None = None, store_every: int = 1, progress=None,
                   num_threads: int | None = None, continuation: bool = False) -> Solution:
    """Solve V_n = min_u E V_{n-1}(next state) for n = 1..steps (module docstring).

    Args:
        problem: a one-player, one-dimensional :class:`~stochctl.symbolic.ControlProblem` (or Model).
        grid: uniform grid of the state (default :func:`discrete_grid`).
        steps: N, the number of training steps (>= 1).
        u_bracket: bracket points of the global search over u (>= 3).
        xatol: absolute tolerance of the refinement in u (Newton, or Brent as fallback).
        window: hinges farther than ``window`` standard deviations are summed in closed form.
        symmetric: solve on x >= 0 and mirror (a grid symmetric about 0, a odd, b and G even);
            default: used when the problem and grid are symmetric (checked on the nodes).
        store_every: keep every k-th level (0 and N always).
        progress: True/False to force a progress bar; None shows it on a terminal.
        num_threads: threads of the node-parallel kernel.
        continuation: also store ``continued_u_<player>``, the optimum continued past the bound
            it sits on (:func:`~stochctl.solvers._bellman_kernels.continue_past_bound`): clipped
            to [u_min, u_max] it is u*, and it has no kink where u* meets a bound, so tables
            interpolate it (then clip) far more accurately than u* itself.

    Returns:
        A :class:`Solution` on the step axis k = 0..N (time name ``"k"``).

    Raises:
        InputError: bad options, an unsupported problem, storage that would not fit, or a grid that
            cannot hold the next-state spread.
        NumericalError: a value that becomes non-finite (the message names the step and the node).
    """
    from .api import _threads, _metadata, stored_levels

    problem = _as_problem(problem)
    steps = _int_option("steps", steps, 1, MAX_STEPS)
    u_bracket = _int_option("u_bracket", u_bracket, 3, 10**5)
    xatol = _positive("xatol", xatol)
    window = _positive("window", window)
    if grid is None:
        grid = discrete_grid(problem)
    elif not isinstance(grid, Grid):
        raise InputError(f"grid must be a Grid; got {type(grid).__name__}")
    check_discrete_problem(problem, grid)
    stored = stored_levels(steps, store_every)
    need = storage_bytes(grid.size, len(stored))
    if need > MAX_STORAGE_BYTES:
        per = storage_bytes(grid.size, 2) / 2
        every = math.ceil(steps / max(1, int(MAX_STORAGE_BYTES // per) - 1))
        raise InputError(f"storing {len(stored)} levels of {grid.size} nodes needs {need / 2**30:.1f} GiB "
                         f"(limit {MAX_STORAGE_BYTES / 2**30:.0f} GiB); pass store_every >= {every}")
    ctl = problem.controls[0]
    umin, umax = float(ctl.u_min), float(ctl.u_max)
    start = time.perf_counter()
    if grid.ndim == 2:
        if continuation:
            raise InputError("continuation=True is available for one-dimensional states only")
        return _solve_2d(problem, grid, steps, stored, u_bracket, xatol, window, progress, num_threads, start)
    ((a, b),) = step_coefficients(problem, grid)
    _check_spread(grid, b, umin, umax, u_bracket)
    nodes = np.ascontiguousarray(grid.axes[0], dtype=float)
    V = _evaluate(problem.model, problem.terminal_cost, grid.mesh(), "the terminal cost", grid)
    is_symmetric = _symmetric(nodes, a, b, V)
    if symmetric is None:
        symmetric = is_symmetric
    elif symmetric and not is_symmetric:
        raise InputError("symmetric=True needs a grid symmetric about 0 with an odd number of nodes, an odd drift "
                         "and an even noise and terminal cost")
    centre = nodes.size // 2
    active = np.arange(centre if symmetric else 0, nodes.size, dtype=np.int64)
    n_nodes = nodes.size
    values = np.empty((len(stored), n_nodes))
    controls = np.empty((len(stored) - 1, n_nodes))
    interior = np.empty((len(stored) - 1, n_nodes), dtype=bool)
    continued = np.empty((len(stored) - 1, n_nodes)) if continuation else None
    slot = {int(k): j for j, k in enumerate(stored)}
    values[-1] = V
    stepper = LineStepper(nodes, u_bracket=u_bracket, xatol=xatol, window=window, active=active)
    bar = progress_bar(steps, progress, "bellman")
    name = problem.model.state_names[0]
    with _threads(num_threads):
        try:
            for n in range(1, steps + 1):
                v_new, u_new, i_new, *w_new = stepper.step(V, a, b, umin, umax, continuation=continuation)
                if symmetric:
                    for arr in (v_new, u_new, i_new, *w_new):
                        arr[:centre] = arr[:centre:-1]
                if not np.all(np.isfinite(v_new)):
                    i = int(np.argmax(~np.isfinite(v_new)))
                    raise NumericalError(f"the Bellman value became non-finite with {n} steps left (k={steps - n}) "
                                         f"at {name}={nodes[i]:.6g}; the terminal cost or the step may overflow")
                V = v_new  # the stepper returns new arrays at every level
                k = steps - n
                if k in slot:
                    values[slot[k]] = V
                    controls[slot[k]] = u_new
                    interior[slot[k]] = i_new
                    if continuation:
                        continued[slot[k]] = w_new[0]
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    import numba

    u0 = controls[0]
    inner = np.abs(nodes - 0.5 * (nodes[0] + nodes[-1])) <= 0.25 * (nodes[-1] - nodes[0])
    mass = _mass_outside(nodes[inner], a[inner], b[inner], u0[inner], grid)
    diagnostics = {
        "scheme": "bellman",
        "discrete": True,
        "steps": steps,
        "dt": 1.0,
        "cfl_number": float("nan"),
        "u_bracket": u_bracket,
        "xatol": xatol,
        "window": window,
        "threads": int(num_threads or numba.get_num_threads()),
        "symmetric": bool(symmetric),
        "interior_fraction": float(interior[0].mean()),
        "mass_outside": mass,
        "wall_time": time.perf_counter() - start,
    }
    meta = _metadata(problem)
    meta.update(time_name="k", steps=steps, discrete=True,
                time_axis="step index k; steps_left = steps - k")
    player = problem.players[0].name
    ctrls = {f"u_{player}": controls}
    if continuation:
        ctrls[f"continued_u_{player}"] = continued
    return Solution(problem=problem.model.name, time_name="k", state_names=grid.names, grid=grid,
                    times=np.arange(steps + 1, dtype=float), stored=stored, values=values,
                    controls=ctrls, convex={player: interior},
                    u_bounds={player: (umin, umax)}, diagnostics=diagnostics, metadata=meta)


class LineStepper:
    """One level of the 1-D recursion on fixed uniform ``nodes``: the quadratic fit, the kernel, its work arrays.

    ``step(V, a, b, umin, umax)`` returns (V_n, u*, interior) at the nodes for the step
    x' = x - u (a + b Z) from values V_{n-1} at the nodes; ``maximise=True`` gives
    max_u E V_{n-1} (the maximising player), computed as -min_u E[-V_{n-1}].
    """

    def __init__(self, nodes: np.ndarray, *, u_bracket: int = DEFAULT_BRACKET, xatol: float = 1e-8,
                 window: float = DEFAULT_WINDOW, active: np.ndarray | None = None):
        self.nodes = np.ascontiguousarray(nodes, dtype=float)
        n = self.nodes.size
        self.dy = float(self.nodes[1] - self.nodes[0])
        _, self.projector = _quadratic_fit(self.nodes)
        self.active = np.arange(n, dtype=np.int64) if active is None else active
        self.u_bracket, self.xatol, self.window = u_bracket, xatol, window
        self.work = [np.empty(n) for _ in range(3)]
        self.levels = _levels(n, self.dy)

    def step(self, V, a, b, umin: float, umax: float, maximise: bool = False, continuation: bool = False):
        nodes = self.nodes
        sign = -1.0 if maximise else 1.0
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported by the caller, with its step
            W = sign * np.asarray(V, dtype=float)
            q = self.projector @ W
            r = np.ascontiguousarray(W - (q[0] + q[1] * nodes + q[2] * nodes * nodes))
        v = np.empty(nodes.size)
        u = np.empty(nodes.size)
        inside = np.empty(nodes.size, dtype=np.bool_)
        kern.bellman_step_1d(nodes, self.active, np.ascontiguousarray(a, dtype=float),
                             np.ascontiguousarray(b, dtype=float), umin, umax, self.u_bracket, self.xatol, self.dy, r,
                             q[0], q[1], q[2], self.window, v, u, inside, *self.work, *self.levels,
                             BRACKET_NODES_PER_SD)
        if not continuation:
            return sign * v, u, inside
        w = np.empty(nodes.size)
        reach_lo, reach_hi = continuation_reach(umin, umax)
        kern.continuation_step_1d(nodes, self.active, np.ascontiguousarray(a, dtype=float),
                                  np.ascontiguousarray(b, dtype=float), u, umin, umax, reach_lo, reach_hi,
                                  self.xatol, self.dy, r, q[0], q[1], q[2], self.window, *self.work, w)
        return sign * v, u, inside, w


def continuation_reach(umin: float, umax: float) -> tuple[float, float]:
    """How far the continued policy may go past the bounds: down to u_min - (u_max - u_min), up to 4 u_max."""
    return umax - umin, 3.0 * max(umax, umax - umin)


def quadratic_fit_2d(mesh) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares projector (6, N) onto 1, x, y, x^2, x y, y^2 at the nodes (flattened C order), and the basis."""
    x, y = (np.asarray(m, dtype=float).ravel() for m in mesh)
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    return np.linalg.pinv(basis), basis


def _solve_2d(problem, grid, steps, stored, u_bracket, xatol, window, progress, num_threads, start) -> Solution:
    """One player owning two coordinates: x' = x - u (a + b Z) per coordinate, independent noises.

    The search is the bracket of ``u_bracket`` points refined by golden section
    (:func:`~._bellman_kernels.bellman_step_2d`); correlated coordinates are refused.
    """
    import numba

    from .api import _metadata, _threads

    model = problem.model
    mesh = grid.mesh()
    ctl = problem.controls[0]
    umin, umax = float(ctl.u_min), float(ctl.u_max)
    coeff = [arr for pair in step_coefficients(problem, grid) for arr in pair]
    projector, basis = quadratic_fit_2d(mesh)
    V = _evaluate(model, problem.terminal_cost, mesh, "the terminal cost", grid)
    (xs, ys), (dx, dy), (nx, ny) = grid.axes, grid.spacing, grid.shape
    slot = {int(k): j for j, k in enumerate(stored)}
    values = np.empty((len(stored), nx, ny))
    values[-1] = V
    controls = np.empty((len(stored) - 1, nx, ny))
    interior = np.empty((len(stored) - 1, nx, ny), dtype=bool)
    v_new, u_new, i_new = np.empty((nx, ny)), np.empty((nx, ny)), np.empty((nx, ny), dtype=np.bool_)
    bar = progress_bar(steps, progress, "bellman")
    with _threads(num_threads):
        try:
            for n in range(1, steps + 1):
                with np.errstate(over="ignore", invalid="ignore"):
                    q = projector @ V.ravel()
                    r = np.ascontiguousarray((V.ravel() - basis @ q).reshape(nx, ny))
                kern2d.bellman_step_2d(float(xs[0]), float(dx), nx, float(ys[0]), float(dy), ny, *coeff, umin, umax,
                                     u_bracket, xatol, r, q, window, v_new, u_new, i_new)
                if not np.all(np.isfinite(v_new)):
                    i, j = np.unravel_index(int(np.argmax(~np.isfinite(v_new))), v_new.shape)
                    raise NumericalError(f"the Bellman value became non-finite with {n} steps left (k={steps - n}) "
                                         f"at {grid.names[0]}={xs[i]:.6g}, {grid.names[1]}={ys[j]:.6g}")
                V = v_new.copy()
                k = steps - n
                if k in slot:
                    values[slot[k]], controls[slot[k]], interior[slot[k]] = V, u_new, i_new
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    diagnostics = {"scheme": "bellman", "discrete": True, "steps": steps, "dt": 1.0, "cfl_number": float("nan"),
                   "u_bracket": u_bracket, "xatol": xatol, "window": window, "symmetric": False,
                   "threads": int(num_threads or numba.get_num_threads()),
                   "interior_fraction": float(interior[0].mean()), "mass_outside": float("nan"),
                   "wall_time": time.perf_counter() - start}
    meta = _metadata(problem)
    meta.update(time_name="k", steps=steps, discrete=True, time_axis="step index k; steps_left = steps - k")
    player = problem.players[0].name
    return Solution(problem=model.name, time_name="k", state_names=grid.names, grid=grid,
                    times=np.arange(steps + 1, dtype=float), stored=stored, values=values,
                    controls={f"u_{player}": controls}, convex={player: interior}, u_bounds={player: (umin, umax)},
                    diagnostics=diagnostics, metadata=meta)


def _levels(n_nodes: int, dy: float, coarsest: int = 64):
    """Work arrays of the bracket's coarse levels: every 2^L-th node while (N - 1) is divisible by 2^L."""
    lens, dys = [n_nodes], [dy]
    stride = 2
    while (n_nodes - 1) % stride == 0 and (n_nodes - 1) // stride >= 8 and stride <= coarsest:
        lens.append((n_nodes - 1) // stride + 1)
        dys.append(dy * stride)
        stride *= 2
    lens = np.array(lens, dtype=np.int64)
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    total = int(lens.sum())
    return (np.empty(total), np.empty(total), np.empty(total), np.empty(total), offs, lens,
            np.array(dys, dtype=float))


def _symmetric(nodes, a, b, terminal) -> bool:
    """Whether the grid is symmetric about 0 (odd node count), a is odd and b and G are even."""
    if nodes.size % 2 == 0:
        return False
    scale = max(1.0, float(np.max(np.abs(nodes))))
    if np.max(np.abs(nodes + nodes[::-1])) > 1e-12 * scale:
        return False

    def close(x, y):
        return bool(np.all(np.abs(x - y) <= 1e-12 * (1.0 + np.maximum(np.abs(x), np.abs(y)))))

    return close(a, -a[::-1]) and close(b, b[::-1]) and close(terminal, terminal[::-1])


def _mass_outside(x, a, b, u, grid: Grid) -> float:
    """Largest probability that the step from an inner node under u leaves the grid."""
    from scipy.special import ndtr

    if x.size == 0:
        return 0.0
    m = x - u * a
    s = u * b
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(s > 0, ndtr((grid.lower[0] - m) / s), (m < grid.lower[0]).astype(float))
        hi = np.where(s > 0, ndtr((m - grid.upper[0]) / s), (m > grid.upper[0]).astype(float))
    return float(np.max(lo + hi))


def expected_next_value(values: np.ndarray, nodes: np.ndarray, x, u, a, b, window: float = DEFAULT_WINDOW):
    """E V(x - u (a + b xi)) for V given at uniform ``nodes`` (the solver's representation), vectorised.

    For tests and brute-force checks of the minimisation: it runs the same exact expectation as the
    solver's kernel at arbitrary (x, u, a, b).
    """
    nodes = np.ascontiguousarray(nodes, dtype=float)
    values = np.ascontiguousarray(values, dtype=float)
    _, projector = _quadratic_fit(nodes)
    q = projector @ values
    r = np.ascontiguousarray(values - (q[0] + q[1] * nodes + q[2] * nodes * nodes))
    dy = float(nodes[1] - nodes[0])
    slopes, c1, c2 = (np.empty(nodes.size) for _ in range(3))
    kern.prepare_remainder(r, dy, c1, c2, float(nodes[0]), slopes)
    x, u, a, b = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, u, a, b)))
    out = np.empty(x.shape)
    for idx in np.ndindex(x.shape):
        out[idx] = kern.objective(u[idx], x[idx], a[idx], b[idx], float(nodes[0]), dy, r, slopes, c1, c2,
                                  q[0], q[1], q[2], window)
    return out if out.shape else float(out)


__all__ = ["solve_discrete", "discrete_grid", "step_coefficients", "expected_next_value", "spread_number",
           "DISCRETE_DEFAULTS"]
