"""``stochctl derive``: the HJB / Isaacs derivation of a model, or all derivation documents.

    stochctl derive MODEL [--param k=v] [--format markdown|latex|json]
                    [--eta ETA] [--u-min U] [--u-max U] [--batch-size B]
                    [--noise independent|shared] [--batch-control B_MIN:B_MAX:KAPPA] [--discrete]
    stochctl derive --all [--out derivations/]

``local-discrete`` and ``--discrete`` write the discrete-time derivation (Bellman
equation, one-step problem and rule; :mod:`stochctl.symbolic.discrete`) of a
one-player model instead of the HJB one.
"""

from __future__ import annotations

import math
import sys

from ..errors import InputError
from ._paths import check_output_dir, replaced_note

FORMATS = ("markdown", "latex", "json")
NOISES = ("independent", "shared")
_PROBLEM_OPTIONS = ("eta", "u_min", "u_max", "batch_size", "noise", "batch_control")


def register(subparsers) -> None:
    from ..models import MODEL_NAMES

    p = subparsers.add_parser(
        "derive",
        help="derive the HJB/Isaacs equation, optimal controls and Isaacs verdict of a model",
        description="Derive the generator, Hamiltonian, pointwise optimal learning-rate (and batch) controls "
                    "and the Isaacs verdict of a model's control problem; with --discrete (the default for "
                    "local-discrete), the discrete-time Bellman equation and one-step rule of a one-player model "
                    "instead. With --all, write one Markdown document per canonical model.",
    )
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help=f"canonical model ({', '.join(MODEL_NAMES)}) or a model .toml file")
    p.add_argument("--param", action="append", default=[], metavar="K=V",
                   help="override a model parameter (repeatable, or comma-separated)")
    p.add_argument("--format", default="markdown", metavar="FMT",
                   help=f"output format: {', '.join(FORMATS)} (default markdown)")
    p.add_argument("--eta", metavar="ETA", help="base learning rate (> 0; default: the model's)")
    p.add_argument("--u-min", dest="u_min", metavar="U", help="lower bound of the multiplier u (default 0)")
    p.add_argument("--u-max", dest="u_max", metavar="U", help="upper bound of the multiplier u (default 1)")
    p.add_argument("--batch-size", dest="batch_size", metavar="B", help="fixed batch size (default: the model's)")
    p.add_argument("--noise", metavar="MODE",
                   help="independent (one minibatch per player, default) or shared (one minibatch for both)")
    p.add_argument("--batch-control", dest="batch_control", metavar="B_MIN:B_MAX:KAPPA",
                   help="make the batch size a control in [B_MIN, B_MAX] with compute cost KAPPA per sample")
    p.add_argument("--discrete", action="store_true",
                   help="the discrete-time derivation (Bellman equation, one-step rule) of a one-player model; "
                        "the default for local-discrete")
    p.add_argument("--all", action="store_true",
                   help="write derivations/<model>.md for every canonical model (default options)")
    p.add_argument("--out", default=None, metavar="DIR", help="output directory for --all (default: derivations)")
    p.set_defaults(func=run)


def _number(option: str, text: str, *, integer: bool = False):
    try:
        value = int(text) if integer else float(text)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise InputError(f"{option}: expected {kind}; got {text!r}") from None
    if not integer and not math.isfinite(value):
        raise InputError(f"{option}: expected a finite number; got {text!r}")
    return value


def _batch_control(text: str):
    from ..symbolic.problem import BatchControl

    parts = text.split(":")
    if len(parts) != 3:
        raise InputError(f"--batch-control: expected B_MIN:B_MAX:KAPPA (e.g. 1:64:0.01); got {text!r}")
    b_min, b_max, kappa = (_number("--batch-control", t) for t in parts)
    return BatchControl(b_min, b_max, kappa)


def build_problem(args):
    """The :class:`~stochctl.symbolic.ControlProblem` named by the arguments.

    Options not given on the command line fall back to the model file's ``[control]`` table,
    then to the defaults of :meth:`ControlProblem.from_model`.
    """
    from ..symbolic.problem import ControlProblem
    from ._common import load_model_from_args

    cfg = load_model_from_args(args)
    control = dict(cfg.control)
    opts = {}
    for key, conv in (("eta", float), ("u_min", float), ("u_max", float), ("batch_size", int)):
        text = getattr(args, key)
        if text is not None:
            opts[key] = _number("--" + key.replace("_", "-"), text, integer=conv is int)
        elif key in control:
            opts[key] = control[key]
    noise = args.noise if args.noise is not None else control.get("noise", "independent")
    if noise not in NOISES:
        raise InputError(f"--noise: expected one of {', '.join(NOISES)}; got {noise!r}")
    if args.batch_control is not None:
        opts["batch"] = _batch_control(args.batch_control)
    return ControlProblem.from_model(cfg.model, noise=noise, **opts)


def run(args) -> int:
    if args.format not in FORMATS:
        raise InputError(f"--format: expected one of {', '.join(FORMATS)}; got {args.format!r}")
    if args.all:
        given = [o for o in _PROBLEM_OPTIONS if getattr(args, o) is not None]
        if args.discrete:
            given.append("discrete")
        if args.model is not None or args.param or given:
            extra = ([args.model] if args.model else []) + (["--param"] if args.param else []) + \
                ["--" + o.replace("_", "-") for o in given]
            raise InputError(f"--all writes every canonical model with default options; drop {', '.join(extra)}")
        if args.format != "markdown":
            raise InputError(f"--all writes Markdown documents; got --format {args.format}")
        from ..models import MODEL_NAMES
        from ..documents.write import write_derivations

        out = check_output_dir(args.out if args.out is not None else "derivations", "--out")
        existed = {name: (out / f"{name}.md").exists() for name in MODEL_NAMES}
        for name, path in zip(MODEL_NAMES, write_derivations(out, MODEL_NAMES)):
            print(f"{path}{replaced_note(existed[name])}")
        return 0
    if args.model is None:
        raise InputError("MODEL is required (a canonical model name or a .toml file), or use --all")
    if args.out is not None:
        raise InputError(f"--out {args.out!r} is used only with --all; a single derivation goes to stdout")
    from ..symbolic.discrete import derive_discrete

    problem = build_problem(args)
    # a one-player model solved in discrete time is derived in discrete time (two players: the Isaacs derivation)
    if args.discrete or (problem.model.solve_defaults.time == "discrete" and not problem.model.is_game):
        if args.noise is not None or args.batch_control is not None:
            extra = ["--noise"] * (args.noise is not None) + ["--batch-control"] * (args.batch_control is not None)
            raise InputError(f"the discrete derivation takes one player with a fixed batch size; drop "
                             f"{', '.join(extra)}")
        d = derive_discrete(problem)
    else:
        from ..symbolic.derive import derive

        d = derive(problem)
    text = {"markdown": d.to_markdown, "latex": d.to_latex, "json": d.to_json}[args.format]()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0

