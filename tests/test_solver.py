"""Finite-difference HJB/Isaacs solver: kernels against numpy, closed forms, refinement, refusals."""

import dataclasses
import math
import re

import numpy as np
import pytest
import scipy.linalg as sl
import sympy as sp
from scipy.integrate import quad

from stochctl.errors import InputError, NumericalError
from stochctl.models import Model, Player, get_model
from stochctl.solvers import Grid, boundary_sensitivity, solve
from stochctl.solvers.schemes import EXPLICIT, IMPLICIT
from stochctl.solvers.coefficients import evaluate_coefficients
from stochctl.solvers.explicit import (explicit_time_grid, march_explicit, max_time_step, reference_step, step,
                                       workspace)
from stochctl.symbolic import BatchControl, ControlProblem


def local(**kw):
    return ControlProblem.from_model(get_model("local-quadratic"), **kw)


def bowl_2d() -> Model:
    """One player owning two coordinates: g = (x^2 + 2 y^2) / 2 with independent additive noise."""
    x, y, z1, z2 = sp.symbols("x y zeta1 zeta2", real=True)
    return Model(name="bowl", description="two-coordinate quadratic", loss=(x**2 + 2 * y**2) / 2 - z1 * x - z2 * y / 2,
                 players=(Player("p", "min", (x, y)),), noises=(z1, z2), eta=0.2,
                 domain={"x": (-2.0, 2.0), "y": (-2.0, 2.0)}, horizon=1.0)


def closed_form_u1(y, T):
    """E[Y_T^2] for dY = -Y dtau + dW (constant control u = 1)."""
    return y**2 * math.exp(-2 * T) + (1 - math.exp(-2 * T)) / 2


# ------------------------------------------------------------------ kernels vs numpy
CASES = [
    ("dirac-gan", dict(), (("dirichlet", "reflecting"), ("linear", "reflecting")), (41, 37)),
    ("quadratic-game", dict(batch=BatchControl(1, 16, 0.01)), "reflecting", (31, 33)),
    ("quadratic-game", dict(u_max=2.0), "linear", (30, 35)),
    ("quadratic", dict(running_cost=sp.Symbol("x", real=True) ** 2), ("reflecting", "dirichlet"), (51,)),
    ("quadratic", dict(batch=BatchControl(1, 8, 0.05), u_max=2.0), "linear", (51,)),
    ("bowl", dict(), (("linear", "reflecting"), "dirichlet"), (25, 27)),
]


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("name, options, boundary, points", CASES)
def test_explicit_kernel_matches_numpy_reference(name, options, boundary, points, parallel, rng):
    model = bowl_2d() if name == "bowl" else get_model(name)
    problem = ControlProblem.from_model(model, **options)
    lo = [model.domain[s][0] for s in model.state_names]
    hi = [model.domain[s][1] for s in model.state_names]
    grid = Grid(model.state_names, lo, hi, points, boundary)
    coeffs = evaluate_coefficients(problem, grid)
    V = coeffs.terminal + 0.1 * rng.standard_normal(grid.shape)
    dt = 0.9 * max_time_step(coeffs)
    out = np.empty_like(V)
    U, M, C, bad = workspace(coeffs)
    step(V, out, coeffs, dt, U, M, C, bad, True, parallel=parallel)
    ref, U_ref, M_ref, C_ref = reference_step(V, coeffs, dt)
    assert np.max(np.abs(out - ref)) <= 1e-12 * max(1.0, np.max(np.abs(ref)))
    np.testing.assert_allclose(U, U_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(M, M_ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(C, C_ref)
    assert 0 < C.mean() < 1  # both the clipped-ratio and the bang-bang case occur
    assert not bad.any()
    # steps that store no policy take the vectorised path in 2D
    fast = np.empty_like(V)
    step(V, fast, coeffs, dt, U, M, C, bad, False, parallel=parallel)
    assert np.max(np.abs(fast - ref)) <= 1e-12 * max(1.0, np.max(np.abs(ref)))


def test_three_dimensional_kernel_matches_reference(rng):
    x, y, w, z1, z2, z3 = sp.symbols("x y w zeta1 zeta2 zeta3", real=True)
    model = Model(name="tri", description="3D", loss=(x**2 + y**2) / 2 + x * w - w**2 / 2 - (z1 * x + z2 * y + z3 * w) / 2,
                  players=(Player("a", "min", (x, y)), Player("b", "max", (w,))), noises=(z1, z2, z3), eta=0.1,
                  domain={"x": (-1, 1), "y": (-1, 1), "w": (-1, 1)})
    problem = ControlProblem.from_model(model, noise="independent")
    grid = Grid(model.state_names, (-1,) * 3, (1,) * 3, (9, 10, 11), (("linear", "reflecting"), "dirichlet", "linear"))
    coeffs = evaluate_coefficients(problem, grid)
    V = coeffs.terminal + 0.1 * rng.standard_normal(grid.shape)
    dt = 0.9 * max_time_step(coeffs)
    for parallel in (False, True):
        out = np.empty_like(V)
        U, M, C, bad = workspace(coeffs)
        step(V, out, coeffs, dt, U, M, C, bad, True, parallel=parallel)
        ref, U_ref, _, C_ref = reference_step(V, coeffs, dt)
        assert np.max(np.abs(out - ref)) <= 1e-12 * np.max(np.abs(ref))
        np.testing.assert_allclose(U, U_ref, atol=1e-12)
        np.testing.assert_array_equal(C, C_ref)


def test_discrete_optimum_beats_every_control_on_a_fine_u_grid(rng):
    """At each node the kernel's u minimises (min) / maximises (max) the discrete Hamiltonian."""
    from stochctl.solvers.explicit import reference_differences

    problem = ControlProblem.from_model(get_model("dirac-gan", c=0.4), u_max=1.5)
    grid = Grid(("theta", "omega"), (-2, -2), (2, 2), (21, 23))
    coeffs = evaluate_coefficients(problem, grid)
    V = coeffs.terminal + 0.05 * rng.standard_normal(grid.shape)
    out = np.empty_like(V)
    U, M, C, bad = workspace(coeffs)
    step(V, out, coeffs, 1e-4, U, M, C, bad, True)
    A, Bt = reference_differences(V, coeffs)
    us = np.linspace(0.0, 1.5, 301)
    for p in range(2):
        s = coeffs.sign[p]
        h = lambda u: -s * u * A[p] + 0.5 * u * u * Bt[p]  # noqa: E731
        best = h(U[p])
        trial = np.array([h(u) for u in us])
        if s > 0:
            assert np.all(best <= trial.min(axis=0) + 1e-12)
        else:
            assert np.all(best >= trial.max(axis=0) - 1e-12)


# ------------------------------------------------------------------ time step
def test_cfl_step_is_monotone_and_lands_on_T():
    problem = ControlProblem.from_model(get_model("quadratic"), u_max=1.5)
    grid = Grid(("x",), (-3,), (3,), (61,))
    coeffs = evaluate_coefficients(problem, grid)
    h = grid.spacing[0]
    x = grid.axes[0]
    s2 = 0.5**2 * x**2 + 1.0
    rate = np.max(1.5 * np.abs(x) / h + 1.5**2 * 0.1 * s2 / h**2)
    assert coeffs.cfl_rate() == pytest.approx(rate, rel=1e-12)
    times, cfl = explicit_time_grid(0.7, coeffs)
    dt = times[1] - times[0]
    assert times[-1] == 0.7 and np.allclose(np.diff(times), dt)
    assert cfl <= 0.9 + 1e-12 and (0.7 / (len(times) - 2)) * rate > 0.9
    sol = solve(problem, grid, horizon=0.7)
    assert sol.diagnostics["cfl_number"] == pytest.approx(cfl)
    assert sol.diagnostics["max_monotone_dt"] == pytest.approx(1 / rate)


def test_cfl_violating_step_is_refused_with_the_bound():
    problem = ControlProblem.from_model(get_model("quadratic"))
    grid = Grid(("x",), (-3,), (3,), (61,))
    bound = max_time_step(evaluate_coefficients(problem, grid))
    with pytest.raises(InputError) as err:
        solve(problem, grid, dt=1.01 * bound)
    msg = str(err.value)
    assert f"{bound:.6g}" in msg and "largest allowed step" in msg and "\n" not in msg
    sol = solve(problem, grid, dt=0.5 * bound, horizon=0.1)
    assert sol.diagnostics["dt"] <= 0.5 * bound and sol.times[-1] == pytest.approx(0.1)


# ------------------------------------------------------------------ accuracy
def test_constant_control_closed_form_and_first_order_convergence():
    """u in [1, 1.0001] is u = 1 up to 1e-4: V = y^2 e^{-2T} + (1 - e^{-2T}) / 2."""
    problem = local(u_min=1.0, u_max=1.0001)
    ys = np.array([-4.0, -2.0, -0.5, 0.0, 1.0, 3.0])
    exact = np.array([closed_form_u1(y, 2.0) for y in ys])
    errors = {}
    for scheme, levels in (("implicit", [(201, 8e-3), (401, 4e-3), (801, 2e-3)]),
                           ("explicit", [(101, None), (201, None), (401, None)])):
        errs = []
        for n, dt in levels:
            sol = solve(problem, Grid(("y",), (-5,), (5,), (n,)), scheme=scheme, dt=dt, store_every=10**6)
            errs.append(np.max(np.abs(sol.value_at(ys) - exact) / np.maximum(exact, 0.1)))
        errors[scheme] = errs
        orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
        declared = {"implicit": IMPLICIT, "explicit": EXPLICIT}[scheme].order
        assert np.all((orders > declared - 0.25) & (orders < declared + 0.35)), (scheme, errs, orders)
    # about 0.55 h + 1.9 dt relative (h = 0.0125, dt = 2e-3), see stochctl.models.canonical.LOCAL_QUADRATIC_SOLVE
    assert errors["implicit"][-1] < 0.013 and errors["explicit"][-1] < 0.02


def test_isaacs_game_with_fixed_controls_matches_moment_ode():
    """Quadratic game with u in [1, 1.0001] for both players: V = x' e^{J'T} Q e^{JT} x / 2 + noise term."""
    a = b = c = 1.0
    sigma, eta, T = 0.5, 0.1, 1.0
    problem = ControlProblem.from_model(get_model("quadratic-game"), u_min=1.0, u_max=1.0001)
    J = np.array([[-a, -b], [b, -c]])
    Q = np.array([[a, b], [b, -c]])
    D = eta * sigma**2 * np.eye(2)
    P = sl.expm(J.T * T) @ Q @ sl.expm(J * T) / 2
    const = quad(lambda s: np.trace(Q @ sl.expm(J * s) @ D @ sl.expm(J.T * s)) / 2, 0, T)[0]
    pts = np.array([[0.5, 0.3], [-0.4, 0.6], [0.0, 0.0], [1.0, -0.5]])
    exact = np.einsum("ni,ij,nj->n", pts, P, pts) + const
    errs = []
    for n in (41, 81):
        sol = solve(problem, Grid(("theta", "omega"), (-2, -2), (2, 2), (n, n)), store_every=10**6)
        errs.append(np.max(np.abs(sol.value_at(pts) - exact)))
    assert errs[1] < 2.5e-3
    assert 0.7 < np.log2(errs[0] / errs[1]) < 1.4


def _scheme_gap(problem, grid, dt):
    ex = solve(problem, grid, dt=dt, store_every=10**6)
    im = solve(problem, grid, scheme="implicit", dt=dt, store_every=10**6)
    assert im.diagnostics["max_residual"] < 1e-9 and np.all(im.diagnostics["policy_iterations"] >= 1)
    return np.max(np.abs(ex.values[0] - im.values[0])) / np.max(np.abs(ex.values[0])), ex, im


@pytest.mark.parametrize("which", ["quadratic-1d", "bowl-2d"])
def test_explicit_and_implicit_agree_and_converge_together(which):
    """Same spatial operator: the gap is forward- vs backward-Euler time error, O(dt)."""
    if which == "quadratic-1d":
        problem = ControlProblem.from_model(get_model("quadratic"), u_max=2.0)
        grid = Grid(("x",), (-3,), (3,), (121,))
    else:
        problem = ControlProblem.from_model(bowl_2d())
        grid = Grid(("x", "y"), (-2, -2), (2, 2), (25, 25))
    dt0 = 0.9 * max_time_step(evaluate_coefficients(problem, grid))
    gap0, ex, im = _scheme_gap(problem, grid, dt0)
    gap1, ex1, im1 = _scheme_gap(problem, grid, dt0 / 4)
    assert gap0 < 0.1 and gap1 < 0.03
    assert 2.5 < gap0 / gap1 < 6.0  # first order in dt
    u_ex, u_im = ex1.controls[ex1.control_names[0]][0], im1.controls[im1.control_names[0]][0]
    assert np.mean(np.abs(u_ex - u_im) < 1e-2) > 0.9


def test_larger_control_set_never_hurts_the_minimiser():
    grid = Grid(("y",), (-5,), (5,), (201,))
    narrow = solve(local(u_max=1.0), grid, dt=5e-3)
    wide = solve(local(u_max=2.0), grid, dt=5e-3)
    assert np.all(wide.values[0] <= narrow.values[0] + 1e-12)
    assert np.any(wide.values[0] < narrow.values[0] - 1e-3)


def test_batch_control_is_stored_and_within_bounds():
    problem = ControlProblem.from_model(get_model("quadratic"), batch=BatchControl(2, 64, 0.001))
    sol = solve(problem, Grid(("x",), (-3,), (3,), (61,)), horizon=0.5)
    m = sol.controls["m_x"]
    assert sol.control_names == ("u_x", "m_x")
    assert np.all((m >= 1 / 64 - 1e-15) & (m <= 1 / 2 + 1e-15))
    assert len(np.unique(np.round(m[0], 12))) > 2  # interior optimum sqrt(2 kappa / (u^2 B)) occurs


@pytest.mark.slow
def test_local_model_defaults_are_accurate_to_1e3():
    """Defaults of local-quadratic: error estimate a h + b dt from refinement below 1e-3 relative at |y| <= 4."""
    problem = local()
    d = problem.model.solve_defaults
    ys = np.array([0.05, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0])
    base = solve(problem)
    assert base.grid.points == (d.points,) and base.diagnostics["dt"] == pytest.approx(d.dt)
    v0 = base.value_at(ys)
    # first-order error model e = a h + b dt: measure each slope by doubling h or dt
    coarse_h = solve(problem, Grid(("y",), (-5,), (5,), ((d.points - 1) // 2 + 1,)), scheme="implicit",
                     dt=d.dt, store_every=10**6)
    coarse_t = solve(problem, base.grid, scheme="implicit", dt=2 * d.dt, store_every=10**6)
    estimate = (coarse_h.value_at(ys) - v0) + (coarse_t.value_at(ys) - v0)
    assert np.all(coarse_h.value_at(ys) >= v0 - 1e-9) and np.all(coarse_t.value_at(ys) >= v0 - 1e-9)
    assert np.max(np.abs(estimate) / v0) < 1e-3
    # constant control u = 1 at the same defaults against the closed form
    const = solve(local(u_min=1.0, u_max=1.0001))
    exact = np.array([closed_form_u1(y, 2.0) for y in ys])
    assert np.max(np.abs(const.value_at(ys) - exact) / exact) < 1e-3
    assert base.value_at(0.0) == 0.0  # u = 0 keeps Y = 0


def test_local_model_domain_is_large_enough():
    problem = local()
    rep = boundary_sensitivity(problem, Grid(("y",), (-5,), (5,), (401,)), factor=1.5, scheme="implicit", dt=1e-2)
    assert rep.inner_difference < 1e-7 and rep.reach == 0.0
    sol = solve(problem, Grid(("y",), (-5,), (5,), (401,)), dt=1e-2, check_boundary=True)
    assert sol.diagnostics["boundary_sensitivity"] == pytest.approx(rep.inner_difference, abs=1e-12)


def test_boundary_sensitivity_flags_an_outflow_domain():
    """a < 0: the drift leaves the box, so the truncation reaches deep into the answer."""
    rep = boundary_sensitivity(ControlProblem.from_model(get_model("quadratic", a=-1.0)),
                               Grid(("x",), (-3,), (3,), (121,)))
    assert rep.inner_difference > 0.1 and rep.reach > 0.3


# ------------------------------------------------------------------ failures
def test_nonfinite_value_names_time_and_location():
    y = sp.Symbol("y", real=True)
    model = get_model("local-quadratic").with_options(terminal=sp.Float(1e308) * y**2 / 25)
    problem = ControlProblem.from_model(model)
    grid = Grid(("y",), (-5,), (5,), (101,))
    with pytest.raises(NumericalError) as err:
        solve(problem, grid, scheme="explicit")
    coeffs = evaluate_coefficients(problem, grid)
    times, _ = explicit_time_grid(2.0, coeffs)
    msg = str(err.value)
    assert f"tau={times[-2]:.6g}" in msg  # the first step back from T
    y_bad = float(re.search(r" at y=(-?[0-9.e+-]+)", msg).group(1))
    with np.errstate(all="ignore"):
        ref, *_ = reference_step(coeffs.terminal, coeffs, times[1])
    node = int(round((y_bad + 5) / grid.spacing[0]))
    assert not np.isfinite(ref[node]) and np.all(np.isfinite(ref[:node]))


def test_forced_nonfinite_coefficient_is_located():
    problem = local()
    grid = Grid(("y",), (-5,), (5,), (101,))
    coeffs = evaluate_coefficients(problem, grid)
    gh = coeffs.gh.copy()
    gh[0, 70] = np.nan  # y = 2.0
    bad = dataclasses.replace(coeffs, gh=gh)
    times = np.linspace(0.0, 0.01, 11)
    with pytest.raises(NumericalError, match=r"tau=0\.009 .*y=2\b"):
        march_explicit(bad, times, np.array([0, 10]))


def test_nonfinite_terminal_cost_is_reported_at_T():
    y = sp.Symbol("y", real=True)
    problem = ControlProblem.from_model(get_model("local-quadratic").with_options(terminal=sp.exp(1000 * y)))
    with pytest.raises(NumericalError, match=r"tau=2 .*y=0\.8"):
        solve(problem, Grid(("y",), (-5,), (5,), (101,)), scheme="explicit")


def test_refusals():
    game = ControlProblem.from_model(get_model("quadratic-game"))
    grid = Grid(("theta", "omega"), (-2, -2), (2, 2), (11, 11))
    with pytest.raises(InputError, match="one-player problems"):
        solve(game, grid, scheme="implicit")
    with pytest.raises(InputError, match="unknown scheme 'crank'; valid schemes: explicit, implicit"):
        solve(game, grid, scheme="crank")
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(InputError, match="horizon must be a positive finite number"):
            solve(game, grid, horizon=bad)
    shared = ControlProblem.from_model(get_model("quadratic-game"), noise="shared",
                                       covariance=sp.Matrix([[1, sp.Rational(1, 2)], [sp.Rational(1, 2), 1]]))
    with pytest.raises(InputError, match=r"diagonal diffusion.*Sigma\[theta, omega\] reaches 0\.5"):
        solve(shared, grid)
    with pytest.raises(InputError, match="store_every must be an integer >= 1"):
        solve(game, grid, store_every=0)
    with pytest.raises(InputError, match="grid axes"):
        solve(game, Grid(("x",), (0,), (1,), (5,)))


def test_storage_levels_and_progress_silence(capsys):
    problem = ControlProblem.from_model(get_model("quadratic"))
    sol = solve(problem, Grid(("x",), (-3,), (3,), (41,)), store_every=7, progress=False, num_threads=1)
    K = sol.n_steps
    assert sol.stored[0] == 0 and sol.stored[-1] == K and np.all(np.diff(sol.stored)[:-1] == 7)
    assert sol.values.shape == (len(sol.stored), 41) and sol.controls["u_x"].shape == (len(sol.stored) - 1, 41)
    np.testing.assert_allclose(sol.values[-1], 0.5 * sol.grid.axes[0] ** 2)
    full = solve(problem, Grid(("x",), (-3,), (3,), (41,)), progress=False)
    np.testing.assert_array_equal(full.values[sol.stored], sol.values)
    np.testing.assert_array_equal(full.controls["u_x"][sol.stored[:-1]], sol.controls["u_x"])
    assert capsys.readouterr().err == ""
