"""Li-Tai-E open-loop control of E[X^2]: closed form against independent checks.

Oracles: the moment ODE integrated by scipy under the closed-form control;
pointwise minimisation of dm/dt over a fine u grid (the greedy rule the
closed form is derived from); a piecewise-constant optimiser with exact
propagation; random schedules, which can never do better; finite differences
of the propagation's adjoint gradient; and, for the feedback problem, the PDE
value and a Monte Carlo run on common random numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import trapezoid

from stochctl.errors import InputError
from stochctl.models import get_model
from stochctl.solvers import Grid, solve
from stochctl.solvers.moment import (
    MomentControl,
    integrate_moment,
    moment_closed_form,
    moment_parameters,
    optimize_schedule,
    propagate_moment,
)
from stochctl.solvers.montecarlo import GridPolicy, simulate_policy
from stochctl.symbolic.problem import ControlProblem

# (a, sigma, eta, m0, T): a switch after t* > 0, the ratio phase from the start, a switch after T
CASES = [(1.0, 1.0, 0.1, 0.5, 2.0), (2.0, 0.7, 0.2, 0.03, 1.5), (0.5, 1.0, 0.1, 3.0, 1.0)]


def rhs(m, u, a, sigma, eta):
    return -2 * a * u * m + eta * sigma**2 * u**2


@pytest.mark.parametrize("a, sigma, eta, m0, T", CASES)
def test_closed_form_solves_the_moment_ode(a, sigma, eta, m0, T):
    ctl = moment_closed_form(a, sigma, eta, m0, T)
    for t_end in (0.3 * T, 0.7 * T, T):
        m_ode = integrate_moment(ctl.control, a=a, sigma=sigma, eta=eta, m0=m0, horizon=t_end,
                                 breakpoints=[ctl.t_switch])
        assert m_ode == pytest.approx(ctl.second_moment(t_end), rel=1e-9)
    assert ctl.final_moment == pytest.approx(ctl.second_moment(T))


@pytest.mark.parametrize("a, sigma, eta, m0, T", CASES)
def test_closed_form_is_the_pointwise_greedy_rule(a, sigma, eta, m0, T):
    """u*(t) minimises dm/dt at m*(t) over [0, 1], and t* is where m* crosses eta sigma^2 / a."""
    ctl = moment_closed_form(a, sigma, eta, m0, T)
    grid = np.linspace(0.0, 1.0, 20001)
    for t in np.linspace(0.0, T, 13):
        m = ctl.second_moment(t)
        best = grid[np.argmin(rhs(m, grid, a, sigma, eta))]
        assert ctl.control(t) == pytest.approx(best, abs=1e-4)
    threshold = eta * sigma**2 / a
    if m0 > threshold:
        assert ctl.t_star == pytest.approx(np.log(2 * a * m0 / (eta * sigma**2) - 1) / (2 * a))
        assert ctl.second_moment(ctl.t_star) == pytest.approx(threshold, rel=1e-12)
        assert ctl.control(ctl.t_star - 1e-9) == 1.0 and ctl.control(ctl.t_star) == pytest.approx(1.0)
        # design formula after t*: u = 1 / (1 + a (t - t*))
        t = ctl.t_star + np.linspace(0, 1, 5)
        np.testing.assert_allclose(ctl.control(t), 1 / (1 + a * (t - ctl.t_star)))
    else:
        t = np.linspace(0, T, 5)
        np.testing.assert_allclose(ctl.control(t), 1 / (eta * sigma**2 / (a * m0) + a * t))


@pytest.mark.parametrize("a, sigma, eta, m0, T", CASES)
def test_optimiser_over_piecewise_constant_controls_agrees(a, sigma, eta, m0, T):
    ctl = moment_closed_form(a, sigma, eta, m0, T)
    gaps = []
    for pieces in (16, 64):
        sched = optimize_schedule(a, sigma, eta, m0, T, pieces=pieces)
        gap = sched.final_moment - ctl.final_moment
        assert gap > -1e-12 * ctl.final_moment  # the closed form is optimal over all controls
        gaps.append(gap)
        mid = 0.5 * (sched.edges[1:] + sched.edges[:-1])
        assert np.max(np.abs(sched.u - ctl.control(mid))) < 0.2 / pieces
    assert gaps[1] < 5e-5 * ctl.final_moment
    # the gap closes at second order in 1 / pieces (a factor 16 from 16 to 64 pieces)
    assert gaps[1] <= gaps[0] / 10 + 1e-12 * ctl.final_moment


@settings(max_examples=30, deadline=None)
@given(u=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=12), case=st.sampled_from(CASES))
def test_no_schedule_beats_the_closed_form(u, case):
    a, sigma, eta, m0, T = case
    m = propagate_moment(np.linspace(0, T, len(u) + 1), np.array(u), a=a, sigma=sigma, eta=eta, m0=m0)
    assert m[-1] >= moment_closed_form(a, sigma, eta, m0, T).final_moment * (1 - 1e-12)


@pytest.mark.parametrize("s", [0.0, 0.8])
def test_exact_propagation_and_its_gradient(s, rng):
    a, sigma, eta, m0 = 1.3, 0.9, 0.2, 0.7
    edges = np.sort(np.concatenate([[0.0, 1.5], rng.uniform(0, 1.5, 6)]))
    u = rng.uniform(0, 1, 7)
    u[2] = 0.0  # lambda = 0 on one piece: the series branch
    m, grad = propagate_moment(edges, u, a=a, sigma=sigma, eta=eta, m0=m0, s=s, gradient=True)

    def piecewise(t):
        return u[min(np.searchsorted(edges, t, side="right") - 1, u.size - 1)]

    ode = integrate_moment(piecewise, a=a, sigma=sigma, eta=eta, m0=m0, horizon=1.5, s=s, breakpoints=edges)
    assert m[-1] == pytest.approx(ode, rel=1e-9)
    eps = 1e-6
    for j in range(u.size):
        up, dn = u.copy(), u.copy()
        up[j] += eps
        dn[j] -= eps
        fd = (propagate_moment(edges, up, a=a, sigma=sigma, eta=eta, m0=m0, s=s)[-1]
              - propagate_moment(edges, dn, a=a, sigma=sigma, eta=eta, m0=m0, s=s)[-1]) / (2 * eps)
        assert grad[j] == pytest.approx(fd, rel=1e-6, abs=1e-10)


def test_edge_cases_and_bad_input():
    flat = moment_closed_form(-1.0, 1.0, 0.1, 0.4, 1.0)
    assert flat.kind == "zero" and flat.control(0.5) == 0.0 and flat.final_moment == 0.4
    noiseless = moment_closed_form(2.0, 0.0, 0.1, 0.4, 1.0)
    assert noiseless.kind == "full" and noiseless.final_moment == pytest.approx(0.4 * np.exp(-4.0))
    with pytest.raises(InputError, match="m0 must be a positive number; got 0"):
        moment_closed_form(1.0, 1.0, 0.1, 0.0, 1.0)
    with pytest.raises(InputError, match="pieces must be an integer >= 1"):
        optimize_schedule(1.0, 1.0, 0.1, 0.5, 1.0, pieces=0)
    with pytest.raises(InputError, match="'quadratic' model"):
        moment_parameters(ControlProblem.from_model(get_model("local-quadratic")))
    with pytest.raises(InputError, match="needs s = 0"):
        MomentControl.from_problem(ControlProblem.from_model(get_model("quadratic")), 0.5)
    p = moment_parameters(ControlProblem.from_model(get_model("quadratic", s=0.0), batch_size=4))
    assert p == {"a": 1.0, "s": 0.0, "sigma": 1.0, "eta": 0.1 / 4}


# ------------------------------------------------------- feedback against open loop
# Why the comparison is sound: an open-loop schedule u(t) is a feedback policy
# that ignores the state, so from every start point x the optimal feedback
# value V(0, x) is at most the schedule's cost E[X_T^2 | X_0 = x]. Averaging
# over X_0 ~ N(0, m0), and since E[X_T^2 | X_0 = x] solves the linear moment
# ODE from x^2, E[V(0, X_0)] <= m(T) of the schedule, in particular of the
# optimal one. The PDE side is checked up to its discretisation error; the
# Monte Carlo side runs both policies on the same paths from the same X_0.
FB = dict(a=1.0, sigma=1.0, eta=0.1, T=2.0, m0=0.5)  # m0 > eta sigma^2 / a: the switching regime


@pytest.fixture(scope="module")
def feedback():
    x = sp.Symbol("x", real=True)
    model = get_model("quadratic", a=FB["a"], s=0.0, sigma=FB["sigma"]).with_options(
        eta=FB["eta"], domain={"x": (-4.0, 4.0)})
    prob = ControlProblem.from_model(model, horizon=FB["T"], terminal_cost=x**2)
    sols = [solve(prob, Grid.for_problem(prob, n), scheme="implicit", dt=dt, progress=False)
            for n, dt in ((401, 4e-3), (801, 2e-3))]
    return prob, sols


def _average_over_start(sol, m0):
    """E[V(0, X_0)], X_0 ~ N(0, m0), by the trapezoid rule on the nodes (|x| > 4 has mass < 2e-8)."""
    x = sol.grid.axes[0]
    density = np.exp(-x**2 / (2 * m0)) / np.sqrt(2 * np.pi * m0)
    return float(trapezoid(sol.values[0] * density, x))


def test_feedback_value_is_no_worse_than_the_open_loop_optimum(feedback):
    prob, (coarse, fine) = feedback
    open_loop = MomentControl.from_problem(prob, FB["m0"])
    assert open_loop.kind == "switch"
    v_fine, v_coarse = _average_over_start(fine, FB["m0"]), _average_over_start(coarse, FB["m0"])
    err = 2 * abs(v_coarse - v_fine) + 1e-6  # first-order Richardson estimate, plus the truncated tail
    assert v_fine <= open_loop.final_moment + err
    # and the state-dependent policy is strictly better, beyond the discretisation error
    assert v_fine + err < open_loop.final_moment


def test_feedback_beats_open_loop_on_common_paths(feedback, rng):
    prob, (_, fine) = feedback
    open_loop = MomentControl.from_problem(prob, FB["m0"])
    paths, steps = 20_000, 500
    dt = FB["T"] / steps
    x0 = rng.normal(0.0, np.sqrt(FB["m0"]), size=(paths, 1))
    t = np.arange(steps) * dt
    u = open_loop.control(t + dt / 2)
    scheduled = simulate_policy(prob, GridPolicy.open_loop(prob, t, u), x0, paths=paths, steps=steps, seed=6,
                                antithetic=True)
    policy = simulate_policy(prob, fine, x0, paths=paths, steps=steps, seed=6, antithetic=True)
    diff, se = policy.difference(scheduled)
    assert diff <= 3 * se and diff < 0, (diff, se)
    # the simulated schedule obeys the moment dynamics: the exact Euler recursion of E[X^2]
    # from the sample's E[X_0^2], which from m0 itself is O(dt) close to the closed-form m(T)
    m = np.array([np.mean(x0**2), FB["m0"]])
    for un in u:
        m = (1 - FB["a"] * un * dt) ** 2 * m + FB["eta"] * FB["sigma"] ** 2 * un * un * dt
    assert abs(scheduled.mean - m[0]) < 3.5 * scheduled.stderr
    assert m[1] == pytest.approx(open_loop.final_moment, rel=2e-3)
