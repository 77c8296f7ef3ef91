"""The ablation's method variants (registered on import) and its run plans (``ablate.py PLAN``).

Every variant changes one factor of ``sgd+min`` (both players at the smaller of their two discrete-
policy multipliers, field measure, infinitesimal one-sided difference, every 10 steps, u_max 1):
``-step``/``-secant``/``-jvp`` the displacement of the measurement (item 2), ``-u2``/``-u4`` the
policy's u_max (item 5), ``-every1``/``-every20`` the measuring interval (item 4).
"""

from __future__ import annotations

from stochctl.study.methods import METHODS, PEER_METHODS, Measured, Method, Players, register

SGD_GRID = (0.01, 0.0316, 0.1, 0.316, 1.0, 10.0)
ADAM_GRID = (1e-4, 1e-3, 1e-2)
ALL_TASKS = ("ring8", "grid25", "sp500", "gauss1d", "data")
FACTOR_TASKS = ("data", "gauss1d")

FACTORS = {
    "sgd+min-step": dict(displacement="step"),
    "sgd+min-secant": dict(displacement="secant"),
    "sgd+min-jvp": dict(displacement="jvp"),
    "sgd+min-u2": dict(u_max=2.0),
    "sgd+min-u4": dict(u_max=4.0),
    "sgd+min-every20": dict(every=20),
    "sgd+min-every1": dict(every=1),
}
for _name, _kw in FACTORS.items():
    if _name not in METHODS:
        register(Method(_name, "sgd", Players("sgd", Measured("discrete", pairing="min", **_kw)), controlled=True,
                        baseline="sgd"))

FIRST_FACTORS = ("sgd+min-secant", "sgd+min-step", "sgd+min-u4", "sgd+min-every20", "sgd+min-jvp")
"""Run first; ``-u2`` and ``-every1`` (3 to 4 times the measuring cost) after the Adam-family runs."""

ALL = tuple(m for m in METHODS if not METHODS[m].legacy and m not in PEER_METHODS)  # the SGD/Adam family only

TUNED = "tuned"
"""In a plan's rates: the baseline's tuned rate on the task (from the results so far)."""

CORE_TASKS = ("data", "gauss1d")
OTHER_TASKS = ("ring8", "grid25", "sp500")
CANDIDATES = ("sgd+discrete-unpaired", "sgd+min")
"""The per-player rule of study v2 (every 10 steps; ``sgd+discrete`` until this ablation) and the paired rule."""
GAME = ("sgd+game", "sgd+game-min")

PLANS = {
    "sgd-base": [(("sgd",), SGD_GRID, ALL_TASKS)],
    "core": [(CANDIDATES, (TUNED, 0.1, 1.0, 10.0), CORE_TASKS)],
    "game": [(GAME, (TUNED, 10.0), CORE_TASKS)],
    "factors": [(FIRST_FACTORS, (TUNED, 10.0), FACTOR_TASKS)],
    "others-rec": [(("sgd+min-every20",), (TUNED, 1.0), OTHER_TASKS)],
    "rec-more": [(("sgd+min-every20",), (0.1, 1.0), CORE_TASKS), (("sgd+min-every20",), (0.1, 10.0), OTHER_TASKS)],
    "others": [(CANDIDATES, (TUNED, 1.0), OTHER_TASKS)],
    "others-more": [(CANDIDATES, (0.1, 10.0), OTHER_TASKS)],
    "divsweep": [(("sgd+min",), (0.001, 100.0), ALL_TASKS, (0,))],
    "divsweep-rec": [(("sgd+min-every20",), (0.001, 100.0), ALL_TASKS, (0, 1, 2))],
    "adam-base": [(("adam",), ADAM_GRID, ALL_TASKS)],
    "adam-ctl": [(("adam+min", "adam+discrete"), (TUNED,), ALL_TASKS)],
    "factors-more": [(tuple(f for f in FACTORS if f not in FIRST_FACTORS), (TUNED, 10.0), FACTOR_TASKS)],
    "game-more": [(GAME, (0.1, 1.0), CORE_TASKS), (GAME + ("sgd+game-nash",), (TUNED, 1.0), OTHER_TASKS)],
}
