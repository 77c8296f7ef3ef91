"""``stochctl table``: inspect a policy table and look values up.

    stochctl table info (TABLE.npz | local-quadratic) [--json]
    stochctl table lookup (TABLE.npz | local-quadratic) --at "tau_remaining=1,y=0.5" [--at ...] [--json]
    stochctl table build-local [--out PATH] [--quick] [--no-refine]
    stochctl table build-local --discrete [--out PATH] [--quick] [--no-refine] [--workers N]

A packaged table is named by its name. ``info`` loads the file with full
validation (a damaged file is an error naming the problem) and prints axes,
values, metadata and the verified checksum. ``lookup`` interpolates every
tabulated value at each ``--at`` point; points outside the grid are clamped
and reported as such. ``build-local`` regenerates the packaged local-model
table from the solver (about half a minute; the arrays are deterministic, only
the creation time changes) into local_quadratic_table.npz in the current
folder, or --out PATH; the table inside the installed package is replaced
only when --out names it.
"""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._common import dump_json, parse_assignments, parse_number
from ._paths import check_npz_input, check_output_file, replaced_note

STATUS = {0: "inside", 1: "clamped", 2: "nan"}


def register(subparsers) -> None:
    from ..tables import SHIPPED_TABLES

    p = subparsers.add_parser("table", help="inspect a policy table or look values up",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="table_command", metavar="ACTION", required=True)
    names = ", ".join(sorted(SHIPPED_TABLES))
    info = sub.add_parser("info", help="axes, values, metadata and checksum verdict")
    info.add_argument("table", metavar="TABLE", help=f"table file (.npz) or packaged table ({names})")
    info.add_argument("--json", action="store_true", help="print JSON")
    look = sub.add_parser("lookup", help="interpolate the table at points")
    look.add_argument("table", metavar="TABLE", help=f"table file (.npz) or packaged table ({names})")
    look.add_argument("--at", action="append", required=True, metavar="AXIS=V,...",
                      help='a query point, e.g. "tau_remaining=1,y=0.5" (repeatable)')
    look.add_argument("--json", action="store_true", help="print JSON")
    build = sub.add_parser("build-local", help="rebuild the packaged local-model table from the solver")
    build.add_argument("--out", metavar="PATH",
                       help="output .npz file (default: local_quadratic_table.npz, with --discrete "
                            "local_discrete_table.npz, in the current folder)")
    build.add_argument("--quick", action="store_true", help="coarse solve (seconds), for a smoke test")
    build.add_argument("--no-refine", action="store_true",
                       help="skip the finer solve that estimates the refinement error (with --discrete: the "
                            "check that caps h u_max of 2 and 8 do not bind)")
    build.add_argument("--discrete", action="store_true",
                       help="build the discrete local model's table local-discrete (Bellman iterations to "
                            "stationarity; axes Z = h u_max, T = u_max tau_remaining, v = |y| / sqrt(u_max); "
                            "looked up at u_max, h, tau_remaining, y)")
    build.add_argument("--workers", type=int, metavar="N", help="processes of the --discrete build (default: cores)")
    p.set_defaults(func=run)


def parse_point(text: str, axis_names) -> dict:
    """``"tau_remaining=1,y=0.5"`` -> {"tau_remaining": 1.0, "y": 0.5}, every axis exactly once."""
    raw = parse_assignments(text, f"--at {text!r}", form="AXIS=VALUE", valid=tuple(axis_names))
    point = {k: parse_number(f"--at {text!r}:", k, v) for k, v in raw.items()}
    missing = [n for n in axis_names if n not in point]
    if missing:
        raise InputError(f"--at {text!r} misses the coordinate(s) {missing}; the table's axes are {list(axis_names)}")
    return point


def run(args) -> int:
    from ..tables import load_table

    if args.table_command == "build-local":
        if args.workers is not None and not args.discrete:
            raise InputError("--workers applies to the --discrete build only")
        if args.workers is not None and args.workers < 1:
            raise InputError(f"--workers must be an integer >= 1; got {args.workers}")
        from ..tables.shipped import default_path, write_local_table
        from ..tables.shipped_discrete import default_path as discrete_path
        from ..tables.shipped_discrete import write_discrete_table

        # the default is a file in the current folder: the packaged table is replaced only when named
        default = (discrete_path() if args.discrete else default_path()).name
        out = check_output_file(args.out if args.out is not None else default, "--out", suffix=".npz",
                                what="a policy table")
        existed = out.exists()
        if args.discrete:
            path, table = write_discrete_table(out, quick=args.quick, check=not args.no_refine, workers=args.workers)
        else:
            path, table = write_local_table(out, quick=args.quick, refine=not args.no_refine)
        print(f"wrote {path}{replaced_note(existed)} ({path.stat().st_size / 1024:.0f} KiB), "
              f"checksum {table.checksum}")
        if args.quick:
            print("note: a --quick table is a smoke test on coarse axes, not fit for training; build without "
                  "--quick for a table to train with")
        return 0
    from ..tables import SHIPPED_TABLES

    if args.table not in SHIPPED_TABLES:
        check_npz_input(args.table, "table file")
    table = load_table(args.table)
    if args.table_command == "info":
        summary = table.summary()
        if args.json:
            print(dump_json({"table": str(args.table), "checksum_verified": True, **summary}))
            return 0
        print(f"table {args.table}: format version {summary['format_version']}, "
              f"interpolation {summary['interpolation']}")
        print(f"checksum: {summary['checksum']} (verified)")
        print("axes:")
        for a in summary["axes"]:
            parts = [f"{a['size']} points in [{a['min']:g}, {a['max']:g}]", f"units {a['units']}",
                     a["long_name"], f"online: {a['estimator']}" if a["estimator"] else "",
                     f"role {a['role']}" if a.get("role") else "",
                     f"from trainer: {a['from_trainer']}" if a.get("from_trainer") else "",
                     "extrapolation " + "/".join(a["extrapolation"])]
            print(f"  {a['name']}: " + "; ".join(p for p in parts if p))
        print("values:")
        for v in summary["values"]:
            lo, hi = ("-inf" if b is None and i == 0 else "inf" if b is None else f"{b:g}"
                      for i, b in enumerate(v["valid_range"]))
            parts = [f"[{v['min']:g}, {v['max']:g}] within [{lo}, {hi}]", v["units"],
                     f"fallback {v['fallback']}", v["long_name"]]
            print(f"  {v['name']}: " + "; ".join(p for p in parts if p))
        print("metadata:")
        for k, v in summary["metadata"].items():
            print(f"  {k}: {v}")
        return 0
    from ..tables.discrete_policy import QUERY_AXES, is_scaled
    from ..tables.discrete_policy import lookup as discrete_lookup

    names = QUERY_AXES if is_scaled(table) else table.axis_names
    points = [parse_point(t, names) for t in args.at]
    coords = {n: [p[n] for p in points] for n in names}
    if is_scaled(table):  # the discrete policy in the model's own variables, as LocalPolicy reads it
        if any(not p["h"] > 0 or not p["u_max"] > 0 for p in points):
            raise InputError("--at: the discrete table needs h > 0 and u_max > 0")
        out = {n: discrete_lookup(table, *(coords[a] for a in QUERY_AXES), value=n) for n in table.value_names}
        values, status = {n: o[0] for n, o in out.items()}, out["u"][1]
    else:
        res = table.lookup(**coords)
        values, status = res.values, res.status
    rows = []
    for i, p in enumerate(points):
        rows.append({**p, **{n: float(values[n][i]) for n in table.value_names}, "status": STATUS[int(status[i])]})
    if args.json:
        print(dump_json(rows))
    else:
        for r in rows:
            at = " ".join(f"{n}={r[n]:g}" for n in names)
            vals = " ".join(f"{n}={r[n]:.6g}" for n in table.value_names)
            print(f"{at} -> {vals} ({r['status']})")
    return 0
