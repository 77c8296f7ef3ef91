"""``stochctl query``: value and controls of a saved Solution at given points.

    stochctl query solution.npz --at "tau=0,y=1.5" [--at ...] [--json]

Each point names the state coordinates and optionally the time (named as the
problem names it, default 0). The value is interpolated multilinearly in space
(linearly in time between stored levels); each control is the policy level in
force at that time, interpolated in space. ``--json`` prints a list with one
object per point: its coordinates, ``value`` and every control by name (and
``u`` for a one-player problem). A discrete-time solution (``stochctl solve --steps``) is
queried at ``steps_left=n`` (or the step index ``k``); with no step left there is no
multiplier (``null``).
"""

from __future__ import annotations


import numpy as np

from ..errors import InputError
from ..solvers.solution import interpolate
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


STEPS_LEFT = "steps_left"


def parse_point(text: str, time_name: str, state_names, steps: int | None = None) -> dict[str, float]:
    """``"tau=0,y=1.5"`` -> {"tau": 0.0, "y": 1.5}; the time defaults to 0.

    For a discrete-time solution of ``steps`` steps the time is the step index k or, equivalently,
    ``steps_left`` = steps - k (a whole number in [0, steps]).
    """
    valid = (time_name, *state_names) if steps is None else (time_name, STEPS_LEFT, *state_names)
    raw = parse_assignments(text, f"--at {text!r}", valid=valid)
    out = {k: parse_number(f"--at {text!r}:", k, v) for k, v in raw.items()}
    if steps is not None:
        if STEPS_LEFT in out and time_name in out:
            raise InputError(f"--at {text!r}: give {STEPS_LEFT} or {time_name}, not both")
        for key in (STEPS_LEFT, time_name):
            v = out.get(key)
            if v is not None and not (float(v).is_integer() and 0 <= v <= steps):
                raise InputError(f"--at {text!r}: {key} must be a whole number in [0, {steps}]; got {v:g}")
        if STEPS_LEFT in out:
            out[time_name] = steps - out.pop(STEPS_LEFT)
    missing = [s for s in state_names if s not in out]
    if missing:
        raise InputError(f"--at {text!r}: missing coordinate {missing[0]!r}; a point needs {', '.join(state_names)}")
    out.setdefault(time_name, 0.0)
    if steps is not None:
        k = int(out.pop(time_name))
        return {STEPS_LEFT: steps - k, time_name: k, **{n: out[n] for n in state_names}}
    return {k: out[k] for k in valid}


def query(solution, points: list[dict], method: str = "linear") -> list[dict]:
    """Value and controls at each point (dicts as from :func:`parse_point`)."""
    rows = []
    for point in points:
        t = point[solution.time_name]
        x = [point[s] for s in solution.state_names]
        row = dict(point)
        row["value"] = solution.value_at(x, t=t, method=method)
        lower = solution.diagnostics.get("lower_values")
        if isinstance(lower, np.ndarray):  # a simultaneous-move game: the lower value too
            j = int(np.searchsorted(solution.stored, int(round(t))))
            if j < len(solution.stored) and solution.stored[j] == int(round(t)):
                row["lower_value"] = float(interpolate(solution.grid, lower[j], np.array([x]))[0])
        last = point.get(STEPS_LEFT) == 0  # no step is left to take: no multiplier
        for name in solution.control_names:
            row[name] = None if last else solution.control_at(name, x, t=t, method=method)
        if len(solution.players) == 1:
            row["u"] = row[f"u_{solution.players[0]}"]
        rows.append(row)
    return rows


def run(args) -> int:
    from ..solvers import Solution

    check_npz_input(args.solution, "solution file")
    solution = Solution.load(args.solution)
    steps = solution.n_steps if solution.metadata.get("discrete") else None
    points = [parse_point(a, solution.time_name, solution.state_names, steps) for a in args.at]
    rows = query(solution, points, args.method)
    if args.json:
        print(dump_json(rows))
        return 0
    keys = list(rows[0])
    width = max(12, *(len(k) for k in keys))
    print("  ".join(k.rjust(width) for k in keys))
    for row in rows:
        print("  ".join(f"{row[k]:{width}.6g}" if row[k] is not None else "-".rjust(width) for k in keys))
    return 0
