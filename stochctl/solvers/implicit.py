"""Implicit (backward Euler) stepping with Howard policy iteration, one player, 1D and 2D.

Each step solves the discrete HJB equation at the new level,

    V^k = V^{k+1} + dt [ opt_u (L^u V^k + r_u) ],

by policy iteration (Howard): starting from the policy that is optimal for
V^{k+1}, repeat

    (I - dt L^u) W = V^{k+1} + dt r_u,        (a linear solve)
    u <- argopt of the discrete Hamiltonian at W (the explicit clip/endpoint rule),

until the policy stops changing or W changes by less than
``tol * max(1, max|W|)``. L^u is the upwind/central operator of
:mod:`stochctl.solvers.explicit` with the ghost nodes folded in, so
L^u V = sum (c_nb (V_nb - V_0)) with c_nb >= 0, and I - dt L^u is a strictly
diagonally dominant M-matrix for every dt > 0: the scheme is monotone without
a step-size condition. The systems are tridiagonal in 1D (Thomas algorithm)
and five-point sparse in 2D (scipy.sparse, SuperLU). Recorded per step: the
number of policy iterations and the residual
max |V^k - V^{k+1} - dt (H(V^k) + r)| of the discrete HJB equation.
"""

from __future__ import annotations

import math
import time

import numpy as np

from ..errors import InputError, NumericalError
from . import _implicit_kernels
from ._limits import check_steps
from .coefficients import Coefficients
from .explicit import Storage, nonfinite_error, progress_bar, step, workspace


def implicit_time_grid(horizon: float, coeffs: Coefficients, dt: float | None = None) -> np.ndarray:
    """Time levels for the implicit scheme: K = ceil(T / dt) equal steps.

    Default dt: the explicit monotone step times 10, capped at T / 100 and
    floored at T / 10000.
    """
    if dt is None:
        rate = coeffs.cfl_rate()
        dt = min(horizon / 100.0, 10.0 / rate if rate > 0 else math.inf)
        dt = max(dt, horizon / 10000.0)
    elif isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise InputError(f"dt must be a positive number; got {dt!r}")
    check_steps(horizon, dt, horizon / dt)
    K = max(1, math.ceil(horizon / dt - 1e-9))
    return np.linspace(0.0, horizon, K + 1)


def check_supported(coeffs: Coefficients) -> None:
    if len(coeffs.sign) != 1:
        raise InputError(f"the implicit scheme solves one-player problems; this one has players "
                         f"{', '.join(coeffs.players)}: use scheme='explicit' for games")
    if coeffs.ndim not in (1, 2):
        raise InputError(f"the implicit scheme supports 1D and 2D grids; got {coeffs.ndim}D: use scheme='explicit'")


def march_implicit(coeffs: Coefficients, times: np.ndarray, stored: np.ndarray, tol: float = 1e-10,
                   max_policy_iterations: int = 50, progress=None) -> tuple[Storage, dict]:
    """March V^K = G back to V^0 with backward Euler + Howard; returns the storage and diagnostics."""
    check_supported(coeffs)
    K = len(times) - 1
    store = Storage(coeffs, stored)
    V = np.array(coeffs.terminal, dtype=float)
    if not np.all(np.isfinite(V)):
        raise nonfinite_error(V, coeffs, times[-1], K, K)
    store.values[-1] = V
    howard = _howard_1d if coeffs.ndim == 1 else _howard_2d
    state = _State(coeffs)
    # starting policy of the first step: optimal at V^K; later steps start from the previous step's policy
    step(V, state.H, coeffs, times[-1] - times[-2], *state.pol, True)
    iterations = np.zeros(K, dtype=np.int64)
    residuals = np.zeros(K)
    bar = progress_bar(K, progress, "implicit")
    chunk = max(1, K // 200)
    start = time.perf_counter()
    try:
        for k in range(K - 1, -1, -1):
            dt = times[k + 1] - times[k]
            it, status, res = howard(state, V, dt, tol, max_policy_iterations)
            if status < 0:
                raise nonfinite_error(state.W, coeffs, times[k], k, K)
            if status == 0:
                raise NumericalError(
                    f"policy iteration did not converge at {coeffs.time_name}={times[k]:.6g} after "
                    f"{max_policy_iterations} iterations (last change {res:.3g}); raise "
                    f"max_policy_iterations or tol, or use a smaller dt"
                )
            iterations[k] = it
            residuals[k] = res
            U, M, C, keep = store.policy_targets(k, state.pol)
            if keep:
                U[...] = state.pol[0]
                M[...] = state.pol[1]
                C[...] = state.pol[2]
            V, state.W = state.W, V
            j = store.slot.get(k)
            if j is not None:
                store.values[j] = V
            if bar is not None and (K - k) % chunk == 0:
                bar.update(chunk)
    finally:
        if bar is not None:
            bar.close()
    return store, {"kernel_time": time.perf_counter() - start, "policy_iterations": iterations,
                   "residuals": residuals}


class _State:
    """Work arrays of the policy iteration."""

    def __init__(self, coeffs: Coefficients):
        self.c = coeffs
        shape = coeffs.grid.shape
        self.pol = workspace(coeffs)
        self.new = workspace(coeffs)
        self.W = np.empty(shape)
        self.W_old = np.empty(shape)
        self.H = np.empty(shape)
        self.r = coeffs.running if coeffs.running is not None else np.zeros(shape)
        self.bc = coeffs.grid.boundary_codes()
        self.diag = np.empty(shape)
        self.rhs = np.empty(shape)
        self.parts = [np.empty(shape) for _ in range(4)]


def _howard_1d(st: _State, Vnext, dt, tol, max_iter):
    c = st.c
    lower, upper, work = st.parts[:3]
    return _implicit_kernels.howard_step_1d(
        Vnext, st.W, st.W_old, st.H, c.gh, c.sd, st.r, c.running is not None, c.owner, c.sign, c.umin, c.umax,
        c.mfix, c.isbatch, c.kappa, c.mmin, c.mmax, st.bc, dt, tol, max_iter, st.pol[0], st.pol[1], st.pol[2],
        st.new[0], st.new[1], st.new[2], lower, st.diag, upper, st.rhs, work, st.pol[3])


def _howard_2d(st: _State, Vnext, dt, tol, max_iter):
    import scipy.sparse as sps
    from scipy.sparse.linalg import spsolve

    c = st.c
    st.W_old[...] = Vnext
    n1 = Vnext.shape[1]
    cm0, cp0, cm1, cp1 = st.parts
    change = 0.0
    for it in range(1, max_iter + 1):
        _implicit_kernels.operator_2d(c.gh, c.sd, st.r, c.running is not None, c.owner, c.sign, c.kappa, c.isbatch, st.bc,
                             dt, st.pol[0], st.pol[1], Vnext, cm0, cp0, cm1, cp1, st.diag, st.rhs)
        A = sps.diags([cm0.ravel()[n1:], cm1.ravel()[1:], st.diag.ravel(), cp1.ravel()[:-1], cp0.ravel()[:-n1]],
                      [-n1, -1, 0, 1, n1], format="csc")
        st.W[...] = spsolve(A, st.rhs.ravel()).reshape(Vnext.shape)
        if not np.all(np.isfinite(st.W)):
            return it, -1, math.inf
        step(st.W, st.H, c, dt, *st.new, True)
        change = float(np.max(np.abs(st.W - st.W_old)))
        same = np.array_equal(st.new[0], st.pol[0]) and np.array_equal(st.new[1], st.pol[1])
        st.pol, st.new = st.new, st.pol
        if same or change <= tol * max(1.0, float(np.max(np.abs(st.W)))):
            return it, 1, float(np.max(np.abs((2.0 * st.W - st.H) - Vnext)))
        st.W_old[...] = st.W
    return max_iter, 0, change
