"""Comparison principle of the discrete HJB/Isaacs solutions (hypothesis property tests).

The schemes are monotone: every step writes V^k at a node as a combination of
V^{k+1} values with non-negative weights that sum to one (explicit, at a
monotone step) or solves with an M-matrix (implicit). Hence, for any problem,

* G1 <= G2 on the grid implies V1 <= V2 at every node and time;
* adding a constant c to G adds exactly c to V;
* with zero running cost, min G <= V <= max G (over the grid's nodes).

These hold exactly, up to rounding, for convex and non-convex terminal costs,
for one player and for games, whatever the parameters.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stochctl.models import get_model
from stochctl.solvers import Grid, solve
from stochctl.symbolic.problem import ControlProblem

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
coef = st.floats(-1.0, 1.0, allow_nan=False)


@st.composite
def problems(draw):
    """A random model, parameters, horizon, control bounds, scheme and a small grid."""
    name = draw(st.sampled_from(["local-quadratic", "quadratic", "quadratic-game", "dirac-gan"]))
    if name == "quadratic":
        model = get_model(name, a=draw(st.floats(-1.0, 2.0)), s=draw(st.floats(0.0, 1.0)),
                          sigma=draw(st.floats(0.0, 1.0)))
    elif name == "quadratic-game":
        model = get_model(name, a=draw(st.floats(-1.0, 1.0)), b=draw(st.floats(-1.5, 1.5)),
                          c=draw(st.floats(-1.0, 1.0)), sigma=draw(st.floats(0.0, 1.0)))
    elif name == "dirac-gan":
        model = get_model(name, c=draw(st.floats(-1.0, 1.0)), sigma=draw(st.floats(0.0, 0.5)))
    else:
        model = get_model(name)
    u_max = draw(st.floats(0.2, 2.0))
    horizon = draw(st.floats(0.1, 1.0))
    one_player = not model.is_game
    scheme = draw(st.sampled_from(["explicit", "implicit"])) if one_player else "explicit"
    points = 41 if one_player else 15
    boundary = draw(st.sampled_from(["linear", "dirichlet", "reflecting"]))
    return model, dict(u_max=u_max, horizon=horizon), scheme, points, boundary


@st.composite
def terminal_costs(draw, symbols):
    """G(x) = sum_i (alpha_i x_i^2 + beta_i sin(k_i x_i)) + gamma x_1 x_n: convex or not."""
    g = sp.Integer(0)
    for x in symbols:
        g += draw(coef) * x**2 + draw(coef) * sp.sin(draw(st.floats(0.5, 3.0)) * x)
    return g + draw(coef) * symbols[0] * symbols[-1]


def _solve(model, options, scheme, points, boundary, terminal):
    prob = ControlProblem.from_model(model, terminal_cost=terminal, **options)
    grid = Grid.for_problem(prob, points, boundary)
    kw = {"dt": options["horizon"] / 40} if scheme == "implicit" else {}
    return prob, solve(prob, grid, scheme=scheme, progress=False, **kw)


@SETTINGS
@given(data=st.data())
def test_larger_terminal_cost_never_gives_a_smaller_value(data):
    model, options, scheme, points, boundary = data.draw(problems())
    xs = model.state_symbols
    g1 = data.draw(terminal_costs(xs))
    centre = data.draw(st.floats(-1.5, 1.5))
    bump = data.draw(st.floats(0.0, 2.0)) * sp.exp(-(xs[0] - centre) ** 2) + data.draw(st.floats(0.0, 0.5))
    _, s1 = _solve(model, options, scheme, points, boundary, g1)
    _, s2 = _solve(model, options, scheme, points, boundary, g1 + bump)
    scale = 1.0 + np.abs(s1.values).max()
    assert np.all(s1.values <= s2.values + 1e-12 * scale)
    shift = data.draw(st.floats(-3.0, 3.0))
    _, s3 = _solve(model, options, scheme, points, boundary, g1 + shift)
    np.testing.assert_allclose(s3.values - s1.values, shift, atol=1e-11 * (scale + abs(shift)))


@SETTINGS
@given(data=st.data())
def test_value_stays_within_the_terminal_cost_bounds(data):
    model, options, scheme, points, boundary = data.draw(problems())
    g = data.draw(terminal_costs(model.state_symbols))
    prob, sol = _solve(model, options, scheme, points, boundary, g)
    G = prob.model.lambdify(g)(*sol.grid.mesh())
    tol = 1e-12 * (1.0 + np.abs(G).max())
    np.testing.assert_allclose(sol.values[-1], G, atol=tol)  # V(T) = G
    assert sol.values.min() >= G.min() - tol
    assert sol.values.max() <= G.max() + tol
