"""Monte Carlo path kernel against a vectorised numpy Euler scheme of the same SDE.

    python benchmarks/bench_montecarlo.py [--quick]

Both sides simulate the ``quadratic`` model (a = 1.5, s = 0.8, sigma = 0.6) under the constant
multiplier u = 0.7 from x0 = 1.2,

    x <- x - u dt (a x + sqrt(eta / dt) sqrt(s^2 x^2 + sigma^2) z),

the numba kernel through :func:`stochctl.solvers.montecarlo.simulate_constant` (one thread: the
shared step of :mod:`stochctl.solvers.iteration`, policy reads, cost, exit and finiteness
checks), numpy over all paths at once. Printed: path-steps per second of each and their ratio,
and both estimates of E[G(x_K)] with their difference in standard errors (they must agree).
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np


def numpy_euler(paths: int, steps: int, *, a, s, sigma, eta, u, x0, horizon, seed) -> np.ndarray:
    """x_K of ``paths`` Euler paths of the quadratic model (module docstring), vectorised over paths."""
    rng = np.random.default_rng(seed)
    dt = horizon / steps
    x = np.full(paths, x0)
    for _ in range(steps):
        z = rng.standard_normal(paths)
        x = x - u * dt * (a * x + math.sqrt(eta / dt) * np.sqrt(s * s * x * x + sigma * sigma) * z)
    return x


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    quick = "--quick" in argv
    from stochctl._jit import set_num_threads
    from stochctl.models import get_model
    from stochctl.solvers.montecarlo import simulate_constant
    from stochctl.symbolic.problem import ControlProblem

    set_num_threads(1)
    load = os.getloadavg()
    print(f"Monte Carlo kernel benchmark: 1 thread, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    a, s, sigma, u, x0 = 1.5, 0.8, 0.6, 0.7, 1.2
    problem = ControlProblem.from_model(get_model("quadratic", a=a, s=s, sigma=sigma), horizon=1.0)
    eta = float(problem.eta)
    paths, steps = (10_000, 50) if quick else (40_000, 100)
    simulate_constant(problem, u, [x0], paths=100, steps=steps, seed=1)  # compile
    t_numba, res = math.inf, None
    for _ in range(5):
        t0 = time.perf_counter()
        res = simulate_constant(problem, u, [x0], paths=paths, steps=steps, seed=1)
        t_numba = min(t_numba, time.perf_counter() - t0)
    t_numpy, xk = math.inf, None
    for _ in range(3):
        t0 = time.perf_counter()
        xk = numpy_euler(paths, steps, a=a, s=s, sigma=sigma, eta=eta, u=u, x0=x0, horizon=1.0, seed=1)
        t_numpy = min(t_numpy, time.perf_counter() - t0)
    g = a * xk**2 / 2
    mean_np, se_np = float(g.mean()), float(g.std(ddof=1) / math.sqrt(paths))
    z = (res.mean - mean_np) / math.hypot(res.stderr, se_np)
    work = paths * steps
    print(f"  {paths} paths x {steps} steps: numba {work / t_numba / 1e6:7.2f} M path-steps/s, numpy "
          f"{work / t_numpy / 1e6:7.2f} M path-steps/s ({t_numpy / t_numba:5.2f}x)")
    print(f"  E G(x_K): numba {res.mean:.5f} +- {res.stderr:.5f}, numpy {mean_np:.5f} +- {se_np:.5f} "
          f"({z:+.2f} standard errors)")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0 if abs(z) < 4 else 1


if __name__ == "__main__":
    sys.exit(main())
