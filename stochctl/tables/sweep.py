"""Parameter sweeps: a family of policy tables over model-parameter values.

For every point p of the tensor grid of parameter values (``a=0.5:4:8`` is 8
values spaced linearly from 0.5 to 4; a plain value fixes a parameter) one
task builds the control problem with the parameters p, solves its HJB/Isaacs
equation and tabulates the optimal policy (:meth:`PolicyTable.from_solution`).
The tasks run on any :class:`concurrent.futures.Executor`: a local process
pool by default, or a Dask cluster's executor (``client.get_executor()``).
Each task is a pure function of its inputs solved with one numba thread, so the
arrays do not depend on the executor, the number of workers or the order of
completion: a sweep on a cluster gives the same tables, bit for bit, as a
serial run.

Output (:func:`write_sweep`): one table file per point, ``table_0000.npz``,
``table_0001.npz``, ..., and an index naming the parameters of each file, as
JSON (``index.json``) and CSV (``index.csv``).

A task ships the model as data: a canonical name or the parsed tables of the
TOML file, so remote workers need stochctl but not the file. A problem
factory (``factory(**params) -> ControlProblem or Model``) must be picklable
(a module-level function) for process pools and Dask.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import itertools
import json
import math
import multiprocessing
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from .._io import write_text_atomic
from ..errors import InputError, StochctlError, require_extra
from . import PolicyTable

CONTROL_PARAMS = ("u_min", "u_max", "eta")
"""Sweepable control settings (when the model has no parameter of that name)."""
SOLVE_KEYS = ("grid", "horizon", "scheme", "dt", "store_every", "boundary", "tol", "max_policy_iterations")
INDEX_FORMAT = "stochctl-sweep-index"
INDEX_VERSION = 1
_TIMINGS = ("wall_time", "kernel_time")


# ------------------------------------------------------------------ parameter grids
def parse_values(name: str, spec) -> np.ndarray:
    """Values of one parameter: ``"lo:hi:n"`` (n >= 2 values linearly spaced), a number, or a sequence."""
    if isinstance(spec, str):
        parts = [s.strip() for s in spec.split(":")]
        if len(parts) not in (1, 3):
            raise InputError(f"parameter {name}: expected VALUE or LO:HI:N; got {spec!r}")
        try:
            nums = [float(x) for x in parts[:2]]
        except ValueError:
            raise InputError(f"parameter {name}: expected VALUE or LO:HI:N; got {spec!r}") from None
        if len(parts) == 1:
            values = np.array(nums)
        elif not parts[2].isdigit() or int(parts[2]) < 2:
            raise InputError(f"parameter {name}: the count in {spec!r} must be an integer >= 2 "
                             "(give a plain value to fix a parameter)")
        else:
            values = np.linspace(nums[0], nums[1], int(parts[2]))
    elif isinstance(spec, (int, float, np.integer, np.floating)) and not isinstance(spec, bool):
        values = np.array([float(spec)])
    else:
        try:
            values = np.asarray(spec, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise InputError(f"parameter {name}: expected a number, a sequence or 'LO:HI:N'; got {spec!r}") from None
        if values.size == 0:
            raise InputError(f"parameter {name}: no values given")
    if not np.all(np.isfinite(values)):
        raise InputError(f"parameter {name}: values must be finite; got {spec!r}")
    return values


def parse_param_grid(grid) -> dict[str, np.ndarray]:
    """``{"a": "0.5:4:8", "b": 1.0}`` or ``["a=0.5:4:8", "b=1"]`` (or ``"a=0.5:4:8,b=1"``) -> name -> values,
    in the given order."""
    if grid is None:
        return {}
    if isinstance(grid, Mapping):
        items = list(grid.items())
    else:
        items = []
        for text in ([grid] if isinstance(grid, str) else grid):
            for part in str(text).split(","):  # "a=0.5:4:8,b=1" sets two, as in `stochctl solve`
                if not part.strip():
                    continue
                key, sep, val = part.partition("=")
                if not sep or not key.strip():
                    raise InputError(f"--param {part.strip()!r}: expected NAME=VALUE or NAME=LO:HI:N")
                items.append((key.strip(), val))
    out: dict[str, np.ndarray] = {}
    for name, spec in items:
        if name in out:
            raise InputError(f"parameter {name!r} is given twice")
        out[name] = parse_values(name, spec)
    return out


def grid_points(grid: Mapping[str, np.ndarray]) -> list[dict[str, float]]:
    """All combinations, the last parameter varying fastest."""
    names = list(grid)
    return [dict(zip(names, (float(v) for v in combo))) for combo in itertools.product(*grid.values())]


# ------------------------------------------------------------------ tasks
@dataclass(frozen=True)
class _Task:
    """Everything one worker needs (picklable)."""

    index: int
    params: dict
    model: str | None = None          # canonical name
    tables: dict | None = None        # parsed TOML tables
    source: str = ""
    factory: Callable | None = None
    solve_options: dict = field(default_factory=dict)
    table_options: dict = field(default_factory=dict)
    num_threads: int = 1


def _config(task: _Task):
    from ..models import ModelConfig, get_model
    from ..models.toml_model import model_from_dict

    if task.model is not None:
        return ModelConfig(model=get_model(task.model), source=task.model)
    return model_from_dict(task.tables, source=task.source)


def _split(params: Mapping, model) -> tuple[dict, dict]:
    names = {p.name for p in model.parameters}
    control = {k: v for k, v in params.items() if k in CONTROL_PARAMS and k not in names}
    model_params = {k: v for k, v in params.items() if k not in control}
    return model_params, control


def _problem_and_options(task: _Task):
    from ..solvers.api import problem_from_config, solver_options_from_config
    from ..symbolic.problem import ControlProblem

    opts = dict(task.solve_options)
    if task.factory is not None:
        problem = task.factory(**task.params)
        if not isinstance(problem, ControlProblem):
            problem = ControlProblem.from_model(problem)
        settings = opts
    else:
        config = _config(task)
        model_params, control = _split(task.params, config.model)
        config = replace(config, model=config.model.with_params(**model_params))
        problem = problem_from_config(config, horizon=opts.pop("horizon", None), **control)
        settings = {k: v for k, v in {**solver_options_from_config(config), **opts}.items() if k != "horizon"}
    points = settings.pop("grid", None)
    if isinstance(points, (list, tuple)) and len(points) == 1:
        points = points[0]
    if points is not None:
        settings["points"] = points
    return problem, settings


def run_task(task: _Task) -> PolicyTable:
    """Solve one parameter point with the scheme :func:`stochctl.solvers.solve` chooses, and tabulate its policy
    (runs on a worker)."""
    from ..solvers import solve

    problem, settings = _problem_and_options(task)
    solution = solve(problem, progress=False, num_threads=task.num_threads, **settings)
    diagnostics = {k: v for k, v in solution.diagnostics.items() if k not in _TIMINGS}
    solution = replace(solution, diagnostics=diagnostics)
    meta = {"sweep": {"index": task.index, "parameters": task.params}}
    return PolicyTable.from_solution(solution, metadata=meta, **task.table_options)


# ------------------------------------------------------------------ the sweep
@dataclass(frozen=True)
class SweepResult:
    """Tables of a sweep, in the order of :attr:`points`.

    Attributes:
        grid: parameter name -> the values swept (one value: fixed).
        points: the parameter values of each task (last name varying fastest).
        tables: the table of each point (None where the task failed).
        errors: the error message of each failed task, else None.
        files: table file of each point when written (:func:`write_sweep`).
        index: path of ``index.json`` when written.
    """

    grid: dict
    points: tuple
    tables: tuple
    errors: tuple
    files: tuple = ()
    index: Path | None = None

    @property
    def failed(self) -> int:
        return sum(e is not None for e in self.errors)

    def table(self, **params) -> PolicyTable:
        """The table whose parameters equal ``params`` (the others of the point may take any value if unique)."""
        hits = [i for i, p in enumerate(self.points) if all(math.isclose(p.get(k, math.nan), v, rel_tol=1e-12,
                                                                          abs_tol=1e-15) for k, v in params.items())]
        if len(hits) != 1:
            raise InputError(f"{len(hits)} sweep points match {params}; swept values: "
                             f"{ {k: v.tolist() for k, v in self.grid.items()} }")
        table = self.tables[hits[0]]
        if table is None:
            raise InputError(f"the task for {self.points[hits[0]]} failed: {self.errors[hits[0]]}")
        return table


def _source(config) -> dict:
    """Task fields for a model given by name, TOML path or parsed TOML tables."""
    from ..models import MODEL_NAMES

    if isinstance(config, Mapping):
        return {"tables": dict(config), "source": "<dict>"}
    if isinstance(config, (str, os.PathLike)):
        spec = str(config)
        if spec in MODEL_NAMES:
            return {"model": spec, "source": spec}
        path = Path(spec)
        if not path.is_file():
            raise InputError(f"sweep config {spec!r} is neither a model ({', '.join(MODEL_NAMES)}) "
                             "nor an existing .toml file")
        try:
            tables = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML: {exc}") from None
        return {"tables": tables, "source": str(path)}
    raise InputError(f"config must be a model name, a TOML path, parsed TOML tables or a problem factory; "
                     f"got {type(config).__name__}")


def _validate(fields: dict, grid: Mapping) -> None:
    """Load the model once in the caller so that bad names fail before any task runs."""
    probe = _Task(index=-1, params={}, **fields)
    config = _config(probe)
    names = [p.name for p in config.model.parameters]
    unknown = [k for k in grid if k not in names and k not in CONTROL_PARAMS]
    if unknown:
        raise InputError(f"unknown parameter(s) {unknown} of model {config.model.name!r}; "
                         f"valid: {names + [c for c in CONTROL_PARAMS if c not in names]}")
    from ..solvers.api import solver_options_from_config

    solver_options_from_config(config)


def _executor(executor, workers):
    """(executor, owned): an Executor, a Dask client's executor, a new process pool, or None (in-process)."""
    if executor is not None:
        if hasattr(executor, "get_executor") and not isinstance(executor, cf.Executor):
            return executor.get_executor(), False  # a dask.distributed Client
        if not isinstance(executor, cf.Executor):
            raise InputError(f"executor must be a concurrent.futures.Executor or a dask Client; "
                             f"got {type(executor).__name__}")
        return executor, False
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be an integer >= 1; got {workers!r}")
    if workers == 1:
        return None, False
    # spawn: a forked child would inherit numba's thread pool and locks in an undefined state
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")), True


def sweep(config_or_factory, grid_of_params, executor=None, *, workers: int | None = None,
          solve_options: Mapping | None = None, table_options: Mapping | None = None,
          out=None, progress: Callable[[int, int, dict, str | None], Any] | None = None) -> SweepResult:
    """Build one policy table per point of a grid of parameter values.

    Args:
        config_or_factory: a canonical model name, a model TOML file (its
            ``[control]`` and ``[solver]`` tables apply), the parsed TOML
            tables, or a picklable ``factory(**params)`` returning a
            ControlProblem or Model.
        grid_of_params: name -> ``"lo:hi:n"``, a number or a sequence of
            values (or CLI strings ``["a=0.5:4:8", "b=1"]``). Names are model
            parameters, or ``u_min``, ``u_max``, ``eta``.
        executor: a :class:`concurrent.futures.Executor` (e.g.
            ``client.get_executor()`` of a dask.distributed Client, or the
            Client itself); default a local process pool of ``workers``
            processes, run in this process when ``workers`` is 1.
        workers: size of the default pool (default: the number of cores).
        solve_options: options of :func:`~stochctl.solvers.solve` overriding
            the config's ``[solver]`` table (``grid``, ``horizon``,
            ``scheme``, ``dt``, ``store_every``, ``boundary``, ...).
        table_options: options of :meth:`PolicyTable.from_solution`
            (``include_value``, ``include_convex``, ``controls``, ...).
        out: directory to write the tables and the index to (:func:`write_sweep`).
        progress: called as ``progress(done, total, params, error)`` after each task.

    Returns:
        :class:`SweepResult`. A task that fails with a stochctl error (e.g. a
        non-finite value) is recorded in ``errors``; other exceptions propagate.
    """
    grid = parse_param_grid(grid_of_params)
    if callable(config_or_factory) and not isinstance(config_or_factory, (str, os.PathLike, Mapping)):
        fields = {"factory": config_or_factory, "source": getattr(config_or_factory, "__name__", "factory")}
    else:
        fields = _source(config_or_factory)
        _validate(fields, grid)
    opts = dict(solve_options or {})
    bad = [k for k in opts if k not in SOLVE_KEYS]
    if bad:
        raise InputError(f"unknown solve option(s) {bad}; valid: {list(SOLVE_KEYS)}")
    points = grid_points(grid)
    tasks = [_Task(index=i, params=p, solve_options=opts, table_options=dict(table_options or {}), **fields)
             for i, p in enumerate(points)]
    tables: list = [None] * len(tasks)
    errors: list = [None] * len(tasks)
    pool, owned = _executor(executor, workers)

    def record(i, fn):
        try:
            tables[i] = fn()
        except StochctlError as exc:
            errors[i] = f"{type(exc).__name__}: {exc}"
        if progress is not None:
            progress(sum(t is not None or e is not None for t, e in zip(tables, errors)), len(tasks),
                     points[i], errors[i])

    try:
        if pool is None:
            for i, task in enumerate(tasks):
                record(i, lambda task=task: run_task(task))
        else:
            futures = {pool.submit(run_task, task): i for i, task in enumerate(tasks)}
            try:
                for fut in cf.as_completed(futures):
                    record(futures[fut], fut.result)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    finally:
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)
    result = SweepResult(grid=grid, points=tuple(points), tables=tuple(tables), errors=tuple(errors))
    return write_sweep(result, out, source=fields.get("source", "")) if out is not None else result


def write_sweep(result: SweepResult, out, *, source: str = "") -> SweepResult:
    """Write each table to ``out/table_NNNN.npz`` and the index ``index.json`` / ``index.csv``.

    The index lists, per point, the file, the parameter values, the table's
    checksum and the error of a failed task (file null).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    width = max(4, len(str(len(result.points) - 1)))
    files, entries = [], []
    for i, (params, table, error) in enumerate(zip(result.points, result.tables, result.errors)):
        path = None
        if table is not None:
            path = table.save(out / f"table_{i:0{width}d}.npz")
        files.append(path)
        entries.append({"file": None if path is None else path.name, "parameters": params,
                        "checksum": None if table is None else table.checksum, "error": error})
    names = list(result.grid)
    index = {"format": INDEX_FORMAT, "format_version": INDEX_VERSION, "source": source,
             "swept": {k: v.tolist() for k, v in result.grid.items() if v.size > 1},
             "fixed": {k: float(v[0]) for k, v in result.grid.items() if v.size == 1},
             "entries": entries}
    write_text_atomic(out / "index.json", json.dumps(index, indent=2) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["file", *names, "checksum", "error"])
    for e in entries:
        writer.writerow([e["file"] or "", *(repr(e["parameters"][k]) for k in names), e["checksum"] or "",
                         e["error"] or ""])
    write_text_atomic(out / "index.csv", buf.getvalue())
    return replace(result, files=tuple(files), index=out / "index.json")


def read_index(path) -> list[dict]:
    """Entries of a sweep index (``index.json`` or its directory)."""
    path = Path(path)
    if path.is_dir():
        path = path / "index.json"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"sweep index {str(path)!r} does not exist") from None
    except ValueError as exc:
        from ..errors import FileFormatError

        raise FileFormatError(f"{path}: not a JSON sweep index ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        from ..errors import FileFormatError

        raise FileFormatError(f"{path}: not a stochctl sweep index")
    return index["entries"]


def dask_client(address: str):
    """A dask.distributed Client connected to ``address`` (needs the ``dask`` extra)."""
    distributed = require_extra("distributed", "dask")
    return distributed.Client(address)


__all__ = ["sweep", "SweepResult", "write_sweep", "read_index", "parse_param_grid", "parse_values",
           "grid_points", "run_task", "dask_client", "CONTROL_PARAMS"]
