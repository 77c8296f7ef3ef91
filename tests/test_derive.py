"""Symbolic derivation: Hamiltonian, optimal controls, Isaacs verdict, rendering and CLI."""

import json

import numpy as np
import pytest
import sympy as sp

from stochctl.cli import main
from stochctl.models import Model, Parameter, Player, get_model
from stochctl.symbolic.derive import derive, lower_upper
from stochctl.symbolic.optimal import optimal_u_max_player, optimal_u_min_player
from stochctl.symbolic.problem import BatchControl, ControlProblem


def _shared_noise_game() -> Model:
    """Quadratic game whose two gradients share the noise zeta: Sigma_theta_omega = sigma^2."""
    th, om, a, b, c, sig, z = sp.symbols("theta omega a b c sigma zeta", real=True)
    return Model(
        name="shared-noise-game",
        description="quadratic game with one noise in both gradients",
        loss=a * th**2 / 2 + b * th * om - c * om**2 / 2 - sig * z * (th + om),
        players=(Player("theta", "min", (th,)), Player("omega", "max", (om,))),
        noises=(z,),
        parameters=(Parameter(a, 1.0), Parameter(b, 0.5), Parameter(c, 1.0), Parameter(sig, 0.5, "nonnegative")),
        domain={"theta": (-1.0, 1.0), "omega": (-1.0, 1.0)},
    )


def _brute_lower_upper(coef, u1, u2, n=801):
    A1, B1, A2, B2, C = coef
    x = np.linspace(*u1, n)[:, None]
    y = np.linspace(*u2, n)[None, :]
    H = -x * A1 + 0.5 * x * x * B1 + y * A2 + 0.5 * y * y * B2 + C * x * y
    return H.min(axis=0).max(), H.max(axis=1).min()


def _state_and_derivative_values(d, rng):
    vals = {s: rng.uniform(*d.model.domain[s.name]) for s in d.state_symbols}
    vals.update({s: rng.normal() for s in d.value_gradient})
    vals.update({s: rng.normal() for s in set(d.value_hessian)})
    return vals


# ------------------------------------------------------------------ Hamiltonian
def test_quadratic_hamiltonian_matches_hand_derivation():
    model = get_model("quadratic")
    d = derive(ControlProblem.from_model(model))
    x, a, s, sigma = (sp.Symbol(n, real=True) for n in ("x", "a", "s", "sigma"))
    Vx, Vxx = sp.Symbol("V_x", real=True), sp.Symbol("V_x_x", real=True)
    u, m, eta = sp.Symbol("u_x", nonnegative=True), sp.Symbol("m_x", positive=True), sp.Symbol("eta", positive=True)
    # dX = -u a x dt + u sqrt(eta m (s^2 x^2 + sigma^2)) dW, so
    # L^u V = -u a x V_x + u^2 eta m (s^2 x^2 + sigma^2) V_xx / 2
    hand = -u * a * x * Vx + u**2 * eta * m * (s**2 * x**2 + sigma**2) * Vxx / 2
    assert sp.simplify(d.hamiltonian - hand) == 0
    assert sp.simplify(d.generator - hand) == 0
    p = d.players[0]
    assert sp.simplify(p.A - a * x * Vx) == 0
    assert sp.simplify(p.B - eta * m * (s**2 * x**2 + sigma**2) * Vxx) == 0
    assert sp.expand(d.expand(d.hamiltonian_ab) - d.hamiltonian) == 0
    assert d.values["eta"] == 0.1 and d.values["m_x"] == 1.0
    assert d.isaacs.applicable is False and d.isaacs_holds is None


def test_drift_and_diffusion_agree_with_problem(rng):
    problem = ControlProblem.from_model(_shared_noise_game(), batch_size=4, noise="shared")
    d = derive(problem)
    assert d.values["m_theta"] == 0.25
    free = set().union(*(e.free_symbols for e in list(problem.diffusion) + list(problem.drift)))
    for _ in range(5):
        point = {s: sp.Float(rng.uniform(0.1, 2.0)) for s in free}
        for mine, theirs in ((d.drift, problem.drift), (d.diffusion, problem.diffusion)):
            a = np.array(mine.xreplace(d.substitutions).xreplace(point), dtype=float)
            b = np.array(theirs.xreplace(d.substitutions).xreplace(point), dtype=float)
            np.testing.assert_allclose(a, b, rtol=1e-13)
    assert d.diffusion[0, 1] != 0


@pytest.mark.parametrize("name", ["quadratic", "quadratic-game", "dirac-gan"])
def test_reduced_hamiltonian_is_the_optimum_over_controls(rng, name):
    """H after substituting u* equals a brute-force min/max of H^u over a u-grid."""
    d = derive(ControlProblem.from_model(get_model(name), u_min=0.1, u_max=1.5))
    H_u = d.numeric(d.hamiltonian)
    H_red = d.numeric(d.reduced_hamiltonian)
    us = [p.u for p in d.players]
    grid = np.linspace(0.1, 1.5, 1401)
    for _ in range(10):
        vals = _state_and_derivative_values(d, rng)
        red = float(H_red.xreplace(vals))
        h = sp.lambdify(us, H_u.xreplace(vals), "numpy")
        if len(us) == 1:
            brute = np.min(h(grid))
            assert red <= brute + 1e-12  # the formula is never beaten by a grid point
        else:  # max over omega of min over theta (on the grid; no one-sided bound)
            H = np.asarray(h(grid[:, None], grid[None, :]), dtype=float)
            brute = H.min(axis=0).max()
        assert abs(brute - red) < 1e-5 * (1 + abs(red))


def test_optimal_control_piecewise_matches_rule(rng):
    d = derive(ControlProblem.from_model(get_model("dirac-gan"), u_min=0.2, u_max=2.0))
    A = rng.normal(size=200)
    B = rng.normal(size=200)
    for p, rule in zip(d.players, (optimal_u_min_player, optimal_u_max_player)):
        f = sp.lambdify((p.A_symbol, p.B_symbol), p.optimal_control, "numpy")
        with np.errstate(all="ignore"):
            got = np.asarray(f(A, B), dtype=float)
        np.testing.assert_array_equal(got, rule(A, B, 0.2, 2.0))
        assert p.convex_condition == (p.sign * p.B_symbol > 0)


def test_batch_control_derivation(rng):
    d = derive(ControlProblem.from_model(get_model("quadratic"), batch=BatchControl(1, 64, 0.01)))
    p = d.players[0]
    assert p.m == sp.Symbol("m_x", positive=True) and p.kappa is not None
    assert p.optimal_batch is not None and p.batch_given_u is not None and len(p.kkt) >= 5
    # H^u contains the compute cost kappa / m and B = m Bt
    assert sp.expand(p.B - p.m * p.Bt) == 0
    assert d.hamiltonian.has(p.kappa)
    # reduced value equals a brute-force minimum over (u, m) at random points
    f = sp.lambdify((p.A_symbol, p.Bt_symbol, p.kappa), p.value, "numpy")
    for _ in range(20):
        A, Bt = rng.normal(0, 1, 2)
        with np.errstate(all="ignore"):
            val = float(f(A, Bt, 0.01))
        uu = np.linspace(0, 1, 401)[:, None]
        mm = np.geomspace(1 / 64, 1, 401)[None, :]
        brute = np.min(-uu * A + 0.5 * uu**2 * mm * Bt + 0.01 / mm)
        assert val <= brute + 1e-12 and brute - val < 1e-3


# ------------------------------------------------------------------ Isaacs
@pytest.mark.parametrize("name", ["quadratic-game", "dirac-gan"])
@pytest.mark.parametrize("noise", ["independent", "shared"])
def test_isaacs_holds_without_correlated_noise(name, noise):
    d = derive(ControlProblem.from_model(get_model(name), noise=noise))
    assert d.separable and d.isaacs.applicable and d.isaacs_holds is True
    assert d.isaacs.counterexample is None
    assert d.lower_hamiltonian == d.upper_hamiltonian == d.reduced_hamiltonian


def test_isaacs_fails_with_shared_noise():
    model = _shared_noise_game()
    assert derive(ControlProblem.from_model(model)).isaacs_holds is True  # independent minibatches
    d = derive(ControlProblem.from_model(model, noise="shared"))
    assert not d.separable and d.isaacs_holds is False and d.reduced_hamiltonian is None
    assert d.cross_symbol is not None and d.hamiltonian.has(sp.Symbol("V_theta_omega", real=True))
    ce = d.isaacs.counterexample
    p1, p2 = d.players
    coef = tuple(ce["coefficients"].values())
    assert ce["lower"] < ce["upper"] - 1e-6
    # the reported derivative values at the reported state realise the coefficients
    vals = {s: ce["state"][s.name] for s in d.state_symbols}
    vals.update({sp.Symbol(k, real=True): v for k, v in ce["derivatives"].items()})
    realised = [float(d.numeric(e).xreplace(vals)) for e in (p1.A, p1.B, p2.A, p2.B, d.cross)]
    np.testing.assert_allclose(realised, coef, atol=1e-12)
    # lower and upper Hamiltonians by brute force over a u-grid differ as reported
    lo, up = _brute_lower_upper(coef, (p1.u_min, p1.u_max), (p2.u_min, p2.u_max))
    assert lo == pytest.approx(ce["lower"], abs=1e-5)
    assert up == pytest.approx(ce["upper"], abs=1e-5)
    assert lo < up - 1e-3
    # the unevaluated nested extrema hold the Hamiltonian in A, B, C
    assert str(d.isaacs.upper).startswith("min_{u_theta in [0, 1]}(max_{u_omega in [0, 1]}(")
    assert d.isaacs.lower.expr.expr == d.hamiltonian_ab


def test_lower_upper_exact_against_brute_force(rng):
    coef = rng.normal(0, 1, (5, 60))
    lower, upper = lower_upper(*coef, (0.0, 1.0), (0.2, 1.3))
    assert np.all(lower <= upper + 1e-12)
    n = 1501
    for k in range(coef.shape[1]):
        lo, up = _brute_lower_upper(coef[:, k], (0.0, 1.0), (0.2, 1.3), n=n)
        tol = 0.5 * np.abs(coef[:, k]).sum() * 1.3 / (n - 1)  # half the Lipschitz bound times the grid step
        assert lower[k] == pytest.approx(lo, abs=tol)
        assert upper[k] == pytest.approx(up, abs=tol)
    # a bilinear-plus-convex example with a known gap: H = (u1 - u2)^2 / 2 on [0, 1]^2
    lo, up = lower_upper(0.0, 1.0, 0.0, 1.0, -1.0, (0.0, 1.0), (0.0, 1.0))
    assert lo == pytest.approx(0.0, abs=1e-15) and up == pytest.approx(0.125, abs=1e-15)


def test_isaacs_with_shared_noise_and_batch_control():
    problem = ControlProblem.from_model(_shared_noise_game(), noise="shared", batch=BatchControl(1, 8, 0.01))
    d = derive(problem)
    ce = d.isaacs.counterexample
    assert d.isaacs_holds is False and ce["upper"] - ce["lower"] > 1e-3
    A1, Bt1, A2, Bt2, Ct = ce["coefficients"].values()
    u = np.linspace(0, 1, 61)
    m = np.linspace(1 / 8, 1, 61)
    U1, M1 = (g.ravel() for g in np.meshgrid(u, m, indexing="ij"))
    h1 = -U1 * A1 + 0.5 * U1**2 * M1 * Bt1 + 0.01 / M1
    h2 = U1 * A2 + 0.5 * U1**2 * M1 * Bt2 - 0.01 / M1
    H = h1[:, None] + h2[None, :] + Ct * np.sqrt(M1[:, None] * M1[None, :]) * U1[:, None] * U1[None, :]
    assert H.max(axis=1).min() - H.min(axis=0).max() > 1e-3


# ------------------------------------------------------------------ rendering
def test_rendering_contains_key_formulas():
    d = derive(ControlProblem.from_model(get_model("quadratic")))
    data = json.loads(d.to_json())
    assert data["players"]["x"]["A"] == "V_x*g_x"
    assert data["definitions"] == {"g_x": "a*x", "Sigma_x_x": "s**2*x**2 + sigma**2"}
    assert data["isaacs"]["applicable"] is False and data["isaacs"]["holds"] is None
    assert data["parameters"] == {"a": 1.0, "s": 0.5, "sigma": 1.0}
    assert "Piecewise" in data["players"]["x"]["optimal_u"]
    md = d.to_markdown()
    assert r"\mathrm{clip}\left(\frac{A_{x}}{B_{x}}, 0, 1\right)" in md
    assert r"g_{x} = \partial g / \partial x = a x" in md
    tex = d.to_latex()
    assert r"\section*{Derivation: quadratic}" in tex and r"\begin{cases}" in tex
    game = derive(ControlProblem.from_model(_shared_noise_game(), noise="shared"))
    gdata = json.loads(game.to_json())
    assert gdata["isaacs"]["holds"] is False
    assert gdata["isaacs"]["counterexample"]["upper"] > gdata["isaacs"]["counterexample"]["lower"]
    assert "Fails" in game.to_markdown() and "H^-" in game.to_markdown()


def test_gaussian_gan_renders_objective_as_expectation():
    d = derive(ControlProblem.from_model(get_model("gaussian-gan")))
    md = d.to_markdown()
    q = d.model.quadrature_order
    assert r"g = \mathbb{E}_{\xi, z}[l]" in md and f"quadrature of order {q} per noise" in md
    assert len(md) < 20000  # no Gauss-Hermite sum dumped
    data = d.to_dict()
    assert data["objective"] == "E_{xi,z}[l]" and data["quadrature_order"] == q
    assert data["definitions"]["g_theta"].startswith("E_{xi,z}[")


# ------------------------------------------------------------------ CLI
def test_cli_json(capsys):
    assert main(["derive", "quadratic", "--format", "json", "--param", "a=2", "--u-max", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "quadratic" and data["parameters"]["a"] == 2.0
    assert data["players"]["x"]["u_max"] == 2.0


def test_cli_game_markdown_with_options(capsys):
    assert main(["derive", "dirac-gan", "--noise", "shared", "--batch-control", "1:8:0.1", "--eta", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "# Derivation: dirac-gan" in out and "KKT" in out and r"\eta = 0.05" in out


@pytest.mark.parametrize("argv", [
    ["derive", "no-such-model"],
    ["derive", "quadratic", "--param", "zz=1"],
    ["derive", "quadratic", "--u-min", "2", "--u-max", "1"],
    ["derive", "quadratic", "--eta", "-0.1"],
    ["derive", "quadratic", "--eta", "abc"],
    ["derive", "quadratic", "--format", "yaml"],
    ["derive", "quadratic", "--noise", "loud"],
    ["derive", "quadratic", "--batch-control", "8:1:0.1"],
    ["derive"],
])
def test_cli_bad_input(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "error" in err
