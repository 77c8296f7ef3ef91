"""``stochctl sweep``: policy tables over a grid of parameter values.

    stochctl sweep (CONFIG.toml | MODEL) --param a=0.5:4:8 [--param b=1 ...] [--out DIR]
        [--workers N] [--dask-scheduler ADDRESS] [--grid N ...] [--horizon T] [--scheme S]
        [--dt DT] [--store-every K] [--value] [--convex] [--quiet]

``--param NAME=LO:HI:N`` sweeps N values spaced linearly from LO to HI;
``--param NAME=VALUE`` fixes a parameter. Every combination is solved and
tabulated; the tables go to DIR/table_NNNN.npz with an index (index.json,
index.csv) naming the parameters of each file. The config's ``[control]`` and
``[solver]`` tables apply; the solver options given here win. Tasks run on a
local process pool of N workers (default: one per core; 1 runs them in this
process) or, with --dask-scheduler, on a Dask cluster (needs the dask extra;
the workers need stochctl installed; a scheduler that does not answer
within 10 s is an error). A sweep has at most 10000 points. The tables
do not depend on where they were computed.
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import sys
from pathlib import Path

from ..errors import InputError
from ._common import check_model_spec, dump_json, grid_points
from ._paths import ReplacedFiles, check_output_dir

MAX_SWEEP_POINTS = 10_000
"""Most parameter combinations of one sweep (each is a solve, and every table is kept in memory)."""

DASK_TIMEOUT = 10.0
"""Seconds allowed to reach a Dask scheduler."""

_ADDRESS = re.compile(r"^(?:(?:tcp|tls|inproc|ucx|ws|wss)://[^\s:/][^\s]*|[A-Za-z0-9_.\-]+:\d{1,5})$")


def register(subparsers) -> None:
    from ..solvers.api import SCHEMES
    from ..solvers.grid import BOUNDARY_KINDS

    p = subparsers.add_parser("sweep", help="policy tables over a grid of parameter values",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="example: stochctl sweep model.toml --param a=0.5:4:8 --param sigma=1 "
                                     "--out tables --workers 2")
    p.add_argument("config", metavar="CONFIG", help="model TOML file or canonical model name")
    p.add_argument("--param", action="append", default=[], metavar="NAME=SPEC",
                   help="LO:HI:N (N values) or VALUE (fixed); repeatable; names are model parameters "
                        "or u_min, u_max, eta")
    p.add_argument("--out", metavar="DIR", help="output directory (default: <model>-sweep)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N", help="local worker processes (default: cores)")
    where.add_argument("--dask-scheduler", metavar="ADDRESS", help="run on this Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--grid", nargs="+", type=int, metavar="N", help="nodes per axis (one, or one per axis)")
    p.add_argument("--horizon", type=float, metavar="T", help="horizon")
    p.add_argument("--scheme", choices=SCHEMES, help="time stepping")
    p.add_argument("--dt", type=float, metavar="DT", help="time step")
    p.add_argument("--store-every", type=int, metavar="K", help="keep every K-th time level")
    p.add_argument("--boundary", choices=BOUNDARY_KINDS, help="boundary condition on every face")
    p.add_argument("--value", action="store_true", help="also tabulate the value function")
    p.add_argument("--convex", action="store_true", help="also tabulate the convexity map")
    p.add_argument("--json", action="store_true", help="print the index as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def check_sweep_size(items) -> None:
    """Refuse a sweep of more than :data:`MAX_SWEEP_POINTS` points, counted from the ``LO:HI:N`` texts."""
    counts = []
    for item in items:
        for part in str(item).split(","):
            name, _, spec = part.partition("=")
            fields = spec.split(":")
            if len(fields) == 3 and fields[2].strip().isdigit():
                counts.append((name.strip(), int(fields[2])))
    total = math.prod(n for _, n in counts)
    if total > MAX_SWEEP_POINTS:
        detail = " x ".join(f"{n:,} ({name})" for name, n in counts)
        raise InputError(f"--param: {detail} = {total:,} sweep points, each a solve; at most "
                         f"{MAX_SWEEP_POINTS:,} per sweep")


def check_solve_options(args) -> None:
    """Refuse solver options that would fail every task, before any task: bad values, a grid or a step
    count that does not fit; the options given here and the config's [solver] table are both checked."""
    from ..models import load_model
    from ..solvers._limits import check_grid_size, check_steps
    from ..solvers.api import solver_options_from_config

    config = load_model(args.config)
    table = solver_options_from_config(config)
    given = {"grid": args.grid, "horizon": args.horizon, "dt": args.dt, "store_every": args.store_every}
    opts = {k: v if v is not None else table.get(k) for k, v in given.items()}

    def label(key):
        return "--" + key.replace("_", "-") if given[key] is not None else f"{config.source} [solver].{key}"

    for key in ("horizon", "dt"):
        value = opts[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not (math.isfinite(value) and value > 0)):
            raise InputError(f"{label(key)} must be a positive finite number; got {value!r}")
    every = opts["store_every"]
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise InputError(f"{label('store_every')} must be an integer >= 1; got {every!r}")
    grid = opts["grid"]
    if grid is not None:
        grid = list(grid) if isinstance(grid, (list, tuple)) else [grid]
        bad = [n for n in grid if isinstance(n, bool) or not isinstance(n, int) or n < 3]
        if bad:
            raise InputError(f"{label('grid')}: need an integer of at least 3 nodes per axis; got {bad[0]!r}")
        check_grid_size(grid_points(grid, config.model.state_names), len(config.model.players))
    if opts["dt"] is not None:
        horizon = opts["horizon"] if opts["horizon"] is not None else config.model.horizon
        check_steps(horizon, opts["dt"], horizon / opts["dt"])


def connect_dask(address: str):
    """A dask.distributed Client for ``address``, or one line saying why not within :data:`DASK_TIMEOUT` s."""
    from ..errors import require_extra

    if not _ADDRESS.match(address):
        raise InputError(f"--dask-scheduler {address!r}: expected an address such as tcp://host:8786")
    distributed = require_extra("distributed", "dask")
    quiet = [logging.getLogger(n) for n in ("distributed", "distributed.client", "distributed.core",
                                            "distributed.comm")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.CRITICAL)
    try:
        return distributed.Client(address, timeout=DASK_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - OSError, TimeoutError, ValueError, ...: all unreachable
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"--dask-scheduler {address!r}: no scheduler reachable within {DASK_TIMEOUT:g} s "
                         f"({reason[:120]})") from None
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)


def run(args) -> int:
    from ..tables.sweep import read_index, sweep

    if not args.param:
        raise InputError("give at least one --param NAME=LO:HI:N (or NAME=VALUE)")
    solve_options = {k: v for k, v in (("grid", args.grid), ("horizon", args.horizon), ("scheme", args.scheme),
                                       ("dt", args.dt), ("store_every", args.store_every),
                                       ("boundary", args.boundary)) if v is not None}
    check_model_spec(args.config, "CONFIG")
    check_sweep_size(args.param)
    check_solve_options(args)
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be an integer >= 1; got {args.workers}")
    out = check_output_dir(args.out if args.out is not None else f"{Path(args.config).stem}-sweep", "--out")

    def progress(done, total, params, error):
        if not args.quiet:
            at = ", ".join(f"{k}={v:g}" for k, v in params.items())
            print(f"[{done}/{total}] {at}" + (f": FAILED {error}" if error else ""), file=sys.stderr, flush=True)

    replaced = ReplacedFiles(out)
    client = connect_dask(args.dask_scheduler) if args.dask_scheduler else None
    try:
        result = sweep(args.config, args.param, client.get_executor() if client is not None else None,
                       workers=args.workers, solve_options=solve_options,
                       table_options={"include_value": args.value, "include_convex": args.convex},
                       out=out, progress=progress)
    finally:
        if client is not None:
            client.close()
    if args.json:
        print(dump_json(read_index(result.index)))
    else:
        print(f"wrote {len(result.points) - result.failed} tables and {result.index} "
              f"({result.index.with_suffix('.csv').name}){replaced.note()}")
    if result.failed:
        print(f"{result.failed} of {len(result.points)} tasks failed (see the index)", file=sys.stderr)
        return 1
    return 0
