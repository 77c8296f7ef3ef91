"""``stochctl study``: the empirical GAN study (controlled learning rate against standard optimisers).

Runs every (task, method, base rate, seed) of the protocol in a process pool
(or on a Dask cluster with ``--dask-scheduler``), appends one CSV row per
finished run to ``OUT/results.csv`` (an interrupted study resumes where it
stopped), then writes ``OUT/summary.json``, ``OUT/summary.md`` and
``OUT/figures/``. ``--data FILE.csv`` trains the returns GAN on the file's
first numeric column instead of the built-in tasks.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from ..errors import InputError
from ._paths import check_output_dir

MAX_STEPS = 1_000_000
"""Most training steps per run."""

MAX_SEEDS = 1_000
"""Most seeds of a study."""

WORKER_BYTES = 2**30
"""Memory of one worker process (torch, numba, the task's data), measured at about 1 GiB."""


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return v


def _rates(text: str) -> list[float]:
    try:
        rates = [float(s) for s in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated learning rates such as 0.1,1,10; "
                                         f"got {text!r}") from None
    if not rates or any(not (r > 0 and r < float("inf")) for r in rates):
        raise argparse.ArgumentTypeError(f"learning rates must be positive finite numbers; got {text!r}")
    if len(set(rates)) != len(rates):
        raise argparse.ArgumentTypeError(f"learning rates must not repeat; got {text!r}")
    return sorted(rates)


def _command(args) -> str:
    """The canonical command line that reproduces ``args``."""
    parts = ["stochctl", "study"]
    if args.quick:
        parts.append("--quick")
    if args.data is not None:
        parts += ["--data", args.data]
        if args.data_kind != "auto":
            parts += ["--data-kind", args.data_kind]
    for flag in ("tasks", "methods"):
        if getattr(args, flag):
            parts += [f"--{flag}", ",".join(getattr(args, flag))]
    if args.lrs:
        parts += ["--lrs", ",".join(f"{r:g}" for r in args.lrs)]
    for flag in ("steps", "grad_evals", "seeds", "out"):
        if getattr(args, flag) is not None:
            parts += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    return " ".join(shlex.quote(p) for p in parts)


def register(subparsers) -> None:
    from ..study.methods import METHOD_NAMES, PEER_METHODS
    from ..study.tasks import DATA_KINDS, TASK_NAMES

    p = subparsers.add_parser(
        "study", help="empirical GAN study: controlled learning rate vs SGD, Adam, TTUR, cSGD, gap-aware",
        description="Train every (task, method, base learning rate, seed) of the study protocol in a "
                    "process pool (one torch thread per worker) or on a Dask cluster, append one row per "
                    "finished run to OUT/results.csv (an interrupted study resumes where it stopped; a "
                    "folder holding another protocol is refused), then write OUT/summary.json, "
                    "OUT/summary.md and OUT/figures/. With --data FILE.csv, train the returns GAN (the "
                    "sp500 task's networks and protocol) on the file's first numeric column.")
    p.add_argument("--quick", action="store_true",
                   help="short protocol (1 seed, 3 rates per family and each method's default, 200 gradient "
                        "evaluations per run) instead of the full one")
    p.add_argument("--tasks", type=_names, default=None,
                   help=f"comma-separated tasks (default all: {','.join(TASK_NAMES)})")
    p.add_argument("--methods", type=_names, default=None,
                   help=f"comma-separated methods (default all: {','.join(METHOD_NAMES)}; also the peers "
                        f"{','.join(PEER_METHODS)}, extra peers)")
    p.add_argument("--lrs", type=_rates, default=None,
                   help="comma-separated base learning rates (or multipliers) for every method that has one "
                        "(default: the protocol's grid per family, three per decade); a method without a rate "
                        "runs once per seed")
    p.add_argument("--data", metavar="FILE.csv", default=None,
                   help="train the returns GAN on this file's first numeric column (at least 500 rows)")
    p.add_argument("--data-kind", choices=DATA_KINDS, default="auto",
                   help="auto (default): all values positive = prices, turned into log-returns; or say it")
    p.add_argument("--dask-scheduler", metavar="ADDRESS", default=None,
                   help="run on this Dask scheduler, e.g. tcp://host:8786 (needs the dask extra)")
    p.add_argument("--out", default=None, help="output folder (default study-quick or study-full)")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="worker processes, one torch thread each (default: number of CPUs)")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="budget of every run in steps (instead of gradient evaluations)")
    p.add_argument("--grad-evals", type=_positive_int, default=None, metavar="N",
                   help="budget of every run in gradient evaluations (both players, every measurement; the "
                        "protocol's default: twice the steps plain SGD takes)")
    p.add_argument("--seeds", type=_positive_int, default=None, help="number of seeds (0..N-1)")
    p.add_argument("--report-only", action="store_true",
                   help="only rewrite the summary and figures (a folder recorded by other code under the same "
                        "protocol is reported, with a warning)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def check_study_size(args) -> None:
    """Refuse step budgets, seed counts and worker counts that would not fit, before any run starts."""
    if args.steps is not None and args.grad_evals is not None:
        raise InputError("--steps and --grad-evals both set a run's budget; give one of them")
    if args.grad_evals is not None and args.grad_evals > 2 * MAX_STEPS:
        raise InputError(f"--grad-evals {args.grad_evals:,}: at most {2 * MAX_STEPS:,} gradient evaluations per run "
                         f"(the full protocol uses 4000 to 6000)")
    if args.steps is not None and args.steps > MAX_STEPS:
        raise InputError(f"--steps {args.steps:,}: at most {MAX_STEPS:,} training steps per run "
                         f"(the full protocol uses 2000 to 3000)")
    if args.seeds is not None and args.seeds > MAX_SEEDS:
        raise InputError(f"--seeds {args.seeds:,}: at most {MAX_SEEDS:,} seeds (the full protocol uses 10)")
    if args.workers is not None:
        fit = max(1, int(_memory_bytes() // WORKER_BYTES))
        if args.workers > fit:
            raise InputError(f"--workers {args.workers:,}: each worker process needs about "
                             f"{WORKER_BYTES / 2**30:.0f} GiB ({args.workers * WORKER_BYTES / 2**30:,.0f} GiB "
                             f"in all); at most {fit} fit in this machine's memory")


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 16 * 2**30


def run(args) -> int:
    from ..study.protocol import data_config, full_config, quick_config
    from ..study.report import write_report
    from ..study.runner import run_study

    check_study_size(args)
    name = ("custom" if args.steps is not None or args.grad_evals is not None or args.lrs
            else "quick" if args.quick else "full")
    if args.data is not None:
        if args.tasks:
            raise InputError("--tasks does not apply with --data (the data file is the only task)")
        config = data_config(args.data, args.data_kind, quick=args.quick)
        print(config.data.note)
        name = f"data-{name}"
    else:
        if args.data_kind != "auto":
            raise InputError("--data-kind needs --data FILE.csv")
        config = quick_config() if args.quick else full_config()
    if not args.report_only:
        config = config.select(tasks=args.tasks, methods=args.methods, lrs=args.lrs, grad_evals=args.grad_evals,
                               seeds=None if args.seeds is None else range(args.seeds), steps=args.steps)
    out = check_output_dir(args.out if args.out is not None else f"study-{name}", "--out")
    command = _command(args)
    if not args.report_only:
        workers = args.workers or os.cpu_count() or 1
        client = None
        if args.dask_scheduler:
            from .sweep import connect_dask

            client = connect_dask(args.dask_scheduler)
        try:
            csv_path = run_study(config, out, workers=workers, executor=client, progress=not args.no_progress)
        finally:
            if client is not None:
                client.close()
        print(f"results: {csv_path}")
    written = write_report(out, command=command,
                           warn=lambda message: print(f"stochctl study: warning: {message}", file=sys.stderr))
    print(f"summary: {written[0]}")
    print(f"runs: {written[0].parent / 'summary.json'}")
    print(f"figures: {len(written) - 1} in {written[0].parent / 'figures'}")
    return 0
