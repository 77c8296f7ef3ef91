"""Record the golden outputs of the explosion analysis and the Monte Carlo checks.

Run from the repository root: ``python tests/golden/record_explosion_golden.py``. It
writes ``tests/golden/explosion_golden.json``, which ``tests/test_explosion_golden.py``
asserts. The values were first recorded at commit cfc63ae, before the explosion module
was split and its simulator shared with the Monte Carlo checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stochctl.analysis import explosion as ex
import sympy as sp

from stochctl.models import Model, Parameter, Player, get_model
from stochctl.solvers import Grid, solve
from stochctl.solvers.montecarlo import GridPolicy, simulate_constant, simulate_iteration, simulate_policy
from stochctl.symbolic.problem import ControlProblem

OUT = Path(__file__).with_name("explosion_golden.json")


def noisy_game(s: float = 0.6, *, max_first: bool = False) -> Model:
    """g = (a + s z1) th^2/2 + b th om - (c + s z2) om^2/2 (multiplicative noise per player).

    ``max_first`` lists the max player first, so that alternating updates move omega first.
    """
    th, om, a, b, c, s_, z1, z2 = sp.symbols("theta omega a b c s zeta1 zeta2", real=True)
    loss = (a + s_ * z1) * th**2 / 2 + b * th * om - (c + s_ * z2) * om**2 / 2
    players = (Player("theta", "min", (th,)), Player("omega", "max", (om,)))
    return Model(name="noisy-game-max-first" if max_first else "noisy-game", description="golden", loss=loss,
                 players=players[::-1] if max_first else players, noises=(z1, z2),
                 parameters=(Parameter(a, 1.0), Parameter(b, 1.0), Parameter(c, 0.5), Parameter(s_, s)))


def _model(name, params):
    if name in ("noisy-game", "noisy-game-max-first"):
        return noisy_game(**params, max_first=name.endswith("max-first"))
    return get_model(name, **params)

THRESHOLD_CASES = [
    ("quadratic", {"a": 1.0, "s": 1.0}, {"x": 0.7}, dict(multipliers=2.0, batch_size=4)),
    ("quadratic", {"a": 2.0, "s": 0.3, "sigma": 0.5}, {"x": -1.0}, {}),
    ("quadratic-game", {"a": 1.0, "b": 1.5, "c": 0.5}, {"theta": 0.3, "omega": -0.2}, {}),
    ("quadratic-game", {"a": 0.5, "b": 1.0, "c": 0.2}, {"theta": 0.0, "omega": 0.0},
     dict(multipliers={"theta": 0.7, "omega": 1.3})),
    ("dirac-gan", {"c": 0.0}, {"theta": 0.0, "omega": 0.0}, {}),
    ("dirac-gan", {"c": 1.0}, {"theta": 1.0, "omega": 0.0}, {}),
    ("dirac-gan", {"c": 1.0}, {"theta": 0.4, "omega": -0.3}, dict(multipliers={"theta": 2.0, "omega": 0.5})),
    ("gaussian-gan", {}, {"theta": 0.5, "omega": 0.2}, {}),
    ("local-discrete", {}, {"y": 1.0}, {}),
    ("noisy-game", {"s": 0.6}, {"theta": 0.0, "omega": 0.0}, {}),
    ("noisy-game-max-first", {"s": 0.6}, {"theta": 0.0, "omega": 0.0}, {}),
]

SIM_CASES = [  # (model, params, start, etas, kwargs)
    ("quadratic", {"a": 1.0, "s": 1.0}, {"x": 1.0}, [0.5, 1.5, 2.5], dict(noise="sample", paths=200, steps=300,
                                                                          bound=1e12, seed=3)),
    ("quadratic", {"a": 1.0, "s": 0.5, "sigma": 0.3}, {"x": 1.0}, [0.5, 1.9, 2.2],
     dict(noise="gaussian", paths=200, steps=300, seed=4)),
    ("quadratic-game", {"a": 1.0, "b": 1.5, "c": 0.5}, {"theta": 0.5, "omega": 0.5}, [0.2, 0.6, 1.2],
     dict(update="simultaneous", paths=200, steps=300, seed=5)),
    ("quadratic-game", {"a": 1.0, "b": 1.5, "c": 0.5}, {"theta": 0.5, "omega": 0.5}, [0.2, 0.6, 1.2],
     dict(update="alternating", paths=200, steps=300, seed=5)),
    ("dirac-gan", {"c": 1.0}, {"theta": 1.01, "omega": 0.01}, [0.5, 2.0, 5.0],
     dict(update="alternating", noise="sample", paths=100, steps=200, seed=6)),
]

MOMENT_CASES = [
    ("quadratic", {"a": 1.0, "s": 1.0}, {"x": 1.0}, [0.3, 1.0, 1.4], dict(noise="sample", paths=4000, steps=8, seed=1)),
    ("noisy-game", {"s": 0.5}, {"theta": 0.5, "omega": -0.5}, [0.1, 0.5],
     dict(update="simultaneous", noise="sample", paths=4000, steps=6, seed=2)),
    ("noisy-game", {"s": 0.5}, {"theta": 0.5, "omega": -0.5}, [0.1, 0.5],
     dict(update="alternating", noise="sample", paths=4000, steps=6, seed=2)),
    ("noisy-game-max-first", {"s": 0.5}, {"omega": -0.5, "theta": 0.5}, [0.1, 0.5],
     dict(update="alternating", noise="sample", paths=4000, steps=6, seed=2)),
    ("quadratic-game", {"a": 1.0, "b": 1.0, "c": 0.5, "sigma": 0.4}, {"theta": 0.5, "omega": -0.5}, [0.1, 0.5],
     dict(update="alternating", noise="gaussian", paths=4000, steps=6, seed=2)),
]


def _clean(v):
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if np.isfinite(f) else str(f)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def thresholds():
    out = []
    for name, params, point, kw in THRESHOLD_CASES:
        r = ex.explosion_thresholds(_model(name, params), point, **kw)
        d = r.as_dict()
        out.append({"case": [name, params, point, kw], "result": {c: d[c] for c in r.criteria},
                    "eigenvalues": d["eigenvalues"]})
    return out


def maps():
    out = []
    problem = ControlProblem.from_model(get_model("dirac-gan", c=1.0), eta=0.5, u_max=4.0, horizon=0.5)
    sol = solve(problem, Grid.for_problem(problem, points=21), progress=False)
    for eta in (None, 0.2):
        emap = ex.explosion_map(sol, problem, eta=eta)
        out.append({"case": ["dirac-gan", eta], "fractions": emap.fractions,
                    "explodes": {c: int(np.sum(m)) for c, m in emap.explodes.items()},
                    "critical_sum": {c: float(np.sum(np.where(np.isfinite(v), v, 0.0)))
                                     for c, v in emap.critical_eta.items()}})
    problem = ControlProblem.from_model(get_model("quadratic", a=1.0, s=1.0), eta=1.0, u_max=2.0, horizon=0.5)
    sol = solve(problem, Grid.for_problem(problem, points=41), progress=False)
    emap = ex.explosion_map(sol, problem)
    out.append({"case": ["quadratic", None], "fractions": emap.fractions,
                "explodes": {c: int(np.sum(m)) for c, m in emap.explodes.items()},
                "critical_sum": {c: float(np.sum(np.where(np.isfinite(v), v, 0.0)))
                                 for c, v in emap.critical_eta.items()}})
    return out


def simulations():
    out = []
    for name, params, start, etas, kw in SIM_CASES:
        sim = ex.simulate_explosion(_model(name, params), start, etas, **kw)
        out.append({"case": [name, params, start, etas, kw], "counts": sim.counts,
                    "step_sum": sim.explosion_step.sum(axis=1), "ci_low": sim.ci_low, "ci_high": sim.ci_high})
    return out


def moments():
    out = []
    for name, params, start, etas, kw in MOMENT_CASES:
        m = ex.simulate_second_moment(_model(name, params), start, etas, **kw)
        out.append({"case": [name, params, start, etas, kw], "mean": m.mean, "stderr": m.stderr,
                    "growth_rate": m.growth_rate, "predicted_rate": m.predicted_rate})
    return out


def montecarlo():
    out = []
    q = ControlProblem.from_model(get_model("quadratic", a=2.0, s=1.0, sigma=0.5), horizon=3.0, batch_size=4)
    r = simulate_iteration(q, 0.8, [1.0], paths=4000, seed=5)
    out.append({"case": "sgd", "mean": r.mean, "stderr": r.stderr, "cost_sum": float(r.costs.sum())})
    g = ControlProblem.from_model(get_model("quadratic-game", a=1.0, b=1.5, c=0.5, sigma=0.5), horizon=2.5)
    for alg in ("simultaneous", "alternating"):
        r = simulate_iteration(g, {"theta": 0.7, "omega": 0.4}, [0.5, -0.4], algorithm=alg, paths=4000, seed=9,
                               keep_paths=2)
        out.append({"case": alg, "mean": r.mean, "stderr": r.stderr, "cost_sum": float(r.costs.sum()),
                    "sample": r.sample})
    d = ControlProblem.from_model(get_model("dirac-gan", c=1.0), eta=0.5, u_max=2.0, horizon=0.5)
    sol = solve(d, Grid.for_problem(d, points=21), progress=False)
    for alg in ("simultaneous", "alternating"):
        r = simulate_iteration(d, sol, [0.8, 0.2], algorithm=alg, paths=2000, seed=3, antithetic=True)
        out.append({"case": f"dirac-{alg}", "mean": r.mean, "stderr": r.stderr, "cost_sum": float(r.costs.sum())})
    r = simulate_policy(d, sol, [0.8, 0.2], paths=2000, seed=3)
    out.append({"case": "dirac-euler", "mean": r.mean, "stderr": r.stderr, "cost_sum": float(r.costs.sum())})
    rev = ControlProblem.from_model(noisy_game(0.0, max_first=True).with_options(domain={"theta": (-2.0, 2.0),
                                                                                           "omega": (-2.0, 2.0)}),
                                    horizon=1.0)
    r = simulate_iteration(rev, {"theta": 0.7, "omega": 0.4}, {"omega": -0.4, "theta": 0.5}, algorithm="alternating",
                           paths=4, seed=9, keep_paths=1)
    out.append({"case": "max-first-alternating", "mean": r.mean, "stderr": r.stderr,
                "cost_sum": float(r.costs.sum()), "sample": r.sample})
    r = simulate_constant(q, 0.7, [1.2], paths=4000, steps=50, seed=11, antithetic=True)
    out.append({"case": "euler-constant", "mean": r.mean, "stderr": r.stderr, "cost_sum": float(r.costs.sum())})
    return out


def record() -> dict:
    return _clean({"thresholds": thresholds(), "maps": maps(), "simulations": simulations(), "moments": moments(),
                   "montecarlo": montecarlo()})


if __name__ == "__main__":
    OUT.write_text(json.dumps(record(), indent=1) + "\n")
    print(f"wrote {OUT}")
