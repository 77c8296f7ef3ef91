"""Discrete-time derivation: one-step problem, closed form, continuous limit, trainer rule, rendering, CLI."""

import json

import numpy as np
import pytest
import sympy as sp

from stochctl.analysis.explosion import critical_steps
from stochctl.cli import main
from stochctl.errors import InputError
from stochctl.models import get_model, load_model_toml
from stochctl.symbolic.discrete import derive_discrete, gaussian_expectation, positivity
from stochctl.symbolic.problem import ControlProblem

TOML = """
[model]
name = "quartic-end"
loss = "a*x**2/2 - sigma*zeta*x"
noises = ["zeta"]
eta = 0.05
terminal = "x**4"

[[players]]
name = "x"
sense = "min"
symbols = ["x"]

[parameters]
a = { default = 2.0, constraint = "positive" }
sigma = { default = 1.0, constraint = "nonnegative" }

[control]
u_max = 2.5
"""


def _derive(name="local-discrete", params=None, **opts):
    return derive_discrete(ControlProblem.from_model(get_model(name, **(params or {})), **opts))


@pytest.fixture(scope="module")
def local():
    return _derive()


def _symbols(d):
    (x,) = d.state_symbols
    return x, d.u, d.model.parameter_symbols


def _numeric(d, expr):
    """expr as f(state, u, *parameters)."""
    x, u, params = _symbols(d)
    return sp.lambdify([x, u, *params], expr, "numpy")


def _hand_J(h, y, u):
    return (1 - h * u) ** 2 * y**2 + h * u**2


# ------------------------------------------------------------------ closed form
def test_local_one_step_problem_and_rule_are_the_stated_formulas(local):
    y, u, (h,) = _symbols(local)
    assert sp.simplify(local.one_step - ((1 - h * u) ** 2 * y**2 + h * u**2)) == 0
    assert local.convex_always is True
    assert len(local.stationary) == 1 and sp.simplify(local.stationary[0] - y**2 / (1 + h * y**2)) == 0
    assert sp.simplify(local.one_step_value - y**2 / (1 + h * y**2)) == 0
    assert sp.simplify(local.curvature - 2 * h * (1 + h * y**2)) == 0
    assert sp.simplify(local.next_state[0] - ((1 - h * u) * y - u * sp.sqrt(h) * local.noise_symbols[0])) == 0


@pytest.mark.parametrize("name,params", [("local-discrete", {"h": 0.7}), ("quadratic", {}),
                                         ("quadratic", {"a": -1.5}), ("local-quadratic", {})])
def test_one_step_problem_against_monte_carlo_of_the_real_per_sample_gradient(rng, name, params):
    """J(u) against x' = x - eta u grad l(x; noises) with the model's own noises (not the Gaussian form)."""
    d = _derive(name, params, u_max=4.0)
    model = d.model
    x, u, psyms = _symbols(d)
    grad_l = sp.lambdify([x, *model.noises, *psyms], model.sample_gradient[0], "numpy")
    G = sp.lambdify([x, *psyms], d.terminal_cost, "numpy")
    J = _numeric(d, d.one_step)
    pv = model.parameter_values
    n = 400_000
    for _ in range(4):
        xv, uv = rng.uniform(-2, 2), rng.uniform(0, 4)
        noises = [rng.standard_normal(n) for _ in model.noises]
        nxt = xv - float(d.eta) * uv * grad_l(xv, *noises, *pv) * np.ones(n)
        vals = G(nxt, *pv) * np.ones(n)
        se = vals.std() / np.sqrt(n)
        assert abs(vals.mean() - J(xv, uv, *pv)) < 4 * se + 1e-12


def test_one_step_problem_against_gauss_hermite_quadrature(rng, local):
    y, u, (h,) = _symbols(local)
    J = _numeric(local, local.one_step)
    nodes, weights = np.polynomial.hermite_e.hermegauss(20)
    weights = weights / np.sqrt(2 * np.pi)
    for _ in range(20):
        hv, yv, uv = rng.uniform(0.01, 4), rng.uniform(-5, 5), rng.uniform(0, 8)
        quad = np.sum(weights * ((1 - hv * uv) * yv - uv * np.sqrt(hv) * nodes) ** 2)
        assert J(yv, uv, hv) == pytest.approx(quad, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("u_max", [1.0, 4.0, 8.0])
def test_closed_form_against_brute_force_minimisation(rng, u_max):
    d = _derive(u_max=u_max)
    y, u, (h,) = _symbols(d)
    rule = sp.lambdify([y, h], d.optimal_control, "numpy")
    grid = np.linspace(0.0, u_max, 80_001)
    for _ in range(30):
        hv, yv = np.exp(rng.uniform(np.log(1e-3), np.log(4))), rng.uniform(-6, 6)
        brute = grid[np.argmin(_hand_J(hv, yv, grid))]
        assert float(rule(yv, hv)) == pytest.approx(brute, abs=2 * u_max / 80_000)
        assert float(rule(yv, hv)) == pytest.approx(min(max(yv**2 / (1 + hv * yv**2), 0.0), u_max), abs=1e-12)


@pytest.mark.parametrize("a", [-2.0, -0.3, 0.8, 2.5])
def test_quadratic_model_rule_and_endpoint_case_against_brute_force(rng, a):
    d = _derive("quadratic", {"a": a}, u_max=3.0)
    x, u, psyms = _symbols(d)
    pv = d.model.parameter_values
    rule = sp.lambdify([x, *psyms], d.optimal_control, "numpy")
    J = _numeric(d, d.one_step)
    convex = bool(d.convex_condition.xreplace(dict(zip(psyms, pv))).xreplace({x: 1.0}))
    assert convex == (a > 0)
    grid = np.linspace(0.0, 3.0, 30_001)
    for xv in rng.uniform(-3, 3, 10):
        brute = grid[np.argmin(J(xv, grid, *pv))]
        got = float(rule(xv, *pv))
        assert got == pytest.approx(brute, abs=3e-4)
        if a < 0:
            assert got == 3.0  # concave and decreasing: the upper endpoint


def test_toml_model_with_quartic_terminal_cost(tmp_path, capsys, rng):
    """A TOML model: [control] honoured, J exact for G = x^4 (degree 4 in u, so no closed-form rule)."""
    path = tmp_path / "quartic.toml"
    path.write_text(TOML)
    d = derive_discrete(ControlProblem.from_model(load_model_toml(path).model, u_max=2.5))
    x, u, (a, sigma) = _symbols(d)
    assert d.eta == sp.Rational(1, 20) and d.optimal_control is None and d.coefficients is None
    assert sp.Poly(d.one_step, u).degree() == 4
    J = _numeric(d, d.one_step)
    nodes, weights = np.polynomial.hermite_e.hermegauss(10)
    weights = weights / np.sqrt(2 * np.pi)
    for _ in range(10):
        xv, uv, av, sv = rng.uniform(-2, 2), rng.uniform(0, 3), rng.uniform(0.1, 3), rng.uniform(0, 2)
        quad = np.sum(weights * (xv - 0.05 * uv * (av * xv + sv * nodes)) ** 4)
        assert J(xv, uv, av, sv) == pytest.approx(quad, rel=1e-12)
    assert main(["derive", str(path), "--discrete", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["problem"]["u_max"] == 2.5 and data["optimal_u"] is None and data["stationary"] == []
    assert main(["derive", str(path), "--discrete"]) == 0
    assert "polynomial of degree 4" in capsys.readouterr().out


# ------------------------------------------------------------------ continuous limit
def test_continuous_limit_is_the_local_quadratic_hamiltonian(local):
    L = local.local
    y, u, _ = _symbols(local)
    V = L.V
    expected = -u * y * sp.diff(V(y), y) + u**2 * sp.diff(V(y), y, 2) / 2
    assert sp.simplify(L.limit - expected) == 0
    assert sp.simplify(L.series[0] - expected) == 0
    assert L.limit_matches and sp.simplify(L.continuous_hamiltonian - expected) == 0
    assert sp.simplify(L.quadratic_limit - (-2 * u * y**2 + u**2)) == 0


def test_continuous_limit_numerically_at_small_h(local):
    """(E V(Y') - V(y)) / h by Gauss-Hermite quadrature for V = cos: error O(h), O(h^2) with the h term."""
    L = local.local
    y, u, (h,) = _symbols(local)
    V = L.V
    series = [sp.lambdify([y, u], t.subs(V(y), sp.cos(y)).doit(), "numpy") for t in
              (L.series[0],)] + [sp.lambdify([y, u, h], L.series[1].subs(V(y), sp.cos(y)).doit(), "numpy")]
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / np.sqrt(2 * np.pi)
    yv, uv = 0.7, 1.3
    errs0, errs1 = [], []
    for hv in (1e-2, 1e-3):
        ratio = (np.sum(weights * np.cos(yv - hv * uv * yv - uv * np.sqrt(hv) * nodes)) - np.cos(yv)) / hv
        lead = series[0](yv, uv)
        assert lead == pytest.approx(-uv * yv * -np.sin(yv) + uv**2 * -np.cos(yv) / 2, rel=1e-12)
        errs0.append(abs(ratio - lead))
        errs1.append(abs(ratio - lead - hv * series[1](yv, uv, hv)))
    assert 5 < errs0[0] / errs0[1] < 20  # first order in h
    assert errs1[1] < errs0[1] and errs1[0] / errs1[1] > 50  # second order after the h term


def test_small_step_expansion_of_the_quadratic_model_numerically():
    """(E V(x') - V(x)) / eta by quadrature, V = cos: the expansion is O(eta^2), the HJB generator O(eta)."""
    d = _derive("quadratic")
    S = d.small_step
    c = S.derivation
    (x,) = c.state_symbols
    (p,) = c.players
    assert sp.expand(S.correction - c.eta * p.u**2 * c.value_hessian[0, 0] * sp.Symbol("g_x", real=True) ** 2 / 2) == 0
    a, s, sigma = (d.model.values[k] for k in ("a", "s", "sigma"))
    xv, uv = 0.8, 0.9
    point = {c.value_gradient[0]: -np.sin(xv), c.value_hessian[0, 0]: -np.cos(xv), p.u: uv, p.m: 1, x: xv}
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / np.sqrt(2 * np.pi)
    errs = {"discrete": [], "continuous": []}
    for ev in (1e-2, 1e-3):
        at = {**point, c.eta: ev}
        nxt = xv - ev * uv * (a * xv + np.sqrt(s**2 * xv**2 + sigma**2) * nodes)
        ratio = (np.sum(weights * np.cos(nxt)) - np.cos(xv)) / ev
        for key in errs:
            e = getattr(S, key).xreplace(c.placeholders).xreplace(d.model.substitutions).xreplace(at)
            errs[key].append(abs(ratio - float(e)))
    assert 50 < errs["discrete"][0] / errs["discrete"][1] < 200  # second order
    assert 5 < errs["continuous"][0] / errs["continuous"][1] < 20  # first order: it misses the correction
    assert _derive().small_step is None


def test_quadratic_ratio_numerically(rng, local):
    L = local.local
    y, u, (h,) = _symbols(local)
    f = sp.lambdify([y, u, h], L.quadratic_ratio, "numpy")
    for _ in range(5):
        yv, uv = rng.uniform(-3, 3), rng.uniform(0, 2)
        for hv in (1e-2, 1e-5):
            assert f(yv, uv, hv) == pytest.approx((_hand_J(hv, yv, uv) - yv**2) / hv, rel=1e-6, abs=1e-6)
        assert f(yv, uv, 1e-9) == pytest.approx(-2 * uv * yv**2 + uv**2, abs=1e-6)


# ------------------------------------------------------------------ trainer variables, moments, explosion
def test_trainer_rule_is_snr_over_curvature(rng, local):
    L = local.local
    g2, s2, a, eta = L.trainer_symbols
    assert sp.simplify(L.trainer_step - g2 / (a * (g2 + s2))) == 0
    for _ in range(10):
        av, ev, sv, gv = np.exp(rng.uniform(-3, 3, 4))
        hv, y2 = ev * av, gv**2 / (ev * av * sv**2)
        snr = gv**2 / (gv**2 + sv**2)
        assert ev * y2 / (1 + hv * y2) == pytest.approx(snr / av, rel=1e-12)


def test_nonconvex_direction_prefers_the_upper_endpoint(rng, local):
    L = local.local
    u = local.u
    syms = sorted(L.trainer_one_step.free_symbols, key=lambda s: s.name)
    f = sp.lambdify(syms, L.trainer_one_step, "numpy")
    slope = sp.lambdify(syms, L.trainer_slope, "numpy")
    grid = np.linspace(0, 5, 501)
    for _ in range(10):
        vals = {"a": -np.exp(rng.uniform(-2, 2)), "eta": np.exp(rng.uniform(-3, 0)), "s": rng.uniform(0.1, 2),
                "x": rng.uniform(-2, 2)}
        args = [grid if s == u else vals[s.name] for s in syms]
        J = f(*args)
        assert np.argmin(J) == grid.size - 1
        assert np.all(slope(*args) < 0)
    assert str(L.trainer_convex) == "a > 0"
    assert L.nonconvex_steps == critical_steps(-1.0, 0.0) == (0.0, 0.0, 0.0)


def test_second_moment_recursion_and_explosion_rows(rng, local):
    L = local.local
    y, u, (h,) = _symbols(local)
    fixed = sp.lambdify([u, h], L.stationary_second_moment)
    hv, uv, paths = 0.5, 1.0, 20_000
    Y = np.zeros(paths)
    for _ in range(200):
        Y = (1 - hv * uv) * Y - uv * np.sqrt(hv) * rng.standard_normal(paths)
    m2 = np.mean(Y**2)
    assert m2 == pytest.approx(fixed(uv, hv), abs=4 * np.std(Y**2) / np.sqrt(paths))
    for hrow, crit, hu, unbounded in L.explosion_rows:
        assert crit == pytest.approx(critical_steps(hrow, 0.0)[0]) == pytest.approx(2 / hrow)
        assert unbounded == (hrow * local.u_max >= 2)
    # constant u beyond the threshold: the exact recursion grows, below it converges
    step = sp.lambdify([u, h], L.second_moment_factor)
    assert step(1.0, 3.0) > 1 > step(1.0, 1.0)


def test_explosion_thresholds_of_the_model():
    from stochctl.documents.discrete_render import explosion_at_centre

    d = _derive("local-discrete", {"h": 0.5}, u_max=8.0)
    th, _, _ = explosion_at_centre(d)
    assert th.deterministic == pytest.approx(2 / (0.5 * 8.0))
    assert th.explodes(1.0, "deterministic")
    q = _derive("quadratic")
    a, s = q.model.values["a"], q.model.values["s"]
    assert explosion_at_centre(q)[0].mean_square == pytest.approx(2 * a / (a**2 + s**2))


# ------------------------------------------------------------------ helpers
def test_gaussian_expectation_against_moments():
    x, z, m, c, mx, mz, cxz = sp.symbols("x z m c mx mz cxz", real=True)
    assert sp.expand(gaussian_expectation(x**4, (x,), (m,), [[c]]) - (m**4 + 6 * m**2 * c + 3 * c**2)) == 0
    got = gaussian_expectation(x * z + x**2, (x, z), (mx, mz), [[c, cxz], [cxz, c]])
    assert sp.expand(got - (mx * mz + cxz + mx**2 + c)) == 0
    with pytest.raises(InputError, match="polynomial"):
        gaussian_expectation(sp.cos(x), (x,), (m,), [[c]])


def test_positivity():
    a, b = sp.Symbol("a", real=True), sp.Symbol("b", real=True)
    bp = sp.Symbol("b", positive=True)
    assert positivity(b * (1 + a**2), {b: bp}) == (sp.true, True)
    cond, always = positivity(a * (1 + b**2), {})
    assert always is None and cond == (a > 0)
    assert positivity(-b, {b: bp}) == (sp.false, False)


def test_two_player_model_is_refused():
    with pytest.raises(InputError, match="one-player"):
        derive_discrete(ControlProblem.from_model(get_model("dirac-gan")))


# ------------------------------------------------------------------ rendering and CLI
def test_cli_local_discrete_markdown(capsys):
    assert main(["derive", "local-discrete"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Discrete derivation: local-discrete")
    for piece in (r"J(u_{y}) = h u_{y}^{2} + y^{2} \left(h u_{y} - 1\right)^{2}",
                  r"\frac{y^{2}}{h y^{2} + 1}", "## Continuous limit", "equal (sympy-simplified difference 0)",
                  r"\frac{\mathrm{SNR}}{a}", "## Non-convex direction"):
        assert piece in out


def test_cli_json_parses_and_holds_the_formulas(capsys):
    assert main(["derive", "local-discrete", "--format", "json", "--u-max", "4", "--param", "h=0.25"]) == 0
    data = json.loads(capsys.readouterr().out)
    y, h = sp.Symbol("y", real=True), sp.Symbol("h", real=True)
    u = sp.Symbol("u_y", nonnegative=True)
    ns = {"y": y, "h": h, "u_y": u}
    assert sp.simplify(sp.sympify(data["one_step"], locals=ns) - ((1 - h * u) ** 2 * y**2 + h * u**2)) == 0
    assert sp.simplify(sp.sympify(data["stationary"][0], locals=ns) - y**2 / (1 + h * y**2)) == 0
    assert data["problem"]["u_max"] == 4.0 and data["parameters"]["h"] == 0.25
    assert data["continuous_limit"]["matches"] is True
    assert data["continuous_limit"]["quadratic_limit"] == str(u**2 - 2 * u * y**2)
    assert data["explosion"]["deterministic"] == pytest.approx(2 / (0.25 * 4))


def test_cli_discrete_flag_honours_problem_options(capsys):
    argv = ["derive", "quadratic", "--discrete", "--format", "json", "--param", "a=2", "--eta", "0.5",
            "--u-min", "0.5", "--u-max", "3", "--batch-size", "4"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["problem"] == {"eta": 0.5, "batch_size": 4, "u_min": 0.5, "u_max": 3.0, "horizon": 1.0,
                               "steps": 2.0}
    x, s, sigma = (sp.Symbol(n, real=True) for n in ("x", "s", "sigma"))
    u = sp.Symbol("u_x", nonnegative=True)
    cov = sp.sympify(data["next_covariance"][0][0], locals={"x": x, "s": s, "sigma": sigma, "u_x": u})
    assert sp.simplify(cov - sp.Rational(1, 4) * u**2 * (s**2 * x**2 + sigma**2) / 4) == 0
    assert "Min(3, Max(1/2" in data["optimal_u"]


def test_cli_local_discrete_at_other_eta_says_why_the_local_sections_are_absent(capsys):
    assert main(["derive", "local-discrete", "--eta", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "## Continuous limit" not in out and "describe the model at $\\eta = 1$" in out
    assert r"J(u_{y}) =" in out


def test_cli_latex(capsys):
    assert main(["derive", "quadratic", "--discrete", "--format", "latex"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(r"\section*{Discrete derivation: quadratic}") and "$$" not in out
    assert r"\subsection*{One-step problem}" in out


@pytest.mark.parametrize("argv,needle", [
    (["derive", "dirac-gan", "--discrete"], "one-player"),
    (["derive", "quadratic-game", "--discrete", "--format", "json"], "one-player"),
    (["derive", "quadratic", "--discrete", "--noise", "shared"], "--noise"),
    (["derive", "quadratic", "--discrete", "--batch-control", "1:8:0.1"], "--batch-control"),
    (["derive", "local-discrete", "--param", "h=-1"], "h"),
    (["derive", "local-discrete", "--u-min", "2", "--u-max", "1"], "u_min"),
    (["derive", "local-discrete", "--batch-size", "0"], "batch"),
    (["derive", "--all", "--discrete"], "--discrete"),
])
def test_cli_bad_input_one_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "error" in err and needle in err


def test_readme_example_lines_are_real_output(capsys):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("    $ stochctl derive local-discrete --u-max 4\n")
    block = readme[start:].split("\n\n", 1)[0].splitlines()[1:]
    shown = [ln[4:] for ln in block if ln.strip() != "..."]
    assert len(shown) >= 4
    assert main(["derive", "local-discrete", "--u-max", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [ln for ln in shown if ln not in out] == []
