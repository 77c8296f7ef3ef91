"""numba step of the discrete iteration (:mod:`stochctl.solvers.iteration`), shared by every simulation.

``advance`` performs one iteration

    x_i <- x_i - s_i u_p dt (d_i g(x) + noise_i)

in the players' phases, reading the multipliers (and batch controls) of each
phase's players from a policy table at the phase's point when ``policy`` is set,
else using the fixed ``u`` and ``m``. It calls the problem's compiled functions
(grad g, Sigma, grad l). numba cannot cache a kernel that receives them as
arguments or through a closure, so :func:`iteration_module` writes ``advance``,
bound to one compiled problem module, into the kernel cache folder under a name
that hashes its text (which includes a hash of this file) and imports it; the
explosion kernels and the Monte Carlo kernel import ``advance`` from there.
"""

from __future__ import annotations

import math

from .._jit import jit


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


@jit(inline="always")
def interp(tab, c, level, lower, inv_h, npts, strides, x, idx, w):
    """Multilinear interpolation of ``tab[c, level]`` (a flattened grid) at ``x``.

    ``inv_h`` holds the inverse spacings of the uniform axes, so the cell of a
    coordinate is index arithmetic. Points outside the box are clamped to it.
    ``idx`` and ``w`` are work arrays of length d.
    """
    d = x.shape[0]
    for j in range(d):
        s = (x[j] - lower[j]) * inv_h[j]
        n = npts[j]
        if s <= 0.0:
            i = 0
            f = 0.0
        elif s >= n - 1:
            i = n - 2
            f = 1.0
        else:
            i = min(int(s), n - 2)  # s > 0: truncation is the floor
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
        total += weight * tab[c, level, offset]
    return total


@jit(inline="always")
def read_controls(x, ph, phase, level, dt, u, m, cost, lower, inv_h, npts, strides, tab, flat, u_index, m_index,
                  m_fixed, kappa, psign, idx, w):
    """Policy reads of phase ``ph``'s players at ``x``; returns cost + dt sum_p s_p kappa_p / m_p over them.

    Writes u[p] (and m[p]) of every player p with ``phase[p] == ph`` from the table at time level
    ``level`` (the arguments after ``cost`` as the ``table`` of ``advance``); a level whose
    ``flat[c, level]`` is a number is constant in space and read without interpolation.
    """
    for p in range(u.shape[0]):  # u.shape, not u_index.shape: a caller may size u as a constant
        if phase[p] == ph:
            v = flat[u_index[p], level]
            u[p] = v if not math.isnan(v) else interp(tab, u_index[p], level, lower, inv_h, npts, strides, x, idx, w)
            if m_index[p] >= 0:
                v = flat[m_index[p], level]
                m[p] = v if not math.isnan(v) else interp(tab, m_index[p], level, lower, inv_h, npts, strides, x, idx, w)
            else:
                m[p] = m_fixed[p]
            if kappa[p] != 0.0:
                cost += dt * psign[p] * kappa[p] / m[p]
    return cost


# The step bound to one compiled problem (module docstring); {kernels} names its module.
_TEMPLATE = '''"""Generated iteration step bound to {kernels} ({tag})."""
import math

import numpy as np

from stochctl._jit import jit
from stochctl.solvers._iteration_kernels import cholesky_block, read_controls
from {kernels} import grad, sample_grad, sigma


@jit(inline="always")
def advance(x, params, signs, owner, starts, stops, phase, n_phases, dt, u, m, noise_ratio, batch, noise_mode,
            n_noises, flip, policy, level, table, cost, g, S, L, z, xi, gs, idx, w):
    """One iteration of stochctl.solvers.iteration; returns cost + dt sum_p s_p kappa_p / m_p (policy reads).

    Inlined into its callers. numba inlines only calls with fewer than about 30 arguments, so the
    policy table comes as one tuple (unpacked only where the policy is read); the other arrays come
    one by one: unpacking a tuple of arrays at every step costs reference counting that doubled
    the Monte Carlo kernel's time.

    Args:
        x: state, updated in place.
        params, signs, owner, starts, stops: parameter values; +1/-1 per coordinate; player per
            coordinate; each player's coordinate slice.
        phase, n_phases: the update phase of each player (stochctl.solvers.iteration.update_phases).
        dt: step (the base learning rate for the training iteration).
        u, m: per-player multipliers and batch factors m_p = 1/B_p (overwritten by policy reads).
        noise_ratio: r in the gaussian noise covariance m_p r Sigma_pp (1 for the iteration).
        batch: per-player minibatch sizes of the ``sample`` noise.
        noise_mode: 0 none, 1 gaussian, 2 sample, 3 gaussian with the normals ``z`` drawn by the
            caller; n_noises: number of model noises.
        flip: +1, or -1 for the antithetic partner of a path (gaussian noise drawn here).
        policy: read u (and m) from the table at each phase's point, at time level ``level``.
        table: (lower, inv_h, npts, strides, tab, flat, u_index, m_index, m_fixed, kappa, psign): the
            policy grid and table (interp), ``flat[c, level]`` the value of
            a level constant in space (NaN if it is not), m_index[p] < 0 meaning
            m_p = m_fixed[p], and the compute cost per sample and sign per player.
        cost: running total of the compute cost.
        g, S, L, z, xi, gs, idx, w: work arrays.
    """
    d = x.shape[0]
    n_players = u.shape[0]  # a caller may size u as a constant
    if noise_mode == 1:
        for i in range(d):
            z[i] = flip * np.random.standard_normal()
    for ph in range(n_phases):
        if policy:
            lower, inv_h, npts, strides, tab, flat, u_index, m_index, m_fixed, kappa, psign = table
            cost = read_controls(x, ph, phase, level, dt, u, m, cost, lower, inv_h, npts, strides, tab, flat, u_index,
                                 m_index, m_fixed, kappa, psign, idx, w)
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
            if noise_mode == 1 or noise_mode == 3:
                sigma(x, params, S)
                for p in range(n_players):
                    if phase[p] != ph:
                        continue
                    lo = starts[p]
                    if stops[p] - lo == 1:  # the 1 x 1 Cholesky factor, without the call
                        var = m[p] * noise_ratio * S[lo, lo]
                        if var > 0.0:
                            g[lo] += math.sqrt(var) * z[lo]
                        continue
                    cholesky_block(S, lo, stops[p], m[p] * noise_ratio, L)
                    for i in range(lo, stops[p]):
                        acc = 0.0
                        for j in range(lo, i + 1):
                            acc += L[i, j] * z[j]
                        g[i] += acc
        for i in range(d):
            p = owner[i]
            if phase[p] == ph:
                x[i] -= signs[i] * (u[p] * dt) * g[i]
    return cost
'''


def iteration_module(compiled):
    """The generated module with ``advance`` bound to a compiled problem (module docstring).

    Args:
        compiled: a :class:`~stochctl.symbolic.compile.CompiledProblem`; its
            functions' module must be imported (it is, once compiled).
    """
    from ..symbolic.compile import bound_module

    return bound_module(compiled, _TEMPLATE, "stochctl_iter", __file__)
