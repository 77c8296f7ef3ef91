"""``stochctl solve``: solve a model's HJB/Isaacs equation on a grid and save the Solution.

    stochctl solve (MODEL | CONFIG.toml) [--param k=v] [--grid N ...] [--horizon T]
        [--scheme explicit|implicit] [--dt DT] [--store-every K] [--u-min X] [--u-max X]
        [--boundary KIND] [--check-boundary] [--threads N] [--out solution.npz] [--quiet]

A TOML config's ``[control]`` table (u_min, u_max, eta, batch_size, noise,
b_min/b_max/kappa) and ``[solver]`` table (grid, horizon, scheme, dt,
store_every, boundary, tol, max_policy_iterations) supply defaults; command-line
options win. ``--param u_min=..,u_max=..`` sets the control bounds of a model
that has no parameters of those names (e.g. ``local-quadratic``).
"""

from __future__ import annotations

import argparse

from ..errors import InputError
from ._common import add_model_arguments, check_model_spec, grid_points
from ._paths import check_output_file, replaced_note

CONTROL_PARAMS = ("u_min", "u_max")


def register(subparsers) -> None:
    from ..solvers.api import SCHEMES
    from ..solvers.grid import BOUNDARY_KINDS

    p = subparsers.add_parser(
        "solve",
        help="solve the HJB/Isaacs equation of a model on a grid",
        description="Solve the HJB (one player) or Isaacs (two players) equation with a monotone "
                    "finite-difference scheme and save the value, policy and convexity map.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: stochctl solve local-quadratic --out local.npz\n"
               "         stochctl solve dirac-gan --grid 201 --horizon 2 --param c=0.5 --out gan.npz",
    )
    add_model_arguments(p)
    p.add_argument("--grid", nargs="+", type=int, metavar="N",
                   help="nodes per axis: one number for every axis or one per axis")
    p.add_argument("--horizon", type=float, metavar="T", help="horizon (in the model's time units)")
    p.add_argument("--scheme", choices=SCHEMES, help="time stepping (default: explicit; implicit for local-quadratic)")
    p.add_argument("--dt", type=float, metavar="DT", help="time step (explicit: at most the monotone bound)")
    p.add_argument("--store-every", type=int, metavar="K", help="keep every K-th time level")
    p.add_argument("--u-min", type=float, metavar="X", help="lower bound of the learning-rate multiplier")
    p.add_argument("--u-max", type=float, metavar="X", help="upper bound of the learning-rate multiplier")
    p.add_argument("--boundary", choices=BOUNDARY_KINDS, help="boundary condition on every face")
    p.add_argument("--check-boundary", action="store_true",
                   help="also solve on a 1.5x larger domain and report the boundary sensitivity")
    p.add_argument("--steps", type=int, metavar="N",
                   help="solve the discrete-time Bellman recursion of N training steps instead of the HJB "
                        "equation (the default for local-discrete, with 20 steps)")
    p.add_argument("--moves", choices=("simultaneous", "alternating"),
                   help="two-player models with --steps: simultaneous moves (upper and lower values, the "
                        "default) or alternating moves (the first player moves first)")
    p.add_argument("--threads", type=int, metavar="N", help="threads of the parallel kernels")
    p.add_argument("--out", metavar="FILE", help="write the solution to this .npz file")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.set_defaults(func=run)


def split_control_params(spec: str, items) -> tuple[dict, dict]:
    """Split ``--param`` items into model parameters and control bounds (u_min, u_max)."""
    from ..models import load_model, parse_params

    params = parse_params(items)
    control = {}
    if any(k in params for k in CONTROL_PARAMS):
        names = {p.name for p in load_model(spec).model.parameters}
        for k in CONTROL_PARAMS:
            if k in params and k not in names:
                control[k] = params.pop(k)
    return params, control


def run_discrete(args, problem, points, steps, store_every, existed: bool = False) -> int:
    """Discrete time (``--steps N`` or a discrete model): the Bellman recursion that :func:`stochctl.solvers.solve`
    chooses (:func:`stochctl.solvers.bellman.solve_discrete`, or ``solve_discrete_game`` for two players)."""
    from ..solvers import solve

    for flag, value in (("--scheme", args.scheme), ("--dt", args.dt), ("--boundary", args.boundary),
                        ("--check-boundary", args.check_boundary or None)):
        if value is not None:
            raise InputError(f"{flag} applies to the HJB solver; the discrete-time solver (--steps) has no "
                             f"{flag.lstrip('-')}")
    if args.moves is not None and len(problem.players) != 2:
        raise InputError(f"--moves applies to two-player models; {problem.model.name!r} has one player")
    solution = solve(problem, time="discrete", steps=steps, moves=args.moves, points=points,
                     store_every=store_every or 1, progress=False if args.quiet else None, num_threads=args.threads)
    if args.out:
        solution.save(args.out)
    if not args.quiet:
        print(discrete_summary(solution))
        print(f"saved to {args.out}{replaced_note(existed)}" if args.out else "not saved (use --out FILE)")
    return 0


def discrete_summary(solution) -> str:
    """Lines describing a discrete-time solution."""
    d = solution.diagnostics
    params = ", ".join(f"{k}={v:g}" for k, v in solution.metadata.get("parameters", {}).items())
    grid = solution.grid.describe().split(" (boundary")[0]
    lines = [f"{solution.problem}" + (f" ({params})" if params else "") + f": {grid} "
             "(beyond the grid: quadratic fit + linear extension)"]
    if "moves" in d:
        lines.append(f"{d['steps']} Bellman steps, {d['moves']} moves, {d['u_points']} multipliers per player "
                     f"(exact expectation), {d['wall_time']:.3g} s")
    else:
        refine = "Newton" if solution.grid.ndim == 1 else "golden section"
        lines.append(f"{d['steps']} Bellman steps (bracket of {d['u_bracket']} points + {refine}, exact "
                     f"expectation), {d['wall_time']:.3g} s")
    for p in solution.players:
        lo, hi = solution.u_bounds[p]
        lines.append(f"player {p}: u in [{lo:g}, {hi:g}], interior optimum on "
                     f"{100 * solution.convex_fraction(p):.1f}% of the grid with {d['steps']} steps left")
    V0 = solution.values[0]
    line = f"value with {d['steps']} steps left: min {V0.min():.6g}, max {V0.max():.6g}"
    if "value_gap" in d:
        line += (f"; upper and lower values differ by up to {d['value_gap']:.3g} on "
                 f"{100 * d['gap_fraction']:.1f}% of the nodes")
    elif d["mass_outside"] == d["mass_outside"]:  # not NaN: measured for 1-D grids
        line += f"; largest mass leaving the grid from its inner half {d['mass_outside']:.2g}"
    lines.append(line)
    return "\n".join(lines)


def run(args) -> int:
    from ..models import load_model
    from ..solvers import choose_scheme, solve
    from ..solvers.api import problem_from_config, solver_options_from_config

    check_model_spec(args.model)
    existed = False
    if args.out:
        out = check_output_file(args.out, "--out", suffix=".npz", what="a solution", inputs=[args.model])
        existed = out.exists()
    params, control = split_control_params(args.model, args.param)
    config = load_model(args.model, params)
    table = solver_options_from_config(config)
    u_min = args.u_min if args.u_min is not None else control.get("u_min")
    u_max = args.u_max if args.u_max is not None else control.get("u_max")
    horizon = args.horizon if args.horizon is not None else table.get("horizon")
    problem = problem_from_config(config, u_min=u_min, u_max=u_max, horizon=horizon)
    points = args.grid if args.grid is not None else table.get("grid")
    boundary = args.boundary if args.boundary is not None else table.get("boundary")
    if isinstance(points, (list, tuple)):
        points = grid_points(points, problem.model.state_names)

    def pick(name, cli):
        return cli if cli is not None else table.get(name)

    steps = pick("steps", args.steps)
    if choose_scheme(problem, steps=steps).time == "discrete":  # --steps, or a model solved in discrete time
        return run_discrete(args, problem, points, steps, pick("store_every", args.store_every), existed)
    options = dict(scheme=pick("scheme", args.scheme), dt=pick("dt", args.dt),
                   store_every=pick("store_every", args.store_every))
    for key in ("tol", "max_policy_iterations"):
        if key in table:
            options[key] = table[key]
    solution = solve(problem, points=points, boundary=boundary, moves=args.moves,
                     progress=False if args.quiet else None, num_threads=args.threads,
                     check_boundary=args.check_boundary, **options)
    if args.out:
        solution.save(args.out)
    if not args.quiet:
        print(solution.summary())
        V0 = solution.values[0]
        print(f"value at {solution.time_name}=0: min {V0.min():.6g}, max {V0.max():.6g}")
        print(f"saved to {args.out}{replaced_note(existed)}" if args.out else "not saved (use --out FILE)")
    return 0
