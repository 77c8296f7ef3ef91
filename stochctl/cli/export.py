"""``stochctl export``: turn a saved Solution into a policy table file.

    stochctl export SOLUTION.npz --out TABLE.npz [--csv [CSV]] [--time-axis tau_remaining|t]
        [--control NAME ...] [--value] [--convex] [--json]

The table holds each player's optimal multiplier (``u`` for one player,
``u_<player>`` otherwise; ``m_<player>`` under batch control) on the axes
(time to go, state coordinates), the grid of the solve; ``--value`` and
``--convex`` add the value function and the convexity map (1 where the
clipped-ratio rule applies, 0 where the policy is bang-bang). ``--csv`` also
writes the table in long form (one row per grid node; next to TABLE.npz
unless a path is given).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError
from ._common import dump_json
from ._paths import check_npz_input, check_output_file, replaced_note

#: A CSV larger than this (bytes) is announced with its estimated size before it is written.
CSV_NOTICE_BYTES = 100_000_000

def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="export a saved solution as a policy table (.npz, CSV)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("solution", metavar="SOLUTION", help="solution file written by `stochctl solve --out`")
    p.add_argument("--out", required=True, metavar="TABLE", help="table file to write (.npz)")
    p.add_argument("--csv", nargs="?", const="", default=None, metavar="CSV",
                   help="also write CSV (default path: TABLE with the suffix .csv)")
    p.add_argument("--time-axis", choices=("tau_remaining", "t"), default="tau_remaining",
                   help="first axis: time to go (default) or time")
    p.add_argument("--control", action="append", metavar="NAME",
                   help="export only this control (repeatable; default: all)")
    p.add_argument("--value", action="store_true", help="also tabulate the value function V")
    p.add_argument("--convex", action="store_true", help="also tabulate the convexity map")
    p.add_argument("--axis-from", action="append", metavar="AXIS=FORMULA", default=[],
                   help="how a trainer computes a state axis, as a formula in a, s2, grad_norm, eta, "
                        "steps_left (e.g. x=grad_norm/a); with it on every axis the table drives a trainer "
                        "(LocalPolicy); repeatable")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..policy import PolicyTable
    from ..solvers import Solution

    check_npz_input(args.solution, "solution file")
    out = check_output_file(args.out, "--out", suffix=".npz", what="a policy table", inputs=[args.solution])
    csv_path = None
    if args.csv is not None:
        csv_path = Path(args.csv) if args.csv else out.with_suffix(".csv")
        check_output_file(csv_path, "--csv", suffix=".csv", what="the CSV table", inputs=[args.solution])
    axis_info = {}
    for item in args.axis_from:
        name, eq, formula = item.partition("=")
        if not eq or not name.strip() or not formula.strip():
            raise InputError(f"--axis-from needs AXIS=FORMULA (e.g. x=grad_norm/a); got {item!r}")
        if name.strip() in axis_info:
            raise InputError(f"--axis-from gives axis {name.strip()!r} twice")
        axis_info[name.strip()] = {"from_trainer": formula.strip()}
    existed = {p: p.exists() for p in (out, csv_path) if p is not None}
    solution = Solution.load(args.solution)
    axes = set(solution.grid.names) | {"tau_remaining", "t", "steps_left"}
    unknown = sorted(set(axis_info) - axes)
    if unknown:
        raise InputError(f"--axis-from names unknown axis {unknown[0]!r}; the table's axes come from the "
                         f"solution's state {list(solution.grid.names)} and its time axis")
    table = PolicyTable.from_solution(solution, controls=args.control, time_axis=args.time_axis,
                                      include_value=args.value, include_convex=args.convex, axis_info=axis_info,
                                      metadata={"source": str(args.solution)})
    out = table.save(out)
    rows = 1
    for a in table.axes:
        rows *= a.breakpoints.size
    if csv_path is not None and (size := table.csv_size()) > CSV_NOTICE_BYTES:
        print(f"writing {csv_path}: about {size / 1e6:,.0f} MB ({rows:,} rows); the .npz table holds the "
              f"same numbers in {out.stat().st_size / 1e6:,.1f} MB", file=sys.stderr, flush=True)
    csv = None if csv_path is None else table.to_csv(csv_path)
    summary = {"table": str(out), "csv": None if csv is None else str(csv), "checksum": table.checksum,
               "axes": {a.name: int(a.breakpoints.size) for a in table.axes},
               "values": list(table.value_names)}
    if args.json:
        print(dump_json(summary))
    else:
        axes = " x ".join(f"{n}[{k}]" for n, k in summary["axes"].items())
        print(f"wrote {out}{replaced_note(existed[out])}: {', '.join(table.value_names)} on {axes}; "
              f"{table.checksum}")
        if csv is not None:
            print(f"wrote {csv}{replaced_note(existed[csv_path])}")
    return 0
