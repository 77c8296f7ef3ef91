"""Monte Carlo under a policy: simulator against exact moment recursions, policy lookup, PDE agreement.

Oracles: for linear dynamics with Gaussian noise the second moments of the
Euler-Maruyama scheme and of the SGD/SGA iterations obey exact linear
recursions, so the simulated mean cost must match them within Monte Carlo
error (no discretisation error enters); noise-free dynamics are recomputed
step by step in numpy with scipy's grid interpolator. Against the PDE: the
value at a start point must equal the simulated cost of the solved policy,
and the solved policy must be no worse than any constant multiplier on the
same paths.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from scipy.interpolate import RegularGridInterpolator

from stochctl._jit import set_num_threads
from stochctl.errors import InputError
from stochctl.models import get_model
from stochctl.solvers.grid import Grid
from stochctl.solvers.montecarlo import (
    GridPolicy,
    simulate_constant,
    simulate_iteration,
    simulate_policy,
)
from stochctl.solvers.solution import Solution
from stochctl.symbolic.problem import BatchControl, ControlProblem

Z = 3.5  # standard errors allowed against exact references (several comparisons per file)


def quadratic_problem(**kw):
    params = {k: kw.pop(k) for k in ("a", "s", "sigma") if k in kw}
    return ControlProblem.from_model(get_model("quadratic", **params), **kw)


def euler_second_moment(m0, u, dt, *, a, s, sigma, eta):
    """E[X_K^2] of x <- x - u dt (a x + sqrt(eta / dt) sqrt(s^2 x^2 + sigma^2) z), u a schedule."""
    m = m0
    for un in u:
        m = (1 - a * un * dt) ** 2 * m + un * un * dt * eta * (s * s * m + sigma * sigma)
    return m


# ----------------------------------------------------------- exact moment oracles
def test_euler_matches_exact_second_moment_with_multiplicative_noise():
    prob = quadratic_problem(a=1.5, s=0.8, sigma=0.6, horizon=1.0)  # G = g = a x^2 / 2
    res = simulate_constant(prob, 0.7, [1.2], paths=40_000, steps=50, seed=11)
    exact = 0.75 * euler_second_moment(1.2**2, [0.7] * 50, 1.0 / 50, a=1.5, s=0.8, sigma=0.6, eta=0.1)
    assert res.steps == 50 and res.dt == pytest.approx(0.02) and res.diverged == 0
    assert abs(res.mean - exact) < Z * res.stderr, (res.mean, exact, res.stderr)
    assert 0 < res.stderr < 0.01 * exact


def test_open_loop_schedule_with_random_start_points(rng):
    """A time-varying schedule (policy levels) and one start point per path (X0 ~ N(0, m0))."""
    prob = quadratic_problem(a=1.0, s=0.0, sigma=1.0, horizon=2.0, terminal_cost=sp.Symbol("x", real=True) ** 2)
    times = np.array([0.0, 0.5, 1.25])
    sched = np.array([1.0, 0.3, 0.6])
    policy = GridPolicy.open_loop(prob, times, sched)
    paths, steps, m0 = 40_000, 40, 0.5
    x0 = rng.normal(0.0, np.sqrt(m0), size=(paths, 1))
    res = simulate_policy(prob, policy, x0, paths=paths, steps=steps, seed=3)
    u = sched[np.searchsorted(times, np.arange(steps) * 2.0 / steps, side="right") - 1]
    exact = euler_second_moment(np.mean(x0[:, 0] ** 2), u, 2.0 / steps, a=1.0, s=0.0, sigma=1.0, eta=0.1)
    assert abs(res.mean - exact) < Z * res.stderr, (res.mean, exact, res.stderr)


def test_sgd_iteration_matches_exact_recursion():
    prob = quadratic_problem(a=2.0, s=1.0, sigma=0.5, horizon=3.0, batch_size=4)
    res = simulate_iteration(prob, 0.8, [1.0], paths=40_000, seed=5)
    eta, m = 0.1, 1.0 / 4
    assert res.steps == 30 and res.method == "sgd" and res.dt == eta
    x2 = 1.0
    for _ in range(30):  # x <- x - eta u (a x + sqrt(m) sqrt(s^2 x^2 + sigma^2) z)
        x2 = (1 - eta * 0.8 * 2.0) ** 2 * x2 + eta**2 * 0.64 * m * (1.0 * x2 + 0.25)
    assert abs(res.mean - 1.0 * x2) < Z * res.stderr, (res.mean, x2, res.stderr)


@pytest.mark.parametrize("algorithm", ["simultaneous", "alternating"])
def test_sga_iterations_match_exact_covariance_recursion(algorithm):
    """Quadratic game: x' = M x + N z exactly; E g(x_K) from S' = M S M^T + N N^T."""
    a, b, c, sigma, eta, u1, u2, K = 1.0, 1.5, 0.5, 0.5, 0.1, 0.7, 0.4, 25
    prob = ControlProblem.from_model(get_model("quadratic-game", a=a, b=b, c=c, sigma=sigma), horizon=K * eta)
    res = simulate_iteration(prob, {"theta": u1, "omega": u2}, [0.5, -0.4], algorithm=algorithm,
                             paths=40_000, seed=9)
    h1, h2 = eta * u1, eta * u2
    if algorithm == "simultaneous":
        M = np.array([[1 - h1 * a, -h1 * b], [h2 * b, 1 - h2 * c]])
        N = np.diag([-h1 * sigma, h2 * sigma])
    else:  # omega moves at the updated theta
        M = np.array([[1 - h1 * a, -h1 * b], [h2 * b * (1 - h1 * a), 1 - h2 * c - h1 * h2 * b * b]])
        N = np.array([[-h1 * sigma, 0.0], [-h1 * h2 * b * sigma, h2 * sigma]])
    S = np.outer([0.5, -0.4], [0.5, -0.4])
    for _ in range(K):
        S = M @ S @ M.T + N @ N.T
    exact = (a * S[0, 0] + 2 * b * S[0, 1] - c * S[1, 1]) / 2
    assert res.steps == K and res.method == algorithm
    assert abs(res.mean - exact) < Z * res.stderr, (res.mean, exact, res.stderr)


def test_batch_control_policy_pays_compute_cost():
    """Under batch control the cost adds int kappa / m dt; m also scales the noise."""
    prob = quadratic_problem(a=1.0, s=0.0, sigma=1.0, horizon=1.0, batch=BatchControl(1, 64, kappa=0.002))
    m = 1.0 / 16
    res = simulate_constant(prob, {"x": 0.9, "m_x": m}, [0.8], paths=40_000, steps=40, seed=2)
    exact = 0.5 * euler_second_moment(0.64, [0.9] * 40, 1.0 / 40, a=1.0, s=0.0, sigma=1.0, eta=0.1 * m)
    exact += 1.0 * 0.002 / m
    assert abs(res.mean - exact) < Z * res.stderr, (res.mean, exact, res.stderr)


# ------------------------------------------------------------- noise handling
def test_reproducible_across_thread_counts_and_common_random_numbers():
    prob = quadratic_problem(horizon=1.0)
    try:
        set_num_threads(1)
        one = simulate_constant(prob, 0.6, [1.0], paths=2_001, steps=30, seed=7)
        set_num_threads(2)
        two = simulate_constant(prob, 0.6, [1.0], paths=2_001, steps=30, seed=7)
    finally:
        set_num_threads()
    np.testing.assert_array_equal(one.costs, two.costs)
    # the same noise through a differently built but identical policy
    same = simulate_policy(prob, GridPolicy.open_loop(prob, [0.0, 0.5], [0.6, 0.6]), [1.0], paths=2_001,
                           steps=30, seed=7)
    np.testing.assert_array_equal(one.costs, same.costs)
    other = simulate_constant(prob, 0.6, [1.0], paths=2_001, steps=30, seed=8)
    assert not np.array_equal(one.costs, other.costs)
    # paired differences of a run with itself vanish; of two policies they are far more precise
    assert one.difference(same) == (0.0, 0.0)
    slower = simulate_constant(prob, 0.3, [1.0], paths=2_001, steps=30, seed=7)
    diff, se = slower.difference(one)
    assert se < 0.5 * np.hypot(slower.stderr, one.stderr)
    with pytest.raises(InputError, match="same seed"):
        one.difference(other)


def test_two_threads_agree_with_numpy_euler_and_a_seed_is_reproducible():
    """The parallel kernel against an independent vectorised numpy Euler scheme of the same SDE."""
    a, s, sigma, u, x0, steps, paths = 1.5, 0.8, 0.6, 0.7, 1.2, 50, 20_000
    prob = quadratic_problem(a=a, s=s, sigma=sigma, horizon=1.0)
    try:
        set_num_threads(2)
        two = simulate_constant(prob, u, [x0], paths=paths, steps=steps, seed=13)
        again = simulate_constant(prob, u, [x0], paths=paths, steps=steps, seed=13)
        set_num_threads(1)
        one = simulate_constant(prob, u, [x0], paths=paths, steps=steps, seed=13)
    finally:
        set_num_threads()
    np.testing.assert_array_equal(two.costs, again.costs)
    np.testing.assert_array_equal(two.costs, one.costs)
    gen = np.random.default_rng(13)
    dt, eta = 1.0 / steps, float(prob.eta)
    x = np.full(paths, x0)
    for _ in range(steps):
        x = x - u * dt * (a * x + np.sqrt(eta / dt) * np.sqrt(s * s * x * x + sigma * sigma) * gen.standard_normal(paths))
    g = a * x**2 / 2
    z = (two.mean - g.mean()) / np.hypot(two.stderr, g.std(ddof=1) / np.sqrt(paths))
    assert abs(z) < 3, z


def test_antithetic_pairs_share_noise_with_opposite_sign():
    prob = quadratic_problem(a=1.0, s=0.0, sigma=1.0, horizon=1.0)
    res = simulate_constant(prob, 1.0, [0.0], paths=20_000, steps=20, seed=4, antithetic=True, keep_paths=4)
    # from x0 = 0 with linear dynamics the antithetic partner is the mirror image
    np.testing.assert_allclose(res.sample[1], -res.sample[0], atol=1e-14)
    np.testing.assert_allclose(res.costs[0::2], res.costs[1::2], rtol=1e-12)
    exact = 0.5 * euler_second_moment(0.0, [1.0] * 20, 0.05, a=1.0, s=0.0, sigma=1.0, eta=0.1)
    assert abs(res.mean - exact) < Z * res.stderr
    with pytest.raises(InputError, match="even number"):
        simulate_constant(prob, 1.0, [0.0], paths=11, antithetic=True)


# ------------------------------------------------------------- policy lookup
def _solution(grid, times, stored, controls):
    """A hand-built Solution (values are irrelevant here)."""
    values = np.zeros((len(stored), *grid.shape))
    return Solution(problem="test", time_name="t", state_names=grid.names, grid=grid, times=times, stored=stored,
                    values=values, controls=controls, convex={}, u_bounds={})


def test_grid_policy_matches_solution_lookup_and_scipy(rng):
    grid = Grid(("theta", "omega"), (-2.0, -1.0), (2.0, 3.0), (9, 7))
    times = np.linspace(0.0, 1.0, 11)
    stored = np.array([0, 3, 7, 10])
    tabs = {"u_theta": rng.uniform(0, 1, (3, 9, 7)), "u_omega": rng.uniform(0, 2, (3, 9, 7))}
    sol = _solution(grid, times, stored, tabs)
    policy = GridPolicy.from_solution(sol)
    assert policy.steps == 10 and policy.horizon == 1.0
    np.testing.assert_allclose(policy.level_times, [0.0, 0.3, 0.7])
    pts = np.column_stack([rng.uniform(-2, 2, 50), rng.uniform(-1, 3, 50)])
    pts[:4] = [[-2, -1], [2, 3], [2, -1], [0.0, 3.0]]  # corners and faces
    for t in (0.0, 0.29, 0.3, 0.5, 0.7, 0.95, 1.0):
        for name in tabs:
            ref = RegularGridInterpolator(grid.axes, tabs[name][sol.policy_index(t)])(pts)
            np.testing.assert_allclose(policy.at(name, pts, t), ref, rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(policy.at(name, pts, t), sol.control_at(name, pts, t), rtol=1e-13,
                                       atol=1e-13)
    # outside the box the policy is clamped to the nearest boundary point
    np.testing.assert_allclose(policy.at("u_theta", [[5.0, 0.3]], 0.5), policy.at("u_theta", [[2.0, 0.3]], 0.5))


def test_kernel_follows_policy_noise_free_1d_and_games(rng):
    """sigma = 0: the simulated paths equal a numpy recomputation with scipy's interpolator."""
    prob = quadratic_problem(a=1.3, s=0.0, sigma=0.0, horizon=1.0)
    grid = Grid(("x",), (-3.0,), (3.0,), (13,))
    times, stored = np.linspace(0, 1, 5), np.array([0, 2, 4])
    tab = rng.uniform(0, 1, (2, 13))
    policy = GridPolicy.from_solution(_solution(grid, times, stored, {"u_x": tab}))
    res = simulate_policy(prob, policy, [2.1], paths=2, steps=8, seed=0, keep_paths=1)
    x = 2.1
    for n in range(8):
        level = 0 if n * 0.125 < 0.5 else 1
        u = RegularGridInterpolator(grid.axes, tab[level])([[x]])[0]
        x = x - u * 1.3 * x * 0.125
        assert res.sample[0, n + 1, 0] == pytest.approx(x, rel=1e-12)
    assert res.costs[0] == pytest.approx(1.3 * x * x / 2, rel=1e-12)

    a, b, c = 0.5, 1.2, 0.3
    game = ControlProblem.from_model(get_model("quadratic-game", a=a, b=b, c=c, sigma=0.0), horizon=1.0)
    grid2 = Grid(("theta", "omega"), (-2.0, -2.0), (2.0, 2.0), (6, 5))
    tabs = {"u_theta": rng.uniform(0, 1, (2, 6, 5)), "u_omega": rng.uniform(0, 1, (2, 6, 5))}
    # policy levels start at t = 0 and t = 0.5: the iteration (eta = 0.1) switches at k = 5
    pol2 = GridPolicy.from_solution(_solution(grid2, np.linspace(0, 1, 5), np.array([0, 2, 4]), tabs))
    f = [{k: RegularGridInterpolator(grid2.axes, v[j]) for k, v in tabs.items()} for j in range(2)]
    for algorithm in ("simultaneous", "alternating"):
        res = simulate_iteration(game, pol2, [1.0, -0.5], algorithm=algorithm, steps=10, paths=2, keep_paths=1)
        th, om = 1.0, -0.5
        for n in range(10):
            fn = f[0] if n < 5 else f[1]
            ut = fn["u_theta"]([[th, om]])[0]
            th_new = th - 0.1 * ut * (a * th + b * om)
            if algorithm == "alternating":
                om = om + 0.1 * fn["u_omega"]([[th_new, om]])[0] * (b * th_new - c * om)
            else:
                om = om + 0.1 * fn["u_omega"]([[th, om]])[0] * (b * th - c * om)
            th = th_new
            np.testing.assert_allclose(res.sample[0, n + 1], [th, om], rtol=1e-12)
        assert res.costs[0] == pytest.approx(a * th**2 / 2 + b * th * om - c * om**2 / 2, rel=1e-12)


def test_policy_with_one_player_replaced_by_a_constant(rng):
    prob = ControlProblem.from_model(get_model("quadratic-game"), horizon=1.0)
    pol = GridPolicy.constant(prob, {"theta": 0.2, "omega": 0.9})
    mixed = pol.with_constant(prob, {"u_omega": 0.5})
    assert mixed.at("u_theta", [0.1, 0.2]) == pytest.approx(0.2)
    assert mixed.at("u_omega", [0.1, 0.2]) == pytest.approx(0.5)
    with pytest.raises(InputError, match="unknown control 'u_phi'; valid: theta, omega, u_theta, u_omega"):
        pol.with_constant(prob, {"u_phi": 0.5})


# ------------------------------------------------------------------ bad input
def test_bad_input_is_refused_with_a_message():
    prob = quadratic_problem(horizon=1.0)
    game = ControlProblem.from_model(get_model("quadratic-game"))
    with pytest.raises(InputError, match="outside the policy's domain"):
        simulate_constant(prob, 0.5, [7.0])
    with pytest.raises(InputError, match=r"must lie in \[0, 1\]"):
        simulate_constant(prob, 1.5, [0.0])
    with pytest.raises(InputError, match="unknown control 'y'; valid: x, u_x"):
        simulate_constant(prob, {"y": 0.5}, [0.0])
    with pytest.raises(InputError, match="algorithm must be one of sgd, simultaneous, alternating"):
        simulate_iteration(prob, 0.5, [0.0], algorithm="adam")
    with pytest.raises(InputError, match="for one player"):
        simulate_iteration(game, 0.5, [0.0, 0.0], algorithm="sgd")
    with pytest.raises(InputError, match="paths must be an integer >= 2"):
        simulate_constant(prob, 0.5, [0.0], paths=1)
    with pytest.raises(InputError, match="steps must be an integer >= 1"):
        simulate_constant(prob, 0.5, [0.0], steps=0)
    with pytest.raises(InputError, match=r"x0 must have shape \(1,\)"):
        simulate_constant(prob, 0.5, [0.0, 1.0])
    shared = ControlProblem.from_model(get_model("quadratic-game"), noise="shared",
                                       covariance=sp.Matrix([[1, sp.Rational(1, 2)], [sp.Rational(1, 2), 1]]))
    with pytest.raises(InputError, match="diagonal diffusion"):
        simulate_constant(shared, 0.5, [0.0, 0.0])


# ------------------------------------------------- PDE value against Monte Carlo
def _pde_pair(prob, coarse, fine, **kw):
    """Solutions on a grid and on its refinement (h and h/2; dt halved as well)."""
    from stochctl.solvers import solve

    return tuple(solve(prob, Grid.for_problem(prob, n), progress=False, **opts, **kw)
                 for n, opts in (coarse, fine))


@pytest.fixture(scope="module")
def local_solutions():
    """Local model dY = -u Y dtau + u dW, cost Y^2, T = 0.5: h = 0.01 and 0.005 (implicit, dt = h / 5)."""
    prob = ControlProblem.from_model(get_model("local-quadratic"), horizon=0.5)
    return prob, _pde_pair(prob, (1201, {"dt": 2e-3}), (2401, {"dt": 1e-3}), scheme="implicit")


@pytest.fixture(scope="module")
def game_solutions():
    """Quadratic game (a = b = c = 1, sigma = 0.5, eta = 0.1, T = 1): 81^2 and 161^2 nodes, explicit at the CFL step."""
    prob = ControlProblem.from_model(get_model("quadratic-game"))
    return prob, _pde_pair(prob, (81, {}), (161, {}))


def _check_value_against_monte_carlo(prob, coarse, fine, x0, paths):
    """|V_{h/2}(0, x0) - E[cost of V_{h/2}'s policy]| <= 3 SE + stated discretisation error.

    Both sides are first-order accurate. The PDE error of V_{h/2} is stated as
    2 |V_h - V_{h/2}| (Richardson: V_{h/2} - V ~ V_h - V_{h/2} at first order,
    with a safety factor 2). The Euler bias of the simulation is removed by
    Richardson extrapolation in the step, E = 2 C(2K) - C(K), whose standard
    error sqrt(4 SE(2K)^2 + SE(K)^2) enters the 3 SE.
    """
    v_fine, v_coarse = fine.value_at(x0), coarse.value_at(x0)
    err = 2 * abs(v_coarse - v_fine)
    K = fine.n_steps
    runs = [simulate_policy(prob, fine, x0, paths=paths, steps=n, seed=21, antithetic=True) for n in (K, 2 * K)]
    estimate = 2 * runs[1].mean - runs[0].mean
    se = np.hypot(2 * runs[1].stderr, runs[0].stderr)
    assert all(r.exit_fraction < 1e-3 and r.diverged == 0 for r in runs)
    assert abs(estimate - v_fine) <= 3 * se + err, (v_fine, estimate, se, err)
    # the check is sharp: the tolerance is a small fraction of the value
    assert 3 * se + err < 0.02 * abs(v_fine), (se, err, v_fine)
    return runs[0]


def test_local_model_value_equals_monte_carlo_of_its_policy(local_solutions):
    prob, (coarse, fine) = local_solutions
    _check_value_against_monte_carlo(prob, coarse, fine, [3.0], paths=20_000)


@pytest.mark.slow
def test_game_value_equals_monte_carlo_of_its_saddle_policy(game_solutions):
    prob, (coarse, fine) = game_solutions
    _check_value_against_monte_carlo(prob, coarse, fine, [-1.5, 1.5], paths=20_000)


# ------------------------------------------------ policy against constant rates
@pytest.mark.parametrize("y0", [1.0, 3.0])
def test_local_policy_beats_every_constant_multiplier(local_solutions, y0):
    """Same paths (common random numbers): E[C(policy) - C(u)] <= 3 SE of the paired difference.

    At y0 = 3 the constant u = 1 is within 0.1% of the optimum, so this is a sharp comparison.
    """
    prob, (_, fine) = local_solutions
    pol = simulate_policy(prob, fine, [y0], paths=10_000, seed=8, antithetic=True)
    for u in np.linspace(0.0, 1.0, 5):
        const = simulate_constant(prob, float(u), [y0], paths=10_000, steps=pol.steps, seed=8, antithetic=True)
        diff, se = pol.difference(const)
        assert diff <= 3 * se, (u, diff, se)


@pytest.mark.slow
@pytest.mark.parametrize("x0", [[-1.5, 1.5], [1.0, 0.5]])
def test_game_policy_is_a_saddle_against_constant_deviations(game_solutions, x0):
    """A player who replaces its policy by a constant cannot gain (same paths, within 3 SE).

    The minimiser's deviations cannot lower the cost, the maximiser's cannot raise it.
    """
    prob, (_, fine) = game_solutions
    policy = GridPolicy.from_solution(fine)
    base = simulate_policy(prob, policy, x0, paths=5_000, seed=4, antithetic=True)
    for name, sense in (("u_theta", +1), ("u_omega", -1)):
        for u in (0.0, 0.5, 1.0):
            dev = simulate_policy(prob, policy.with_constant(prob, {name: u}), x0, paths=5_000, seed=4,
                                  antithetic=True)
            diff, se = dev.difference(base)
            assert sense * diff >= -3 * se, (name, u, diff, se)


@pytest.mark.slow
def test_discrete_iteration_approaches_the_sde_at_first_order_in_eta():
    """One feedback policy, three base rates: E[C(SGD)] - E[C(SDE)] = O(eta) (weak order 1 of the SME).

    The SDE reference uses 1000 Euler steps (its own bias is below a tenth of the smallest gap).
    """
    def problem(eta):
        model = get_model("quadratic").with_options(eta=eta, domain={"x": (-4.0, 4.0)})
        return ControlProblem.from_model(model, horizon=2.0)

    from stochctl.solvers import solve

    base = problem(0.1)
    policy = GridPolicy.from_solution(solve(base, Grid.for_problem(base, 401), scheme="implicit", dt=4e-3,
                                            progress=False))
    etas = np.array([0.1, 0.05, 0.025])
    gaps, ses = [], []
    for eta in etas:
        prob = problem(float(eta))
        it = simulate_iteration(prob, policy, [2.0], paths=20_000, seed=1, antithetic=True)
        sde = simulate_policy(prob, policy, [2.0], paths=20_000, steps=1000, seed=2, antithetic=True)
        assert it.steps == round(2.0 / eta)
        gaps.append(it.mean - sde.mean)
        ses.append(np.hypot(it.stderr, sde.stderr))
    assert np.all(np.abs(gaps) > 5 * np.array(ses)), (gaps, ses)
    slope = np.polyfit(np.log(etas), np.log(np.abs(gaps)), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.3), (gaps, slope)
