"""Explosion thresholds against independent computations, and simulations that bracket them.

Statistical margins. A path of the multiplicative iteration has log|x_k| a
random walk with drift Lambda (the Lyapunov exponent) and per-step variance
v ~ 1.2 here; with Lambda < 0 the chance that it ever climbs log(bound) = 27.6
is at most about exp(-2 |Lambda| 27.6 / v) (Cramer-Lundberg), below 1e-3 at the
step sizes used, while with Lambda > 0.1 it climbs there within about 300 of
the 1000 steps. Linear games below their threshold keep a stationary spread of
a few noise scales, far below the bound; above it they grow geometrically. So
the tests ask for probabilities below 0.1 and above 0.9 (Wilson intervals
inside [0, 0.1] or [0.9, 1]), which chance alone would breach with probability
far below 1e-6.
"""

import json
import math

import mpmath
import numba
import numpy as np
import pytest
import sympy as sp

from stochctl import cli
from stochctl._jit import set_num_threads
from stochctl.analysis import explosion as ex
from stochctl.errors import InputError
from stochctl.models import Model, Parameter, Player, get_model
from stochctl.solvers import Grid, Solution, solve
from stochctl.symbolic.problem import ControlProblem


# ------------------------------------------------------------------ scalar model
def _log_abs_closed_form(m: float) -> float:
    """E log|xi - m| = (log 2 + psi(1/2) + m^2 2F2(1, 1; 3/2, 2; -m^2/2)) / 2 (log-moment of a noncentral chi^2_1)."""
    with mpmath.workdps(40):
        value = mpmath.log(2) + mpmath.digamma(0.5) + m * m * mpmath.hyp2f2(1, 1, 1.5, 2, -m * m / 2)
        return float(value / 2)


@pytest.mark.parametrize("m", [0.0, 0.3, -1.0, 2.5, 7.0, 13.6, 30.0, 49.9, 50.1, 80.0])
def test_expected_log_abs_normal_matches_hypergeometric_closed_form(m):
    assert ex.expected_log_abs_normal(m) == pytest.approx(_log_abs_closed_form(m), abs=1e-10)


@pytest.mark.parametrize("h, a, s2", [(1.0, 1.0, 1.0), (1.7, 1.0, 1.0), (0.5, 2.0, 0.25), (3.0, 0.2, 4.0),
                                      (0.01, 1.0, 0.5)])
def test_lyapunov_exponent_matches_monte_carlo(h, a, s2, rng):
    xi = rng.standard_normal(400_000) * math.sqrt(s2)
    samples = np.log(np.abs(1.0 - h * (a + xi)))
    se = samples.std() / math.sqrt(samples.size)
    assert abs(ex.lyapunov_exponent(h, a, s2) - samples.mean()) < 5 * se


@pytest.mark.parametrize("a, s2", [(1.0, 1.0), (1.0, 0.25), (2.0, 0.1), (0.3, 3.0), (1.0, 1e-4), (1.0, 100.0)])
def test_critical_steps_solve_their_defining_equations(a, s2):
    det, ms, asure = ex.critical_steps(a, s2)
    assert det == pytest.approx(2.0 / a, rel=1e-15)
    # mean square: the one-step second-moment factor crosses 1 there
    factor = lambda h: (1 - h * a) ** 2 + h * h * s2  # noqa: E731
    assert factor(ms) == pytest.approx(1.0, abs=1e-12)
    assert factor(0.99 * ms) < 1 < factor(1.01 * ms)
    # almost sure: the Lyapunov exponent crosses 0 there, and it is the larger threshold (Jensen)
    assert abs(ex.lyapunov_exponent(asure, a, s2)) < 1e-10
    assert ex.lyapunov_exponent(0.99 * asure, a, s2) < 0 < ex.lyapunov_exponent(1.01 * asure, a, s2)
    assert asure > ms
    for h in np.linspace(0.02, 0.98, 25) * asure:  # no earlier crossing
        assert ex.lyapunov_exponent(h, a, s2) < 0


def test_critical_steps_special_cases():
    assert ex.critical_steps(-0.5, 1.0) == (0.0, 0.0, 0.0)
    assert ex.critical_steps(0.0, 0.0) == (None, None, None)
    assert ex.critical_steps(2.0, 0.0) == (1.0, 1.0, 1.0)
    det, ms, asure = ex.critical_steps(0.0, 1.0)  # no drift: every step explodes in mean square only
    assert det is None and ms == 0.0 and asure > 0
    assert ex.lyapunov_exponent(0.5 * asure, 0.0, 1.0) < 0 < ex.lyapunov_exponent(1.5 * asure, 0.0, 1.0)


# ---------------------------------------------------------------- one player
def test_quadratic_model_thresholds_use_its_curvature_noise():
    model = get_model("quadratic", a=1.5, s=0.8, sigma=0.3)
    r = ex.explosion_thresholds(model, {"x": 0.7}, multipliers=2.0, batch_size=4)
    assert r.kind == "one-player"
    assert r.curvature == pytest.approx([1.5], rel=1e-14)
    assert r.noise_variance == pytest.approx([0.8**2 / 4], rel=1e-12)  # Var(a + s xi) / B
    assert r.gradient_covariance[0, 0] == pytest.approx((0.8**2 * 0.7**2 + 0.3**2) / 4, rel=1e-12)
    det, ms, asure = ex.critical_steps(1.5, 0.16)
    assert (r.deterministic, r.mean_square, r.almost_sure) == pytest.approx((det / 2, ms / 2, asure / 2), rel=1e-12)
    assert r.eigenvalues == pytest.approx([3.0])


def test_user_model_curvature_noise_and_directions():
    # quartic per-sample loss (a + s xi) x^4/4 + (b + t zeta) y^2/2 + eps x y:
    # per-sample Hessian fluctuations: 3 s xi x^2 on xx and t zeta on yy, independent.
    x, y, a, b, s, t, eps, xi, zeta = sp.symbols("x y a b s t eps xi zeta", real=True)
    model = Model(name="quartic", description="test", loss=(a + s * xi) * x**4 / 4 + (b + t * zeta) * y**2 / 2
                  + eps * x * y, players=(Player("w", "min", (x, y)),), noises=(xi, zeta),
                  parameters=(Parameter(a, 1.0), Parameter(b, 0.5), Parameter(s, 0.7), Parameter(t, 0.4),
                              Parameter(eps, 0.2)))
    x0 = 0.9
    r = ex.explosion_thresholds(model, {"x": x0, "y": -0.3})
    hess = np.array([[3 * x0**2, 0.2], [0.2, 0.5]])
    curv, vecs = np.linalg.eigh(hess)
    var = np.array([(3 * 0.7 * x0**2 * v[0] ** 2) ** 2 + (0.4 * v[1] ** 2) ** 2 for v in vecs.T])
    assert r.curvature == pytest.approx(curv, rel=1e-12)
    assert r.noise_variance == pytest.approx(var, rel=1e-10)
    steps = [ex.critical_steps(c, v) for c, v in zip(curv, var)]
    for k, name in enumerate(ex.ONE_PLAYER_CRITERIA):
        assert getattr(r, name) == pytest.approx(min(s[k] for s in steps), rel=1e-12)
    # a non-convex point: negative curvature explodes every step
    r = ex.explosion_thresholds(model.with_params(eps=1.0), {"x": 0.3, "y": 0.0})
    assert (r.deterministic, r.mean_square, r.almost_sure) == (0.0, 0.0, 0.0)


# ---------------------------------------------------------------------- games
def _brute_first_explosion(matrix_of_eta, upper, n=4000):
    """First eta on a fine linear grid where numpy's spectral radius exceeds 1 (None: none)."""
    for eta in np.linspace(upper / n, upper, n):
        if np.abs(np.linalg.eigvals(matrix_of_eta(eta))).max() > 1 + 1e-9:
            return eta
    return None


def test_simultaneous_closed_form_matches_numpy_spectral_radius(rng):
    for _ in range(30):
        n = int(rng.integers(2, 4))
        uj = rng.normal(size=(n, n)) + np.diag(rng.uniform(0.5, 2.0, n))
        crit = ex.simultaneous_critical_eta(np.linalg.eigvals(uj))
        matrix = lambda eta: np.eye(n) - eta * uj  # noqa: E731
        if crit == 0.0:
            assert np.abs(np.linalg.eigvals(matrix(1e-3))).max() > 1
            continue
        brute = _brute_first_explosion(matrix, 3 * crit)
        assert brute == pytest.approx(crit, abs=3 * crit / 4000)
        assert np.abs(np.linalg.eigvals(matrix(crit * (1 - 1e-7)))).max() <= 1 + 1e-12


def test_purely_imaginary_eigenvalues_explode_for_every_step():
    assert ex.simultaneous_critical_eta([0.5j, -0.5j]) == 0.0
    assert ex.simultaneous_critical_eta([0.0, 0.0]) is None
    assert ex.simultaneous_critical_eta([0.0, 2.0]) == pytest.approx(1.0)


GAMES = [(1.0, 1.0, 1.0), (1.0, 2.0, 0.5), (0.5, 1.0, 0.0), (2.0, 0.5, 1.0), (0.0, 1.0, 0.0), (0.0, -1.5, 0.0)]


@pytest.mark.parametrize("a, b, c", GAMES)
def test_quadratic_game_thresholds_closed_forms(a, b, c):
    r = ex.explosion_thresholds(get_model("quadratic-game", a=a, b=b, c=c), {"theta": 0.3, "omega": -0.2})
    # simultaneous: eigenvalues of J = [[a, b], [-b, c]] by hand
    disc = complex(((a - c) / 2) ** 2 - b * b)
    lam = [(a + c) / 2 + np.sqrt(disc), (a + c) / 2 - np.sqrt(disc)]
    expected = 0.0 if min(v.real for v in lam) <= 0 else min(2 * v.real / abs(v) ** 2 for v in lam)
    assert r.simultaneous == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # alternating: closed form 2 / lambda_max([[a, b], [b, c]]) for a, c >= 0 ...
    assert r.alternating == pytest.approx(2 / np.linalg.eigvalsh([[a, b], [b, c]]).max(), rel=1e-8)
    # ... and the numpy spectral radius of the explicit sequential update
    explicit = lambda eta: np.array([[1 - eta * a, -eta * b],  # noqa: E731
                                     [eta * b * (1 - eta * a), 1 - eta * c - eta**2 * b**2]])
    assert _brute_first_explosion(explicit, 2 * r.alternating) == pytest.approx(r.alternating, rel=1e-3)
    # additive noise only: the mean-square thresholds are the deterministic ones
    assert (r.mean_square_simultaneous, r.mean_square_alternating) == (r.simultaneous, r.alternating)


def test_alternating_iteration_matrix_with_multipliers(rng):
    for _ in range(20):
        a, c = rng.uniform(0, 2, 2)
        b = rng.normal()
        u1, u2 = rng.uniform(0.2, 3, 2)
        r = ex.explosion_thresholds(get_model("quadratic-game", a=a, b=b, c=c), {"theta": 0.0, "omega": 0.0},
                                    multipliers={"theta": u1, "omega": u2})
        eta = rng.uniform(0.1, 2)
        m = ex.iteration_matrix(np.array([[u1 * a, u1 * b], [-u2 * b, u2 * c]]), eta, [0, 1], "alternating")
        # theta' = theta - eta u1 (a theta + b omega); omega' = omega + eta u2 (b theta' - c omega)
        explicit = np.array([[1 - eta * u1 * a, -eta * u1 * b],
                             [eta * u2 * b * (1 - eta * u1 * a), 1 - eta * u2 * c - eta**2 * u1 * u2 * b**2]])
        np.testing.assert_allclose(m, explicit, rtol=1e-14, atol=1e-14)
        sym = [[u1 * a, math.sqrt(u1 * u2) * b], [math.sqrt(u1 * u2) * b, u2 * c]]
        assert r.alternating == pytest.approx(2 / np.linalg.eigvalsh(sym).max(), rel=1e-7)


def test_dirac_gan_equilibrium_eigenvalues():
    r0 = ex.explosion_thresholds(get_model("dirac-gan", c=0.0), {"theta": 0.0, "omega": 0.0})
    assert sorted(r0.eigenvalues.imag) == pytest.approx([-0.5, 0.5]) and np.all(r0.eigenvalues.real == 0)
    assert r0.simultaneous == 0.0 and r0.alternating == pytest.approx(4.0, rel=1e-9)  # bilinear with b = 1/2
    r1 = ex.explosion_thresholds(get_model("dirac-gan", c=1.0), {"theta": 1.0, "omega": 0.0})
    # J = [[0, -1/2], [1/2, c^2/2]]: lambda = 1/4 +- i sqrt(3)/4, 2 Re / |lambda|^2 = 2
    assert r1.simultaneous == pytest.approx(2.0, rel=1e-12)
    assert r1.alternating == pytest.approx(2 / np.linalg.eigvalsh([[0, -0.5], [-0.5, 0.5]]).max(), rel=1e-8)


def _noisy_game(s=0.6):
    """Quadratic game with multiplicative curvature noise on each player's own block."""
    th, om, a, b, c, s_, z1, z2 = sp.symbols("theta omega a b c s zeta1 zeta2", real=True)
    loss = (a + s_ * z1) * th**2 / 2 + b * th * om - (c + s_ * z2) * om**2 / 2
    return Model(name="noisy-game", description="test", loss=loss,
                 players=(Player("theta", "min", (th,)), Player("omega", "max", (om,))), noises=(z1, z2),
                 parameters=(Parameter(a, 1.0), Parameter(b, 1.0), Parameter(c, 0.5), Parameter(s_, s)))


def test_second_moment_matrix_matches_hand_built_map():
    model = _noisy_game()
    lin = ex.local_linearization(model, {"theta": 0.1, "omega": 0.2})
    jac = np.array([[1.0, 1.0], [-1.0, 0.5]])
    np.testing.assert_allclose(lin.jacobian, jac, atol=1e-14)
    eta, s2 = 0.7, 0.36
    noise = np.zeros((4, 4))
    noise[0, 0] = noise[3, 3] = s2  # Xi = diag(s zeta1, s zeta2): only E[Xi_11^2], E[Xi_22^2]
    m = np.eye(2) - eta * jac
    simultaneous = np.kron(m, m) + eta**2 * noise
    weights = np.ones(2) * lin.signs
    got = ex.second_moment_matrix(jac, lin.curvature_covariance, weights, eta, lin.owner, "simultaneous")
    np.testing.assert_allclose(got, simultaneous, atol=1e-13)
    t1 = np.eye(2) - eta * np.diag([1.0, 0.0]) @ jac
    t2 = np.eye(2) - eta * np.diag([0.0, 1.0]) @ jac
    n1, n2 = np.zeros((4, 4)), np.zeros((4, 4))
    n1[0, 0], n2[3, 3] = s2, s2
    alternating = (np.kron(t2, t2) + eta**2 * n2) @ (np.kron(t1, t1) + eta**2 * n1)
    got = ex.second_moment_matrix(jac, lin.curvature_covariance, weights, eta, lin.owner, "alternating")
    np.testing.assert_allclose(got, alternating, atol=1e-13)
    # thresholds: the mean-square ones come first
    r = ex.explosion_thresholds(model, {"theta": 0.0, "omega": 0.0})
    assert 0 < r.mean_square_simultaneous < r.simultaneous
    assert 0 < r.mean_square_alternating < r.alternating
    for upd in ex.UPDATES:
        crit = getattr(r, f"mean_square_{upd}")
        rho = [ex.spectral_radius(ex.second_moment_matrix(jac, lin.curvature_covariance, weights, f * crit,
                                                           lin.owner, upd)) for f in (0.999, 1.001)]
        assert rho[0] < 1 < rho[1]


@pytest.mark.parametrize("update", ex.UPDATES)
def test_simulated_second_moment_of_noisy_game_matches_the_map(update):
    model = _noisy_game()
    r = ex.explosion_thresholds(model, {"theta": 0.0, "omega": 0.0})
    crit = getattr(r, f"mean_square_{update}")
    etas, steps, start = [0.7 * crit, 1.3 * crit], 8, np.array([0.6, -0.4])
    sim = ex.simulate_second_moment(model, start, etas, update=update, noise="sample", paths=40000, steps=steps,
                                    seed=3)
    lin = ex.local_linearization(model, start)
    p0 = np.outer(start, start).ravel()
    for k, eta in enumerate(etas):
        a = ex.second_moment_matrix(lin.jacobian, lin.curvature_covariance, lin.signs, eta, lin.owner, update)
        exact = (np.linalg.matrix_power(a, steps) @ p0).reshape(2, 2).trace()  # E|x_K|^2 = tr P_K
        assert abs(sim.mean[k, -1] - exact) < 5 * sim.stderr[k, -1]
    # growth below / above the mean-square threshold
    assert sim.predicted_rate[0] < 0 < sim.predicted_rate[1]


# ------------------------------------------------------------------ simulations
QUAD = dict(a=1.0, s=1.0, sigma=0.0)


@pytest.mark.parametrize("noise", ["sample", "gaussian"])
def test_path_explosion_brackets_the_almost_sure_threshold(noise):
    model = get_model("quadratic", **QUAD)
    _, _, asure = ex.critical_steps(1.0, 1.0)
    factors = np.array([0.8, 0.9, 1.1, 1.25])
    lyap = [ex.lyapunov_exponent(f * asure, 1.0, 1.0) for f in factors]
    assert lyap[1] < -0.1 and lyap[2] > 0.1
    sim = ex.simulate_explosion(model, {"x": 1.0}, factors * asure, noise=noise, paths=300, steps=1000, bound=1e12)
    below, above = factors < 1, factors > 1
    assert np.all(sim.ci_high[below] < 0.1) and np.all(sim.ci_low[above] > 0.9)


def test_second_moment_brackets_the_mean_square_threshold():
    model = get_model("quadratic", **QUAD)
    _, ms, asure = ex.critical_steps(1.0, 1.0)
    etas = np.array([0.9 * ms, 1.1 * ms, 0.5 * (ms + asure)])
    steps, paths = 6, 40000
    sim = ex.simulate_second_moment(model, {"x": 1.0}, etas, noise="sample", paths=paths, steps=steps, seed=1)
    # exact: E x_k^2 = r^k with r = (1 - h)^2 + h^2; the mean of y^2 = (1 - h (1 + xi))^2 over the
    # paths has relative variance ((E y^4 / r^2)^K - 1) / N, E y^4 = c^4 + 6 c^2 d^2 + 3 d^4.
    c, d = 1 - etas, etas
    r = c**2 + d**2
    rel_sd = np.sqrt(((c**4 + 6 * c**2 * d**2 + 3 * d**4) / r**2) ** steps / paths)
    np.testing.assert_allclose(sim.predicted_rate, np.log(r), rtol=1e-12)
    assert np.all(np.abs(sim.growth_rate - np.log(r)) < 5 * rel_sd / steps)
    assert sim.growth_rate[0] < 0 < sim.growth_rate[1] < sim.growth_rate[2]
    # between the thresholds the mean square grows while paths do not explode
    paths_sim = ex.simulate_explosion(model, {"x": 1.0}, etas[2:], noise="sample", paths=300, steps=1000, bound=1e12)
    assert paths_sim.ci_high[0] < 0.1 and ms < etas[2] < asure


@pytest.mark.parametrize("a, b, c", GAMES[:5])
@pytest.mark.parametrize("update", ex.UPDATES)
def test_quadratic_game_simulation_brackets_threshold(a, b, c, update):
    model = get_model("quadratic-game", a=a, b=b, c=c, sigma=0.5)
    crit = getattr(ex.explosion_thresholds(model, {"theta": 0.0, "omega": 0.0}), update)
    if crit == 0.0:  # bilinear, simultaneous: every step explodes
        sim = ex.simulate_explosion(model, {"theta": 0.5, "omega": 0.5}, [0.2, 0.5], update=update, paths=200,
                                    steps=2000, bound=1e3)
        assert np.all(sim.ci_low > 0.9)
        return
    sim = ex.simulate_explosion(model, {"theta": 0.5, "omega": 0.5}, [0.8 * crit, 1.25 * crit], update=update,
                                paths=200, steps=2000, bound=1e3)
    assert sim.ci_high[0] < 0.1 and sim.ci_low[1] > 0.9


def test_dirac_gan_near_equilibrium():
    # Near the equilibrium (c, 0) with small noise (sigma = 0.002); a path "explodes" when it leaves
    # the ball of radius 0.1 around it (beyond the linear threshold the nonlinear GAN saturates on a
    # bounded orbit, so the local ball is the right yardstick).
    common = dict(paths=200, steps=3000, bound=0.1)
    m0 = get_model("dirac-gan", c=0.0, sigma=0.002)
    assert ex.explosion_thresholds(m0, {"theta": 0.0, "omega": 0.0}).simultaneous == 0.0
    sim = ex.simulate_explosion(m0, {"theta": 0.01, "omega": 0.01}, [0.1, 0.3, 1.0], **common)
    assert np.all(sim.ci_low > 0.9)
    m1 = get_model("dirac-gan", c=1.0, sigma=0.002)
    r1 = ex.explosion_thresholds(m1, {"theta": 1.0, "omega": 0.0})
    for update in ex.UPDATES:
        crit = getattr(r1, update)
        sim = ex.simulate_explosion(m1, {"theta": 1.01, "omega": 0.01}, [0.1, 0.8 * crit, 1.25 * crit],
                                    update=update, center={"theta": 1.0, "omega": 0.0}, **common)
        assert np.all(sim.ci_high[:2] < 0.1) and sim.ci_low[2] > 0.9


def test_simulation_is_reproducible_and_thread_independent():
    model = get_model("quadratic-game", a=0.5, b=1.0, c=0.0)
    args = (model, {"theta": 0.5, "omega": 0.5}, [0.5, 0.62])
    kw = dict(paths=64, steps=300, bound=1e2, seed=11)
    old = numba.get_num_threads()
    try:
        set_num_threads(1)
        one = ex.simulate_explosion(*args, **kw)
        if numba.config.NUMBA_NUM_THREADS >= 2:
            set_num_threads(2)
        two = ex.simulate_explosion(*args, **kw)
        moments = ex.simulate_second_moment(*args, paths=64, steps=5, seed=11)
        set_num_threads(1)
        moments_one = ex.simulate_second_moment(*args, paths=64, steps=5, seed=11)
    finally:
        set_num_threads(old)
    np.testing.assert_array_equal(one.explosion_step, two.explosion_step)
    np.testing.assert_array_equal(moments.mean, moments_one.mean)
    assert 0 < one.counts.sum() < one.explosion_step.size  # the sweep straddles the threshold
    other = ex.simulate_explosion(*args, **{**kw, "seed": 12})
    assert not np.array_equal(one.explosion_step, other.explosion_step)


# --------------------------------------------------------------- from a Solution
def _solution(problem, controls, convex, points):
    names = problem.model.state_names
    grid = Grid(names, tuple(problem.model.domain[n][0] for n in names),
                tuple(problem.model.domain[n][1] for n in names), points)
    shape = (1, *grid.shape)
    return Solution(problem=problem.model.name, time_name="t", state_names=names, grid=grid,
                    times=np.array([0.0, 1.0]), stored=np.array([0, 1]), values=np.zeros((2, *grid.shape)),
                    controls={k: np.asarray(v, float).reshape(shape) for k, v in controls.items()},
                    convex={k: np.asarray(v, bool).reshape(shape) for k, v in convex.items()},
                    u_bounds={p.name: (0.0, 2.0) for p in problem.model.players})


def test_explosion_map_one_player_matches_thresholds():
    problem = ControlProblem.from_model(get_model("quadratic", **QUAD), eta=1.0, u_max=2.0)
    n = 41
    u = np.linspace(0.0, 2.0, n)  # the policy's multiplier grows along the axis
    convex = u < 1.5
    emap = ex.explosion_map(_solution(problem, {"u_x": u}, {"x": convex}, (n,)), problem)
    det, ms, asure = ex.critical_steps(1.0, 1.0)
    np.testing.assert_array_equal(emap.explodes["deterministic"], u > det)
    np.testing.assert_array_equal(emap.explodes["mean_square"], u > ms)
    np.testing.assert_array_equal(emap.explodes["almost_sure"], u > asure)
    np.testing.assert_array_equal(emap.bang_bang["x"], u == 2.0)
    np.testing.assert_allclose(emap.critical_eta["mean_square"], np.where(u > 0, ms / np.where(u > 0, u, 1), np.inf))
    w = np.ones(n)
    w[[0, -1]] = 0.5
    w /= w.sum()
    assert emap.fractions["almost_sure"] == pytest.approx(w[u > asure].sum())
    assert emap.fractions["mean_square_bang_bang"] == pytest.approx(w[-1])


def test_explosion_map_game_matches_pointwise_thresholds(rng):
    problem = ControlProblem.from_model(get_model("dirac-gan", c=1.0), eta=0.8, u_max=2.0)
    n = 9
    u_theta = rng.choice([0.0, 0.7, 2.0], size=(n, n))
    u_omega = rng.choice([0.3, 1.5, 2.0], size=(n, n))
    convex = {"theta": rng.random((n, n)) < 0.5, "omega": rng.random((n, n)) < 0.5}
    sol = _solution(problem, {"u_theta": u_theta, "u_omega": u_omega}, convex, (n, n))
    emap = ex.explosion_map(sol, problem)
    th, om = sol.grid.mesh()
    for i in range(n):
        for j in range(n):
            r = ex.explosion_thresholds(problem.model, {"theta": th[i, j], "omega": om[i, j]},
                                        multipliers={"theta": u_theta[i, j], "omega": u_omega[i, j]})
            for crit in ex.GAME_CRITERIA:
                assert emap.explodes[crit][i, j] == r.explodes(0.8, crit), (crit, i, j)
    bang = {"theta": (u_theta == 2.0) & ~convex["theta"], "omega": (u_omega == 2.0) & ~convex["omega"]}
    for p in bang:
        np.testing.assert_array_equal(emap.bang_bang[p], bang[p])
    both = emap.explodes["simultaneous"] & (bang["theta"] | bang["omega"])
    np.testing.assert_array_equal(emap.explodes_bang_bang["simultaneous"], both)
    assert 0 < emap.fractions["simultaneous"] < 1


def test_explosion_map_of_a_solved_policy():
    problem = ControlProblem.from_model(get_model("dirac-gan", c=1.0), eta=0.5, u_max=4.0, horizon=0.5)
    sol = solve(problem, Grid.for_problem(problem, points=21), progress=False)
    emap = ex.explosion_map(sol, problem)
    for p in ("theta", "omega"):
        u = sol.controls[f"u_{p}"][0]
        np.testing.assert_array_equal(emap.bang_bang[p], (u >= 4.0 - 4e-9) & ~sol.convex[p][0])
    th, om = sol.grid.mesh()
    for i, j in [(0, 0), (10, 10), (20, 3), (5, 17)]:
        r = ex.explosion_thresholds(problem.model, {"theta": th[i, j], "omega": om[i, j]},
                                    multipliers={p: sol.controls[f"u_{p}"][0][i, j] for p in ("theta", "omega")})
        assert emap.explodes["simultaneous"][i, j] == r.explodes(0.5, "simultaneous")


# ----------------------------------------------------------------------- CLI
def test_cli_json_game(capsys):
    assert cli.main(["explode", "dirac-gan", "--at", "theta=0,omega=0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["simultaneous"] == 0.0
    assert out["alternating"] == pytest.approx(4.0, rel=1e-9)
    np.testing.assert_allclose(sorted(out["eigenvalues"], key=lambda v: v[1]), [[0.0, -0.5], [0.0, 0.5]],
                               atol=1e-15)
    assert out["point"] == {"theta": 0.0, "omega": 0.0}
    assert "deterministic" not in out
    assert cli.main(["explode", "quadratic-game", "--param", "a=0,c=0", "--at", "theta=1", "--at", "omega=2",
                     "--u", "theta=2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["simultaneous"] == 0.0
    assert out["alternating"] == pytest.approx(2 / math.sqrt(2), rel=1e-8)  # 2 / lambda_max with u = (2, 1)


def test_cli_json_one_player_and_text(capsys):
    assert cli.main(["explode", "quadratic", "--param", "a=1,s=1", "--at", "x=0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    det, ms, asure = ex.critical_steps(1.0, 1.0)
    assert (out["deterministic"], out["mean_square"], out["almost_sure"]) == pytest.approx((det, ms, asure))
    assert out["eigenvalues"] == [[1.0, 0.0]]
    assert "simultaneous" not in out
    assert cli.main(["explode", "quadratic", "--param", "a=-1", "--at", "x=0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["deterministic"] == 0.0 and out["almost_sure"] == 0.0
    assert cli.main(["explode", "quadratic", "--param", "a=0,s=0", "--at", "x=0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["deterministic"] is None
    assert cli.main(["explode", "quadratic", "--at", "x=1"]) == 0
    assert "almost-sure" in capsys.readouterr().out


def test_cli_user_toml_model(tmp_path, capsys):
    path = tmp_path / "tilted.toml"
    path.write_text(
        '[model]\nname = "tilted"\nloss = "(a + s*xi)*(x - x0)**2/2 - sigma*zeta*x"\nnoises = ["xi", "zeta"]\n'
        '[[players]]\nname = "x"\nsense = "min"\nsymbols = ["x"]\n'
        '[parameters]\na = 2.0\ns = 1.5\nx0 = 0.5\nsigma = 0.3\n'
    )
    assert cli.main(["explode", str(path), "--param", "a=1.2", "--at", "x=-1", "--u", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    steps = ex.critical_steps(1.2, 1.5**2)
    assert [out[k] for k in ex.ONE_PLAYER_CRITERIA] == pytest.approx([h / 0.5 for h in steps], rel=1e-12)
    assert out["noise_variance"] == pytest.approx([2.25])
    assert out["gradient_covariance"][0][0] == pytest.approx(1.5**2 * 1.5**2 + 0.3**2)


@pytest.mark.parametrize("at, words", [("theta=0,omega=0,zeta=1", ["unknown", "zeta"]),
                                       ("theta=0", ["missing", "omega"]),
                                       ("theta=0,omega=abc", ["omega", "abc"]),
                                       ("theta=0,omega=nan", ["omega", "finite"]),
                                       ("theta", ["NAME=VALUE"])])
def test_cli_bad_point(at, words, capsys):
    assert cli.main(["explode", "dirac-gan", "--at", at]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err


def test_bad_input_is_refused():
    model = get_model("quadratic-game")
    with pytest.raises(InputError, match="unknown player 'gamma'"):
        ex.explosion_thresholds(model, {"theta": 0, "omega": 0}, multipliers={"gamma": 1.0})
    with pytest.raises(InputError, match="multiplier"):
        ex.explosion_thresholds(model, {"theta": 0, "omega": 0}, multipliers=-1.0)
    with pytest.raises(InputError, match="missing coordinate 'omega'"):
        ex.explosion_thresholds(model, {"theta": 0})
    with pytest.raises(InputError, match="noise 'uniform' unknown"):
        ex.simulate_explosion(model, [0, 0], [0.1], noise="uniform")
    with pytest.raises(InputError, match="etas"):
        ex.simulate_explosion(model, [0, 0], [0.1, -1.0])
    with pytest.raises(InputError, match="update 'sequential' unknown"):
        ex.simulate_explosion(model, [0, 0], [0.1], update="sequential")
