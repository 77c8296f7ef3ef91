"""Figure: Monte Carlo validation of the PDE value over grid refinement.

For a sequence of grids, the HJB/Isaacs value V_h(0, x0) predicted by the
finite-difference solver is compared with the expected cost of its own policy
simulated by Euler-Maruyama (:func:`stochctl.solvers.montecarlo.simulate_policy`),
E[G(X_T)] with X driven by u_h(t, X_t). Both converge to the value of the
control problem as the grid is refined; the error bars are 2 Monte Carlo
standard errors.
"""

from __future__ import annotations

import numpy as np
from matplotlib import ticker

from . import _style

CASES = (
    ("quadratic", {}, {"x": 1.5}, "quadratic loss (a = 1, s = 0.5, $\\sigma$ = 1), $x_0$ = 1.5"),
    ("dirac-gan", {"c": 1.0}, {"theta": 0.0, "omega": 0.5},
     "Dirac GAN (c = 1), $(\\theta_0, \\omega_0)$ = (0, 0.5)"),
)
"""(model, parameters, start point, title) of the panels."""

POINTS = {1: (26, 51, 101, 201, 401, 801), 2: (21, 41, 81, 161)}
QUICK_POINTS = {1: (26, 51, 101), 2: (21, 41)}
"""Grid nodes per axis of the refinement, by dimension."""
STEPS, QUICK_STEPS = 1000, 200
"""Euler-Maruyama steps over [0, T] of every simulation (the same for every grid)."""


def refinement(name, params, x0, *, quick: bool = False, paths: int | None = None, seed: int = 0):
    """PDE values and simulated policy costs over grid refinement.

    Returns:
        (points, pde, mc_mean, mc_stderr), arrays over the refinement.
    """
    from ..models import get_model
    from ..solvers import Grid, solve
    from ..solvers.montecarlo import simulate_policy
    from ..symbolic.problem import ControlProblem

    problem = ControlProblem.from_model(get_model(name, **params))
    dim = len(problem.model.state_names)
    sizes = (QUICK_POINTS if quick else POINTS)[dim]
    if paths is None:
        paths = 2000 if quick else 10000
    start = [x0[n] for n in problem.model.state_names]
    pde, mean, se = [], [], []
    for n in sizes:
        sol = solve(problem, Grid.for_problem(problem, n), progress=False)
        pde.append(sol.value_at(start, 0.0))
        mc = simulate_policy(problem, sol, start, paths=paths, steps=QUICK_STEPS if quick else STEPS, seed=seed,
                             antithetic=True)
        mean.append(mc.mean)
        se.append(mc.stderr)
    return np.array(sizes), np.array(pde), np.array(mean), np.array(se)


def figure(*, quick: bool = False, size=(15.0, 5.2)):
    """PDE value and simulated cost of its policy against the grid size (1-D and 2-D), and their gap."""
    fig = _style.new_figure(size)
    axes = fig.subplots(1, len(CASES) + 1)
    c = _style.COLORS
    results = []
    for k, (ax, (name, params, x0, title)) in enumerate(zip(axes, CASES)):
        points, pde, mean, se = refinement(name, params, x0, quick=quick, seed=17 + k)
        results.append((points, pde, mean, se))
        ax.plot(points, pde, "o-", color=c["pde"], label=r"PDE value $V_h(0, x_0)$")
        ax.errorbar(points, mean, yerr=2 * se, fmt="s", ms=5, color=c["mc"], capsize=3, mfc="white",
                    label=r"simulated cost of the PDE policy ($\pm$2 s.e.)")
        _nodes_axis(ax.xaxis, points)
        ax.set_xlabel("grid nodes per axis")
        ax.set_ylabel(r"expected terminal cost $E[g(X_T)]$")
        ax.set_title(title, fontsize=9.5)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize=8.5)
        _style.panel_label(ax, "ab"[k])
    ax = axes[-1]
    markers = ("o", "D")
    for (points, pde, mean, se), (name, _, x0, _), marker in zip(results, CASES, markers):
        gap = np.abs(pde - mean) / np.abs(mean)
        err = 2 * se / np.abs(mean)
        ax.errorbar(points, gap, yerr=[np.minimum(err, 0.9 * gap), err], fmt=marker + "-", ms=5, capsize=3,
                    label=f"{name} ({len(x0)}-D)")
    ref = results[0][0]
    guide = 0.5 * np.abs(results[0][1][0] - results[0][2][0]) / abs(results[0][2][0]) * ref[0] / ref
    ax.plot(ref, guide, "k:", lw=1.2, label="slope $-1$ (first order in $h$)")
    ax.set_yscale("log")
    shown = np.concatenate([r[0] for r in results])
    _nodes_axis(ax.xaxis, [t for t in (25, 50, 100, 200, 400, 800) if shown.min() <= t <= 1.05 * shown.max()])
    ax.set_xlabel("grid nodes per axis")
    ax.set_ylabel(r"$|V_h - \mathrm{MC}| \,/\, |\mathrm{MC}|$ ($\pm$2 s.e.)")
    ax.set_title("relative gap between PDE and Monte Carlo")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8.5)
    _style.panel_label(ax, "c")
    ax.text(0.98, 0.98, "lower error bars cut at 90% of the gap", transform=ax.transAxes, ha="right", va="top",
            fontsize=7.5, color="0.4")
    fig.suptitle("Monte Carlo validation: the HJB/Isaacs value against the simulated cost of its own policy "
                 f"({STEPS if not quick else QUICK_STEPS} Euler steps, antithetic paths)")
    return fig


def _nodes_axis(axis, points):
    axis.axes.set_xscale("log")
    axis.set_major_locator(ticker.FixedLocator(points))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())
