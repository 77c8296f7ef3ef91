"""Figure: convexity maps of the GAN objectives and the profile objective.

For each model, the deciding eigenvalue of each player's Hessian block
(lambda_min of D2_theta g for the minimiser, which needs g convex in theta;
lambda_max of D2_omega g for the maximiser, which needs g concave in omega)
over the (theta, omega) box, with the region where the requirement fails
hatched; and the profile objective P(theta) = max_omega g(theta, omega) with
the theta intervals where its second difference is negative (P not convex)
shaded. All data come from :func:`stochctl.analysis.analyze_convexity`.
"""

from __future__ import annotations

import numpy as np

from . import _style

MODELS = (("dirac-gan", {"c": 1.0}, "Dirac GAN (c = 1)"),
          ("gaussian-gan", {}, "Gaussian GAN ($\\mu$ = 1, s = 1, $\\beta$ = 0)"))
"""(model name, parameters, title) of the rows."""


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs [start, stop) of consecutive True entries of a 1-D boolean array."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _block_panel(ax, report, block, names):
    x, y = report.axes
    label = (f"$\\lambda_{{\\min}}(\\partial^2 g/\\partial\\{names[0]}^2)$" if block.sense == "min"
             else f"$\\lambda_{{\\max}}(\\partial^2 g/\\partial\\{names[1]}^2)$")
    _style.heatmap(ax, x, y, block.extreme, cmap=_style.SIGNED_CMAP, norm=_style.signed_norm(block.extreme),
                   label=label)
    want = "convex" if block.sense == "min" else "concave"
    handle = _style.outline(ax, x, y, block.fails, color="black", hatch="//",
                            label=f"not {want} ({100 * block.failure_fraction:.0f}% of box)")
    who = f"$\\{names[0]}$ (min)" if block.sense == "min" else f"$\\{names[1]}$ (max)"
    ax.set_title(f"{who}: needs g {want} in $\\{names[0] if block.sense == 'min' else names[1]}$")
    ax.set_xlabel(f"$\\{names[0]}$ (generator parameter)")
    ax.set_ylabel(f"$\\{names[1]}$ (discriminator weight)")
    if handle is not None:
        ax.legend(handles=[handle], loc="lower left")
    else:
        ax.text(0.03, 0.04, f"{want} on the whole box", transform=ax.transAxes, fontsize=9,
                bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "0.6"})


def _profile_panel(ax, report):
    p = report.profile
    th = p.axes[0]
    ax.plot(th, p.values, color="black", label=r"$P(\theta)=\max_\omega g(\theta,\omega)$")
    first = True
    for a, b in runs(p.nonconvex):
        lo = th[max(a - 1, 0)] if a > 0 else th[0]
        hi = th[min(b, len(th) - 1)]
        ax.axvspan(lo, hi, color=_style.COLORS["upper"], alpha=0.15, lw=0,
                   label=f"P not convex ({100 * p.nonconvex_fraction:.0f}%)" if first else None)
        first = False
    k = int(np.argmin(p.values))
    ax.plot(th[k], p.values[k], "o", color=_style.COLORS["lower"], ms=5,
            label=fr"$\min_\theta P$ = {p.values[k]:.3f}")
    ax.set_xlabel(r"$\theta$ (generator parameter)")
    ax.set_ylabel(r"profile objective $P(\theta)$")
    ax.set_title("profile objective")
    ax.grid(True)
    twin = ax.twinx()
    twin.plot(th, p.argmax[:, 0], "--", color=_style.COLORS["numeric"], lw=1.1)
    twin.set_ylabel(r"best response $\omega^*(\theta)$", color=_style.COLORS["numeric"])
    twin.tick_params(axis="y", colors=_style.COLORS["numeric"])
    ax.plot([], [], "--", color=_style.COLORS["numeric"], lw=1.1, label=r"$\omega^*(\theta)$ (right axis)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, fontsize=8)


def figure(*, quick: bool = False, size=(13.5, 8.8)):
    """Convexity of the Dirac and Gaussian GAN objectives per player, and their profile objectives."""
    from ..analysis import analyze_convexity
    from ._models import cached_model

    points = 31 if quick else 81
    fig = _style.new_figure(size)
    axes = fig.subplots(len(MODELS), 3, gridspec_kw={"width_ratios": [1, 1, 1.05]})
    for row, (name, params, title) in zip(axes, MODELS):
        model = cached_model(name, **params)
        report = analyze_convexity(model, points=points)
        names = report.state_names
        for ax, block in zip(row[:2], report.blocks):
            _block_panel(ax, report, block, names)
        _profile_panel(row[2], report)
        row[0].annotate(title, xy=(0, 0.5), xycoords=row[0].yaxis.label, xytext=(-8, 0),
                        textcoords="offset points", ha="right", va="center", rotation=90,
                        fontweight="bold", fontsize=11)
    for ax, letter in zip(axes.flat, "abcdef"):
        _style.panel_label(ax, letter)
    fig.suptitle("Convexity of GAN objectives: Hessian blocks per player and the profile objective")
    return fig
