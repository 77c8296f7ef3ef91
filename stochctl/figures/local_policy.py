"""Figure: value function and optimal learning-rate policy of the dimensionless local model.

The local model dY = -u Y dtau + u dW, u in [0, 1], terminal cost Y^2
(design section 4) is solved once by the implicit finite-difference scheme
with policy iteration; the figure shows V and u* over the remaining
dimensionless time tau_rem = T - tau and the scaled distance y, as a trainer
looks them up. The optimal multiplier is the clipped ratio
u* = clip(A / B, 0, 1) where B = V_yy > 0 and bang-bang (an endpoint) where
V_yy <= 0; both the bang-bang region and the region where the clipped ratio
saturates at u_max = 1 are outlined.
"""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps

from . import _style


def solve_local(*, quick: bool = False):
    """The local model's Solution: 1201 nodes on [-6, 6], implicit steps of 0.005 (quick: 241, 0.02)."""
    from ..models import get_model
    from ..solvers import Grid, solve
    from ..symbolic.problem import ControlProblem

    problem = ControlProblem.from_model(get_model("local-quadratic"))
    points, dt = (241, 0.02) if quick else (1201, 0.005)
    grid = Grid.for_problem(problem, points)
    store = max(1, int(round(0.02 / dt)))
    return problem, solve(problem, grid, scheme="implicit", dt=dt, store_every=store, progress=False)


def figure(*, quick: bool = False, size=(14.0, 4.9)):
    """Heat maps of V(tau_rem, y) and u*(tau_rem, y) with the bang-bang and saturated regions, and slices of u*."""
    problem, sol = solve_local(quick=quick)
    (y,) = sol.grid.axes
    (player,) = sol.players
    u_lo, u_hi = sol.u_bounds[player]
    T = sol.horizon
    rem_v = T - sol.stored_times                     # value levels, remaining time
    rem_u = T - sol.policy_times                     # policy levels
    V = sol.values                                   # (levels, y)
    U = sol.controls[f"u_{player}"]
    bang = ~np.asarray(sol.convex[player], dtype=bool)
    saturated = (~bang) & (U >= u_hi - 1e-9)

    fig = _style.new_figure(size)
    ax_v, ax_u, ax_s = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 0.9]})
    order_v, order_u = np.argsort(rem_v), np.argsort(rem_u)

    shown = np.abs(y) <= 4.0
    _style.heatmap(ax_v, rem_v[order_v], y, V[order_v], cmap=_style.VALUE_CMAP, vmin=0.0,
                   vmax=float(V[:, shown].max()), label=r"value $V$ = optimal $E[Y_T^2]$")
    levels = [0.25, 0.5, 1, 2, 4, 8, 16]
    cs = ax_v.contour(rem_v[order_v], y, V[order_v].T, levels=levels, colors="white", linewidths=0.7)
    ax_v.clabel(cs, fontsize=7, fmt="%g")
    ax_v.set_title("value function")

    _style.heatmap(ax_u, rem_u[order_u], y, U[order_u], cmap=_style.POLICY_CMAP, vmin=u_lo, vmax=u_hi,
                   label=r"optimal multiplier $u^*$")
    handles = []
    h = _style.outline(ax_u, rem_u[order_u], y, saturated[order_u], color="#7fdbff", hatch=None,
                       label=r"clipped at $u_{\max}=1$ ($V_{yy}>0$)")
    if h is not None:
        handles.append(h)
    inner = float(bang[:, 1:-1].mean())
    text = (f"bang-bang ($V_{{yy}}\\leq 0$): {inner:.1%} of interior nodes" if inner > 0 else
            "bang-bang ($V_{yy}\\leq 0$): no interior node (only the boundary nodes $y=\\pm 6$)")
    h = _style.outline(ax_u, rem_u[order_u], y, bang[order_u], color="#00ff7f", hatch="xx", label=text)
    if h is not None:
        handles.append(h)
    cs = ax_u.contour(rem_u[order_u], y, U[order_u].T, levels=[0.1, 0.5, 0.9], colors="0.7", linewidths=0.7,
                      linestyles=":")
    ax_u.clabel(cs, fontsize=7, fmt="u=%g")
    ax_u.set_title("optimal learning-rate multiplier")
    ax_u.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8)

    for ax, span in ((ax_v, 4.0), (ax_u, 2.0)):
        ax.set_ylim(-span, span)
        ax.set_xlabel(r"remaining time $\tau_{\rm rem} = a\,\eta\,(K-k)$ (dimensionless)")
        ax.set_ylabel(r"scaled distance $y = (|\nabla f|/a)\sqrt{a/(\eta s^2)}$")

    cmap = colormaps["viridis"]
    picks = [0.05, 0.25, 0.5, 1.0, T]
    for k, r in enumerate(picks):
        j = int(np.argmin(np.abs(rem_u - r)))
        ax_s.plot(y, U[j], color=cmap(k / (len(picks) - 1) * 0.9),
                  label=fr"$\tau_{{\rm rem}}$ = {rem_u[j]:.2g}")
    ax_s.set_xlabel("scaled distance $y$")
    ax_s.set_ylabel(r"$u^*(\tau_{\rm rem}, y)$")
    ax_s.set_title("policy slices")
    ax_s.set_xlim(-2, 2)
    ax_s.set_ylim(u_lo - 0.03, u_hi + 0.05)
    ax_s.grid(True)
    ax_s.legend(loc="lower left", fontsize=8)
    for ax, letter in zip((ax_v, ax_u, ax_s), "abc"):
        _style.panel_label(ax, letter)
    n = sol.grid.points[0]
    fig.suptitle(f"Local model $dY=-uY\\,d\\tau+u\\,dW$, cost $Y_T^2$, $u\\in[0,1]$ "
                 f"(implicit scheme, {n} nodes on [-6, 6], $d\\tau$ = {sol.times[1] - sol.times[0]:g})")
    return fig
