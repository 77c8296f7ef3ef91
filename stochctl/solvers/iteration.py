"""The discrete training iteration, defined once: SGD for one player, simultaneous or alternating SGA for games.

One iteration of coordinate i, owned by player p with multiplier u_p and step dt
(the base learning rate eta for the training iteration), is

    x_i <- x_i - s_i u_p dt (d_i g(x) + noise_i),

s_i = +1 for a minimiser's coordinate and -1 for a maximiser's. The players move
in *phases* (:func:`update_phases`); each phase evaluates the gradient, the noise
and, under a feedback policy, the players' multipliers at the point left by the
previous phase:

``"simultaneous"``
    one phase: every player uses x_k (simultaneous gradient descent-ascent).
``"alternating"``
    one phase per player, in the model's order: player p uses the parameters
    that players 0..p-1 have just written in this iteration (the second player
    sees the first player's new parameters, as in alternating GAN training and
    in :func:`stochctl.analysis.explosion.iteration_matrix`).

For one player both are plain SGD. Minibatch noise (:data:`NOISES`), independent
between players (each draws its own minibatch):

``"gaussian"``
    L_p z with L_p L_p^T = m_p r Sigma_pp(x) (Cholesky factor of the player's block
    of the per-sample gradient covariance), m_p = 1/B_p and r = 1 for the
    training iteration; the Euler-Maruyama scheme of the SDE of design section 2
    is the same step with dt its time step and r = eta / dt. The d standard
    normals z of an iteration are drawn at its start, in coordinate order.
``"sample"``
    the mean of B_p per-sample gradients grad l(x; xi) at independent draws of
    the model's noises xi (replacing d_i g(x)), drawn in the player's phase.
``"none"``
    gradient descent-ascent on g.

For a quadratic model without noise one iteration is x_{k+1} = M x_k with M the
iteration matrix of :func:`stochctl.analysis.explosion.iteration_matrix`, and with
multiplicative noise E[x x^T] follows :func:`~stochctl.analysis.explosion.second_moment_matrix`
(tests/test_iteration.py checks both on the compiled simulator).

The numba step (``advance``) lives in :mod:`stochctl.solvers._iteration_kernels`;
the explosion simulations (:mod:`stochctl.analysis.explosion.simulation`) and the
Monte Carlo checks (:mod:`stochctl.solvers.montecarlo`) both call it.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

__all__ = ["UPDATES", "NOISES", "NOISE_MODES", "update_phases", "check_update"]

UPDATES = ("simultaneous", "alternating")
"""Update orders of the players (module docstring)."""
NOISES = ("gaussian", "sample", "none")
"""Minibatch noise models (module docstring)."""
NOISE_MODES = {"none": 0, "gaussian": 1, "sample": 2}
"""Integer codes of the noise models in the kernels."""


def check_update(update) -> str:
    """``update`` if it is one of :data:`UPDATES`, else InputError listing them."""
    if update not in UPDATES:
        raise InputError(f"update {update!r} unknown; valid: {', '.join(UPDATES)}")
    return update


def update_phases(n_players: int, update: str) -> tuple[np.ndarray, int]:
    """Phase of each player and the number of phases (module docstring).

    Simultaneous: every player in phase 0. Alternating: player p in phase p
    (the model's order), so player p sees the parameters players 0..p-1 wrote.
    """
    check_update(update)
    if isinstance(n_players, bool) or not isinstance(n_players, (int, np.integer)) or n_players < 1:
        raise InputError(f"n_players must be an integer >= 1; got {n_players!r}")
    if update == "alternating" and n_players > 1:
        return np.arange(n_players, dtype=np.int64), int(n_players)
    return np.zeros(n_players, dtype=np.int64), 1
