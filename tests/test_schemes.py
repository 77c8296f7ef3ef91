"""solve(): the scheme chosen from the problem, the model-declared defaults, and each scheme's declared CFL condition."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stochctl.errors import InputError
from stochctl.models import SolveDefaults, get_model
from stochctl.models.toml_model import model_from_dict
from stochctl.solvers import Grid, choose_scheme, solve
from stochctl.solvers.api import MODEL_DEFAULTS, default_grid, solve_continuous
from stochctl.solvers.bellman import DISCRETE_DEFAULTS, discrete_grid, solve_discrete
from stochctl.solvers.bellman_game import solve_discrete_game
from stochctl.solvers.grid import DEFAULT_BOUNDARY
from stochctl.solvers.schemes import (
    ALL_SCHEMES,
    BELLMAN,
    BELLMAN_GAME,
    EXPLICIT,
    IMPLICIT,
)
from stochctl.symbolic.problem import ControlProblem


def problem(name, **kw):
    params = kw.pop("params", {})
    return ControlProblem.from_model(get_model(name, **params), **kw)


def same(a, b):
    """Bit-identical value, controls and time axis (wall times aside)."""
    assert a.grid == b.grid and np.array_equal(a.times, b.times) and np.array_equal(a.stored, b.stored)
    assert np.array_equal(a.values, b.values)
    assert a.controls.keys() == b.controls.keys()
    for k in a.controls:
        assert np.array_equal(a.controls[k], b.controls[k]), k


@pytest.mark.parametrize("name, kwargs, expected", [
    ("quadratic", {}, EXPLICIT),
    ("quadratic", {"scheme": "implicit"}, IMPLICIT),
    ("dirac-gan", {}, EXPLICIT),
    ("local-quadratic", {}, IMPLICIT),  # declared by the model
    ("local-discrete", {}, BELLMAN),  # declared by the model
    ("local-discrete", {"time": "continuous"}, EXPLICIT),
    ("quadratic", {"steps": 3}, BELLMAN),
    ("quadratic", {"time": "discrete"}, BELLMAN),
    ("dirac-gan", {"steps": 3}, BELLMAN_GAME),
    ("dirac-gan", {"steps": 3, "moves": "alternating"}, BELLMAN_GAME),
])
def test_choice_follows_the_problem(name, kwargs, expected):
    assert choose_scheme(problem(name), **kwargs) is expected


def test_solve_gives_exactly_what_the_chosen_scheme_gives():
    q = problem("quadratic", horizon=0.2)
    grid = Grid.for_problem(q, 41)
    same(solve(q, grid, progress=False), solve_continuous(q, grid, scheme="explicit", progress=False))
    same(solve(q, grid, scheme="implicit", dt=0.01, progress=False),
         solve_continuous(q, grid, scheme="implicit", dt=0.01, progress=False))
    ld = problem("local-discrete", params={"h": 0.5})
    g1 = discrete_grid(ld, 121)
    same(solve(ld, g1, steps=3), solve_discrete(ld, g1, steps=3))
    same(solve(ld, points=121), solve_discrete(ld, g1, steps=int(ld.horizon)))  # steps: the horizon
    game = problem("dirac-gan", params={"c": 1.0})
    g2 = discrete_grid(game, 21)
    for moves in ("simultaneous", "alternating"):
        same(solve(game, g2, steps=2, moves=moves), solve_discrete_game(game, g2, steps=2, moves=moves))


def test_model_defaults_apply_where_the_call_is_silent():
    lq = problem("local-quadratic")
    d = lq.model.solve_defaults
    grid = default_grid(lq)
    assert grid.points == (d.points,) and (grid.lower[0], grid.upper[0]) == d.domain["y"]
    assert discrete_grid(problem("local-discrete")).points == (1201,)
    assert discrete_grid(problem("dirac-gan")).points == (61, 61)
    # the defaults travel with the record, not with the name
    renamed = dataclasses.replace(get_model("local-quadratic"), name="renamed")
    assert default_grid(ControlProblem.from_model(renamed)) == grid
    assert choose_scheme(renamed) is IMPLICIT
    plain = dataclasses.replace(get_model("local-quadratic"), solve_defaults=SolveDefaults())
    assert choose_scheme(plain) is EXPLICIT and default_grid(ControlProblem.from_model(plain)).points == (401,)


def test_legacy_tables_are_read_from_the_records():
    assert MODEL_DEFAULTS == {"local-quadratic": {"domain": {"y": (-5.0, 5.0)}, "points": 12001, "scheme": "implicit",
                                                  "dt": 1.6e-4, "store_every": 50}}
    assert DISCRETE_DEFAULTS == {"local-discrete": {"domain": {}, "points": 1201}}
    assert set(DEFAULT_BOUNDARY.values()) == {"linear"}
    from stochctl.symbolic.discrete import DISCRETE_MODELS

    assert DISCRETE_MODELS == ("local-discrete",)


TOML = {
    "model": {"name": "tilted", "loss": "a*x**2/2 - zeta*x", "noises": ["zeta"], "horizon": 4.0},
    "players": [{"name": "x", "sense": "min", "symbols": ["x"]}],
    "parameters": {"a": 1.0},
    "domain": {"x": [-3.0, 3.0]},
}


def test_a_toml_model_declares_its_defaults_in_its_solver_table():
    cfg = model_from_dict({**TOML, "solver": {"grid": 31, "scheme": "implicit", "dt": 0.5, "store_every": 2}})
    d = cfg.model.solve_defaults
    assert (d.time, d.points, d.discrete_points, d.scheme, d.dt, d.store_every) == \
        ("continuous", 31, 31, "implicit", 0.5, 2)
    sol = solve(cfg.model, progress=False)
    assert sol.grid.points == (31,) and sol.diagnostics["scheme"] == "implicit"
    assert sol.diagnostics["dt"] == 0.5 and np.all(np.diff(sol.stored)[:-1] == 2)
    steps = model_from_dict({**TOML, "solver": {"grid": 41, "steps": 3}}).model
    assert choose_scheme(steps) is BELLMAN
    assert solve(steps).values.shape == (4, 41)
    with pytest.raises(InputError, match=r"\[solver\]: steps must be an integer >= 1; got 0"):
        model_from_dict({**TOML, "solver": {"steps": 0}})
    with pytest.raises(InputError, match="expected an integer of at least 3 nodes"):
        model_from_dict({**TOML, "solver": {"grid": "many"}})


@pytest.mark.parametrize("kwargs, fragment", [
    ({"time": "sideways"}, "time must be one of continuous, discrete; got 'sideways'"),
    ({"scheme": "crank"}, "unknown scheme 'crank'; valid schemes: explicit, implicit"),
    ({"steps": 2, "scheme": "implicit"}, "scheme 'implicit' applies to continuous time"),
    ({"steps": 2, "moves": "alternating"}, "moves applies to two-player models; 'quadratic' has one player"),
    ({"moves": "alternating"}, "applies to discrete-time games"),
    ({"steps": 2, "moves": "both"}, "moves must be one of simultaneous, alternating; got 'both'"),
    ({"time": "continuous", "steps": 2}, "steps=2 asks for discrete time"),
])
def test_bad_choices_are_one_line_errors(kwargs, fragment):
    with pytest.raises(InputError) as exc:
        solve(problem("quadratic"), **kwargs)
    assert fragment in str(exc.value) and "\n" not in str(exc.value)


def test_options_of_another_scheme_and_boundary_in_discrete_time_are_refused():
    with pytest.raises(InputError, match="the bellman scheme .discrete time. has no option 'dt'"):
        solve(problem("quadratic"), steps=2, dt=0.1)
    with pytest.raises(InputError, match="boundary 'reflecting' applies to continuous time"):
        solve(problem("quadratic"), steps=2, boundary="reflecting")
    with pytest.raises(InputError, match="either a grid or its points"):
        solve(problem("quadratic"), Grid.for_problem(problem("quadratic"), 21), points=31)


def test_every_scheme_declares_order_and_cfl():
    for s in ALL_SCHEMES:
        assert s.order > 0 and (s.time_order is None or s.time_order > 0) and s.cfl.text
        assert s.time in ("continuous", "discrete")
    assert [s.time_order for s in ALL_SCHEMES if s.time == "discrete"] == [None, None]


def test_explicit_cfl_is_what_the_solver_keeps_and_enforces():
    q = problem("quadratic", horizon=0.2)
    grid = Grid.for_problem(q, 41)
    sol = solve(q, grid, progress=False)
    number = EXPLICIT.cfl(q, grid)  # at the default step
    assert number == pytest.approx(sol.diagnostics["cfl_number"]) and number <= 0.9 + 1e-12
    bound = sol.diagnostics["max_monotone_dt"]
    assert EXPLICIT.cfl(q, grid, 0.99 * bound) < 1 < EXPLICIT.cfl(q, grid, 1.01 * bound)
    assert not EXPLICIT.cfl.holds(q, grid, 1.01 * bound)
    with pytest.raises(InputError, match="largest allowed step"):
        solve(q, grid, dt=1.01 * bound, progress=False)
    assert IMPLICIT.cfl.holds(q, grid, 100 * bound)
    solve(q, grid, scheme="implicit", dt=0.1, progress=False)  # far above the explicit bound: monotone anyway


def test_bellman_cfl_is_what_the_solver_enforces():
    ld = problem("local-discrete", params={"h": 0.5}, u_max=4.0)
    wide, narrow = discrete_grid(ld, 121), Grid(("y",), (-0.05,), (0.05,), (21,))
    assert BELLMAN.cfl.holds(ld, wide)
    assert BELLMAN.cfl(ld, narrow) > 1
    solve(ld, wide, steps=1)
    with pytest.raises(InputError, match="cannot hold the next-state spread"):
        solve(ld, narrow, steps=1)
