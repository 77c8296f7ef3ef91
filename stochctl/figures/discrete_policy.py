"""Figure: the explosion-aware policy of the discrete local model against the explosion thresholds.

The discrete local model Y_{k+1} = (1 - h u) Y_k - u sqrt(h) xi_k (design section 4b) is read from
the packaged table ``local-discrete`` at a long horizon (tau_remaining = 8): u*(h, y) for u_max = 1
and 4 as maps over the step in curvature units h = eta a and the scaled distance y, with the
thresholds of the constant policy u_max drawn over them (deterministic h u_max = 2, and the
mean-square one of a multiplicative gradient noise), and the continuous (h -> 0) policy beside.
"""

from __future__ import annotations

import numpy as np

from . import _style

TAU = 8.0
H_RANGE = (1e-3, 30.0)
"""The h shown (the table answers any h > 0: :mod:`stochctl.tables.discrete_policy`)."""
RELATIVE_NOISE = 0.5
"""s / a of the multiplicative-noise example whose mean-square threshold is drawn."""


def _table(quick: bool):
    if quick:
        from ..tables.shipped_discrete import build_discrete_table

        return build_discrete_table(quick=True, check=False, workers=1)
    from ..tables import load_table

    return load_table("local-discrete")


def figure(*, quick: bool = False, size=(14.5, 4.8)):
    """Maps of u*(h, y) for u_max = 1 and 4 with the thresholds, and the continuous-limit slices."""
    from ..analysis.explosion import critical_steps
    from ..tables import load_table
    from ..tables.discrete_policy import lookup

    table = _table(quick)
    h = np.geomspace(H_RANGE[0], H_RANGE[1], 160)
    y = np.linspace(0.0, 4.0, 161)
    det, ms, _ = critical_steps(1.0, RELATIVE_NOISE**2)
    fig = _style.new_figure(size)
    axes = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 0.9]})
    for ax, u_max, letter in zip(axes[:2], (1.0, 4.0), "ab"):
        H, Y = np.meshgrid(h, y, indexing="ij")
        U = lookup(table, u_max, H, TAU, Y)[0]
        _style.heatmap(ax, h, y, U, cmap=_style.POLICY_CMAP, vmin=0.0, vmax=u_max,
                       label=r"optimal multiplier $u^*$")
        ax.set_xscale("log")
        step = H * U
        cs = ax.contour(h, y, step.T, levels=[0.5, 0.9], colors=["white", "black"], linewidths=1.0,
                        linestyles=["dotted", "solid"])
        ax.clabel(cs, fmt={0.5: "h u* = 0.5", 0.9: "h u* = 0.9"}, fontsize=7)
        for value, style, label in ((det, "--", f"h u_max = {det:g} (deterministic)"),
                                    (ms, ":", f"h u_max = {ms:g} (mean square, s/a = {RELATIVE_NOISE:g})")):
            ax.axvline(value / u_max, color="crimson", linestyle=style, linewidth=1.4, label=label)
        ax.set_xlabel(r"step in curvature units $h = \eta a$")
        ax.set_ylabel(r"scaled distance $y$")
        ax.set_title(f"u_max = {u_max:g}, {TAU:g} units of time to go")
        ax.legend(loc="upper right", fontsize=7, framealpha=0.85)
        _style.panel_label(ax, letter)
    ax = axes[2]
    cont = load_table("local-quadratic")
    yy = np.linspace(0.0, 3.0, 301)
    for tau, color in ((0.25, "tab:blue"), (1.0, "tab:orange"), (TAU, "tab:green")):
        ref = np.asarray(cont.lookup(tau_remaining=np.full_like(yy, tau), y=yy)["u"])
        disc = lookup(table, 1.0, H_RANGE[0], tau, yy)[0]
        ax.plot(yy, ref, color=color, linewidth=2.2, alpha=0.5, label=f"continuous, tau_rem = {tau:g}")
        ax.plot(yy, disc, color=color, linestyle="--", linewidth=1.2, label=f"discrete h = {H_RANGE[0]:.3g}")
    ax.set_xlabel(r"scaled distance $y$")
    ax.set_ylabel(r"$u^*$ (u_max = 1)")
    ax.set_title("continuous limit h -> 0")
    ax.legend(fontsize=7)
    _style.panel_label(ax, "c")
    return fig
