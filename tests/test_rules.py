"""The compiled control rules the solvers call equal the derivation's Piecewise, for every model.

The rules are written once (stochctl.symbolic.rules) and printed into numba
(stochctl.symbolic._rule_kernels); here the compiled rule of each player, with the constants
the solvers read (compile_hamiltonian), is compared with the derivation's sympy Piecewise
evaluated by sympy itself (exact arithmetic for the one-dimensional rule), at random points,
at points within 1e-9 (relative) of every switching boundary, and for both signs of the
curvature term.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from stochctl.models import MODEL_NAMES, get_model, load_model_toml
from stochctl.symbolic import BatchControl, ControlProblem
from stochctl.symbolic.compile import compile_hamiltonian, derivation_of
from stochctl.symbolic.rulegen import KERNEL_PATH, kernel_source

TOML = """
[model]
name = "tilted-quartic"
loss = "a*(x - x0)**4/4 + b*x**2/2 - s*zeta*x"
noises = ["zeta"]
eta = 0.05
batch_size = 4

[[players]]
name = "w"
sense = "min"
symbols = ["x"]

[parameters]
a = { default = 1.5, constraint = "positive" }
b = -0.3
x0 = 0.25
s = { default = 0.7, constraint = "nonnegative" }

[domain]
x = [-2.0, 2.0]
"""


def _toml_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("rules") / "quartic.toml"
    path.write_text(TOML)
    return load_model_toml(str(path)).model


def _points(rng, lo, hi, n=120):
    """(A, B) pairs: random, near A = lo B, A = hi B (B > 0) and A = (lo + hi) B / 2 (B < 0), B near 0."""
    A = list(rng.normal(0, 2, n))
    B = list(rng.normal(0, 2, n) * np.where(rng.random(n) < 0.5, 1, 1e-3))
    for bound in (lo, hi):
        b = np.abs(rng.normal(1, 0.5, 10)) + 0.1
        for eps in (-1e-9, 1e-9):
            A += list(bound * b * (1 + eps) + (eps if bound == 0 else 0.0))
            B += list(b)
    b = -(np.abs(rng.normal(1, 0.5, 10)) + 0.1)
    for eps in (-1e-9, 1e-9):
        A += list(0.5 * (lo + hi) * b * (1 - eps) + eps)
        B += list(b)
    A += [0.3, -0.3, 0.0, 1.0]
    B += [0.0, 0.0, 0.0, -1e-300]
    return np.array(A), np.array(B)


def _at(expr, values):
    """``expr`` at ``values`` by sympy, taking a Piecewise's first true case (later cases are not formed)."""
    if isinstance(expr, sp.Piecewise):
        for piece, cond in expr.args:
            if bool(_at(cond, values)):
                return _at(piece, values)
        raise AssertionError(f"no case of {expr} holds at {values}")
    if not expr.has(sp.Piecewise):
        return expr.xreplace(values)
    return expr.func(*(_at(a, values) for a in expr.args))


def _problems(model):
    yield "default", ControlProblem.from_model(model)
    yield "bounds", ControlProblem.from_model(model, u_min=0.25, u_max=1.5)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = [get_model(name) for name in MODEL_NAMES]
    out.append(_toml_model(tmp_path_factory))
    return out


def test_every_model_is_covered(models):
    assert [m.name for m in models] == [*MODEL_NAMES, "tilted-quartic"]
    assert "tilted-quartic" not in MODEL_NAMES


@pytest.mark.parametrize("index", range(len(MODEL_NAMES) + 1))
def test_compiled_u_rule_equals_the_derivation_piecewise(models, index, rng):
    model = models[index]
    for label, problem in _problems(model):
        d = derivation_of(problem)
        ham = compile_hamiltonian(problem)
        for pd, cp in zip(d.players, ham.players):
            assert (cp.u_min, cp.u_max, cp.sign) == (pd.u_min, pd.u_max, pd.sign)
            m = d.values[pd.m.name]
            A, B = _points(rng, cp.sign * pd.u_min, cp.sign * pd.u_max)
            B = cp.sign * B  # the points sit near the boundaries of the player's own rule
            Bt = B / m
            U, M, H, C = cp.optimum(A, Bt)
            np.testing.assert_array_equal(M, m)
            for k in range(len(A)):
                a, b = sp.Float(A[k], 17), sp.Float(float(m * Bt[k]), 17)
                at = {pd.A_symbol: a, pd.B_symbol: b}
                want_u = float(_at(pd.optimal_control, at))
                assert U[k] == pytest.approx(want_u, rel=1e-12, abs=1e-15), (model.name, label, pd.name, A[k], B[k])
                assert bool(C[k]) == bool(_at(pd.convex_condition, at)), (model.name, pd.name, A[k], B[k])
                want_h = float(pd.hamiltonian.xreplace({**at, pd.u: sp.Float(U[k], 17)}))
                assert H[k] == pytest.approx(want_h, rel=1e-12, abs=1e-14)
                assert H[k] == pytest.approx(float(_at(pd.value, at)), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("index", range(len(MODEL_NAMES) + 1))
def test_compiled_joint_rule_equals_the_derivation_piecewise(models, index, rng):
    model = models[index]
    problem = ControlProblem.from_model(model, u_min=0.1, u_max=2.0, batch=BatchControl(2, 16, 0.03))
    d = derivation_of(problem)
    ham = compile_hamiltonian(problem)
    for pd, cp in zip(d.players, ham.players):
        assert cp.batch and (cp.m_min, cp.m_max) == (1 / 16, 1 / 2) and cp.kappa == 0.03
        kappa = d.values[pd.kappa.name]
        A, Bt = _points(rng, 0.1, 2.0, 60)
        Bt = np.concatenate([Bt, 1 / np.array([1 / 16, 1 / 2, 1 / 8]) * 0.0 + [0.5, 3.0, -2.0]])
        A = np.concatenate([A, np.sqrt(2 * 0.03 * np.abs(Bt[-3:]))])  # on the interior stationary curve
        U, M, H, C = cp.optimum(A, Bt)
        args = (pd.A_symbol, pd.Bt_symbol, pd.kappa)
        f_u = sp.lambdify(args, pd.optimal_control, "numpy")
        f_m = sp.lambdify(args, pd.optimal_batch, "numpy")
        f_v = sp.lambdify(args, pd.value, "numpy")
        with np.errstate(all="ignore"):
            for k in range(len(A)):
                want = (float(f_u(A[k], Bt[k], kappa)), float(f_m(A[k], Bt[k], kappa)), float(f_v(A[k], Bt[k], kappa)))
                assert U[k] == pytest.approx(want[0], rel=1e-12, abs=1e-15), (model.name, pd.name, A[k], Bt[k])
                assert M[k] == pytest.approx(want[1], rel=1e-12, abs=1e-15), (model.name, pd.name, A[k], Bt[k])
                assert H[k] == pytest.approx(want[2], rel=1e-10, abs=1e-12), (model.name, pd.name, A[k], Bt[k])
        np.testing.assert_array_equal(C, cp.sign * Bt > 0)


def test_drift_and_diffusion_terms_are_the_models_gradient_and_covariance(models):
    """The solver's terms read from the derivation are dg/dx_i and Sigma_ii of the model."""
    for model in models:
        problem = ControlProblem.from_model(model)
        ham = compile_hamiltonian(problem)
        for i in range(len(model.state_symbols)):
            assert sp.simplify(ham.drift[i] - model.gradient[i]) == 0
            assert sp.simplify(ham.diffusion[i] - problem.covariance[i, i]) == 0


def test_generated_kernels_are_up_to_date():
    assert KERNEL_PATH.read_text() == kernel_source(), "run: python -m stochctl.symbolic.rulegen"
