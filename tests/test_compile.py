"""Compiled (numba) ingredients agree with the numpy lambdify reference."""

import numpy as np
import pytest

from stochctl.models import MODEL_NAMES, get_model
from stochctl.symbolic.compile import compile_problem
from stochctl.symbolic.problem import ControlProblem


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_compiled_matches_numpy(name, rng):
    model = get_model(name)
    problem = ControlProblem.from_model(model)
    cp = compile_problem(problem)
    n = len(cp.state_names)
    lo = np.array([model.domain[s][0] for s in cp.state_names])
    hi = np.array([model.domain[s][1] for s in cp.state_names])
    hess_np = model.lambdify(model.hessian)
    for _ in range(5):
        x = lo + (hi - lo) * rng.random(n)
        g, S, H = np.empty(n), np.empty((n, n)), np.empty((n, n))
        cp.grad(x, cp.params, g)
        cp.sigma(x, cp.params, S)
        cp.hessian(x, cp.params, H)
        np.testing.assert_allclose(g, cp.np_grad(*x).ravel(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(S, cp.np_sigma(*x).reshape(n, n), rtol=1e-11, atol=1e-14)
        np.testing.assert_allclose(H, hess_np(*x).reshape(n, n), rtol=1e-11, atol=1e-14)
        assert np.isclose(cp.objective(x, cp.params), cp.np_objective(*x), rtol=1e-13)
        assert np.isclose(cp.terminal(x, cp.params), cp.np_terminal(*x), rtol=1e-13)


def test_parameters_are_arguments_not_constants():
    base = ControlProblem.from_model(get_model("quadratic-game"))
    other = ControlProblem.from_model(get_model("quadratic-game", a=3.0, b=-2.0))
    c1, c2 = compile_problem(base), compile_problem(other)
    assert c1.grad is c2.grad  # one compiled module serves every parameter value
    x, out = np.array([0.5, -1.0]), np.empty(2)
    c2.grad(x, c2.params, out)
    assert np.allclose(out, [3.0 * 0.5 + -2.0 * -1.0, -2.0 * 0.5 - 1.0 * -1.0])


def test_sample_gradient_has_the_model_noise(rng):
    cp = compile_problem(ControlProblem.from_model(get_model("quadratic", a=1.5, s=0.4, sigma=0.9)))
    x = np.array([0.7])
    out = np.empty(1)
    draws = np.array([cp.sample_grad(x, rng.standard_normal(2), cp.params, out)[0] for _ in range(20000)])
    assert abs(draws.mean() - 1.5 * 0.7) < 4 * draws.std() / np.sqrt(draws.size)
    assert abs(draws.var() - (0.4**2 * 0.7**2 + 0.9**2)) < 0.05


def test_second_process_loads_machine_code_from_the_cache(tmp_path):
    """A fresh process reuses the generated module and numba's on-disk cache: no recompilation."""
    import os
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from stochctl.models import get_model\n"
        "from stochctl.symbolic.compile import compile_problem\n"
        "from stochctl.symbolic.problem import ControlProblem\n"
        "cp = compile_problem(ControlProblem.from_model(get_model('quadratic-game')))\n"
        "out = np.empty(2)\n"
        "cp.grad(np.array([0.5, -1.0]), cp.params, out)\n"
        "print(len(cp.grad.stats.cache_hits), len(cp.grad.stats.cache_misses))\n"
    )
    env = dict(os.environ, STOCHCTL_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
            for _ in range(2)]
    first = tuple(map(int, runs[0].stdout.split()))
    second = tuple(map(int, runs[1].stdout.split()))
    assert first == (0, 1)  # compiled in the first process
    assert second == (1, 0)  # loaded from the cache in the second
    assert len(list(tmp_path.glob("stochctl_kernels_*.py"))) == 1
