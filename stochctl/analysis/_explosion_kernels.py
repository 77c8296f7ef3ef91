"""numba kernels of the explosion simulations: the discrete SGD / SGA iteration.

One step of the iteration for coordinate i owned by player p, with step
h_i = eta u_p and minibatch size B_p, is

    x_i <- x_i - s_i h_i (d_i g(x) + noise_i),

s_i = +1 for a minimiser and -1 for a maximiser. The players are updated in
phases: one phase (simultaneous), or one phase per player in the model's order
(alternating: each phase evaluates the gradient at the point left by the
previous one). The minibatch noise is, per player (each player draws its own
minibatch, so different players' noises are independent):

``"gaussian"`` (mode 1)
    L_p z with L_p L_p^T = Sigma_pp(x) / B_p (Cholesky factor of the player's
    block of the per-sample gradient covariance), z standard normal;
``"sample"`` (mode 2)
    the mean of B_p per-sample gradients grad l(x; xi) at independent draws of
    the model's noises xi (replacing d_i g(x)); for the quadratic model
    l = (a + s xi) x^2/2 - sigma zeta x this is the multiplicative-noise
    iteration x <- (1 - h (a + s xi)) x + h sigma zeta;
``"none"`` (mode 0)
    gradient descent-ascent on g.

Every path seeds numba's thread-local generator with its own seed before it
draws, so a path's noise depends only on its seed: results do not depend on the
number of threads, and every step size of a sweep sees the same noise
(common random numbers).

The kernels call the problem's compiled functions (grad g, Sigma, grad l).
numba cannot cache a kernel that receives them as arguments or through a
closure, so :func:`explosion_kernels` writes the kernels, bound to one compiled
problem module, into the kernel cache folder under a name that hashes their
text (which includes a hash of this file) and imports them: a second run loads
the machine code from disk.
"""

from __future__ import annotations

import hashlib
import math
import sys
from pathlib import Path

from .._jit import jit

NOISE_MODES = {"none": 0, "gaussian": 1, "sample": 2}
"""Integer codes of the noise models (module docstring)."""


@jit
def cholesky_block(S, lo, hi, scale, L):
    """Lower Cholesky factor of ``scale * S[lo:hi, lo:hi]`` written into ``L[lo:hi, lo:hi]``.

    A non-positive pivot (a singular, positive semi-definite block) gives a
    zero column, so L L^T equals the block wherever the block is PSD.
    """
    for i in range(lo, hi):
        for j in range(lo, hi):
            L[i, j] = 0.0
    for j in range(lo, hi):
        diag = scale * S[j, j]
        for k in range(lo, j):
            diag -= L[j, k] * L[j, k]
        if diag <= 0.0:
            continue
        ljj = math.sqrt(diag)
        L[j, j] = ljj
        for i in range(j + 1, hi):
            acc = scale * S[i, j]
            for k in range(lo, j):
                acc -= L[i, k] * L[j, k]
            L[i, j] = acc / ljj
    return L


# The kernels bound to one compiled problem (module docstring); {kernels} names its module.
_TEMPLATE = '''"""Generated explosion kernels bound to {kernels} ({tag})."""
import math

import numpy as np
from numba import prange

from stochctl._jit import jit
from stochctl.analysis._explosion_kernels import cholesky_block
from {kernels} import grad, sample_grad, sigma


@jit
def advance(x, params, signs, owner, phase, n_phases, starts, stops, h, batch, noise_mode, n_noises,
            g, S, L, z, xi, gs):
    """One iteration of the discrete algorithm (module docstring of _explosion_kernels)."""
    d = x.shape[0]
    n_players = starts.shape[0]
    for ph in range(n_phases):
        if noise_mode == 2:
            for p in range(n_players):
                if phase[p] != ph:
                    continue
                for i in range(starts[p], stops[p]):
                    g[i] = 0.0
                for b in range(batch[p]):
                    for q in range(n_noises):
                        xi[q] = np.random.standard_normal()
                    sample_grad(x, xi, params, gs)
                    for i in range(starts[p], stops[p]):
                        g[i] += gs[i]
                for i in range(starts[p], stops[p]):
                    g[i] /= batch[p]
        else:
            grad(x, params, g)
            if noise_mode == 1:
                sigma(x, params, S)
                for p in range(n_players):
                    if phase[p] != ph:
                        continue
                    cholesky_block(S, starts[p], stops[p], 1.0 / batch[p], L)
                    for i in range(starts[p], stops[p]):
                        z[i] = np.random.standard_normal()
                    for i in range(starts[p], stops[p]):
                        acc = 0.0
                        for j in range(starts[p], i + 1):
                            acc += L[i, j] * z[j]
                        g[i] += acc
        for i in range(d):
            if phase[owner[i]] == ph:
                x[i] -= signs[i] * h[i] * g[i]


@jit(parallel=True)
def explosion_paths(params, signs, owner, phase, n_phases, starts, stops, hs, batch, noise_mode, n_noises,
                    x0, center, seeds, steps, bound2, out):
    """First step at which |x_k - center|^2 > bound2 or is not finite (-1: never).

    Args:
        hs: (n_eta, d) step per coordinate for each step size of the sweep.
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
        h = hs[e]
        result = -1
        for n in range(steps):
            advance(x, params, signs, owner, phase, n_phases, starts, stops, h, batch, noise_mode, n_noises,
                    g, S, L, z, xi, gs)
            r2 = 0.0
            for i in range(d):
                r2 += (x[i] - center[i]) * (x[i] - center[i])
            if not (r2 <= bound2):
                result = n + 1
                break
        out[e, k] = result
    return out


@jit(parallel=True)
def second_moments(params, signs, owner, phase, n_phases, starts, stops, hs, batch, noise_mode, n_noises,
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
        h = hs[e]
        for n in range(steps + 1):
            sums[e, c, n] = 0.0
            sums2[e, c, n] = 0.0
        for k in range(lo, hi):
            np.random.seed(seeds[k])
            x = x0.copy()
            for n in range(steps + 1):
                if n > 0:
                    advance(x, params, signs, owner, phase, n_phases, starts, stops, h, batch, noise_mode,
                            n_noises, g, S, L, z, xi, gs)
                r2 = 0.0
                for i in range(d):
                    r2 += (x[i] - center[i]) * (x[i] - center[i])
                if not math.isfinite(r2):
                    r2 = math.inf
                sums[e, c, n] += r2
                sums2[e, c, n] += r2 * r2
    return sums
'''


def _source_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def explosion_kernels(compiled):
    """The module with ``explosion_paths`` and ``second_moments`` bound to a compiled problem.

    Args:
        compiled: a :class:`~stochctl.symbolic.compile.CompiledProblem` (its
            functions' module is imported once compiled).
    """
    from ..symbolic.compile import import_generated

    kernels = compiled.grad.py_func.__module__
    if kernels not in sys.modules:
        raise RuntimeError(f"compiled problem module {kernels!r} is not imported")
    source = _TEMPLATE.format(kernels=kernels, tag=f"explosion source {_source_hash()}")
    module = import_generated(source, "stochctl_explode")
    return module
