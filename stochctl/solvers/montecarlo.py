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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..symbolic.problem import ControlProblem
from . import _mc_kernels
from ._limits import check_paths
from .grid_policy import GridPolicy, _control_keys, as_policy

DEFAULT_PATHS = 20_000
DEFAULT_STEPS = 200
ALGORITHMS = ("sgd", "simultaneous", "alternating")


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
