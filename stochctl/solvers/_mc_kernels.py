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

Random numbers: path k draws from its own xoshiro256++ stream, stream k of a
64-bit key (:mod:`stochctl.solvers._random`; the pair k // 2 when antithetic,
the odd path negating the draws), in blocks of ``BLOCK`` steps. A path's noise
depends only on the key and its index, never on the thread that runs it:
results are the same for every number of threads, and two simulations with the
same key and paths share their noise (common random numbers).

Speed: ``prange`` runs over chunks of ``CHUNK`` paths; a chunk advances its
paths together, step by step, so that the processor overlaps the steps of
independent paths (one path's step is a long chain of dependent operations),
and the work arrays are allocated once per chunk (the small ones on the
stack, :func:`stochctl._jit.stack_array`). The generated source gives
the state dimension and the number of players as literals, so the loops over
coordinates, players and grid corners unroll. Under simultaneous updates the
policy is read in the kernel, before the shared step, with the table's arrays
at hand instead of unpacked from a tuple at each step; levels constant in space
are read without interpolation, and where every player's level is constant in
space (a constant policy, an open-loop schedule) the multipliers and cost terms
are read once per step for all paths, not once per path. The d x d work
matrices live on the stack too (:func:`stochctl._jit.stack_matrix`), so the
compiler keeps the small covariance in registers instead of a heap array.

The path kernel calls the generated ``advance`` and the problem's compiled G
and r. numba cannot cache a kernel that receives them as arguments or through
a closure, so :func:`simulator` writes the kernel, bound to one compiled
problem module, into the kernel cache folder under a name that hashes its
text (which includes a hash of this file) and imports it: a second run loads
the machine code from disk.
"""

from __future__ import annotations

import numba
import numpy as np

from .._jit import jit
from ._iteration_kernels import interp, iteration_module

CHUNK = 32
"""Paths per parallel task, advanced together step by step."""
BLOCK = 32
"""Steps whose normals a path draws at once."""


@jit
def interp_points(tab, c, levels, lower, inv_h, npts, strides, points, out):
    """``out[k] = interp(tab, c, levels[k], ..., points[k])`` for every row of ``points``."""
    d = points.shape[1]
    idx = np.empty(d, np.int64)
    w = np.empty(d)
    for k in range(points.shape[0]):
        out[k] = interp(tab, c, levels[k], lower, inv_h, npts, strides, points[k], idx, w)
    return out


# The path kernel (module docstring); {kernels} names the compiled problem's module, {iteration} its step.
_SIMULATE_TEMPLATE = '''"""Generated Monte Carlo kernel bound to {kernels} ({tag})."""
import math

import numpy as np
from numba import prange

from stochctl._jit import jit, stack_array, stack_matrix
from stochctl.solvers._iteration_kernels import read_controls
from stochctl.solvers._random import fill_normal, seed_stream
from {iteration} import advance
from {kernels} import running, terminal


@jit(parallel=True)
def simulate_paths(params, signs, owner, starts, stops,
                   x0, key, antithetic, dt, noise_ratio, level_of_step, phase, n_phases,
                   lower, inv_h, npts, strides, tab, flat, u_index, m_index, m_fixed, kappa, psign,
                   sample, costs, exited):
    """Simulate ``costs.shape[0]`` paths; cost = G(x_K) + sum_k dt r(x_k, u_k).

    Args:
        params, signs, owner: parameter values; +1/-1 per coordinate; player per coordinate.
        starts, stops: each player's coordinate slice.
        x0: start points, shape (1, d) (shared) or (paths, d).
        key: uint64 key of the paths' random streams: path k draws from stream k of the key
            (stream k // 2 when ``antithetic``; stochctl.solvers._random.seed_stream).
        antithetic: pair path 2j+1 with path 2j using the negated noise.
        dt: step; noise_ratio: eta / dt (1 for the discrete iteration).
        level_of_step: policy time level used at each step.
        phase, n_phases: update phase of each player (stochctl.solvers.iteration.update_phases).
        lower, inv_h, npts, strides: the policy grid (uniform axes: lower corner, inverse
            spacings, points and C-order strides).
        tab: (controls, levels, grid points) policy tables; player p's
            multiplier is ``tab[u_index[p]]``, its batch control ``tab[m_index[p]]``
            if ``m_index[p] >= 0``, else the constant ``m_fixed[p]``; ``flat[c, level]`` is the
            value of a level constant in space (NaN if it is not).
        kappa, psign: compute cost per sample and sign (+1 min, -1 max) per player.
        sample: (keep, steps + 1, d) output for the first ``keep`` paths (pre-filled
            with NaN: a path that stopped being finite keeps NaN after that step).
        costs: (paths,) output; inf for a path whose state stopped being finite.
        exited: (paths,) output; 1 where the path left the policy box.
    """
    paths = costs.shape[0]
    d = {d}  # literal sizes let the compiler unroll the loops over coordinates, players and grid corners
    n_players = {n_players}
    steps = level_of_step.shape[0]
    keep = sample.shape[0]
    upper = np.empty(d)
    for j in range(d):
        upper[j] = lower[j] + (npts[j] - 1) / inv_h[j]
    block = min(steps, {block})
    n_chunks = (paths + {chunk} - 1) // {chunk}
    for c in prange(n_chunks):
        first = c * {chunk}
        size = min(paths, first + {chunk}) - first
        xs = np.empty((size, d))
        zs = np.empty((size, block * d))
        flips = np.ones(size)
        states = np.empty((size, 4), np.uint64)
        alive = np.ones(size, np.bool_)
        cost = np.zeros(size)
        x = stack_array({d})
        g = stack_array({d})
        S = stack_matrix({d})
        L = stack_matrix({d})
        z = stack_array({d})
        xi = np.zeros(1)
        gs = stack_array({d})
        batch = np.ones(n_players, np.int64)
        idx = np.empty(d, np.int64)
        w = stack_array({d})
        u = stack_array({n_players})
        m = stack_array({n_players})
        m[:] = 1.0
        terms = stack_array({n_players})
        table = (lower, inv_h, npts, strides, tab, flat, u_index, m_index, m_fixed, kappa, psign)
        for i in range(size):
            k = first + i
            if antithetic:
                seed_stream(key, k // 2, states[i])
                if k % 2 == 1:
                    flips[i] = -1.0
            else:
                seed_stream(key, k, states[i])
            exited[k] = 0
            for j in range(d):
                xs[i, j] = x0[k, j] if x0.shape[0] > 1 else x0[0, j]
                if xs[i, j] < lower[j] or xs[i, j] > upper[j]:
                    exited[k] = 1
                if k < keep:
                    sample[k, 0, j] = xs[i, j]
        for n in range(steps):
            r = n % block
            if r == 0:
                todo = min(block, steps - n) * d
                for i in range(size):
                    if alive[i]:
                        fill_normal(states[i], zs[i, :todo])
                        if flips[i] < 0.0:
                            for j in range(todo):
                                zs[i, j] = -zs[i, j]
            level = level_of_step[n]
            # a level constant in space for every player (flat): its reads and cost terms once for all paths
            uniform = n_phases == 1
            for p in range(n_players):
                if math.isnan(flat[u_index[p], level]) or (m_index[p] >= 0 and math.isnan(flat[m_index[p], level])):
                    uniform = False
            if uniform:
                for p in range(n_players):
                    u[p] = flat[u_index[p], level]
                    m[p] = flat[m_index[p], level] if m_index[p] >= 0 else m_fixed[p]
                    terms[p] = dt * psign[p] * kappa[p] / m[p]  # as read_controls adds it
            for i in range(size):  # paths are independent: their steps overlap in the processor
                if not alive[i]:
                    continue
                for j in range(d):
                    x[j] = xs[i, j]
                    z[j] = zs[i, r * d + j]
                c_i = cost[i] + dt * running(x, params)
                if uniform:
                    for p in range(n_players):
                        if kappa[p] != 0.0:
                            c_i += terms[p]
                    c_i = advance(x, params, signs, owner, starts, stops, phase, 1, dt, u, m, noise_ratio, batch, 3, 0, 1.0, False, level,
                                  table, c_i, g, S, L, z, xi, gs, idx, w)
                elif n_phases == 1:  # policy read here, where the table's arrays need no unpacking
                    c_i = read_controls(x, 0, phase, level, dt, u, m, c_i, lower, inv_h, npts, strides, tab, flat,
                                        u_index, m_index, m_fixed, kappa, psign, idx, w)
                    c_i = advance(x, params, signs, owner, starts, stops, phase, 1, dt, u, m, noise_ratio, batch, 3, 0, 1.0, False, level,
                                  table, c_i, g, S, L, z, xi, gs, idx, w)
                else:
                    c_i = advance(x, params, signs, owner, starts, stops, phase, n_phases, dt, u, m, noise_ratio, batch, 3, 0, 1.0, True, level,
                                  table, c_i, g, S, L, z, xi, gs, idx, w)
                cost[i] = c_i
                k = first + i
                for j in range(d):
                    xs[i, j] = x[j]
                    if not math.isfinite(x[j]):
                        alive[i] = False
                    elif x[j] < lower[j] or x[j] > upper[j]:
                        exited[k] = 1
                    if k < keep:
                        sample[k, n + 1, j] = x[j]
        for i in range(size):
            total = math.inf
            if alive[i]:
                for j in range(d):
                    x[j] = xs[i, j]
                total = cost[i] + terminal(x, params)
                if not math.isfinite(total):
                    total = math.inf
            costs[first + i] = total
    return costs
'''


_SIMULATORS: dict = {}


def simulator(compiled):
    """The path kernel ``simulate_paths`` bound to a compiled problem (module docstring).

    Args:
        compiled: a :class:`~stochctl.symbolic.compile.CompiledProblem`; its
            functions' module must be imported (it is, once compiled).
    """
    from ..symbolic.compile import bound_module

    kernels = compiled.grad.py_func.__module__
    if kernels not in _SIMULATORS:  # formatting and hashing the template costs a millisecond a call
        iteration = iteration_module(compiled).__name__
        _SIMULATORS[kernels] = _dynamic(bound_module(compiled, _SIMULATE_TEMPLATE, "stochctl_mc", __file__,
                                            iteration=iteration, chunk=CHUNK, block=BLOCK, d=len(compiled.state_names),
                                            n_players=int(compiled.owner.max()) + 1).simulate_paths)
    return _SIMULATORS[kernels]


def _dynamic(kernel):
    """``kernel`` run with its parallel loop handing out one chunk at a time as threads free up.

    A thread whose core is busy with other work then simulates fewer chunks; the results do not
    change, since a path's noise does not depend on its thread. (Set from Python: a kernel that
    sets it itself cannot be cached.)
    """

    def run(*args):
        old = numba.set_parallel_chunksize(1)
        try:
            return kernel(*args)
        finally:
            numba.set_parallel_chunksize(old)

    return run
