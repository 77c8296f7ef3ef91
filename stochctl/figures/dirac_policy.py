"""Figure: optimal learning-rate policies of both players of the Dirac GAN.

The Isaacs equation of the Dirac GAN (g = log sigmoid(omega c) +
log sigmoid(-omega theta), additive gradient noise sigma per player,
u_theta, u_omega in [0, 1]) is solved by the explicit monotone scheme. Each
player's optimal multiplier is the clipped ratio where its block of the value
function has the right curvature (V_theta_theta > 0 for the generator,
V_omega_omega < 0 for the discriminator) and bang-bang, an endpoint of
[u_min, u_max], elsewhere; the bang-bang region is hatched.
"""

from __future__ import annotations

import numpy as np

from . import _style

CASES = ((0.0, "data point c = 0"), (1.0, "data point c = 1"))
"""(data point c, label) of the rows."""


def solve_dirac(c: float, *, quick: bool = False):
    """The Dirac GAN's Solution for data point c on [-2, 2]^2 (101^2 nodes; quick 41^2)."""
    from ..models import get_model
    from ..solvers import Grid, solve
    from ..symbolic.problem import ControlProblem

    problem = ControlProblem.from_model(get_model("dirac-gan", c=c))
    grid = Grid.for_problem(problem, 41 if quick else 101)
    return problem, solve(problem, grid, store_every=10**9, progress=False)


def figure(*, quick: bool = False, size=(14.0, 9.0)):
    """u_theta, u_omega and V at t = 0 over (theta, omega) for c = 0 and c = 1, bang-bang regions hatched."""
    fig = _style.new_figure(size)
    axes = fig.subplots(len(CASES), 3)
    letters = iter("abcdef")
    for row, (c, label) in zip(axes, CASES):
        problem, sol = solve_dirac(c, quick=quick)
        th, om = sol.grid.axes
        for ax, player in zip(row[:2], sol.players):
            u = sol.controls[f"u_{player}"][0]
            lo, hi = sol.u_bounds[player]
            bang = ~np.asarray(sol.convex[player][0], dtype=bool)
            _style.heatmap(ax, th, om, u, cmap=_style.POLICY_CMAP, vmin=lo, vmax=hi,
                           label=f"$u^*_{{\\{player}}}$ at $t=0$")
            sense = "min" if player == "theta" else "max"
            want = r"$V_{\theta\theta}>0$" if sense == "min" else r"$V_{\omega\omega}<0$"
            handle = _style.outline(ax, th, om, bang, color="#00e5ff", hatch="//",
                                    label=f"bang-bang ({100 * bang.mean():.0f}% of nodes; elsewhere {want}, "
                                          "clipped ratio)")
            at_max = float(np.mean(u[bang] >= hi - 1e-9)) if bang.any() else 0.0
            ax.set_title(f"{'generator' if sense == 'min' else 'discriminator'} $u^*_{{\\{player}}}$ "
                         f"({sense} player)")
            if handle is not None:
                ax.legend(handles=[handle], loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8,
                          title=f"{100 * at_max:.0f}% of the bang-bang nodes at $u_{{\\max}}$",
                          title_fontsize=8)
        V = sol.values[0]
        _style.heatmap(row[2], th, om, V, cmap=_style.VALUE_CMAP, label=r"value $V(0,\theta,\omega)$")
        cs = row[2].contour(th, om, V.T, levels=10, colors="white", linewidths=0.6)
        row[2].clabel(cs, fontsize=7, fmt="%.2f")
        row[2].plot([c], [0.0], "*", ms=13, color="gold", mec="black", label=f"equilibrium ({c:g}, 0)")
        row[2].legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8)
        row[2].set_title("value of the game")
        row[0].annotate(label, xy=(0, 0.5), xycoords=row[0].yaxis.label, xytext=(-8, 0),
                        textcoords="offset points", ha="right", va="center", rotation=90,
                        fontweight="bold", fontsize=11)
        for ax in row:
            ax.set_xlabel(r"$\theta$ (generator)")
            ax.set_ylabel(r"$\omega$ (discriminator)")
            _style.panel_label(ax, next(letters))
    meta = sol.metadata
    fig.suptitle(f"Dirac GAN, optimal learning-rate multipliers of both players at $t=0$ "
                 f"($\\eta$ = {meta['eta']:g}, $\\sigma$ = {meta['parameters']['sigma']:g}, T = {sol.horizon:g}, "
                 f"$u\\in[0,1]$, {sol.grid.points[0]}$^2$ nodes)")
    return fig
