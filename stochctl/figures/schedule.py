"""Figure: Li-Tai-E's learning-rate schedule against the numerical and PDE optima.

Quadratic loss f = a x^2 / 2 with additive gradient noise sigma (s = 0),
u in [0, 1], X_0 = x0. Three answers to "which learning rate minimises the
loss at time T":

* the closed form of the open-loop (state-blind) problem for m = E[X^2]:
  u = 1 until t*, then 1 / (1 + a (t - t*))
  (:func:`stochctl.solvers.moment.moment_closed_form`);
* the numerical open-loop optimum over piecewise-constant schedules
  (:func:`stochctl.solvers.moment.optimize_schedule`);
* the feedback policy u*(t, x) of the HJB equation (:func:`stochctl.solvers.solve`),
  read along paths simulated under it
  (:func:`stochctl.solvers.montecarlo.simulate_policy`).

The feedback policy is the same clipped ratio with the state in place of the
moment, u = min(1, a x^2 / (eta sigma^2)) to leading order, so its path
average follows the open-loop schedule while each path's multiplier
fluctuates with |X_t|.
"""

from __future__ import annotations

import numpy as np

from . import _style

A, SIGMA, ETA, X0, HORIZON = 1.0, 1.0, 0.1, 1.0, 4.0
"""Curvature, noise scale, base learning rate, start point and horizon of the figure."""


def figure(*, quick: bool = False, size=(14.0, 6.0)):
    """u(t) three ways, E[X_t^2] under each, and the feedback policy map with a simulated path."""
    from ..models import get_model
    from ..solvers import Grid, solve
    from ..solvers.moment import moment_closed_form, optimize_schedule
    from ..solvers.montecarlo import GridPolicy, simulate_policy
    from ..symbolic.problem import ControlProblem

    model = get_model("quadratic", a=A, s=0.0, sigma=SIGMA).with_options(eta=ETA)
    problem = ControlProblem.from_model(model, horizon=HORIZON)
    points, paths, steps, pieces = (101, 400, 200, 32) if quick else (401, 4000, 400, 128)
    sol = solve(problem, Grid.for_problem(problem, points), store_every=5, progress=False)
    closed = moment_closed_form(A, SIGMA, ETA, X0**2, HORIZON)
    numeric = optimize_schedule(A, SIGMA, ETA, X0**2, HORIZON, pieces=pieces)

    mc = simulate_policy(problem, sol, [X0], paths=paths, steps=steps, seed=7, keep_paths=paths)
    X = mc.sample[:, :, 0]                                   # (paths, steps + 1)
    t = np.linspace(0.0, HORIZON, steps + 1)
    inside = np.clip(X, sol.grid.lower[0], sol.grid.upper[0])[:, :, None]   # the policy is clamped outside
    u_fb = np.stack([sol.control_at("u_x", inside[:, k], t[k]) for k in range(steps)], axis=1)
    times_ol = np.linspace(0.0, HORIZON, steps, endpoint=False)
    ol = simulate_policy(problem, GridPolicy.open_loop(problem, times_ol, closed.control(times_ol)), [X0],
                         paths=paths, steps=steps, seed=7)

    fig = _style.new_figure(size)
    ax_u, ax_m, ax_p = fig.subplots(1, 3)
    tt = np.linspace(0.0, HORIZON, 801)
    c = _style.COLORS
    lo, hi = np.percentile(u_fb, [10, 90], axis=0)
    ax_u.fill_between(t[:-1], lo, hi, step="post", color=c["pde"], alpha=0.15,
                      label="PDE feedback: 10-90% of paths")
    ax_u.step(t[:-1], u_fb[0], where="post", color=c["pde"], lw=0.8, alpha=0.9,
              label=r"PDE feedback $u^*(t, X_t)$ on one path")
    ax_u.step(t[:-1], u_fb.mean(axis=0), where="post", color=c["pde"], lw=1.8, ls="--",
              label=r"PDE feedback: path mean $E[u^*(t,X_t)]$")
    ax_u.step(numeric.edges, np.append(numeric.u, numeric.u[-1]), where="post", color=c["numeric"], lw=2.2,
              label=f"numerical open-loop optimum ({numeric.u.size} pieces)")
    ax_u.plot(tt, closed.control(tt), color=c["closed"], lw=1.4, label="closed form (Li-Tai-E)")
    if 0 < closed.t_star < HORIZON:
        ax_u.axvline(closed.t_star, color="0.5", ls=":", lw=1)
        ax_u.text(closed.t_star, 1.04, f" $t^*$ = {closed.t_star:.2f}", color="0.3", fontsize=9, va="bottom")
    ax_u.set_ylim(-0.02, 1.12)
    ax_u.set_xlabel("time $t$ = k $\\eta$ (iterations x base learning rate)")
    ax_u.set_ylabel("learning-rate multiplier $u$")
    ax_u.set_title("schedules")
    ax_u.grid(True)
    ax_u.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=7.5)

    m_fb = (X**2).mean(axis=0)
    se_fb = (X**2).std(axis=0, ddof=1) / np.sqrt(X.shape[0])
    scale = 2.0 / A                                          # E[X_T^2] = cost / (a / 2)
    v_pde = scale * sol.value_at([X0], 0.0)
    ax_m.plot(tt, closed.second_moment(tt), color=c["closed"], lw=1.4,
              label=f"open loop, closed form: $m(T)$ = {closed.final_moment:.4f}")
    ax_m.plot(numeric.edges, numeric.moments, "o", ms=3, color=c["numeric"],
              label=f"numerical open loop: $m(T)$ = {numeric.final_moment:.4f}")
    ax_m.errorbar([HORIZON], [scale * ol.mean], yerr=[2 * scale * ol.stderr], fmt="s", ms=5, color="0.35",
                  capsize=3, label=f"open loop simulated: {scale * ol.mean:.4f} $\\pm$ {2 * scale * ol.stderr:.4f}")
    ax_m.fill_between(t, m_fb - 2 * se_fb, m_fb + 2 * se_fb, color=c["pde"], alpha=0.25)
    ax_m.plot(t, m_fb, color=c["pde"], lw=1.2,
              label=f"PDE feedback simulated: {scale * mc.mean:.4f} $\\pm$ {2 * scale * mc.stderr:.4f}")
    ax_m.plot([HORIZON], [v_pde], "D", ms=7, color=c["pde"], mec="white", zorder=5,
              label=f"PDE feedback, HJB value at $(0, X_0)$: {v_pde:.4f}")
    ax_m.set_yscale("log")
    ax_m.set_xlabel("time $t$")
    ax_m.set_ylabel(r"second moment $E[X_t^2]$")
    ax_m.set_title("second moment (values: $E[X_T^2]$, $\\pm$ 2 s.e.)")
    ax_m.grid(True, which="both", alpha=0.25)
    ax_m.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, fontsize=7.5)

    (x,) = sol.grid.axes
    U = sol.controls["u_x"]
    _style.heatmap(ax_p, sol.policy_times, x, U, cmap=_style.POLICY_CMAP, vmin=0, vmax=1,
                   label=r"feedback multiplier $u^*(t, x)$")
    ax_p.plot(t, X[0], color="#08306b", lw=0.9, label="the simulated path of (a)")
    ax_p.plot(tt, np.sqrt(closed.second_moment(tt)), color="0.45", ls="--", lw=1.1,
              label=r"$\pm\sqrt{m(t)}$ (open loop)")
    ax_p.plot(tt, -np.sqrt(closed.second_moment(tt)), color="0.45", ls="--", lw=1.1)
    ax_p.set_ylim(-1.6, 1.6)
    ax_p.set_xlabel("time $t$")
    ax_p.set_ylabel("parameter $x$")
    ax_p.set_title("HJB feedback policy")
    ax_p.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, fontsize=7.5)
    for ax, letter in zip((ax_u, ax_m, ax_p), "abc"):
        _style.panel_label(ax, letter)
    fig.suptitle(f"Learning-rate schedule for $f = a x^2/2$ with additive noise: a = {A:g}, $\\sigma$ = {SIGMA:g}, "
                 f"$\\eta$ = {ETA:g}, $X_0$ = {X0:g}, T = {HORIZON:g}, $u\\in[0,1]$")
    return fig
