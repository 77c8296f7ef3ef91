"""Figure: upper and lower values of the minimax problem for the canonical models.

Upper value U = min_theta max_omega g, lower value L = max_omega min_theta g
and their gap U - L >= 0 on each model's box, from
:func:`stochctl.analysis.analyze_wellposedness`. A saddle point exists iff the
gap is 0. Besides the canonical games the figure includes the ill-posed
example g = (theta - omega)^2 on [-1, 1]^2, where U = 1 (the maximiser answers
at the far corner) and L = 0 (the minimiser copies omega), so no saddle point
exists.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from . import _style

MODELS = (("quadratic-game", {}, "quadratic game (a = b = c = 1)"),
          ("dirac-gan", {"c": 1.0}, "Dirac GAN (c = 1)"),
          ("gaussian-gan", {}, "Gaussian GAN ($\\mu$ = 1, s = 1)"),
          ("ill-posed", {}, "$g=(\\theta-\\omega)^2$ on $[-1,1]^2$"))
"""(model name, parameters, title) of the panels."""


def ill_posed_model():
    """The game g = (theta - omega)^2 on [-1, 1]^2: upper value 1, lower value 0, no saddle point."""
    from ..models import Model, Player

    th, om = sp.symbols("theta omega", real=True)
    return Model(
        name="ill-posed",
        description="g = (theta - omega)^2 on [-1, 1]^2: min-max differs from max-min.",
        loss=(th - om) ** 2,
        players=(Player("theta", "min", (th,)), Player("omega", "max", (om,))),
        domain={"theta": (-1.0, 1.0), "omega": (-1.0, 1.0)},
    )


def _model(name, params):
    from ._models import cached_model

    return ill_posed_model() if name == "ill-posed" else cached_model(name, **params)


def _map_panel(ax, model, report, points, title):
    (t0, t1), (w0, w1) = report.box.values()
    th, om = np.linspace(t0, t1, points), np.linspace(w0, w1, points)
    g = model.lambdify(model.objective)(*np.meshgrid(th, om, indexing="ij"))
    _style.heatmap(ax, th, om, g, cmap=_style.VALUE_CMAP, label=r"objective $g(\theta,\omega)$")
    handles = [
        ax.plot(th, om[np.argmax(g, axis=1)], ".", ms=3, color=_style.COLORS["upper"], clip_on=False,
                label=r"best response $\arg\max_\omega g(\theta,\cdot)$ of the max player")[0],
        ax.plot(th[np.argmin(g, axis=0)], om, ".", ms=3, color="#5dade2", clip_on=False,
                label=r"best response $\arg\min_\theta g(\cdot,\omega)$ of the min player")[0],
        ax.plot(*report.upper_point, "v", ms=10, mec="white", color=_style.COLORS["upper"], clip_on=False,
                label=r"min-max point (attains $U$)")[0],
        ax.plot(*report.lower_point, "^", ms=10, mec="white", color=_style.COLORS["lower"], clip_on=False,
                label=r"max-min point (attains $L$)")[0],
    ]
    if report.saddle is not None:
        ax.plot(*report.saddle, "*", ms=15, mec="black", color="gold", clip_on=False, zorder=5)
    ax.set_xlim(t0, t1)
    ax.set_ylim(w0, w1)
    tol = report.tolerance
    ax.set_title(f"{title}\nU = {_style.clean(report.upper_value, tol):.3g}, "
                 f"L = {_style.clean(report.lower_value, tol):.3g}")
    ax.set_xlabel(r"$\theta$ (min player)")
    ax.set_ylabel(r"$\omega$ (max player)")
    return handles


def _gap_panel(ax, reports, titles):
    x = np.arange(len(reports))
    for i, r in enumerate(reports):
        tol = r.tolerance
        upper, lower = _style.clean(r.upper_value, tol), _style.clean(r.lower_value, tol)
        ax.plot([i, i], [lower, upper], color="0.4", lw=3, solid_capstyle="butt", zorder=1)
        ax.plot(i, upper, "v", ms=10, color=_style.COLORS["upper"], zorder=2,
                label=r"upper value $U=\min_\theta\max_\omega g$" if i == 0 else None)
        ax.plot(i, lower, "^", ms=10, color=_style.COLORS["lower"], zorder=2,
                label=r"lower value $L=\max_\omega\min_\theta g$" if i == 0 else None)
        text = (f"gap U - L = {r.gap:.3g}\n(no saddle point)" if not r.saddle_point
                else f"gap U - L = 0 (within {tol:.0e})\n(saddle point)")
        ax.annotate(text, xy=(i, upper), xytext=(14, 0), textcoords="offset points", va="center", fontsize=9)
    ax.set_xticks(x, [t.replace(" on $[-1,1]^2$", "") for t in titles])
    ax.set_xlim(-0.4, len(reports) - 0.2)
    lo = min(r.lower_value for r in reports)
    hi = max(r.upper_value for r in reports)
    ax.set_ylim(lo - 0.15 * (hi - lo), hi + 0.15 * (hi - lo))
    ax.set_ylabel("value of the game")
    ax.set_title("upper and lower values on each model's box (gap > 0: the minimax problem is ill-posed)")
    ax.grid(True, axis="y")
    ax.legend(loc="upper left")


def figure(*, quick: bool = False, size=(14.0, 9.5)):
    """Heat maps of g with the min-max and max-min points, and the gap U - L per model."""
    from matplotlib.lines import Line2D

    from ..analysis import analyze_wellposedness

    points = 31 if quick else 101
    fig = _style.new_figure(size)
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.45, 1])
    axes = top.subplots(1, len(MODELS))
    reports, titles = [], []
    for k, (ax, (name, params, title)) in enumerate(zip(axes, MODELS)):
        model = _model(name, params)
        report = analyze_wellposedness(model, points=points)
        handles = _map_panel(ax, model, report, points, title)
        _style.panel_label(ax, "abcd"[k])
        reports.append(report)
        titles.append(title)
    handles.append(Line2D([], [], ls="", marker="*", ms=15, mec="black", color="gold",
                          label="saddle point (U = L)"))
    top.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=9)
    ax = bottom.subplots()
    _gap_panel(ax, reports, titles)
    _style.panel_label(ax, "e")
    fig.suptitle("Well-posedness of the minimax problem: upper value, lower value and their gap")
    return fig
