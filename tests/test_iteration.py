"""The one simulator of the discrete iteration against the explosion analysis' matrices.

Oracles: for a quadratic game without noise one iteration is exactly x_1 = M x_0, so
the simulated step from the unit vectors gives M column by column; it must equal
``iteration_matrix`` and the matrix written out by hand (alternating: the second
player sees the first player's new parameters), through both entry points, the
explosion simulations and the Monte Carlo checks, and whichever player the model
lists first. With multiplicative noise E|x_k|^2 = tr P_k, P_k the k-th power of
``second_moment_matrix`` applied to x_0 x_0^T, and the growth of the simulated mean
square matches the log of its spectral radius.
"""

import numpy as np
import pytest
import sympy as sp

from stochctl.analysis import explosion as ex
from stochctl.solvers.iteration import UPDATES, update_phases
from stochctl.errors import InputError
from stochctl.models import Model, Parameter, Player, get_model
from stochctl.solvers.montecarlo import simulate_iteration
from stochctl.symbolic.problem import ControlProblem


def noisy_game(s: float, *, max_first: bool = False) -> Model:
    """g = (a + s z1) th^2/2 + b th om - (c + s z2) om^2/2, a = 1, b = 1, c = 0.5."""
    th, om, a, b, c, s_, z1, z2 = sp.symbols("theta omega a b c s zeta1 zeta2", real=True)
    loss = (a + s_ * z1) * th**2 / 2 + b * th * om - (c + s_ * z2) * om**2 / 2
    players = (Player("theta", "min", (th,)), Player("omega", "max", (om,)))
    return Model(name="noisy-game", description="test", loss=loss, players=players[::-1] if max_first else players,
                 noises=(z1, z2), parameters=(Parameter(a, 1.0), Parameter(b, 1.0), Parameter(c, 0.5),
                                              Parameter(s_, s)),
                 domain={"theta": (-2.0, 2.0), "omega": (-2.0, 2.0)})


def hand_matrix(a, b, c, h1, h2, update, omega_first=False):
    """M of g = a th^2/2 + b th om - c om^2/2 in (theta, omega) order, steps h1 (theta), h2 (omega)."""
    if update == "simultaneous":
        return np.array([[1 - h1 * a, -h1 * b], [h2 * b, 1 - h2 * c]])
    theta = np.array([[1 - h1 * a, -h1 * b], [0.0, 1.0]])  # theta moves, omega kept
    omega = np.array([[1.0, 0.0], [h2 * b, 1 - h2 * c]])
    return theta @ omega if omega_first else omega @ theta


def test_update_phases_define_the_orders():
    np.testing.assert_array_equal(update_phases(2, "simultaneous")[0], [0, 0])
    np.testing.assert_array_equal(update_phases(3, "alternating")[0], [0, 1, 2])
    assert update_phases(1, "alternating")[1] == 1
    with pytest.raises(InputError, match="update 'sequential' unknown; valid: simultaneous, alternating"):
        update_phases(2, "sequential")


@pytest.mark.parametrize("update", UPDATES)
@pytest.mark.parametrize("a, b, c", [(1.0, 1.5, 0.5), (0.0, 1.0, 0.0), (0.3, 2.0, 1.2)])
def test_one_step_map_is_the_iteration_matrix(a, b, c, update):
    eta, u1, u2 = 0.3, 0.7, 1.3
    model = get_model("quadratic-game", a=a, b=b, c=c, sigma=0.0)
    lin = ex.local_linearization(model, [0.0, 0.0])
    want = ex.iteration_matrix(np.array([u1, u2])[lin.owner][:, None] * lin.jacobian, eta, lin.owner, update)
    np.testing.assert_allclose(want, hand_matrix(a, b, c, eta * u1, eta * u2, update), rtol=1e-14, atol=1e-15)
    cols = []
    for e in np.eye(2):
        run = ex.simulate_paths(model, e, [eta], multipliers={"theta": u1, "omega": u2}, update=update,
                                noise="none", paths=1, steps=1)
        cols.append(run.x[0, 0, 1])
    np.testing.assert_allclose(np.array(cols).T, want, rtol=1e-14, atol=1e-15)
    # the Monte Carlo checks run the same step (noise-free model: sigma = 0)
    problem = ControlProblem.from_model(model.with_options(domain={"theta": (-2, 2), "omega": (-2, 2)}, eta=eta),
                                        horizon=eta)
    cols = [simulate_iteration(problem, {"theta": 0.7, "omega": 1.0},
                               e, algorithm=update, steps=1, paths=2, keep_paths=1).sample[0, 1] for e in np.eye(2)]
    mc_want = hand_matrix(a, b, c, eta * 0.7, eta * 1.0, update)
    np.testing.assert_allclose(np.array(cols).T, mc_want, rtol=1e-14, atol=1e-15)


def test_alternating_follows_the_models_order_in_every_simulator():
    """Listing the max player first makes omega move first, in the matrices and in both simulators."""
    eta, ut, uo = 0.4, 0.7, 0.9
    model = noisy_game(0.0, max_first=True)  # state order (omega, theta)
    lin = ex.local_linearization(model, [0.0, 0.0])
    assert lin.names == ("omega", "theta")
    want = ex.iteration_matrix(np.array([uo, ut])[lin.owner][:, None] * lin.jacobian, eta, lin.owner, "alternating")
    swap = np.array([[0, 1], [1, 0]])
    hand = swap @ hand_matrix(1.0, 1.0, 0.5, eta * ut, eta * uo, "alternating", omega_first=True) @ swap
    np.testing.assert_allclose(want, hand, rtol=1e-14)
    assert not np.allclose(want, swap @ hand_matrix(1.0, 1.0, 0.5, eta * ut, eta * uo, "alternating") @ swap)
    sim = [ex.simulate_paths(model, e, [eta], multipliers={"theta": ut, "omega": uo}, update="alternating",
                             noise="none", paths=1, steps=1).x[0, 0, 1] for e in np.eye(2)]
    np.testing.assert_allclose(np.array(sim).T, want, rtol=1e-14, atol=1e-15)
    problem = ControlProblem.from_model(model.with_options(eta=eta), horizon=eta)
    mc = [simulate_iteration(problem, {"theta": ut, "omega": uo}, e, algorithm="alternating", steps=1, paths=2,
                             keep_paths=1).sample[0, 1] for e in np.eye(2)]
    np.testing.assert_allclose(np.array(mc).T, want, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("update", UPDATES)
def test_mean_square_growth_matches_the_second_moment_map(update):
    model = noisy_game(0.6)
    lin = ex.local_linearization(model, [0.0, 0.0])
    crit = getattr(ex.explosion_thresholds(model, [0.0, 0.0]), f"mean_square_{update}")
    etas, steps, start = [0.8 * crit, 1.25 * crit], 12, np.array([0.6, -0.4])
    sim = ex.simulate_second_moment(model, start, etas, update=update, noise="sample", paths=40000, steps=steps,
                                    seed=5)
    p0 = np.outer(start, start).ravel()
    for k, eta in enumerate(etas):
        a = ex.second_moment_matrix(lin.jacobian, lin.curvature_covariance, lin.signs, eta, lin.owner, update)
        rho = float(ex.spectral_radius(a))
        exact = np.array([(np.linalg.matrix_power(a, n) @ p0).reshape(2, 2).trace() for n in range(steps + 1)])
        assert np.all(np.abs(sim.mean[k] - exact) < 5 * sim.stderr[k] + 1e-15), (sim.mean[k], exact)
        assert sim.predicted_rate[k] == pytest.approx(np.log(rho), rel=1e-12)
        # the exact mean square grows by rho per step once the transient is gone ...
        late = np.linalg.matrix_power(a, 400) @ p0
        ratio = (a @ late).reshape(2, 2).trace() / late.reshape(2, 2).trace()
        assert ratio == pytest.approx(rho, rel=1e-6)
        # ... and the simulated growth rate agrees with the exact one within its standard error
        exact_rate = (np.log(exact[-1]) - np.log(exact[0])) / steps
        assert abs(sim.growth_rate[k] - exact_rate) < 5 * sim.growth_stderr[k]
    assert sim.growth_rate[0] < 0 < sim.growth_rate[1]
