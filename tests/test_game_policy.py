"""Game-aware rates: the two-player alternating local model against the Isaacs solver, Monte Carlo of the
iteration, eigenvalues of the round map and brute-force minimisation; the rule on torch without host reads."""

import math

import numpy as np
import pytest
import sympy as sp

from stochctl.errors import InputError
from stochctl.policies import OneStepPolicy, controller_step
from stochctl.policies.estimators import Estimate
from stochctl.policies.game_policy import (GameRule, Measurement, generator_rate, joint_cost, rate_pair,
                                           stable_bound)


def _round_map(x_g, x_d, a_g, a_d, j_gd, j_dg):
    """The noiseless alternating round (D first, then G at the moved D) as an explicit 2x2 matrix on (z_G, z_D)."""
    J = np.array([[a_g, j_gd], [j_dg, a_d]])
    M_d = np.eye(2) - x_d * np.outer([0.0, 1.0], J[1])
    M_g = np.eye(2) - x_g * np.outer([1.0, 0.0], J[0])
    return M_g @ M_d


# --------------------------------------------------------------------------------------
# the model: generator's effective curvature, against Monte Carlo of the iteration
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_generator_gradient_between_its_moves_matches_monte_carlo(rng, sign):
    """G moves from (z_G, z_D), D responds at the moved G: G's next gradient has mean (1 - x_G a_eff) F_G
    - x_D J_GD F_D and variance x_G^2 a_eff^2 s_G^2 + x_D^2 J_GD^2 s_D^2, a_eff = a_G + x_D beta_G beta_D
    (the docstring's identity), checked by simulating the two moves with the full 2x2 field."""
    a_g, a_d, beta_g, beta_d, s_g, s_d = -0.4, 1.3, 0.9, 1.1, 0.7, 0.5
    j_gd, j_dg = sign * beta_d, -sign * beta_g
    z_g, z_d, x_g, x_d = 0.8, -0.3, 0.6, 0.45
    n = 400_000
    xi_g, xi_d = rng.standard_normal(n), rng.standard_normal(n)
    f_g, f_d = a_g * z_g + j_gd * z_d, j_dg * z_g + a_d * z_d
    zg1 = z_g - x_g * (f_g + s_g * xi_g)
    zd1 = z_d - x_d * (j_dg * zg1 + a_d * z_d + s_d * xi_d)
    f_next = a_g * zg1 + j_gd * zd1
    a_eff = a_g + x_d * beta_g * beta_d
    mean = (1 - x_g * a_eff) * f_g - x_d * j_gd * f_d
    var = (x_g * a_eff * s_g) ** 2 + (x_d * j_gd * s_d) ** 2
    se_mean = math.sqrt(var / n)
    assert abs(f_next.mean() - mean) < 4 * se_mean
    assert f_next.var() == pytest.approx(var, rel=4 * math.sqrt(2 / n))


def test_greedy_generator_rate_minimises_its_next_gradient_by_monte_carlo(rng):
    """At measured gradients (F_G, F_D), averaged over the unmeasured sign of the coupling, E F_G''^2 is
    minimised at x_G = r_G / a_eff, r_G = F_G^2 / (F_G^2 + s_G^2): the minimiser of a Monte Carlo estimate
    on a grid of x_G (common random numbers, the state z = J^-1 F of each sign) lies within a grid step."""
    a_g, a_d, beta_g, beta_d, s_g, s_d, x_d = -0.3, 1.0, 1.2, 1.0, 0.6, 0.4, 0.7
    f_g, f_d = 0.8, 0.5
    n = 100_000
    xi_g, xi_d = rng.standard_normal(n), rng.standard_normal(n)
    xs = np.linspace(0.0, 2.0, 201)
    cost = np.zeros_like(xs)
    for sign in (1.0, -1.0):
        J = np.array([[a_g, sign * beta_d], [-sign * beta_g, a_d]])
        z_g, z_d = np.linalg.solve(J, [f_g, f_d])
        for i, x_g in enumerate(xs):
            zg1 = z_g - x_g * (f_g + s_g * xi_g)
            zd1 = z_d - x_d * (J[1, 0] * zg1 + a_d * z_d + s_d * xi_d)
            cost[i] += np.mean((a_g * zg1 + J[0, 1] * zd1) ** 2)
    a_eff = a_g + x_d * beta_g * beta_d
    best = xs[np.argmin(cost)]
    assert abs(best - f_g**2 / (f_g**2 + s_g**2) / a_eff) <= 1.5 * (xs[1] - xs[0])
    assert best == pytest.approx(float(generator_rate(x_d, a_g, f_g**2 / (f_g**2 + s_g**2), a_d, beta_g * beta_d,
                                                      10.0)[0]), abs=0.015)


# --------------------------------------------------------------------------------------
# against the package's discrete Isaacs solver
# --------------------------------------------------------------------------------------

def test_isaacs_alternating_solver_gives_the_generator_the_schur_complement_rule():
    """solve_discrete_game, alternating (G first, D maximising second), one step, terminal cost g of the
    quadratic game with a concave generator (a = -0.5, b = c = 1) and an almost noiseless D: D lands on its
    best response, so G's optimum is the one-player rule with the Schur-complement curvature
    a_S = a + b^2 / c = 0.5: x_G = z_G F_G / (F_G^2 + s_G^2) (x_G = eta u_G), 0 where that is negative; on
    D's best-response line omega = b theta / c it is :func:`generator_rate` at x_D = 1 / c."""
    from stochctl.models import get_model
    from stochctl.solvers import Grid
    from stochctl.solvers.bellman_game import solve_discrete_game
    from stochctl.symbolic.problem import ControlProblem

    eta, a, b, c, s_g, s_d, u_max = 0.5, -0.5, 1.0, 1.0, 0.5, 1e-3, 4.0
    model = get_model("quadratic-game", a=a, b=b, c=c, sigma=s_g)
    problem = ControlProblem.from_model(model, eta=eta, u_max=u_max, covariance=sp.Matrix([[s_g**2, 0], [0, s_d**2]]),
                                        per_player={"omega": {"u_max": 3.0}})
    grid = Grid.from_domain({"theta": (-3.0, 3.0), "omega": (-3.0, 3.0)}, 41)
    sol = solve_discrete_game(problem, grid, steps=1, moves="alternating", u_points=41)
    th, om = grid.axes
    u_sol = sol.controls["u_theta"][0]
    checked = 0
    for i in range(10, 31, 2):
        for j in range(10, 31, 2):
            f_g = a * th[i] + b * om[j]
            x = th[i] * f_g / (f_g**2 + s_g**2)
            assert u_sol[i, j] == pytest.approx(min(max(x / eta, 0.0), u_max), abs=2e-3), (th[i], om[j])
            checked += 1
        j = int(np.argmin(np.abs(om - b * th[i] / c)))
        if abs(om[j] - b * th[i] / c) < 1e-12 and th[i] != 0:
            f_g = a * th[i] + b * om[j]
            x_g, a_eff = generator_rate(1.0 / c, a, f_g**2 / (f_g**2 + s_g**2), c, b * b, eta * u_max, margin=1.0)
            assert a_eff == pytest.approx(a + b * b / c)
            assert u_sol[i, j] == pytest.approx(x_g / eta, abs=2e-3)
    assert checked == 121


# --------------------------------------------------------------------------------------
# stability of the round map
# --------------------------------------------------------------------------------------

def test_stability_bound_is_where_the_round_map_leaves_the_unit_disc(rng):
    """stable_bound against the eigenvalues of the explicit round map: spectral radius <= 1 just below the
    bound, > 1 just above it; and > 1 for every x_G > 0 where det J < 0."""
    checked = 0
    for _ in range(300):
        a_g, a_d = rng.uniform(-2, 2), rng.uniform(0.1, 3)
        beta_g, beta_d = rng.uniform(0, 2, size=2)
        x_d = rng.uniform(0.02, 1.0) / a_d
        sign = rng.choice([-1.0, 1.0])
        args = (x_d, a_d, sign * beta_d, -sign * beta_g)
        rho = lambda x_g: max(abs(np.linalg.eigvals(_round_map(x_g, x_d, a_g, a_d, sign * beta_d,  # noqa: E731
                                                                 -sign * beta_g))))
        det_j = a_g * a_d + beta_g * beta_d
        if det_j < -1e-6:
            assert all(rho(x) > 1 for x in (1e-3, 0.1, 1.0, 10.0)), args
            continue
        if det_j < 1e-6:
            continue
        bound = float(stable_bound(x_d, a_g, a_d, beta_g * beta_d))
        if not math.isfinite(bound):
            assert all(rho(x) <= 1 + 1e-9 for x in (0.1, 1.0, 10.0, 1e3)), args
            continue
        assert rho(bound * 0.999) <= 1 + 1e-9 and rho(bound * 1.001) > 1, (args, bound)
        checked += 1
    assert checked > 100


def test_deadbeat_pair_of_the_noiseless_round_is_the_schur_rule():
    """With r_G = 1 and D's landing step x_D = 1 / a_D the generator's rate is 1 / a_S (the Schur complement
    a_S = a_G + beta_G beta_D / a_D): the round map is nilpotent (both eigenvalues 0), the pair solves the
    noiseless local game in one round."""
    a_g, a_d, beta_g, beta_d = -0.5, 2.0, 1.5, 1.2
    a_s = a_g + beta_g * beta_d / a_d
    xg, a_eff = generator_rate(1 / a_d, a_g, 1.0, a_d, beta_g * beta_d, 100.0, margin=1.0)
    assert (float(xg), float(a_eff)) == (pytest.approx(1 / a_s), pytest.approx(a_s))
    for sign in (1.0, -1.0):
        M = _round_map(float(xg), 1 / a_d, a_g, a_d, sign * beta_d, -sign * beta_g)
        assert np.abs(np.linalg.eigvals(M)).max() < 1e-6


# --------------------------------------------------------------------------------------
# the rules
# --------------------------------------------------------------------------------------

def _draw(rng, n):
    a_g, a_d = rng.uniform(-2, 3, n), rng.uniform(0.05, 3, n)
    m_g, m_d = np.abs(a_g) + rng.uniform(0, 3, n), a_d + rng.uniform(0, 3, n)
    return a_g, m_g, rng.uniform(0, 1, n), a_d, m_d, rng.uniform(0, 1, n)


def test_without_coupling_every_rule_is_the_per_player_one_step_rule(rng):
    """m = |a| (no coupling): "nash" and "joint" give each player OneStepPolicy's field-capped rate
    (computed by the controller's own code path), within the joint grid's resolution."""
    for _ in range(50):
        a_g, a_d = rng.uniform(0.05, 3, 2)
        r_g, r_d = rng.uniform(0.01, 0.99, 2)
        eta = 10 ** rng.uniform(-2, 1)
        ref = []
        for a, r in ((a_g, r_g), (a_d, r_d)):
            est = Estimate(a, 1.0 - r, math.sqrt(r), 10, True, field=a)
            ref.append(eta * controller_step(OneStepPolicy(u_max=1.0), 5, est, eta=eta).multiplier)
        for rule in ("nash", "joint"):
            x_g, x_d = rate_pair(a_g, a_g, r_g, a_d, a_d, r_d, eta_g=eta, eta_d=eta, rule=rule, margin=1.0)
            tol = 0 if rule == "nash" else min(eta, 1 / a_d) / 256
            assert float(x_d) == pytest.approx(ref[1], abs=tol + 1e-12)
            assert float(x_g) == pytest.approx(ref[0], rel=1e-9) or rule == "joint" and abs(x_g - ref[0]) < 0.02 * ref[0]


def test_joint_rule_attains_the_minimum_of_its_cost(rng):
    """The grid minimiser's cost is within the grid's resolution of a fine brute-force minimum over x_D."""
    args = _draw(rng, 200)
    eta = 3.0
    x_g, x_d = rate_pair(*args, eta_g=eta, eta_d=eta, rule="joint")
    a_g, m_g, r_g, a_d, m_d, r_d = args
    b2 = np.sqrt(m_g**2 - a_g**2) * np.sqrt(m_d**2 - a_d**2)
    cap_g, cap_d = np.minimum(eta, 1 / m_g), np.minimum(eta, 1 / m_d)
    fine = np.linspace(0, 1, 256 * 80 + 1)[:, None] * cap_d  # holds the rule's grid
    xg_fine, aeff_fine = generator_rate(fine, a_g, r_g, a_d, b2, cap_g)
    best = joint_cost(fine, xg_fine, aeff_fine, a_d, r_g, r_d).min(axis=0)
    xg_at, aeff_at = generator_rate(x_d, a_g, r_g, a_d, b2, cap_g)
    got = joint_cost(x_d, xg_at, aeff_at, a_d, r_g, r_d)
    assert np.all(got >= best - 1e-12)
    assert np.all(got - best <= 0.01 * np.maximum(best, 1e-3)), np.max(got - best)
    assert np.allclose(x_g, xg_at)


def test_rules_respect_caps_and_the_min_rule_is_the_smaller_one_step_rate(rng):
    args = _draw(rng, 500)
    a_g, m_g, r_g, a_d, m_d, r_d = args
    eta_g, eta_d = 0.5, 2.0
    one = [np.minimum(np.where(a > 0, r / np.where(a > 0, a, 1), np.inf), np.minimum(eta, 1 / m))
           for a, m, r, eta in ((a_g, m_g, r_g, eta_g), (a_d, m_d, r_d, eta_d))]
    x_g, x_d = rate_pair(*args, eta_g=eta_g, eta_d=eta_d, rule="min")
    assert np.array_equal(x_g, np.minimum(*one)) and np.array_equal(x_d, x_g)
    for rule in ("nash", "joint", "tied"):
        x_g, x_d = rate_pair(*args, eta_g=eta_g, eta_d=eta_d, rule=rule)
        if rule == "tied":  # the joint minimisation with x_G <= x_D on its grid
            assert np.all(x_g <= x_d * (1 + 1e-12))
            tied_cost = joint_cost(x_d, x_g, a_g + x_d * np.sqrt(m_g**2 - a_g**2) * np.sqrt(m_d**2 - a_d**2),
                                   a_d, r_g, r_d)
            xj_g, xj_d = rate_pair(*args, eta_g=eta_g, eta_d=eta_d, rule="joint")
            free_cost = joint_cost(xj_d, xj_g, a_g + xj_d * np.sqrt(m_g**2 - a_g**2) * np.sqrt(m_d**2 - a_d**2),
                                   a_d, r_g, r_d)
            assert np.all(tied_cost >= free_cost - 1e-12)  # a constraint never lowers the minimum
        assert np.all((x_g >= 0) & (x_g <= np.minimum(eta_g, 1 / m_g) * (1 + 1e-12)))
        assert np.all((x_d >= 0) & (x_d <= np.minimum(eta_d, 1 / m_d) * (1 + 1e-12)))
        tied = a_g * a_d + np.sqrt(m_g**2 - a_g**2) * np.sqrt(m_d**2 - a_d**2) <= 0
        assert np.all(x_g[tied] <= x_d[tied] * (1 + 1e-12))


def test_regimes_strong_coupling_slows_the_generator_and_a_noisy_discriminator_holds_it_back():
    """Strong coupling (beta = 7 >> a_D = 1, a_G = 0.1): D is held at its field cap 1 / m_D ~ 1 / beta, G's
    effective curvature a_G + x_D beta^2 ~ beta, so x_G ~ r_G / beta: x_G / x_D ~ r_G (the per-player rule
    gives both ~ 1 / beta, ratio 1). Concave generator with a noise-dominated discriminator: "nash" bounds
    x_G by half the stability bound x_D a_D / (|a_G| (1 - x_D a_D)), a fixed multiple of x_D."""
    beta = 7.0
    x_g, x_d = rate_pair(0.1, math.hypot(0.1, beta), 0.5, 1.0, math.hypot(1.0, beta), 0.5, eta_g=100, eta_d=100,
                         rule="nash")
    x_d_expected = 1 / math.hypot(1.0, beta)
    assert float(x_d) == pytest.approx(x_d_expected)
    assert float(x_g) == pytest.approx(0.5 / (0.1 + x_d_expected * beta * beta))
    assert float(x_g / x_d) == pytest.approx(0.5, rel=0.03)
    a_g, a_d, r_d = -0.5, 1.0, 0.04
    x_g, x_d = rate_pair(a_g, math.hypot(a_g, 1.0), 0.9, a_d, math.hypot(a_d, 1.0), r_d, eta_g=100, eta_d=100,
                         rule="nash")
    q = float(x_d) * a_d
    assert float(x_d) == pytest.approx(r_d / a_d)
    assert float(x_g) == pytest.approx(0.5 * q / (abs(a_g) * (1 - q)))


def test_bad_options_are_refused():
    with pytest.raises(InputError, match="rule must be one of joint, nash, min, tied; got 'max'"):
        rate_pair(1.0, 1.0, 0.5, 1.0, 1.0, 0.5, eta_g=1.0, eta_d=1.0, rule="max")
    with pytest.raises(InputError, match="u_max must be a positive finite number; got 0"):
        GameRule(u_max=0)
    with pytest.raises(InputError, match=r"margin must be a number in \(0, 1\]; got 2"):
        GameRule(margin=2)
    with pytest.raises(InputError, match="role must be one of generator, discriminator; got 'critic'"):
        GameRule().multiplier("critic", Measurement(1.0, 1.0, 0.5, 0.1), 1.0)


def test_game_rule_waits_for_both_players_then_returns_the_pair():
    rule = GameRule("nash")
    d = Measurement(2.0, 2.5, 0.6, 0.1)
    g = Measurement(-0.2, 1.0, 0.5, 0.1)
    assert rule.multiplier("discriminator", d, 0.7) == 0.7  # G not measured yet: the per-player multiplier
    u_g = rule.multiplier("generator", g, 0.9)
    x_g, x_d = rate_pair(g.a, g.m, g.r, d.a, d.m, d.r, eta_g=0.1, eta_d=0.1, rule="nash")
    assert float(u_g) == pytest.approx(min(float(x_g) / 0.1, 1.0))
    assert float(rule.multiplier("discriminator", d, 0.7)) == pytest.approx(min(float(x_d) / 0.1, 1.0))


# --------------------------------------------------------------------------------------
# torch: the same numbers, and no host read in the scheduler's step
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("rule", ["joint", "nash", "min", "tied"])
def test_torch_matches_numpy(rng, rule):
    torch = pytest.importorskip("torch")
    args = _draw(rng, 64)
    ref = rate_pair(*args, eta_g=0.3, eta_d=0.7, rule=rule)
    got = rate_pair(*(torch.tensor(a) for a in args), eta_g=0.3, eta_d=0.7, rule=rule)
    for r, t in zip(ref, got):
        assert np.allclose(t.numpy(), r, rtol=1e-12, atol=1e-15)


def test_controlled_gan_with_the_game_rule_makes_no_host_read(monkeypatch):
    torch = pytest.importorskip("torch")
    from stochctl.trainers.torch_adapter import ControlledLR

    count = {"active": False, "n": 0}
    for name in ("item", "__float__", "__bool__", "__int__", "__index__", "tolist", "numpy", "cpu"):
        real = getattr(torch.Tensor, name)

        def counted(self, *a, _real=real, **kw):
            if count["active"]:
                count["n"] += 1
            return _real(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, counted)
    torch.manual_seed(0)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    G = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    D = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=2.0), torch.optim.SGD(D.parameters(), lr=2.0)
    rule = GameRule("joint")
    sched_g = ControlledLR(opt_g, OneStepPolicy(u_max=1.0), curvature="field", other_params=D.parameters(),
                           game=rule, role="generator")
    sched_d = ControlledLR(opt_d, OneStepPolicy(u_max=1.0), curvature="field", other_params=G.parameters(),
                           game=rule, role="discriminator")
    B = 64
    ones, zeros = torch.ones(B, 1), torch.zeros(B, 1)
    for _ in range(15):
        x, z = 3.0 + 0.5 * torch.randn(B, 1), torch.randn(B, 1)
        d_loss = lambda: bce(D(x), ones) + bce(D(G(z)), zeros)  # noqa: E731
        g_loss = lambda: bce(D(G(z)), ones)  # noqa: E731
        opt_d.zero_grad()
        d_loss().backward()
        count["active"] = True
        sched_d.step(closure=d_loss, other_closure=g_loss)
        count["active"] = False
        opt_d.step()
        opt_g.zero_grad()
        g_loss().backward()
        count["active"] = True
        sched_g.step(closure=g_loss, other_closure=d_loss)
        count["active"] = False
        opt_g.step()
    assert count["n"] == 0
    # the generator's last rate is the rule's, from its last measurement and the discriminator's latest
    g, d = rule.latest["generator"], rule.latest["discriminator"]
    x_g, _ = rate_pair(*(float(v) for v in (g.a, g.m, g.r, d.a, d.m, d.r)), eta_g=2.0, eta_d=2.0, rule="joint",
                       c_g=float(g.c), c_d=float(d.c))
    assert math.isfinite(float(g.c)) and math.isfinite(float(d.c))
    assert float(opt_g.param_groups[0]["lr"]) == pytest.approx(min(float(x_g), 2.0), rel=1e-6)
    assert sum(sched_g.counts.values()) == 15 and sched_g.divergences == 0


def test_controlled_lr_refuses_a_game_without_what_it_needs():
    torch = pytest.importorskip("torch")
    from stochctl.trainers.torch_adapter import ControlledLR

    net = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    pol = OneStepPolicy(u_max=1.0)
    with pytest.raises(InputError, match="game= needs role= one of generator, discriminator; got None"):
        ControlledLR(opt, pol, curvature="own", game=GameRule())
    with pytest.raises(InputError, match="game= needs a measured curvature"):
        ControlledLR(opt, pol, game=GameRule(), role="generator")
    with pytest.raises(InputError, match="role= is for a game rule"):
        ControlledLR(opt, pol, curvature="own", role="generator")
    with pytest.raises(InputError, match="game must be a GameRule"):
        ControlledLR(opt, pol, curvature="own", game="joint", role="generator")


def test_measured_coupling_is_the_off_diagonal_entry_in_the_step_directions(rng):
    """On a quadratic game in R^3 x R^2 (G's loss a theta^T A theta / 2 + theta^T B omega, D's loss
    omega^T C omega / 2 - theta^T B omega) the fd measurement's ``cross`` of G's step is
    e_D . (-B^T e_G) with e_G = grad_G / |grad_G|, e_D = grad_D / |grad_D|, and the rate pair uses
    |c_G c_D| as beta_G beta_D."""
    torch = pytest.importorskip("torch")
    from stochctl.trainers.curvature import _measure

    A = torch.tensor(np.diag([0.5, -0.3, 1.0]))
    B = torch.tensor(rng.normal(size=(3, 2)))
    C = torch.tensor(np.diag([2.0, 1.0]))
    th = torch.tensor(rng.normal(size=3), requires_grad=True)
    om = torch.tensor(rng.normal(size=2), requires_grad=True)
    lg = lambda: th @ A @ th / 2 + th @ B @ om  # noqa: E731
    ld = lambda: om @ C @ om / 2 - th @ B @ om  # noqa: E731
    g_g = torch.autograd.grad(lg(), [th])[0]
    g_d = torch.autograd.grad(ld(), [om])[0]
    parts = {}
    own, fld, ok = _measure([lg, ld], [[th], [om]], 0, [g_g], "fd", None, field=True, known=[[g_g], None],
                            parts=parts)
    e_g, e_d = g_g / g_g.norm(), g_d / g_d.norm()
    assert float(parts["cross"]) == pytest.approx(float(e_d @ (-B.T @ e_g)), rel=1e-5)
    assert float(own) == pytest.approx(float(e_g @ A @ e_g), rel=1e-5)
    assert float(fld) == pytest.approx(float(torch.cat([A @ e_g, -B.T @ e_g]).norm()), rel=1e-5)
    # the rule: with both couplings given, beta_G beta_D = |c_G c_D| replaces the field's bound
    x_with = rate_pair(0.5, 3.0, 0.5, 2.0, 3.0, 0.5, eta_g=10.0, eta_d=10.0, rule="nash", c_g=0.3, c_d=-0.4)
    x_g, a_eff = generator_rate(x_with[1], 0.5, 0.5, 2.0, 0.12, 1 / 3.0)
    assert float(x_with[0]) == pytest.approx(float(x_g)) and float(a_eff) == pytest.approx(0.5 + float(x_with[1]) * 0.12)
