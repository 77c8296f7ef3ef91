"""``stochctl analyze``: convexity and well-posedness of a model's objective on a box."""

from __future__ import annotations

import math

import sympy as sp

from ..errors import InputError
from ._common import add_model_arguments, dump_json, load_model_from_args, parse_assignments


MAX_BOX = 1e12
"""Largest magnitude of a --box bound (wider boxes overflow the grid spacing)."""

def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="convexity per player, profile objective, upper/lower values and saddle point",
        description="Convexity of g in each player's coordinates (Hessian eigenvalues on a grid, "
                    "with concrete failure points), convexity of the profile max_omega g, and the "
                    "upper value min max g, lower value max min g, their gap and the saddle point.",
    )
    add_model_arguments(parser)
    parser.add_argument("--box", action="append", default=[], metavar="NAME=LO:HI[,...]",
                        help="analysis box per state coordinate, e.g. theta=-1:1,omega=-1:1 "
                             "(default: the model's domain)")
    parser.add_argument("--points", type=int, default=None, metavar="N",
                        help="grid points per side (default 61, fewer in 3+ dimensions)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(func=run)


def parse_box(items, model=None) -> dict[str, tuple[float, float]]:
    """Parse ``--box`` items ``NAME=LO:HI`` (comma-separated, repeatable) into ``{name: (lo, hi)}``.

    With ``model`` given, names must be its state symbols.
    """
    out: dict[str, tuple[float, float]] = {}
    for name, span in parse_assignments(items, "--box", form="NAME=LO:HI").items():
        bounds = span.split(":")
        if len(bounds) != 2:
            raise InputError(f"--box {name}: expected LO:HI; got {span!r}")
        try:
            lo, hi = float(bounds[0]), float(bounds[1])
        except ValueError:
            raise InputError(f"--box {name}: expected numbers LO:HI; got {span!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise InputError(f"--box {name}: expected finite LO < HI; got {span!r}")
        if max(abs(lo), abs(hi)) > MAX_BOX:
            raise InputError(f"--box {name}: bounds must lie within +-{MAX_BOX:g}; got {span!r}")
        out[name] = (lo, hi)
    if model is not None:
        for name in out:
            if name not in model.state_names:
                raise InputError(f"--box: {name!r} is not a state symbol of model {model.name!r}; "
                                 f"valid: {', '.join(model.state_names)}")
    return out


def _fmt_point(names, x) -> str:
    return ", ".join(f"{n}={v:.4g}" for n, v in zip(names, x))


def _fmt_expr(expr, limit: int = 160) -> str:
    if sp.count_ops(expr) <= 60:
        expr = sp.simplify(expr)
    text = str(expr)
    return text if len(text) <= limit else f"<{sp.count_ops(expr)} operations>"


def format_text(model, conv, well) -> str:
    """Human-readable report of both analyses."""
    lines = [model.summary(),
             "box: " + ", ".join(f"{n} in [{lo:g}, {hi:g}]" for n, (lo, hi) in conv.box.items())
             + f"; grid {' x '.join(str(len(a)) for a in conv.axes)}", "", "Convexity"]
    for b in conv.blocks:
        coords = ", ".join(map(str, b.symbols))
        lines.append(f"  {b.player} ({b.sense}): Hessian block D2_({coords}) g = "
                     + "; ".join(_fmt_expr(e) for e in b.block))
        which = "min" if b.sense == "min" else "max"
        ext = float(b.extreme.min() if b.sense == "min" else b.extreme.max())
        if b.holds:
            lines.append(f"    {b.requirement} at every grid point ({which} eigenvalue {ext:.4g})")
        else:
            reach = "down to" if b.sense == "min" else "up to"
            lines.append(f"    not {b.requirement} on {100 * b.failure_fraction:.1f}% of the box "
                         f"({which} eigenvalue {reach} {ext:.4g})")
            lines.append(f"    points where it is not {b.requirement} ({which} eigenvalue, 30-digit evaluation):")
            for f in conv.failures:
                if f.player == b.player:
                    lines.append(f"      {_fmt_point(f.names, f.point)}: {f.eigenvalue:.6g}")
    p = conv.profile
    if p is not None:
        th, om = ", ".join(p.min_names), ", ".join(p.max_names)
        head = f"  profile P({th}) = max_({om}) g"
        if p.convex:
            lines.append(f"{head}: convex on the grid (no negative second difference)")
        else:
            lines.append(f"{head}: not convex on {100 * p.nonconvex_fraction:.1f}% of the grid; "
                         "negative second differences at")
            for x, c in p.failures:
                lines.append(f"      {_fmt_point(p.min_names, x)}: curvature {c:.4g}")
    lines += ["", "Well-posedness"]
    th, om = ", ".join(well.min_names), ", ".join(well.max_names)
    if th and om:
        upper, lower = f"min_({th}) max_({om}) g", f"max_({om}) min_({th}) g"
    else:
        upper = lower = f"min_({th}) g" if th else f"max_({om}) g"
    lines.append(f"  upper value {upper} = {well.upper_value:.10g}"
                 f" at {_fmt_point(well.state_names, well.upper_point)}")
    lines.append(f"  lower value {lower} = {well.lower_value:.10g}"
                 f" at {_fmt_point(well.state_names, well.lower_point)}")
    if well.saddle_point:
        lines.append(f"  gap {well.gap:.3g} <= tolerance {well.tolerance:.3g}: saddle point at "
                     f"{_fmt_point(well.state_names, well.saddle)}, value {well.value:.10g}")
    else:
        lines.append(f"  gap {well.gap:.6g} > tolerance {well.tolerance:.3g}: no saddle point on this box "
                     "(the minimax problem is ill-posed)")
    return "\n".join(lines)


def run(args) -> int:
    from ..analysis import analyze_convexity, analyze_wellposedness

    model = load_model_from_args(args).model
    box = parse_box(args.box, model)
    conv = analyze_convexity(model, box=box, points=args.points)
    well = analyze_wellposedness(model, box=box, points=args.points)
    if args.json:
        convexity = conv.to_dict()
        out = {"model": model.name, "parameters": dict(model.values),
               "box": {k: list(v) for k, v in conv.box.items()},
               **well.to_dict(),
               "convexity_failures": convexity["failures"],
               "profile_failures": (convexity["profile"] or {}).get("failures", []),
               "convexity": convexity}
        print(dump_json(out))
    else:
        print(format_text(model, conv, well))
    return 0
