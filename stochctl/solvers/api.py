"""``solve_continuous``: the finite-difference HJB/Isaacs solver's entry point, and its checks.

    solve_continuous(problem) -> Solution

evaluates the time-independent coefficients once on the grid
(:mod:`~stochctl.solvers.coefficients`), picks the time grid (explicit: from
the monotonicity condition; implicit: a fixed step), marches backward from
V(T) = G with the numba kernels (:mod:`~stochctl.solvers.explicit`,
:mod:`~stochctl.solvers.implicit`), and returns the value, the policy of every
player, the convexity map and diagnostics.

Threads: parallel kernels use ``num_threads`` threads (default: numba's
setting, i.e. ``STOCHCTL_NUM_THREADS`` or every core). On a shared machine a
busy second core can make two threads slower than one.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..models import Model, SolveDefaults, canonical_solve_defaults
from ..symbolic.problem import BatchControl, ControlProblem
from ._limits import check_grid_size
from .coefficients import evaluate_coefficients
from .explicit import SAFETY, explicit_time_grid, march_explicit
from .grid import DEFAULT_BOUNDARY, Grid
from .implicit import check_supported, implicit_time_grid, march_implicit
from .solution import Solution

SCHEMES = ("explicit", "implicit")

def _continuous_defaults(d) -> dict:
    return {"domain": dict(d.domain), "points": d.points, "scheme": d.scheme, "dt": d.dt,
            "store_every": d.store_every}


MODEL_DEFAULTS = {name: _continuous_defaults(d) for name, d in canonical_solve_defaults().items()
                  if _continuous_defaults(d) != _continuous_defaults(SolveDefaults())}
"""Continuous solve defaults of the canonical models that declare their own (read from the model
records, :attr:`~stochctl.models.Model.solve_defaults`; ``local-quadratic``: see
:data:`~stochctl.models.canonical.LOCAL_QUADRATIC_SOLVE`)."""

MAX_STORAGE_BYTES = 8 * 2**30


@contextmanager
def _threads(num_threads):
    if num_threads is None:
        yield
        return
    import numba

    from .._jit import set_num_threads

    old = numba.get_num_threads()
    set_num_threads(num_threads)
    try:
        yield
    finally:
        numba.set_num_threads(old)


def _as_problem(problem) -> ControlProblem:
    if isinstance(problem, ControlProblem):
        return problem
    if isinstance(problem, Model):
        return ControlProblem.from_model(problem)
    raise InputError(f"problem must be a ControlProblem or a Model; got {type(problem).__name__}")


def default_grid(problem: ControlProblem, points=None, boundary=None) -> Grid:
    """The continuous default grid: the box, nodes and boundary of ``model.solve_defaults``
    (else the model's domain and :data:`~stochctl.solvers.grid.DEFAULT_POINTS`)."""
    defaults = problem.model.solve_defaults
    if points is None:
        points = defaults.points
    domain = {s: defaults.domain.get(s, problem.model.domain[s]) for s in problem.model.state_names}
    if boundary is None:
        boundary = defaults.boundary
    return Grid.from_domain(domain, points, boundary)


def stored_levels(K: int, store_every: int) -> np.ndarray:
    """0, k, 2k, ... below K, and K."""
    if isinstance(store_every, bool) or not isinstance(store_every, (int, np.integer)) or store_every < 1:
        raise InputError(f"store_every must be an integer >= 1; got {store_every!r}")
    return np.unique(np.append(np.arange(0, K, int(store_every)), K)).astype(np.int64)


def _metadata(problem: ControlProblem) -> dict:
    from .._version import __version__

    model = problem.model
    return {
        "model": model.name,
        "parameters": dict(model.values),
        "players": [{"name": p.name, "sense": p.sense, "coordinates": [s.name for s in p.symbols]}
                    for p in model.players],
        "eta": problem.eta,
        "batch_sizes": {c.player.name: c.batch_size for c in problem.controls},
        "batch_control": {c.player.name: {"b_min": c.batch.b_min, "b_max": c.batch.b_max, "kappa": c.batch.kappa}
                          for c in problem.controls if c.batch is not None},
        "horizon": problem.horizon,
        "noise": problem.noise,
        "terminal_cost": str(problem.terminal_cost),
        "running_cost": str(problem.running_cost),
        "time_name": model.time_name,
        "version": __version__,
    }


def solve_continuous(problem, grid: Grid | None = None, *, horizon: float | None = None, scheme: str | None = None,
          dt: float | None = None, store_every: int | None = None, tol: float = 1e-10, max_policy_iterations: int = 50,
          progress=None, num_threads: int | None = None, check_boundary: bool = False,
          boundary_factor: float = 1.5) -> Solution:
    """Solve the HJB (one player) or Isaacs (two players) equation of ``problem`` on a grid.

    Args:
        problem: a :class:`~stochctl.symbolic.ControlProblem` (or a Model, with
            its default controls).
        grid: the grid; default: the model's domain with 401 (1D), 101 (2D) or
            31 (3D) nodes per axis and the model's boundary kind, or the
            box and nodes of ``model.solve_defaults``.
        horizon: T (default: the problem's).
        scheme: ``"explicit"`` (any problem, 1 to 3 dimensions) or
            ``"implicit"`` (one player, 1D/2D); default ``model.solve_defaults.scheme``.
        dt: time step. Explicit: default 0.9 times the largest monotone step,
            and a larger one is refused; either way the step is T / K for an
            integer K. Implicit: any positive step (default
            :func:`~stochctl.solvers.implicit.implicit_time_grid`). On the default
            grid with the model's scheme: ``model.solve_defaults.dt`` if set.
        store_every: keep V and the policy every k-th level (0 and T always);
            default 1, or ``model.solve_defaults.store_every`` on the default grid.
        tol: policy-iteration tolerance (relative to max(1, max|V|)).
        max_policy_iterations: cap per implicit step.
        progress: True/False to force the progress bar; None shows it on a
            terminal for solves longer than about a second.
        num_threads: threads of the parallel kernels (module docstring).
        check_boundary: also solve on a domain ``boundary_factor`` times as
            large and report the boundary sensitivity in the diagnostics.

    Returns:
        The :class:`~stochctl.solvers.Solution`.

    Raises:
        InputError: bad options, a non-diagonal diffusion, or a step violating
            the explicit scheme's monotonicity condition.
        NumericalError: a non-finite coefficient, or a value that becomes
            non-finite (the message names the time and the grid node).
    """
    problem = _as_problem(problem)
    declared = problem.model.solve_defaults
    if scheme is None:
        scheme = declared.scheme
    if scheme not in SCHEMES:
        raise InputError(f"unknown scheme {scheme!r}; valid schemes: {', '.join(SCHEMES)}")
    if dt is None and grid is None and scheme == declared.scheme:
        dt = declared.dt
    if store_every is None:
        store_every = declared.store_every if grid is None else 1
    if horizon is None:
        horizon = problem.horizon
    if isinstance(horizon, bool) or not isinstance(horizon, (int, float)) or not (
            math.isfinite(horizon) and horizon > 0):
        raise InputError(f"horizon must be a positive finite number; got {horizon!r}")
    horizon = float(horizon)
    for name, val in (("tol", tol),):
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not (math.isfinite(val) and val > 0):
            raise InputError(f"{name} must be a positive number; got {val!r}")
    if isinstance(max_policy_iterations, bool) or not isinstance(max_policy_iterations, int) or \
            max_policy_iterations < 1:
        raise InputError(f"max_policy_iterations must be an integer >= 1; got {max_policy_iterations!r}")
    if grid is None:
        grid = default_grid(problem)
    elif not isinstance(grid, Grid):
        raise InputError(f"grid must be a Grid; got {type(grid).__name__}")
    check_grid_size(grid.points, len(problem.controls))
    start = time.perf_counter()
    coeffs = evaluate_coefficients(problem, grid)
    if scheme == "explicit":
        times, cfl_number = explicit_time_grid(horizon, coeffs, dt)
    else:
        check_supported(coeffs)
        times = implicit_time_grid(horizon, coeffs, dt)
        cfl_number = (times[1] - times[0]) * coeffs.cfl_rate()
    K = len(times) - 1
    stored = stored_levels(K, store_every)
    _check_storage(coeffs, stored)
    with _threads(num_threads):
        if scheme == "explicit":
            store, diag = march_explicit(coeffs, times, stored, progress)
        else:
            store, diag = march_implicit(coeffs, times, stored, tol, max_policy_iterations, progress)
    controls, convex = {}, {}
    for p, name in enumerate(coeffs.players):
        controls[f"u_{name}"] = store.U[:, p]
        if coeffs.isbatch[p]:
            controls[f"m_{name}"] = store.M[:, p]
        convex[name] = store.C[:, p]
    import numba

    diagnostics = {
        "scheme": scheme,
        "dt": float(times[1] - times[0]),
        "steps": K,
        "cfl_number": float(cfl_number),
        "max_monotone_dt": (1.0 / coeffs.cfl_rate()) if coeffs.cfl_rate() > 0 else float("inf"),
        "safety": SAFETY,
        "threads": int(num_threads or numba.get_num_threads()),
        **diag,
    }
    if scheme == "implicit":
        diagnostics["max_policy_iterations_used"] = int(diag["policy_iterations"].max())
        diagnostics["mean_policy_iterations"] = float(diag["policy_iterations"].mean())
        diagnostics["max_residual"] = float(diag["residuals"].max())
        diagnostics["tol"] = tol
    solution = Solution(
        problem=problem.model.name, time_name=problem.model.time_name, state_names=grid.names, grid=grid,
        times=times, stored=stored, values=store.values, controls=controls, convex=convex,
        u_bounds={c.player.name: (c.u_min, c.u_max) for c in problem.controls},
        diagnostics=diagnostics, metadata={**_metadata(problem), "horizon": horizon},
    )
    if check_boundary:
        report = boundary_sensitivity(problem, grid, factor=boundary_factor, horizon=horizon, scheme=scheme,
                                      dt=diagnostics["dt"] if scheme == "implicit" else None, progress=progress,
                                      num_threads=num_threads, reference=solution)
        diagnostics.update(boundary_sensitivity=report.inner_difference, boundary_reach=report.reach,
                           boundary_max_difference=report.max_difference, boundary_factor=report.factor)
    diagnostics["wall_time"] = time.perf_counter() - start
    return solution


def _check_storage(coeffs, stored):
    P = len(coeffs.sign)
    per_level = coeffs.grid.size * (8 + P * (9 + (8 if coeffs.isbatch.any() else 0)))
    need = per_level * len(stored)
    if need > MAX_STORAGE_BYTES:
        levels = max(2, int(MAX_STORAGE_BYTES // per_level))
        every = math.ceil((stored[-1]) / (levels - 1))
        raise InputError(f"storing {len(stored)} levels needs {need / 2**30:.1f} GiB; "
                         f"pass store_every >= {every}")


@dataclass(frozen=True)
class BoundarySensitivity:
    """How much the truncated domain's boundary changes V(0, .).

    Attributes:
        factor: enlargement factor of the comparison domain.
        max_difference: max |V - V_large| at t = 0 over the original grid.
        inner_difference: the same over the inner region (nodes at least a
            quarter of the width away from every face).
        reach: largest distance from the nearest face, as a fraction of that
            axis's width (0 to 0.5), of a node where |V - V_large| > tol.
        tol: the threshold used for ``reach``.
        difference: |V - V_large| on the original grid at t = 0.
    """

    factor: float
    max_difference: float
    inner_difference: float
    reach: float
    tol: float
    difference: np.ndarray


def boundary_sensitivity(problem, grid: Grid | None = None, *, factor: float = 1.5, tol: float = 1e-3,
                         reference: Solution | None = None, **solve_options) -> BoundarySensitivity:
    """Compare V(0, .) with a solve on a domain ``factor`` times as wide with the same spacing.

    The enlarged grid (:meth:`Grid.enlarged`) contains the original nodes, so
    the difference is taken node by node without interpolation. Explicit
    solves use the smaller of the two monotone steps on both grids, so only
    the domain differs.

    Args:
        problem: the control problem.
        grid: the grid (default as in :func:`solve_continuous`).
        factor: enlargement factor (> 1).
        tol: threshold of :attr:`BoundarySensitivity.reach`.
        reference: an existing solve on ``grid`` to reuse.
        solve_options: passed to :func:`solve_continuous` (``horizon``, ``scheme``, ``dt``, ...).
    """
    problem = _as_problem(problem)
    grid = default_grid(problem) if grid is None else grid
    big = grid.enlarged(factor)
    opts = {k: v for k, v in solve_options.items() if k not in ("store_every", "check_boundary")}
    opts["store_every"] = 10**9
    scheme = opts.get("scheme") or problem.model.solve_defaults.scheme
    opts["scheme"] = scheme
    if scheme == "explicit" and opts.get("dt") is None:
        horizon = opts.get("horizon") or problem.horizon
        t_small, _ = explicit_time_grid(horizon, evaluate_coefficients(problem, grid))
        t_big, _ = explicit_time_grid(horizon, evaluate_coefficients(problem, big))
        opts["dt"] = min(t_small[1] - t_small[0], t_big[1] - t_big[0])
        reference = reference if reference is not None and abs(reference.times[1] - opts["dt"]) < 1e-15 else None
    elif scheme == "implicit" and opts.get("dt") is None:
        opts["dt"] = (reference.times[1] - reference.times[0]) if reference is not None else \
            problem.model.solve_defaults.dt
    small = reference if reference is not None else solve_continuous(problem, grid, **opts)
    large = solve_continuous(problem, big, **opts)
    offset = [int(round((lo - blo) / h)) for lo, blo, h in zip(grid.lower, big.lower, grid.spacing)]
    inner = tuple(slice(o, o + n) for o, n in zip(offset, grid.points))
    diff = np.abs(small.values[0] - large.values[0][inner])
    dist = np.full(grid.shape, np.inf)
    for i, (ax, lo, hi) in enumerate(zip(grid.axes, grid.lower, grid.upper)):
        frac = np.minimum(ax - lo, hi - ax) / (hi - lo)
        shape = [1] * grid.ndim
        shape[i] = -1
        dist = np.minimum(dist, frac.reshape(shape))
    inner_mask = dist >= 0.25 - 1e-12
    over = diff > tol
    return BoundarySensitivity(
        factor=float(factor),
        max_difference=float(diff.max()),
        inner_difference=float(diff[inner_mask].max()) if inner_mask.any() else float("nan"),
        reach=float(dist[over].max()) if over.any() else 0.0,
        tol=float(tol),
        difference=diff,
    )


# ------------------------------------------------------------------ configuration
CONTROL_KEYS = ("u_min", "u_max", "eta", "batch_size", "noise", "b_min", "b_max", "kappa")
SOLVER_KEYS = ("grid", "horizon", "scheme", "dt", "store_every", "boundary", "tol", "max_policy_iterations", "steps")


def problem_from_config(config, **overrides) -> ControlProblem:
    """A :class:`ControlProblem` from a model config's ``[control]`` table and keyword overrides.

    Keys (all optional): u_min, u_max, eta, batch_size, noise, and b_min,
    b_max, kappa together for batch control; ``horizon`` comes from the
    ``[solver]`` table or the overrides. ``None`` overrides are ignored.
    """
    control = dict(getattr(config, "control", {}) or {})
    unknown = set(control) - set(CONTROL_KEYS)
    if unknown:
        raise InputError(f"[control]: unknown key {sorted(unknown)[0]!r}; valid keys: {', '.join(CONTROL_KEYS)}")
    control.update({k: v for k, v in overrides.items() if v is not None and k != "horizon"})
    batch_keys = [k for k in ("b_min", "b_max", "kappa") if k in control]
    batch = None
    if batch_keys:
        if len(batch_keys) != 3:
            raise InputError("batch control needs b_min, b_max and kappa together; got only "
                             + ", ".join(batch_keys))
        batch = BatchControl(float(control.pop("b_min")), float(control.pop("b_max")), float(control.pop("kappa")))
    horizon = overrides.get("horizon")
    if horizon is None:
        horizon = (getattr(config, "solver", {}) or {}).get("horizon")
    kwargs = {k: control[k] for k in ("u_min", "u_max", "eta", "batch_size", "noise") if k in control}
    for k in ("u_min", "u_max", "eta"):
        if k in kwargs:
            kwargs[k] = _number(kwargs[k], k)
    if "batch_size" in kwargs:
        b = kwargs["batch_size"]
        if isinstance(b, float) and b.is_integer():
            kwargs["batch_size"] = int(b)
    return ControlProblem.from_model(config.model, horizon=None if horizon is None else _number(horizon, "horizon"),
                                     batch=batch, **kwargs)


def _number(v, name) -> float:
    if isinstance(v, bool):
        raise InputError(f"{name} must be a number; got {v!r}")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number; got {v!r}") from None


def solver_options_from_config(config) -> dict:
    """Validated ``[solver]`` table of a model config (keys :data:`SOLVER_KEYS`)."""
    solver = dict(getattr(config, "solver", {}) or {})
    unknown = set(solver) - set(SOLVER_KEYS)
    if unknown:
        raise InputError(f"[solver]: unknown key {sorted(unknown)[0]!r}; valid keys: {', '.join(SOLVER_KEYS)}")
    return solver


solve = solve_continuous
"""The continuous-time scheme's entry point under its earlier name (:func:`stochctl.solvers.solve`
chooses between it and the discrete-time ones)."""

__all__ = ["solve", "solve_continuous", "boundary_sensitivity", "BoundarySensitivity", "default_grid", "problem_from_config",
           "solver_options_from_config", "SCHEMES", "MODEL_DEFAULTS", "DEFAULT_BOUNDARY"]
