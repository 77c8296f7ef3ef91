"""``stochctl query``: value and controls of a saved Solution at given points.

    stochctl query solution.npz --at "tau=0,y=1.5" [--at ...] [--json]

Each point names the state coordinates and optionally the time (named as the
problem names it, default 0). The value is interpolated multilinearly in space
(linearly in time between stored levels); each control is the policy level in
force at that time, interpolated in space. ``--json`` prints a list with one
object per point: its coordinates, ``value`` and every control by name (and
``u`` for a one-player problem).
"""

from __future__ import annotations


from ..errors import InputError
from ._common import dump_json, parse_assignments, parse_number
from ._paths import check_npz_input


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "query",
        help="value and controls of a saved solution at given points",
        description="Interpolate a saved solution's value and controls at points.",
        epilog='example: stochctl query local.npz --at "tau=0,y=1.5" --at "tau=1,y=-2" --json',
    )
    p.add_argument("solution", metavar="SOLUTION.npz", help="file written by 'stochctl solve --out'")
    p.add_argument("--at", action="append", required=True, metavar="POINT",
                   help='a point, e.g. "tau=0,y=1.5" (repeatable; the time defaults to 0)')
    p.add_argument("--method", choices=("linear", "nearest"), default="linear",
                   help="spatial interpolation (default: multilinear)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def parse_point(text: str, time_name: str, state_names) -> dict[str, float]:
    """``"tau=0,y=1.5"`` -> {"tau": 0.0, "y": 1.5}; the time defaults to 0."""
    valid = (time_name, *state_names)
    raw = parse_assignments(text, f"--at {text!r}", valid=valid)
    out = {k: parse_number(f"--at {text!r}:", k, v) for k, v in raw.items()}
    missing = [s for s in state_names if s not in out]
    if missing:
        raise InputError(f"--at {text!r}: missing coordinate {missing[0]!r}; a point needs {', '.join(state_names)}")
    out.setdefault(time_name, 0.0)
    return {k: out[k] for k in valid}


def query(solution, points: list[dict], method: str = "linear") -> list[dict]:
    """Value and controls at each point (dicts as from :func:`parse_point`)."""
    rows = []
    for point in points:
        t = point[solution.time_name]
        x = [point[s] for s in solution.state_names]
        row = dict(point)
        row["value"] = solution.value_at(x, t=t, method=method)
        for name in solution.control_names:
            row[name] = solution.control_at(name, x, t=t, method=method)
        if len(solution.players) == 1:
            row["u"] = row[f"u_{solution.players[0]}"]
        rows.append(row)
    return rows


def run(args) -> int:
    from ..solvers import Solution

    check_npz_input(args.solution, "solution file")
    solution = Solution.load(args.solution)
    points = [parse_point(a, solution.time_name, solution.state_names) for a in args.at]
    rows = query(solution, points, args.method)
    if args.json:
        print(dump_json(rows))
        return 0
    keys = list(rows[0])
    width = max(12, *(len(k) for k in keys))
    print("  ".join(k.rjust(width) for k in keys))
    for row in rows:
        print("  ".join(f"{row[k]:{width}.6g}" for k in keys))
    return 0
