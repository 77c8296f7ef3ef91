"""Explicit monotone finite-difference stepping of the HJB/Isaacs equation.

Backward from V(T, .) = G, with t_k = k dt and K dt = T:

    V^k = V^{k+1} + dt [ H(x, V^{k+1}) + r(x) ],
    H = sum_p opt_{u_p, m_p} [ -s_p u_p A_p + u_p^2 m_p Bt_p / 2 (+ s_p kappa_p / m_p) ],
    A_p = sum_{i of p} g_i D^up_i V,   Bt_p = eta sum_{i of p} Sigma_ii D2_i V,

(opt = min for a minimiser, s_p = +1; max for a maximiser, s_p = -1). The
drift of coordinate i is b_i = -s_p u_p g_i with u_p >= 0, so the upwind
difference D^up_i is forward where -s_p g_i > 0 and backward elsewhere,
whatever u_p: the discrete Hamiltonian is exactly quadratic in u_p and the
clip/endpoint rule (:mod:`stochctl.symbolic.optimal`) gives its exact optimum
at every node; under batch control the KKT candidates of the (u, m) box do.
The control of step k (on [t_k, t_{k+1})) is the optimum at V^{k+1}.

Monotonicity (CFL) condition. Writing the step as a combination of V^{k+1} at
the node and its neighbours, every neighbour weight is non-negative and the
node's own weight is 1 - dt sum_i (u |g_i| / h_i + u^2 eta m Sigma_ii / h_i^2);
it is non-negative for every admissible control iff

    dt * max_x sum_i ( u_max |g_i| / h_i + u_max^2 eta m_max Sigma_ii / h_i^2 ) <= 1.

The solver takes dt = T / K with the smallest integer K for which
dt * rate <= 0.9 (safety factor), and refuses a user step above 1 / rate.
Monotone, stable and consistent, the scheme converges to the viscosity
solution (Barles-Souganidis), with first order in h and dt where V is smooth.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np

from ..errors import InputError, NumericalError
from . import _kernels
from ._limits import check_steps
from .coefficients import Coefficients

SAFETY = 0.9
"""Fraction of the largest monotone step that the default time step uses."""

_STEPPERS = {1: _kernels.explicit_step_1d, 2: _kernels.explicit_step_2d, 3: _kernels.explicit_step_3d}
_SERIAL = {1: _kernels.explicit_step_1d_serial, 2: _kernels.explicit_step_2d_serial,
           3: _kernels.explicit_step_3d_serial}

PARALLEL_MIN_NODES = 40_000
"""Grids with fewer nodes use the serial kernels: a parallel launch per step costs more than it saves."""


def max_time_step(coeffs: Coefficients) -> float:
    """Largest explicit step keeping the scheme monotone: 1 / cfl_rate (inf without dynamics)."""
    rate = coeffs.cfl_rate()
    return math.inf if rate == 0 else 1.0 / rate


def explicit_time_grid(horizon: float, coeffs: Coefficients, dt: float | None = None,
                       safety: float = SAFETY) -> tuple[np.ndarray, float]:
    """Time levels t_k = k T / K for the explicit scheme and the CFL number dt * rate.

    Without ``dt``: the smallest K with (T / K) * rate <= safety. With ``dt``:
    refused above the monotone bound, else K = ceil(T / dt) so T / K <= dt.
    """
    rate = coeffs.cfl_rate()
    if dt is None:
        check_steps(horizon, safety / rate if rate > 0 else horizon, horizon * rate / safety)
        K = max(1, math.ceil(horizon * rate / safety - 1e-9))
    else:
        _check_dt(dt)
        if rate > 0 and dt * rate > 1.0 + 1e-12:
            raise InputError(
                f"dt={dt:.6g} violates the monotonicity (CFL) condition of the explicit scheme; "
                f"the largest allowed step is {1.0 / rate:.6g}"
            )
        check_steps(horizon, dt, horizon / dt)
        K = max(1, math.ceil(horizon / dt - 1e-9))
    times = np.linspace(0.0, horizon, K + 1)
    return times, (horizon / K) * rate


def _check_dt(dt):
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise InputError(f"dt must be a positive number; got {dt!r}")


def workspace(coeffs: Coefficients, dummy: bool = False):
    """Scratch policy arrays (U, M, C) and the per-row non-finite flags of one step.

    ``dummy=True`` gives policy arrays with one node per axis, for steps that
    store no policy (the kernels write U, M, C only when ``store`` is set).
    """
    shape = (len(coeffs.sign), *((1,) * coeffs.ndim if dummy else coeffs.grid.shape))
    nbad = 64 if coeffs.ndim == 1 else coeffs.grid.shape[0]
    return np.empty(shape), np.empty(shape), np.empty(shape, dtype=np.bool_), np.zeros(nbad, dtype=np.bool_)


def step(V, out, coeffs: Coefficients, dt: float, U, M, C, bad, store: bool = True, parallel: bool | None = None):
    """One explicit step with the numba kernel: out = V + dt (H(V) + r); policy into U, M, C.

    ``parallel=None`` picks the parallel kernel for grids of at least
    :data:`PARALLEL_MIN_NODES` nodes when numba runs more than one thread.
    """
    if parallel is None:
        import numba

        parallel = V.size >= PARALLEL_MIN_NODES and numba.get_num_threads() > 1
    run = (_STEPPERS if parallel else _SERIAL)[V.ndim]
    r = coeffs.running if coeffs.running is not None else V
    run(V, out, coeffs.gh, coeffs.sd, r, coeffs.running is not None, coeffs.owner, coeffs.sign, coeffs.umin,
        coeffs.umax, coeffs.mfix, coeffs.isbatch, coeffs.kappa, coeffs.mmin, coeffs.mmax,
        coeffs.grid.boundary_codes(), float(dt), bool(store), U, M, C, bad)
    return out


# ---------------------------------------------------------------- numpy reference
def _faces(arr, axis, index):
    sl = [slice(None)] * arr.ndim
    sl[axis] = index
    return tuple(sl)


def reference_differences(V, coeffs: Coefficients):
    """Per-player (A_p, Bt_p) arrays of the scheme, vectorised numpy (reference for the kernels)."""
    d = V.ndim
    P = len(coeffs.sign)
    A = [np.zeros(V.shape) for _ in range(P)]
    Bt = [np.zeros(V.shape) for _ in range(P)]
    for ax in range(d):
        p = int(coeffs.owner[ax])
        s = coeffs.sign[p]
        g = coeffs.gh[ax]
        fwd = s * g < 0.0
        n = V.shape[ax]
        idx = np.arange(n)
        vm = np.take(V, np.maximum(idx - 1, 0), axis=ax)
        vp = np.take(V, np.minimum(idx + 1, n - 1), axis=ax)
        d1 = np.where(fwd, vp - V, V - vm)
        d2 = (vp - 2.0 * V) + vm
        lo_kind, hi_kind = coeffs.grid.boundary[ax]
        lo, hi = _faces(V, ax, 0), _faces(V, ax, n - 1)
        if lo_kind == "reflecting":
            d1[lo] = np.where(fwd[lo], vp[lo] - V[lo], V[lo] - vp[lo])
            d2[lo] = (vp[lo] - 2.0 * V[lo]) + vp[lo]
        else:
            d1[lo] = np.where(fwd[lo], vp[lo] - V[lo], 0.0)
            d2[lo] = 0.0
        if hi_kind == "reflecting":
            d1[hi] = np.where(fwd[hi], vm[hi] - V[hi], V[hi] - vm[hi])
            d2[hi] = (vm[hi] - 2.0 * V[hi]) + vm[hi]
        else:
            d1[hi] = np.where(fwd[hi], 0.0, V[hi] - vm[hi])
            d2[hi] = 0.0
        A[p] = A[p] + g * d1
        Bt[p] = Bt[p] + coeffs.sd[ax] * d2
    return A, Bt


def reference_policy(A, Bt, coeffs: Coefficients, p: int):
    """(u, m, h, convex) of player p from the numpy rules of :mod:`stochctl.symbolic.optimal`."""
    from ..symbolic.optimal import joint_value, optimal_u_m, optimal_u_max_player, optimal_u_min_player

    s = coeffs.sign[p]
    sense = "min" if s > 0 else "max"
    lo, hi = coeffs.umin[p], coeffs.umax[p]
    if coeffs.isbatch[p]:
        u, m = optimal_u_m(A, Bt, coeffs.kappa[p], lo, hi, coeffs.mmin[p], coeffs.mmax[p], sense)
        h = joint_value(u, m, A, Bt, coeffs.kappa[p], sense)
        return np.asarray(u), np.asarray(m), h, s * Bt > 0
    B = coeffs.mfix[p] * Bt
    rule = optimal_u_min_player if s > 0 else optimal_u_max_player
    u = np.asarray(rule(A, B, lo, hi))
    h = -s * u * A + 0.5 * u * u * B
    return u, np.full(A.shape, coeffs.mfix[p]), h, s * B > 0


def reference_step(V, coeffs: Coefficients, dt: float):
    """The explicit step in vectorised numpy: returns (out, U, M, C) like the kernel (reference).

    Same formulas and boundary rules as the numba kernels, written
    independently with array operations and the numpy control rules.
    """
    A, Bt = reference_differences(V, coeffs)
    P = len(coeffs.sign)
    U = np.empty((P, *V.shape))
    M = np.empty((P, *V.shape))
    C = np.empty((P, *V.shape), dtype=bool)
    H = np.zeros(V.shape)
    for p in range(P):
        U[p], M[p], h, C[p] = reference_policy(A[p], Bt[p], coeffs, p)
        H = H + h
    H = np.where(coeffs.dirichlet, 0.0, H)
    out = V + dt * (H + coeffs.running) if coeffs.running is not None else V + dt * H
    return out, U, M, C


# ---------------------------------------------------------------- marching driver
def locate_nonfinite(V: np.ndarray, coeffs: Coefficients) -> str:
    """'name=value, ...' of the first non-finite node of V."""
    bad = ~np.isfinite(V)
    idx = np.unravel_index(int(np.argmax(bad)), V.shape)
    return ", ".join(f"{n}={ax[k]:.6g}" for n, ax, k in zip(coeffs.grid.names, coeffs.grid.axes, idx))


def nonfinite_error(V, coeffs: Coefficients, t: float, k: int, K: int) -> NumericalError:
    where = locate_nonfinite(V, coeffs)
    kind = "NaN" if np.isnan(V).any() else "Inf"
    return NumericalError(
        f"the value became non-finite ({kind}) at {coeffs.time_name}={t:.6g} (level {k} of {K}) at {where}; "
        f"check the terminal and running costs for overflow there"
    )


class Storage:
    """Output arrays of a march: values at the stored levels and the policy at the stored levels < K."""

    def __init__(self, coeffs: Coefficients, stored: np.ndarray):
        shape = coeffs.grid.shape
        P = len(coeffs.sign)
        self.stored = stored
        self.slot = {int(k): j for j, k in enumerate(stored)}
        self.values = np.empty((len(stored), *shape))
        n_pol = len(stored) - 1
        self.U = np.empty((n_pol, P, *shape))
        self.C = np.empty((n_pol, P, *shape), dtype=np.bool_)
        self.M = np.empty((n_pol, P, *shape)) if coeffs.isbatch.any() else None
        self._m_scratch = np.empty((P, *shape))

    def policy_targets(self, k: int, scratch):
        """(U, M, C, store) arrays for the policy of step k: slots of the output or scratch."""
        j = self.slot.get(k)
        if j is None or j == len(self.stored) - 1:
            return scratch[0], scratch[1], scratch[2], False
        M = self.M[j] if self.M is not None else self._m_scratch
        return self.U[j], M, self.C[j], True


def progress_bar(total: int, progress, desc: str):
    """A tqdm bar on stderr shown after about a second, or None when silent."""
    if progress is False:
        return None
    if progress is None and not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", delay=1.0, file=sys.stderr, leave=False)


def march_explicit(coeffs: Coefficients, times: np.ndarray, stored: np.ndarray, progress=None,
                   desc: str = "explicit") -> tuple[Storage, dict]:
    """March V^K = G back to V^0 with the explicit kernel; returns the storage and diagnostics."""
    K = len(times) - 1
    store = Storage(coeffs, stored)
    V = np.array(coeffs.terminal, dtype=float)
    if not np.all(np.isfinite(V)):
        raise nonfinite_error(V, coeffs, times[-1], K, K)
    out = np.empty_like(V)
    scratch = workspace(coeffs, dummy=True)
    bad = scratch[3]
    store.values[-1] = V
    bar = progress_bar(K, progress, desc)
    chunk = max(1, K // 200)
    start = time.perf_counter()
    try:
        for k in range(K - 1, -1, -1):
            dt = times[k + 1] - times[k]
            U, M, C, keep = store.policy_targets(k, scratch)
            step(V, out, coeffs, dt, U, M, C, bad, keep)
            if bad.any():
                raise nonfinite_error(out, coeffs, times[k], k, K)
            V, out = out, V
            j = store.slot.get(k)
            if j is not None:
                store.values[j] = V
            if bar is not None and (K - k) % chunk == 0:
                bar.update(chunk)
    finally:
        if bar is not None:
            bar.close()
    return store, {"kernel_time": time.perf_counter() - start}
