"""One evaluator, one cache: every numerical evaluation of a formula shares compiled functions."""

import numpy as np
import sympy as sp

from stochctl import _evaluator
from stochctl.models import get_model
from stochctl.solvers import Grid
from stochctl.solvers.coefficients import evaluate_coefficients
from stochctl.symbolic import ControlProblem
from stochctl.symbolic.compile import compile_problem


def test_values_match_the_closed_forms_at_any_parameter_value():
    """quadratic: grad g = a x, Sigma = s^2 x^2 + sigma^2 (model docstring)."""
    x = np.linspace(-3, 3, 7)
    for a, s, sigma in ((1.0, 0.5, 1.0), (-2.0, 0.1, 0.3)):
        model = get_model("quadratic", a=a, s=s, sigma=sigma)
        np.testing.assert_allclose(_evaluator.evaluate(model, model.gradient[0], x), a * x, rtol=1e-14)
        cov = model.lambdify(model.gradient_covariance)(x)
        assert cov.shape == (1, 1, 7)
        np.testing.assert_allclose(cov[0, 0], s**2 * x**2 + sigma**2, rtol=1e-14)
        assert isinstance(model.lambdify(model.objective)(1.5), float)


def test_models_and_layers_share_one_cache():
    """A second parameter value, the solver's coefficients and the compiled problem reuse the functions."""
    model = get_model("dirac-gan")
    problem = ControlProblem.from_model(model)
    grid = Grid(model.state_names, (-2, -2), (2, 2), (9, 9))
    evaluate_coefficients(problem, grid)
    before = _evaluator.cache_info()
    other = ControlProblem.from_model(model.with_params(c=0.4))
    coeffs = evaluate_coefficients(other, grid)
    compile_problem(other).np_grad(0.1, 0.2)
    after = _evaluator.cache_info()
    assert after.misses == before.misses  # nothing compiled again
    assert after.hits > before.hits
    # and the new parameter value is used (dg/domega depends on c), checked against sympy directly
    theta, omega = grid.mesh()
    direct = sp.lambdify(list(model.state_symbols) + list(model.parameter_symbols), model.gradient[1], "numpy")
    want = direct(theta, omega, 0.4, model.values["sigma"])
    assert np.max(np.abs(want - direct(theta, omega, 0.0, model.values["sigma"]))) > 0.1
    np.testing.assert_allclose(coeffs.gh[1] * grid.spacing[1], want, rtol=1e-13, atol=1e-15)
