"""numba kernels of the Monte Carlo checks: policy lookup and path simulation.

One kernel simulates both the controlled SDE (Euler-Maruyama) and the discrete
training iteration, because both are the iteration of
:mod:`stochctl.solvers.iteration` with gaussian noise,

    x_i <- x_i - s_i u_p dt (d_i g(x) + sqrt(m_p r) Sigma^{1/2}(x) z),

(coordinate i owned by player p, z standard normal, Sigma diagonal): with ``dt``
the Euler-Maruyama step and r = eta / dt this is
d x = -s u grad g dt + u sqrt(eta m Sigma) dW, and with ``dt = eta``, r = 1 it is
the SGD / SGA update. Each step is the shared ``advance`` of
:mod:`stochctl.solvers._iteration_kernels`, reading the policy at each phase's
point, so simultaneous and alternating updates mean here exactly what they mean
for the explosion analysis.

Every path seeds numba's thread-local generator with its own seed before
drawing, so a path's noise depends only on its seed: results do not depend on
the number of threads, and two simulations with the same seeds share their
noise (common random numbers).

The path kernel calls the generated ``advance`` and the problem's compiled G
and r. numba cannot cache a kernel that receives them as arguments or through
a closure, so :func:`simulator` writes the kernel, bound to one compiled
problem module, into the kernel cache folder under a name that hashes its
text (which includes a hash of this file) and imports it: a second run loads
the machine code from disk.
"""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit


@jit(inline="always")
def interp(tab, c, level, lower, h, npts, strides, x, idx, w):
    """Multilinear interpolation of ``tab[c, level]`` (a flattened grid) at ``x``.

    Points outside the box are clamped to it. ``idx`` and ``w`` are work arrays
    of length d.
    """
    d = x.shape[0]
    for j in range(d):
        s = (x[j] - lower[j]) / h[j]
        n = npts[j]
        if s <= 0.0:
            i = 0
            f = 0.0
        elif s >= n - 1:
            i = n - 2
            f = 1.0
        else:
            i = int(math.floor(s))
            if i > n - 2:
                i = n - 2
            f = s - i
        idx[j] = i
        w[j] = f
    total = 0.0
    for corner in range(1 << d):
        weight = 1.0
        offset = 0
        for j in range(d):
            if (corner >> j) & 1:
                weight *= w[j]
                offset += (idx[j] + 1) * strides[j]
            else:
                weight *= 1.0 - w[j]
                offset += idx[j] * strides[j]
        if weight != 0.0:
            total += weight * tab[c, level, offset]
    return total


@jit
def interp_points(tab, c, levels, lower, h, npts, strides, points, out):
    """``out[k] = interp(tab, c, levels[k], ..., points[k])`` for every row of ``points``."""
    d = points.shape[1]
    idx = np.empty(d, np.int64)
    w = np.empty(d)
    for k in range(points.shape[0]):
        out[k] = interp(tab, c, levels[k], lower, h, npts, strides, points[k], idx, w)
    return out


# The path kernel (module docstring); {kernels} names the compiled problem's module, {iteration} its step.
_SIMULATE_TEMPLATE = '''"""Generated Monte Carlo kernel bound to {kernels} ({tag})."""
import math

import numpy as np
from numba import prange

from stochctl._jit import jit
from {iteration} import advance
from {kernels} import running, terminal


@jit(parallel=True)
def simulate_paths(params, signs, owner, starts, stops,
                   x0, seeds, antithetic, dt, noise_ratio, level_of_step, phase, n_phases,
                   lower, h, npts, strides, tab, u_index, m_index, m_fixed, kappa, psign,
                   sample, costs, exited):
    """Simulate ``costs.shape[0]`` paths; cost = G(x_K) + sum_k dt r(x_k, u_k).

    Args:
        params, signs, owner: parameter values; +1/-1 per coordinate; player per coordinate.
        starts, stops: each player's coordinate slice.
        x0: start points, shape (1, d) (shared) or (paths, d).
        seeds: per-path seeds (per pair of paths when ``antithetic``).
        antithetic: pair path 2j+1 with path 2j using the negated noise.
        dt: step; noise_ratio: eta / dt (1 for the discrete iteration).
        level_of_step: policy time level used at each step.
        phase, n_phases: update phase of each player (stochctl.solvers.iteration.update_phases).
        lower, h, npts, strides: the policy grid (uniform axes, C-order strides).
        tab: (controls, levels, grid points) policy tables; player p's
            multiplier is ``tab[u_index[p]]``, its batch control ``tab[m_index[p]]``
            if ``m_index[p] >= 0``, else the constant ``m_fixed[p]``.
        kappa, psign: compute cost per sample and sign (+1 min, -1 max) per player.
        sample: (keep, steps + 1, d) output for the first ``keep`` paths (pre-filled
            with NaN: a path that stopped being finite keeps NaN after that step).
        costs: (paths,) output; inf for a path whose state stopped being finite.
        exited: (paths,) output; 1 where the path left the policy box.
    """
    paths = costs.shape[0]
    d = x0.shape[1]
    n_players = u_index.shape[0]
    steps = level_of_step.shape[0]
    keep = sample.shape[0]
    upper = np.empty(d)
    for j in range(d):
        upper[j] = lower[j] + h[j] * (npts[j] - 1)
    for k in prange(paths):
        if antithetic:
            np.random.seed(seeds[k // 2])
            flip = -1.0 if k % 2 == 1 else 1.0
        else:
            np.random.seed(seeds[k])
            flip = 1.0
        x = np.empty(d)
        for j in range(d):
            x[j] = x0[k, j] if x0.shape[0] > 1 else x0[0, j]
        g = np.empty(d)
        S = np.empty((d, d))
        L = np.empty((d, d))
        z = np.empty(d)
        xi = np.zeros(1)
        gs = np.empty(d)
        batch = np.ones(n_players, np.int64)
        idx = np.empty(d, np.int64)
        w = np.empty(d)
        u = np.zeros(n_players)
        m = np.ones(n_players)
        table = (lower, h, npts, strides, tab, u_index, m_index, m_fixed, kappa, psign)
        cost = 0.0
        left = 0
        alive = True
        for j in range(d):
            if x[j] < lower[j] or x[j] > upper[j]:
                left = 1
        if k < keep:
            for j in range(d):
                sample[k, 0, j] = x[j]
        for n in range(steps):
            cost += dt * running(x, params)
            cost = advance(x, params, signs, owner, starts, stops, phase, n_phases, dt, u, m, noise_ratio, batch, 1, 0, flip, True, level_of_step[n],
                           table, cost, g, S, L, z, xi, gs, idx, w)
            for j in range(d):
                if not math.isfinite(x[j]):
                    alive = False
                elif x[j] < lower[j] or x[j] > upper[j]:
                    left = 1
            if k < keep:
                for j in range(d):
                    sample[k, n + 1, j] = x[j]
            if not alive:
                break
        if alive:
            cost += terminal(x, params)
            if not math.isfinite(cost):
                cost = math.inf
        else:
            cost = math.inf
        costs[k] = cost
        exited[k] = left
    return costs
'''


def simulator(compiled):
    """The path kernel ``simulate_paths`` bound to a compiled problem (module docstring).

    Args:
        compiled: a :class:`~stochctl.symbolic.compile.CompiledProblem`; its
            functions' module must be imported (it is, once compiled).
    """
    from ._iteration_kernels import iteration_module
    from ..symbolic.compile import bound_module

    iteration = iteration_module(compiled).__name__
    return bound_module(compiled, _SIMULATE_TEMPLATE, "stochctl_mc", __file__, iteration=iteration).simulate_paths
