"""Building blocks of a study protocol: runs (:class:`Job`), quality thresholds, the user's data
file (:class:`DataSpec`) and the learning-rate grids."""

from __future__ import annotations

import hashlib
import math
import operator
from dataclasses import dataclass, field

from ..errors import InputError
from .methods import Method
from .tasks import DATA_KINDS, DataTask, load_data_file
from .tasks_v3 import data_split_task

SWEEP_DECADES = 3.0
SWEEP_POINTS = 7
POINTS_PER_DECADE = 3
_OPS = {"<=": operator.le, ">=": operator.ge}


def horizon_steps(record: Method, budget: int) -> int:
    """The steps a gradient-evaluation budget buys at the method's nominal cost: its step gradients
    (``2 grad_evals``) plus both players' nominal measurements (the scheduler's
    ``measure_evals_per_step``, 0 without one); the controlled methods' horizon K."""
    measure = getattr(getattr(record.build, "scheduler", None), "measure_evals_per_step", 0.0)
    return max(1, int(budget // (2 * record.grad_evals + 2 * measure)))


def step_cost(record: Method) -> int:
    """Gradient evaluations a step may take at most: both players' step gradients and, for a measured
    method, both players' measurements (the scheduler's ``measure_evals``)."""
    return 2 * record.grad_evals + 2 * getattr(getattr(record.build, "scheduler", None), "measure_evals", 0)


def log_sweep(center: float, decades: float = SWEEP_DECADES, points: int = SWEEP_POINTS) -> tuple[float, ...]:
    """``points`` log-spaced rates spanning ``decades`` with ``center`` in the middle."""
    if not (center > 0 and math.isfinite(center)):
        raise InputError(f"sweep centre must be a positive number; got {center!r}")
    if points < 2:
        raise InputError(f"a sweep needs at least 2 points; got {points}")
    half = decades / 2
    return tuple(float(center * 10 ** (-half + decades * j / (points - 1))) for j in range(points))



def decade_grid(low: float, decades: int, per_decade: int = POINTS_PER_DECADE) -> tuple[float, ...]:
    """``low 10^(j / per_decade)`` for j = 0..decades * per_decade (rounded to 12 significant digits)."""
    return tuple(float(f"{low * 10 ** (j / per_decade):.12g}") for j in range(decades * per_decade + 1))



@dataclass(frozen=True)
class DataSpec:
    """A user's returns series for the ``data`` task (``stochctl study --data FILE.csv``).

    Attributes:
        path: the file, as given.
        kind: ``auto``, ``prices`` or ``returns`` (:func:`~stochctl.study.tasks.load_data_file`).
        note: what was read and assumed (one line).
        sha256: digest of the returns series (part of the protocol hash).
        values: the returns series.
    """

    path: str
    kind: str
    note: str
    sha256: str
    values: tuple = field(compare=False, repr=False)

    @classmethod
    def load(cls, path, kind: str = "auto") -> "DataSpec":
        import numpy as np

        series, note = load_data_file(path, kind)
        arr = np.ascontiguousarray(series, dtype=np.float64)
        return cls(str(path), kind, note, hashlib.sha256(arr.tobytes()).hexdigest(), tuple(arr.tolist()))



@dataclass(frozen=True)
class Threshold:
    """A quality condition ``metric op value`` (op is ``<=`` or ``>=``)."""

    metric: str
    op: str
    value: float

    def __post_init__(self):
        if self.op not in _OPS:
            raise InputError(f"threshold operator must be one of {', '.join(_OPS)}; got {self.op!r}")
        try:
            object.__setattr__(self, "value", float(self.value))
        except (TypeError, ValueError):
            raise InputError(f"threshold value must be a number; got {self.value!r}") from None

    def met(self, metrics: dict) -> bool:
        v = metrics.get(self.metric, math.nan)
        return bool(math.isfinite(v) and _OPS[self.op](v, self.value))

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"



@dataclass(frozen=True)
class Job:
    """One training run: task, method, base learning rate, seed."""

    task: str
    method: str
    lr: float
    seed: int

    @property
    def key(self) -> tuple:
        return (self.task, self.method, repr(float(self.lr)), int(self.seed))

    @property
    def run_id(self) -> str:
        return f"{self.task}_{self.method}_{self.lr:.6g}_{self.seed}"



def _data_task(spec: DataSpec, version: int = 2):
    """The ``data`` task on ``spec``'s series: v2's (80% trains, 20% held out) or v3's three splits."""
    key = (spec.sha256, version)
    task = _DATA_TASKS.get(key)
    if task is None:
        import numpy as np

        from pathlib import Path

        make = DataTask if version < 3 else data_split_task
        task = _DATA_TASKS[key] = make(np.asarray(spec.values), Path(spec.path).name)
    return task


_DATA_TASKS: dict = {}


def _reload_data(p, path):
    """The DataSpec of a manifest's ``data`` entry, re-read from ``path`` and checked against its digest."""
    if p is None:
        return None
    if not path:
        raise InputError("the study manifest has data but no data_path")
    if p.get("kind") not in DATA_KINDS:
        raise InputError(f"manifest data kind {p.get('kind')!r} is not one of {', '.join(DATA_KINDS)}")
    spec = DataSpec.load(path, p["kind"])
    if spec.sha256 != p["sha256"]:
        raise InputError(f"data file {path!r} changed since the study started (digest {spec.sha256[:12]}, "
                         f"recorded {p['sha256'][:12]}); choose another --out")
    return spec
