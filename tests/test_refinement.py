"""Grid refinement: observed convergence orders of the HJB solver against the order its schemes declare.

The schemes are monotone, upwind in the drift and central in the diffusion,
with explicit (dt at the monotonicity bound, so dt ~ h^2) or implicit (dt
proportional to h) time stepping; each declares its order in h and dt
(``Scheme.order``, ``Scheme.time_order``), which the measured slopes must match.
The observed order is the slope of log|error| against log h, fitted over
h, h/2, h/4 (, h/8).

Known answer. For the quadratic loss with purely multiplicative gradient
noise (sigma = 0), Sigma = s^2 x^2, so V = alpha(t) x^2 solves the HJB
equation: the Hamiltonian min_u [-u a x V_x + u^2 eta s^2 x^2 V_xx / 2]
is minimised by the constant u* = a / (eta s^2) (the clipped-ratio case when
eta s^2 > a), and with G = a x^2 / 2

    V(0, x) = (a x^2 / 2) exp(-a^2 T / (eta s^2)).

X is then a geometric Brownian motion whose second moment lives in a heavy
tail, so the domain is wide (|x| <= 12: enlarging it further changes V(0, 1)
by less than 1e-6).

Extrapolated answer. For the local model (no closed form) the order is read
from successive differences V_h - V_{h/2}, and the Richardson-extrapolated
value must agree with an independent fine implicit solve.
"""

from __future__ import annotations

import numpy as np
import pytest

from stochctl.models import get_model
from stochctl.solvers import Grid, solve
from stochctl.solvers.schemes import EXPLICIT, IMPLICIT
from stochctl.symbolic.problem import ControlProblem

A, ETA, S, T = 0.5, 0.1, np.sqrt(10.0), 1.0  # eta s^2 = 1 > a: interior optimum u* = 0.5
U_STAR = A / (ETA * S**2)


def observed_order(h, err) -> float:
    """Slope of log|err| against log h (least squares)."""
    return float(np.polyfit(np.log(h), np.log(np.abs(err)), 1)[0])


def gbm_problem():
    model = get_model("quadratic", a=A, s=S, sigma=0.0).with_options(domain={"x": (-12.0, 12.0)})
    return ControlProblem.from_model(model, horizon=T)


def gbm_value(x):
    return A * x**2 / 2 * np.exp(-A**2 * T / (ETA * S**2))


def test_closed_form_order_implicit():
    """dt = h / 10: the error is of order min(order, time_order) in h."""
    declared = min(IMPLICIT.order, IMPLICIT.time_order)
    prob = gbm_problem()
    hs = np.array([0.1, 0.05, 0.025, 0.0125])
    v_err, u_err = [], []
    for h in hs:
        sol = solve(prob, Grid.for_problem(prob, int(round(24 / h)) + 1), scheme="implicit", dt=h / 10,
                    progress=False)
        v_err.append(sol.value_at([1.0]) - gbm_value(1.0))
        u_err.append(sol.control_at("u_x", [1.0]) - U_STAR)
    assert observed_order(hs, v_err) == pytest.approx(declared, abs=0.1), v_err
    assert observed_order(hs, u_err) == pytest.approx(declared, abs=0.15), u_err
    assert abs(v_err[-1]) < 5e-3 * gbm_value(1.0) and abs(u_err[-1]) < 5e-3


def test_closed_form_order_explicit_at_the_cfl_step():
    """dt at the monotonicity bound, dt ~ h^2: the error is of order ``order`` in h."""
    prob = gbm_problem()
    hs = np.array([0.2, 0.1, 0.05])
    errs = []
    for h in hs:
        grid = Grid.for_problem(prob, int(round(24 / h)) + 1)
        sol = solve(prob, grid, scheme="explicit", progress=False)
        assert sol.diagnostics["cfl_number"] <= 0.9 + 1e-12
        assert EXPLICIT.cfl(prob, grid, sol.diagnostics["dt"]) == pytest.approx(sol.diagnostics["cfl_number"])
        errs.append(sol.value_at([1.0]) - gbm_value(1.0))
    assert observed_order(hs, errs) == pytest.approx(EXPLICIT.order, abs=0.15), errs


def test_local_model_order_from_successive_differences_and_extrapolation():
    """Explicit at the CFL step on h = 0.1 .. 0.0125 (dt ~ h^2): V_h - V_{h/2} ~ h^p with p the declared order."""
    prob = ControlProblem.from_model(get_model("local-quadratic"))
    ys = np.array([0.5, 1.5, 3.0])
    hs = np.array([0.1, 0.05, 0.025, 0.0125])
    values = np.array([solve(prob, Grid.for_problem(prob, int(round(12 / h)) + 1), scheme="explicit",
                             progress=False).value_at(ys[:, None]) for h in hs])
    diffs = values[:-1] - values[1:]
    assert np.all(diffs > 0)  # numerical diffusion only adds cost here: monotone convergence from above
    for j in range(ys.size):
        assert observed_order(hs[:-1], diffs[:, j]) == pytest.approx(EXPLICIT.order, abs=0.2), diffs[:, j]
    # Richardson at the declared order p: V ~ V_{h/8} - (V_{h/4} - V_{h/8}) / (2^p - 1); against a fine implicit solve
    extrapolated = values[-1] - diffs[-1] / (2**EXPLICIT.order - 1)
    reference = solve(prob, Grid.for_problem(prob, 4801), scheme="implicit", dt=1e-3, progress=False)
    np.testing.assert_array_less(np.abs(extrapolated - reference.value_at(ys[:, None])), np.abs(diffs[-1]))
