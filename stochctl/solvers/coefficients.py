"""Time-independent coefficients of the scheme, evaluated once per solve, from the derivation.

The Hamiltonian terms come from the problem's derivation through the compiled layer
(:func:`stochctl.symbolic.compile.compile_hamiltonian`): per player p,
A_p = sum_{i of p} g_i V_i and Bt_p = eta sum_{i of p} Sigma_ii V_ii, and on the grid nodes x
(vectorised numpy, :mod:`stochctl._evaluator`)

    gh_i(x) = g_i(x) / h_i,  g_i = dA_p / dV_i = dg/dx_i          (drift per unit u),
    sd_i(x) = eta Sigma_ii(x) / h_i^2,  Sigma_ii = dBt_p / dV_ii / eta  (diffusion per unit u^2 m),
    G(x) terminal cost,  r(x) state running cost,

and the per-player constants of the controls (the derivation's bounds, m_p, kappa_p). The
scheme needs a diagonal diffusion a_ij = 0 for i != j; a problem whose diffusion has
off-diagonal entries (noise="shared" coupling the players, or a player whose coordinates
have correlated gradient noise) is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..errors import InputError, NumericalError
from .grid import Grid


@dataclass(frozen=True, eq=False)
class Coefficients:
    """Arrays and constants the kernels read (module docstring).

    Attributes:
        grid: the grid they were evaluated on.
        gh: (d, *shape) g_i / h_i.
        sd: (d, *shape) eta Sigma_ii / h_i^2.
        terminal: G on the grid.
        running: r on the grid, or None when r = 0.
        owner: (d,) player index of each axis.
        sign: (P,) +1 minimiser, -1 maximiser.
        umin, umax, mfix, kappa, mmin, mmax: (P,) control constants (m = 1/B).
        isbatch: (P,) whether the batch size is a control.
        players: player names.
        time_name: the problem's time variable.
    """

    grid: Grid
    gh: np.ndarray
    sd: np.ndarray
    terminal: np.ndarray
    running: np.ndarray | None
    owner: np.ndarray
    sign: np.ndarray
    umin: np.ndarray
    umax: np.ndarray
    mfix: np.ndarray
    isbatch: np.ndarray
    kappa: np.ndarray
    mmin: np.ndarray
    mmax: np.ndarray
    players: tuple[str, ...]
    time_name: str = "t"
    dirichlet: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        if self.dirichlet is None:
            object.__setattr__(self, "dirichlet", self.grid.dirichlet_mask())

    @property
    def ndim(self) -> int:
        return self.grid.ndim

    def m_upper(self) -> np.ndarray:
        """Largest m per player (m_max under batch control, else the fixed m)."""
        return np.where(self.isbatch, self.mmax, self.mfix)

    def cfl_rate(self) -> float:
        """max_x sum_i (u_max |g_i| / h_i + u_max^2 eta m_max Sigma_ii / h_i^2), over non-Dirichlet nodes.

        The explicit step is monotone iff dt * cfl_rate <= 1.
        """
        um = self.umax[self.owner]
        mm = self.m_upper()[self.owner]
        rate = np.zeros(self.grid.shape)
        for i in range(self.ndim):
            rate += um[i] * np.abs(self.gh[i]) + um[i] * um[i] * mm[i] * self.sd[i]
        rate = np.where(self.dirichlet, 0.0, rate)
        return float(rate.max()) if rate.size else 0.0

    def boundary_values(self, tau: float) -> np.ndarray:
        """Dirichlet data G + tau r at time-to-go tau (on every node)."""
        if self.running is None:
            return self.terminal.copy()
        return self.terminal + tau * self.running


def _location(grid: Grid, mask: np.ndarray) -> str:
    idx = np.unravel_index(int(np.argmax(mask)), mask.shape)
    return ", ".join(f"{n}={ax[k]:.6g}" for n, ax, k in zip(grid.names, grid.axes, idx))


def _evaluate(model, expr, mesh, what: str, grid: Grid, check: bool = True) -> np.ndarray:
    with np.errstate(all="ignore"):
        out = np.asarray(model.lambdify(expr)(*mesh), dtype=float)
    out = np.broadcast_to(out, grid.shape).astype(float, copy=True)
    bad = ~np.isfinite(out)
    if check and bad.any():
        raise NumericalError(f"{what} is not finite at {_location(grid, bad)}")
    return out


def check_diagonal(problem, grid: Grid, mesh=None) -> None:
    """Refuse a diffusion with off-diagonal entries (checked symbolically, then on the grid)."""
    n = len(problem.state_symbols)
    names = problem.model.state_names
    for i in range(n):
        for j in range(i + 1, n):
            p, q = problem.owner(i), problem.owner(j)
            if p != q and problem.noise != "shared":
                continue
            entry = problem.covariance[i, j]
            if sp.sympify(entry) == 0:
                continue
            mesh = grid.mesh() if mesh is None else mesh
            with np.errstate(all="ignore"):
                vals = np.abs(np.asarray(problem.model.lambdify(entry)(*mesh), dtype=float))
            diag = max(float(np.nanmax(np.abs(problem.model.lambdify(problem.covariance[k, k])(*mesh))))
                       for k in (i, j))
            worst = float(np.nanmax(vals)) if vals.size else 0.0
            if not worst <= 1e-12 * max(1.0, diag):
                why = "noise='shared' couples the players" if p != q else f"player {problem.players[p].name}'s " \
                                                                         "coordinates have correlated noise"
                raise InputError(
                    f"the grid solver needs a diagonal diffusion, but Sigma[{names[i]}, {names[j]}] reaches "
                    f"{worst:.3g} on the grid ({why}); use noise='independent' or a diagonal covariance"
                )


def hamiltonian_terms(problem, grid: Grid, mesh=None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(g_i, Sigma_ii) on the grid nodes, per coordinate, from the derivation (module docstring).

    Raises NumericalError naming the node where a term is not finite or Sigma_ii < 0.
    """
    from ..symbolic.compile import compile_hamiltonian

    names = problem.model.state_names
    if tuple(grid.names) != tuple(names):
        raise InputError(f"grid axes {grid.names} must be the problem's state coordinates {names}")
    mesh = grid.mesh() if mesh is None else mesh
    g, sigma = compile_hamiltonian(problem).evaluate(mesh)
    for i, name in enumerate(names):
        g[i] = _checked(g[i], f"dg/d{name}", grid)
        sigma[i] = _checked(sigma[i], f"Sigma[{name}, {name}]", grid)
        if (sigma[i] < 0).any():
            raise NumericalError(f"Sigma[{name}, {name}] is negative at {_location(grid, sigma[i] < 0)}")
    return g, sigma


def _checked(values, what: str, grid: Grid) -> np.ndarray:
    out = np.broadcast_to(np.asarray(values, dtype=float), grid.shape).astype(float, copy=True)
    bad = ~np.isfinite(out)
    if bad.any():
        raise NumericalError(f"{what} is not finite at {_location(grid, bad)}")
    return out


def evaluate_coefficients(problem, grid: Grid) -> Coefficients:
    """Evaluate the scheme's coefficients of ``problem`` on ``grid`` (module docstring)."""
    from ..symbolic.compile import compile_hamiltonian

    model = problem.model
    names = model.state_names
    if tuple(grid.names) != tuple(names):
        raise InputError(f"grid axes {grid.names} must be the problem's state coordinates {names}")
    mesh = grid.mesh()
    check_diagonal(problem, grid, mesh)
    g, sigma = hamiltonian_terms(problem, grid, mesh)
    ham = compile_hamiltonian(problem)
    d = grid.ndim
    h = grid.spacing
    gh = np.empty((d, *grid.shape))
    sd = np.empty((d, *grid.shape))
    for i in range(d):
        gh[i] = g[i] / h[i]
        sd[i] = ham.eta * sigma[i] / (h[i] * h[i])
    # a non-finite terminal value is reported by the solver as the value at time T
    terminal = _evaluate(model, problem.terminal_cost, mesh, "the terminal cost", grid, check=False)
    running = None
    if sp.sympify(problem.running_cost) != 0:
        running = _evaluate(model, problem.running_cost, mesh, "the running cost", grid)
    pl = ham.players
    return Coefficients(
        grid=grid, gh=gh, sd=sd, terminal=terminal, running=running,
        owner=ham.owner.copy(),
        sign=np.array([p.sign for p in pl]),
        umin=np.array([p.u_min for p in pl], dtype=float),
        umax=np.array([p.u_max for p in pl], dtype=float),
        mfix=np.array([p.m for p in pl], dtype=float),
        isbatch=np.array([p.batch for p in pl], dtype=np.bool_),
        kappa=np.array([p.kappa for p in pl], dtype=float),
        mmin=np.array([p.m_min for p in pl], dtype=float),
        mmax=np.array([p.m_max for p in pl], dtype=float),
        players=tuple(p.name for p in pl),
        time_name=model.time_name,
    )
