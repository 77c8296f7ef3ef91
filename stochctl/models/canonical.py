"""The canonical models of the design (section 3), by name.

Each constructor returns a :class:`~stochctl.models.Model` with its
parameters, noise model, domain and defaults, including how it is solved
(:class:`~stochctl.models.SolveDefaults`; the generic ones unless stated). Gradient noise is written into
the per-sample loss, so Sigma(x) is derived, never typed in.
"""

from __future__ import annotations

import sympy as sp

from ..formula import log_sigmoid
from ._model import Model, Parameter, Player
from .solve_defaults import SolveDefaults

LOCAL_QUADRATIC_SOLVE = SolveDefaults(domain={"y": (-5.0, 5.0)}, points=12001, scheme="implicit", dt=1.6e-4,
                                      store_every=50)
"""Solve defaults of ``local-quadratic`` (values within 1e-3 relative at |y| <= 4).

The scheme is first order in h and dt. The upwind drift adds a numerical diffusion
h |y| u / 2 to u^2 / 2, about 0.55 h relative error in V, and backward Euler damps the decay
e^{-2 tau} of the y^2 part by about 2 tau dt, about 1.9 dt relative error at tau = 2. With
h = 1/1200 (12001 nodes on [-5, 5]) and dt = 1.6e-4 the two add up to about 8e-4; the boundary
at |y| = 5 changes V(0, 4) by less than 1e-6 (the drift -u y points inward). Checked by
refinement, domain enlargement and the closed form of the constant control.
"""

LOCAL_DISCRETE_SOLVE = SolveDefaults(time="discrete", discrete_points=1201)
"""Solve defaults of ``local-discrete``: the Bellman recursion of its 20 steps on [-6, 6] x 1201."""


def quadratic() -> Model:
    """One-player quadratic loss with multiplicative and additive gradient noise.

    l = (a + s xi) x^2 / 2 - sigma zeta x, so g = a x^2 / 2, grad g = a x and
    Sigma = s^2 x^2 + sigma^2 (xi, zeta independent standard normals).
    """
    x, a, s, sigma, xi, zeta = sp.symbols("x a s sigma xi zeta", real=True)
    return Model(
        name="quadratic",
        description="Quadratic loss l = (a + s xi) x^2/2 - sigma zeta x (Li-Tai-E test case).",
        loss=(a + s * xi) * x**2 / 2 - sigma * zeta * x,
        players=(Player("x", "min", (x,)),),
        noises=(xi, zeta),
        parameters=(
            Parameter(a, 1.0, "real", "curvature"),
            Parameter(s, 0.5, "nonnegative", "multiplicative gradient-noise scale"),
            Parameter(sigma, 1.0, "nonnegative", "additive gradient-noise scale"),
        ),
        eta=0.1,
        batch_size=1,
        domain={"x": (-3.0, 3.0)},
    )


def quadratic_game() -> Model:
    """Quadratic game g = a theta^2/2 + b theta omega - c omega^2/2 with additive noise.

    l = g - sigma (zeta1 theta + zeta2 omega): each player's gradient has its
    own independent noise of variance sigma^2. Bilinear when a = c = 0.
    """
    th, om, a, b, c, sigma, z1, z2 = sp.symbols("theta omega a b c sigma zeta1 zeta2", real=True)
    return Model(
        name="quadratic-game",
        description="Quadratic game g = a theta^2/2 + b theta omega - c omega^2/2 (bilinear when a = c = 0).",
        loss=a * th**2 / 2 + b * th * om - c * om**2 / 2 - sigma * (z1 * th + z2 * om),
        players=(Player("theta", "min", (th,)), Player("omega", "max", (om,))),
        noises=(z1, z2),
        parameters=(
            Parameter(a, 1.0, "real", "curvature of the min player"),
            Parameter(b, 1.0, "real", "coupling"),
            Parameter(c, 1.0, "real", "concavity of the max player"),
            Parameter(sigma, 0.5, "nonnegative", "gradient-noise scale per player"),
        ),
        eta=0.1,
        batch_size=1,
        domain={"theta": (-2.0, 2.0), "omega": (-2.0, 2.0)},
    )


def dirac_gan() -> Model:
    """Dirac GAN: data point c, generator theta, discriminator sigmoid(omega x).

    g = log sigmoid(omega c) + log sigmoid(-omega theta), equilibrium (c, 0).
    Minibatch noise enters as additive gradient noise of scale sigma per player
    (zeta1, zeta2), which leaves g unchanged. c = 0 is the classic
    non-convergent case.
    """
    th, om, c, sigma, z1, z2 = sp.symbols("theta omega c sigma zeta1 zeta2", real=True)
    g = log_sigmoid(om * c) + log_sigmoid(-om * th)
    return Model(
        name="dirac-gan",
        description="Dirac GAN g = log sigmoid(omega c) + log sigmoid(-omega theta); equilibrium (c, 0).",
        loss=g - sigma * (z1 * th + z2 * om),
        players=(Player("theta", "min", (th,)), Player("omega", "max", (om,))),
        noises=(z1, z2),
        parameters=(
            Parameter(c, 0.0, "real", "data point"),
            Parameter(sigma, 0.1, "nonnegative", "gradient-noise scale per player"),
        ),
        eta=0.1,
        batch_size=1,
        domain={"theta": (-2.0, 2.0), "omega": (-2.0, 2.0)},
    )


def gaussian_gan() -> Model:
    """Gaussian-mean GAN: data N(mu, s^2), generator theta + s z, D = sigmoid(omega x + beta).

    l = log sigmoid(omega (mu + s xi) + beta) + log sigmoid(-(omega (theta + s z) + beta)),
    with xi (data) and z (latent) independent standard normals; g and Sigma by
    Gauss-Hermite quadrature.
    """
    th, om, mu, s, beta, xi, z = sp.symbols("theta omega mu s beta xi z", real=True)
    loss = log_sigmoid(om * (mu + s * xi) + beta) + log_sigmoid(-(om * (th + s * z) + beta))
    return Model(
        name="gaussian-gan",
        description="Gaussian-mean GAN: data N(mu, s^2), generator theta + s z, discriminator sigmoid(omega x + beta).",
        loss=loss,
        players=(Player("theta", "min", (th,)), Player("omega", "max", (om,))),
        noises=(xi, z),
        parameters=(
            Parameter(mu, 1.0, "real", "data mean"),
            Parameter(s, 1.0, "positive", "data and generator standard deviation"),
            Parameter(beta, 0.0, "real", "fixed discriminator bias"),
        ),
        eta=0.1,
        batch_size=1,
        domain={"theta": (-1.0, 3.0), "omega": (-2.0, 2.0)},
        quadrature_order=40,
    )


def local_quadratic() -> Model:
    """Dimensionless local model (design section 4): dY = -u Y dtau + u dW, cost Y^2.

    l = y^2/2 - zeta y gives grad g = y and Sigma = 1; with eta = 1 and batch 1
    the controlled SDE is exactly dY = -u Y dtau + u dW. Terminal cost y^2.
    """
    y, zeta = sp.symbols("y zeta", real=True)
    return Model(
        name="local-quadratic",
        description="Dimensionless local model dY = -u Y dtau + u dW with terminal cost Y^2.",
        loss=y**2 / 2 - zeta * y,
        players=(Player("y", "min", (y,)),),
        noises=(zeta,),
        eta=1.0,
        batch_size=1,
        domain={"y": (-6.0, 6.0)},
        terminal=y**2,
        horizon=2.0,
        time_name="tau",
        solve_defaults=LOCAL_QUADRATIC_SOLVE,
    )


def local_discrete() -> Model:
    """Dimensionless discrete local model (design section 4b), one training step per unit of time.

    Y_{k+1} = (1 - h u_k) Y_k - u_k sqrt(h) xi_k, cost E[Y_K^2]: the iteration
    x_{k+1} = x_k - eta u_k (grad g + noise) with eta = 1, l = h y^2/2 - sqrt(h) zeta y
    (grad g = h y, Sigma = h) and terminal cost y^2. h = eta a is the step in curvature units;
    t counts steps, and tau = h t is the local model's dimensionless time.
    """
    y, zeta, h = sp.symbols("y zeta h", real=True)
    return Model(
        name="local-discrete",
        description="Dimensionless discrete local model Y_{k+1} = (1 - h u) Y_k - u sqrt(h) xi_k "
                    "with terminal cost Y_K^2.",
        loss=h * y**2 / 2 - sp.sqrt(h) * zeta * y,
        players=(Player("y", "min", (y,)),),
        noises=(zeta,),
        parameters=(Parameter(h, 0.1, "positive", "step in curvature units, h = eta a"),),
        eta=1.0,
        batch_size=1,
        domain={"y": (-6.0, 6.0)},
        terminal=y**2,
        horizon=20.0,
        time_name="k",
        solve_defaults=LOCAL_DISCRETE_SOLVE,
    )


CANONICAL = {
    "quadratic": quadratic,
    "quadratic-game": quadratic_game,
    "dirac-gan": dirac_gan,
    "gaussian-gan": gaussian_gan,
    "local-quadratic": local_quadratic,
    "local-discrete": local_discrete,
}
