"""``stochctl demo``: the main job on a default model, end to end.

1. derive the Isaacs equation of the Dirac GAN and its optimal learning rates,
2. analyse its convexity and the well-posedness of its minimax problem,
3. solve the dimensionless local model (docs/DESIGN.md, section 4) on a grid,
4. export its optimal policy as a lookup table (``.npz`` and CSV),
5. draw every figure (quick versions).

Everything lands in one output folder (default ``stochctl-demo``).
"""

from __future__ import annotations

import time

from .._io import write_text_atomic
from ._common import check_model_spec
from ._paths import ReplacedFiles, check_output_dir


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="derive, analyse, solve, export a policy table and draw the figures for a default model",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    p.add_argument("--out", default="stochctl-demo", metavar="DIR", help="output folder (default: stochctl-demo)")
    p.add_argument("--model", default="dirac-gan", metavar="MODEL",
                   help="model derived and analysed in steps 1-2: a canonical name or a model .toml file "
                        "(default: dirac-gan)")
    p.add_argument("--no-figures", action="store_true", help="skip step 5")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def _step(n: int, title: str) -> float:
    print(f"\n[{n}/5] {title}", flush=True)
    return time.perf_counter()


def _done(start: float) -> None:
    print(f"      ({time.perf_counter() - start:.1f} s)", flush=True)


def run(args) -> int:
    import sympy as sp

    from ..analysis import analyze_convexity, analyze_wellposedness
    from ..models import get_model, load_model
    from ..policy import PolicyTable
    from ..solvers import Grid, solve
    from ..symbolic import ControlProblem, derive

    out = check_output_dir(args.out, "--out")
    check_model_spec(args.model, "--model")
    model = load_model(args.model).model
    replaced = ReplacedFiles(out)
    out.mkdir(parents=True, exist_ok=True)
    total = time.perf_counter()
    problem = ControlProblem.from_model(model)

    t = _step(1, f"derive: {model.summary()}")
    d = derive(problem)
    for p in d.players:
        print(f"      u_{p.name}* = {sp.sstr(p.optimal_control)}")
        print(f"          with A_{p.name} = {sp.sstr(p.A)},  B_{p.name} = {sp.sstr(p.B)}")
    verdict = d.isaacs.reason if d.isaacs.applicable else "one player: plain HJB equation"
    print(f"      Isaacs condition: {verdict}")
    path = out / f"derivation-{model.name}.md"
    write_text_atomic(path, d.to_markdown())
    print(f"      -> {path}")
    _done(t)

    t = _step(2, "analyse: convexity and well-posedness")
    conv = analyze_convexity(model)
    for block in conv.blocks:
        print(f"      g must be {block.requirement} in {block.player}: fails on "
              f"{100 * block.failure_fraction:.1f}% of the box")
    for f in conv.failures[:3]:
        pt = ", ".join(f"{k}={v:.3g}" for k, v in zip(model.state_names, f.point))
        print(f"          e.g. at {pt}: eigenvalue {f.eigenvalue:.4g} ({f.player})")
    wp = analyze_wellposedness(model)
    print(f"      upper value {wp.upper_value:.6g}, lower value {wp.lower_value:.6g}, gap {wp.gap:.3g}; "
          f"saddle point: {'yes' if wp.saddle_point else 'no'}")
    _done(t)

    t = _step(3, "solve: local model dY = -u Y dtau + u dW, cost Y^2, u in [0, 1], horizon tau = 2")
    local = ControlProblem.from_model(get_model("local-quadratic"))
    # demo resolution (V within about 0.5%); `stochctl solve local-quadratic` defaults reach 1e-3
    grid = Grid.from_domain({"y": (-5.0, 5.0)}, 1201, "linear")
    sol = solve(local, grid, scheme="implicit", dt=1e-3, store_every=10, progress=False if args.quiet else None)
    sol_path = out / "local_quadratic_solution.npz"
    sol.save(sol_path)
    for y in (0.5, 1.5, 3.0):
        v = float(sol.value_at([[y]])[0])
        u = float(sol.control_at("u_y", [[y]])[0])
        print(f"      tau=0, y={y}: V = {v:.5f}, u* = {u:.4f}")
    print(f"      {sol.diagnostics['steps']} implicit steps, mean policy iterations "
          f"{sol.diagnostics['mean_policy_iterations']:.2f} -> {sol_path}")
    _done(t)

    t = _step(4, "export: policy table for trainers")
    table = PolicyTable.from_solution(sol)
    table_path = out / "local_quadratic_table.npz"
    table.save(table_path)
    table.to_csv(out / "local_quadratic_table.csv")
    axes = ", ".join(f"{a.name} [{a.breakpoints[0]:g}, {a.breakpoints[-1]:g}] ({a.breakpoints.size})"
                     for a in table.axes)
    print(f"      axes {axes}; values {', '.join(v.name for v in table.values)} -> {table_path} (+ .csv)")
    _done(t)

    if args.no_figures:
        print("\n[5/5] figures skipped")
    else:
        from ..figures import generate

        t = _step(5, "figures (quick versions; `stochctl figures` draws the full ones)")
        paths = generate(out / "figures", quick=True, progress=not args.quiet)
        print(f"      {len(paths)} figures -> {out / 'figures'}")
        _done(t)
    print(f"\ndone in {time.perf_counter() - total:.1f} s; everything is in {out}/{replaced.note()}")
    return 0
