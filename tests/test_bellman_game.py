"""Discrete-time Isaacs recursion of two-player models (simultaneous and alternating moves)."""

import math

import numpy as np
import pytest

from stochctl.errors import InputError
from stochctl.models import get_model
from stochctl.solvers import Grid, Solution
from stochctl.solvers.bellman_game import solve_discrete_game
from stochctl.symbolic.problem import ControlProblem

ETA, U_MAX, SIGMA = 0.5, 2.0, 0.5


def game(b=1.0, a=1.0, c=1.0):
    m = get_model("quadratic-game", a=a, b=b, c=c, sigma=SIGMA)
    return ControlProblem.from_model(m, eta=ETA, u_max=U_MAX)


def grid(points=31):
    return Grid.from_domain({"theta": (-3.0, 3.0), "omega": (-3.0, 3.0)}, points)


def simulate(sol, moves, x0, paths, rng, a=1.0, b=1.0, c=1.0, prefix=""):
    """The real iteration of the quadratic game under the solved controls; returns G at the end."""
    th = np.full(paths, x0[0])
    om = np.full(paths, x0[1])
    n = sol.n_steps
    for k in range(n):
        ut = sol.control_at(f"{prefix}u_theta", np.stack([th, om], -1), t=k)
        if moves == "simultaneous":
            uo = sol.control_at(f"{prefix}u_omega", np.stack([th, om], -1), t=k)
            g_th, g_om = a * th + b * om, b * th - c * om
            th, om = (th - ETA * ut * (g_th + SIGMA * rng.standard_normal(paths)),
                      om + ETA * uo * (g_om + SIGMA * rng.standard_normal(paths)))
        else:
            th = th - ETA * ut * (a * th + b * om + SIGMA * rng.standard_normal(paths))
            th = np.clip(th, -3.0, 3.0)  # the policy table covers the grid; paths leaving it are rare
            uo = sol.control_at("u_omega", np.stack([th, om], -1), t=k)
            om = om + ETA * uo * (b * th - c * om + SIGMA * rng.standard_normal(paths))
        th, om = np.clip(th, -3.0, 3.0), np.clip(om, -3.0, 3.0)
    return a * th**2 / 2 + b * th * om - c * om**2 / 2


def test_one_step_values_equal_brute_force_min_max():
    """With one step left and a quadratic G, E G(next) is exact: upper and lower values are the
    min-max and max-min of the closed-form J over the same grids of multipliers."""
    sol = solve_discrete_game(game(), grid(21), steps=1, u_points=9)
    us = np.linspace(0.0, U_MAX, 9)
    lower = sol.diagnostics["lower_values"][0]
    for i, th in enumerate(sol.grid.axes[0][::4]):
        for j, om in enumerate(sol.grid.axes[1][::4]):
            mx = th - us[:, None] * ETA * (th + om)
            my = om + us[None, :] * ETA * (th - om)
            sx, sy = us[:, None] * ETA * SIGMA, us[None, :] * ETA * SIGMA
            J = (mx**2 + sx**2) / 2 + mx * my - (my**2 + sy**2) / 2
            assert sol.values[0][4 * i, 4 * j] == pytest.approx(J.max(axis=1).min(), abs=1e-10)
            assert lower[4 * i, 4 * j] == pytest.approx(J.min(axis=0).max(), abs=1e-10)


def test_separable_game_has_a_saddle_point():
    sol = solve_discrete_game(game(b=0.0), grid(), steps=4, u_points=11)
    assert sol.diagnostics["value_gap"] <= 1e-12
    assert np.array_equal(sol.controls["u_theta"], sol.controls["lower_u_theta"])


def test_coupled_game_reports_where_upper_and_lower_differ():
    sol = solve_discrete_game(game(b=1.0), grid(), steps=4, u_points=11)
    lower = sol.diagnostics["lower_values"]
    # min max >= max min for the same continuation; the two recursions refit their own quadratic,
    # which can move them apart by O(dy^2 |q2 - q2'|): 1e-6 relative
    assert np.all(sol.values >= lower - 1e-6 * (1 + np.abs(lower)))
    assert sol.diagnostics["value_gap"] > 1e-6 and 0 < sol.diagnostics["gap_fraction"] <= 1


@pytest.mark.slow
@pytest.mark.parametrize("moves,prefix", [("simultaneous", ""), ("simultaneous", "lower_"), ("alternating", "")])
def test_monte_carlo_reproduces_the_game_value(moves, prefix):
    """The real iteration under the solved controls costs the solved value, within 3 standard errors
    plus the change of the value from a 31- to a 61-node grid (the remaining interpolation error
    is at most that change when each halving of the spacing at least halves the error)."""
    x0 = (1.0, 0.5)

    def value(sol):
        return sol.value_at(x0, t=0) if not prefix else _bilinear(sol, sol.diagnostics["lower_values"][0], x0)

    coarse = solve_discrete_game(game(), grid(31), steps=5, moves=moves, u_points=11)
    sol = solve_discrete_game(game(), grid(61), steps=5, moves=moves, u_points=11)
    cost = simulate(sol, moves, x0, 200_000, np.random.default_rng(3), prefix=prefix)
    est, se = cost.mean(), cost.std() / math.sqrt(cost.size)
    v, err = value(sol), abs(value(coarse) - value(sol))
    assert abs(est - v) <= 3 * se + err, (v, est, se, err)


def _bilinear(sol, field, x0):
    from stochctl.solvers.solution import interpolate

    return float(interpolate(sol.grid, field, np.array([x0]))[0])


def test_alternating_second_mover_sees_the_first_move():
    """One alternating step, by brute force: W(theta_i, omega) = max over u_omega of E G with the
    discriminator's gradient at the moved theta_i (closed form, 4001 multipliers), then the
    generator's min over u_theta of E W(theta', omega) for W in the solver's representation."""
    from stochctl.solvers.bellman import expected_next_value

    sol = solve_discrete_game(game(), grid(41), steps=1, moves="alternating", u_points=21)
    thetas, omegas = sol.grid.axes
    us = np.linspace(0.0, U_MAX, 4001)
    j = 12
    om = omegas[j]
    W = np.empty(thetas.size)
    for i, t in enumerate(thetas):
        my = om + us * ETA * (t - om)
        W[i] = np.max(t**2 / 2 + t * my - (my**2 + (us * ETA * SIGMA) ** 2) / 2)
    for i in (5, 20, 33):
        th = thetas[i]
        a_th, b_th = ETA * (th + om), ETA * SIGMA
        J = expected_next_value(W, thetas, th, us, a_th, b_th)
        ut = sol.controls["u_theta"][0][i, j]
        assert sol.values[0][i, j] == pytest.approx(J.min(), abs=1e-7)
        assert expected_next_value(W, thetas, th, ut, a_th, b_th) == pytest.approx(J.min(), abs=1e-7)


def test_game_solution_roundtrip(tmp_path):
    sol = solve_discrete_game(game(), grid(21), steps=2, u_points=5)
    back = Solution.load(sol.save(tmp_path / "g.npz"))
    assert np.array_equal(back.diagnostics["lower_values"], sol.diagnostics["lower_values"])
    assert back.controls.keys() == sol.controls.keys()


def test_bad_input():
    with pytest.raises(InputError, match="moves must be one of"):
        solve_discrete_game(game(), grid(11), steps=1, moves="random")
    with pytest.raises(InputError, match="two players"):
        solve_discrete_game(ControlProblem.from_model(get_model("quadratic")), steps=1)
    with pytest.raises(InputError, match="steps"):
        solve_discrete_game(game(), grid(11), steps=0)


@pytest.mark.slow
def test_grid_refinement_order_is_the_declared_one():
    """Quadratic game, 4 steps, simultaneous moves: successive differences of V on 41, 81, 161 nodes per axis
    shrink at the scheme's declared order in h (bilinear interpolant: second order; measured 1.87)."""
    from stochctl.solvers import solve
    from stochctl.solvers.schemes import BELLMAN_GAME

    problem = ControlProblem.from_model(get_model("quadratic-game"))
    pts = np.array([[0.3, 0.2], [-0.5, 0.4], [0.1, -0.6], [0.7, 0.7]])
    vals = [solve(problem, points=n, steps=4, num_threads=1).value_at(pts, t=0) for n in (41, 81, 161)]
    d = [np.max(np.abs(a - b)) for a, b in zip(vals[:-1], vals[1:])]
    assert np.log2(d[0] / d[1]) == pytest.approx(BELLMAN_GAME.order, abs=0.35), d
