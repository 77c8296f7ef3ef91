"""numba kernels of the explosion simulations: many seeded paths of the discrete iteration.

Each path runs the one step of :mod:`stochctl.solvers.iteration` (``advance`` of
:mod:`stochctl.solvers._iteration_kernels`) with fixed multipliers, for every base
learning rate of a sweep. Every path seeds numba's thread-local generator with its
own seed before it draws, so a path's noise depends only on its seed: results do
not depend on the number of threads, and every step size of a sweep sees the same
noise (common random numbers).

The kernels call the generated ``advance`` of one compiled problem, so
:func:`explosion_kernels` writes them, bound to that module, into the kernel cache
folder under a name that hashes their text (which includes a hash of this file)
and imports them: a second run loads the machine code from disk.
"""

from __future__ import annotations


# The kernels bound to one generated iteration module; {iteration} names it.
_TEMPLATE = '''"""Generated explosion kernels bound to {iteration} ({tag}).

Fixed multipliers: the nothing arrays stand in for the policy table of advance.
"""
import math

import numpy as np
from numba import prange

from stochctl._jit import jit
from {iteration} import advance


@jit(parallel=True)
def explosion_paths(params, signs, owner, phase, n_phases, starts, stops, etas, u, m, batch, noise_mode,
                    n_noises, x0, center, seeds, steps, bound2, out):
    """First step at which |x_k - center|^2 > bound2 or is not finite (-1: never).

    Args:
        etas: (n_eta,) base learning rates of the sweep; u, m: per-player multiplier and 1/B.
        seeds: (paths,) per-path seeds, shared by every step size.
        out: (n_eta, paths) int64 output.
    """
    n_eta = out.shape[0]
    paths = out.shape[1]
    d = x0.shape[0]
    for job in prange(n_eta * paths):
        e = job // paths
        k = job % paths
        np.random.seed(seeds[k])
        x = x0.copy()
        g = np.zeros(d)
        S = np.zeros((d, d))
        L = np.zeros((d, d))
        z = np.zeros(d)
        xi = np.zeros(max(n_noises, 1))
        gs = np.zeros(d)
        idx = np.zeros(d, np.int64)
        w = np.zeros(d)
        nothing = np.zeros(1)
        nothing_i = np.zeros(1, np.int64)
        nothing3 = np.zeros((1, 1, 1))
        nothing2 = np.zeros((1, 1))
        table = (nothing, nothing, nothing_i, nothing_i, nothing3, nothing2, nothing_i, nothing_i, nothing, nothing, nothing)
        eta = etas[e]
        result = -1
        for n in range(steps):
            advance(x, params, signs, owner, starts, stops, phase, n_phases, eta, u, m, 1.0, batch, noise_mode, n_noises, 1.0, False, 0, table, 0.0,
                    g, S, L, z, xi, gs, idx, w)
            r2 = 0.0
            for i in range(d):
                r2 += (x[i] - center[i]) * (x[i] - center[i])
            if not (r2 <= bound2):
                result = n + 1
                break
        out[e, k] = result
    return out


@jit(parallel=True)
def second_moments(params, signs, owner, phase, n_phases, starts, stops, etas, u, m, batch, noise_mode, n_noises,
                   x0, center, seeds, steps, sums, sums2):
    """Sums over paths of r_k = |x_k - center|^2 and r_k^2, k = 0..steps, per chunk of paths.

    Args:
        sums, sums2: (n_eta, chunks, steps + 1) outputs; chunk c holds paths
            [c P / C, (c + 1) P / C), summed in path order (deterministic).
            A non-finite r_k counts as +inf.
    """
    n_eta = sums.shape[0]
    chunks = sums.shape[1]
    paths = seeds.shape[0]
    d = x0.shape[0]
    for job in prange(n_eta * chunks):
        e = job // chunks
        c = job % chunks
        lo = (c * paths) // chunks
        hi = ((c + 1) * paths) // chunks
        g = np.zeros(d)
        S = np.zeros((d, d))
        L = np.zeros((d, d))
        z = np.zeros(d)
        xi = np.zeros(max(n_noises, 1))
        gs = np.zeros(d)
        idx = np.zeros(d, np.int64)
        w = np.zeros(d)
        nothing = np.zeros(1)
        nothing_i = np.zeros(1, np.int64)
        nothing3 = np.zeros((1, 1, 1))
        nothing2 = np.zeros((1, 1))
        table = (nothing, nothing, nothing_i, nothing_i, nothing3, nothing2, nothing_i, nothing_i, nothing, nothing, nothing)
        eta = etas[e]
        for n in range(steps + 1):
            sums[e, c, n] = 0.0
            sums2[e, c, n] = 0.0
        for k in range(lo, hi):
            np.random.seed(seeds[k])
            x = x0.copy()
            for n in range(steps + 1):
                if n > 0:
                    advance(x, params, signs, owner, starts, stops, phase, n_phases, eta, u, m, 1.0, batch, noise_mode, n_noises, 1.0, False, 0, table,
                            0.0, g, S, L, z, xi, gs, idx, w)
                r2 = 0.0
                for i in range(d):
                    r2 += (x[i] - center[i]) * (x[i] - center[i])
                if not math.isfinite(r2):
                    r2 = math.inf
                sums[e, c, n] += r2
                sums2[e, c, n] += r2 * r2
    return sums


@jit(parallel=True)
def trajectories(params, signs, owner, phase, n_phases, starts, stops, etas, u, m, batch, noise_mode, n_noises,
                 x0, seeds, out):
    """x_k of every path, k = 0..steps: out (n_eta, paths, steps + 1, d), as computed (inf/nan kept)."""
    n_eta = out.shape[0]
    paths = out.shape[1]
    steps = out.shape[2] - 1
    d = x0.shape[0]
    for job in prange(n_eta * paths):
        e = job // paths
        k = job % paths
        np.random.seed(seeds[k])
        x = x0.copy()
        g = np.zeros(d)
        S = np.zeros((d, d))
        L = np.zeros((d, d))
        z = np.zeros(d)
        xi = np.zeros(max(n_noises, 1))
        gs = np.zeros(d)
        idx = np.zeros(d, np.int64)
        w = np.zeros(d)
        nothing = np.zeros(1)
        nothing_i = np.zeros(1, np.int64)
        nothing3 = np.zeros((1, 1, 1))
        nothing2 = np.zeros((1, 1))
        table = (nothing, nothing, nothing_i, nothing_i, nothing3, nothing2, nothing_i, nothing_i, nothing, nothing, nothing)
        for i in range(d):
            out[e, k, 0, i] = x[i]
        for n in range(steps):
            advance(x, params, signs, owner, starts, stops, phase, n_phases, etas[e], u, m, 1.0, batch, noise_mode, n_noises, 1.0, False, 0, table,
                    0.0, g, S, L, z, xi, gs, idx, w)
            for i in range(d):
                out[e, k, n + 1, i] = x[i]
    return out
'''


def explosion_kernels(compiled):
    """The module with ``explosion_paths``, ``second_moments`` and ``trajectories`` bound to a compiled problem.

    Args:
        compiled: a :class:`~stochctl.symbolic.compile.CompiledProblem` (its
            functions' module is imported once compiled).
    """
    from ..symbolic.compile import bound_module
    from ..solvers._iteration_kernels import iteration_module

    iteration = iteration_module(compiled).__name__
    return bound_module(compiled, _TEMPLATE, "stochctl_explode", __file__, iteration=iteration)
