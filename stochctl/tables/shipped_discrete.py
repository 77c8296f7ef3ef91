"""The packaged table of the discrete local model (design section 4b), and how it is built.

The model Y_{k+1} = (1 - h u) Y_k - u sqrt(h) xi_k, u in [0, u_max], cost E[Y_K^2], depends on three
variables, not four (:mod:`.discrete_policy`): the table holds r = u* / u_max on the axes
Z = h u_max, T = u_max tau_remaining = n Z (n steps left) and v = y / sqrt(u_max) >= 0, which is the
u_max = 1 policy at h = Z. Each Z node is one Bellman iteration of the u_max = 1 model at h = Z
(:func:`iterate_slice`, with the kernels of :func:`stochctl.solvers.bellman.solve_discrete`), run
until its policy is stationary (:func:`iterate_slice` states the test); T beyond the steps
computed takes that stationary policy.

Axes:

- ``Z``: 0 (the continuous limit, the packaged ``local-quadratic`` table, u_max = 1), 2^-11, then
  2^-10 to 2^-8 with ratio 2^(1/2), 2^-8 to 2^-4 with ratio 2^(1/4), 2^-4 to
  Z_SAT = 2^(1/4) with ratio 2^(1/8). Above Z_SAT the cap no longer binds
  (largest unconstrained h u* measured at Z = 2 and 8: below 1), so lookups use the Z_SAT node in
  the variables n and w = sqrt(h) y (exact, :mod:`.discrete_policy`).
- ``T`` in [0, T_MAX]: the values at the breakpoints are fitted so that their linear interpolant
  passes through the policy at T = n Z, n = 1, 2, ... (:func:`t_node_values`). Beyond T_MAX: the
  stationary policy.
- ``v`` in [0, V_MAX]: u* is even in y. Beyond V_MAX lookups take the value at V_MAX.

Values: ``u_continued``, the optimum continued past the bound it sits on (smooth across the kink
where u* meets 0 or u_max), rounded to a multiple of :data:`QUANTUM` (so that the compressed file
stays small), and ``u`` = its interpolant clipped to [0, 1] (value rule). Built by
``stochctl table build-local --discrete``; :func:`~.discrete_policy.lookup` reads it.
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
from .discrete_policy import QUERY_AXES

MODEL = "local-discrete"
TABLE_NAME = "local-discrete"
Z_SAT = 2.0 ** 0.25
T_MAX = 96.0
V_MAX = 24.0
GRIDS = ((0.25, 3.0, 601), (0.8, 8.0, 801), (math.inf, V_MAX, 1601))
"""Solve grids (Z below, half-width, nodes): [-3, 3] by 0.01 for Z < 0.25 (also below 2^-8: on [-2, 2]
the policy at Z = 2^-10 moved by up to 0.069 in r at the edge of the zone u* = 0 and its stationary
policy by 0.0075) and [-8, 8] by 0.02 for
Z < 0.8, where the policy saturates (u_continued >= 1.4 u_max from |y| = 1.5 for Z < 0.25, >= 1.1 from 4
for Z < 0.84, in a build on wider grids); [-V_MAX, V_MAX] by 0.03 above, where z* keeps growing
towards 1 with w."""
QUICK_POINTS = 241
TOL_U = 1e-4
"""Stationarity: the policy (r) moved by at most this over the last half of the steps ..."""
TOL_V = 1e-5
"""... and the normalised value V_n / max V_n by at most this in the last step."""
CONTINUED = "continued_u_{}"
QUANTUM = 2.0 ** -20
"""Stored values are multiples of this (about 1e-6 in r = u / u_max, far below the accuracy of the
table): the compressed file is 2.4 times smaller than with full float64 mantissas."""


def z_axis(quick: bool = False) -> np.ndarray:
    """Z nodes (module docstring); ``quick``: a coarse axis for smoke tests."""
    if quick:
        return np.array([0.0, 2.0 ** -4, 2.0 ** -2, 1.0, Z_SAT])
    return np.concatenate([[0.0], 2.0 ** np.array([-11.0, -10.0, -9.5, -9.0, -8.5]),
                           2.0 ** (-8 + np.arange(16) / 4.0), 2.0 ** (-4 + np.arange(0, 35) / 8.0)])


def t_axis(quick: bool = False) -> np.ndarray:
    """T breakpoints: 0, 2^-8, 2^-7, 2^-6, 2^-5, 3/64 (a few steps left at small Z), step 1/16 on
    [1/16, 1], 1/8 on [1, 4], 1/4 on [4, 8], then ratio about 1.2 to T_MAX."""
    if quick:
        return np.concatenate([np.linspace(0.0, 8.0, 9), [T_MAX]])
    far = np.geomspace(8.0, T_MAX, 15)[1:]
    return np.concatenate([[0.0, 2.0**-8, 2.0**-7, 2.0**-6, 2.0**-5, 3.0 / 64], np.arange(1, 17) / 16.0, 1.0 + np.arange(1, 25) / 8.0, 4.0 + np.arange(1, 17) / 4.0, far])


def v_axis(quick: bool = False) -> np.ndarray:
    """v breakpoints (v >= 0): step 0.01 to 0.6 (the edge of the zone u* = 0 near y = 0), 0.05 to 3,
    0.1 to 6, 0.5 to 10, 1 to 16, 2 to V_MAX."""
    if quick:
        return np.array([0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, V_MAX])
    return np.round(np.concatenate([[0.0], np.arange(1, 61) * 0.01, 0.6 + np.arange(1, 49) * 0.05,
                                    3.0 + np.arange(1, 31) * 0.1, 6.0 + np.arange(1, 9) * 0.5,
                                    10.0 + np.arange(1, 7), 16.0 + 2.0 * np.arange(1, 5)]), 12)


def slice_grid(Z: float, quick: bool = False) -> np.ndarray:
    """Uniform, symmetric nodes in y of the u_max = 1 solve at h = Z."""
    if quick:
        return np.linspace(-V_MAX, V_MAX, QUICK_POINTS)  # spacing 0.2
    half, points = next((half, points) for below, half, points in GRIDS if Z < below)
    return np.linspace(-half, half, points)


def iterate_slice(Z: float, nodes: np.ndarray, n_max: int, *, tol_u: float = TOL_U, tol_v: float = TOL_V):
    """Bellman iteration of the u_max = 1 model at h = Z until its policy is stationary.

    V_0 = y^2, V_n(y) = min_{u in [0, 1]} E V_{n-1}(y - u (Z y + sqrt(Z) xi)), renormalised to
    max V_n = 1 at every step (the minimiser does not change; V_n itself decays to 0 and would reach
    the floating-point floor). Stationary at the first n >= 8 where max |u_n - u_k| <= ``tol_u`` for
    every k in [n/2, n] and max |Vhat_n - Vhat_{n-1}| <= ``tol_v``; ``n_max`` steps at most.

    Returns (u, w, info): u and w (the policy continued past its bounds) with row n - 1 for n steps
    left, and ``info`` with ``steps``, ``converged``, the last per-step changes of the policy and
    the normalised value, and the policy's change over the last half of the steps.
    """
    from ..solvers.bellman import LineStepper

    nodes = np.ascontiguousarray(nodes, dtype=float)
    centre = nodes.size // 2
    a = Z * nodes
    b = np.full(nodes.size, math.sqrt(Z))
    stepper = LineStepper(nodes, active=np.arange(centre, nodes.size, dtype=np.int64))
    V = nodes * nodes
    V = V / V.max()
    us, ws = [], []
    info = {"Z": Z, "converged": False}
    next_check = 8  # the half-window test runs on a geometric sequence of n (cost O(n) each)
    for n in range(1, n_max + 1):
        v, u, _, w = stepper.step(V, a, b, 0.0, 1.0, continuation=True)
        for arr in (v, u, w):
            arr[:centre] = arr[:centre:-1]
        if not np.all(np.isfinite(v)) or v.max() <= 0:
            raise NumericalError(f"the Bellman iteration at Z={Z:g} became degenerate after {n} steps")
        v = v / v.max()
        dv = float(np.abs(v - V).max())
        V = v
        us.append(u)
        ws.append(w)
        du = float(np.abs(u - us[-2]).max()) if n > 1 else math.inf
        if n >= next_check and dv <= tol_v and du <= tol_u:
            next_check = int(n * 1.05) + 1
            drift = max(float(np.abs(us[k] - u).max()) for k in range(n // 2 - 1, n))
            if drift <= tol_u:
                info.update(converged=True, policy_change_last_half=drift)
                break
        info["policy_change_last_half"] = math.nan
    info.update(steps=len(us), policy_change_per_step=du, value_change_per_step=dv)
    return np.array(us), np.array(ws), info


def t_node_values(rows: np.ndarray, Z: float, T: np.ndarray, weight: float = 1e-3) -> np.ndarray:
    """Values at the T breakpoints whose linear interpolant passes through the policy at T = n Z.

    ``rows[n - 1]`` is the policy with n steps left (already on the v breakpoints); beyond its last
    row the policy is that row (stationary), and below n = 1 it is row 0. Least squares over the
    steps n = 1, 2, ..., N + 1 with n Z <= T[-1] (N = the rows computed; beyond N + 1 every step
    repeats the stationary row, so more equations would only repeat it): the interpolant at n Z must
    equal row n - 1; each breakpoint is also pulled, with the small ``weight``, to the policy at
    n = T / Z (linear in n), which fixes the breakpoints no step constrains (those beyond the
    stationary steps take the stationary row).
    """
    N = rows.shape[0]
    m = T.size
    n_all = np.arange(1, min(math.floor(T[-1] / Z * (1 + 1e-12)), N + 1) + 1)
    t = n_all * Z
    cell = np.clip(np.searchsorted(T, t, side="right") - 1, 0, m - 2)
    frac = (t - T[cell]) / (T[cell + 1] - T[cell])
    A = np.zeros((n_all.size + m, m))
    A[np.arange(n_all.size), cell] = 1.0 - frac
    A[np.arange(n_all.size), cell + 1] = frac
    A[n_all.size + np.arange(m), np.arange(m)] = weight
    at_steps = rows[np.minimum(n_all, N) - 1]
    nb = np.clip(T / Z, 1.0, N)
    k = np.minimum(np.floor(nb).astype(int), N - 1)
    f = (nb - k)[:, None]
    at_nodes = (1 - f) * rows[k - 1] + f * rows[np.minimum(k, N - 1)]
    values, *_ = np.linalg.lstsq(A, np.vstack([at_steps, weight * at_nodes]), rcond=None)
    return values


def _slice_job(args):
    Z, T, v, quick = args
    t0, c0 = time.perf_counter(), time.process_time()
    nodes = slice_grid(Z, quick)
    n_max = math.ceil(T[-1] / Z)
    from ..solvers.api import _threads

    with _threads(1):  # one process per core
        _u, w, info = iterate_slice(Z, nodes, n_max)
    w_v = np.array([np.interp(v, nodes, row) for row in w])
    out = t_node_values(w_v, Z, T)
    info.update(seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0, points=int(nodes.size),
                horizon_T=info["steps"] * Z)
    return Z, out, info


def continuous_node(T: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, dict]:
    """The Z = 0 node: the continuous policy (``local-quadratic``, u_max = 1) at (T, v), T clamped to its axis."""
    from . import load_table

    cont = load_table("local-quadratic")
    TT, VV = np.meshgrid(np.minimum(T, cont.axis("tau_remaining").bounds[1]), v, indexing="ij")
    r = np.asarray(cont.lookup(tau_remaining=TT, y=VV)["u"])
    return r, {"source": "local-quadratic", "checksum": cont.checksum,
               "T_clamped_to": float(cont.axis("tau_remaining").bounds[1])}


def _run(jobs, workers: int, say):
    if workers <= 1:
        return [_slice_job(j) for j in jobs]
    out = []
    # spawn, not fork: a parent that has run numba's threaded kernels (OpenMP) must not fork
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for i, res in enumerate(pool.map(_slice_job, jobs), 1):
            out.append(res)
            if i % 10 == 0:
                say(f"  {i}/{len(jobs)} slices")
    return out


def build_discrete_table(*, quick: bool = False, workers: int | None = None, check: bool = True,
                         log=None) -> PolicyTable:
    """Iterate every Z slice to stationarity and tabulate r = u* / u_max on (Z, T, v).

    Args:
        quick: coarse axes and grids (seconds), for smoke tests: not fit for training.
        workers: processes (default: the machine's cores).
        check: also solve at Z = 2 and 8 and record the largest unconstrained h u* (it must stay
            below Z_SAT for the large-h rule to be exact).
        log: callable receiving progress lines.
    """
    say = log or (lambda msg: None)
    workers = workers or os.cpu_count() or 1
    zs, T, v = z_axis(quick), t_axis(quick), v_axis(quick)
    jobs = [(float(Z), T, v, quick) for Z in zs[1:]]
    jobs.sort(key=lambda j: -1.0 / j[0])
    t0 = time.perf_counter()
    say(f"iterating {len(jobs)} Z slices to stationarity with {workers} worker(s)"
        + (" (quick: a smoke test, not fit for training)" if quick else ""))
    results = _run(jobs, workers, say)
    W = np.empty((zs.size, T.size, v.size))
    W[0], cont_info = continuous_node(T, v)
    slices = []
    for Z, out, info in results:
        W[int(np.flatnonzero(zs == Z)[0])] = out
        slices.append(info)
    slices.sort(key=lambda d: d["Z"])
    wall = time.perf_counter() - t0
    cpu = sum(d["cpu_seconds"] for d in slices)
    say(f"solved in {wall:.1f} s ({sum(d['seconds'] for d in slices):.1f} s of solver time, {cpu:.1f} s of CPU)")
    if not np.all(np.isfinite(W)):
        raise NumericalError("the discrete table has non-finite entries")
    bad = [d["Z"] for d in slices if not d["converged"] or d["horizon_T"] > T[-1] + 1e-9]
    if bad:
        raise NumericalError(f"the Bellman iteration did not become stationary within T={T[-1]:g} at Z={bad}")
    meta_sat = saturation_check(quick) if check else None
    W = np.round(W / QUANTUM) * QUANTUM
    U = np.clip(W, 0.0, 1.0)
    axes = [
        TableAxis("Z", zs, units="1", estimator="eta*a*u_max",
                  long_name="the cap h u_max on the step in curvature units; 0: the continuous limit; above "
                            "the last node lookups use it in the variables n and sqrt(h) y (exact)"),
        TableAxis("T", T, units="1", estimator="eta*a*(K-k)*u_max",
                  long_name="u_max tau_remaining = n Z with n steps left; beyond the last node: the "
                            "stationary policy"),
        TableAxis("v", v, units="1", estimator="sqrt(SNR / (h (1 - SNR)) / u_max)",
                  long_name="|y| / sqrt(u_max), y the distance to the minimum in noise units; beyond the "
                            "last node lookups take its value"),
    ]
    values = [TableValue("u", U, units=MULTIPLIER, valid_range=(0.0, 1.0),
                         long_name="u* / u_max of the discrete local model; lookups clip the interpolated "
                                   "u_continued to [0, 1]", interpolant="u_continued", clip=(0.0, 1.0)),
              TableValue("u_continued", W, units=MULTIPLIER, valid_range=(-math.inf, math.inf), fallback=0.0,
                         long_name="u* / u_max continued past the bound it sits on (the nearest local minimiser "
                                   "beyond it); clipped to [0, 1] it is u")]
    meta = {
        "problem": MODEL,
        "equation": "Y_{k+1} = (1 - h u_k) Y_k - u_k sqrt(h) xi_k, u in [0, u_max], cost E[Y_K^2]; tabulated "
                    "as r = u*/u_max(Z = h u_max, T = u_max tau_remaining, v = |y|/sqrt(u_max))",
        "parameters": {},
        "eta": 1.0,
        "horizon": "stationary beyond T_max",
        "scheme": "bellman",
        "query_axes": list(QUERY_AXES),
        "solver": {"method": "discrete-time Bellman iteration (V = quadratic + piecewise-linear interpolant, "
                             "expectation exact), renormalised each step, to stationarity",
                   "stationarity": {"tol_policy_last_half": TOL_U, "tol_normalised_value_per_step": TOL_V},
                   "grids": [{"Z_below": str(b), "half_width": w, "nodes": n} for b, w, n in GRIDS],
                   "wall_seconds": wall, "workers": workers,
                   "solver_seconds": sum(d["seconds"] for d in slices), "solver_cpu_seconds": cpu},
        "slices": [{k: d[k] for k in ("Z", "steps", "horizon_T", "policy_change_last_half",
                                      "policy_change_per_step", "value_change_per_step", "seconds", "cpu_seconds")}
                   for d in slices],
        "continuous_node": cont_info,
        "saturation": meta_sat,
        "build_command": "stochctl table build-local --discrete",
    }
    return PolicyTable.from_arrays(axes, values, metadata=meta,
                                   history="built from Bellman iterations of local-discrete (u_max = 1, h = Z) "
                                           "to stationarity")


def saturation_check(quick: bool = False) -> dict:
    """Largest unconstrained step z* = h u* at caps Z = 2 and 8 (u_max = 1, h = Z), over all steps computed."""
    out = {}
    for Z in (2.0, 8.0):
        nodes = np.linspace(-V_MAX, V_MAX, QUICK_POINTS if quick else 801)
        u, _, info = iterate_slice(Z, nodes, 200)
        out[f"Z={Z:g}"] = {"largest_z": float(u.max() * Z), "steps": info["steps"]}
    out["Z_sat"] = Z_SAT
    return out


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
