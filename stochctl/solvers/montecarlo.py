"""Monte Carlo evaluation of learning-rate policies: the SDE and the real iteration.

For a policy u_p(t, x) (and m_p(t, x) under batch control) the controlled SDE
of design section 2,

    d x_p = -s_p u_p grad_p g dt + u_p sqrt(eta m_p) Sigma_p^{1/2} dW_p,

is simulated by Euler-Maruyama with diagonal noise (sqrt(Sigma_ii) per
coordinate; a non-diagonal diffusion is refused, as by the grid solver), and
the cost of a path is

    C = G(X_T) + sum_k dt r(X_{t_k}, u_k),
    r = r_state(x) + sum_p s_p kappa_p / m_p   (compute cost of the batch).

:func:`simulate_iteration` runs the training iteration itself with Gaussian
minibatch-like noise, x_{k+1} = x_k - s_p eta u_p (grad_p g(x_k) +
sqrt(m_p) Sigma_p^{1/2}(x_k) z_k), with the policy looked up at t = k eta:
``"sgd"`` (one player), ``"simultaneous"`` SGA, or ``"alternating"`` SGA (players
in the model's order, each at the point, and with the policy read at the point,
left by the previous one). Both are the one iteration of
:mod:`stochctl.solvers.iteration`; the Euler-Maruyama scheme is its simultaneous
form with step dt and noise scaled by eta / dt.

Policies are read by multilinear interpolation in space (clamped to the grid's
box) and are piecewise constant in time: on [t_j, t_{j+1}) the level stored at
t_j is used, as :meth:`Solution.control_at` does. Each path draws its noise
from its own random stream: stream k (k // 2 for antithetic pairs) of a 64-bit
key that :class:`numpy.random.SeedSequence` derives from ``seed``
(:mod:`stochctl.solvers._random`). Results are therefore the same for a given
seed whatever the number of threads, and simulations with the same ``seed``,
``paths`` and ``steps`` share their noise (common random numbers): :meth:`MonteCarloResult.difference` then compares two policies
with the standard error of the paired differences.
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
from ._limits import check_paths
from .solution import Solution

DEFAULT_PATHS = 20_000
DEFAULT_STEPS = 200
ALGORITHMS = ("sgd", "simultaneous", "alternating")


# --------------------------------------------------------------------- policy
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


# --------------------------------------------------------------------- result
@dataclass(frozen=True)
class MonteCarloResult:
    """Monte Carlo estimate of the expected cost of a policy.

    Attributes:
        mean: sample mean of the path costs (inf if a path diverged).
        stderr: its standard error (from pair means under antithetic sampling).
        paths, steps, seed: sample size, time steps, master seed.
        dt: time step (eta for the discrete iteration).
        method: ``"euler-maruyama"``, ``"sgd"``, ``"simultaneous"`` or ``"alternating"``.
        antithetic: whether paths come in antithetic pairs.
        costs: per-path costs (paths,), for paired comparisons.
        exit_fraction: fraction of paths that left the policy's grid box
            (where the policy was clamped to the boundary values).
        diverged: number of paths whose state stopped being finite.
        sample: the first ``keep_paths`` trajectories, (keep, steps + 1, d), or None.
    """

    mean: float
    stderr: float
    paths: int
    steps: int
    seed: int
    dt: float
    method: str
    antithetic: bool
    costs: np.ndarray = field(repr=False)
    exit_fraction: float = 0.0
    diverged: int = 0
    sample: np.ndarray | None = field(default=None, repr=False)

    def interval(self, z: float = 3.0) -> tuple[float, float]:
        """mean -/+ z standard errors."""
        return self.mean - z * self.stderr, self.mean + z * self.stderr

    def difference(self, other: "MonteCarloResult") -> tuple[float, float]:
        """Mean and standard error of ``self.costs - other.costs`` on common random numbers.

        Raises:
            InputError: if the two runs do not share their noise (different
                seed, paths, steps, time step or sampling).
        """
        mine = (self.seed, self.paths, self.steps, self.dt, self.antithetic)
        theirs = (other.seed, other.paths, other.steps, other.dt, other.antithetic)
        if mine != theirs:
            raise InputError("difference needs runs with the same seed, paths, steps, dt and antithetic setting; "
                             f"got {mine} and {theirs}")
        return _mean_stderr(self.costs - other.costs, self.antithetic)


def _mean_stderr(costs: np.ndarray, antithetic: bool) -> tuple[float, float]:
    if not np.all(np.isfinite(costs)):
        return math.inf, math.inf
    values = 0.5 * (costs[0::2] + costs[1::2]) if antithetic else costs
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))


# ----------------------------------------------------------------- simulation
def simulate_policy(problem: ControlProblem, solution, x0, *, paths: int = DEFAULT_PATHS, steps: int | None = None,
                    seed: int = 0, antithetic: bool = False, keep_paths: int = 0) -> MonteCarloResult:
    """E[G(X_T) + int_0^T r dt] under a policy, by Euler-Maruyama (module docstring).

    Args:
        problem: the control problem the policy was computed for.
        solution: a Solution, a :class:`GridPolicy`, or constant multipliers.
        x0: start point (d,) or mapping name -> value, inside the policy's box; or
            one start point per path (paths, d), where points outside the box
            count as exits (see ``exit_fraction``).
        paths: number of paths (even when ``antithetic``).
        steps: Euler steps over [0, T], T the policy's horizon (a solution's final
            time, else the problem's); default: the solution's time steps, else 200.
        seed: master seed of the per-path seeds.
        antithetic: simulate pairs of paths with opposite noise.
        keep_paths: number of trajectories to return in ``sample``.
    """
    policy = as_policy(problem, solution)
    if steps is None:
        steps = policy.steps or DEFAULT_STEPS
    steps = _count("steps", steps, minimum=1)
    dt = policy.horizon / steps
    times = np.arange(steps) * dt
    return _run(problem, policy, x0, paths=paths, seed=seed, antithetic=antithetic, keep_paths=keep_paths,
                dt=dt, noise_ratio=problem.eta / dt, levels=policy.level_at(times), alternating=False,
                method="euler-maruyama")


def simulate_constant(problem: ControlProblem, u, x0, *, paths: int = DEFAULT_PATHS, steps: int = DEFAULT_STEPS,
                      seed: int = 0, antithetic: bool = False, keep_paths: int = 0,
                      horizon: float | None = None) -> MonteCarloResult:
    """:func:`simulate_policy` with constant multipliers ``u`` (a number, or per player/control).

    With the same ``paths``, ``steps``, ``seed``, ``antithetic`` and horizon
    (default: the problem's) as another simulation of the same problem and
    start point it uses the same noise.
    """
    return simulate_policy(problem, GridPolicy.constant(problem, u, horizon=horizon), x0, paths=paths, steps=steps,
                           seed=seed, antithetic=antithetic, keep_paths=keep_paths)


def simulate_iteration(problem: ControlProblem, solution_or_policy, x0, *, algorithm: str | None = None,
                       steps: int | None = None, paths: int = DEFAULT_PATHS, seed: int = 0,
                       antithetic: bool = False, keep_paths: int = 0) -> MonteCarloResult:
    """E[G(x_K) + eta sum_k r(x_k)] for the discrete iteration under a policy (module docstring).

    Args:
        problem: the control problem (its eta is the base learning rate).
        solution_or_policy: a Solution, a :class:`GridPolicy`, or constant multipliers.
        x0: start point(s), as in :func:`simulate_policy`.
        algorithm: ``"sgd"`` (one player), ``"simultaneous"`` or ``"alternating"``;
            default ``"sgd"`` for one player and ``"simultaneous"`` for a game.
        steps: iterations K (default: round(T / eta)); the policy is read at t = k eta.
        paths, seed, antithetic, keep_paths: as in :func:`simulate_policy`.
    """
    policy = as_policy(problem, solution_or_policy)
    if algorithm is None:
        algorithm = "simultaneous" if problem.model.is_game else "sgd"
    if algorithm not in ALGORITHMS:
        raise InputError(f"algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}")
    if algorithm == "sgd" and problem.model.is_game:
        raise InputError("algorithm 'sgd' is for one player; use 'simultaneous' or 'alternating' for a game")
    eta = problem.eta
    if steps is None:
        steps = max(1, int(round(policy.horizon / eta)))
    steps = _count("steps", steps, minimum=1)
    times = np.arange(steps) * eta
    return _run(problem, policy, x0, paths=paths, seed=seed, antithetic=antithetic, keep_paths=keep_paths,
                dt=eta, noise_ratio=1.0, levels=policy.level_at(times), alternating=algorithm == "alternating",
                method=algorithm)


def _count(name, value, *, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def _start_points(policy: GridPolicy, x0, paths: int) -> np.ndarray:
    d = len(policy.names)
    if isinstance(x0, Mapping):
        missing = [n for n in policy.names if n not in x0]
        if missing or len(x0) != d:
            raise InputError(f"x0 must give {', '.join(policy.names)}; got {', '.join(map(str, x0))}")
        x0 = [x0[n] for n in policy.names]
    try:
        pts = np.asarray(x0, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"x0 must be numbers; got {x0!r}") from None
    if pts.shape == (d,):
        pts = pts.reshape(1, d)
    elif pts.shape != (paths, d):
        raise InputError(f"x0 must have shape ({d},) or ({paths}, {d}); got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise InputError("x0 must be finite")
    if pts.shape[0] == 1 and np.any((pts < policy.lower) | (pts > policy.upper)):
        bad = pts[0]
        box = ", ".join(f"{n} in [{lo:g}, {hi:g}]" for n, lo, hi in zip(policy.names, policy.lower, policy.upper))
        raise InputError(f"x0 {bad.tolist()} lies outside the policy's domain ({box})")
    return np.ascontiguousarray(pts)


def _run(problem, policy, x0, *, paths, seed, antithetic, keep_paths, dt, noise_ratio, levels, alternating,
         method) -> MonteCarloResult:
    from .iteration import update_phases
    from ..symbolic.compile import compile_problem

    paths = _count("paths", paths, minimum=2)
    seed = _count("seed", seed, minimum=0)
    keep_paths = _count("keep_paths", keep_paths, minimum=0)
    if antithetic and paths % 2:
        raise InputError(f"antithetic sampling needs an even number of paths; got {paths}")
    check_paths(paths, len(problem.model.state_names), keep_paths, len(levels) if levels is not None else 1)
    names = tuple(problem.model.state_names)
    if tuple(policy.names) != names:
        raise InputError(f"policy coordinates {policy.names} do not match the problem's {names}")
    needed = _control_keys(problem)
    missing = [k for k in needed if k.startswith("u_") and k not in policy.controls]
    if missing:
        raise InputError(f"policy lacks controls {missing}; it has {', '.join(policy.controls)}")
    if not problem.is_diagonal:
        raise InputError("Monte Carlo simulation needs a diagonal diffusion (independent noise per coordinate); "
                         "this problem's diffusion has cross terms")
    x0 = _start_points(policy, x0, paths)
    compiled = compile_problem(problem)

    players = problem.controls
    u_index = np.array([policy.index(f"u_{c.player.name}") for c in players], dtype=np.int64)
    m_index = np.array([policy.index(f"m_{c.player.name}") if c.batch is not None and f"m_{c.player.name}"
                        in policy.controls else -1 for c in players], dtype=np.int64)
    m_fixed = np.array([1.0 / c.batch_size for c in players])
    kappa = np.array([c.batch.kappa if c.batch is not None else 0.0 for c in players])
    psign = np.array([float(c.player.sign) for c in players])
    phase, n_phases = update_phases(len(players), "alternating" if alternating else "simultaneous")
    slices = problem.model.player_slices()
    starts = np.array([sl.start for sl in slices], dtype=np.int64)
    stops = np.array([sl.stop for sl in slices], dtype=np.int64)

    key = np.random.SeedSequence(seed).generate_state(1, dtype=np.uint64)[0]
    steps = int(len(levels))
    keep = min(keep_paths, paths)
    sample = np.full((keep, steps + 1, len(names)), np.nan)
    costs = np.empty(paths)
    exited = np.zeros(paths, dtype=np.int64)
    simulate_paths = _mc_kernels.simulator(compiled)
    simulate_paths(
        compiled.params,
        compiled.signs.astype(np.float64), compiled.owner.astype(np.int64), starts, stops, x0, key,
        bool(antithetic),
        float(dt), float(noise_ratio), np.ascontiguousarray(levels, dtype=np.int64), phase, n_phases,
        *policy._grid_arrays(), policy.table, policy.flat, u_index, m_index, m_fixed, kappa, psign,
        sample, costs, exited,
    )
    mean, stderr = _mean_stderr(costs, antithetic)
    costs.flags.writeable = False
    return MonteCarloResult(
        mean=mean, stderr=stderr, paths=paths, steps=steps, seed=seed, dt=float(dt), method=method,
        antithetic=bool(antithetic), costs=costs, exit_fraction=float(exited.mean()),
        diverged=int(np.sum(~np.isfinite(costs))), sample=sample if keep else None,
    )
