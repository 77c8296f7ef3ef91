"""Monte Carlo path kernel against a vectorised numpy Euler scheme of the same SDE.

    python benchmarks/bench_montecarlo.py [--quick]

Both sides simulate the ``quadratic`` model (a = 1.5, s = 0.8, sigma = 0.6) under the constant
multiplier u = 0.7 from x0 = 1.2,

    x <- x - u dt (a x + sqrt(eta / dt) sqrt(s^2 x^2 + sigma^2) z),

the numba kernel through :func:`stochctl.solvers.montecarlo.simulate_constant` (the shared step
of :mod:`stochctl.solvers.iteration`, policy reads, cost, exit and finiteness checks, and the
call's input checks), numpy over all paths at once on one thread. The three timings (numpy, the
kernel on one thread, the kernel on two) are taken in turn, repeatedly, in this one run; printed:
median path-steps per second of each and the median of the paired ratios kernel / numpy. Checked
(exit status 1 and a message if not): the kernel's estimate of E[G(x_K)] agrees with numpy's
within 3 standard errors, and the kernel's per-path costs are the same on one and two threads.
Targets: at least 1x numpy on one thread and at least 2x on two.
"""

from __future__ import annotations

import math
import os
import statistics
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


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    quick = "--quick" in argv
    import numba

    from stochctl._jit import set_num_threads
    from stochctl.models import get_model
    from stochctl.solvers.montecarlo import simulate_constant
    from stochctl.symbolic.problem import ControlProblem

    two = min(2, numba.config.NUMBA_NUM_THREADS)
    load = os.getloadavg()
    print(f"Monte Carlo kernel benchmark: load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{numba.config.NUMBA_NUM_THREADS} numba threads available")
    a, s, sigma, u, x0 = 1.5, 0.8, 0.6, 0.7, 1.2
    problem = ControlProblem.from_model(get_model("quadratic", a=a, s=s, sigma=sigma), horizon=1.0)
    eta = float(problem.eta)
    paths, steps = (10_000, 50) if quick else (40_000, 100)
    reps = 9 if quick else 7

    def kernel(threads):
        set_num_threads(threads)
        return simulate_constant(problem, u, [x0], paths=paths, steps=steps, seed=1)

    def reference():
        return numpy_euler(paths, steps, a=a, s=s, sigma=sigma, eta=eta, u=u, x0=x0, horizon=1.0, seed=1)

    kernel(1), kernel(two), reference()  # compile, warm up
    times = {"numpy": [], "1 thread": [], f"{two} threads": []}
    for _ in range(reps):
        t, xk = _timed(reference)
        times["numpy"].append(t)
        t, one = _timed(lambda: kernel(1))
        times["1 thread"].append(t)
        t, res2 = _timed(lambda: kernel(two))
        times[f"{two} threads"].append(t)
    set_num_threads()
    work = paths * steps
    print(f"  {paths} paths x {steps} steps, {reps} rounds, medians:")
    for name, ts in times.items():
        line = f"    {name:10s} {work / statistics.median(ts) / 1e6:8.2f} M path-steps/s"
        if name != "numpy":
            ratio = statistics.median(tn / tk for tn, tk in zip(times["numpy"], ts))
            line += f"   {ratio:5.2f}x numpy"
        print(line)
    g = a * xk**2 / 2
    mean_np, se_np = float(g.mean()), float(g.std(ddof=1) / math.sqrt(paths))
    z = (one.mean - mean_np) / math.hypot(one.stderr, se_np)
    same = np.array_equal(one.costs, res2.costs)
    print(f"  E G(x_K): kernel {one.mean:.5f} +- {one.stderr:.5f}, numpy {mean_np:.5f} +- {se_np:.5f} "
          f"({z:+.2f} standard errors); per-path costs on 1 and {two} threads "
          f"{'identical' if same else 'DIFFERENT'}")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if not abs(z) < 3:
        print(f"FAILED: the kernel and numpy estimates differ by {z:+.2f} standard errors", file=sys.stderr)
        return 1
    if not same:
        print(f"FAILED: the kernel's costs differ between 1 and {two} threads", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
