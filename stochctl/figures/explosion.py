"""Figure: explosion phase diagram of SGD on a quadratic loss with multiplicative gradient noise.

For f = a x^2 / 2 and per-sample curvature a + s xi, SGD with step h = eta u
is x_{k+1} = (1 - h (a + xi_k)) x_k. The theory curves are its three critical
steps (:func:`stochctl.analysis.explosion.critical_steps`): deterministic
h = 2 / a, mean-square h = 2 a / (a^2 + s^2), and almost-sure, the root of the
Lyapunov exponent E log|1 - h (a + xi)|. Underneath, the simulated probability
that a path of the real iteration exceeds a bound within a fixed number of
steps (:func:`stochctl.analysis.explosion.simulate_explosion`), which measures
the almost-sure threshold; the mean-square one is checked on the growth rate
of the averaged second moment
(:func:`stochctl.analysis.explosion.simulate_second_moment`).
"""

from __future__ import annotations

import numpy as np
from matplotlib import patheffects, ticker

from . import _style

A_FIXED, S_FIXED = 1.0, 1.0
"""Curvature of the noise sweep and noise scale of the curvature sweep."""
BOUND = 1e6
"""A path explodes when |x_k| exceeds this (or stops being finite)."""


def _theory(a_values, s_values):
    from ..analysis.explosion import critical_steps

    out = np.array([critical_steps(a, s * s) for a, s in zip(a_values, s_values)], dtype=float)
    return out[:, 0], out[:, 1], out[:, 2]


def _probabilities(a_values, s_values, hs, *, paths, steps, seed):
    from ..analysis.explosion import simulate_explosion
    from ..models import get_model

    base = get_model("quadratic", sigma=0.0)
    rows = []
    for k, (a, s) in enumerate(zip(a_values, s_values)):
        sim = simulate_explosion(base.with_params(a=float(a), s=float(s)), {"x": 1.0}, hs, multipliers=1.0,
                                 paths=paths, steps=steps, bound=BOUND, seed=seed + k)
        rows.append(sim.probability)
    return np.array(rows)                                            # (len(a_values), len(hs))


def _log_ticks(axis, values):
    """Log scale with plain-number ticks at 1-2-5 steps within the range of ``values``."""
    axis.axes.set_yscale("log") if axis.axis_name == "y" else axis.axes.set_xscale("log")
    ticks = [t for t in (0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10) if values[0] <= t <= values[-1]]
    axis.set_major_locator(ticker.FixedLocator(ticks))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def _phase_panel(ax, x, x_fine, prob, hs, theory, xlabel, title):
    _style.heatmap(ax, x, hs, prob, cmap=_style.PROB_CMAP, vmin=0.0, vmax=1.0,
                   label="simulated explosion probability")
    det, ms, asure = theory
    c = _style.COLORS
    halo = [patheffects.withStroke(linewidth=4.0, foreground="white")]
    ax.plot(x_fine, ms, color=c["ms"], lw=2.2, path_effects=halo, label=r"mean-square $h = 2a/(a^2+s^2)$")
    ax.plot(x_fine, asure, color=c["as"], lw=2.2, path_effects=halo,
            label=r"almost-sure: $E\log|1-h(a+\xi)| = 0$")
    ax.plot(x_fine, det, color=c["det"], lw=1.8, ls="--", path_effects=halo, label=r"deterministic $h = 2/a$")
    _log_ticks(ax.yaxis, hs)
    ax.set_ylim(hs[0], hs[-1])
    ax.set_xlim(x[0], x[-1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"step $h = \eta\,u_{\max}$")
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)


def figure(*, quick: bool = False, size=(14.5, 5.2)):
    """Phase diagrams over (a, h) and (s, h), and a slice with probabilities and second-moment growth."""
    from ..analysis.explosion import simulate_explosion, simulate_second_moment
    from ..models import get_model

    n_x, n_h, paths, steps = (9, 16, 40, 200) if quick else (21, 32, 80, 400)
    hs = np.geomspace(0.05, 8.0, n_h)
    fig = _style.new_figure(size)
    ax_a, ax_s, ax_c = fig.subplots(1, 3)

    a_vals = np.linspace(0.1, 4.0, n_x)
    a_fine = np.linspace(0.1, 4.0, 120)
    prob = _probabilities(a_vals, np.full(n_x, S_FIXED), hs, paths=paths, steps=steps, seed=11)
    _phase_panel(ax_a, a_vals, a_fine, prob, hs, _theory(a_fine, np.full(a_fine.size, S_FIXED)),
                 "curvature $a$", f"against curvature (noise s = {S_FIXED:g})")

    s_vals = np.linspace(0.0, 3.0, n_x)
    s_fine = np.linspace(0.0, 3.0, 120)
    prob = _probabilities(np.full(n_x, A_FIXED), s_vals, hs, paths=paths, steps=steps, seed=101)
    _phase_panel(ax_s, s_vals, s_fine, prob, hs, _theory(np.full(s_fine.size, A_FIXED), s_fine),
                 "multiplicative noise scale $s$ (per-sample curvature $a + s\\xi$)",
                 f"against noise (curvature a = {A_FIXED:g})")

    model = get_model("quadratic", a=A_FIXED, s=S_FIXED, sigma=0.0)
    h_slice = np.geomspace(0.2, 4.0, 14 if quick else 30)
    sim = simulate_explosion(model, {"x": 1.0}, h_slice, multipliers=1.0, paths=4 * paths, steps=steps,
                             bound=BOUND, seed=3)
    mom = simulate_second_moment(model, {"x": 1.0}, h_slice, multipliers=1.0, paths=2000 if quick else 10000,
                                 steps=10, seed=5)
    det, ms, asure = _theory([A_FIXED], [S_FIXED])
    c = _style.COLORS
    p = sim.probability
    ax_c.errorbar(h_slice, p, yerr=[p - sim.ci_low, sim.ci_high - p], fmt="o", ms=4, color="black", capsize=2,
                  label=f"P(explode) within {steps} steps, {100 * sim.confidence:.0f}% CI ({sim.paths} paths)")
    _log_ticks(ax_c.xaxis, h_slice)
    ax_c.set_ylim(-0.05, 1.05)
    ax_c.set_xlabel(r"step $h = \eta\,u_{\max}$")
    ax_c.set_ylabel("explosion probability of paths")
    twin = ax_c.twinx()
    rate = np.clip(mom.growth_rate, -3, 3)
    twin.plot(h_slice, mom.predicted_rate, color=c["ms"], lw=1.4, label="theory")
    twin.errorbar(h_slice, rate, yerr=2 * mom.growth_stderr, fmt="s", ms=3.5, color=c["ms"], mfc="white",
                  capsize=2)
    twin.axhline(0.0, color=c["ms"], lw=0.6, ls=":")
    twin.set_ylabel(r"growth rate of $E[x_k^2]$ per step", color=c["ms"])
    twin.tick_params(axis="y", colors=c["ms"])
    for value, colour, name in ((det[0], c["det"], "deterministic"), (ms[0], c["ms"], "mean-square"),
                                (asure[0], c["as"], "almost-sure")):
        ax_c.axvline(value, color=colour, ls="--" if name == "deterministic" else "-", lw=1.4,
                     label=f"{name} threshold h = {value:.3f}")
    ax_c.plot([], [], "s-", color=c["ms"], mfc="white", ms=3.5,
              label=r"$E[x_k^2]$ growth rate: simulated $\pm 2$ s.e. and theory (right axis)")
    ax_c.set_title(f"slice a = {A_FIXED:g}, s = {S_FIXED:g}")
    ax_c.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8)
    for ax, letter in zip((ax_a, ax_s, ax_c), "abc"):
        _style.panel_label(ax, letter)
    fig.suptitle(f"Explosion of SGD $x_{{k+1}} = (1-h(a+s\\xi_k))\\,x_k$: critical steps (curves) and simulated "
                 f"explosion probabilities (grey: |x| > {BOUND:.0e} within {steps} steps, {paths} paths per cell)")
    return fig
