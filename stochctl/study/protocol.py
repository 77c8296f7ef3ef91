"""The study protocol, fixed before any result is seen and the same for every method.

Version 3 (:func:`full_config`, :func:`quick_config`), where it differs from version 2 below:

- Equal budget: every run of a task gets the same number of gradient evaluations
  (:data:`FULL_GRAD_EVALS`: twice v2's steps, what plain SGD spends in them), counted as they
  happen (both players' step gradients, every loss-closure call of a scheduler); a step starts only
  while the step's own gradients fit in what is left, so a run overshoots the budget by at most one
  step's curvature measurement. A method that measures, extrapolates or evaluates twice takes fewer
  steps; the steps are reported beside the gradient evaluations. The controlled methods' horizon K
  is the steps the budget buys at the method's nominal cost (its step gradients plus its measurements
  every :data:`~stochctl.study.methods.CURVATURE_EVERY` steps). ``--steps`` sets a budget in steps
  instead (:meth:`StudyConfig.select`).
- Splits: returns tasks train on the first 60% of the series by date, validate on the next 20% and
  test on the last 20%; mixtures and ``gauss1d`` draw their validation and test samples from
  separate seeds (:mod:`stochctl.study.tasks_v3`). Metrics are evaluated on both splits at
  :data:`EVALUATIONS` points evenly spaced in gradient evaluations; the tuned rate is chosen on
  validation only, tables report test (:mod:`stochctl.study.practice`).
- Defaults: every method with a rate also runs at its documented default
  (:attr:`~stochctl.study.methods.Method.default`), untuned; a method without a rate runs once per
  seed (at the neutral value :data:`NO_RATE`).
- Seeds: 10 (0..9) in the full configuration, 1 in the quick one (3 rates per family, 200 gradient
  evaluations, 3 evaluations).
- Robust range at tolerances :data:`TOLERANCES`; expected best after k random trials of the grid for
  k in :data:`TRIALS`; gradient evaluations to first reach within :data:`REACH` of the task's best.
- Returns metrics add ``w1_5d``, the W1 of 5-day aggregated returns.

Version 2:

- Learning-rate grids, three points per decade: SGD family (``sgd``, ``csgd``,
  ``sgd+...``) ``1e-3 10^(j/3)``, j = 0..15 (1e-3 to 1e2: a decade below
  SGD's usual 1e-2 up to rates at which plain SGD leaves the parameter-norm
  bound within a few steps on every task); Adam family (``adam``, ``ttur``,
  ``gap``, ``adam+...``) ``1e-5 10^(j/3)``, j = 0..18 (1e-5 to 10: one to two
  decades below Adam's usual 1e-4 to 1e-3, up to 10, where Adam leaves the
  bound at the first step on the three MLP tasks). Adam's step is bounded by
  its rate in every coordinate, so on ``gauss1d`` (5 parameters) it never
  leaves the norm bound, even at 100 over 2,000 steps; there the top of the
  grid is where its quality is far off instead. (The Adam grid first ended
  at 1; a smoke run showed Adam at 1 inside the bound on every task, so it
  was extended to 10 before any full run.) ``ttur``'s base rate is its
  generator rate (the discriminator runs at 4 times it). ``--lrs`` replaces
  both grids.
- Seeds: 5 in the full configuration (0..4), 1 in the quick one. A seed fixes
  the network initialisation and the data stream, identical across methods
  and rates.
- Step budget per task (one step = one discriminator and one generator update):
  full ``ring8`` 3000, ``grid25`` 3000, ``sp500`` 2000, ``gauss1d`` 2000,
  ``data`` 2000, with 15 evenly spaced evaluations. Quick: 4 rates per
  family spread over the whole grid (1e-3, 0.046, 2.2, 100 and 1e-5, 1e-3,
  0.1, 10), 1 seed, 150 steps, 3 evaluations.
- Equal budget: every run reports its gradient evaluations next to its
  steps (:mod:`stochctl.study.methods`).
- Curvature schedule of the measured methods: every 10 steps (the recommended
  ``sgd+discrete`` / ``adam+discrete``: every 20, paired, since the controller
  ablation, ``results/controller-ablation``), and at any
  step where a player's gradient norm has more than doubled since its last
  measurement. (First every step; before any full run it was set to 10,
  because measuring the field at every step costs about 4 base steps and
  would have made the full run take about 6.5 hours on 2 cores; the
  doubling trigger keeps a stale curvature from carrying a rate into an
  explosion.)
- Divergence: a run diverges at the first step where a loss or a parameter is
  not finite, or the Euclidean norm of either network's parameter vector
  exceeds :data:`NORM_BOUND` (1e3; the MLPs start near 10, ``gauss1d``'s
  networks below 1); it stops there.
- Quality: the task's primary metric at the final step (``ring8``/``grid25``
  energy distance, ``sp500``/``data`` held-out Wasserstein-1, ``gauss1d``
  Wasserstein-1), with the secondary metrics of :mod:`stochctl.study.tasks`.
- Robust range of a method on a task: the longest run of consecutive grid
  rates at which no seed diverged and the median final primary metric is
  within :data:`ROBUST_TOLERANCE` (20%) of the task's best (the best median
  over every method and rate of the study), in decades (number of rates
  times the grid spacing, 1/3 decade).
- Threshold criterion (kept from the first study, reported as the stable
  range): mixtures: at least three quarters of the modes covered with the 1%
  floor and at least 50% high-quality samples; returns: held-out W1 <= 0.25
  and absolute-return ACF score <= 0.30; ``gauss1d``: W2 <= 0.05. The stable
  range is the longest run of rates at which at least :data:`STABLE_FRACTION`
  of the seeds reach it.
- Best (tuned) base rate of a method: the grid rate with the best median
  final primary metric over seeds (diverged runs count as the worst value).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace

from ..errors import InputError
from .methods import DISCRETE_TABLE, FAMILY_NAMES, METHOD_NAMES, METHODS, check_method, get_method
from .spec import _OPS, POINTS_PER_DECADE, SWEEP_DECADES, SWEEP_POINTS, DataSpec, Job, Threshold  # noqa: F401
from .spec import _data_task, _reload_data, decade_grid, log_sweep, step_cost  # noqa: F401
from .tasks import DATA_TASK, TASK_NAMES, get_task
from .tasks_v3 import get_split_task

PROTOCOL_VERSION = 3
VERSIONS = (2, 3)


def code_fingerprint(policy_table: str = "local-quadratic") -> str:
    """SHA-256 (16 hex digits) of the code and table that shape the training runs.

    Covers the sources of ``stochctl.study``, ``stochctl.tables``, ``stochctl.policies`` and
    ``stochctl.trainers`` (subpackages included), the
    bytes of the policy table file and of the discrete-time table the measured
    methods read, so a folder of results is never resumed by
    code or a table that would produce different rows.
    """
    from pathlib import Path

    from ..tables import SHIPPED_TABLES, packaged_table_path

    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for sub in ("study", "tables", "policies", "trainers"):
        for path in sorted((root / sub).rglob("*.py")):
            h.update(f"{path.relative_to(root).as_posix()}\n".encode())
            h.update(path.read_bytes())
    table_path = packaged_table_path(policy_table) if policy_table in SHIPPED_TABLES else Path(policy_table)
    if table_path.is_file():
        h.update(table_path.read_bytes())
    h.update(packaged_table_path(DISCRETE_TABLE).read_bytes())  # the measured methods' policy
    return h.hexdigest()[:16]
FAMILY_DEFAULTS = {"sgd": 1e-2, "adam": 1e-3}
"""Usual rates of the families (the per-rate tables show rates relative to them)."""
GRID_LOW = {"sgd": 1e-3, "adam": 1e-5}
GRID_DECADES = {"sgd": 5, "adam": 6}
NORM_BOUND = 1e3
STABLE_FRACTION = 0.8
ROBUST_TOLERANCE = 0.2
EVALUATIONS = 15
FULL_STEPS = {"ring8": 3000, "grid25": 3000, "sp500": 2000, "gauss1d": 2000, DATA_TASK: 2000}
QUICK_STEPS = {t: 150 for t in FULL_STEPS}
QUICK_EVALUATIONS = 3
QUICK_RATES = 4
FULL_SEEDS = 10
QUICK_SEEDS = 1
V2_FULL_SEEDS = 5
FULL_GRAD_EVALS = {t: 2 * k for t, k in FULL_STEPS.items()}
"""Gradient-evaluation budget per task (v3): what plain SGD spends in v2's steps."""
QUICK_GRAD_EVALS = {t: 200 for t in QUICK_STEPS}
QUICK_V3_RATES = 3
TOLERANCES = (0.1, 0.2, 0.3, 0.5)
TRIALS = (1, 2, 4, 8)
REACH = (0.2, 0.5)
NO_RATE = 1.0
"""The ``lr`` recorded for a method without a rate (it runs once per seed; the value is not a rate)."""


GRIDS = {f: decade_grid(GRID_LOW[f], GRID_DECADES[f]) for f in FAMILY_NAMES}
"""The full learning-rate grid of each family (module docstring)."""
GRIDS.update({
    "lr-free": tuple(float(f"{10 ** (j / 3):.12g}") for j in range(-5, 6)),
    "schedulefree": tuple(float(f"{0.0025 * 10 ** (j / 3):.12g}") for j in range(-6, 7)),
    "garch": (1.0,),
})
"""The peers' families (:data:`~stochctl.study.methods.PEER_FAMILIES`), three points per decade through
each documented default: the learning-rate-free multiplier ``10^(j/3)``, j = -5..5 (0.022 to 46, default
1); schedule-free AdamW's rate ``0.0025 10^(j/3)``, j = -6..6 (2.5e-5 to 0.25, default 0.0025); ``garch``
has no rate (one nominal value: one run per seed)."""


THRESHOLDS = {
    "ring8": (Threshold("modes_1pct", ">=", 6), Threshold("hq", ">=", 50.0)),
    "grid25": (Threshold("modes_1pct", ">=", 19), Threshold("hq", ">=", 50.0)),
    "sp500": (Threshold("w1", "<=", 0.25), Threshold("acf_abs", "<=", 0.30)),
    DATA_TASK: (Threshold("w1", "<=", 0.25), Threshold("acf_abs", "<=", 0.30)),
    "gauss1d": (Threshold("w2", "<=", 0.05),),
}


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study's results depend on.

    The *protocol* (version, sweeps, budgets, evaluations, divergence bound,
    thresholds, tolerances) is hashed (:meth:`protocol_hash`); the selection of tasks,
    methods and seeds is not, so one output folder can grow by tasks, methods
    or seeds but never mixes protocols.

    Attributes:
        name: label (``quick``, ``full`` or ``custom``).
        tasks, methods: the selection to run.
        seeds: the seeds to run.
        sweeps: ``((family, (lr, ...)), ...)`` base-rate sweep per method family.
        steps: ``((task, steps), ...)`` step budget per task (the budget when :attr:`grad_evals` is empty).
        evaluations: evaluations per run, evenly spaced, the last at the end of the run.
        norm_bound: divergence bound on each network's parameter norm.
        thresholds: ``((task, (Threshold, ...)), ...)``.
        stable_fraction: fraction of seeds that must reach the threshold for a
            rate to count as stable.
        policy_table: packaged name or file of the continuous-time table used by
            ``sgd+continuous`` (and the first study's ``ctl-sgd``, ``ctl-adam``).
        robust_tolerance: a rate is robust when no seed diverged and its median
            final primary metric is within this fraction of the task's best (v2).
        data: the user's series of the ``data`` task, or None.
        code: the code fingerprint the results were recorded with, when a report reads a folder
            of other code under the same protocol (:func:`~stochctl.study.report.load_study`);
            None (the default): this code's :func:`code_fingerprint`. Runs refuse it.
        version: the protocol version (2 or 3; module docstring).
        grad_evals: ``((task, budget), ...)`` gradient-evaluation budget per task (v3); empty: the
            budget is :attr:`steps`.
        tolerances, trials, reach: the v3 report's robust-range tolerances, numbers of random trials
            and convergence levels (fractions of the task's best).
    """

    name: str = "custom"
    tasks: tuple[str, ...] = TASK_NAMES
    methods: tuple[str, ...] = METHOD_NAMES
    seeds: tuple[int, ...] = tuple(range(FULL_SEEDS))
    sweeps: tuple = tuple(GRIDS.items())
    steps: tuple = tuple(FULL_STEPS.items())
    evaluations: int = EVALUATIONS
    norm_bound: float = NORM_BOUND
    thresholds: tuple = tuple(THRESHOLDS.items())
    stable_fraction: float = STABLE_FRACTION
    policy_table: str = "local-quadratic"
    robust_tolerance: float = ROBUST_TOLERANCE
    data: DataSpec | None = None
    code: str | None = None
    version: int = PROTOCOL_VERSION
    grad_evals: tuple = ()
    tolerances: tuple = TOLERANCES
    trials: tuple = TRIALS
    reach: tuple = REACH

    def task(self, name: str):
        """The task object of ``name`` (the ``data`` task from :attr:`data`), of this protocol's version."""
        if name == DATA_TASK and self.data is not None:
            return _data_task(self.data, self.version)
        return get_task(name) if self.version < 3 else get_split_task(name)

    def __post_init__(self):
        if self.version not in VERSIONS:
            raise InputError(f"protocol version must be one of {', '.join(map(str, VERSIONS))}; got {self.version!r}")
        for t in self.tasks:
            self.task(t)
        for m in self.methods:
            check_method(m)
            for t in self.tasks:
                get_method(m).check_task(self.task(t))  # e.g. garch needs a returns task
        if not self.tasks or not self.methods or not self.seeds:
            raise InputError("a study needs at least one task, one method and one seed")
        if len(set(self.tasks)) != len(self.tasks) or len(set(self.methods)) != len(self.methods):
            raise InputError("tasks and methods must not repeat")
        if any(not isinstance(s, int) or s < 0 for s in self.seeds) or len(set(self.seeds)) != len(self.seeds):
            raise InputError(f"seeds must be distinct non-negative integers; got {self.seeds!r}")
        sweeps = dict(self.sweeps)
        families = tuple(dict.fromkeys(get_method(m).family for m in self.methods if get_method(m).has_rate))
        for fam in families:
            if fam not in sweeps:
                raise InputError(f"no learning-rate sweep for family {fam!r}; give one for: {', '.join(families)}")
        known = _families(METHODS)
        for fam, rates in sweeps.items():
            if fam not in known:
                raise InputError(f"unknown method family {fam!r}; valid families: {', '.join(known)}")
            bad = [r for r in rates if not (isinstance(r, (int, float)) and math.isfinite(r) and r > 0)]
            if bad or not rates:
                raise InputError(f"learning-rate sweep of family {fam!r} must hold positive finite "
                                 f"values; got {bad[0] if bad else 'an empty sweep'!r}")
            if any(b <= a for a, b in zip(rates, rates[1:])):
                raise InputError(f"learning-rate sweep of family {fam!r} must be strictly increasing; "
                                 f"got {tuple(rates)!r}")
        steps = dict(self.steps)
        for t in self.tasks:
            k = steps.get(t)
            if not isinstance(k, int) or k < 1:
                raise InputError(f"step budget of task {t!r} must be a positive integer; got {k!r}")
        if self.grad_evals and self.version < 3:
            raise InputError("a gradient-evaluation budget needs protocol version 3")
        budgets = dict(self.grad_evals)
        for t in self.tasks if self.grad_evals else ():
            n = budgets.get(t)
            if not isinstance(n, int) or n < 1:
                raise InputError(f"gradient-evaluation budget of task {t!r} must be a positive integer; got {n!r}")
            costly = max(self.methods, key=lambda m: step_cost(get_method(m)))
            need = step_cost(get_method(costly))
            if n < need:
                raise InputError(f"gradient-evaluation budget {n} of task {t!r} is too small for one step of "
                                 f"{costly!r} ({need} gradient evaluations) and so for one evaluation")
        if not isinstance(self.evaluations, int) or self.evaluations < 1:
            raise InputError(f"evaluations must be a positive integer; got {self.evaluations!r}")
        if not self.norm_bound > 0:
            raise InputError(f"norm_bound must be positive; got {self.norm_bound!r}")
        if not 0 < self.stable_fraction <= 1:
            raise InputError(f"stable_fraction must be in (0, 1]; got {self.stable_fraction!r}")
        thr = dict(self.thresholds)
        for t in self.tasks:
            if t not in thr:
                raise InputError(f"no quality threshold for task {t!r}")
            for c in thr[t]:
                if c.metric not in self.task(t).metric_names or c.op not in _OPS:
                    raise InputError(f"threshold {c} does not fit task {t!r} (metrics: "
                                     f"{', '.join(self.task(t).metric_names)}; ops: <=, >=)")
        if not 0 < self.robust_tolerance:
            raise InputError(f"robust_tolerance must be positive; got {self.robust_tolerance!r}")
        for label, values in (("tolerances", self.tolerances), ("reach", self.reach)):
            if not values or any(not (isinstance(v, (int, float)) and v > 0) for v in values):
                raise InputError(f"{label} must be positive fractions; got {values!r}")
        if not self.trials or any(not isinstance(k, int) or k < 1 for k in self.trials):
            raise InputError(f"trials must be positive integers; got {self.trials!r}")

    # ---- derived ----
    def sweep(self, method: str) -> tuple[float, ...]:
        """Base-rate sweep of ``method``'s family (empty for a method without a rate)."""
        record = get_method(method)
        return tuple(dict(self.sweeps)[record.family]) if record.has_rate else ()

    def rates(self, method: str) -> tuple[float, ...]:
        """The rates ``method`` runs at: its sweep, then (v3) its default when not on the sweep; a
        method without a rate runs once at :data:`NO_RATE`."""
        record = get_method(method)
        if not record.has_rate:
            return (NO_RATE,)
        sweep = self.sweep(method)
        d = record.default
        if self.version >= 3 and d is not None and not any(math.isclose(d, r, rel_tol=1e-9) for r in sweep):
            return sweep + (float(d),)
        return sweep

    def task_steps(self, task: str) -> int:
        """The step budget of ``task`` (v3 with a gradient-evaluation budget: not the budget, see :meth:`budget`)."""
        return dict(self.steps)[task]

    def budget(self, task: str) -> tuple[str, int]:
        """``("grad_evals", N)`` or ``("steps", K)``: the budget of every run of ``task``."""
        if self.grad_evals:
            return "grad_evals", dict(self.grad_evals)[task]
        return "steps", self.task_steps(task)

    def eval_steps(self, task: str) -> tuple[int, ...]:
        """Steps after which the metrics are evaluated (the last is the final step; budget in steps)."""
        k = self.task_steps(task)
        n = min(self.evaluations, k)
        return tuple(sorted({max(1, round(k * (j + 1) / n)) for j in range(n)}))

    def eval_marks(self, task: str) -> tuple[int, ...]:
        """Gradient-evaluation counts at which the metrics are evaluated (budget in gradient evaluations):
        the first step whose count reaches ``N (j + 1) / n``, j = 0..n-1, and the run's last step."""
        n_evals = dict(self.grad_evals)[task]
        n = min(self.evaluations, n_evals)
        return tuple(sorted({max(1, round(n_evals * (j + 1) / n)) for j in range(n)}))

    def task_thresholds(self, task: str) -> tuple[Threshold, ...]:
        return tuple(dict(self.thresholds)[task])

    def jobs(self) -> list[Job]:
        """All runs, seed-major (an interrupted study has whole sweeps for early seeds)."""
        return [Job(t, m, lr, s) for s in self.seeds for t in self.tasks for m in self.methods
                for lr in self.rates(m)]

    def protocol(self) -> dict:
        """The JSON-able protocol (everything a single run's result depends on)."""
        out = dict(
            version=self.version,
            sweeps={f: list(r) for f, r in self.sweeps},
            steps=dict(self.steps),
            evaluations=self.evaluations,
            norm_bound=self.norm_bound,
            thresholds={t: [[c.metric, c.op, c.value] for c in cs] for t, cs in self.thresholds},
            stable_fraction=self.stable_fraction,
            robust_tolerance=self.robust_tolerance,
            policy_table=str(self.policy_table),
            code=self.code if self.code is not None else code_fingerprint(str(self.policy_table)),
            data=None if self.data is None else dict(kind=self.data.kind, sha256=self.data.sha256),
        )
        if self.version >= 3:
            out.update(grad_evals=dict(self.grad_evals), tolerances=list(self.tolerances),
                       trials=list(self.trials), reach=list(self.reach))
        return out

    def protocol_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON of :meth:`protocol`."""
        text = json.dumps(self.protocol(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        """The manifest: selection, protocol, hash, and the data file's path (not hashed: the data is)."""
        out = dict(name=self.name, tasks=list(self.tasks), methods=list(self.methods),
                   seeds=list(self.seeds), protocol=self.protocol(), hash=self.protocol_hash())
        if self.data is not None:
            out["data_path"] = self.data.path
        return out

    @classmethod
    def from_json(cls, data: dict) -> "StudyConfig":
        p = data["protocol"]
        v3 = int(p.get("version", 2)) == 3
        extra = {} if not v3 else dict(
            grad_evals=tuple((t, int(n)) for t, n in p.get("grad_evals", {}).items()),
            tolerances=tuple(float(x) for x in p["tolerances"]), trials=tuple(int(k) for k in p["trials"]),
            reach=tuple(float(x) for x in p["reach"]))
        return cls(
            name=data.get("name", "custom"), tasks=tuple(data["tasks"]), methods=tuple(data["methods"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            sweeps=tuple((f, tuple(float(x) for x in r)) for f, r in p["sweeps"].items()),
            steps=tuple((t, int(k)) for t, k in p["steps"].items()),
            evaluations=int(p["evaluations"]), norm_bound=float(p["norm_bound"]),
            thresholds=tuple((t, tuple(Threshold(m, op, float(v)) for m, op, v in cs))
                             for t, cs in p["thresholds"].items()),
            stable_fraction=float(p["stable_fraction"]), policy_table=str(p["policy_table"]),
            robust_tolerance=float(p.get("robust_tolerance", ROBUST_TOLERANCE)),
            data=_reload_data(p.get("data"), data.get("data_path")),
            version=min(max(int(p.get("version", 2)), VERSIONS[0]), VERSIONS[-1]), **extra,
        )

    def select(self, *, tasks=None, methods=None, seeds=None, steps=None, lrs=None, grad_evals=None,
               **protocol) -> "StudyConfig":
        """A copy with another selection; ``steps`` (int) makes every task's budget that many steps,
        ``grad_evals`` (int, v3) that many gradient evaluations; ``lrs`` (increasing rates) replaces
        the grid of every family of the methods with a rate.

        Other keyword arguments replace protocol fields (e.g. ``evaluations``, ``data``).

        Raises:
            InputError: ``lrs`` when none of the methods has a rate, or both ``steps`` and ``grad_evals``.
        """
        kw = dict(protocol)
        if tasks is not None:
            kw["tasks"] = tuple(tasks)
        if methods is not None:
            kw["methods"] = tuple(methods)
        chosen = kw.get("methods", self.methods)
        for m in chosen:
            check_method(m)
        if lrs is not None:
            rated = [m for m in chosen if get_method(m).has_rate]
            if not rated:
                raise InputError(f"--lrs: none of the chosen methods ({', '.join(chosen)}) has a learning rate "
                                 "or multiplier to sweep")
            # methods without a rate run once per seed whatever the sweeps (:meth:`rates`)
            kw["sweeps"] = tuple((f, tuple(float(x) for x in lrs)) for f in _families(rated))
            kw["name"] = "custom"
        if seeds is not None:
            kw["seeds"] = tuple(seeds)
        if steps is not None and grad_evals is not None:
            raise InputError("give a budget in steps or in gradient evaluations, not both")
        if steps is not None:
            kw["steps"] = tuple((t, int(steps)) for t, _ in self.steps)
            kw["grad_evals"] = ()
            kw["name"] = "custom"
        if grad_evals is not None:
            if self.version < 3:
                raise InputError("a gradient-evaluation budget needs protocol version 3")
            kw["grad_evals"] = tuple((t, int(grad_evals)) for t, _ in self.steps)
            kw["name"] = "custom"
        return replace(self, **kw)


def _families(methods) -> tuple[str, ...]:
    """:data:`FAMILY_NAMES`, then the other families of ``methods`` in order (unknown names raise InputError)."""
    out = list(FAMILY_NAMES)
    for m in methods:
        fam = get_method(m).family
        if fam not in out:
            out.append(fam)
    return tuple(out)


def full_config() -> StudyConfig:
    """The full study (v3): 4 tasks, 13 methods, 16 (SGD family) or 19 (Adam family) rates plus each
    method's default, 10 seeds, the gradient-evaluation budgets :data:`FULL_GRAD_EVALS`."""
    return StudyConfig(name="full", grad_evals=tuple(FULL_GRAD_EVALS.items()))


def quick_config() -> StudyConfig:
    """A short version of the full protocol: 3 rates per family spread over its grid (and each method's
    default), 1 seed, 200 gradient evaluations (100 plain steps), 3 evaluations (a smoke run of the
    whole pipeline in a few minutes on 2 cores, not a basis for conclusions)."""
    return StudyConfig(name="quick", seeds=tuple(range(QUICK_SEEDS)), steps=tuple(QUICK_STEPS.items()),
                       grad_evals=tuple(QUICK_GRAD_EVALS.items()), evaluations=QUICK_EVALUATIONS,
                       sweeps=tuple((f, _spread(g, QUICK_V3_RATES)) for f, g in GRIDS.items()))


def v2_full_config() -> StudyConfig:
    """The second study's protocol (version 2: step budgets, 5 seeds, no validation split)."""
    return StudyConfig(name="full", version=2, seeds=tuple(range(V2_FULL_SEEDS)))


def _spread(grid, n: int) -> tuple[float, ...]:
    """``n`` rates of ``grid`` evenly spaced by index, both ends included."""
    return tuple(dict.fromkeys(grid[round(i * (len(grid) - 1) / (n - 1))] for i in range(n)))


def data_config(path, kind: str = "auto", *, quick: bool = False) -> StudyConfig:
    """The study of a user's series: the ``data`` task only (the ``sp500`` protocol on the file)."""
    base = quick_config() if quick else full_config()
    return replace(base, tasks=(DATA_TASK,), data=DataSpec.load(path, kind))


