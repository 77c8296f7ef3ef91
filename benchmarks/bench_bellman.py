"""Discrete-time Bellman kernel against a vectorised numpy version of the same recursion.

    python benchmarks/bench_bellman.py [--quick]

Both sides run the recursion V_n(y) = min_u E V_{n-1}((1 - h u) y - u sqrt(h) xi) of the discrete
local model on the same grid, with the same exact expectation of the quadratic + piecewise-linear
value and the same search: a bracket of 33 points in u, then a refinement of the best cell. The
numpy version evaluates every hinge at every (node, u) pair with erfc/exp (no window, no table) and
refines by a vectorised golden section to the same tolerance; the numba kernel uses windows,
coarse levels for the bracket, Newton on exact derivatives and the node-parallel loop. Printed:
time per step of each, their ratio (target >= 20x with 2 threads), and the largest difference of
the values they produce. Also the time of a quick table build (`stochctl table build-local
--discrete --quick`), for scale.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def numpy_step(V, nodes, h, u_max, nb=33, xatol=1e-8):
    """One level of the recursion, vectorised over nodes and u with numpy."""
    from stochctl.solvers._bellman_kernels import numpy_expected_value
    from stochctl.solvers.bellman import _quadratic_fit

    _, projector = _quadratic_fit(nodes)
    q = projector @ V
    r = V - (q[0] + q[1] * nodes + q[2] * nodes**2)
    b = math.sqrt(h)

    def J(x, u):
        return numpy_expected_value((1 - h * u) * x, u * b, nodes, r, q)

    us = np.linspace(0.0, u_max, nb)
    grid = J(nodes[:, None], us[None, :])
    k = np.argmin(grid, axis=1)
    lo = us[np.maximum(k - 1, 0)]
    hi = us[np.minimum(k + 1, nb - 1)]
    x1 = hi - GOLDEN * (hi - lo)
    x2 = lo + GOLDEN * (hi - lo)
    f1, f2 = J(nodes, x1), J(nodes, x2)
    while np.max(hi - lo) > xatol:
        left = f1 < f2  # the minimum lies in [lo, x2]
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        new = np.where(left, hi - GOLDEN * (hi - lo), lo + GOLDEN * (hi - lo))
        f_new = J(nodes, new)
        x2, f2, x1, f1 = (np.where(left, x1, new), np.where(left, f1, f_new),
                          np.where(left, new, x2), np.where(left, f_new, f2))
    u = 0.5 * (lo + hi)
    best = J(nodes, u)
    at_grid = grid[np.arange(nodes.size), k]
    return np.minimum(best, at_grid)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    quick = "--quick" in argv
    import numba

    from stochctl.models import get_model
    from stochctl.solvers import Grid
    from stochctl.solvers.bellman import solve_discrete
    from stochctl.symbolic.problem import ControlProblem

    load = os.getloadavg()
    print(f"Bellman kernel benchmark: {os.cpu_count()} cores, numba {numba.__version__}, load average "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    cases = [(0.1, 4.0, 601), (0.01, 8.0, 601)] if not quick else [(0.1, 4.0, 301)]
    worst = math.inf
    for h, u_max, points in cases:
        problem = ControlProblem.from_model(get_model("local-discrete", h=h), u_max=u_max)
        grid = Grid.from_domain({"y": (-6.0, 6.0)}, points, "linear")
        nodes = grid.axes[0]
        steps = 3
        solve_discrete(problem, grid, steps=1, symmetric=False, num_threads=2)  # compile
        t_numba = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            sol = solve_discrete(problem, grid, steps=steps, symmetric=False, num_threads=2, progress=False)
            t_numba = min(t_numba, (time.perf_counter() - t0) / steps)
        V = nodes**2
        t0 = time.perf_counter()
        for _ in range(steps):
            V = numpy_step(V, nodes, h, u_max)
        t_numpy = (time.perf_counter() - t0) / steps
        diff = float(np.max(np.abs(V - sol.values[0])))
        ratio = t_numpy / t_numba
        worst = min(worst, ratio)
        print(f"  h={h:<5g} u_max={u_max:<3g} N={points}: numpy {1e3 * t_numpy:9.1f} ms/step, numba 2 threads "
              f"{1e3 * t_numba:7.2f} ms/step ({ratio:6.1f}x); max |V_numpy - V_numba| {diff:.1e}")
    from stochctl.tables.shipped_discrete import build_discrete_table

    t0 = time.perf_counter()
    build_discrete_table(quick=True, check=False, workers=2)
    print(f"  quick table build (2 workers): {time.perf_counter() - t0:.1f} s")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    met = worst >= 20
    print(f"target: numba >= 20x numpy on 2 threads: smallest {worst:.1f}x [{'met' if met else 'NOT met'}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
