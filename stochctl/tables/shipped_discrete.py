"""The packaged table of the discrete local model (design section 4b), and how it is built.

The discrete local model is the training iteration along the gradient direction in its
dimensionless variables,

    Y_{k+1} = (1 - h u_k) Y_k - u_k sqrt(h) xi_k,   u in [0, u_max],   cost E[Y_K^2],

with h = eta a (the step in curvature units). Its Bellman recursion is solved by
:func:`stochctl.solvers.bellman.solve_discrete` for every u_max and h node, and the optimal
multiplier is tabulated on the axes ``u_max``, ``h``, ``tau_remaining``, ``y`` (value ``u``).

Saturation. Where u* reaches u_max (or 0) it has a kink, whose position moves with h, tau and y;
linear interpolation of u* between nodes cuts the kink with an error up to about
u_max (ratio - 1) / 4 (0.09 at u_max = 8 for h nodes 2^(1/8) apart). So the table also holds
``u_continued``, the optimum continued past the bound it sits on (the nearest local minimiser of
the Bellman objective beyond it, ``solve_discrete(..., continuation=True)``), which is smooth
across the kink; lookups of ``u`` interpolate ``u_continued`` and clip the result to
[0, u_max] (value rule ``interpolant="u_continued", clip=(0, "u_max")``). At every node
``u`` = clip(``u_continued``, 0, u_max) exactly.

Axes:

- ``u_max`` in {1, 2, 4, 8}: a trainer picks the node it runs with. Between nodes the lookup
  interpolates ``u_continued`` linearly and clips at the queried u_max, which is not exactly the
  policy of an intermediate bound.
- ``h``: powers of two 2^-10 (about 1e-3) to 2^-4 with ratio 2, where the policy is close to the
  continuous one and varies slowly in h; ratio 2^(1/8) from 2^-4 to 1 and 2^(1/4) from 1 to 4,
  where the policy follows the landing step u ~ 1/h and linear interpolation needs dense nodes.
- ``tau_remaining`` = n h in [0, 8]: a lookup at n h gives the policy with n steps left. The
  values at the tau breakpoints are fitted so that their linear interpolant passes through the
  policy at tau = n h, n = 1, 2, ... (:func:`tau_node_values`): exact to about 1e-3 where the
  steps are sparser than the breakpoints, a least-squares fit where they are denser. Below
  tau = h (past the last step) lookups give about the one-step policy
  u = min(u_max, y^2 / (1 + h y^2)); beyond 8 they clamp.
- ``y`` in [-6, 6], even (step 0.02 to 0.6, 0.05 to 3, 0.1 to 6); beyond 6 lookups clamp.

Below the smallest h (eta a < 2^-10) the continuous table ``local-quadratic`` applies; the two
are compared where they meet (metadata ``continuous_agreement``). Built by
``stochctl table build-local --discrete``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import NumericalError
from . import MULTIPLIER, SHIPPED_TABLES, PolicyTable, TableAxis, TableValue

MODEL = "local-discrete"
TABLE_NAME = "local-discrete"
U_MAX_NODES = (1.0, 2.0, 4.0, 8.0)
TAU_MAX = 8.0
Y_MAX = 6.0
SOLVE_POINTS = 601
"""Nodes of the Bellman solves on [-6, 6] (spacing 0.02)."""
QUICK_POINTS = 121
ZERO_ZONE = 1e-3
"""u* below this counts as the zone near y = 0 where the policy does not move."""
CONTINUED = "continued_u_{}"
"""The solution's control holding the policy continued past its bounds."""


def h_axis(quick: bool = False) -> np.ndarray:
    """Breakpoints of h (module docstring); ``quick``: a coarse axis for smoke tests."""
    if quick:
        return 2.0 ** np.arange(-4, 3, 2, dtype=float)
    small = 2.0 ** np.arange(-10, -4, dtype=float)
    middle = 2.0 ** (-4 + np.arange(0, 33) / 8.0)
    large = 2.0 ** (np.arange(1, 9) / 4.0)
    return np.concatenate([small, middle, large])


def tau_axis(quick: bool = False) -> np.ndarray:
    """tau_remaining breakpoints: step 1/16 on [0, 1], 1/4 on [1, 8]."""
    if quick:
        return np.linspace(0.0, TAU_MAX, 9)
    return np.concatenate([np.arange(17) / 16.0, 1.0 + np.arange(1, 29) / 4.0])


def y_axis(quick: bool = False) -> np.ndarray:
    """y breakpoints: step 0.02 on [0, 0.6] (the solves' spacing, where u* leaves the zone near
    y = 0 where it is 0), 0.05 to 3, 0.1 to 6; mirrored."""
    if quick:
        ypos = np.linspace(0.5, Y_MAX, 12)
    else:
        ypos = np.round(np.concatenate([np.arange(1, 31) * 0.02, 0.6 + np.arange(1, 49) * 0.05,
                                        3.0 + np.arange(1, 31) * 0.1]), 12)
    return np.concatenate([-ypos[::-1], [0.0], ypos])


def solve_slice(u_max: float, h: float, points: int = SOLVE_POINTS, tau_max: float = TAU_MAX,
                continuation: bool = False):
    """Bellman solve of the discrete local model for one (u_max, h) with tau_max / h steps (at least 1).

    ``continuation``: also keep the policy continued past its bounds (``continued_u_y``).
    """
    from ..models import get_model
    from ..solvers.bellman import solve_discrete
    from ..solvers.grid import Grid
    from ..symbolic.problem import ControlProblem

    problem = ControlProblem.from_model(get_model(MODEL, h=h), u_max=u_max)
    grid = Grid.from_domain({"y": (-Y_MAX, Y_MAX)}, points, "linear")
    steps = max(1, math.ceil(tau_max / h - 1e-9))
    return solve_discrete(problem, grid, steps=steps, progress=False, num_threads=1, continuation=continuation)


def policy_at(solution, n: np.ndarray, y: np.ndarray, key: str = "u_{}") -> np.ndarray:
    """u*(n steps left, y) of a discrete solution: linear in n between whole steps, n < 1 -> n = 1.

    ``key``: the control to read, ``{}`` standing for the player (``"continued_u_{}"``: the
    policy continued past its bounds).
    """
    N = solution.n_steps
    nodes = solution.grid.axes[0]
    by_n = solution.controls[key.format(solution.players[0])][::-1]  # row n - 1: n steps left
    n = np.clip(np.asarray(n, dtype=float), 1.0, N)
    lo = np.minimum(np.floor(n).astype(int), N - 1)
    w = n - lo
    rows_lo = by_n[lo - 1]
    rows_hi = by_n[np.minimum(lo, N - 1)]
    u_lo = np.array([np.interp(y, nodes, r) for r in rows_lo])
    u_hi = np.array([np.interp(y, nodes, r) for r in rows_hi])
    return (1 - w)[:, None] * u_lo + w[:, None] * u_hi


def policy_points(solution, n: np.ndarray, y: np.ndarray) -> np.ndarray:
    """u*(n_i steps left, y_i) for pairs (whole n_i >= 1), linear in y between the solve's nodes."""
    nodes = solution.grid.axes[0]
    by_n = solution.controls[f"u_{solution.players[0]}"][::-1]  # row n - 1: n steps left
    rows = by_n[np.asarray(n, dtype=int) - 1]
    y = np.clip(np.asarray(y, dtype=float), nodes[0], nodes[-1])
    i = np.clip(np.searchsorted(nodes, y, side="right") - 1, 0, nodes.size - 2)
    w = (y - nodes[i]) / (nodes[i + 1] - nodes[i])
    k = np.arange(y.size)
    return (1 - w) * rows[k, i] + w * rows[k, i + 1]


def tau_node_values(solution, h: float, tau: np.ndarray, y: np.ndarray, weight: float = 1e-3,
                    key: str = "u_{}") -> np.ndarray:
    """Values at the tau breakpoints whose linear interpolant passes through the policy at tau = n h.

    Least squares over the steps n = 1, 2, ... with n h <= tau[-1]: the interpolant between the
    breakpoints at n h must equal u*(n steps left); each breakpoint is also pulled, with the small
    ``weight``, to the policy at n = tau / h (linear in n, n < 1 -> 1), which fixes the breakpoints
    no step constrains. Where steps are sparser than breakpoints (h above the spacing) the steps
    are met to about ``weight``; where they are denser it is the least-squares fit.
    """
    m = tau.size
    n = np.arange(1, solution.n_steps + 1)
    n = n[n * h <= tau[-1] * (1 + 1e-12)]
    t = n * h
    cell = np.clip(np.searchsorted(tau, t, side="right") - 1, 0, m - 2)
    frac = (t - tau[cell]) / (tau[cell + 1] - tau[cell])
    A = np.zeros((n.size + m, m))
    A[np.arange(n.size), cell] = 1.0 - frac
    A[np.arange(n.size), cell + 1] = frac
    A[n.size + np.arange(m), np.arange(m)] = weight
    rhs = np.vstack([policy_at(solution, n, y, key), weight * policy_at(solution, tau / h, y, key)])
    values, *_ = np.linalg.lstsq(A, rhs, rcond=None)
    return values


def _slice_job(args):
    u_max, h, points, tau, y = args
    t0 = time.perf_counter()
    sol = solve_slice(u_max, h, points, continuation=True)
    w = tau_node_values(sol, h, tau, y, key=CONTINUED)
    d = sol.diagnostics
    return u_max, h, w, {"steps": int(d["steps"]), "seconds": time.perf_counter() - t0,
                         "mass_outside": float(d["mass_outside"])}


def _run(jobs, workers: int, say):
    out = []
    if workers <= 1:
        for j in jobs:
            out.append(_slice_job(j))
        return out
    # spawn, not fork: a parent that has run numba's threaded kernels (OpenMP) must not fork
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for i, res in enumerate(pool.map(_slice_job, jobs), 1):
            out.append(res)
            if i % 20 == 0:
                say(f"  {i}/{len(jobs)} slices")
    return out


def _cost(job) -> float:
    u_max, h = job[0], job[1]
    return (TAU_MAX / h) * (1.0 + u_max * math.sqrt(h))


def interpolation_error(table: PolicyTable, *, points: int = SOLVE_POINTS, quick: bool = False,
                        seed: int = 20261203) -> dict:
    """Table lookups against direct Bellman solves at h between the table's nodes.

    At each u_max node and at geometric midpoints of h cells, n steps left with n h in (0, 8] and
    y in [-5, 5] drawn at random: |u_table - u_bellman|. ``interior`` excludes the points whose
    table cell (the two neighbouring h nodes, tau and y breakpoints) straddles the edge of the zone
    near y = 0 where u* = 0: there u* leaves 0 with a slope of up to about 10 per unit y, and the
    edge moves with the steps left, so no cell that holds it is linear. Saturation at u_max needs
    no exclusion: lookups interpolate the continued policy (module docstring).
    """
    rng = np.random.default_rng(seed)
    hs = table.axis("h").breakpoints
    tau_bp = table.axis("tau_remaining").breakpoints
    y_bp = table.axis("y").breakpoints
    mids = np.sqrt(hs[:-1] * hs[1:])
    pick = mids[mids >= (0.05 if not quick else 0.0)]
    pick = pick[:: max(1, len(pick) // 8)]
    errors, fronts = [], []
    for u_max in table.axis("u_max").breakpoints:
        for h in pick:
            sol = solve_slice(float(u_max), float(h), points)
            n = rng.integers(1, sol.n_steps + 1, size=200)
            y = rng.uniform(-5.0, 5.0, size=200)
            ref = policy_points(sol, n, y)
            got = table.lookup(u_max=np.full(200, u_max), h=np.full(200, h), tau_remaining=n * h, y=y)["u"]
            errors.append(np.abs(np.asarray(got) - ref))
            ih = int(np.searchsorted(hs, h) - 1)
            it = np.clip(np.searchsorted(tau_bp, n * h) - 1, 0, tau_bp.size - 2)
            j = np.clip(np.searchsorted(y_bp, y) - 1, 0, y_bp.size - 2)
            corners = np.array([table.lookup(u_max=np.full(200, u_max), h=np.full(200, hc),
                                             tau_remaining=tau_bp[it + dt], y=y_bp[j + dy])["u"]
                                for hc in (hs[ih], hs[ih + 1]) for dt in (0, 1) for dy in (0, 1)])
            fronts.append((corners.min(axis=0) < ZERO_ZONE) & (corners.max(axis=0) >= ZERO_ZONE))
    errors = np.concatenate(errors)
    front = np.concatenate(fronts)
    inner = errors[~front]
    return {
        "points": int(errors.size),
        "h_checked": [float(v) for v in pick],
        "u_max_abs": float(errors.max()),
        "u_p99_abs": float(np.quantile(errors, 0.99)),
        "u_mean_abs": float(errors.mean()),
        "interior_points": int(inner.size),
        "interior_u_max_abs": float(inner.max()),
        "interior_u_p99_abs": float(np.quantile(inner, 0.99)),
        "front_points": int(front.sum()),
        "front_u_max_abs": float(errors[front].max()) if front.any() else 0.0,
        "evaluation": "u_max nodes x h at geometric midpoints of h cells x 200 random (n steps left, y in [-5, 5]); "
                      f"interior: points whose table cell does not straddle the edge of the zone u* < {ZERO_ZONE} "
                      "near y = 0 (front points: those whose cell does)",
    }


def continuous_agreement(table: PolicyTable) -> dict:
    """The u_max = 1 slice at the smallest h against the continuous table ``local-quadratic``.

    On the discrete table's tau breakpoints and y in [-6, 6] with step 0.05.
    """
    from . import load_table

    cont = load_table("local-quadratic")
    tau = table.axis("tau_remaining").breakpoints
    y = np.linspace(-Y_MAX, Y_MAX, 241)
    h0 = float(table.axis("h").breakpoints[0])
    T, Y = np.meshgrid(tau, y, indexing="ij")
    disc = np.asarray(table.lookup(u_max=np.ones_like(T), h=np.full_like(T, h0), tau_remaining=T, y=Y)["u"])
    ref = np.asarray(cont.lookup(tau_remaining=T, y=Y)["u"])
    du = np.abs(disc - ref)
    far = np.abs(Y) >= 0.5
    return {"h": h0, "u_max": 1.0, "u_max_abs": float(du.max()), "u_mean_abs": float(du.mean()),
            "u_max_abs_y_ge_0.5": float(du[far].max()),
            "note": "over the discrete table's tau_remaining breakpoints and y in [-6, 6] with step 0.05; the "
                    "largest differences sit at the policy's front near y = 0, where both tables resolve it only "
                    "to their breakpoints"}


def build_discrete_table(*, quick: bool = False, workers: int | None = None, check: bool = True,
                         log=None) -> PolicyTable:
    """Solve every (u_max, h) slice and tabulate u* on the module's axes.

    Args:
        quick: coarse axes and grid (seconds), for smoke tests.
        workers: processes (default: the machine's cores).
        check: measure the interpolation error against direct solves between h nodes and the
            agreement with the continuous table, and store both in the metadata.
        log: callable receiving progress lines.
    """
    say = log or (lambda msg: None)
    workers = workers or os.cpu_count() or 1
    u_nodes = np.array(U_MAX_NODES)
    hs, tau, y = h_axis(quick), tau_axis(quick), y_axis(quick)
    points = QUICK_POINTS if quick else SOLVE_POINTS
    jobs = sorted(((float(um), float(h), points, tau, y) for um in u_nodes for h in hs), key=_cost, reverse=True)
    t0 = time.perf_counter()
    say(f"solving {len(jobs)} (u_max, h) slices on {points} nodes with {workers} worker(s)")
    results = _run(jobs, workers, say)
    W = np.empty((u_nodes.size, hs.size, tau.size, y.size))
    seconds, mass = 0.0, 0.0
    for u_max, h, w, diag in results:
        W[int(np.flatnonzero(u_nodes == u_max)[0]), int(np.flatnonzero(hs == h)[0])] = w
        seconds += diag["seconds"]
        mass = max(mass, diag["mass_outside"])
    wall = time.perf_counter() - t0
    say(f"solved in {wall:.1f} s ({seconds:.1f} s of solver time)")
    if not np.all(np.isfinite(W)):
        raise NumericalError("the discrete table has non-finite entries")
    U = np.clip(W, 0.0, u_nodes[:, None, None, None])
    axes = [
        TableAxis("u_max", u_nodes, units=MULTIPLIER, estimator="the trainer's bound on the multiplier",
                  long_name="upper bound of the learning-rate multiplier; lookups between nodes interpolate "
                            "linearly (not the policy of an intermediate bound)"),
        TableAxis("h", hs, units="1", estimator="eta*a",
                  long_name="step in curvature units eta*a; below the first node the continuous table "
                            "local-quadratic applies, beyond 4 lookups clamp"),
        TableAxis("tau_remaining", tau, units="1", estimator="eta*a*(K-k)",
                  long_name="dimensionless time to go n*h with n steps left; beyond 8 lookups clamp"),
        TableAxis("y", y, units="1", estimator="sqrt(SNR / (h (1 - SNR)))",
                  long_name="distance to the minimum in noise units |x| sqrt(a / (eta s^2)); even; beyond 6 "
                            "lookups clamp"),
    ]
    values = [TableValue("u", U, units=MULTIPLIER, valid_range=(0.0, float(u_nodes[-1])),
                         long_name="optimal learning-rate multiplier of the discrete local model; lookups clip "
                                   "the interpolated u_continued to [0, u_max]",
                         interpolant="u_continued", clip=(0.0, "u_max")),
              TableValue("u_continued", W, units=MULTIPLIER, valid_range=(-math.inf, math.inf), fallback=0.0,
                         long_name="the optimal multiplier continued past the bound it sits on (the nearest local "
                                   "minimiser beyond it); clipped to [0, u_max] it is u, and it has no kink where "
                                   "u meets a bound")]
    meta = {
        "problem": MODEL,
        "equation": "Y_{k+1} = (1 - h u_k) Y_k - u_k sqrt(h) xi_k, u in [0, u_max], cost E[Y_K^2]",
        "parameters": {},
        "eta": 1.0,
        "horizon": TAU_MAX,
        "scheme": "bellman",
        "solver": {"method": "discrete-time Bellman recursion; V = quadratic + piecewise-linear interpolant, "
                             "expectation exact; u by bracket, exact walk and Newton; u_continued: the nearest "
                             "local minimiser beyond the bound u sits on", "points": points,
                   "domain": [-Y_MAX, Y_MAX], "solver_seconds": seconds, "wall_seconds": wall,
                   "workers": workers, "max_mass_outside": mass},
        "grid": {"y": [-Y_MAX, Y_MAX], "points": points},
        "tau_rule": "tau breakpoints fitted (least squares) so that the linear interpolant at tau = n h is "
                    "the policy with n steps left; each breakpoint weakly (1e-3) pulled to the policy at n = tau/h",
        "refinement_error": None,
        "build_command": "stochctl table build-local --discrete",
    }
    table = PolicyTable.from_arrays(axes, values, metadata=meta,
                                    history=f"built from Bellman solves of {MODEL} on {points} nodes")
    if not check:
        return table
    t0 = time.perf_counter()
    meta["interpolation_error"] = interpolation_error(table, points=points, quick=quick)
    meta["continuous_agreement"] = continuous_agreement(table)
    say(f"checks in {time.perf_counter() - t0:.1f} s: interpolation error (largest: interior "
        f"{meta['interpolation_error']['interior_u_max_abs']:.3g}, all points "
        f"{meta['interpolation_error']['u_max_abs']:.3g}), continuous agreement (mean) "
        f"{meta['continuous_agreement']['u_mean_abs']:.3g}")
    return PolicyTable.from_arrays(axes, values, metadata=meta,
                                   history=f"built from Bellman solves of {MODEL} on {points} nodes; "
                                           "interpolation error and continuous agreement measured")


def default_path() -> Path:
    """``stochctl/data/local_discrete_table.npz``."""
    return Path(__file__).resolve().parent.parent / "data" / SHIPPED_TABLES[TABLE_NAME]


def write_discrete_table(out=None, *, quick: bool = False, check: bool = True, workers: int | None = None,
                         log=print) -> tuple[Path, PolicyTable]:
    """Build the table (:func:`build_discrete_table`) and save it to ``out``.

    The default is ``local_discrete_table.npz`` in the current folder, never the packaged file:
    to replace that, pass :func:`default_path` explicitly.
    """
    table = build_discrete_table(quick=quick, check=check, workers=workers, log=log)
    path = Path(out) if out is not None else Path(SHIPPED_TABLES[TABLE_NAME])
    table.save(path)
    return path, table
