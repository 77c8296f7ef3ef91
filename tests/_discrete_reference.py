"""Fresh Bellman solves of the discrete local model in its own variables (u_max, h, y), for table checks."""

import math

import numpy as np

from stochctl.models import get_model
from stochctl.solvers.bellman import solve_discrete
from stochctl.solvers.grid import Grid
from stochctl.symbolic.problem import ControlProblem

Z_CAP = 64.0


def fresh_solve(u_max, h, steps, y_reach=6.0, points=1201):
    """solve_discrete of local-discrete at (h, u_max) with ``steps`` steps, on y in [-Y, Y].

    Y covers ``y_reach`` and |w| = sqrt(h) |y| <= 30 (spacing 0.01 in y, at most 0.02 in w); the
    bracket has at most 0.25 between its points in z = h u, so that a large cap Z = h u_max does not hide the optimum (z* < 1). Caps
    Z = h u_max above Z_CAP are solved at Z_CAP (u_max = Z_CAP / h): a cap above 1 does not bind
    (``test_a_cap_above_one_does_not_bind``), and the bracket would need 4 Z points.
    """
    u_max = min(u_max, Z_CAP / h)
    Y = max(1.05 * y_reach, 6.0 if h <= 1 else 30.0 / math.sqrt(h))
    dy = 0.01 if h <= 1 else 0.02 / math.sqrt(h)  # as the default grid; at most 0.02 in w = sqrt(h) y
    points = max(points, 2 * math.ceil(Y / dy) + 1)
    problem = ControlProblem.from_model(get_model("local-discrete", h=h), u_max=u_max)
    grid = Grid.from_domain({"y": (-Y, Y)}, points, "linear")
    bracket = max(33, math.ceil(4 * h * u_max) + 1)
    return solve_discrete(problem, grid, steps=steps, u_bracket=bracket, progress=False)


def fresh_policy(sol, n, y):
    """u* with n (whole, 1..steps) steps left at y, linear in y between the solve's nodes."""
    nodes = sol.grid.axes[0]
    rows = sol.controls[f"u_{sol.players[0]}"][::-1]  # row n - 1: n steps left
    n = np.asarray(n, dtype=int)
    y = np.clip(np.asarray(y, dtype=float), nodes[0], nodes[-1])
    return np.array([np.interp(yi, nodes, rows[ni - 1]) for ni, yi in zip(n.ravel(), y.ravel())]).reshape(y.shape)


def draws(rng, h, m):
    """m values of y, both signs: half uniform in [-6, 6], half from the trainer's SNR uniform in
    [0, 0.999) (y = sqrt(SNR / (1 - SNR) / h)); |y| <= 12 for h <= 1, |sqrt(h) y| <= 28 beyond."""
    snr = rng.uniform(0.0, 0.999, m // 2)
    y = np.concatenate([rng.uniform(-6, 6, m // 2), rng.choice([-1.0, 1.0], m // 2) * np.sqrt(snr / (1 - snr) / h)])
    reach = 12.0 if h <= 1 else 28.0 / math.sqrt(h)
    return np.clip(y, -reach, reach)


def compare(table, u_max, h, steps, m=400):
    """|u_table - u_fresh| at m random (n, y) for one fresh solve of ``steps`` steps at (u_max, h).

    n: half short (1..20), half log-uniform in [1, steps]; y from :func:`draws`. Returns a dict with
    the errors and the points; deterministic for given arguments.
    """
    from stochctl.tables.discrete_policy import lookup

    rng = np.random.default_rng(int(1e6 * h) + int(10 * u_max))
    y = draws(rng, h, m)
    sol = fresh_solve(u_max, h, steps, y_reach=float(np.abs(y).max()))
    n = np.where(rng.uniform(size=m) < 0.5, rng.integers(1, 21, m),
                 np.exp(rng.uniform(0, math.log(steps), m)).astype(int)).clip(1, steps)
    ok = reliable_levels(sol)[n - 1]
    n, y = n[ok], y[ok]
    ref = fresh_policy(sol, n, y)
    got, status = lookup(table, u_max, h, n * h, y)
    return {"err": np.abs(got - ref), "n": n, "y": y, "ref": ref, "got": got, "status": status, "solution": sol,
            "dropped": int((~ok).sum())}


VALUE_FLOOR = 1e-8
"""solve_discrete does not renormalise: V_n decays to 0 with n and, near the floating-point floor
(about 1e-13 at Z = 1 after some 200 steps), its minimiser is noise. Levels with max V_n below this
are not used as a reference."""


def reliable_levels(sol):
    """Boolean per n = 1..steps: max V_n above :data:`VALUE_FLOOR`."""
    by_n = sol.values[::-1]  # row n: V_n
    return by_n[1:].max(axis=1) > VALUE_FLOOR
