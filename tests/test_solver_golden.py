"""The grid and Bellman solvers reproduce values recorded before their rules were unified.

``tests/golden/solver_golden.npz`` holds the value function and the controls at t = 0 (every
``STRIDE``-th node per axis) of the cases below, computed by the solvers of commit cfc63ae,
before the solvers took their coefficients and control rules from the derivation through the
compiled-rule layer. Every later solver must reproduce them to round-off.

Tolerance: the new rules compute the clipped ratio as clip(A / B) where the old kernels compared
A with u_min B and u_max B first; the two differ by one rounding of the ratio at a clip point,
and such differences stay at the level of 1e-15 relative per step. 1e-11 relative to max(1, |V|)
allows thousands of steps of that.

Regenerate (only on code that is known to be right; the point is to catch change):
``PYTHONPATH=. python tests/test_solver_golden.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from stochctl.models import Model, Player, get_model
from stochctl.solvers import Grid, solve
from stochctl.solvers.bellman import solve_discrete
from stochctl.solvers.bellman_game import solve_discrete_game
from stochctl.symbolic import BatchControl, ControlProblem

DATA = Path(__file__).parent / "golden" / "solver_golden.npz"
STRIDE = 3
RTOL = 1e-11


def _bowl() -> Model:
    x, y, z1, z2 = sp.symbols("x y zeta1 zeta2", real=True)
    return Model(name="bowl", description="two-coordinate quadratic", loss=(x**2 + 2 * y**2) / 2 - z1 * x - z2 * y / 2,
                 players=(Player("p", "min", (x, y)),), noises=(z1, z2), eta=0.2,
                 domain={"x": (-2.0, 2.0), "y": (-2.0, 2.0)}, horizon=1.0)


def _tri() -> Model:
    x, y, w, z1, z2, z3 = sp.symbols("x y w zeta1 zeta2 zeta3", real=True)
    return Model(name="tri", description="3D", loss=(x**2 + y**2) / 2 + x * w - w**2 / 2 - (z1 * x + z2 * y + z3 * w) / 2,
                 players=(Player("a", "min", (x, y)), Player("b", "max", (w,))), noises=(z1, z2, z3), eta=0.1,
                 domain={"x": (-1, 1), "y": (-1, 1), "w": (-1, 1)})


def _model(name):
    return {"bowl": _bowl, "tri": _tri}.get(name, lambda: get_model(name))()


# name: (model, problem options, points, boundary, solver, solver options)
CASES = {
    "quadratic-explicit": ("quadratic", {}, (61,), "linear", "pde", dict(scheme="explicit", horizon=0.5)),
    "quadratic-running-implicit": ("quadratic", {"running_cost": "x2"}, (61,), ("reflecting", "dirichlet"), "pde",
                                   dict(scheme="implicit", dt=0.01, horizon=0.5)),
    "quadratic-batch-explicit": ("quadratic", {"batch": (1, 8, 0.05), "u_max": 2.0}, (51,), "linear", "pde",
                                 dict(scheme="explicit", horizon=0.5)),
    "quadratic-batch-implicit": ("quadratic", {"batch": (1, 8, 0.05), "u_max": 2.0}, (51,), "linear", "pde",
                                 dict(scheme="implicit", dt=0.01, horizon=0.5)),
    "local-quadratic-implicit": ("local-quadratic", {}, (201,), "linear", "pde",
                                 dict(scheme="implicit", dt=0.01, horizon=1.0)),
    "local-quadratic-explicit": ("local-quadratic", {"u_max": 1.5}, (101,), "linear", "pde",
                                 dict(scheme="explicit", horizon=0.5)),
    "dirac-gan-isaacs": ("dirac-gan", {}, (31, 29), (("dirichlet", "reflecting"), ("linear", "reflecting")), "pde",
                         dict(scheme="explicit", horizon=0.3)),
    "dirac-gan-c-isaacs": ("dirac-gan", {"params": {"c": 0.4}, "u_max": 1.5}, (25, 25), "linear", "pde",
                           dict(scheme="explicit", horizon=0.3)),
    "quadratic-game-isaacs": ("quadratic-game", {"u_max": 2.0}, (30, 31), "linear", "pde",
                              dict(scheme="explicit", horizon=0.3)),
    "quadratic-game-batch-isaacs": ("quadratic-game", {"batch": (1, 16, 0.01)}, (25, 27), "reflecting", "pde",
                                    dict(scheme="explicit", horizon=0.3)),
    "gaussian-gan-isaacs": ("gaussian-gan", {}, (21, 21), "linear", "pde", dict(scheme="explicit", horizon=0.1)),
    "bowl-explicit": ("bowl", {}, (25, 27), (("linear", "reflecting"), "dirichlet"), "pde",
                      dict(scheme="explicit", horizon=0.3)),
    "bowl-implicit": ("bowl", {}, (25, 27), "linear", "pde", dict(scheme="implicit", dt=0.02, horizon=0.3)),
    "tri-isaacs-3d": ("tri", {"noise": "independent"}, (9, 10, 11), (("linear", "reflecting"), "dirichlet", "linear"),
                      "pde", dict(scheme="explicit", horizon=0.2)),
    "local-discrete-bellman": ("local-discrete", {"u_max": 4.0}, (241,), "linear", "bellman", dict(steps=5)),
    "quadratic-game-bellman": ("quadratic-game", {}, (21, 21), "linear", "bellman-game", dict(steps=3)),
}


def _problem(name, options):
    model = _model(name)
    opts = dict(options)
    if "params" in opts:
        model = model.with_params(**opts.pop("params"))
    if opts.get("running_cost") == "x2":
        opts["running_cost"] = model.state_symbols[0] ** 2
    if "batch" in opts:
        opts["batch"] = BatchControl(*opts["batch"])
    return ControlProblem.from_model(model, **opts)


def run_case(case: str) -> dict[str, np.ndarray]:
    """Value and controls at the first level of ``case`` on every STRIDE-th node."""
    name, options, points, boundary, solver, solver_options = CASES[case]
    problem = _problem(name, options)
    model = problem.model
    lo = [model.domain[s][0] for s in model.state_names]
    hi = [model.domain[s][1] for s in model.state_names]
    if solver == "pde":
        grid = Grid(model.state_names, lo, hi, points, boundary)
        sol = solve(problem, grid, store_every=10**9, progress=False, **solver_options)
    elif solver == "bellman":
        sol = solve_discrete(problem, Grid(model.state_names, lo, hi, points), store_every=10**9, progress=False,
                             **solver_options)
    else:
        sol = solve_discrete_game(problem, Grid(model.state_names, lo, hi, points), progress=False, **solver_options)
    sub = tuple(slice(None, None, STRIDE) for _ in points)
    out = {"value": np.asarray(sol.values[0])[sub]}
    for key, arr in sorted(sol.controls.items()):
        out[key] = np.asarray(arr[0])[sub]
    return out


@pytest.fixture(scope="module")
def golden():
    with np.load(DATA) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.parametrize("case", sorted(CASES))
def test_solver_reproduces_recorded_values(case, golden):
    got = run_case(case)
    keys = sorted(k.split("/", 1)[1] for k in golden if k.startswith(case + "/"))
    assert keys == sorted(got), (case, keys, sorted(got))
    scale = max(1.0, float(np.max(np.abs(golden[f"{case}/value"]))))
    for key in keys:
        want = golden[f"{case}/{key}"]
        assert got[key].shape == want.shape
        tol = RTOL * (scale if key == "value" else max(1.0, float(np.max(np.abs(want)))))
        assert np.max(np.abs(got[key] - want)) <= tol, (case, key, float(np.max(np.abs(got[key] - want))))


def _write():
    arrays = {}
    for case in sorted(CASES):
        for key, arr in run_case(case).items():
            arrays[f"{case}/{key}"] = arr
        print(case, "done", flush=True)
    DATA.parent.mkdir(exist_ok=True)
    np.savez_compressed(DATA, **arrays)


if __name__ == "__main__":
    _write()
