"""Models: derived objective, gradient, Hessian and gradient covariance."""

import numpy as np
import pytest
import sympy as sp

from stochctl.errors import InputError
from stochctl.models import MODEL_NAMES, expectation, get_model, load_model, load_model_toml, parse_params
from stochctl.models.quadrature import hermite_rule
from stochctl.symbolic.problem import BatchControl, ControlProblem


def test_quadratic_closed_forms():
    m = get_model("quadratic", a=2.0, s=0.3, sigma=0.7)
    x = m.state_symbols[0]
    a, s, sigma = m.parameter_symbols
    assert sp.simplify(m.objective - a * x**2 / 2) == 0
    assert sp.simplify(m.gradient[0] - a * x) == 0
    assert sp.simplify(m.hessian[0, 0] - a) == 0
    assert sp.simplify(m.gradient_covariance[0, 0] - (s**2 * x**2 + sigma**2)) == 0


@pytest.mark.parametrize("c", [0.3, 1.0, 2.0])
def test_quadrature_against_closed_forms(c):
    xi = sp.Symbol("xi")
    for f, exact in [(sp.exp(c * xi), np.exp(c**2 / 2)), (sp.cos(c * xi), np.exp(-(c**2) / 2))]:
        errors = [abs(float(expectation(f, [xi], order)) - exact) for order in (4, 8, 16, 32)]
        assert errors[-1] < 1e-13 * max(1.0, exact)
        assert errors[1] <= errors[0] + 1e-15  # the error falls with the order


def test_quadrature_exact_for_polynomials_of_degree_below_2n():
    nodes, weights = hermite_rule(5)
    for k in range(10):
        exact = 0.0 if k % 2 else float(sp.factorial2(k - 1)) if k else 1.0
        assert np.isclose(np.sum(weights * nodes**k), exact, rtol=1e-12, atol=1e-12)


def test_gaussian_gan_quadrature_matches_monte_carlo(rng):
    m = get_model("gaussian-gan", mu=1.0, s=0.8, beta=0.3)
    point = (0.4, -0.7)
    g = m.lambdify(m.objective)(*point)
    grad = m.lambdify(m.gradient)(*point).ravel()
    cov = m.lambdify(m.gradient_covariance)(*point).reshape(2, 2)
    # Independent Monte Carlo of the per-sample loss and gradient.
    n = 400_000
    xi, z = rng.standard_normal(n), rng.standard_normal(n)
    loss = sp.lambdify(list(m.state_symbols) + list(m.noises) + list(m.parameter_symbols), m.loss)
    sgrad = sp.lambdify(list(m.state_symbols) + list(m.noises) + list(m.parameter_symbols), list(m.sample_gradient))
    vals = loss(*point, xi, z, *m.parameter_values)
    gs = np.array(sgrad(*point, xi, z, *m.parameter_values))
    assert abs(g - vals.mean()) < 4 * vals.std() / np.sqrt(n)
    assert np.all(np.abs(grad - gs.mean(axis=1)) < 4 * gs.std(axis=1) / np.sqrt(n))
    mc_cov = np.cov(gs)
    assert np.allclose(cov, mc_cov, atol=0.01 * np.abs(mc_cov).max())


def test_gaussian_gan_at_omega_zero_is_exact():
    m = get_model("gaussian-gan", beta=0.5)
    g = m.lambdify(m.objective)(1.3, 0.0)
    sig = 1 / (1 + np.exp(-0.5))
    assert np.isclose(g, np.log(sig) + np.log(1 - sig), rtol=1e-14)


def test_dirac_gan_gradient_and_equilibrium():
    m = get_model("dirac-gan", c=1.0)
    grad = m.lambdify(m.gradient)
    assert np.allclose(grad(1.0, 0.0).ravel(), 0.0)
    # finite differences of g
    g = m.lambdify(m.objective)
    h, p = 1e-6, (0.3, -0.8)
    fd = [(g(p[0] + h, p[1]) - g(p[0] - h, p[1])) / (2 * h), (g(p[0], p[1] + h) - g(p[0], p[1] - h)) / (2 * h)]
    assert np.allclose(grad(*p).ravel(), fd, atol=1e-8)


def test_all_canonical_models_build():
    for name in MODEL_NAMES:
        m = get_model(name)
        assert m.objective is not None
        ControlProblem.from_model(m)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: get_model("nope"), "unknown model 'nope'; valid models"),
        (lambda: get_model("quadratic", zz=1.0), "no parameter 'zz'; valid parameters: a, s, sigma"),
        (lambda: get_model("quadratic", s=-1.0), "parameter s: expected a number >= 0"),
        (lambda: ControlProblem.from_model(get_model("quadratic"), u_min=2.0, u_max=1.0), "need u_min < u_max"),
        (lambda: ControlProblem.from_model(get_model("quadratic"), u_min=-0.5), "u_min for player x"),
        (lambda: ControlProblem.from_model(get_model("quadratic"), eta=0.0), "eta must be a positive number"),
        (lambda: ControlProblem.from_model(get_model("quadratic"), batch_size=0), "batch size for player x"),
        (lambda: BatchControl(8, 4, 0.1), "b_min < b_max"),
        (lambda: parse_params(["a"]), "expected NAME=VALUE"),
        (lambda: parse_params(["a=x"]), "expected a number"),
    ],
)
def test_bad_input_messages(call, message):
    with pytest.raises(InputError) as info:
        call()
    assert message in str(info.value)


def test_non_psd_covariance_refused():
    m = get_model("quadratic")
    x = m.state_symbols[0]
    with pytest.raises(InputError, match="not positive semi-definite"):
        ControlProblem.from_model(m, covariance=sp.Matrix([[x - 1]]))


TOML = """
[model]
name = "tilted"
loss = "a*(x - x0)**2/2 - sigma*zeta*x"
noises = ["zeta"]
eta = 0.05

[[players]]
name = "x"
sense = "min"
symbols = ["x"]

[parameters]
a = { default = 2.0, constraint = "positive", description = "curvature" }
x0 = 0.5
sigma = { default = 1.0, constraint = "nonnegative" }

[domain]
x = [-2.0, 3.0]
"""


def test_toml_model_round_trip(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(TOML)
    cfg = load_model_toml(path)
    m = cfg.model
    assert m.eta == 0.05 and m.domain["x"] == (-2.0, 3.0)
    assert np.isclose(m.lambdify(m.gradient[0])(1.5), 2.0 * (1.5 - 0.5))
    assert np.isclose(m.lambdify(m.gradient_covariance[0, 0])(0.0), 1.0)
    m2 = load_model(str(path), {"a": 3.0}).model
    assert m2.values["a"] == 3.0


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.replace('loss = "a*(x - x0)**2/2 - sigma*zeta*x"', 'loss = "a*y"'), "undeclared name 'y'"),
        (lambda t: t.replace('loss = "a*(x - x0)**2/2 - sigma*zeta*x"', 'loss = "__import__(\'os\')"'), "__import__"),
        (lambda t: t.replace('loss = "a*(x - x0)**2/2 - sigma*zeta*x"\n', ""), "missing required field 'loss'"),
        (lambda t: t.replace('sense = "min"', 'sense = "up"'), "sense must be one of"),
        (lambda t: t.replace("x = [-2.0, 3.0]", "x = [3.0, -2.0]"), "domain of x"),
        (lambda t: t.replace('constraint = "positive"', 'constraint = "big"'), "constraint"),
        (lambda t: t + "\n[extra]\nq = 1\n", "unknown section"),
        (lambda t: t.replace("[[players]]", "[[players]]\nname2 = 1"), "unknown field(s) ['name2']"),
    ],
)
def test_toml_errors(tmp_path, change, message):
    path = tmp_path / "bad.toml"
    path.write_text(change(TOML))
    with pytest.raises(InputError) as info:
        load_model_toml(path)
    assert message in str(info.value)
